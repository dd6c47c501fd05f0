//! What the chat and its driver tell each other beyond gRPC: [`ChatEvent`]
//! out, [`ChatInput`] in.

use chat_proto::{ChatMessage, HistoryPage};

use crate::server::CallId;
use crate::status::Status;
use crate::time::Time;

/// What the chat tells its driver, through
/// [`Output::Event`](crate::server::Output::Event).
///
/// The variants are of three kinds, and a driver treats each kind
/// differently:
///
/// - **Log lines**: [`Message`](Self::Message). Print it or drop it; nothing
///   waits for it.
/// - **Records**: [`Login`](Self::Login). Keep it (an audit trail of who
///   tried to get in); nothing waits for it either.
/// - **Storage requests**, durable mode only, which the driver must answer
///   with a [`ChatInput`]: [`Persist`](Self::Persist) with
///   [`Durable`](ChatInput::Durable) or [`StoreFailed`](ChatInput::StoreFailed)
///   (until then the message reaches nobody), and
///   [`ReadHistory`](Self::ReadHistory) with
///   [`HistoryPage`](ChatInput::HistoryPage) (until then the History call
///   stays open).
///
/// More variants may come; a driver's `match` needs a wildcard arm (ignore
/// what it does not know).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// Log line: a message was delivered to its room.
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
    /// Storage request (durable mode): store `message` durably, then answer
    /// [`ChatInput::Durable`] with `epoch` and an `up_to` of at least `id`.
    /// Requests must be made durable in `id` order.
    Persist {
        /// The store epoch the request belongs to.
        epoch: u64,
        /// Increasing number of the request.
        id: u64,
        /// The message as it will be delivered (room, number, time set).
        message: ChatMessage,
    },
    /// Storage request (durable mode): read a page of `room`'s stored
    /// history (up to `limit`
    /// messages numbered below `before_seq`, 0 meaning the latest) and
    /// answer [`ChatInput::HistoryPage`] for `call`.
    ReadHistory {
        /// The History call to answer.
        call: CallId,
        /// The room.
        room: String,
        /// Messages numbered below this; 0 for the latest.
        before_seq: u64,
        /// At most this many.
        limit: u32,
    },
}

/// What the driver tells the chat, through
/// [`Server::handle_input`](crate::server::Server::handle_input): the
/// answers to its storage requests.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChatInput {
    /// Every [`ChatEvent::Persist`] of `epoch` up to `up_to` is durable.
    Durable {
        /// The epoch of the requests.
        epoch: u64,
        /// The highest request id now durable.
        up_to: u64,
    },
    /// Requests of `epoch` could not be stored; none of the pending ones
    /// will be. Requests of later epochs must still be accepted.
    StoreFailed {
        /// The epoch of the failed requests.
        epoch: u64,
        /// Why, for the posters' statuses.
        reason: String,
    },
    /// The answer to a [`ChatEvent::ReadHistory`].
    HistoryPage {
        /// The History call.
        call: CallId,
        /// The page, or why it could not be read.
        page: Result<HistoryPage, String>,
    },
}
