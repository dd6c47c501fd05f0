//! Interop with tonic, the reference Rust gRPC stack: tonic clients
//! against our server (the sans-IO chat core driven by
//! `transport_h2::Server` on smol). The tonic side runs on tokio.
//!
//! Every test runs under a time limit, so a hang fails instead of blocking.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use chat_proto::chat_service_client::ChatServiceClient;
use chat_proto::{ChatMessage, ChatRoom, User};
use chat_sansio::chat::Chat;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel as TonicChannel;
use tonic::{Code, Request, Status, Streaming};
use transport_h2::ServerConfig;

use common::messages::{chat, user};
use common::server::{start, start_with, Inline};
use common::time::{run_tokio, within, SHORT};

/// Our chat server, on a free port.
fn start_our_server() -> SocketAddr {
    start(common::chat(), ServerConfig::default())
}

async fn tonic_channel(addr: SocketAddr) -> TonicChannel {
    TonicChannel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("tonic connect")
}

async fn tonic_client(addr: SocketAddr) -> ChatServiceClient<TonicChannel> {
    ChatServiceClient::new(tonic_channel(addr).await)
}

/// Opens JoinChat on `client`, its requests taken from a queue of
/// `capacity`: returns the queue's sender (drop it to half-close) and the
/// response stream.
async fn join_chat(
    client: &mut ChatServiceClient<TonicChannel>,
    capacity: usize,
) -> (mpsc::Sender<ChatMessage>, Streaming<ChatMessage>) {
    let (tx, rx) = mpsc::channel(capacity);
    let stream = client
        .join_chat(ReceiverStream::new(rx))
        .await
        .expect("JoinChat accepted")
        .into_inner();
    (tx, stream)
}

/// JoinChatRoom on `client` as `who`, half-closed at once: the response
/// stream.
async fn join_room_once(
    client: &mut ChatServiceClient<TonicChannel>,
    who: User,
) -> Streaming<ChatRoom> {
    client
        .join_chat_room(tokio_stream::iter(vec![who]))
        .await
        .expect("JoinChatRoom accepted")
        .into_inner()
}

/// The next message of a tonic response stream, with a per-step limit.
async fn next<T>(stream: &mut Streaming<T>) -> Result<Option<T>, Status> {
    within(SHORT, "a response message", stream.message()).await
}

#[test]
fn tonic_health_checks_and_watches_through_a_graceful_shutdown() {
    use chat_proto::health::health_check_response::ServingStatus;
    use chat_proto::health::health_client::HealthClient;
    use chat_proto::health::HealthCheckRequest;
    let (addr, server) = start_with(common::chat(), ServerConfig::default(), Chat::inline());
    run_tokio(10, async {
        let channel = tonic_channel(addr).await;
        let mut health = HealthClient::new(channel.clone());
        let ask = |service: &str| HealthCheckRequest {
            service: service.into(),
        };
        let res = health.check(ask("ChatService")).await.expect("check");
        assert_eq!(res.into_inner().status(), ServingStatus::Serving);
        let err = health.check(ask("nope")).await.expect_err("unknown");
        assert_eq!(err.code(), Code::NotFound);
        let mut watch = health.watch(ask("")).await.expect("watch").into_inner();
        let first = next(&mut watch).await.expect("first").expect("status");
        assert_eq!(first.status(), ServingStatus::Serving);
        let mut chat = ChatServiceClient::new(channel.clone());
        let (tx, mut stream) = join_chat(&mut chat, 4).await;

        let began = Instant::now();
        let stopping =
            std::thread::spawn(move || smol::block_on(server.shutdown(Duration::from_millis(300))));
        let now = next(&mut watch).await.expect("update").expect("status");
        assert_eq!(now.status(), ServingStatus::NotServing);
        let late = chat.join_chat(tokio_stream::empty()).await;
        // Refused: by the core (UNAVAILABLE) if the call raced the GOAWAY,
        // else by hyper itself, which reports a call it would not start on
        // a connection going away as CANCELLED ("connection closed").
        let late = late.map(|_| ()).unwrap_err();
        assert!(
            matches!(late.code(), Code::Unavailable | Code::Cancelled),
            "{late:?}"
        );
        let end = within(SHORT, "the open stream's end", stream.message()).await;
        assert_eq!(end.unwrap_err().code(), Code::Unavailable);
        assert!(began.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            next(&mut watch).await.unwrap_err().code(),
            Code::Unavailable
        );
        drop(tx);
        let left = tokio::task::spawn_blocking(move || stopping.join().expect("shutdown"))
            .await
            .expect("join");
        assert_eq!(left, 0, "every connection closed");
        // The listener is closed.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    });
}

#[test]
fn join_chat_room_replies_room_and_ends_ok_after_half_close() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut client = tonic_client(addr).await;
        let (tx, rx) = mpsc::channel(4);
        let mut rooms = client
            .join_chat_room(ReceiverStream::new(rx))
            .await
            .expect("JoinChatRoom accepted")
            .into_inner();

        let alice = user("alice", "Alice");
        tx.send(alice.clone()).await.unwrap();
        let room = next(&mut rooms).await.expect("ok").expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        assert!(room.users.contains(&alice), "users: {:?}", room.users);

        // One chat session per connection: a second user joining on the
        // same connection takes the first one's place.
        let bob = user("bob", "Bob");
        tx.send(bob.clone()).await.unwrap();
        let room = next(&mut rooms).await.expect("ok").expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        assert!(room.users.contains(&bob) && !room.users.contains(&alice));

        drop(tx); // half-close
        assert!(next(&mut rooms).await.expect("ends with OK").is_none());
    });
}

#[test]
fn join_chat_broadcasts_to_all_in_one_order() {
    run_tokio(10, async {
        const N: usize = 20;
        let addr = start_our_server();
        let mut a = tonic_client(addr).await;
        let mut b = tonic_client(addr).await;
        // Response headers come once the server has opened the stream, so
        // both streams are registered when these return.
        let (a_tx, mut a_in) = join_chat(&mut a, N).await;
        let (b_tx, mut b_in) = join_chat(&mut b, N).await;

        // Both send at once, interleaving on the server.
        let send_a = tokio::spawn({
            let a_tx = a_tx.clone();
            async move {
                for i in 0..N {
                    a_tx.send(chat("a", &format!("a{i}"))).await.unwrap();
                }
            }
        });
        let send_b = tokio::spawn({
            let b_tx = b_tx.clone();
            async move {
                for i in 0..N {
                    b_tx.send(chat("b", &format!("b{i}"))).await.unwrap();
                }
            }
        });

        let mut seen_a = Vec::new();
        let mut seen_b = Vec::new();
        for _ in 0..2 * N {
            seen_a.push(next(&mut a_in).await.expect("ok").expect("a msg").message);
            seen_b.push(next(&mut b_in).await.expect("ok").expect("b msg").message);
        }
        send_a.await.unwrap();
        send_b.await.unwrap();

        assert_eq!(seen_a, seen_b, "both receivers see one order");
        for (prefix, sender) in [("a", "a"), ("b", "b")] {
            let own: Vec<_> = seen_a.iter().filter(|m| m.starts_with(prefix)).collect();
            let want: Vec<_> = (0..N).map(|i| format!("{sender}{i}")).collect();
            assert_eq!(
                own,
                want.iter().collect::<Vec<_>>(),
                "every message of {sender}, in its send order, sender included"
            );
        }

        drop(a_tx);
        assert!(next(&mut a_in).await.expect("a ends OK").is_none());
        drop(b_tx);
        assert!(next(&mut b_in).await.expect("b ends OK").is_none());
    });
}

#[test]
fn half_close_delivers_echo_then_ok() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut client = tonic_client(addr).await;
        // The whole request stream: one message, then the end.
        let request = tokio_stream::iter(vec![chat("carol", "hello and bye")]);
        let mut stream = client
            .join_chat(request)
            .await
            .expect("JoinChat accepted")
            .into_inner();
        let echo = next(&mut stream).await.expect("ok").expect("the echo");
        let sent = chat("carol", "hello and bye");
        assert_eq!((echo.user, echo.message), (sent.user, sent.message));
        assert_eq!((echo.room_id.as_str(), echo.seq), ("room1", 1));
        assert!(next(&mut stream).await.expect("ends with OK").is_none());
    });
}

/// Raw bytes in, raw bytes out: sends a payload as the message, as it is.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Opens `path` with tonic's generic client and sends `payloads` (then
/// half-closes); returns the first response item.
async fn raw_call(
    addr: SocketAddr,
    path: &'static str,
    payloads: Vec<Bytes>,
) -> Result<Option<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(tonic_channel(addr).await);
    grpc.ready().await.expect("channel ready");
    let response = grpc
        .streaming(
            Request::new(tokio_stream::iter(payloads)),
            PathAndQuery::from_static(path),
            RawCodec,
        )
        .await?;
    next(&mut response.into_inner()).await
}

#[test]
fn unknown_method_is_unimplemented() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut grpc = tonic::client::Grpc::new(tonic_channel(addr).await);
        grpc.ready().await.expect("channel ready");
        let err = grpc
            .unary(
                Request::new(user("dave", "Dave")),
                PathAndQuery::from_static("/ChatService/Nope"),
                tonic_prost::ProstCodec::<User, ChatRoom>::default(),
            )
            .await
            .expect_err("unknown method must fail");
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
        assert!(err.message().contains("/ChatService/Nope"), "{err:?}");

        // Unknown service, streaming call.
        let err = raw_call(addr, "/Nope/JoinChat", vec![])
            .await
            .expect_err("unknown service must fail");
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    });
}

#[test]
fn deadline_on_idle_join_chat_is_deadline_exceeded() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut client = tonic_client(addr).await;
        let (tx, rx) = mpsc::channel::<ChatMessage>(1);
        let mut request = Request::new(ReceiverStream::new(rx));
        request.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        // Our server answers headers at once, so tonic's own timer (which
        // covers only the wait for response headers, and would report
        // CANCELLED) is out of the way: the status comes from our server.
        let mut stream = client
            .join_chat(request)
            .await
            .expect("JoinChat accepted")
            .into_inner();
        let err = next(&mut stream)
            .await
            .expect_err("the idle call must end at its deadline");
        let elapsed = started.elapsed();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert_eq!(err.message(), "deadline exceeded", "from our server");
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
            "ended after {elapsed:?}"
        );
        drop(tx);
    });
}

#[test]
fn malformed_protobuf_is_internal() {
    run_tokio(10, async {
        let addr = start_our_server();
        // A `User` whose user_id (field 1, length-delimited) is not UTF-8.
        let bad_utf8 = Bytes::from_static(&[0x0a, 0x02, 0xff, 0xfe]);
        let err = raw_call(addr, "/ChatService/JoinChatRoom", vec![bad_utf8])
            .await
            .expect_err("invalid UTF-8 in a string field must fail");
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        assert!(err.message().contains("malformed User"), "{err:?}");

        // A `ChatMessage` that is not protobuf at all: field 1 claims 100
        // bytes but the message ends after 1.
        let truncated = Bytes::from_static(&[0x0a, 0x64, 0x00]);
        let err = raw_call(addr, "/ChatService/JoinChat", vec![truncated])
            .await
            .expect_err("truncated protobuf must fail");
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        assert!(err.message().contains("malformed ChatMessage"), "{err:?}");

        // The server still serves well-formed calls afterwards.
        let mut client = tonic_client(addr).await;
        let mut rooms = join_room_once(&mut client, user("erin", "Erin")).await;
        assert!(next(&mut rooms).await.expect("ok").is_some());
    });
}

#[test]
fn oversized_message_is_resource_exhausted() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut client = tonic_client(addr).await;
        let (tx, mut stream) = join_chat(&mut client, 1).await;
        // Over the server's 4 MiB limit on a request message.
        let big = chat("big", &"x".repeat(5 * 1024 * 1024));
        tx.send(big).await.unwrap();
        let err = next(&mut stream).await.expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    });
}

#[test]
fn cancelled_tonic_stream_leaves_the_others_working() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut a = tonic_client(addr).await;
        let mut b = tonic_client(addr).await;
        let (a_tx, a_in) = join_chat(&mut a, 4).await;
        let (b_tx, mut b_in) = join_chat(&mut b, 4).await;
        // A cancels (tonic resets the stream) while B stays.
        drop(a_in);
        drop(a_tx);
        for i in 0..3 {
            let text = format!("still here {i}");
            b_tx.send(chat("b", &text)).await.unwrap();
            let m = next(&mut b_in).await.expect("ok").expect("echo");
            assert_eq!(m.message, text);
        }
        drop(b_tx);
        assert!(next(&mut b_in).await.expect("ends OK").is_none());
    });
}

#[test]
fn presence_ends_when_the_tonic_connection_closes() {
    run_tokio(10, async {
        let addr = start_our_server();
        let alice = user("alice", "Alice");
        let bob = user("bob", "Bob");
        {
            let mut first = tonic_client(addr).await;
            let mut rooms = join_room_once(&mut first, alice.clone()).await;
            let room = next(&mut rooms).await.expect("ok").expect("room");
            assert!(room.users.contains(&alice));
            assert!(next(&mut rooms).await.expect("OK").is_none());
        } // Dropping the last handle closes alice's connection.

        let mut second = tonic_client(addr).await;
        let started = Instant::now();
        loop {
            let mut rooms = join_room_once(&mut second, bob.clone()).await;
            let room = next(&mut rooms).await.expect("ok").expect("room");
            assert!(room.users.contains(&bob));
            if !room.users.contains(&alice) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "alice still present 3 s after her connection closed: {:?}",
                room.users
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Compression both ways with tonic, gzip and deflate: a tonic client that
/// sends compressed (`send_compressed`) and accepts compressed
/// (`accept_compressed`) calls JoinChat and JoinChatRoom on our server set
/// to compress every reply to one call; the long message comes back in the
/// room's history, inflated by tonic (doc/compression.md).
#[test]
fn tonic_compresses_both_ways() {
    use tonic::codec::CompressionEncoding;
    run_tokio(10, async {
        let core = chat_sansio::server::ServerConfig {
            compress_min_bytes: Some(0),
            ..Default::default()
        };
        let addr = common::server::start_core(common::chat(), core, ServerConfig::default());
        for enc in [CompressionEncoding::Gzip, CompressionEncoding::Deflate] {
            let mut client = tonic_client(addr)
                .await
                .send_compressed(enc)
                .accept_compressed(enc);
            let long = format!("{enc:?} squeezes well. ").repeat(200);
            let request = tokio_stream::iter(vec![chat("poster", &long)]);
            let mut stream = client
                .join_chat(request)
                .await
                .expect("JoinChat accepted")
                .into_inner();
            // The previous round's joiner may leave the room after this
            // stream joined it: its notice comes first, and is skipped.
            let echo = loop {
                let m = next(&mut stream).await.expect("ok").expect("the echo");
                if m.presence == 0 {
                    break m;
                }
            };
            assert_eq!(echo.message, long);
            loop {
                match next(&mut stream).await.expect("ends with OK") {
                    None => break,
                    Some(m) => assert_ne!(m.presence, 0, "only notices after the echo"),
                }
            }

            let mut rooms = join_room_once(&mut client, user("joiner", "Joiner")).await;
            let room = next(&mut rooms).await.expect("ok").expect("a ChatRoom");
            assert!(
                room.history.iter().any(|m| m.message == long),
                "{enc:?}: the long message in the history"
            );
            assert!(next(&mut rooms).await.expect("ends with OK").is_none());
        }
    });
}

/// The interop `custom_metadata` case (grpc/grpc
/// `doc/interop-test-descriptions.md`) against the test Echo handler: tonic
/// reads the initial metadata from the response headers and the binary
/// trailing metadata, base64-decoded, from the trailers.
#[test]
fn tonic_reads_initial_and_binary_trailing_metadata() {
    use common::echo::{Echo, ECHO, ECHO_INITIAL, ECHO_TRAILING_BIN};
    use tonic::metadata::MetadataValue;
    run_tokio(10, async {
        let addr = start(Echo::default(), ServerConfig::default());
        let mut grpc = tonic::client::Grpc::new(tonic_channel(addr).await);
        grpc.ready().await.expect("channel ready");
        let mut request = Request::new(tokio_stream::iter(vec![Bytes::from_static(b"hi")]));
        let md = request.metadata_mut();
        md.insert(ECHO_INITIAL, "test_initial_metadata_value".parse().unwrap());
        md.insert_bin(
            ECHO_TRAILING_BIN,
            MetadataValue::from_bytes(&[0x0a, 0x0b, 0x0a, 0x0b, 0x0a, 0x0b]),
        );
        let response = grpc
            .streaming(request, PathAndQuery::from_static(ECHO), RawCodec)
            .await
            .expect("Echo accepted");
        assert_eq!(
            response.metadata().get(ECHO_INITIAL).unwrap(),
            "test_initial_metadata_value"
        );
        let mut stream = response.into_inner();
        assert_eq!(next(&mut stream).await.unwrap().unwrap(), "hi");
        assert!(next(&mut stream).await.unwrap().is_none());
        let trailers = within(SHORT, "trailers", stream.trailers())
            .await
            .expect("OK")
            .expect("trailers");
        let bin = trailers.get_bin(ECHO_TRAILING_BIN).expect("trailing -bin");
        assert_eq!(
            bin.to_bytes().unwrap().as_ref(),
            [0x0a, 0x0b, 0x0a, 0x0b, 0x0a, 0x0b]
        );
    });
}
