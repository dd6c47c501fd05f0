//! What the chat and its driver tell each other beyond gRPC: [`ChatEvent`]
//! out, [`ChatInput`] in. Most of it is the *engine seam*: the chat
//! proposes, an engine (a log of each room's messages, in memory, SQLite or
//! Redis) decides.
//!
//! # The engine's contract
//!
//! Each room has a log: entries numbered 1, 2, 3, ... (`seq`) in one
//! *epoch* (a number the engine changes whenever the log is not a
//! continuation of what clients may have seen: a new database, history
//! deleted). The engine, driven by the events below, must:
//!
//! - answer [`OpenRoom`](ChatEvent::OpenRoom) with
//!   [`RoomOpened`](ChatInput::RoomOpened): the epoch, the last seq, and
//!   the first seq it still holds. The chat appends nothing to a room
//!   before it is open, so the answer reflects every append it asked for;
//! - answer each [`Append`](ChatEvent::Append) with
//!   [`Committed`](ChatInput::Committed), the entry as stored (its seq and
//!   time), once it is as durable as the engine promises, or with
//!   [`AppendFailed`](ChatInput::AppendFailed). An append whose
//!   (room, sender, client message id) it already holds within its dedupe window
//!   is answered with the original entry and `duplicate: true`;
//! - answer each read ([`ReadRange`](ChatEvent::ReadRange),
//!   [`ReadHistory`](ChatEvent::ReadHistory)) with the matching input,
//!   carrying the request's token;
//! - tell the chat of entries it did not append here (another node's), with
//!   [`Entries`](ChatInput::Entries), for rooms the chat has open;
//! - when the chat shares presence with other nodes
//!   ([`ChatConfig::shared_presence`](super::ChatConfig::shared_presence)):
//!   take each [`Presence`](ChatEvent::Presence) change of this node, and
//!   tell every node's chat, once, of each user who arrives in or leaves a
//!   room anywhere ([`ChatInput::Presence`]; this node's chat before the
//!   answers to the reads it asked for after the change, so that a joiner's
//!   answer follows the notice of their arrival, as on one node), and of
//!   who is there when a room opens or the engine may have missed changes
//!   ([`ChatInput::Present`]);
//! - answer each [`Delete`](ChatEvent::Delete) with
//!   [`Deleted`](ChatInput::Deleted): the entry as a tombstone (no text,
//!   `deleted` set), kept so that reads return the tombstone from then on;
//!   a shared engine tells the other nodes ([`ChatInput::Tombstone`]), and
//!   carries bans and kicks to them ([`ChatInput::Banned`],
//!   [`ChatInput::Kicked`]);
//! - keep a room's epoch while the chat has the room open. Entries of
//!   another epoch than the one it opened with are dropped, so a log that
//!   is lost while open (a shared store wiped under a running node) is not
//!   handled yet: today's engines change a room's epoch only when they
//!   start on a new database, before any room is open.
//!
//! Answers may come late, twice, or out of turn: the chat delivers each
//! room's entries to its streams strictly in seq order, once, asks for the
//! missing range when it sees a gap, and holds later entries back until the
//! range is filled.

use chat_proto::{ChatMessage, HistoryPage, User};

use crate::status::Status;
use crate::time::Time;

/// Identifies a read the chat asked for, in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadToken(pub u64);

/// A message the chat asks the engine to append to a room's log.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    /// Identifies the request in the answer.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The sender of record.
    pub user: User,
    /// The text.
    pub text: String,
    /// The sender's id for this message, for retries ("" for none).
    pub client_msg_id: String,
    /// When the server accepted it.
    pub at: Time,
}

/// What an administrator did (`chat.admin.ChatAdmin`), for the records.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AdminAction {
    /// Ended a user's calls.
    Kick {
        /// The user.
        user_id: String,
    },
    /// Ended a user's calls and refused their next ones.
    Ban {
        /// The user.
        user_id: String,
    },
    /// Let a banned user in again.
    Unban {
        /// The user.
        user_id: String,
    },
    /// Asked for a message to become a tombstone.
    Delete {
        /// The room.
        room: String,
        /// The message's seq.
        seq: u64,
    },
}

/// What the chat tells its driver, through
/// [`Output::Event`](crate::server::Output::Event).
///
/// The variants are of three kinds, and a driver treats each kind
/// differently:
///
/// - **Log lines**: [`Message`](Self::Message) and
///   [`RateLimited`](Self::RateLimited). Print them, count them or drop
///   them; nothing waits for them.
/// - **Records**: [`Login`](Self::Login) and [`Admin`](Self::Admin). Keep
///   them (an audit trail of who tried to get in, and of what
///   administrators did; a shared engine also tells the other nodes of
///   bans, [`ChatInput::Banned`]); nothing waits for them.
/// - **Engine requests**, which the engine must answer with a [`ChatInput`]
///   (see the module docs): [`OpenRoom`](Self::OpenRoom),
///   [`Append`](Self::Append), [`ReadRange`](Self::ReadRange),
///   [`ReadHistory`](Self::ReadHistory), [`Delete`](Self::Delete), and,
///   with shared presence only, [`Presence`](Self::Presence).
/// - **Engine notices**: [`CloseRoom`](Self::CloseRoom). An engine that
///   follows rooms (a subscription per open room) may stop; others ignore
///   it.
///
/// More variants may come; a driver's `match` needs a wildcard arm (ignore
/// what it does not know).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// Log line: a message was delivered to its room's streams here.
    Message {
        /// The room.
        room: String,
        /// Its number in the room.
        seq: u64,
        /// The sender of record.
        user_id: String,
        /// The sender's name.
        username: String,
        /// The text.
        text: String,
        /// When the server accepted it.
        at: Time,
    },
    /// Log line: a post or a join was refused for being over a rate limit
    /// (see [`RateLimits`](super::RateLimits)).
    RateLimited {
        /// The connection's user (as claimed, for a guest).
        user_id: String,
        /// A join (true) or a post (false).
        join: bool,
    },
    /// Record: someone tried to log in: a JoinChatRoom request, or any call
    /// with credentials that were refused.
    Login {
        /// The user id, as authenticated or claimed ("" if unknown).
        user_id: String,
        /// The room asked for ("" if none).
        room: String,
        /// The peer address of the connection, if known.
        peer: Option<String>,
        /// `Ok` if the user got in, else why not.
        outcome: Result<(), Status>,
        /// When.
        at: Time,
    },
    /// Engine request: the state of `room`'s log, for
    /// [`ChatInput::RoomOpened`].
    OpenRoom {
        /// The room.
        room: String,
    },
    /// Engine request: append a message, for [`ChatInput::Committed`] or
    /// [`ChatInput::AppendFailed`].
    Append(Box<AppendRequest>),
    /// Engine request: the entries of `room` numbered `after + 1` to
    /// `up_to`, ascending, at most `limit` of them (and at most a page's
    /// bytes, [`crate::limits::MAX_PAGE_BYTES`]), for
    /// [`ChatInput::Range`].
    ReadRange {
        /// Identifies the read in the answer.
        token: ReadToken,
        /// The room.
        room: String,
        /// The last seq the reader has.
        after: u64,
        /// The last seq wanted.
        up_to: u64,
        /// At most this many.
        limit: u32,
    },
    /// Engine request: up to `limit` of `room`'s stored messages numbered
    /// below `before_seq` (0: the latest), oldest first, at most a page's
    /// bytes, for [`ChatInput::HistoryPage`].
    ReadHistory {
        /// Identifies the read in the answer.
        token: ReadToken,
        /// The room.
        room: String,
        /// Messages numbered below this; 0 for the latest.
        before_seq: u64,
        /// At most this many.
        limit: u32,
    },
    /// Engine request, with shared presence only: `user` arrived in `room`
    /// on this node (`present`), or is no longer there through any of this
    /// node's connections (`!present`). The engine tells every node's chat
    /// with [`ChatInput::Presence`] when that changes whether the user is
    /// in the room anywhere.
    Presence {
        /// The room.
        room: String,
        /// The user (id and name).
        user: User,
        /// Arrived (true) or left (false).
        present: bool,
    },
    /// Record: an administrator's action.
    Admin {
        /// The administrator's user id.
        by: String,
        /// What they did.
        action: AdminAction,
        /// The reason they gave ("" if none).
        reason: String,
        /// When.
        at: Time,
    },
    /// Engine request: make entry `seq` of `room` a tombstone (no text,
    /// `deleted` set; its number, sender and time stay), for
    /// [`ChatInput::Deleted`]. A shared engine tells the other nodes
    /// ([`ChatInput::Tombstone`]).
    Delete {
        /// Identifies the request in the answer.
        id: u64,
        /// The room.
        room: String,
        /// The entry.
        seq: u64,
    },
    /// Engine notice: the chat let `room` go from memory (it was idle); it
    /// asks for it again with [`OpenRoom`](Self::OpenRoom) on its next use.
    CloseRoom {
        /// The room.
        room: String,
    },
}

/// What the driver tells the chat, through
/// [`Server::handle_input`](crate::server::Server::handle_input): the
/// engine's answers, and what it learned elsewhere.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChatInput {
    /// The answer to [`ChatEvent::OpenRoom`].
    RoomOpened {
        /// The room.
        room: String,
        /// Its log's epoch.
        epoch: u64,
        /// The seq of its newest entry (0: none).
        last_seq: u64,
        /// The seq of its oldest entry still held (`last_seq + 1` if none):
        /// a reader that has less than `first_seq - 1` cannot resume.
        first_seq: u64,
    },
    /// [`ChatEvent::OpenRoom`] could not be answered: the room stays closed
    /// and what waited for it fails with UNAVAILABLE.
    OpenFailed {
        /// The room.
        room: String,
        /// Why.
        reason: String,
    },
    /// An append is stored: `entry` as delivered (room, seq, time, epoch
    /// set), `duplicate` if the engine already had it (a retry).
    Committed {
        /// The request.
        id: u64,
        /// The entry.
        entry: ChatMessage,
        /// The engine held this (sender, client message id) already.
        duplicate: bool,
    },
    /// An append could not be stored (or its outcome is unknown): its
    /// poster's call ends with UNAVAILABLE, and may retry with the same
    /// client message id.
    AppendFailed {
        /// The request.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Entries of `room` this node did not append (another node's), in any
    /// order.
    Entries {
        /// The room.
        room: String,
        /// The entries.
        entries: Vec<ChatMessage>,
    },
    /// The answer to [`ChatEvent::ReadRange`]: the entries held, ascending;
    /// `first_seq` is the oldest entry the engine still holds (entries
    /// before it were removed by retention).
    Range {
        /// The read.
        token: ReadToken,
        /// The entries, or why they could not be read.
        entries: Result<Vec<ChatMessage>, String>,
        /// The oldest entry still held.
        first_seq: u64,
    },
    /// The answer to [`ChatEvent::ReadHistory`].
    HistoryPage {
        /// The read.
        token: ReadToken,
        /// The page, or why it could not be read.
        page: Result<HistoryPage, String>,
    },
    /// With shared presence: `user` arrived in `room` (somewhere, this node
    /// included) or left it everywhere. The room's streams here get the
    /// notice; its answers list the user (or stop listing them).
    Presence {
        /// The room.
        room: String,
        /// The user.
        user: User,
        /// Arrived (true) or left (false).
        present: bool,
    },
    /// The answer to [`ChatEvent::Delete`]: the tombstone, `None` if the
    /// engine holds no such entry, or why it could not.
    Deleted {
        /// The request.
        id: u64,
        /// The tombstone as stored.
        result: Result<Option<ChatMessage>, String>,
    },
    /// Another node made an entry a tombstone: the room's streams here get
    /// it as a notice.
    Tombstone {
        /// The tombstone.
        entry: ChatMessage,
    },
    /// Another node kicked a user: their calls here end too (with the
    /// reason), and their rooms hear them leave.
    Kicked {
        /// The user.
        user_id: String,
        /// The reason the administrator gave.
        reason: String,
    },
    /// Another node banned (or unbanned) a user: their calls here end, and
    /// the next ones are refused (or let in again).
    Banned {
        /// The user.
        user_id: String,
        /// Banned (true) or let in again (false).
        banned: bool,
    },
    /// With shared presence: who is in `room` on every node, as the engine
    /// knows it now (after the room opened, or after the engine may have
    /// missed changes). Replaces the chat's view without notices.
    Present {
        /// The room.
        room: String,
        /// The users present.
        users: Vec<User>,
    },
    /// The operator changed the config (SIGHUP): this policy replaces the
    /// chat's users, tokens, rooms and admins from now on. Open JoinChat
    /// streams whose caller may no longer read their room end with
    /// PERMISSION_DENIED; sessions whose user may no longer read their room
    /// leave it (the room hears them go). Nothing else is dropped.
    Policy(Box<super::policy::Policy>),
    /// The operator changed the rate limits (SIGHUP): in force from the
    /// next post or join on. A bucket keeps what it holds, up to the new
    /// burst; a limit of 0 turns that limit off.
    Limits(super::RateLimits),
}
