//! Time as the core sees it: a number the driver hands in.

use std::ops::Add;
use std::time::Duration;

/// A point in time, in microseconds since the Unix epoch, supplied by the driver.
///
/// The core never reads a clock. Drivers pass the current `Time` into every
/// `handle_*` call; it must never go backwards (drivers usually anchor a
/// monotonic clock to the wall clock once at start-up). The same value serves
/// for deadlines and for the timestamps the chat stamps on messages, so a test
/// can run the whole core on a simulated clock.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The Unix epoch.
    pub const ZERO: Time = Time(0);

    /// A time `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Microseconds since the Unix epoch as an `i64`, saturating: the
    /// signed form protobuf timestamps (`timestamp_us`) and databases use.
    pub const fn as_micros_i64(self) -> i64 {
        if self.0 > i64::MAX as u64 {
            i64::MAX
        } else {
            self.0 as i64
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates at the end of time instead of overflowing.
    fn add(self, d: Duration) -> Time {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_micros_saturate() {
        assert_eq!(Time::from_micros(7).as_micros_i64(), 7);
        assert_eq!(Time::from_micros(u64::MAX).as_micros_i64(), i64::MAX);
    }
}
