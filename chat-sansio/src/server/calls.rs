//! The table of open calls: per-call protocol state, the per-connection
//! index, and the deadline queue.

use crate::idmap::IdMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::codec::Decoder;
use crate::compression::Encoding;
use crate::time::Time;

use super::ids::{CallId, ConnId, GroupId};

/// Protocol state of one open call.
#[derive(Debug)]
pub(crate) struct Call {
    pub conn: ConnId,
    pub decoder: Decoder,
    /// The request's `grpc-encoding`, for its compressed messages.
    pub encoding: Option<Encoding>,
    /// The encoding of responses, and the smallest message compressed;
    /// `None`: responses go plain.
    pub compress: Option<(Encoding, usize)>,
    /// Our preferred encoding among those the client accepts for
    /// responses, whether or not the server compresses.
    pub accepts: Option<Encoding>,
    /// The Compressed-Flag of the request message last given to the
    /// handler.
    pub last_compressed: bool,
    pub headers_sent: bool,
    pub deadline: Option<Time>,
    /// The client has half-closed; anything more from it is ignored.
    pub half_closed: bool,
    /// The multicast group the call is subscribed to.
    pub group: Option<GroupId>,
    /// Who serves the call: the handler, or the server itself.
    pub by: ServedBy,
    /// Bytes of a partial request message its decoder holds, as counted in
    /// the connection's and the server's totals.
    pub held: usize,
}

/// Who serves a call; decided once, at open, by
/// [`Services::route`](super::dispatch::Services::route).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServedBy {
    Handler,
    Health,
    Reflection,
}

/// What the core knows of a connection.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    pub peer: Option<String>,
    pub calls: Vec<CallId>,
    /// Bytes of partial request messages its calls' decoders hold.
    pub decoding: usize,
    /// The handler asked the driver to stop reading from it.
    pub paused: bool,
}

/// Open calls, indexed by id and by connection, with their deadlines.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    map: IdMap<CallId, Call>,
    conns: IdMap<ConnId, Conn>,
    /// Min-heap of deadlines; entries of calls that have ended are skipped
    /// lazily.
    deadlines: BinaryHeap<Reverse<(Time, CallId)>>,
    /// Bytes of partial request messages all decoders hold.
    decoding: usize,
}

impl Calls {
    /// Bytes of partial request messages all decoders hold.
    pub fn decoding(&self) -> usize {
        self.decoding
    }

    /// Records that `id`'s decoder now holds `buffered` bytes; returns what
    /// its connection's decoders and all decoders hold then.
    pub fn note_buffered(&mut self, id: CallId, buffered: usize) -> (usize, usize) {
        let Some(call) = self.map.get_mut(&id) else {
            return (0, self.decoding);
        };
        let before = std::mem::replace(&mut call.held, buffered);
        self.decoding = self.decoding - before + buffered;
        let conn = self.conns.entry(call.conn).or_default();
        conn.decoding = conn.decoding - before + buffered;
        (conn.decoding, self.decoding)
    }

    /// Takes a call that is leaving out of the decoding totals.
    fn release(&mut self, call: &Call) {
        self.decoding -= call.held;
        if let Some(conn) = self.conns.get_mut(&call.conn) {
            conn.decoding -= call.held;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get_mut(&mut self, call: CallId) -> Option<&mut Call> {
        self.map.get_mut(&call)
    }

    pub fn contains(&self, call: CallId) -> bool {
        self.map.contains_key(&call)
    }

    pub fn conn(&self, conn: ConnId) -> Option<&Conn> {
        self.conns.get(&conn)
    }

    pub fn conn_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&conn)
    }

    /// Registers a connection; a second registration only updates the peer.
    pub fn connect(&mut self, conn: ConnId, peer: Option<String>) {
        let entry = self.conns.entry(conn).or_default();
        if peer.is_some() {
            entry.peer = peer;
        }
    }

    /// Forgets a connection and returns the calls it still had open.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<(CallId, Call)> {
        let calls = self
            .conns
            .remove(&conn)
            .map(|c| c.calls)
            .unwrap_or_default();
        let gone: Vec<(CallId, Call)> = calls
            .into_iter()
            .filter_map(|id| Some((id, self.map.remove(&id)?)))
            .collect();
        for (_, call) in &gone {
            self.decoding -= call.held;
        }
        gone
    }

    /// Every open call, in id order.
    pub fn ids(&self) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self.map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Open calls on `conn`.
    pub fn calls_on(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.calls.len())
    }

    pub fn insert(&mut self, id: CallId, call: Call) {
        if let Some(deadline) = call.deadline {
            self.deadlines.push(Reverse((deadline, id)));
        }
        self.conns.entry(call.conn).or_default().calls.push(id);
        self.map.insert(id, call);
    }

    pub fn remove(&mut self, id: CallId) -> Option<Call> {
        let call = self.map.remove(&id)?;
        self.release(&call);
        if let Some(conn) = self.conns.get_mut(&call.conn) {
            if let Some(pos) = conn.calls.iter().position(|c| *c == id) {
                conn.calls.swap_remove(pos);
            }
        }
        Some(call)
    }

    /// Drops heap entries of calls that have ended, then returns the
    /// earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Time> {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            match self.map.get(&id) {
                Some(call) if call.deadline == Some(at) => return Some(at),
                _ => {
                    self.deadlines.pop();
                }
            }
        }
        None
    }

    /// Removes and returns one call whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Time) -> Option<CallId> {
        let at = self.next_deadline()?;
        if at > now {
            return None;
        }
        let Reverse((_, id)) = self.deadlines.pop()?;
        Some(id)
    }
}
