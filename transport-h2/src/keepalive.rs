//! Keepalive on both ends (PROTOCOL-HTTP2.md, "Ping"; gRFC A8 for
//! clients, A9 `KEEPALIVE_TIME` for servers): a connection that has
//! brought nothing for a while gets a PING, and one whose peer does not
//! answer in time is taken for dead and closed, so its calls end (on the
//! server, its users leave their rooms; on the client, its calls fail
//! UNAVAILABLE and a client that reconnects can do so at once).
//!
//! A peer that vanishes without closing its socket (a laptop lid shut, a
//! NAT entry dropped, a network cut) otherwise keeps its streams open for
//! ever: the kernel reports nothing until a write times out, and a chat
//! member that only listens is never written to unless the room is busy.
//!
//! Silence is measured from the last byte read, never from the last ping
//! sent (A8), with the read count [`crate::io::Io`] keeps. While anything
//! arrives, no ping is sent. h2 answers the peer's own pings itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use h2::{Ping, PingPong, Pong};

type PingFuture = Pin<Box<dyn Future<Output = (PingPong, Result<Pong, h2::Error>)> + Send>>;

enum State {
    /// No ping out; the timer is the end of the silence allowed.
    Listening(PingPong),
    /// A ping is out; the timer is its deadline.
    Waiting { ping: PingFuture, sent: Instant },
    /// h2 refused a ping (the connection is failing, and h2 will say so).
    Off,
}

/// One connection's keepalive: polled on every pass of its task.
pub(crate) struct Keepalive {
    time: Duration,
    timeout: Duration,
    state: State,
    timer: Timer,
    reads_seen: u64,
    last_read: Instant,
}

impl Keepalive {
    /// Pings after `time` without a read; gives the peer `timeout` to
    /// answer.
    pub(crate) fn new(pings: PingPong, time: Duration, timeout: Duration) -> Keepalive {
        let now = Instant::now();
        Keepalive {
            time,
            timeout,
            state: State::Listening(pings),
            timer: Timer::at(now + time),
            reads_seen: 0,
            last_read: now,
        }
    }

    /// Takes note of the socket's read count `reads`, and sends or checks a
    /// ping when its time has come. `Ready` means the peer has been silent
    /// through a whole ping timeout: the connection is dead.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, reads: u64) -> Poll<()> {
        if reads != self.reads_seen {
            self.reads_seen = reads;
            self.last_read = Instant::now();
        }
        loop {
            match &mut self.state {
                State::Off => return Poll::Pending,
                State::Waiting { ping, sent } => {
                    if let Poll::Ready((pings, result)) = ping.as_mut().poll(cx) {
                        self.state = match result {
                            Ok(_) => State::Listening(pings),
                            Err(_) => State::Off,
                        };
                        self.timer.set_at(self.last_read + self.time);
                        continue;
                    }
                    if Pin::new(&mut self.timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if self.last_read <= *sent {
                        return Poll::Ready(());
                    }
                    // Bytes came, but not yet the answer: the peer lives,
                    // behind a long queue. Give the answer another timeout.
                    *sent = self.last_read;
                    self.timer.set_after(self.timeout);
                }
                State::Listening(_) => {
                    if Pin::new(&mut self.timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let due = self.last_read + self.time;
                    if Instant::now() < due {
                        self.timer.set_at(due);
                        continue;
                    }
                    if let State::Listening(mut pings) =
                        std::mem::replace(&mut self.state, State::Off)
                    {
                        self.state = State::Waiting {
                            ping: Box::pin(async move {
                                let result = pings.ping(Ping::opaque()).await;
                                (pings, result)
                            }),
                            sent: Instant::now(),
                        };
                    }
                    self.timer.set_after(self.timeout);
                }
            }
        }
    }
}
