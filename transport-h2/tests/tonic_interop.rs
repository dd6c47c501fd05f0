//! Interop with tonic, the reference Rust gRPC stack, in both directions:
//!
//! - A: tonic clients against our server (the sans-IO chat core driven by
//!   `transport_h2::Server` on smol);
//! - B: our client (`transport_h2::Channel`) against a straightforward tonic
//!   implementation of `ChatService`.
//!
//! Every test runs under a time limit, so a hang fails instead of blocking.

mod common;

use common::messages::{chat, user};
use common::server::start_with;
use common::time::{before, run, run_tokio, within, SHORT};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use chat_proto::chat_service_client::ChatServiceClient;
use chat_proto::chat_service_server::{ChatService, ChatServiceServer};
use chat_proto::{ChatMessage, ChatRoom, User};
use chat_sansio::chat::Chat;
use chat_sansio::Code as OurCode;
use http::uri::PathAndQuery;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel as TonicChannel;
use tonic::{Code, Request, Response, Status, Streaming};
use transport_h2::{CallOptions, Channel, ServerConfig};

// ---------------------------------------------------------------------------
// A. tonic client -> our server
// ---------------------------------------------------------------------------

/// Starts our chat server on 127.0.0.1:0, accepting on a background thread;
/// the connection and core tasks run on smol's global executor.
fn start_our_server() -> SocketAddr {
    start_our_server_handle().0
}

/// [`start_our_server`], with a handle on the server.
fn start_our_server_handle() -> (SocketAddr, transport_h2::Server<Chat>) {
    start_with(Chat::default(), ServerConfig::default(), |_ev| {})
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

/// The next message of a tonic response stream, with a per-step limit.
async fn next<T>(stream: &mut Streaming<T>) -> Result<Option<T>, Status> {
    within(SHORT, "a response message", stream.message()).await
}

#[test]
fn tonic_health_checks_and_watches_through_a_graceful_shutdown() {
    use chat_proto::health::health_check_response::ServingStatus;
    use chat_proto::health::health_client::HealthClient;
    use chat_proto::health::HealthCheckRequest;
    let (addr, server) = start_our_server_handle();
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
        let (tx, rx) = mpsc::channel::<ChatMessage>(4);
        let mut chat = ChatServiceClient::new(channel.clone());
        let mut stream = chat
            .join_chat(ReceiverStream::new(rx))
            .await
            .expect("join")
            .into_inner();

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
fn a_join_chat_room_replies_room_and_ends_ok_after_half_close() {
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
fn a_join_chat_broadcasts_to_all_in_one_order() {
    run_tokio(10, async {
        const N: usize = 20;
        let addr = start_our_server();
        let mut a = tonic_client(addr).await;
        let mut b = tonic_client(addr).await;
        let (a_tx, a_rx) = mpsc::channel(N);
        let (b_tx, b_rx) = mpsc::channel(N);
        // Response headers come once the server has opened the stream, so
        // both streams are registered when these return.
        let mut a_in = a
            .join_chat(ReceiverStream::new(a_rx))
            .await
            .expect("JoinChat a")
            .into_inner();
        let mut b_in = b
            .join_chat(ReceiverStream::new(b_rx))
            .await
            .expect("JoinChat b")
            .into_inner();

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
fn a_half_close_delivers_echo_then_ok() {
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
fn a_unknown_method_is_unimplemented() {
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
fn a_deadline_on_idle_join_chat_is_deadline_exceeded() {
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
fn a_malformed_protobuf_is_internal() {
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
        let mut rooms = client
            .join_chat_room(tokio_stream::iter(vec![user("erin", "Erin")]))
            .await
            .expect("JoinChatRoom accepted")
            .into_inner();
        assert!(next(&mut rooms).await.expect("ok").is_some());
    });
}

#[test]
fn a_oversized_message_is_resource_exhausted() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut client = tonic_client(addr).await;
        let (tx, rx) = mpsc::channel(1);
        let mut stream = client
            .join_chat(ReceiverStream::new(rx))
            .await
            .expect("JoinChat accepted")
            .into_inner();
        // Over the server's 4 MiB limit on a request message.
        let big = chat("big", &"x".repeat(5 * 1024 * 1024));
        tx.send(big).await.unwrap();
        let err = next(&mut stream).await.expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    });
}

#[test]
fn a_cancelled_tonic_stream_leaves_the_others_working() {
    run_tokio(10, async {
        let addr = start_our_server();
        let mut a = tonic_client(addr).await;
        let mut b = tonic_client(addr).await;
        let (a_tx, a_rx) = mpsc::channel(4);
        let a_in = a
            .join_chat(ReceiverStream::new(a_rx))
            .await
            .expect("JoinChat a")
            .into_inner();
        let (b_tx, b_rx) = mpsc::channel(4);
        let mut b_in = b
            .join_chat(ReceiverStream::new(b_rx))
            .await
            .expect("JoinChat b")
            .into_inner();
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
fn a_presence_ends_when_the_tonic_connection_closes() {
    run_tokio(10, async {
        let addr = start_our_server();
        let alice = user("alice", "Alice");
        let bob = user("bob", "Bob");
        {
            let mut first = tonic_client(addr).await;
            let mut rooms = first
                .join_chat_room(tokio_stream::iter(vec![alice.clone()]))
                .await
                .expect("JoinChatRoom")
                .into_inner();
            let room = next(&mut rooms).await.expect("ok").expect("room");
            assert!(room.users.contains(&alice));
            assert!(next(&mut rooms).await.expect("OK").is_none());
        } // Dropping the last handle closes alice's connection.

        let mut second = tonic_client(addr).await;
        let started = Instant::now();
        loop {
            let mut rooms = second
                .join_chat_room(tokio_stream::iter(vec![bob.clone()]))
                .await
                .expect("JoinChatRoom")
                .into_inner();
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

// ---------------------------------------------------------------------------
// B. our client -> tonic server
// ---------------------------------------------------------------------------

/// The chat service the plain tonic way: a broadcast channel for JoinChat, a
/// shared user list for JoinChatRoom. Triggers for error paths:
/// - user_id "forbidden": JoinChatRoom returns PERMISSION_DENIED "nope";
/// - user_id "fail-after-one": one ChatRoom, then ABORTED "boom";
/// - metadata `x-hang`: JoinChatRoom never answers (not even headers).
#[derive(Clone)]
struct TonicChat {
    tx: broadcast::Sender<ChatMessage>,
    users: Arc<Mutex<Vec<User>>>,
    /// How each JoinChat call ended on the server: "ok" when the request
    /// stream ended cleanly (hyper also reports a client's RST_STREAM CANCEL
    /// so), "gone" when the response stream was dropped, otherwise the code
    /// of the error seen on the request stream.
    ended: mpsc::UnboundedSender<String>,
}

impl TonicChat {
    fn new(ended: mpsc::UnboundedSender<String>) -> TonicChat {
        TonicChat {
            tx: broadcast::channel(1024).0,
            users: Arc::default(),
            ended,
        }
    }

    fn join(&self, user: User) -> ChatRoom {
        let mut users = self.users.lock().unwrap();
        if !users.iter().any(|u| u.user_id == user.user_id) {
            users.push(user);
        }
        ChatRoom {
            room_id: "room1".to_owned(),
            users: users.clone(),
            history: Vec::new(),
        }
    }
}

type Out<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl ChatService for TonicChat {
    type JoinChatStream = Out<ChatMessage>;
    type JoinChatRoomStream = Out<ChatRoom>;

    async fn history(
        &self,
        _request: Request<chat_proto::HistoryRequest>,
    ) -> Result<Response<chat_proto::HistoryPage>, Status> {
        Err(Status::unimplemented("this test server keeps no history"))
    }

    async fn join_chat(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<Out<ChatMessage>>, Status> {
        let mut inbound = request.into_inner();
        let mut subscription = self.tx.subscribe();
        let tx = self.tx.clone();
        let ended = self.ended.clone();
        let (out_tx, out_rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let how = async {
                loop {
                    tokio::select! {
                        // Deliver what was broadcast (our own echo included)
                        // before looking at the client's next move.
                        biased;
                        got = subscription.recv() => match got {
                            Ok(m) => {
                                if out_tx.send(Ok(m)).await.is_err() {
                                    return "gone".to_owned();
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return "closed".to_owned(),
                        },
                        next = inbound.message() => match next {
                            Ok(Some(m)) => {
                                let _ = tx.send(m);
                            }
                            Ok(None) => break,
                            Err(status) => {
                                let how = format!("{:?}", status.code());
                                let _ = out_tx.send(Err(status)).await;
                                return how;
                            }
                        },
                    }
                }
                // The client half-closed: flush what is already here, then
                // end the response stream (status OK).
                while let Ok(m) = subscription.try_recv() {
                    if out_tx.send(Ok(m)).await.is_err() {
                        return "gone".to_owned();
                    }
                }
                "ok".to_owned()
            }
            .await;
            let _ = ended.send(how);
        });
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }

    async fn join_chat_room(
        &self,
        request: Request<Streaming<User>>,
    ) -> Result<Response<Out<ChatRoom>>, Status> {
        if request.metadata().get("x-hang").is_some() {
            std::future::pending::<()>().await;
        }
        let mut inbound = request.into_inner();
        let first = inbound.message().await?;
        if first.as_ref().is_some_and(|u| u.user_id == "forbidden") {
            return Err(Status::permission_denied("nope"));
        }
        let (out_tx, out_rx) = mpsc::channel(16);
        let chat = self.clone();
        tokio::spawn(async move {
            let mut next = first;
            while let Some(user) = next {
                let fail = user.user_id == "fail-after-one";
                if out_tx.send(Ok(chat.join(user))).await.is_err() {
                    return;
                }
                if fail {
                    let _ = out_tx.send(Err(Status::aborted("boom"))).await;
                    return;
                }
                next = match inbound.message().await {
                    Ok(n) => n,
                    Err(status) => {
                        let _ = out_tx.send(Err(status)).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

/// A tonic server for [`TonicChat`] on 127.0.0.1:0; keep the runtime alive
/// for as long as the server is needed.
fn start_tonic_server() -> (tokio::runtime::Runtime, String) {
    let (rt, addr, _ended) = start_tonic_server_watched();
    (rt, addr)
}

/// [`start_tonic_server`], with the receiver of how JoinChat calls ended.
fn start_tonic_server_watched() -> (
    tokio::runtime::Runtime,
    String,
    mpsc::UnboundedReceiver<String>,
) {
    let (ended_tx, ended_rx) = mpsc::unbounded_channel();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(ChatServiceServer::new(TonicChat::new(ended_tx)))
            .serve_with_incoming(incoming),
    );
    (rt, addr.to_string(), ended_rx)
}

/// The next message of one of our calls, with a per-step limit.
async fn recv<M: prost::Message + Default>(
    receiver: &mut transport_h2::CallReceiver,
) -> Result<Option<M>, chat_sansio::Status> {
    within(SHORT, "a response message", receiver.message::<M>()).await
}

const JOIN_CHAT: &str = chat_proto::paths::JOIN_CHAT;
const JOIN_CHAT_ROOM: &str = chat_proto::paths::JOIN_CHAT_ROOM;

#[test]
fn b_join_chat_room_on_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT_ROOM, CallOptions::default())
            .await
            .expect("call")
            .split();
        let alice = user("alice", "Alice");
        tx.send(&alice).await.unwrap();
        let room: ChatRoom = recv(&mut rx).await.expect("ok").expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        assert!(room.users.contains(&alice));

        let bob = user("bob", "Bob");
        tx.send(&bob).await.unwrap();
        let room: ChatRoom = recv(&mut rx).await.expect("ok").expect("a ChatRoom");
        assert!(room.users.contains(&alice) && room.users.contains(&bob));

        tx.close().unwrap();
        assert!(recv::<ChatRoom>(&mut rx).await.expect("OK").is_none());
        assert_eq!(rx.status().map(|s| s.code), Some(OurCode::Ok));
    });
}

#[test]
fn b_join_chat_messages_and_half_close_on_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel_a = Channel::connect(&addr).await.expect("connect a");
        let channel_b = Channel::connect(&addr).await.expect("connect b");
        let (mut a_tx, mut a_rx) = channel_a
            .call(JOIN_CHAT, CallOptions::default())
            .await
            .expect("call a")
            .split();
        // A's own echo shows its subscription is in place.
        a_tx.send(&chat("a", "a0")).await.unwrap();
        let m: ChatMessage = recv(&mut a_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "a0");

        let (mut b_tx, mut b_rx) = channel_b
            .call(JOIN_CHAT, CallOptions::default())
            .await
            .expect("call b")
            .split();
        b_tx.send(&chat("b", "b0")).await.unwrap();
        let m: ChatMessage = recv(&mut b_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "b0", "B receives its own message");
        let m: ChatMessage = recv(&mut a_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "b0", "A receives B's message");

        // Both subscribed: interleave sends, compare orders.
        for i in 1..=5 {
            a_tx.send(&chat("a", &format!("a{i}"))).await.unwrap();
            b_tx.send(&chat("b", &format!("b{i}"))).await.unwrap();
        }
        let mut seen_a = Vec::new();
        let mut seen_b = Vec::new();
        for _ in 0..10 {
            seen_a.push(
                recv::<ChatMessage>(&mut a_rx)
                    .await
                    .unwrap()
                    .unwrap()
                    .message,
            );
            seen_b.push(
                recv::<ChatMessage>(&mut b_rx)
                    .await
                    .unwrap()
                    .unwrap()
                    .message,
            );
        }
        assert_eq!(seen_a, seen_b);
        let mut sorted = seen_a.clone();
        sorted.sort();
        let mut want: Vec<_> = (1..=5)
            .flat_map(|i| [format!("a{i}"), format!("b{i}")])
            .collect();
        want.sort();
        assert_eq!(sorted, want);

        // Half-close with one last message: its echo, then OK.
        a_tx.send(&chat("a", "bye")).await.unwrap();
        a_tx.close().unwrap();
        let m: ChatMessage = recv(&mut a_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "bye");
        assert!(recv::<ChatMessage>(&mut a_rx).await.expect("OK").is_none());
        assert_eq!(a_rx.status().map(|s| s.code), Some(OurCode::Ok));

        let m: ChatMessage = recv(&mut b_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "bye");
        b_tx.close().unwrap();
        assert!(recv::<ChatMessage>(&mut b_rx).await.expect("OK").is_none());
    });
}

#[test]
fn b_permission_denied_from_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT_ROOM, CallOptions::default())
            .await
            .expect("call")
            .split();
        tx.send(&user("forbidden", "Mallory")).await.unwrap();
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("denied");
        assert_eq!(err.code, OurCode::PermissionDenied, "{err:?}");
        assert_eq!(err.message, "nope");
        // The error sticks.
        let again = recv::<ChatRoom>(&mut rx).await.expect_err("still denied");
        assert_eq!(again.code, OurCode::PermissionDenied);
    });
}

#[test]
fn b_error_after_one_message_from_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT_ROOM, CallOptions::default())
            .await
            .expect("call")
            .split();
        tx.send(&user("fail-after-one", "Frank")).await.unwrap();
        let room: ChatRoom = recv(&mut rx)
            .await
            .expect("the message comes first")
            .expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("then the error");
        assert_eq!(err.code, OurCode::Aborted, "{err:?}");
        assert_eq!(err.message, "boom");
    });
}

#[test]
fn b_unknown_method_on_tonic_is_unimplemented() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = channel
            .call("/ChatService/Nope", CallOptions::default())
            .await
            .expect("call")
            .split();
        let _ = tx.send(&user("gina", "Gina")).await;
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("unimplemented");
        assert_eq!(err.code, OurCode::Unimplemented, "{err:?}");
    });
}

#[test]
fn b_deadline_when_tonic_never_answers() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");

        // No response at all (the handler never returns, so no headers).
        let started = Instant::now();
        let options = CallOptions::default()
            .timeout(Duration::from_millis(300))
            .metadata("x-hang", "1");
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT_ROOM, options)
            .await
            .expect("call")
            .split();
        tx.send(&user("hank", "Hank")).await.unwrap();
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("deadline");
        let elapsed = started.elapsed();
        assert_eq!(err.code, OurCode::DeadlineExceeded, "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
            "ended after {elapsed:?}"
        );

        // Headers but no message: an idle JoinChat.
        let started = Instant::now();
        let options = CallOptions::default().timeout(Duration::from_millis(300));
        let (_tx, mut rx) = channel
            .call(JOIN_CHAT, options)
            .await
            .expect("call")
            .split();
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("deadline");
        let elapsed = started.elapsed();
        assert_eq!(err.code, OurCode::DeadlineExceeded, "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
            "ended after {elapsed:?}"
        );

        // The connection still works after both deadlines.
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT_ROOM, CallOptions::default())
            .await
            .expect("call")
            .split();
        tx.send(&user("ivy", "Ivy")).await.unwrap();
        tx.close().unwrap();
        let room: ChatRoom = recv(&mut rx).await.expect("ok").expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        assert!(recv::<ChatRoom>(&mut rx).await.expect("OK").is_none());
    });
}

/// How the tonic server saw its next JoinChat call end, waiting up to `wait`.
async fn server_saw_end(
    ended: &mut mpsc::UnboundedReceiver<String>,
    wait: Duration,
) -> Option<String> {
    before(wait, ended.recv()).await.flatten()
}

#[test]
fn b_dropping_a_call_after_its_deadline_ends_it_on_the_server() {
    let (_rt, addr, mut ended) = start_tonic_server_watched();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let options = CallOptions::default().timeout(Duration::from_millis(200));
        let (tx, mut rx) = channel
            .call(JOIN_CHAT, options)
            .await
            .expect("call")
            .split();
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("deadline");
        assert_eq!(err.code, OurCode::DeadlineExceeded);
        drop((tx, rx));
        // h2 resets the dropped stream with CANCEL; hyper (under tonic)
        // reports a CANCEL reset of the request body as its clean end, so
        // the server sees "ok" here.
        let how = server_saw_end(&mut ended, Duration::from_secs(2)).await;
        assert!(how.is_some(), "the server never saw the call end");
    });
}

#[test]

fn b_deadline_cancels_the_call_while_the_sender_is_held() {
    let (_rt, addr, mut ended) = start_tonic_server_watched();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        // A watcher that sees everything broadcast on the tonic server.
        let (mut w_tx, mut w_rx) = channel
            .call(JOIN_CHAT, CallOptions::default())
            .await
            .expect("watcher")
            .split();
        w_tx.send(&chat("w", "w0")).await.unwrap();
        let m: ChatMessage = recv(&mut w_rx).await.unwrap().unwrap();
        assert_eq!(m.message, "w0");

        // The chat client's usual shape: the halves of one JoinChat, the
        // receiver waiting for messages, the sender kept for user input.
        let options = CallOptions::default().timeout(Duration::from_millis(200));
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT, options)
            .await
            .expect("call")
            .split();
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("deadline");
        assert_eq!(err.code, OurCode::DeadlineExceeded);

        // The call is over for the client; gRPC clients cancel it on the
        // wire (RST_STREAM CANCEL), so the server must see it end...
        let how = server_saw_end(&mut ended, Duration::from_secs(1)).await;
        // ...and nothing sent on it afterwards may reach the server.
        let late = tx.send(&chat("late", "after the deadline")).await;
        let leaked = before(Duration::from_millis(500), async {
            recv::<ChatMessage>(&mut w_rx).await.ok().flatten()
        })
        .await
        .flatten();
        assert_eq!(
            leaked.as_ref().map(|m| m.message.as_str()),
            None,
            "a message sent after DEADLINE_EXCEEDED was delivered (send returned {late:?})"
        );
        assert!(late.is_err(), "send after the deadline returned {late:?}");
        assert!(how.is_some(), "the server never saw the call end");
    });
}

#[test]
fn b_oversized_message_to_tonic_is_resource_exhausted() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = channel
            .call(JOIN_CHAT, CallOptions::default())
            .await
            .expect("call")
            .split();
        // Over tonic's default 4 MiB limit on a received message. tonic
        // answers and resets our side before we finish sending; the send
        // fails, but the receiver must still get tonic's status, not a
        // transport error.
        let big = chat("big", &"x".repeat(5 * 1024 * 1024));
        let sent = tx.send(&big).await;
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("too large");
        // The spec code is RESOURCE_EXHAUSTED; tonic 0.14 sends OUT_OF_RANGE
        // ("decoded message length too large"). Either is tonic's own answer.
        assert!(
            matches!(err.code, OurCode::ResourceExhausted | OurCode::OutOfRange),
            "{err:?} (send: {sent:?})"
        );
        assert!(err.message.contains("too large"), "{err:?}");
    });
}
