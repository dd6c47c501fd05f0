//! Request and response headers: status, content-type, `te`, method,
//! `grpc-timeout` and `grpc-encoding` validation, Trailers-Only answers.

use bytes::Bytes;
use chat_proto::ChatMessage;
use h2::Reason;
use http::{Method, StatusCode};
use prost::Message as _;

use crate::common::messages::chat;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// PROTOCOL-HTTP2.md, "Responses": response headers are `:status 200` and
/// `content-type: application/grpc` without grpc-status; trailers carry
/// `grpc-status: 0` for OK ("Status must be sent in Trailers even if the
/// status code is OK"); zero-message calls end OK.
#[test]
fn response_headers_then_trailers_with_ok() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;

        // Response headers come at once, before any message and without the
        // client sending anything: our choice (PROTOCOL-HTTP2.md only orders
        // them before the messages), so clients see initial metadata early.
        let (resp, _idle) = c.call(JOIN_CHAT).await;
        let head = within(SHORT, "early response headers", resp).await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.headers().get("grpc-status").is_none());
        assert!(!head.body().is_end_stream());

        // One message, then half-close.
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        stream.send_data(frame(&chat("ann", "hi")), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(
            header_str(&reply.headers, "content-type"),
            Some("application/grpc")
        );
        assert!(reply.headers.get("grpc-status").is_none(), "{reply:?}");
        assert!(reply.headers.get("grpc-message").is_none(), "{reply:?}");
        let trailers = reply.trailers.as_ref().unwrap();
        assert!(trailers.get(":status").is_none());
        let msgs = reply.messages();
        assert_eq!(msgs.len(), 1);
        let echo = ChatMessage::decode(msgs[0].clone()).unwrap();
        assert_eq!(
            (echo.user, echo.message),
            (chat("ann", "hi").user, "hi".into())
        );

        // Zero messages, END_STREAM on the request HEADERS.
        let (reply, _s) = c.ask(c.request(JOIN_CHAT).body(()).unwrap(), true).await;
        check_zero_message_ok(&reply);

        // Zero messages, END_STREAM on an empty DATA frame
        // (PROTOCOL-HTTP2.md, "Requests": EOS).
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        stream.send_data(Bytes::new(), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        check_zero_message_ok(&reply);
    });
}

/// The server must not require `te: trailers`: PROTOCOL-HTTP2.md,
/// "Requests" has clients send it, but grpc-go's server does not check it
/// and proxies such as Envoy strip it (grpc/grpc#35841).
#[test]
fn te_trailers_is_not_required() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = bare_request(addr, JOIN_CHAT)
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let (resp, mut stream) = c.start(req, false).await;
        stream.send_data(frame(&chat("bo", "no te")), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.messages().len(), 1);
    });
}

/// A non-gRPC content-type gets HTTP 415 (PROTOCOL-HTTP2.md, "Requests")
/// with grpc-status 3 (INVALID_ARGUMENT, as grpc-go `http2_server.go`) and
/// a gRPC content-type, in one END_STREAM block; `application/grpc+proto`
/// and `;params` are accepted.
#[test]
fn wrong_or_missing_content_type_is_415() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = bare_request(addr, JOIN_CHAT)
            .header("content-type", "application/json")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (reply, _s) = c.ask(req, false).await;
        assert_trailers_only(&reply, 415, "3");

        let req = bare_request(addr, JOIN_CHAT)
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (reply, _s) = c.ask(req, true).await;
        assert_trailers_only(&reply, 415, "3");

        for ct in ["application/grpc+proto", "application/grpc;charset=utf-8"] {
            let req = bare_request(addr, JOIN_CHAT)
                .header("content-type", ct)
                .body(())
                .unwrap();
            let (reply, _s) = c.ask(req, true).await;
            check_zero_message_ok(&reply);
        }
    });
}

/// interop-test-descriptions.md, "unimplemented_method" and
/// "unimplemented_service": Trailers-Only,
/// `:status 200`, grpc-status 12, content-type present.
#[test]
fn unknown_method_and_service_are_unimplemented() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        for path in [
            "/ChatService/NoSuchMethod",
            "/NoSuchService/JoinChat",
            "/grpc.reflection.v1.ServerReflection/NoSuchMethod",
        ] {
            let (resp, mut stream) = c.call(path).await;
            // The client may still be sending when the answer comes.
            let _ = stream.send_data(frame(&chat("x", "y")), false);
            let reply = within(SHORT, "reply", read_reply(resp)).await;
            assert_trailers_only(&reply, 200, "12");
            // The server then resets the client's side with NO_ERROR (not
            // CANCEL, which clients would report as CANCELLED):
            // PROTOCOL-HTTP2.md, "Early Server Closure"; RFC 9113 §8.1.
            assert_eq!(reset_of(&mut stream).await, Reason::NO_ERROR);
        }
        // The connection still serves calls.
        let (reply, _s) = c.ask(c.request(JOIN_CHAT).body(()).unwrap(), true).await;
        check_zero_message_ok(&reply);
    });
}

/// GET → 405 (grpc-go `http2_server.go`); malformed `grpc-timeout` (syntax
/// in PROTOCOL-HTTP2.md, "Requests") → 400 with INTERNAL (grpc-go
/// `http_util.go`, `decodeTimeout`); `grpc-encoding: snappy` (which we do
/// not speak) → UNIMPLEMENTED with a `grpc-accept-encoding` that does not
/// list it (compression.md).
#[test]
fn bad_method_timeout_and_encoding() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;

        let req = c.request(JOIN_CHAT).method(Method::GET).body(()).unwrap();
        let (reply, _s) = c.ask(req, true).await;
        assert_trailers_only(&reply, 405, "13");

        let req = c.request_with(JOIN_CHAT, "grpc-timeout", "1x");
        let (reply, _s) = c.ask(req, false).await;
        assert_trailers_only(&reply, 400, "13");

        for bad in ["123456789m", "m", "-1S", "1.5S"] {
            let req = c.request_with(JOIN_CHAT, "grpc-timeout", bad);
            let (reply, _s) = c.ask(req, true).await;
            assert_trailers_only(&reply, 400, "13");
        }

        let req = c.request_with(JOIN_CHAT, "grpc-encoding", "snappy");
        let (reply, _s) = c.ask(req, false).await;
        assert_trailers_only(&reply, 200, "12");
        let accept = header_str(&reply.headers, "grpc-accept-encoding")
            .expect("grpc-accept-encoding in the rejection");
        assert!(
            !accept.split(',').any(|e| e.trim() == "snappy"),
            "must not list the rejected encoding: {accept}"
        );

        // `identity` is always accepted.
        let req = c.request_with(JOIN_CHAT, "grpc-encoding", "identity");
        let (reply, _s) = c.ask(req, true).await;
        check_zero_message_ok(&reply);
    });
}
