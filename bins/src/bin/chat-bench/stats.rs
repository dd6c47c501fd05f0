//! Latency percentiles, /proc readings of the server under test, and the
//! probe message that tells when streams are registered.

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
/// CPU time (user + system) a process has used.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports in clock ticks; USER_HZ is 100 on every mainstream build.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Time a process's threads have spent runnable but waiting for a CPU (the
/// second field of each `/proc/PID/task/TID/schedstat`), summed over the
/// threads alive now. On a machine the load generator shares with the
/// server, this is how much of the server's latency is the two competing
/// for the cores rather than the server's own work.
pub fn run_queue_wait(pid: u32) -> Option<Duration> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(ns))
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The message sent to learn that every stream is registered.
pub fn probe() -> chat_proto::ChatMessage {
    chat_proto::ChatMessage {
        user: Some(chat_proto::User {
            user_id: "probe".into(),
            username: "probe".into(),
            room_id: String::new(),
        }),
        message: "probe".into(),
        ..Default::default()
    }
}
