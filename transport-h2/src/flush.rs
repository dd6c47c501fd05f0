//! When connections are woken to write what the core has routed to them.
//!
//! Each wake-up of a connection costs a task poll, h2's framing and one
//! `writev` (about 5 µs of kernel time on loopback, whatever its size), so
//! a busy connection should write several messages at once. A connection
//! is woken at once if it has not been woken in the last `interval`, so a
//! quiet room gets no added latency (the core task also wakes at once a
//! connection whose client has sent something within the interval, as it
//! is likely waiting for answers); otherwise it waits
//! for the next tick
//! of a clock that ticks every `interval`. So a busy connection writes at
//! most about once per interval and no message waits longer than one
//! interval. All busy connections share the ticks: a busy room's
//! connections write in one burst, which the clients' side also reads in
//! one burst (one `epoll_wait` for many sockets). Measured against
//! spreading connections over 16 groups per interval, the shared tick cost
//! less CPU at the same latency (README, "Benchmarks").

use std::time::{Duration, Instant};

/// Deferred wake-ups.
pub(crate) struct Schedule<T> {
    interval: Duration,
    epoch: Instant,
    pending: Vec<T>,
}

impl<T> Schedule<T> {
    pub(crate) fn new(interval: Duration, epoch: Instant) -> Schedule<T> {
        Schedule {
            interval: interval.max(Duration::from_micros(1)),
            epoch,
            pending: Vec::new(),
        }
    }

    /// Whether a connection last woken at `last` must wait for the tick.
    pub(crate) fn must_wait(&self, last: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last) < self.interval
    }

    fn tick_after(&self, now: Instant) -> Instant {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        let ticks = since / self.interval.as_nanos() + 1;
        self.epoch + Duration::from_nanos((ticks * self.interval.as_nanos()) as u64)
    }

    /// Defers `item` to the next tick.
    pub(crate) fn defer(&mut self, item: T, now: Instant) {
        if self.pending.is_empty() {
            self.epoch = self.tick_after(now) - self.interval;
        }
        self.pending.push(item);
    }

    /// When the deferred items are due.
    pub(crate) fn due(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then(|| self.epoch + self.interval)
    }

    /// Moves the deferred items to `out` if they are due by `now`.
    pub(crate) fn take_due(&mut self, now: Instant, out: &mut Vec<T>) {
        if self.due().is_some_and(|due| due <= now) {
            out.append(&mut self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_items_wait_for_the_next_tick() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(ms(10), t0);
        assert!(s.must_wait(t0, t0 + ms(9)));
        assert!(!s.must_wait(t0, t0 + ms(10)));
        assert_eq!(s.due(), None);
        s.defer(1, t0 + ms(23));
        s.defer(2, t0 + ms(27));
        assert_eq!(s.due(), Some(t0 + ms(30)));
        let mut out = Vec::new();
        s.take_due(t0 + ms(29), &mut out);
        assert!(out.is_empty());
        s.take_due(t0 + ms(31), &mut out);
        assert_eq!(out, [1, 2]);
        assert_eq!(s.due(), None);
        // After a quiet spell the next tick is still on the grid.
        s.defer(3, t0 + ms(95));
        assert_eq!(s.due(), Some(t0 + ms(100)));
    }
}
