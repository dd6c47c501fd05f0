//! The identifiers the server and its driver share: calls, connections and
//! multicast groups.

/// Identifies a call for the whole life of a
/// [`Server`](crate::server::Server). Chosen by the driver; never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// Identifies a connection (an HTTP/2 session). Chosen by the driver.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// A multicast group (a chat room's readers, say). Chosen by the handler.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);
