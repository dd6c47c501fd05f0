//! Compression over HTTP/2: gzip and deflate request messages are inflated
//! per the call's `grpc-encoding`, a bomb is refused within the message
//! limit, an unknown encoding is UNIMPLEMENTED with our list; responses are
//! compressed only as the client accepts and the server is configured, and
//! our client does both sides (PROTOCOL-HTTP2.md "Compression",
//! doc/compression.md).

use bytes::{BufMut, Bytes, BytesMut};
use chat_proto::ChatMessage;
use chat_sansio::compression::{compress, inflate, Encoding};

use crate::common::echo::{Echo, ECHO};
use crate::common::messages::chat;
use crate::common::server::start_core;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// A length-prefixed message with the Compressed-Flag set.
fn compressed(enc: Encoding, payload: &[u8]) -> Bytes {
    let packed = compress(enc, payload);
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u32(packed.len() as u32);
    buf.put_slice(&packed);
    buf.freeze()
}

/// Sends `wire` as the whole request of an Echo call in `grpc-encoding:
/// name` and reads the reply.
async fn echo_in(c: &Client, name: &str, wire: Bytes) -> Reply {
    let req = c.request_with(ECHO, "grpc-encoding", name);
    let (resp, mut stream) = c.start(req, false).await;
    stream.send_data(wire, true).expect("send_data");
    within(SHORT, "reply", read_reply(resp)).await
}

#[test]
fn gzip_and_deflate_requests_are_inflated() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let body = pattern(100_000, 3);
        for (name, enc) in [("gzip", Encoding::Gzip), ("deflate", Encoding::Deflate)] {
            let mut wire = compressed(enc, &body).to_vec();
            // The flag is per message: a plain one may follow.
            wire.extend_from_slice(&chat_sansio::codec::encode_raw(b"plain").unwrap());
            let reply = echo_in(&c, name, Bytes::from(wire)).await;
            assert_ended_with(&reply, "0");
            let got = reply.messages();
            assert_eq!(got.len(), 2, "{name}");
            assert_eq!(&got[0][..], &body[..], "{name}");
            assert_eq!(&got[1][..], b"plain", "{name}");
            // Every response advertises what requests may use.
            assert_eq!(
                header_str(&reply.headers, "grpc-accept-encoding"),
                Some("gzip,deflate,identity")
            );
        }
    });
}

/// 16 MiB of zeros in about 16 KiB of gzip: refused with RESOURCE_EXHAUSTED
/// against the 4 MiB limit (GRPC-CONFORMANCE Z-2), and corrupt data in a
/// known encoding is INTERNAL (statuscodes.md).
#[test]
fn a_bomb_is_resource_exhausted_and_garbage_internal() {
    let addr = echo_server();
    let bomb = compressed(Encoding::Gzip, &vec![0u8; 16 << 20]);
    assert!(bomb.len() < 4 << 20);
    run(20, async {
        let c = Client::connect(addr).await;
        let reply = echo_in(&c, "gzip", bomb).await;
        assert_ended_with(&reply, "8");
        let reply = echo_in(&c, "deflate", Bytes::from_static(&[1, 0, 0, 0, 2, 9, 9])).await;
        assert_ended_with(&reply, "13");
        // The connection goes on serving.
        let reply = echo_in(&c, "gzip", compressed(Encoding::Gzip, b"ok")).await;
        assert_ended_with(&reply, "0");
        assert_eq!(&reply.messages()[0][..], b"ok");
    });
}

/// An encoding we do not know: UNIMPLEMENTED in a Trailers-Only answer
/// whose `grpc-accept-encoding` lists ours and not the one refused
/// (doc/compression.md).
#[test]
fn unknown_encoding_is_unimplemented_with_our_list() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = c.request_with(ECHO, "grpc-encoding", "snappy");
        let (reply, _s) = c.ask(req, false).await;
        assert_trailers_only(&reply, 200, "12");
        let accept = header_str(&reply.headers, "grpc-accept-encoding").expect("the list");
        let listed: Vec<&str> = accept.split(',').map(str::trim).collect();
        assert_eq!(listed, ["gzip", "deflate", "identity"]);
    });
}

/// An Echo server compressing responses of 100 bytes or more.
fn compressing_echo_server() -> std::net::SocketAddr {
    let core = chat_sansio::server::ServerConfig {
        compress_min_bytes: Some(100),
        ..Default::default()
    };
    start_core(Echo::default(), core, transport_h2::ServerConfig::default())
}

/// The messages of a response body, as (compressed flag, payload).
fn flagged_messages(mut body: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0] == 1, body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "a partial message");
    out
}

/// Responses are compressed only with an encoding the client lists in
/// `grpc-accept-encoding` (doc/compression.md: SHALL), with `grpc-encoding`
/// in the response headers; small ones stay plain, the flag being per
/// message (PROTOCOL-HTTP2.md "Compressed-Flag").
#[test]
fn responses_are_compressed_only_as_the_client_accepts() {
    let addr = compressing_echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let big = vec![b'x'; 5000];
        let mut wire = chat_sansio::codec::encode_raw(&big).unwrap().to_vec();
        wire.extend_from_slice(&chat_sansio::codec::encode_raw(b"small").unwrap());
        let wire = Bytes::from(wire);
        for (accept, want) in [
            (Some("identity,deflate,gzip"), Some(Encoding::Gzip)),
            (Some("deflate"), Some(Encoding::Deflate)),
            (Some("identity"), None),
            (None, None),
        ] {
            let mut req = c.request(ECHO);
            if let Some(accept) = accept {
                req = req.header("grpc-accept-encoding", accept);
            }
            let (resp, mut stream) = c.start(req.body(()).unwrap(), false).await;
            stream.send_data(wire.clone(), true).expect("send_data");
            let reply = within(SHORT, "reply", read_reply(resp)).await;
            assert_ended_with(&reply, "0");
            assert_eq!(
                header_str(&reply.headers, "grpc-encoding"),
                want.map(Encoding::name),
                "{accept:?}"
            );
            let got = flagged_messages(&reply.body);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, want.is_some(), "{accept:?}");
            let first = match want {
                Some(enc) => inflate(enc, &got[0].1, 1 << 20).unwrap().to_vec(),
                None => got[0].1.clone(),
            };
            assert_eq!(first, big);
            assert_eq!(got[1], (false, b"small".to_vec()));
        }
    });
}

/// Our client (`transport_h2::Channel`) sends compressed requests when
/// asked, and inflates compressed responses.
#[test]
fn our_client_compresses_requests_and_inflates_responses() {
    let addr = compressing_echo_server();
    run(10, async {
        let channel = transport_h2::Channel::connect(&addr.to_string())
            .await
            .expect("connect");
        for enc in Encoding::ALL {
            let options = transport_h2::CallOptions::default().compression(enc);
            let mut call = channel.call(ECHO, options).await.expect("call");
            let msg = chat("u", &"compress me ".repeat(100));
            call.sender.send(&msg).await.expect("send");
            let echo: ChatMessage = call.receiver.message().await.expect("ok").expect("echo");
            assert_eq!(echo, msg);
            call.sender.close().expect("half-close");
            assert!(call
                .receiver
                .message::<ChatMessage>()
                .await
                .expect("OK")
                .is_none());
        }
    });
}
