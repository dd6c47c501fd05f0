//! Cancellation and vanishing clients: a cancelled call or a dropped
//! connection ends only itself.

use h2::Reason;
use http::StatusCode;

use crate::common::messages::chat;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// A client's RST_STREAM(CANCEL) ends only that call (PROTOCOL-HTTP2.md,
/// "Errors" and "Client Cancellation"); 200 open+cancel cycles on one
/// connection (the pattern of Rapid Reset, CVE-2023-44487) leave it working.
#[test]
fn cancellation_ends_only_the_cancelled_call() {
    let addr = chat_server();
    run(15, async {
        let sub_conn = Client::connect(addr).await;
        let (mut sub, _sub_stream) = sub_conn.open(JOIN_CHAT).await;

        let c = Client::connect(addr).await;
        let (mut victim_msgs, mut victim) = c.open(JOIN_CHAT).await;
        // The victim is subscribed: it sees a broadcast...
        let reply = c.post(&chat("p", "one")).await;
        assert_ended_with(&reply, "0");
        assert_eq!(victim_msgs.next_chat().await, chat("p", "one"));
        assert_eq!(sub.next_chat().await, chat("p", "one"));
        // ...then cancels.
        victim.send_reset(Reason::CANCEL);
        drop(victim_msgs);

        // 200 calls opened, answered with headers, then cancelled.
        for i in 0..200 {
            let (resp, mut stream) = c.call(JOIN_CHAT).await;
            let resp = within(SHORT, "response headers", resp)
                .await
                .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            assert_eq!(resp.status(), StatusCode::OK);
            stream.send_reset(Reason::CANCEL);
        }

        // The connection still serves calls, and broadcasts still flow.
        let reply = c.post(&chat("p", "two")).await;
        assert_ended_with(&reply, "0");
        assert_eq!(
            reply.messages().len(),
            1,
            "only the sender's own call gets it"
        );
        assert_eq!(sub.next_chat().await, chat("p", "two"));
    });
}

/// A client that drops its TCP connection with open streams, one of them
/// mid-message, does not disturb anyone else (PROTOCOL-HTTP2.md,
/// "Connection failure": the server closes that connection's calls).
#[test]
fn vanishing_client_does_not_disturb_others() {
    let addr = chat_server();
    run(10, async {
        let b = Client::connect(addr).await;
        let (mut sub, _sb) = b.open(JOIN_CHAT).await;

        for round in 0..3 {
            let gone = Client::connect(addr).await;
            let mut streams = Vec::new();
            for _ in 0..3 {
                streams.push(gone.open(JOIN_CHAT).await);
            }
            // One stream is in the middle of a message.
            let half = frame(&chat("gone", "never finished"));
            streams[0].1.send_data(half.slice(..8), false).unwrap();
            // And one has received part of the broadcast traffic.
            let text = format!("before {round}");
            let reply = b.post(&chat("b", &text)).await;
            assert_ended_with(&reply, "0");
            assert_eq!(streams[1].0.next_chat().await, chat("b", &text));
            assert_eq!(sub.next_chat().await, chat("b", &text));

            // Vanish: stop the connection task (closing the socket, no
            // GOAWAY, no RST_STREAM), then drop the handles.
            let Client { send, conn, .. } = gone;
            conn.cancel().await;
            drop((send, streams));

            let text = format!("after {round}");
            let reply = b.post(&chat("b", &text)).await;
            assert_ended_with(&reply, "0");
            assert_eq!(sub.next_chat().await, chat("b", &text));
        }
        // New connections are still served.
        let c = Client::connect(addr).await;
        let reply = c.post(&chat("c", "new")).await;
        assert_ended_with(&reply, "0");
        assert_eq!(sub.next_chat().await, chat("c", "new"));
    });
}

/// interop-test-descriptions.md, "cancel_after_begin", in bulk: calls
/// cancelled right after their HEADERS,
/// before any answer, 200 of them in batches of 10 (h2 itself allows 20
/// resets of not-yet-accepted streams at once; more is Rapid Reset and gets
/// GOAWAY ENHANCE_YOUR_CALM), leave the connection and the server working.
#[test]
fn cancel_after_begin_in_batches() {
    let addr = chat_server();
    run(15, async {
        let sub_conn = Client::connect(addr).await;
        let (mut sub, _sub_stream) = sub_conn.open(JOIN_CHAT).await;
        let c = Client::connect(addr).await;
        for batch in 0..20 {
            for _ in 0..10 {
                let (_resp, mut stream) = c.call(JOIN_CHAT).await;
                stream.send_reset(Reason::CANCEL);
            }
            let text = format!("batch {batch}");
            let reply = c.post(&chat("p", &text)).await;
            assert_ended_with(&reply, "0");
            assert_eq!(reply.messages().len(), 1);
            assert_eq!(sub.next_chat().await, chat("p", &text));
        }
    });
}
