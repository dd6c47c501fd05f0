//! The seam between the engine's protocol and the place the log lives.

use std::time::Duration;

use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::{AdminAction, AppendRequest, ChatEvent};
use chat_sansio::{Status, Time};

/// How much a backend keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Messages kept per room (the newest).
    pub messages_per_room: u64,
    /// Messages older than this are deleted; `None` keeps them.
    pub max_age: Option<Duration>,
    /// Successful login records kept (the newest).
    pub logins: u64,
    /// Refused login attempts kept (the newest), apart from the successful
    /// ones, so that a flood of refusals cannot push those out.
    pub refused_logins: u64,
    /// How long a (sender, client message id) is remembered: a retry of a
    /// post within this window is not stored twice. It must outlast any
    /// client's retries; ten minutes is gRPC's longest default backoff
    /// many times over.
    pub dedupe_window: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            messages_per_room: 100_000,
            max_age: Some(Duration::from_secs(365 * 24 * 3600)),
            logins: 1_000_000,
            refused_logins: 1_000_000,
            dedupe_window: Duration::from_secs(15 * 60),
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

/// An administrator's action, as a backend records it.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminRecord {
    /// The administrator's user id.
    pub by: String,
    /// What they did.
    pub action: AdminAction,
    /// The reason they gave.
    pub reason: String,
    /// When.
    pub at: Time,
}

impl AdminRecord {
    /// The record of a [`ChatEvent::Admin`]; `None` for any other event.
    pub fn from_event(event: &ChatEvent) -> Option<AdminRecord> {
        match event {
            ChatEvent::Admin {
                by,
                action,
                reason,
                at,
            } => Some(AdminRecord {
                by: by.clone(),
                action: action.clone(),
                reason: reason.clone(),
                at: *at,
            }),
            _ => None,
        }
    }

    /// The action's name and its target, as records show them.
    pub fn describe(&self) -> (&'static str, String) {
        match &self.action {
            AdminAction::Kick { user_id } => ("kick", user_id.clone()),
            AdminAction::Ban { user_id } => ("ban", user_id.clone()),
            AdminAction::Unban { user_id } => ("unban", user_id.clone()),
            AdminAction::Delete { room, seq } => ("delete", format!("{room}#{seq}")),
            _ => ("other", String::new()),
        }
    }
}

/// The tombstone of `entry`: its number, room, sender, time and epoch, no
/// text, `deleted` set.
pub fn tombstone(entry: &ChatMessage) -> ChatMessage {
    ChatMessage {
        message: String::new(),
        client_msg_id: String::new(),
        deleted: true,
        ..entry.clone()
    }
}

/// Where a room's log stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomState {
    /// The log's epoch: a new value whenever the room's log starts afresh.
    pub epoch: u64,
    /// The seq of the newest entry (0: none ever).
    pub last_seq: u64,
    /// The seq of the oldest entry still held (`last_seq + 1` if none).
    pub first_seq: u64,
}

/// An append as stored: the entry (numbered, timed, in its epoch), and
/// whether it was there already (a retry).
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The entry.
    pub entry: ChatMessage,
    /// The backend held this (sender, client message id) already.
    pub duplicate: bool,
}

/// Where the chat's logs and login records live.
///
/// The engine's protocol ([`crate::Engine`] inline, or the writer thread)
/// calls it one method at a time; batching and answering the core are its
/// job, not the backend's.
///
/// Errors: `Display` is for the operator's log and may name files;
/// `source()`, when there is one, is the bare cause, and is what clients are
/// told (a failed post's or read's status), so that server paths never
/// reach them.
pub trait Backend {
    /// Why an operation failed.
    type Error: std::error::Error;

    /// Where `room`'s log stands (a room never used is empty, with a new
    /// epoch).
    fn open_room(&mut self, room: &str) -> Result<RoomState, Self::Error>;

    /// Appends `batch` and records `logins`, all or nothing: each entry is
    /// numbered after its room's last, except an append whose (sender,
    /// client message id) is held within the dedupe window, which answers
    /// with the original. Once it returns `Ok` the entries are as durable
    /// as this backend makes anything. `now` ages the dedupe keys.
    fn append(
        &mut self,
        batch: &[AppendRequest],
        logins: &[Login],
        now: Time,
    ) -> Result<Vec<Appended>, Self::Error>;

    /// The entries of `room` numbered `after + 1` to `up_to`, ascending, at
    /// most `limit` (and a page's bytes), and the oldest seq still held.
    fn range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), Self::Error>;

    /// Up to `limit` messages of `room` numbered below `before` (0: the
    /// newest), oldest first, within a page's bytes, and whether older ones
    /// exist.
    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, Self::Error>;

    /// Makes entry `seq` of `room` a tombstone ([`tombstone`]); the
    /// tombstone, or `None` if the backend holds no such entry.
    fn delete(&mut self, room: &str, seq: u64) -> Result<Option<ChatMessage>, Self::Error>;

    /// Records an administrator's action (and keeps bans, for
    /// [`Backend::bans`]). The default keeps nothing.
    fn record_admin(&mut self, _record: &AdminRecord) -> Result<(), Self::Error> {
        Ok(())
    }

    /// A user arrived in a room through this node (`present`) or left it
    /// here: whether that is news anywhere, to announce (with shared
    /// presence; a backend of one node: always).
    fn presence(&mut self, _room: &str, _user: &User, _present: bool) -> Result<bool, Self::Error> {
        Ok(true)
    }

    /// The users banned now, as the recorded actions left them.
    fn bans(&mut self) -> Result<Vec<String>, Self::Error> {
        Ok(Vec::new())
    }

    /// Deletes what the retention rules no longer keep, as of `now`, a
    /// bounded amount at a time (it runs between commits and must not hold
    /// them back for long): true if there is more to delete, and it should
    /// be called again soon. Called every few seconds at most otherwise.
    fn prune(&mut self, now: Time) -> Result<bool, Self::Error>;

    /// A second handle on the same data for reads only (ranges and pages),
    /// served on a thread of their own so that they never wait behind a
    /// commit or a retention run; `None` (the default) serves them between
    /// batches on the writer's thread.
    fn reader(&self) -> Result<Option<Self>, Self::Error>
    where
        Self: Sized,
    {
        Ok(None)
    }
}
