//! Bad requests and limits: oversized messages and request headers, bad
//! compressed flags, truncated streams and malformed protobuf each end
//! their own call, and the connection goes on serving.

use bytes::Bytes;
use chat_sansio::codec;
use h2::Reason;
use http::StatusCode;

use crate::common::echo::ECHO;
use crate::common::messages::chat;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// A prefix announcing 5 MiB (over the 4 MiB limit) ends the call with
/// RESOURCE_EXHAUSTED (statuscodes.md: "Sent or received message was larger
/// than configured limit") at once, without waiting for the body.
#[test]
fn oversized_message_is_refused_from_its_prefix() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(ECHO).await;
        let len = 5u32 * 1024 * 1024;
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&len.to_be_bytes());
        stream.send_data(Bytes::from(prefix), false).unwrap();
        // The request stays open: the answer must not need the body.
        let reply = within(SHORT, "RESOURCE_EXHAUSTED", read_reply(resp)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.grpc_status(), Some("8"), "{reply:?}");
        assert!(reply.body.is_empty());
        // Early trailers are followed by RST_STREAM(NO_ERROR)
        // (PROTOCOL-HTTP2.md, "Early Server Closure"; RFC 9113 §8.1).
        assert_eq!(reset_of(&mut stream).await, Reason::NO_ERROR);
        drop(stream);
        // The connection still works.
        let reply = c.unary_raw(ECHO, codec::encode_raw(b"ok").unwrap()).await;
        assert_ended_with(&reply, "0");
        assert_eq!(&reply.messages()[0][..], b"ok");
    });
}

/// Compressed flag 1 without grpc-encoding, flag 2 (PROTOCOL-HTTP2.md,
/// "Requests": the flag is 0 or 1, and 0 without Message-Encoding; grpc-go
/// `rpc_util.go` `checkRecvPayload` answers INTERNAL), and a stream ending
/// inside a message or a prefix (tonic `codec/decode.rs`: "Unexpected EOF
/// decoding stream", INTERNAL) all end with INTERNAL.
#[test]
fn bad_compressed_flag_and_truncated_stream_are_internal() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let cases: [(&str, &[u8], bool); 5] = [
            (
                "compressed flag without grpc-encoding",
                &[1, 0, 0, 0, 1, 7],
                false,
            ),
            ("compressed flag, half-closed", &[1, 0, 0, 0, 1, 7], true),
            ("flag 2", &[2, 0, 0, 0, 1, 7], false),
            (
                "10-byte message cut after 3",
                &[0, 0, 0, 0, 10, 1, 2, 3],
                true,
            ),
            ("prefix cut after 3 bytes", &[0, 0, 0], true),
        ];
        for (what, wire, end) in cases {
            let (resp, mut stream) = c.call(ECHO).await;
            stream.send_data(Bytes::from_static(wire), end).unwrap();
            let reply = within(SHORT, what, read_reply(resp)).await;
            assert_eq!(reply.grpc_status(), Some("13"), "{what}: {reply:?}");
            assert!(reply.body.is_empty(), "{what}: nothing must be echoed");
        }
        // A good message before the bad one is echoed; the bad one ends it.
        let mut wire = codec::encode_raw(b"first").unwrap().to_vec();
        wire.extend_from_slice(&[2, 0, 0, 0, 0]);
        let reply = c.unary_raw(ECHO, Bytes::from(wire)).await;
        assert_ended_with(&reply, "13");
        assert_eq!(reply.messages(), vec![Bytes::from_static(b"first")]);
    });
}

/// Malformed protobuf on JoinChat ends that call with INTERNAL; other
/// callers keep chatting and never see the bad bytes.
#[test]
fn malformed_protobuf_fails_only_its_call() {
    let addr = chat_server();
    run(10, async {
        let a = Client::connect(addr).await;
        let b = Client::connect(addr).await;
        let (mut sub, _sb) = b.open(JOIN_CHAT).await;

        // Field 1, length-delimited, 5 bytes announced, 1 present.
        let garbage = codec::encode_raw(&[0x0a, 0x05, 0x01]).unwrap();
        let reply = within(SHORT, "reply", a.unary_raw(JOIN_CHAT, garbage)).await;
        assert_eq!(reply.grpc_status(), Some("13"), "{reply:?}");
        assert!(reply.messages().is_empty());

        // Same connection, a good message: everyone gets it, and it is the
        // first thing the subscriber sees.
        let reply = a.post(&chat("ann", "after")).await;
        assert_ended_with(&reply, "0");
        assert_eq!(sub.next_chat().await, chat("ann", "after"));
    });
}

/// Request headers over the 8 KiB SETTINGS_MAX_HEADER_LIST_SIZE
/// (PROTOCOL-HTTP2.md, "Requests", suggests 8 KiB; RFC 9113 §6.5.2) get
/// HTTP 431 (or a refused stream); headers under it are served; the
/// connection goes on serving.
#[test]
fn oversized_request_headers_get_431() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        // Under the limit: served.
        let req = c.request_with(JOIN_CHAT, "x-medium", &"m".repeat(6 * 1024));
        let (reply, _s) = c.ask(req, true).await;
        check_zero_message_ok(&reply);

        for size in [9 * 1024, 12 * 1024] {
            let req = c.request_with(JOIN_CHAT, "x-big", &"b".repeat(size));
            let (resp, _s) = c.start(req, true).await;
            match within(SHORT, "reply", resp).await {
                Ok(resp) => {
                    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                    assert!(resp.body().is_end_stream());
                }
                Err(e) => assert_eq!(e.reason(), Some(Reason::REFUSED_STREAM), "{e}"),
            }
            // The next call on the same connection is served.
            let reply = c.post(&chat("h", "after big headers")).await;
            assert_ended_with(&reply, "0");
            assert_eq!(reply.messages().len(), 1);
        }
    });
}
