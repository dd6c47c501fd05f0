//! Length-prefixed message framing and flow control, through the Echo
//! handler: messages split over DATA frames, many in one, large ones.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_sansio::codec;
use futures_lite::future;

use crate::common::echo::{ECHO, ECHO_UNARY};
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// One message split over many DATA frames, the prefix split too
/// (PROTOCOL-HTTP2.md, "Data Frames": frame boundaries have no relation to
/// message boundaries).
#[test]
fn message_split_over_many_data_frames() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let payload = pattern(2000, 7);
        let mut wire = codec::encode_raw(&payload).unwrap();
        let (resp, mut stream) = c.call(ECHO).await;
        let mut frames = 0;
        while !wire.is_empty() {
            let n = wire.len().min(3 + frames % 11);
            stream.send_data(wire.split_to(n), false).unwrap();
            frames += 1;
        }
        assert!(frames > 200);
        stream.send_data(Bytes::new(), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        let msgs = reply.messages();
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0][..], &payload[..]);
    });
}

/// Many messages in one DATA frame (PROTOCOL-HTTP2.md, "Data Frames"),
/// zero-length ones included ("Length-Prefixed-Message": a Message is
/// zero or more octets), come back in order.
#[test]
fn many_messages_in_one_data_frame_and_zero_length_messages() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let payloads: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                if i % 3 == 0 {
                    Vec::new()
                } else {
                    pattern(i * 7, i as u8)
                }
            })
            .collect();
        let mut wire = BytesMut::new();
        for p in &payloads {
            wire.extend_from_slice(&codec::encode_raw(p).unwrap());
        }
        let reply = within(SHORT, "reply", c.unary_raw(ECHO, wire.freeze())).await;
        assert_ended_with(&reply, "0");
        let msgs = reply.messages();
        assert_eq!(msgs.len(), payloads.len());
        for (got, want) in msgs.iter().zip(&payloads) {
            assert_eq!(&got[..], &want[..]);
        }

        // Only zero-length messages.
        let wire = Bytes::from_static(&[0; 15]);
        let reply = within(SHORT, "reply", c.unary_raw(ECHO, wire)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.body, vec![0u8; 15]);
    });
}

/// Flow control (RFC 9113 §5.2; h2 `share.rs`, `FlowControl` and
/// `SendStream::reserve_capacity`): 3 MiB through both directions in
/// messages of 1000 KiB, one at a time: the server must release receive
/// capacity (its stream window is 1 MiB) and respect the client's 64 KiB
/// window when sending.
#[test]
fn large_messages_round_trip_with_flow_control() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        let (mut msgs, mut stream) = c.open(ECHO).await;
        for i in 0..3u8 {
            let payload = pattern(1000 * 1024, i);
            send_all(&mut stream, codec::encode_raw(&payload).unwrap()).await;
            let got = within(Duration::from_secs(5), "the echo", msgs.next())
                .await
                .expect("an echoed message");
            assert!(got[..] == payload[..], "echo {i} differs");
        }
        msgs.end_ok(&mut stream).await;
    });
}

/// Flow control as above: a single 3 MiB message (under the 4 MiB default
/// limit of grpc-go's `server.go` and tonic) is echoed back intact; the
/// client keeps its side open until the echo is in.
#[test]
fn three_mib_message_is_echoed_intact() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        let (mut msgs, mut stream) = c.open(ECHO).await;
        let payload = pattern(3 * 1024 * 1024, 42);
        let wire = codec::encode_raw(&payload).unwrap();
        let recv = async {
            let got = msgs.next().await;
            (got, msgs)
        };
        let ((), (got, mut msgs)) = future::zip(send_all(&mut stream, wire), recv).await;
        let Some(got) = got else {
            let trailers = msgs.body.trailers().await;
            panic!("no echo; the call ended with {trailers:?}");
        };
        assert!(got[..] == payload[..], "echo differs");
        msgs.end_ok(&mut stream).await;
    });
}

/// A call must never end with OK after dropping one of its messages: the status
/// in the trailers (PROTOCOL-HTTP2.md, "Responses") speaks for every message
/// before it. A unary-style handler sends a 2 MiB echo and finishes with OK in
/// the same callback; the echo overflows the 1 MiB per-call send queue, so the
/// transport drops it and asks the core to end the call with
/// RESOURCE_EXHAUSTED, but the core has already finished the call: the
/// handler's OK goes out after nothing.
#[test]
fn a_call_never_ends_ok_with_a_dropped_message() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        for i in 0..3u8 {
            let (resp, mut stream) = c.call(ECHO_UNARY).await;
            let payload = pattern(2 * 1024 * 1024, i);
            let wire = codec::encode_raw(&payload).unwrap();
            let send = async {
                send_all(&mut stream, wire).await;
                let _ = stream.send_data(Bytes::new(), true);
            };
            let ((), reply) = future::zip(send, read_reply(resp)).await;
            if reply.grpc_status() == Some("0") {
                let msgs = reply.messages();
                assert_eq!(msgs.len(), 1, "call {i} ended OK without its echo");
                assert!(msgs[0][..] == payload[..], "echo differs");
            }
        }
    });
}

/// Requests larger than a connection's share of the core's queue (64 KiB)
/// are read in turns: the connection stops reading while its share is
/// spent and must start again as soon as the core has taken some of it,
/// even when the core says so while the connection's task is running. A
/// lost wake-up there left about one call in ten of this size (gRPC's
/// interop `large_unary`: 271,828 bytes) waiting for its deadline; many
/// calls, each on a new connection as an interop client makes them, show it.
#[test]
fn large_requests_never_wait_for_a_lost_wake_up() {
    let addr = echo_server();
    run(120, async {
        let payload = pattern(271_828, 7);
        let wire = codec::encode_raw(&payload).unwrap();
        for i in 0..150 {
            let c = Client::connect(addr).await;
            let reply = within(
                Duration::from_secs(5),
                "a large unary echo",
                c.unary_raw(ECHO_UNARY, wire.clone()),
            )
            .await;
            assert_eq!(reply.grpc_status(), Some("0"), "call {i}");
            let echoed = reply.messages();
            assert!(
                echoed.len() == 1 && echoed[0][..] == payload[..],
                "call {i}"
            );
        }
    });
}
