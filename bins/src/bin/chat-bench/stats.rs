//! Latency percentiles.

use std::time::Duration;

/// Percentiles of a latency sample.
pub struct Latency {
    sorted: Vec<Duration>,
}

impl Latency {
    /// Sorts the sample.
    pub fn new(mut sample: Vec<Duration>) -> Latency {
        sample.sort_unstable();
        Latency { sorted: sample }
    }

    /// The `p`-th percentile (0..=100), zero for an empty sample.
    pub fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.sorted.len() - 1) as f64).round() as usize;
        self.sorted[i.min(self.sorted.len() - 1)]
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
