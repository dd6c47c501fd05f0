//! Response metadata a handler sets: where it goes on the wire
//! (PROTOCOL-HTTP2.md "Responses": Response-Headers end with
//! `*Custom-Metadata`, so do Trailers), `-bin` values in base64, and names
//! the core refuses never reaching the peer.

use chat_sansio::codec;

use crate::common::echo::{ECHO, ECHO_FIELD, ECHO_INITIAL, ECHO_TRAILING_BIN, REFUSED};
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// The interop `custom_metadata` case (grpc/grpc
/// `doc/interop-test-descriptions.md`): the initial value comes back in the
/// response headers, after content-type; the binary one in the trailers,
/// after grpc-status, base64 without padding (PROTOCOL-HTTP2.md,
/// "Custom-Metadata").
#[test]
fn initial_metadata_in_headers_and_binary_trailing_metadata_in_trailers() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = c
            .request(ECHO)
            .header(ECHO_INITIAL, "test_initial_metadata_value")
            // 0x0a0b0a0b0a0b, padded as some clients send it.
            .header(ECHO_TRAILING_BIN, "CgsKCwoL")
            .body(())
            .unwrap();
        let (resp, mut stream) = c.start(req, false).await;
        stream
            .send_data(codec::encode_raw(b"ping").unwrap(), true)
            .unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.messages(), [&b"ping"[..]]);
        let names: Vec<_> = reply.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names.first(), Some(&"content-type"));
        assert_eq!(names.last(), Some(&ECHO_INITIAL));
        assert_eq!(
            header_str(&reply.headers, ECHO_INITIAL),
            Some("test_initial_metadata_value")
        );
        assert!(reply.headers.get(ECHO_TRAILING_BIN).is_none());
        let trailers = reply.trailers.as_ref().expect("trailers");
        let names: Vec<_> = trailers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["grpc-status", ECHO_TRAILING_BIN]);
        assert_eq!(header_str(trailers, ECHO_TRAILING_BIN), Some("CgsKCwoL"));
    });
}

/// Names the spec reserves (`grpc-` "reserved for future GRPC use",
/// PROTOCOL-HTTP2.md) or that HTTP/2 forbids (RFC 9113 section 8.2.2) are
/// refused to the handler and never sent: a `connection` field would make
/// the whole response malformed for the client.
#[test]
fn reserved_names_are_refused_to_the_handler_and_not_sent() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        for (field, name) in [
            ("grpc-status=0", "grpc-status"),
            ("grpc-custom=x", "grpc-custom"),
            ("connection=close", "connection"),
            ("te=trailers", "te"),
            ("content-type=text/plain", "content-type"),
        ] {
            let (reply, _) = c.ask(c.request_with(ECHO, ECHO_FIELD, field), true).await;
            assert!(!reply.trailers_only, "{field}");
            assert_ended_with(&reply, "0");
            let sent: Vec<_> = reply.headers.get_all(name).iter().collect();
            let protocol: &[&str] = if name == "content-type" {
                &["application/grpc"]
            } else {
                &[]
            };
            assert_eq!(sent, protocol, "{field}");
            let trailers = reply.trailers.as_ref().unwrap();
            let refused = header_str(trailers, REFUSED).expect("refusal");
            assert!(refused.contains("reserved"), "{field}: {refused}");
        }
        // A valid field goes out.
        let (reply, _) = c
            .ask(c.request_with(ECHO, ECHO_FIELD, "x-ok=yes"), true)
            .await;
        assert_eq!(header_str(&reply.headers, "x-ok"), Some("yes"));
        assert!(reply.trailers.unwrap().get(REFUSED).is_none());
    });
}
