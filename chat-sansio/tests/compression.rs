//! Compressed requests (and, with the server's threshold, responses),
//! driven in memory (PROTOCOL-HTTP2.md "Compression", doc/compression.md).

mod util;

use bytes::{BufMut, BytesMut};
use chat_proto::paths::JOIN_CHAT;
use chat_sansio::chat::Chat;
use chat_sansio::compression::{compress, Encoding};
use chat_sansio::server::{Server, ServerConfig};
use chat_sansio::Code;
use util::{chat, chat_message, chat_with, grpc_head, message_texts};

/// A length-prefixed message with the Compressed-Flag set.
fn compressed_frame(enc: Encoding, payload: &[u8]) -> Vec<u8> {
    let packed = compress(enc, payload);
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u32(packed.len() as u32);
    buf.put_slice(&packed);
    buf.to_vec()
}

#[test]
fn compressed_requests_are_inflated_per_grpc_encoding() {
    for (name, enc) in [("gzip", Encoding::Gzip), ("deflate", Encoding::Deflate)] {
        let mut h = chat();
        let listener = h.open(1, JOIN_CHAT);
        let poster = h.open_with(2, grpc_head(JOIN_CHAT, &[("grpc-encoding", name)]));
        let msg = prost::Message::encode_to_vec(&chat_message("u", "squeezed"));
        h.data(poster, &compressed_frame(enc, &msg));
        // A plain message on the same call is fine too: the flag is per
        // message (doc/compression.md).
        h.data(
            poster,
            &chat_sansio::codec::encode(&chat_message("u", "plain")).unwrap(),
        );
        assert_eq!(message_texts(&h, listener), ["squeezed", "plain"], "{name}");
        assert!(h.log(poster).end.is_empty(), "{name}");
    }
}

#[test]
fn a_small_bomb_is_resource_exhausted() {
    let config = ServerConfig {
        max_message_size: 64 * 1024,
        ..ServerConfig::default()
    };
    let mut h = chat_with(Server::with_config(config, Chat::default()));
    // 8 MiB of zeros: about 8 KiB on the wire, well under the limit.
    let bomb = compressed_frame(Encoding::Gzip, &vec![0u8; 8 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-encoding", "gzip")]));
    h.data(call, &bomb);
    assert_eq!(h.status(call).code, Code::ResourceExhausted);
    assert_eq!(h.server.decoding(), 0);
}

#[test]
fn unknown_encodings_are_unimplemented_and_bad_data_internal() {
    let mut h = chat();
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-encoding", "snappy")]));
    let (status, trailers_only, http) = &h.log(call).end[0];
    assert_eq!(
        (status.code, *trailers_only, *http),
        (Code::Unimplemented, true, 200)
    );
    // The Trailers-Only answer carries grpc-accept-encoding, listing ours
    // and not the one refused.
    let accept = chat_sansio::server::RESPONSE_HEADERS
        .iter()
        .find(|(k, _)| *k == "grpc-accept-encoding")
        .unwrap()
        .1;
    assert_eq!(accept, "gzip,deflate,identity");

    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-encoding", "gzip")]));
    h.data(call, &[1, 0, 0, 0, 3, 1, 2, 3]);
    assert_eq!(h.status(call).code, Code::Internal);

    // Flag 1 under identity stays INTERNAL (doc/compression.md case 6).
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-encoding", "identity")]));
    h.data(call, &compressed_frame(Encoding::Gzip, b"x"));
    assert_eq!(h.status(call).code, Code::Internal);
}
