//! The one place the transport reads the clock for the core.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_sansio::Time;

/// A monotonic clock anchored to the wall clock once, so the core's
/// [`Time`] never goes backwards even if the system clock is changed.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix: Time,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

impl Clock {
    /// Anchors the clock now.
    pub fn new() -> Clock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            start: Instant::now(),
            start_unix: Time::from_micros(u64::try_from(since_epoch.as_micros()).unwrap_or(0)),
        }
    }

    /// The current time for the core.
    pub fn now(&self) -> Time {
        self.start_unix + self.start.elapsed()
    }

    /// The instant at which the core's `t` falls, for timers.
    pub fn instant_at(&self, t: Time) -> Instant {
        self.start + t.saturating_since(self.start_unix)
    }
}
