//! What the Redis engine's threads tell each other (its own file, so that
//! neither thread's file imports the other's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_proto::User;

/// What the control thread is asked to do (by the chat's side, and by the
/// subscriber).
pub enum Control {
    /// The chat opened a room here.
    Open(String),
    /// The chat let a room go.
    Close(String),
    /// A user arrived in a room here (true) or left it here (false).
    Presence(String, User, bool),
    /// The subscriber follows the room's channel: read where it stands now,
    /// then run the presence changes that waited for it.
    Following(String),
    /// The subscriber connected again and subscribed every room again:
    /// catch up on all of them.
    Reconnected,
}

/// What the subscriber is asked to do.
pub enum Sub {
    /// Follow a room.
    Follow(String),
    /// Stop following it.
    Drop(String),
}

/// The highest seq seen published per room, shared with the control
/// thread's checks.
pub type Seen = Arc<Mutex<HashMap<String, u64>>>;
