//! What the Redis engine counts, for the operator's metrics: plain atomics
//! the threads bump and anyone may read ([`super::Redis::stats`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The engine's counters.
#[derive(Debug, Default)]
pub struct RedisStats {
    /// The subscriber's connection is up (PUB/SUB: the live fan-out).
    pub subscribed: AtomicBool,
    /// Times the subscriber connected again after losing Redis.
    pub reconnects: AtomicU64,
    /// Rooms found behind their log and caught up (after a reconnect, or by
    /// the periodic check of quiet rooms).
    pub catch_ups: AtomicU64,
    /// Dead nodes whose presence this node removed.
    pub reaped_nodes: AtomicU64,
}

impl RedisStats {
    /// Adds one to `counter`.
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the subscriber is connected.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}
