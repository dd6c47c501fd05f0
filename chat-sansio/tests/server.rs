//! The gRPC call machine, driven in memory on a simulated clock.

mod util;

use std::time::Duration;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_sansio::server::RequestHead;
use chat_sansio::Code;
use util::{chat, chat_message, grpc_head, message_texts};

#[test]
fn accepted_calls_get_headers_at_once_and_ok_trailers_on_half_close() {
    let mut h = chat();
    h.connect(1);
    let call = h.open(1, JOIN_CHAT);
    assert_eq!(h.log(call).headers, 1);
    assert!(h.log(call).end.is_empty());
    h.end_stream(call);
    let (status, trailers_only, _) = &h.log(call).end[0];
    assert_eq!(status.code, Code::Ok);
    assert!(!trailers_only);
    assert_eq!(h.server.open_calls(), 0);
}

#[test]
fn unknown_methods_are_unimplemented_trailers_only() {
    let mut h = chat();
    for path in ["/ChatService/Nope", "/other.Service/JoinChat", "/", ""] {
        let call = h.open(1, path);
        let (status, trailers_only, http) = &h.log(call).end[0];
        assert_eq!(
            (status.code, *trailers_only, *http),
            (Code::Unimplemented, true, 200)
        );
        assert_eq!(h.log(call).headers, 0);
    }
}

#[test]
fn non_grpc_requests_get_http_errors() {
    let mut h = chat();
    let mut head = grpc_head(JOIN_CHAT, &[]);
    head.headers = chat_sansio::metadata::Metadata::new();
    head.headers.push("content-type", "text/plain");
    let call = h.open_with(1, head);
    assert_eq!(h.log(call).end[0].2, 415);
    let call = h.open_with(
        1,
        RequestHead {
            method: "GET".into(),
            ..grpc_head(JOIN_CHAT, &[])
        },
    );
    assert_eq!(h.log(call).end[0].2, 405);
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-timeout", "soon")]));
    assert_eq!(h.log(call).end[0].2, 400);
    assert_eq!(h.server.open_calls(), 0);
}

#[test]
fn deadlines_end_calls_with_deadline_exceeded() {
    let mut h = chat();
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-timeout", "250m")]));
    let other = h.open(1, JOIN_CHAT);
    h.advance(Duration::from_millis(249));
    assert!(h.log(call).end.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.status(call).code, Code::DeadlineExceeded);
    // The other call is untouched and the expired one gets no broadcasts.
    h.send(other, &chat_message("u", "after"));
    assert_eq!(message_texts(&h, other), ["after"]);
    assert!(h.log(call).messages.is_empty());
    assert_eq!(h.log(call).after_end, 0);
}

#[test]
fn an_expired_timeout_is_refused_on_arrival() {
    let mut h = chat();
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-timeout", "0n")]));
    assert_eq!(h.status(call).code, Code::DeadlineExceeded);
    assert!(h.log(call).end[0].1, "Trailers-Only");
}

#[test]
fn protocol_errors_end_only_the_offending_call() {
    let mut h = chat();
    let good = h.open(1, JOIN_CHAT);
    let cases: [(&[u8], Code); 3] = [
        (&[1, 0, 0, 0, 1, 0], Code::Internal), // compressed flag without encoding
        (&[7, 0, 0, 0, 0], Code::Internal),    // invalid flag
        (&[0, 0x7f, 0, 0, 0], Code::ResourceExhausted), // 2 GiB announced
    ];
    for (bytes, code) in cases {
        let bad = h.open(2, JOIN_CHAT);
        h.data(bad, bytes);
        assert_eq!(h.status(bad).code, code);
        h.data(bad, &[0, 0, 0, 0, 0]); // late data is ignored
        assert_eq!(h.log(bad).after_end, 0);
    }
    let truncated = h.open(2, JOIN_CHAT);
    h.data(truncated, &[0, 0, 0, 0, 9, 1, 2]);
    h.end_stream(truncated);
    assert_eq!(h.status(truncated).code, Code::Internal);
    let garbage = h.open(2, JOIN_CHAT);
    h.data(
        garbage,
        &chat_sansio::codec::encode_raw(&[0xff, 0xff, 0xff]).unwrap(),
    );
    assert_eq!(h.status(garbage).code, Code::Internal);
    h.send(good, &chat_message("u", "still here"));
    assert_eq!(message_texts(&h, good), ["still here"]);
}

#[test]
fn a_message_split_over_many_chunks_is_one_message() {
    let mut h = chat();
    let call = h.open(1, JOIN_CHAT);
    let frame = chat_sansio::codec::encode(&chat_message("u", "split across chunks")).unwrap();
    for byte in frame.iter() {
        h.data(call, &[*byte]);
    }
    // And two messages in one chunk.
    let mut two = chat_sansio::codec::encode(&chat_message("u", "a"))
        .unwrap()
        .to_vec();
    two.extend_from_slice(&chat_sansio::codec::encode(&chat_message("u", "b")).unwrap());
    h.data(call, &two);
    assert_eq!(message_texts(&h, call), ["split across chunks", "a", "b"]);
}

#[test]
fn stalled_calls_end_with_resource_exhausted() {
    let mut h = chat();
    let call = h.open(1, JOIN_CHAT);
    h.server.handle_stalled(h.now, call);
    h.drain();
    assert_eq!(h.status(call).code, Code::ResourceExhausted);
}

#[test]
fn resets_and_disconnects_free_calls() {
    let mut h = chat();
    h.connect(1);
    let a = h.open(1, JOIN_CHAT);
    let b = h.open(1, JOIN_CHAT_ROOM);
    let c = h.open(2, JOIN_CHAT);
    h.reset(a);
    assert_eq!(h.server.open_calls(), 2);
    h.disconnect(1);
    assert_eq!(h.server.open_calls(), 1);
    h.send(c, &chat_message("u", "x"));
    assert!(h.log(a).end.is_empty() && h.log(b).end.is_empty());
    assert!(h.log(a).messages.is_empty());
    assert_eq!(message_texts(&h, c), ["x"]);
}

#[test]
fn too_many_calls_on_one_connection_are_refused() {
    let mut h = chat();
    let limit = chat_sansio::limits::MAX_CALLS_PER_CONNECTION;
    for _ in 0..limit {
        h.open(1, JOIN_CHAT);
    }
    let over = h.open(1, JOIN_CHAT);
    assert_eq!(h.status(over).code, Code::ResourceExhausted);
    let elsewhere = h.open(2, JOIN_CHAT);
    assert!(h.log(elsewhere).end.is_empty());
}

#[test]
fn time_never_goes_backwards() {
    let mut h = chat();
    let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("grpc-timeout", "1S")]));
    let earlier = chat_sansio::Time::from_micros(h.now.as_micros() - 10_000_000);
    h.server.handle_timeout(earlier);
    h.drain();
    assert!(h.log(call).end.is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.status(call).code, Code::DeadlineExceeded);
}

#[test]
fn partial_requests_are_bounded_per_connection_and_in_all() {
    use chat_sansio::chat::Chat;
    use chat_sansio::server::{Server, ServerConfig};
    let config = ServerConfig {
        max_decoding_per_conn: 1000,
        max_decoding: 1500,
        ..ServerConfig::default()
    };
    let mut h = util::chat_with(Server::with_config(config, Chat::default()));
    h.connect(1);
    h.connect(2);
    // A prefix announcing a 4,000-byte message, then 600 bytes of it.
    let mut partial = vec![0, 0, 0, 0x0f, 0xa0];
    partial.extend([0u8; 595]);
    let a = h.open(1, JOIN_CHAT);
    h.data(a, &partial);
    assert_eq!(h.server.decoding(), 600);
    // A second call on the same connection would hold 1,200: it ends.
    let b = h.open(1, JOIN_CHAT);
    h.data(b, &partial);
    assert_eq!(h.status(b).code, Code::ResourceExhausted);
    assert_eq!(h.server.decoding(), 600, "its bytes are let go");
    assert!(h.log(a).end.is_empty(), "the first call goes on");
    // Another connection: 1,200 in all is within 1,500; 1,800 is not.
    let c = h.open(2, JOIN_CHAT);
    h.data(c, &partial);
    assert!(h.log(c).end.is_empty());
    let d = h.open(2, JOIN_CHAT);
    h.data(d, &partial[..400]);
    assert_eq!(h.status(d).code, Code::ResourceExhausted);
    // Calls that end give their bytes back.
    h.reset(a);
    h.disconnect(2);
    assert_eq!(h.server.decoding(), 0);
}
