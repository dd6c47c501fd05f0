//! When connections are woken to write what the core has routed to them.
//!
//! Each wake-up of a connection costs a task poll, h2's framing and one
//! `writev` (11-13 µs of kernel time on this project's loopback benchmark
//! machine, whatever its size), so a busy connection should write several
//! messages at once. A connection is woken at once if it has not written in
//! the last `interval` (a quiet room gets no added latency), or if its
//! client has sent something within the interval (it is likely waiting for
//! answers; the shard tracks that). Otherwise it waits for the next turn of
//! its *phase*: the interval is cut into phases about
//! [`PHASE_WIDTH`] apart, every connection has one, and a phase comes round
//! once per interval. So a busy connection writes about once per interval,
//! no message waits longer than one interval for it, and the writes of a
//! busy room are spread evenly over the interval instead of all falling on
//! one tick: no connection waits behind a burst of a thousand others, so
//! the wait, not the burst, sets the latency.

use std::time::{Duration, Instant};

/// Rough time between two phases of the wheel.
const PHASE_WIDTH: Duration = Duration::from_micros(500);

/// Most phases per interval.
const MAX_PHASES: usize = 64;

/// Deferred wake-ups of one shard's connections (or of whatever `T`
/// names them: a connection, a group's members in one phase), by phase.
pub(crate) struct Wheel<T> {
    interval: Duration,
    epoch: Instant,
    phases: Vec<Phase<T>>,
}

struct Phase<T> {
    /// When the waiting items are due; `None` while none wait.
    due: Option<Instant>,
    waiting: Vec<T>,
}

impl<T> Wheel<T> {
    pub(crate) fn new(interval: Duration, epoch: Instant) -> Wheel<T> {
        let interval = interval.max(Duration::from_micros(1));
        let n = (interval.as_micros() / PHASE_WIDTH.as_micros()).clamp(1, MAX_PHASES as u128);
        Wheel {
            interval,
            epoch,
            phases: (0..n)
                .map(|_| Phase {
                    due: None,
                    waiting: Vec::new(),
                })
                .collect(),
        }
    }

    /// How many phases there are; a connection's phase is below this.
    pub(crate) fn phases(&self) -> usize {
        self.phases.len()
    }

    /// Whether `last` is within the interval before `now`.
    pub(crate) fn recent(&self, last: Option<Instant>, now: Instant) -> bool {
        last.is_some_and(|t| now.saturating_duration_since(t) < self.interval)
    }

    /// The first turn of `phase` after `now`.
    fn next_turn(&self, phase: usize, now: Instant) -> Instant {
        let offset = self.interval * phase as u32 / self.phases.len() as u32;
        let first = self.epoch + offset;
        if now < first {
            return first;
        }
        let period = self.interval.as_nanos();
        let turns = (now - first).as_nanos() / period + 1;
        first + Duration::from_nanos((turns * period) as u64)
    }

    /// Defers `item` to the next turn of `phase`.
    pub(crate) fn defer(&mut self, item: T, phase: usize, now: Instant) {
        let phase = phase % self.phases.len();
        if self.phases[phase].due.is_none() {
            self.phases[phase].due = Some(self.next_turn(phase, now));
        }
        self.phases[phase].waiting.push(item);
    }

    /// When the next deferred items are due.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.phases.iter().filter_map(|p| p.due).min()
    }

    /// Moves the items due by `now` to `out`.
    pub(crate) fn take_due(&mut self, now: Instant, out: &mut Vec<T>) {
        for p in &mut self.phases {
            if p.due.is_some_and(|due| due <= now) {
                p.due = None;
                out.append(&mut p.waiting);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_connections_wait_for_their_phase() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Wheel::<u32>::new(ms(10), t0);
        assert_eq!(w.phases(), 20); // 10 ms / 0.5 ms
        assert!(w.recent(Some(t0), t0 + ms(9)));
        assert!(!w.recent(Some(t0), t0 + ms(10)));
        assert!(!w.recent(None, t0));
        assert_eq!(w.due(), None);
        // Phase 0 turns at 0, 10, 20 ms...; phase 10 at 5, 15, 25 ms...
        w.defer(1, 0, t0 + ms(23));
        w.defer(2, 10, t0 + ms(23));
        w.defer(3, 0, t0 + ms(27)); // joins the turn at 30 ms
        assert_eq!(w.due(), Some(t0 + ms(25)));
        let mut out = Vec::new();
        w.take_due(t0 + ms(24), &mut out);
        assert!(out.is_empty());
        w.take_due(t0 + ms(26), &mut out);
        assert_eq!(out, [2]);
        assert_eq!(w.due(), Some(t0 + ms(30)));
        out.clear();
        w.take_due(t0 + ms(31), &mut out);
        assert_eq!(out, [1, 3]);
        assert_eq!(w.due(), None);
        // Phases wrap; a phase's first turn may come before a whole interval.
        w.defer(4, 21, t0);
        assert_eq!(w.due(), Some(t0 + ms(1) / 2));
    }

    #[test]
    fn phases_spread_turns_over_the_interval() {
        let t0 = Instant::now();
        let w = Wheel::<u32>::new(Duration::from_millis(20), t0);
        let now = t0 + Duration::from_millis(1003);
        let mut turns: Vec<Instant> = (0..w.phases()).map(|p| w.next_turn(p, now)).collect();
        turns.sort();
        // Every turn within one interval after `now`, evenly apart.
        assert!(turns
            .iter()
            .all(|&t| t > now && t <= now + Duration::from_millis(20)));
        for pair in turns.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_micros(500));
        }
        // A very short interval still has one phase.
        assert_eq!(Wheel::<u32>::new(Duration::ZERO, t0).phases(), 1);
    }
}
