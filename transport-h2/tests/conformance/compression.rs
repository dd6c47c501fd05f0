//! Compressed requests over HTTP/2: gzip and deflate messages are inflated
//! per the call's `grpc-encoding`, a bomb is refused within the message
//! limit, an unknown encoding is UNIMPLEMENTED with our list
//! (PROTOCOL-HTTP2.md "Compression", doc/compression.md).

use bytes::{BufMut, Bytes, BytesMut};
use chat_sansio::compression::{compress, Encoding};

use crate::common::echo::ECHO;
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
