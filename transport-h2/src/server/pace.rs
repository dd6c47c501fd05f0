//! How long a busy connection waits between two writes: nothing while the
//! shard has time, more as it gets busy.
//!
//! Each write costs a task poll, h2's framing and one `writev` (whose
//! kernel side, on loopback, also runs the reader's receive path): tens of
//! microseconds whatever its size. Written at once, every message to every
//! member is a write; at a few hundred thousand deliveries a second that is
//! more CPU than the machine has. So a shard measures how much of the time
//! its thread is busy (the time spent inside its tasks' polls, kernel time
//! of their writes included) and sets the *gap*, the least time between two
//! writes of one connection, to keep that share near a target:
//!
//! - idle or lightly loaded: the gap is zero, every output is written as
//!   soon as it is routed (latency is the kernel's round trip);
//! - busier than the target: the gap grows in proportion (the cost of
//!   writes goes as one over the gap), so each write carries more messages;
//! - less busy again: it shrinks back, to zero.
//!
//! Outputs wait at most one gap, and the gap never exceeds the configured
//! cap. Batching also comes for free while a shard is saturated: tasks
//! woken while it is busy run later and take everything that came
//! meanwhile.

use std::time::{Duration, Instant};

/// How often the gap is reconsidered, at least: a window also spans two
/// gaps, so that every busy connection has written in it (a shorter one
/// sees some slots' writes and not others', and the gap swings).
const WINDOW: Duration = Duration::from_millis(10);

/// The gap it starts from when the shard first gets too busy, and below
/// which it drops back to zero.
const MIN_GAP: Duration = Duration::from_micros(250);

/// The share of the shard's time its socket writes must take for the gap
/// to grow: the most a wait between writes could save. Below it, a shard
/// busy with other work (the core's turns on the first shard, reading a
/// flood of requests) gains little from batching and would pay for it in
/// latency; a shard busy with writes (fan-out, where they are 60-80% of
/// its work) is well above it.
const MIN_WRITE_SHARE: f64 = 0.1;

/// Most it grows or shrinks in one window (a factor), so that one noisy
/// window cannot swing it.
const MAX_STEP: f64 = 2.0;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Pace {
    gap: Duration,
    max: Duration,
    /// The share of time the shard aims to be busy, in (0, 1].
    target: f64,
    window_start: Instant,
    busy_at_start: Duration,
    writing_at_start: Duration,
}

impl Pace {
    /// A pace whose gap starts at zero and never exceeds `max`, aiming to
    /// keep the shard busy `target` of the time.
    pub(crate) fn new(max: Duration, target: f64, now: Instant) -> Pace {
        Pace {
            gap: Duration::ZERO,
            max,
            target: target.clamp(0.01, 1.0),
            window_start: now,
            busy_at_start: Duration::ZERO,
            writing_at_start: Duration::ZERO,
        }
    }

    /// The least time between two writes of one connection now.
    #[cfg(test)]
    pub(crate) fn gap(&self) -> Duration {
        self.gap
    }

    /// Takes note of the shard's busy time so far (`busy`, a running
    /// total) and of the part of it spent in socket writes (`writing`,
    /// also a running total); once per window, sets the gap for the next.
    /// Returns the new gap when it changed.
    pub(crate) fn update(
        &mut self,
        now: Instant,
        busy: Duration,
        writing: Duration,
    ) -> Option<Duration> {
        let wall = now.saturating_duration_since(self.window_start);
        if wall < WINDOW.max(self.gap * 2) {
            return None;
        }
        let spent = busy.saturating_sub(self.busy_at_start);
        let wrote = writing.saturating_sub(self.writing_at_start);
        self.window_start = now;
        self.busy_at_start = busy;
        self.writing_at_start = writing;
        let share = spent.as_secs_f64() / wall.as_secs_f64();
        let write_share = wrote.as_secs_f64() / wall.as_secs_f64();
        // Halfway to the gap that would meet the target, each window:
        // steady under noise, and still there within a few windows. Only
        // the writes' part of the work shrinks as the gap grows: once it is
        // below MIN_WRITE_SHARE the gap stops growing, however busy the
        // rest keeps the shard (the core's own turns, say).
        let over = (share / self.target).min(write_share / MIN_WRITE_SHARE);
        let ratio = over.sqrt().clamp(1.0 / MAX_STEP, MAX_STEP);
        let next = if self.gap.is_zero() {
            if over > 1.0 {
                MIN_GAP
            } else {
                Duration::ZERO
            }
        } else {
            let scaled = self.gap.mul_f64(ratio);
            if scaled < MIN_GAP {
                Duration::ZERO
            } else {
                scaled.min(self.max)
            }
        };
        let next = next.min(self.max);
        (next != self.gap).then(|| {
            self.gap = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often a connection writes with no gap, in the model below.
    const UNPACED: f64 = 50e-6;

    /// A shard that spends `cost / gap` of its time in writes (`cost /
    /// UNPACED` with no gap) and `base` on other work.
    fn settle(pace: &mut Pace, t0: Instant, cost: f64, base: f64, windows: u32) -> Instant {
        let mut now = t0;
        let (mut busy, mut writing) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..windows {
            let gap = pace.gap().as_secs_f64().max(UNPACED);
            let writes = (cost / gap).min(1.0 - base);
            writing += WINDOW.mul_f64(writes);
            busy += WINDOW.mul_f64(writes + base);
            now += WINDOW;
            pace.update(now, busy, writing);
        }
        now
    }

    #[test]
    fn idle_shards_write_at_once() {
        let t0 = Instant::now();
        let mut p = Pace::new(Duration::from_millis(40), 0.4, t0);
        settle(&mut p, t0, 0.000_002, 0.03, 100); // 7% busy
        assert_eq!(p.gap(), Duration::ZERO);
    }

    #[test]
    fn the_gap_settles_where_the_shard_meets_its_target() {
        let t0 = Instant::now();
        let mut p = Pace::new(Duration::from_millis(40), 0.4, t0);
        // Writes cost 4 ms of every gap's worth: busy = 0.004 / gap.
        let now = settle(&mut p, t0, 0.004, 0.0, 200);
        let gap = p.gap().as_secs_f64();
        assert!((0.008..0.012).contains(&gap), "{gap}");
        // The load goes away: back to zero.
        settle(&mut p, now, 0.0, 0.05, 100);
        assert_eq!(p.gap(), Duration::ZERO);
    }

    #[test]
    fn other_work_does_not_make_writes_wait() {
        let t0 = Instant::now();
        let mut p = Pace::new(Duration::from_millis(40), 0.4, t0);
        // 80% busy, but writes are 4% of the time: no gap.
        let now = settle(&mut p, t0, 0.000_002, 0.8, 100);
        assert_eq!(p.gap(), Duration::ZERO);
        // Writes that matter on top of it: the gap grows only until they
        // are MIN_WRITE_SHARE of the time (5 ms), not to the cap.
        settle(&mut p, now, 0.000_5, 0.5, 300);
        let gap = p.gap().as_secs_f64();
        assert!((0.004..0.0065).contains(&gap), "{gap}");
    }

    #[test]
    fn the_gap_never_passes_its_cap() {
        let t0 = Instant::now();
        let mut p = Pace::new(Duration::from_millis(5), 0.4, t0);
        settle(&mut p, t0, 0.01, 0.0, 100); // writes 2x the time at 5 ms
        assert_eq!(p.gap(), Duration::from_millis(5));
        // A window not yet over changes nothing.
        let second = Duration::from_secs(1);
        assert_eq!(p.update(t0, second, second), None);
    }
}
