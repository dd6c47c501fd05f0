//! Deadlines: `grpc-timeout` ends a call with DEADLINE_EXCEEDED.

use std::time::{Duration, Instant};

use crate::common::messages::chat;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// `grpc-timeout: 200m` on an idle call ends it with DEADLINE_EXCEEDED after
/// about 200 ms; `0n` ends it at once (PROTOCOL-HTTP2.md, "Requests" for
/// the Timeout syntax and "Client Cancellation" for the server tracking
/// it; grpc-js's server ends such calls with DEADLINE_EXCEEDED too).
#[test]
fn deadlines_end_calls_with_deadline_exceeded() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = c.request_with(JOIN_CHAT, "grpc-timeout", "200m");
        let started = Instant::now();
        let (resp, _stream) = c.start(req, false).await;
        let reply = within(SHORT, "DEADLINE_EXCEEDED", read_reply(resp)).await;
        let took = started.elapsed();
        assert_eq!(reply.grpc_status(), Some("4"), "{reply:?}");
        assert!(!reply.trailers_only, "headers go out at once on JoinChat");
        assert!(
            took >= Duration::from_millis(180) && took < Duration::from_millis(1500),
            "deadline fired after {took:?}"
        );

        for zero in ["0n", "0S", "0m"] {
            let req = c.request_with(JOIN_CHAT, "grpc-timeout", zero);
            let started = Instant::now();
            let (resp, _stream) = c.start(req, false).await;
            let reply = within(SHORT, "DEADLINE_EXCEEDED", read_reply(resp)).await;
            assert_eq!(reply.grpc_status(), Some("4"), "{zero}: {reply:?}");
            assert!(started.elapsed() < Duration::from_millis(500));
        }

        // A deadline that does not expire does not disturb the call.
        let req = c.request_with(JOIN_CHAT, "grpc-timeout", "5S");
        let (resp, mut stream) = c.start(req, false).await;
        stream
            .send_data(frame(&chat("d", "in time")), true)
            .unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.messages().len(), 1);
    });
}
