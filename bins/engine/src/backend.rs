//! The seam between the writer and the place the data lives.

use std::time::Duration;

use chat_proto::{ChatMessage, HistoryPage};
use chat_sansio::chat::{Chat, ChatEvent};
use chat_sansio::{Status, Time};

/// How much history a backend keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Messages kept per room (the newest).
    pub messages_per_room: u64,
    /// Messages older than this are deleted; `None` keeps them.
    pub max_age: Option<Duration>,
    /// Login records kept (the newest).
    pub logins: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            messages_per_room: 100_000,
            max_age: Some(Duration::from_secs(365 * 24 * 3600)),
            logins: 1_000_000,
        }
    }
}

/// A login attempt, as a backend records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Login {
    /// The user id, as authenticated or claimed ("" if unknown).
    pub user_id: String,
    /// The room asked for ("" if none).
    pub room: String,
    /// The peer address of the connection, if known.
    pub peer: Option<String>,
    /// `Ok` if the user got in, else why not.
    pub outcome: Result<(), Status>,
    /// When.
    pub at: Time,
}

impl Login {
    /// The record of a [`ChatEvent::Login`]; `None` for any other event.
    pub fn from_event(event: &ChatEvent) -> Option<Login> {
        match event {
            ChatEvent::Login {
                user_id,
                room,
                peer,
                outcome,
                at,
            } => Some(Login {
                user_id: user_id.clone(),
                room: room.clone(),
                peer: peer.clone(),
                outcome: outcome.clone(),
                at: *at,
            }),
            _ => None,
        }
    }
}

/// Where the chat's history and login records live.
///
/// The [`writer`](crate::writer) owns the backend on its thread and calls it
/// one method at a time; batching, epochs and answering the core are its job,
/// not the backend's.
///
/// Errors: `Display` is for the operator's log and may name files;
/// `source()`, when there is one, is the bare cause, and is what the writer
/// passes on to clients (a failed post's or read's status), so that server
/// paths never reach them.
///
/// Messages arrive already numbered by the core; [`rooms`](Backend::rooms)
/// gives each room's last number back at start-up, which is also what a
/// writer would need to number messages itself.
pub trait Backend {
    /// Why an operation failed.
    type Error: std::error::Error;

    /// Every stored room and the number of its last message (kept even when
    /// retention has deleted that message).
    fn rooms(&mut self) -> Result<Vec<(String, u64)>, Self::Error>;

    /// Up to `limit` messages of `room` numbered below `before` (0: the
    /// newest), oldest first, and whether older ones exist.
    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, Self::Error>;

    /// Stores `messages` and `logins` all or nothing. Once it returns `Ok`
    /// they survive a crash: the core delivers the messages only then.
    fn commit(&mut self, messages: &[ChatMessage], logins: &[Login]) -> Result<(), Self::Error>;

    /// Deletes what the retention rules no longer keep, as of `now`. The
    /// writer calls it every few seconds at most.
    fn prune(&mut self, now: Time) -> Result<(), Self::Error>;

    /// Gives every stored room, its numbering and its newest `recent`
    /// messages to the chat, before it serves; returns how many rooms.
    fn restore_into(&mut self, chat: &mut Chat, recent: usize) -> Result<usize, Self::Error> {
        let rooms = self.rooms()?;
        let limit = u32::try_from(recent).unwrap_or(u32::MAX);
        for (room, last_seq) in &rooms {
            let mut messages = self.page(room, 0, limit)?.messages;
            // The room's number is the authority: a message above it (a
            // database edited by hand) would share a number with the next post.
            messages.retain(|m| m.seq <= *last_seq);
            chat.restore(room, *last_seq, messages);
        }
        Ok(rooms.len())
    }
}
