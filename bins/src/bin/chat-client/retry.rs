//! Trying again: how long to wait before reconnecting, the ids that make a
//! resent line safe, and where the server says a stream can resume. Pure:
//! the randomness comes in as a seed.

use std::time::Duration;

use chat_sansio::{Code, Status};

/// The first wait after a connection is lost.
pub const FIRST_WAIT: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// Each wait is the nominal one times a random factor within ±20%, so
/// clients cut off together do not come back together (gRPC's
/// doc/connection-backoff.md: JITTER = 0.2).
const JITTER_PERCENT: u64 = 20;

/// Exponential backoff with jitter: 100 ms, doubling to 5 s (gRPC's
/// doc/connection-backoff.md, with shorter times: a chat client should be
/// back within seconds of its server).
#[derive(Debug, Clone)]
pub struct Backoff {
    nominal: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff at its first wait; `seed` drives the jitter.
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            nominal: FIRST_WAIT,
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt; the one after is twice as long,
    /// up to [`MAX_WAIT`].
    pub fn next_wait(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(MAX_WAIT);
        let nominal_us = nominal.as_micros() as u64;
        let spread = nominal_us * JITTER_PERCENT / 100;
        let jittered = nominal_us - spread + self.random() % (2 * spread + 1);
        Duration::from_micros(jittered)
    }

    /// Back to the first wait (a connection has proved itself).
    pub fn reset(&mut self) {
        self.nominal = FIRST_WAIT;
    }

    /// xorshift64 (Marsaglia, "Xorshift RNGs", J. Stat. Softw. 8(14), 2003).
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// Whether a call that ended with `status` may work if made again later:
/// the connection or the server failed, not the request (gRPC's
/// doc/statuscodes.md: UNAVAILABLE "is most likely a transient condition";
/// a reset or a lost connection reaches us as CANCELLED, UNKNOWN or
/// INTERNAL; RESOURCE_EXHAUSTED is a server over its limits).
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code,
        Code::Unavailable
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::DeadlineExceeded
    )
}

/// The point a stream can resume from, from the OUT_OF_RANGE status of a
/// resume the server refused: `... resume from EPOCH:SEQ`.
pub fn resume_point(status: &Status) -> Option<(u64, u64)> {
    if status.code != Code::OutOfRange {
        return None;
    }
    let (_, point) = status.message.rsplit_once("resume from ")?;
    let (epoch, seq) = point.trim().split_once(':')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// `client_msg_id`s: a random prefix for this process, then a counter.
/// Unique across the processes of one user, plain text, 19 to 36 bytes
/// (the server takes at most 128).
#[derive(Debug)]
pub struct MsgIds {
    prefix: String,
    next: u64,
}

impl MsgIds {
    /// Ids starting with the 64 random bits of `seed`.
    pub fn new(seed: u64) -> MsgIds {
        MsgIds {
            prefix: format!("c{seed:016x}"),
            next: 1,
        }
    }

    /// A new id.
    pub fn next_id(&mut self) -> String {
        let id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_with_jitter() {
        let mut b = Backoff::new(42);
        let mut nominal = FIRST_WAIT;
        for _ in 0..12 {
            let w = b.next_wait();
            assert!(
                w >= nominal * 8 / 10 && w <= nominal * 12 / 10,
                "{w:?} for {nominal:?}"
            );
            nominal = (nominal * 2).min(MAX_WAIT);
        }
        b.reset();
        assert!(b.next_wait() <= FIRST_WAIT * 12 / 10);
    }

    #[test]
    fn jitter_spreads_clients() {
        let a: Vec<_> = (0..5).map(|s| Backoff::new(s).next_wait()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "{a:?}");
    }

    #[test]
    fn the_server_names_where_to_resume() {
        let s = Status::new(Code::OutOfRange, "cannot resume there; resume from 3:140");
        assert_eq!(resume_point(&s), Some((3, 140)));
        let s = Status::new(Code::OutOfRange, "resume from 3:x");
        assert_eq!(resume_point(&s), None);
        let s = Status::new(Code::Unavailable, "resume from 3:4");
        assert_eq!(resume_point(&s), None);
    }

    #[test]
    fn ids_are_unique_plain_and_short() {
        let mut ids = MsgIds::new(u64::MAX);
        let (a, b) = (ids.next_id(), ids.next_id());
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
