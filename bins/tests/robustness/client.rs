//! Well-behaved calls through the project's own client, for attacks that
//! are about what the server accepts rather than how much: each call is
//! bounded in time.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chat_proto::{paths, ChatMessage, ChatRoom, User};
use chat_sansio::{Code, Status};
use transport_h2::{CallOptions, Channel};

use crate::bystander::within;

/// Longest wait for one call here.
const LIMIT: Duration = Duration::from_secs(5);

/// Runs `f` to completion on this thread, for at most `LIMIT`.
pub fn block<T>(f: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    smol::block_on(within(LIMIT, f)).unwrap_or_else(|| Err(timed_out()))
}

fn timed_out() -> Status {
    Status::new(
        Code::DeadlineExceeded,
        format!("no answer within the test's {LIMIT:?}"),
    )
}

/// A new connection.
pub async fn connect(addr: SocketAddr) -> Result<Channel, Status> {
    Channel::connect(&addr.to_string())
        .await
        .map_err(|e| Status::new(Code::Unavailable, format!("connect: {e}")))
}

/// A user (guest unless the call carries a token).
pub fn user(id: &str, room: &str) -> User {
    User {
        user_id: id.into(),
        username: id.into(),
        room_id: room.into(),
    }
}

/// JoinChatRoom: joins `room` as `id`, returns the answer and half-closes.
pub async fn join_room(channel: &Channel, id: &str, room: &str) -> Result<ChatRoom, Status> {
    let mut call = channel
        .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
        .await?;
    // As in `post`: if the call has ended, its status is the receiver's.
    let sent = call.sender.send(&user(id, room)).await;
    let answer = call.receiver.message::<ChatRoom>().await;
    let _ = call.sender.close();
    match answer? {
        Some(answer) => Ok(answer),
        None => {
            sent?;
            Err(Status::new(
                Code::Unknown,
                "JoinChatRoom ended without an answer",
            ))
        }
    }
}

/// JoinChat (in the `chat-room` given, else the connection's room): posts
/// `msg` and returns its echo, or the status the call ended with.
pub async fn post(
    channel: &Channel,
    pin: Option<&str>,
    msg: ChatMessage,
) -> Result<ChatMessage, Status> {
    let mut options = CallOptions::default();
    if let Some(room) = pin {
        options = options.metadata("chat-room", room);
    }
    let mut call = channel.call(paths::JOIN_CHAT, options).await?;
    // A call the server refuses at once (Trailers-Only) may have ended
    // before the message goes: its status is then the receiver's.
    let sent = call.sender.send(&msg).await;
    loop {
        match call.receiver.message::<ChatMessage>().await? {
            Some(m) if m.presence == 0 => {
                let _ = call.sender.close();
                return Ok(m);
            }
            Some(_) => {}
            None => {
                sent?;
                return Err(Status::new(Code::Ok, "JoinChat ended OK without an echo"));
            }
        }
    }
}

/// A chat message from `id`.
pub fn message(id: &str, text: &str, room: &str) -> ChatMessage {
    ChatMessage {
        user: Some(user(id, "")),
        message: text.into(),
        room_id: room.into(),
        ..ChatMessage::default()
    }
}

/// How a call came out, for findings: "accepted" or the status.
pub fn outcome<T>(r: &Result<T, Status>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(s) => format!("{:?}: {}", s.code, crate::client::clip(&s.message, 100)),
    }
}

/// `s` cut to `max` bytes (at a char boundary), for messages.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
