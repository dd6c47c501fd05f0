//! The connection to Redis the engine's threads use, its errors, and what
//! every thread runs through it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Connection, RedisResult};

use super::scripts::Scripts;
use super::wire;

/// How long a connection attempt may take: a node that cannot reach Redis
/// answers posts with UNAVAILABLE this soon, rather than holding them.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long one command (or pipeline) may wait for Redis: past it, the
/// outcome is unknown, the posts fail with UNAVAILABLE and may be retried
/// with their client message ids.
pub const IO_TIMEOUT: Duration = Duration::from_millis(2000);
/// Why a Redis operation failed.
#[derive(Debug)]
pub struct RedisError {
    what: &'static str,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl RedisError {
    pub(super) fn new(
        what: &'static str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        RedisError {
            what,
            cause: cause.into(),
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis: {}: {}", self.what, self.cause)
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// A connection to Redis, made when needed and dropped after any error
/// that may have left it out of step, with the scripts loaded on it.
pub struct Link {
    client: redis::Client,
    con: Option<Connection>,
    scripts: Scripts,
    io_timeout: Duration,
}

impl Link {
    /// A link to `client`'s server; it connects on first use.
    pub fn new(client: redis::Client) -> Link {
        Link {
            client,
            con: None,
            scripts: Scripts::new(),
            io_timeout: IO_TIMEOUT,
        }
    }

    /// Runs `f` on the connection (made first if there is none). A
    /// `NOSCRIPT` loads the scripts and runs `f` again; any other error
    /// that is not Redis refusing one command drops the connection.
    pub fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut Connection, &Scripts) -> RedisResult<T>,
    ) -> RedisResult<T> {
        if self.con.is_none() {
            let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
            con.set_read_timeout(Some(self.io_timeout))?;
            con.set_write_timeout(Some(self.io_timeout))?;
            let mut con = con;
            self.scripts.load(&mut con)?;
            self.con = Some(con);
        }
        let con = self.con.as_mut().expect("made above");
        let mut result = f(con, &self.scripts);
        if matches!(&result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            result = self.scripts.load(con).and_then(|()| f(con, &self.scripts));
        }
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_unrecoverable_error()
            {
                self.con = None;
            }
        }
        result
    }
}

/// Runs the join (`here`) or leave script for `user` of `room` through
/// `node`; whether the change is news anywhere (the script published it to
/// the other nodes; this node's chat is to announce it itself).
pub fn presence_change(
    link: &mut Link,
    node: &str,
    room: &str,
    user_id: &str,
    name: &str,
    here: bool,
) -> RedisResult<bool> {
    let node_set = wire::node_presence(node);
    let n: i64 = link.run(|con, scripts| {
        let script = if here { &scripts.join } else { &scripts.leave };
        script
            .key(wire::presence(room))
            .key(wire::names(room))
            .key(&node_set)
            .arg(user_id)
            .arg(name)
            .arg(wire::member(room, user_id))
            .arg(wire::channel(room))
            .arg(node)
            .invoke(con)
    })?;
    Ok(if here { n == 1 } else { n == 0 })
}

/// A new epoch: the clock's microseconds, below 2^53 (Lua's numbers are
/// doubles, and the scripts compare epochs as strings anyway).
pub fn fresh_epoch() -> u64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    (micros & ((1 << 53) - 1)).max(1)
}
