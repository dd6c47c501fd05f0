//! The concurrent-stream limit: advertised, and counted as the peer counts
//! it.

use h2::Reason;
use http::StatusCode;
use transport_h2::ServerConfig;

use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// The server advertises SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2;
/// h2's server advertises none unless told).
#[test]
fn server_advertises_max_concurrent_streams() {
    let addr = chat_server();
    run(10, async {
        let (send, conn) = handshake(addr).await;
        let mut conn = std::pin::pin!(conn);
        // Drive the connection here until a call has completed, so the
        // server's SETTINGS have been received.
        let call = async {
            let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
            let mut send = send.ready().await.unwrap();
            let (resp, _s) = send.send_request(req, true).unwrap();
            read_reply(resp).await
        };
        let reply = driving(conn.as_mut(), call).await;
        check_zero_message_ok(&reply);
        assert_eq!(
            conn.max_concurrent_send_streams(),
            ServerConfig::default().max_concurrent_streams as usize
        );
    });
}

/// A client at the stream limit that cancels one call and opens another
/// right away (the RST_STREAM and the new HEADERS in one write) is within
/// the advertised limit (RFC 9113 §5.1.2: only open and half-closed streams
/// count), so the new call must be served.
#[test]
fn cancel_and_reopen_at_the_stream_limit() {
    let addr = chat_server();
    let limit = ServerConfig::default().max_concurrent_streams as usize;
    run(15, async {
        let (send, conn) = handshake(addr).await;
        let mut conn = std::pin::pin!(conn);
        // The connection is driven by this task only, so frames queued
        // without an await in between go out in one write.
        let test = async {
            let mut open = Vec::new();
            for _ in 0..limit {
                let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
                let mut s = send.clone().ready().await.unwrap();
                open.push(s.send_request(req, false).unwrap());
            }
            let mut calls = Vec::new();
            for (resp, stream) in open {
                let resp = within(SHORT, "headers", resp).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert!(
                    !resp.body().is_end_stream(),
                    "refused: {:?}",
                    resp.headers()
                );
                calls.push((resp.into_body(), stream));
            }
            for round in 0..20 {
                let (_body, mut stream) = calls.remove(0);
                stream.send_reset(Reason::CANCEL);
                let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
                let mut s = send.clone().ready().await.unwrap();
                let (resp, stream) = s.send_request(req, false).unwrap();
                let resp = within(SHORT, "headers", resp).await.unwrap();
                assert!(
                    !resp.body().is_end_stream(),
                    "round {round}: the new call was refused: {:?}",
                    resp.headers()
                );
                calls.push((resp.into_body(), stream));
            }
        };
        driving(conn.as_mut(), test).await;
    });
}
