//! What one operation's outputs did: the record `drain` fills in and the
//! per-operation checks read.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chat_proto::{ChatMessage, HistoryPage};

use crate::chat::{AppendRequest, Chat};
use crate::server::{CallId, Server};
use crate::status::Code;

use super::state::ReadAsk;

/// The server under test.
pub type ChatServer = Server<Chat>;

/// What one operation's outputs did, for the per-operation checks.
#[derive(Default, Debug)]
pub struct Drained {
    /// Outputs, after expansion.
    pub outputs: usize,
    /// Calls that got their final output, with its code.
    pub ended: BTreeMap<CallId, Code>,
    /// Trailers-Only answers: call -> (HTTP status, code).
    pub trailers_only: BTreeMap<CallId, (u16, Code)>,
    /// Calls that got response headers.
    pub headers: BTreeSet<CallId>,
    /// Entries delivered to their rooms, as broadcast.
    pub delivered: Vec<ChatMessage>,
    /// Appends asked of the engine.
    pub appends: Vec<AppendRequest>,
    /// Rooms asked of the engine.
    pub opens: Vec<String>,
    /// Successful logins.
    pub logins: usize,
    /// Refused logins: (user id, code).
    pub refused: Vec<(String, Code)>,
    /// Reads asked of the engine.
    pub reads: Vec<ReadAsk>,
    /// History pages the engine gave in this operation.
    pub answered_pages: Vec<HistoryPage>,
    /// History pages sent.
    pub pages: Vec<(CallId, HistoryPage)>,
    /// `ChatRoom` replies sent.
    pub replies: usize,
    /// Chat messages sent to subscribed streams since the last
    /// `ChatEvent::Message`: each must belong to the broadcast that event
    /// closes.
    pub unconfirmed: Vec<(CallId, Bytes)>,
}
