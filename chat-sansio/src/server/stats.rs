//! What the server counts per method, for the operator's metrics: plain
//! integers the driver reads ([`Server::call_stats`](super::Server::call_stats)),
//! nothing more.

use crate::status::Code;

/// Most methods counted apart; calls to any other path count under
/// [`OTHER`] (a client may call any path, and each must not cost memory).
pub const MAX_METHODS: usize = 64;

/// The name calls to uncounted paths are counted under.
pub const OTHER: &str = "other";

/// How many gRPC status codes there are (OK = 0 to UNAUTHENTICATED = 16).
const CODES: usize = 17;

/// One method's calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodStats {
    /// The path (`/ChatService/JoinChat`), or [`OTHER`].
    pub path: String,
    /// Calls opened (refused at once included).
    pub started: u64,
    /// Calls ended with each status code (by number).
    pub ended: [u64; CODES],
    /// Calls that ended without a status: reset by the client, or their
    /// connection closed.
    pub cancelled: u64,
}

impl MethodStats {
    /// Calls open now.
    pub fn open(&self) -> u64 {
        let ended: u64 = self.ended.iter().sum();
        self.started.saturating_sub(ended + self.cancelled)
    }

    /// Calls ended with `code`.
    pub fn ended_with(&self, code: Code) -> u64 {
        self.ended.get(code as usize).copied().unwrap_or(0)
    }
}

/// Every method's calls, and the bytes of their messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    methods: Vec<MethodStats>,
    /// Request bytes (DATA, as framed) received on calls.
    pub bytes_in: u64,
    /// Response message bytes queued (as framed; a broadcast counted once,
    /// however many receive it).
    pub bytes_out: u64,
    /// Calls ended as slow consumers (their client stopped reading).
    pub slow_consumers: u64,
    /// Counts of changes, so a driver copies the figures only when they
    /// moved.
    pub changes: u64,
}

impl CallStats {
    /// The methods counted, in the order first seen.
    pub fn methods(&self) -> &[MethodStats] {
        &self.methods
    }

    /// The index of `path`'s counters, made if there is room.
    pub(crate) fn index(&mut self, path: &str) -> u16 {
        if let Some(i) = self.methods.iter().position(|m| m.path == path) {
            return i as u16;
        }
        let name = if self.methods.len() < MAX_METHODS - 1 {
            path
        } else {
            OTHER
        };
        if let Some(i) = self.methods.iter().position(|m| m.path == name) {
            return i as u16;
        }
        self.methods.push(MethodStats {
            path: name.to_owned(),
            started: 0,
            ended: [0; CODES],
            cancelled: 0,
        });
        (self.methods.len() - 1) as u16
    }

    pub(crate) fn started(&mut self, i: u16) {
        self.changes += 1;
        if let Some(m) = self.methods.get_mut(usize::from(i)) {
            m.started += 1;
        }
    }

    pub(crate) fn ended(&mut self, i: u16, code: Code) {
        self.changes += 1;
        if let Some(m) = self.methods.get_mut(usize::from(i)) {
            if let Some(n) = m.ended.get_mut(code as usize) {
                *n += 1;
            }
        }
    }

    pub(crate) fn cancelled(&mut self, i: u16) {
        self.changes += 1;
        if let Some(m) = self.methods.get_mut(usize::from(i)) {
            m.cancelled += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_past_the_bound_count_as_other() {
        let mut s = CallStats::default();
        for i in 0..100 {
            let m = s.index(&format!("/svc/M{i}"));
            s.started(m);
        }
        assert_eq!(s.methods().len(), MAX_METHODS);
        let other = s.methods().iter().find(|m| m.path == OTHER).unwrap();
        assert_eq!(other.started, 100 - (MAX_METHODS as u64 - 1));
        let a = s.index("/svc/M0");
        s.ended(a, Code::NotFound);
        assert_eq!(s.methods()[0].ended_with(Code::NotFound), 1);
        assert_eq!(s.methods()[0].open(), 0);
    }
}
