//! Interop with tonic, the reference Rust gRPC stack: our client
//! (`transport_h2::Channel`, on smol) against a straightforward tonic
//! implementation of `ChatService` (on tokio).
//!
//! Every test runs under a time limit, so a hang fails instead of blocking.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_proto::chat_service_server::{ChatService, ChatServiceServer};
use chat_proto::{ChatMessage, ChatRoom, User};
use chat_sansio::Code as OurCode;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use transport_h2::{CallOptions, CallReceiver, CallSender, Channel};

use common::messages::{chat, user};
use common::time::{before, run, within, SHORT};

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
            ..ChatRoom::default()
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
    receiver: &mut CallReceiver,
) -> Result<Option<M>, chat_sansio::Status> {
    within(SHORT, "a response message", receiver.message::<M>()).await
}

/// Opens a call to `path` on `channel`, split into its halves.
async fn open(channel: &Channel, path: &str, options: CallOptions) -> (CallSender, CallReceiver) {
    channel
        .call(path, options)
        .await
        .unwrap_or_else(|e| panic!("call {path}: {e:?}"))
        .split()
}

/// The next chat message of one of our calls, which must be open.
async fn next_chat(receiver: &mut CallReceiver) -> ChatMessage {
    recv(receiver)
        .await
        .expect("an open call")
        .expect("a message")
}

const JOIN_CHAT: &str = chat_proto::paths::JOIN_CHAT;
const JOIN_CHAT_ROOM: &str = chat_proto::paths::JOIN_CHAT_ROOM;

#[test]
fn join_chat_room_on_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT_ROOM, CallOptions::default()).await;
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
fn join_chat_messages_and_half_close_on_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel_a = Channel::connect(&addr).await.expect("connect a");
        let channel_b = Channel::connect(&addr).await.expect("connect b");
        let (mut a_tx, mut a_rx) = open(&channel_a, JOIN_CHAT, CallOptions::default()).await;
        // A's own echo shows its subscription is in place.
        a_tx.send(&chat("a", "a0")).await.unwrap();
        let m = next_chat(&mut a_rx).await;
        assert_eq!(m.message, "a0");

        let (mut b_tx, mut b_rx) = open(&channel_b, JOIN_CHAT, CallOptions::default()).await;
        b_tx.send(&chat("b", "b0")).await.unwrap();
        let m = next_chat(&mut b_rx).await;
        assert_eq!(m.message, "b0", "B receives its own message");
        let m = next_chat(&mut a_rx).await;
        assert_eq!(m.message, "b0", "A receives B's message");

        // Both subscribed: interleave sends, compare orders.
        for i in 1..=5 {
            a_tx.send(&chat("a", &format!("a{i}"))).await.unwrap();
            b_tx.send(&chat("b", &format!("b{i}"))).await.unwrap();
        }
        let mut seen_a = Vec::new();
        let mut seen_b = Vec::new();
        for _ in 0..10 {
            seen_a.push(next_chat(&mut a_rx).await.message);
            seen_b.push(next_chat(&mut b_rx).await.message);
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
        let m = next_chat(&mut a_rx).await;
        assert_eq!(m.message, "bye");
        assert!(recv::<ChatMessage>(&mut a_rx).await.expect("OK").is_none());
        assert_eq!(a_rx.status().map(|s| s.code), Some(OurCode::Ok));

        let m = next_chat(&mut b_rx).await;
        assert_eq!(m.message, "bye");
        b_tx.close().unwrap();
        assert!(recv::<ChatMessage>(&mut b_rx).await.expect("OK").is_none());
    });
}

#[test]
fn permission_denied_from_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT_ROOM, CallOptions::default()).await;
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
fn error_after_one_message_from_tonic() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT_ROOM, CallOptions::default()).await;
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
fn unknown_method_on_tonic_is_unimplemented() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = open(&channel, "/ChatService/Nope", CallOptions::default()).await;
        let _ = tx.send(&user("gina", "Gina")).await;
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("unimplemented");
        assert_eq!(err.code, OurCode::Unimplemented, "{err:?}");
    });
}

#[test]
fn deadline_when_tonic_never_answers() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");

        // No response at all (the handler never returns, so no headers).
        let started = Instant::now();
        let options = CallOptions::default()
            .timeout(Duration::from_millis(300))
            .metadata("x-hang", "1");
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT_ROOM, options).await;
        tx.send(&user("hank", "Hank")).await.unwrap();
        let err = recv::<ChatRoom>(&mut rx).await.expect_err("deadline");
        assert_deadline_exceeded(&err, started);

        // Headers but no message: an idle JoinChat.
        let started = Instant::now();
        let options = CallOptions::default().timeout(Duration::from_millis(300));
        let (_tx, mut rx) = open(&channel, JOIN_CHAT, options).await;
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("deadline");
        assert_deadline_exceeded(&err, started);

        // The connection still works after both deadlines.
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT_ROOM, CallOptions::default()).await;
        tx.send(&user("ivy", "Ivy")).await.unwrap();
        tx.close().unwrap();
        let room: ChatRoom = recv(&mut rx).await.expect("ok").expect("a ChatRoom");
        assert_eq!(room.room_id, "room1");
        assert!(recv::<ChatRoom>(&mut rx).await.expect("OK").is_none());
    });
}

/// Fails unless `err` is DEADLINE_EXCEEDED, for a call with a 300 ms
/// deadline that started at `started`.
fn assert_deadline_exceeded(err: &chat_sansio::Status, started: Instant) {
    let elapsed = started.elapsed();
    assert_eq!(err.code, OurCode::DeadlineExceeded, "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
        "ended after {elapsed:?}"
    );
}

/// How the tonic server saw its next JoinChat call end, waiting up to `wait`.
async fn server_saw_end(
    ended: &mut mpsc::UnboundedReceiver<String>,
    wait: Duration,
) -> Option<String> {
    before(wait, ended.recv()).await.flatten()
}

#[test]
fn dropping_a_call_after_its_deadline_ends_it_on_the_server() {
    let (_rt, addr, mut ended) = start_tonic_server_watched();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let options = CallOptions::default().timeout(Duration::from_millis(200));
        let (tx, mut rx) = open(&channel, JOIN_CHAT, options).await;
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
fn deadline_cancels_the_call_while_the_sender_is_held() {
    let (_rt, addr, mut ended) = start_tonic_server_watched();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        // A watcher that sees everything broadcast on the tonic server.
        let (mut w_tx, mut w_rx) = open(&channel, JOIN_CHAT, CallOptions::default()).await;
        w_tx.send(&chat("w", "w0")).await.unwrap();
        let m = next_chat(&mut w_rx).await;
        assert_eq!(m.message, "w0");

        // The chat client's usual shape: the halves of one JoinChat, the
        // receiver waiting for messages, the sender kept for user input.
        let options = CallOptions::default().timeout(Duration::from_millis(200));
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT, options).await;
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
fn oversized_message_to_tonic_is_resource_exhausted() {
    let (_rt, addr) = start_tonic_server();
    run(10, async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let (mut tx, mut rx) = open(&channel, JOIN_CHAT, CallOptions::default()).await;
        // Over tonic's default 4 MiB limit on a received message. tonic
        // answers and resets our side before we finish sending; the send
        // fails, but the receiver must still get tonic's status, not a
        // transport error.
        let big = chat("big", &"x".repeat(5 * 1024 * 1024));
        let sent = tx.send(&big).await;
        let err = recv::<ChatMessage>(&mut rx).await.expect_err("too large");
        // The spec code (statuscodes.md) is RESOURCE_EXHAUSTED; tonic 0.14
        // sends OUT_OF_RANGE ("decoded message length too large"). Either is
        // tonic's own answer.
        assert!(
            matches!(err.code, OurCode::ResourceExhausted | OurCode::OutOfRange),
            "{err:?} (send: {sent:?})"
        );
        assert!(err.message.contains("too large"), "{err:?}");
    });
}
