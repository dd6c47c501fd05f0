//! Which connections the server takes: a limit per peer address, a shorter
//! handshake limit while the descriptor table is nearly full, and a log of
//! refusals that says each peer's count once per interval instead of one
//! line per attempt.
//!
//! Every accepted socket holds a file descriptor until its handshake ends;
//! a peer that opens thousands and says nothing would otherwise keep the
//! table full for the whole handshake limit, and new clients (whose
//! connections wait in the kernel's accept queue) time out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Time a new connection has to complete its handshakes (TLS, if any, and
/// HTTP/2) together.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The same while the descriptor table is nearly full: a real client's
/// handshake takes a round trip or two, and every silent connection that
/// is let go makes room for one waiting in the accept queue.
pub(crate) const HANDSHAKE_TIMEOUT_UNDER_PRESSURE: Duration = Duration::from_secs(1);

/// "Nearly full": this share of the descriptor limit is in use by
/// connections (the rest is the listener, the store, logs and slack).
const PRESSURE_NUMERATOR: usize = 8;
const PRESSURE_DENOMINATOR: usize = 10;

/// How often one peer's refusals are logged at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Most peers whose refusals are counted at once; past it the oldest
/// reports are dropped (one more line each is the worst outcome).
const MAX_REFUSING_PEERS: usize = 10_000;

/// What the acceptor knows of the connections it has let in.
#[derive(Debug)]
pub(crate) struct Admission {
    max_per_peer: usize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    /// Connections open now (handed to a shard and not yet closed).
    live: Arc<AtomicUsize>,
    /// The process's descriptor limit.
    fd_limit: usize,
    refusals: Mutex<HashMap<IpAddr, Refusals>>,
}

#[derive(Debug)]
struct Refusals {
    since_report: u64,
    reported: Instant,
}

/// A connection's place in its peer's count; given back on drop.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    ip: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self
            .admission
            .per_peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// At most `max_per_peer` connections per address (0: no limit).
    pub(crate) fn new(max_per_peer: usize, live: Arc<AtomicUsize>) -> Admission {
        Admission {
            max_per_peer,
            per_peer: Mutex::default(),
            live,
            fd_limit: descriptor_limit(),
            refusals: Mutex::default(),
        }
    }

    /// Counts a new connection from `ip` against its peer's limit; `None`
    /// (and a log line now and then) if the peer is at its limit.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        {
            let mut map = self.per_peer.lock().unwrap_or_else(PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            if self.max_per_peer > 0 && *n >= self.max_per_peer {
                drop(map);
                self.refused(ip, "too many connections from this address");
                return None;
            }
            *n += 1;
        }
        Some(PeerSlot {
            ip,
            admission: self.clone(),
        })
    }

    /// How long a connection accepted now has for its handshakes.
    pub(crate) fn handshake_limit(&self) -> Duration {
        let live = self.live.load(Ordering::Relaxed);
        if live * PRESSURE_DENOMINATOR >= self.fd_limit * PRESSURE_NUMERATOR {
            HANDSHAKE_TIMEOUT_UNDER_PRESSURE
        } else {
            HANDSHAKE_TIMEOUT
        }
    }

    /// Logs a refused connection: the first from a peer at once, then at
    /// most once per interval, with the number refused since.
    pub(crate) fn refused(&self, ip: IpAddr, why: &str) {
        let now = Instant::now();
        let mut map = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_REFUSING_PEERS && !map.contains_key(&ip) {
            map.retain(|_, r| now.duration_since(r.reported) < REFUSAL_LOG_EVERY);
            if map.len() >= MAX_REFUSING_PEERS {
                map.clear();
            }
        }
        match map.get_mut(&ip) {
            Some(r) if now.duration_since(r.reported) < REFUSAL_LOG_EVERY => {
                r.since_report += 1;
            }
            Some(r) => {
                tracing::warn!(
                    "refused {} connections from {ip} in the last {} s: {why}",
                    r.since_report + 1,
                    now.duration_since(r.reported).as_secs()
                );
                r.since_report = 0;
                r.reported = now;
            }
            None => {
                tracing::warn!("refused a connection from {ip}: {why}");
                map.insert(
                    ip,
                    Refusals {
                        since_report: 0,
                        reported: now,
                    },
                );
            }
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); 1,024,
/// the usual default, where that cannot be read.
fn descriptor_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_limited_and_their_slots_come_back() {
        let a = Arc::new(Admission::new(2, Arc::default()));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = a.admit(ip).unwrap();
        let _s2 = a.admit(ip).unwrap();
        assert!(a.admit(ip).is_none());
        assert!(a.admit(other).is_some());
        drop(s1);
        assert!(a.admit(ip).is_some());
    }

    #[test]
    fn the_handshake_limit_shortens_near_the_descriptor_limit() {
        let live = Arc::new(AtomicUsize::new(0));
        let a = Admission::new(0, live.clone());
        assert_eq!(a.handshake_limit(), HANDSHAKE_TIMEOUT);
        live.store(a.fd_limit, Ordering::Relaxed);
        assert_eq!(a.handshake_limit(), HANDSHAKE_TIMEOUT_UNDER_PRESSURE);
        assert!(descriptor_limit() > 0);
    }
}
