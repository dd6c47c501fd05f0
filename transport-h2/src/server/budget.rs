//! The process-wide memory budget: bytes that peers can make the server
//! hold, counted across every shard.
//!
//! Three things grow with what peers send or withhold:
//!
//! - **output** waiting for a client (our per-call send queues, and what h2
//!   holds for the socket), counted by each connection as it changes;
//! - **input in flight** to the core (DATA chunks in the core's queue),
//!   counted when queued and released when the core has applied them;
//! - **requests being decoded** (partial messages in the core's decoders),
//!   reported by the core task after each turn.
//!
//! Per-call and per-connection bounds keep one call or one connection
//! within its share; this bound keeps all of them together under the
//! operator's budget ([`super::ServerConfig::memory_budget`]). While it is
//! full, new calls are refused with RESOURCE_EXHAUSTED, and connections cut
//! their calls that are furthest behind first, so readers that keep up are
//! served while those that do not are let go.

use std::sync::atomic::{AtomicUsize, Ordering};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    output: AtomicUsize,
    input: AtomicUsize,
    decoding: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            output: AtomicUsize::new(0),
            input: AtomicUsize::new(0),
            decoding: AtomicUsize::new(0),
        }
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.output.load(Ordering::Relaxed)
            + self.input.load(Ordering::Relaxed)
            + self.decoding.load(Ordering::Relaxed)
    }

    /// Whether the budget is spent: new calls are refused, and calls that
    /// are behind are cut.
    pub(crate) fn is_full(&self) -> bool {
        self.held() >= self.limit
    }

    /// A connection's output went from `before` to `after` bytes.
    pub(crate) fn output_changed(&self, before: usize, after: usize) {
        if after >= before {
            self.output.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.output.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// `n` bytes were queued for the core.
    pub(crate) fn input_queued(&self, n: usize) {
        self.input.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes queued for the core were applied (or dropped).
    pub(crate) fn input_applied(&self, n: usize) {
        self.input.fetch_sub(n, Ordering::Relaxed);
    }

    /// The core's decoders hold `n` bytes.
    pub(crate) fn set_decoding(&self, n: usize) {
        self.decoding.store(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_kinds_add_up() {
        let b = Budget::new(100);
        b.output_changed(0, 40);
        b.input_queued(30);
        assert!(!b.is_full());
        b.set_decoding(30);
        assert!(b.is_full());
        b.output_changed(40, 10);
        b.input_applied(30);
        assert_eq!(b.held(), 40);
        assert!(!b.is_full());
    }
}
