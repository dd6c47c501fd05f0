//! Slow consumers and backpressure: a client that stops reading is ended
//! (with whole messages, or a reset mid-message after a grace period)
//! without holding anyone else back; a full core queue slows clients down
//! but loses nothing.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_proto::ChatMessage;
use chat_sansio::codec;
use h2::client;
use h2::{Reason, RecvStream};
use http::{HeaderMap, StatusCode};
use prost::Message as _;
use transport_h2::ServerConfig;

use crate::common::echo::{Echo, ECHO};
use crate::common::messages::chat;
use crate::common::server::start;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// A client whose stream windows are 1 KiB.
fn tiny_window() -> client::Builder {
    let mut tiny = client::Builder::new();
    tiny.initial_window_size(1024);
    tiny
}

/// A client with 16 MiB stream windows and a 32 MiB connection window.
fn wide_window() -> client::Builder {
    let mut wide = client::Builder::new();
    wide.initial_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(32 * 1024 * 1024);
    wide
}

/// Reads a stream's DATA without ever releasing window, then its trailers.
async fn drain_unreleased(body: &mut RecvStream) -> (Vec<u8>, Option<HeaderMap>) {
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        data.extend_from_slice(&chunk.expect("slow call's body"));
    }
    let trailers = body.trailers().await.expect("slow call's trailers");
    (data, trailers)
}

/// A JoinChat client with a 1 KiB window (RFC 9113 §5.2) that never releases
/// it, while a publisher sends 500 messages (the server's per-call queue limit
/// is 8 KiB). Checks that the publisher's own stream and a normal subscriber
/// get every message in order, and returns what the slow call received: its
/// body and its trailers.
fn slow_consumer_scenario() -> (Vec<u8>, Option<HeaderMap>) {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        ..ServerConfig::default()
    };
    let addr = start(crate::common::chat(), config);
    run(20, async {
        let slow = Client::connect_with(addr, &tiny_window()).await;
        let (resp, _slow_send) = slow.call(JOIN_CHAT).await;
        let resp = within(SHORT, "headers", resp).await.expect("headers");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut slow_body = resp.into_body();

        let b = Client::connect(addr).await;
        let (mut sub, _sb) = b.open(JOIN_CHAT).await;

        let p = Client::connect(addr).await;
        let (mut own, mut pub_stream) = p.open(JOIN_CHAT).await;

        // Lock-step, one message at a time, so the fast readers never have
        // more than one message queued (see
        // `burst_does_not_stall_a_fast_reader` for bursts).
        for i in 0..500 {
            let text = format!("{i:04} {}", "x".repeat(100));
            send_all(&mut pub_stream, frame(&chat("p", &text))).await;
            assert_eq!(
                own.next_chat().await.message,
                text,
                "publisher's own stream"
            );
            assert_eq!(sub.next_chat().await.message, text, "subscriber");
        }
        own.end_ok(&mut pub_stream).await;

        let slow_end = within(
            SHORT,
            "the slow call's end",
            drain_unreleased(&mut slow_body),
        )
        .await;
        assert!(slow_end.0.len() <= 1024, "more than the window was sent");
        slow_end
    })
}

/// The slow call ends with RESOURCE_EXHAUSTED in its trailers.
#[test]
fn slow_consumer_is_ended_with_resource_exhausted() {
    let (_body, trailers) = slow_consumer_scenario();
    let trailers = trailers.expect("a trailers block");
    assert_eq!(
        header_str(&trailers, "grpc-status"),
        Some("8"),
        "{trailers:?}"
    );
}

/// The slow call's body before its trailers must hold whole messages only;
/// otherwise clients report INTERNAL (tonic `codec/decode.rs`: "Unexpected
/// EOF decoding stream") instead of RESOURCE_EXHAUSTED.
#[test]
fn slow_consumer_trailers_follow_whole_messages() {
    let (body, trailers) = slow_consumer_scenario();
    assert!(trailers.is_some());
    let msgs = split_messages(&body);
    assert!(!msgs.is_empty());
}

/// A slow client's first message larger than any window it has given: the
/// server must split it, the client stops reading half-way, and the stall
/// finds a partly sent message. Returns the slow call's body stream, with
/// the publisher done. `grace` is the server's `stall_grace`.
async fn stalled_mid_message(addr: SocketAddr) -> RecvStream {
    let slow = Client::connect_with(addr, &tiny_window()).await;
    let (resp, slow_send) = slow.call(JOIN_CHAT).await;
    // Keep the connection and the request side open after we return.
    std::mem::forget(slow_send);
    std::mem::forget(slow);
    let resp = within(SHORT, "headers", resp).await.expect("headers");
    let slow_body = resp.into_body();
    let p = Client::connect(addr).await;
    let (mut own, mut pub_stream) = p.open(JOIN_CHAT).await;
    let big = "B".repeat(3000);
    send_all(&mut pub_stream, frame(&chat("p", &big))).await;
    assert_eq!(own.next_chat().await.message, big);
    for i in 0..120 {
        let text = format!("{i:04} {}", "x".repeat(100));
        send_all(&mut pub_stream, frame(&chat("p", &text))).await;
        assert_eq!(own.next_chat().await.message, text);
    }
    slow_body
}

/// Cut off in the middle of a message and never reading again, a slow
/// client's stream is reset with CANCEL once the grace period is over
/// (trailers after half a message would read as a corrupt stream;
/// PROTOCOL-HTTP2.md, "Errors": CANCEL is for an incomplete payload).
#[test]
fn slow_consumer_cut_mid_message_is_reset_after_grace() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        stall_grace: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let addr = start(crate::common::chat(), config);
    run(20, async {
        let mut body = stalled_mid_message(addr).await;
        let mut received = 0;
        let reason = within(SHORT, "the reset", async {
            loop {
                match body.data().await {
                    Some(Ok(chunk)) => received += chunk.len(),
                    Some(Err(e)) => return e.reason(),
                    None => return None,
                }
            }
        })
        .await;
        assert!(received <= 1024, "more than the window was sent");
        assert_eq!(reason, Some(Reason::CANCEL));
    });
}

/// The same cut, but the client reads again within the grace period: it
/// gets the rest of the message, then RESOURCE_EXHAUSTED, and no more.
#[test]
fn slow_consumer_cut_mid_message_gets_the_rest_then_resource_exhausted() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        stall_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let addr = start(crate::common::chat(), config);
    run(20, async {
        let mut body = stalled_mid_message(addr).await;
        let mut data = Vec::new();
        within(SHORT, "the rest of the body", async {
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("body");
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
        })
        .await;
        let trailers = within(SHORT, "trailers", body.trailers())
            .await
            .expect("trailers")
            .expect("a trailers block");
        assert_eq!(header_str(&trailers, "grpc-status"), Some("8"));
        let msgs = split_messages(&data);
        assert_eq!(msgs.len(), 1, "exactly the message that was in flight");
        let first = ChatMessage::decode(msgs[0].clone()).expect("whole message");
        assert_eq!(first.message, "B".repeat(3000));
    });
}

/// The slow-consumer policy (`ServerConfig::max_queued_bytes_per_call`):
/// the per-call limit is on bytes left waiting for a client's window. A
/// subscriber with a 16 MiB window that reads promptly has nothing waiting,
/// so one DATA frame carrying 20 small chat messages (about 2.4 KiB in all,
/// against a 1 KiB limit) must reach it.
#[test]
fn burst_does_not_stall_a_fast_reader() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 1024,
        ..ServerConfig::default()
    };
    let addr = start(crate::common::chat(), config);
    run(10, async {
        let wide = wide_window();
        let b = Client::connect_with(addr, &wide).await;
        let (mut sub, _sb) = b.open(JOIN_CHAT).await;

        let texts: Vec<String> = (0..20)
            .map(|i| format!("{i:02} {}", "z".repeat(100)))
            .collect();
        let mut wire = BytesMut::new();
        for t in &texts {
            wire.extend_from_slice(&frame(&chat("p", t)));
        }
        let p = Client::connect_with(addr, &wide).await;
        let reply = within(
            SHORT,
            "publisher's reply",
            p.unary_raw(JOIN_CHAT, wire.freeze()),
        )
        .await;
        for t in &texts {
            assert_eq!(&sub.next_chat().await.message, t, "subscriber");
        }
        assert_ended_with(&reply, "0");
        assert_eq!(
            reply.messages().len(),
            texts.len(),
            "publisher's own stream"
        );
    });
}

/// Backpressure: with a core queue of one event every connection runs into
/// it at once and stops reading, with DATA frames already read
/// and left in h2's stream buffers. Once the core catches up they must still
/// reach it, though the socket brings nothing new: every message on every
/// stream comes back.
#[test]
fn a_full_core_queue_slows_clients_but_loses_nothing() {
    let config = ServerConfig {
        core_queue: 1,
        ..ServerConfig::default()
    };
    let addr = start(Echo::default(), config);
    run(30, async {
        // A wide window: h2 budgets small DATA frames by it, and this client
        // gets over a thousand small echoes at once.
        let wide = wide_window();
        let c = Client::connect_with(addr, &wide).await;
        let mut calls = Vec::new();
        for s in 0..3u8 {
            let (resp, mut stream) = c.call(ECHO).await;
            let payloads: Vec<Vec<u8>> = (0..400)
                .map(|i| pattern(1 + i % 40, s.wrapping_mul(7).wrapping_add(i as u8)))
                .collect();
            for p in &payloads {
                // One DATA frame each: many frames per read of the socket.
                stream
                    .send_data(codec::encode_raw(p).unwrap(), false)
                    .unwrap();
            }
            stream.send_data(Bytes::new(), true).unwrap();
            // Read every response as it comes: the client's own h2 closes
            // a connection on which many small frames are left unread.
            calls.push((smol::spawn(read_reply(resp)), stream, payloads));
        }
        for (reply, _stream, payloads) in calls {
            let reply = within(Duration::from_secs(20), "reply", reply).await;
            assert_ended_with(&reply, "0");
            let msgs = reply.messages();
            assert_eq!(msgs.len(), payloads.len());
            for (got, want) in msgs.iter().zip(&payloads) {
                assert_eq!(&got[..], &want[..]);
            }
        }
    });
}
