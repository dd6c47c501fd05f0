//! When connections are woken to write what the core has routed to them,
//! while the shard is busy enough for writes to wait ([`super::pace`] sets
//! the interval, the gap; at zero everything is written at once).
//!
//! A connection is woken at once if it has not written in the last gap (a
//! quiet room gets no added latency), or if its client has sent something
//! within it (it is likely waiting for answers; the shard tracks that).
//! Otherwise it waits for the next turn of its *phase*: the gap is cut into
//! time slots about [`SLOT_WIDTH`] apart, every connection has one of
//! [`PHASES`] phases, spread over the slots, and a phase comes round once
//! per gap. So a busy connection writes about once per gap, no message
//! waits longer than one gap for it, and the writes of a busy room are
//! spread evenly over the gap instead of all falling on one tick: no
//! connection waits behind a burst of a thousand others.

use std::time::{Duration, Instant};

/// Least time between two slots of the wheel: finer slots would wake the
/// shard's thread more often than the writes they spread are worth.
const SLOT_WIDTH: Duration = Duration::from_micros(500);

/// Phases a connection (or a group's members) can be in.
pub(crate) const PHASES: usize = 64;

/// Most slots per gap. Writes that follow one another keep the reader side
/// of loopback busy (one wake-up per burst, not per write): on the
/// benchmark machine, 125 sockets written back to back cost the kernel
/// 7.7 us a write against 11.6 us spread one by one (`chat-bench floor`),
/// and a burst that short adds about a millisecond to the wait.
const MAX_SLOTS: usize = 8;

/// Deferred wake-ups of one shard's connections (or of whatever `T`
/// names them: a connection, a group's members in one phase), by phase.
pub(crate) struct Wheel<T> {
    interval: Duration,
    /// Time slots per interval: phases share them.
    slots: usize,
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
        let mut wheel = Wheel {
            interval: Duration::ZERO,
            slots: 1,
            epoch,
            phases: (0..PHASES)
                .map(|_| Phase {
                    due: None,
                    waiting: Vec::new(),
                })
                .collect(),
        };
        wheel.set_interval(interval);
        wheel
    }

    /// A new interval, for what is deferred from now on (what waits keeps
    /// its turn).
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
        self.slots =
            (interval.as_micros() / SLOT_WIDTH.as_micros()).clamp(1, MAX_SLOTS as u128) as usize;
    }

    /// The interval now.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether `last` is within the interval before `now`.
    pub(crate) fn recent(&self, last: Option<Instant>, now: Instant) -> bool {
        last.is_some_and(|t| now.saturating_duration_since(t) < self.interval)
    }

    /// The first turn of `phase` after `now`.
    fn next_turn(&self, phase: usize, now: Instant) -> Instant {
        if self.interval.is_zero() {
            return now;
        }
        let slot = phase * self.slots / PHASES;
        let offset = self.interval * slot as u32 / self.slots as u32;
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
        let phase = phase % PHASES;
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
        // 10 ms: 8 slots of 1.25 ms; phase p turns at slot p * 8 / 64.
        let mut w = Wheel::<u32>::new(ms(10), t0);
        assert!(w.recent(Some(t0), t0 + ms(9)));
        assert!(!w.recent(Some(t0), t0 + ms(10)));
        assert!(!w.recent(None, t0));
        assert_eq!(w.due(), None);
        // Phase 0 turns at 0, 10, 20 ms...; phase 32 (slot 4) at 5, 15, 25 ms.
        w.defer(1, 0, t0 + ms(23));
        w.defer(2, 32, t0 + ms(23));
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
    }

    #[test]
    fn phases_spread_turns_over_the_interval_in_slots() {
        let t0 = Instant::now();
        let w = Wheel::<u32>::new(Duration::from_millis(20), t0);
        let now = t0 + Duration::from_millis(1003);
        let mut turns: Vec<Instant> = (0..PHASES).map(|p| w.next_turn(p, now)).collect();
        turns.sort();
        turns.dedup();
        // 8 slots, every turn within one interval after `now`, evenly apart.
        assert_eq!(turns.len(), MAX_SLOTS);
        assert!(turns
            .iter()
            .all(|&t| t > now && t <= now + Duration::from_millis(20)));
        for pair in turns.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_micros(2500));
        }
    }

    #[test]
    fn a_zero_interval_defers_nothing() {
        let t0 = Instant::now();
        let mut w = Wheel::<u32>::new(Duration::ZERO, t0);
        assert!(!w.recent(Some(t0), t0), "nothing is recent");
        w.defer(1, 5, t0);
        let mut out = Vec::new();
        w.take_due(t0, &mut out);
        assert_eq!(out, [1]);
        w.set_interval(Duration::from_millis(1));
        assert!(w.recent(Some(t0), t0));
    }
}
