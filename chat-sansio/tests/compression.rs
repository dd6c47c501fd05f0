//! Compressed requests (and, with the server's threshold, responses),
//! driven in memory (PROTOCOL-HTTP2.md "Compression", doc/compression.md).

mod util;

use bytes::{BufMut, BytesMut};
use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
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

/// A server compressing responses of at least 100 bytes.
fn compressing() -> util::Harness<Chat> {
    let config = ServerConfig {
        compress_min_bytes: Some(100),
        ..ServerConfig::default()
    };
    chat_with(Server::with_config(config, Chat::default()))
}

fn join_room(h: &mut util::Harness<Chat>, extra: &[(&str, &str)]) -> chat_sansio::server::CallId {
    let join = h.open_with(1, grpc_head(JOIN_CHAT_ROOM, extra));
    h.send(
        join,
        &chat_proto::User {
            user_id: "joiner".into(),
            username: "joiner".into(),
            room_id: String::new(),
        },
    );
    h.end_stream(join);
    join
}

#[test]
fn direct_responses_are_compressed_only_when_asked_and_accepted() {
    let long = "a long and repetitive chat message. ".repeat(20);
    for (accept, server_on, want) in [
        ("identity,deflate,gzip", true, Some(Encoding::Gzip)),
        ("deflate", true, Some(Encoding::Deflate)),
        ("identity", true, None),
        ("gzip", false, None),
    ] {
        let mut h = if server_on { compressing() } else { chat() };
        let poster = h.open(2, JOIN_CHAT);
        h.send(poster, &chat_message("u", &long));
        let join = join_room(&mut h, &[("grpc-accept-encoding", accept)]);
        let log = h.log(join);
        assert_eq!(log.encoding, want, "{accept} {server_on}");
        assert_eq!(log.compressed, usize::from(want.is_some()), "{accept}");
        let rooms: Vec<chat_proto::ChatRoom> = h.decoded(join);
        assert_eq!(rooms[0].history[0].message, long);
        assert_eq!(h.status(join).code, Code::Ok);
    }
}

#[test]
fn small_messages_and_multicasts_stay_plain() {
    let mut h = compressing();
    // The room is empty: its ChatRoom answer is under 100 bytes.
    let join = join_room(&mut h, &[("grpc-accept-encoding", "gzip")]);
    assert_eq!(h.log(join).encoding, Some(Encoding::Gzip));
    assert_eq!(h.log(join).compressed, 0);
    // Broadcasts are one shared frame: never compressed, however long.
    let listener = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-accept-encoding", "gzip")]));
    let long = "broadcast ".repeat(100);
    h.send(listener, &chat_message("u", &long));
    assert_eq!(message_texts(&h, listener), [long]);
    assert_eq!(h.log(listener).compressed, 0);
}
