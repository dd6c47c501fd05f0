//! Rate limits: messages per second with a burst, per user and per
//! connection, and joins per second per connection (token buckets on the
//! chat's clock).
//!
//! A post over a limit is not delivered, and its stream stays open: the
//! poster gets a refusal in band (a `ChatMessage` with `refused` set: the
//! code RESOURCE_EXHAUSTED, a message, and how long to wait). A join over
//! the limit ends its JoinChatRoom call with RESOURCE_EXHAUSTED and the
//! wait in the trailing metadata `retry-after-ms` (and in the message).
//!
//! Memory: a connection's buckets go with it; a user's bucket is kept only
//! while it is not full (a full bucket is the same as none) and at most
//! [`MAX_USER_BUCKETS`] of them; guests are limited per connection only (a
//! guest may claim any id, so an id is no key for them).

use std::collections::HashMap;
use std::time::Duration;

use crate::idmap::IdMap;
use crate::server::ConnId;
use crate::time::Time;

use super::policy::Identity;

/// Most users' buckets kept at once. Past it, full buckets are dropped;
/// if none is full, a new user is limited per connection only until there
/// is room (an authenticated user's count is bounded by the config or the
/// identity provider, so this is far more than there are).
const MAX_USER_BUCKETS: usize = 65_536;

/// Millionths of a token: whole tokens are too coarse for rates like 0.5/s.
const MICRO: u64 = 1_000_000;

/// The limits. A rate of 0 means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages per second, per user and per connection.
    pub messages_per_second: u32,
    /// Messages that may be sent at once beyond the rate.
    pub message_burst: u32,
    /// JoinChatRoom requests per second, per connection.
    pub joins_per_second: u32,
    /// Joins that may come at once beyond the rate.
    pub join_burst: u32,
}

impl Default for RateLimits {
    /// Far above a person typing (a fast typist sends a message every
    /// second or two) and a client switching rooms by hand; a script
    /// flooding a room meets them within a second.
    fn default() -> RateLimits {
        RateLimits {
            messages_per_second: 20,
            message_burst: 40,
            joins_per_second: 5,
            join_burst: 20,
        }
    }
}

impl RateLimits {
    /// No limits.
    pub fn off() -> RateLimits {
        RateLimits {
            messages_per_second: 0,
            message_burst: 0,
            joins_per_second: 0,
            join_burst: 0,
        }
    }
}

/// A token bucket, full when made.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    micro: u64,
    at: Time,
}

impl Bucket {
    fn full(now: Time, burst: u32) -> Bucket {
        Bucket {
            micro: capacity(burst),
            at: now,
        }
    }

    /// Refills to `now`; true if full.
    fn refill(&mut self, now: Time, rate: u32, burst: u32) -> bool {
        let elapsed = now.saturating_since(self.at).as_micros();
        let gained = u64::try_from(elapsed)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(rate));
        self.micro = self.micro.saturating_add(gained).min(capacity(burst));
        self.at = self.at.max(now);
        self.micro >= capacity(burst)
    }

    /// How long until one token is there (zero if it is).
    fn wait(&self, rate: u32) -> Duration {
        let missing = MICRO.saturating_sub(self.micro);
        Duration::from_micros(missing.div_ceil(u64::from(rate.max(1))))
    }
}

/// A bucket holds the burst and one more (the message being sent).
fn capacity(burst: u32) -> u64 {
    (u64::from(burst) + 1) * MICRO
}

/// The chat's buckets.
#[derive(Debug)]
pub(super) struct Limiter {
    limits: RateLimits,
    users: HashMap<String, Bucket>,
    /// Per connection: messages, joins.
    conns: IdMap<ConnId, (Bucket, Bucket)>,
    /// Posts and joins refused so far (for metrics).
    pub refused: u64,
}

impl Limiter {
    pub(super) fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            users: HashMap::new(),
            conns: IdMap::default(),
            refused: 0,
        }
    }

    /// The limits in force.
    pub(super) fn set(&mut self, limits: RateLimits) {
        self.limits = limits;
    }

    /// A post by `who` on `conn`: `Err(wait)` if over a limit (nothing is
    /// taken then from the other bucket).
    pub(super) fn post(&mut self, now: Time, who: &Identity, conn: ConnId) -> Result<(), Duration> {
        let RateLimits {
            messages_per_second: rate,
            message_burst: burst,
            ..
        } = self.limits;
        if rate == 0 {
            return Ok(());
        }
        let joins = self.limits.join_burst;
        let (conn_bucket, _) = self
            .conns
            .entry(conn)
            .or_insert_with(|| (Bucket::full(now, burst), Bucket::full(now, joins)));
        conn_bucket.refill(now, rate, burst);
        let conn_ok = conn_bucket.micro >= MICRO;
        let conn_wait = conn_bucket.wait(rate);
        let user = match who.user_id() {
            Some(id) => self.user_bucket(now, id),
            None => None,
        };
        let user_ok = user.as_ref().is_none_or(|b| b.micro >= MICRO);
        if !(conn_ok && user_ok) {
            self.refused += 1;
            let user_wait = user.map_or(Duration::ZERO, |b| b.wait(rate));
            return Err(conn_wait.max(user_wait));
        }
        if let Some((c, _)) = self.conns.get_mut(&conn) {
            c.micro -= MICRO;
        }
        if let Some(id) = who.user_id() {
            if let Some(b) = self.users.get_mut(id) {
                b.micro -= MICRO;
            }
        }
        Ok(())
    }

    /// The user's bucket refilled to `now` (a copy), made if there is room.
    fn user_bucket(&mut self, now: Time, id: &str) -> Option<Bucket> {
        let RateLimits {
            messages_per_second: rate,
            message_burst: burst,
            ..
        } = self.limits;
        if !self.users.contains_key(id) {
            if self.users.len() >= MAX_USER_BUCKETS {
                self.users.retain(|_, b| !b.refill(now, rate, burst));
                if self.users.len() >= MAX_USER_BUCKETS {
                    return None;
                }
            }
            self.users.insert(id.to_owned(), Bucket::full(now, burst));
        }
        let b = self.users.get_mut(id)?;
        b.refill(now, rate, burst);
        Some(*b)
    }

    /// A join on `conn`: `Err(wait)` if over the limit.
    pub(super) fn join(&mut self, now: Time, conn: ConnId) -> Result<(), Duration> {
        let RateLimits {
            joins_per_second: rate,
            join_burst: burst,
            message_burst,
            ..
        } = self.limits;
        if rate == 0 {
            return Ok(());
        }
        let (_, b) = self
            .conns
            .entry(conn)
            .or_insert_with(|| (Bucket::full(now, message_burst), Bucket::full(now, burst)));
        b.refill(now, rate, burst);
        if b.micro < MICRO {
            self.refused += 1;
            return Err(b.wait(rate));
        }
        b.micro -= MICRO;
        Ok(())
    }

    /// A connection is gone: its buckets go.
    pub(super) fn disconnected(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Users' buckets held (for tests of the memory bound).
    #[cfg(test)]
    pub(super) fn users_held(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_micros(ms * 1000)
    }

    fn limits(rate: u32, burst: u32) -> RateLimits {
        RateLimits {
            messages_per_second: rate,
            message_burst: burst,
            joins_per_second: rate,
            join_burst: burst,
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = Limiter::new(limits(10, 4));
        let who = Identity::User("ann".into());
        // The burst and the message being sent.
        for _ in 0..5 {
            assert!(l.post(at(0), &who, ConnId(1)).is_ok());
        }
        let wait = l.post(at(0), &who, ConnId(1)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(l.post(at(50), &who, ConnId(1)).is_err());
        assert!(l.post(at(100), &who, ConnId(1)).is_ok());
        assert_eq!(l.refused, 2);
    }

    #[test]
    fn a_user_is_limited_across_connections_a_guest_per_connection() {
        let mut l = Limiter::new(limits(1, 0));
        let ann = Identity::User("ann".into());
        assert!(l.post(at(0), &ann, ConnId(1)).is_ok());
        assert!(l.post(at(0), &ann, ConnId(2)).is_err(), "the same user");
        assert!(l.post(at(0), &Identity::Guest, ConnId(3)).is_ok());
        assert!(
            l.post(at(0), &Identity::Guest, ConnId(4)).is_ok(),
            "another connection"
        );
        assert!(l.post(at(0), &Identity::Guest, ConnId(3)).is_err());
    }

    #[test]
    fn joins_are_limited_per_connection() {
        let mut l = Limiter::new(limits(2, 1));
        assert!(l.join(at(0), ConnId(1)).is_ok());
        assert!(l.join(at(0), ConnId(1)).is_ok());
        assert_eq!(l.join(at(0), ConnId(1)), Err(Duration::from_millis(500)));
        assert!(l.join(at(0), ConnId(2)).is_ok());
        l.disconnected(ConnId(1));
        assert!(
            l.join(at(0), ConnId(1)).is_ok(),
            "a new connection starts full"
        );
    }

    #[test]
    fn users_buckets_stay_bounded() {
        let mut l = Limiter::new(limits(1000, 1));
        for i in 0..(MAX_USER_BUCKETS + 10) {
            let who = Identity::User(format!("u{i}"));
            let _ = l.post(at(0), &who, ConnId(i as u64));
        }
        assert!(l.users_held() <= MAX_USER_BUCKETS);
        // Once they refill, they make room.
        let _ = l.post(at(10), &Identity::User("late".into()), ConnId(1));
        assert!(l.users_held() <= MAX_USER_BUCKETS);
    }

    #[test]
    fn zero_is_no_limit() {
        let mut l = Limiter::new(RateLimits::off());
        for _ in 0..1000 {
            assert!(l.post(at(0), &Identity::Guest, ConnId(1)).is_ok());
            assert!(l.join(at(0), ConnId(1)).is_ok());
        }
    }
}
