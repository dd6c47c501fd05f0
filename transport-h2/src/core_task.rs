//! The task that owns the sans-IO core: it applies events from every
//! connection in arrival order, and routes the core's outputs to the
//! connections' inboxes.

use chat_sansio::idmap::IdMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use async_channel::Receiver;
use async_io::Timer;
use bytes::Bytes;
use chat_sansio::server::{CallId, ConnId, Handler, Output, RequestHead, Server};
use chat_sansio::Status;
use futures_lite::future;

use crate::clock::Clock;
use crate::flush::Schedule;

/// Most events applied to the core between two routings of its outputs, so
/// deliveries start while a burst is still arriving.
const MAX_EVENTS_PER_TURN: usize = 256;

/// An event for the core, from a connection or from the application.
pub(crate) enum ToCore<I> {
    Connect {
        conn: u32,
        inbox: Arc<Inbox>,
        peer: Option<String>,
    },
    Disconnect {
        conn: u32,
    },
    Open {
        conn: u32,
        stream: u32,
        head: RequestHead,
    },
    Data {
        call: CallId,
        chunk: Bytes,
    },
    End {
        call: CallId,
    },
    Reset {
        call: CallId,
    },
    Stalled {
        call: CallId,
    },
    Input(I),
}

/// What the core asks one connection to write, by h2 stream id.
#[derive(Debug)]
pub(crate) enum ToConn {
    Headers(u32),
    Message(u32, Bytes),
    Trailers(u32, Status),
    TrailersOnly(u32, u16, Status),
}

/// The id the core knows a call by: the connection in the high half, the
/// h2 stream id in the low half, so routing an output needs no table.
pub(crate) fn call_id(conn: u32, stream: u32) -> CallId {
    CallId(u64::from(conn) << 32 | u64::from(stream))
}

fn split_call(call: CallId) -> (u32, u32) {
    ((call.0 >> 32) as u32, call.0 as u32)
}

/// A connection's inbox of core outputs, filled by the core task and
/// emptied by the connection task. The lock is per connection: nothing on
/// the delivery path is shared by all connections.
#[derive(Default)]
pub(crate) struct Inbox {
    inner: Mutex<InboxInner>,
}

#[derive(Default)]
struct InboxInner {
    items: Vec<ToConn>,
    waker: Option<Waker>,
}

impl Inbox {
    /// Adds an item; returns the connection's waker if the inbox was empty
    /// (the caller wakes it once its whole batch is routed).
    fn push(&self, item: ToConn) -> Option<Waker> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.items.push(item);
        if inner.items.len() == 1 {
            inner.waker.take()
        } else {
            None
        }
    }

    /// Swaps the pending items into `buf` (which must be empty); if there
    /// are none, registers `waker` for the next push.
    pub(crate) fn take(&self, buf: &mut Vec<ToConn>, waker: &Waker) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.items.is_empty() {
            if !inner.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                inner.waker = Some(waker.clone());
            }
        } else {
            std::mem::swap(&mut inner.items, buf);
        }
    }
}

/// A connection as the core task sees it.
struct Conn {
    inbox: Arc<Inbox>,
    /// When it was last woken to write.
    woken: Option<Instant>,
    /// When its client last sent something (a call, a message, a half-close).
    heard: Option<Instant>,
}

/// Runs the core until every sender of events is gone.
///
/// Outputs reach the connections' inboxes at once, but a connection is
/// woken at most once per `flush_interval`, on a shared tick
/// (see [`crate::flush`]): it then takes all its messages in one wake-up
/// and writes them in one syscall (write coalescing; the README's benchmark
/// section has what it buys).
pub(crate) async fn run<H: Handler>(
    mut core: Server<H>,
    rx: Receiver<ToCore<H::Input>>,
    mut on_event: impl FnMut(H::Event),
    clock: Clock,
    flush_interval: Duration,
) {
    let mut conns: IdMap<u32, Conn> = IdMap::default();
    let mut schedule: Schedule<(u32, Waker)> = Schedule::new(flush_interval, Instant::now());
    let mut wake: Vec<(u32, Waker)> = Vec::new();
    loop {
        let core_due = core.poll_timeout().map(|t| clock.instant_at(t));
        let flush_due = schedule.due();
        let due = match (core_due, flush_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let first = match due {
            Some(at) => {
                let timer = async {
                    Timer::at(at).await;
                    None
                };
                future::or(async { Some(rx.recv().await) }, timer).await
            }
            None => Some(rx.recv().await),
        };
        let now = clock.now();
        // One reading of the monotonic clock per turn, for the write
        // schedule: nothing on the per-recipient path reads a clock.
        let at = Instant::now();
        match first {
            Some(Ok(event)) => apply(&mut core, &mut conns, now, at, event),
            Some(Err(_)) => break,
            None => {}
        }
        for _ in 1..MAX_EVENTS_PER_TURN {
            match rx.try_recv() {
                Ok(event) => apply(&mut core, &mut conns, now, at, event),
                Err(_) => break,
            }
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        while let Some(output) = core.poll_output() {
            let (call, item) = match output {
                Output::Event(e) => {
                    on_event(e);
                    continue;
                }
                Output::Headers { call } => (call, ToConn::Headers(split_call(call).1)),
                Output::Message { call, frame } => {
                    (call, ToConn::Message(split_call(call).1, frame))
                }
                Output::Trailers { call, status } => {
                    (call, ToConn::Trailers(split_call(call).1, status))
                }
                Output::TrailersOnly {
                    call,
                    http_status,
                    status,
                } => (
                    call,
                    ToConn::TrailersOnly(split_call(call).1, http_status, status),
                ),
            };
            let id = split_call(call).0;
            if let Some(conn) = conns.get_mut(&id) {
                if let Some(waker) = conn.inbox.push(item) {
                    let recent = |t: Option<Instant>| t.is_some_and(|t| schedule.must_wait(t, at));
                    if recent(conn.woken) && !recent(conn.heard) {
                        schedule.defer((id, waker), at);
                    } else {
                        wake.push((id, waker));
                    }
                }
            }
        }
        schedule.take_due(at, &mut wake);
        for (id, waker) in wake.drain(..) {
            if let Some(conn) = conns.get_mut(&id) {
                conn.woken = Some(at);
            }
            waker.wake();
        }
    }
}

/// A client that has sent something within the flush interval is likely
/// waiting for answers (an echo, a reply, a status): its connection's
/// outputs go out at once instead of waiting for the flush tick. Write
/// coalescing is for connections that only receive, such as a busy room's
/// readers, and a closed-loop client is not slowed to one answer per
/// interval.
fn answer_at_once(conns: &mut IdMap<u32, Conn>, conn: u32, at: Instant) {
    if let Some(c) = conns.get_mut(&conn) {
        c.heard = Some(at);
    }
}

fn apply<H: Handler>(
    core: &mut Server<H>,
    conns: &mut IdMap<u32, Conn>,
    now: chat_sansio::Time,
    at: Instant,
    event: ToCore<H::Input>,
) {
    match event {
        ToCore::Connect { conn, inbox, peer } => {
            conns.insert(
                conn,
                Conn {
                    inbox,
                    woken: None,
                    heard: None,
                },
            );
            core.handle_connect(now, ConnId(conn.into()), peer);
        }
        ToCore::Disconnect { conn } => {
            conns.remove(&conn);
            core.handle_disconnect(now, ConnId(conn.into()));
        }
        ToCore::Open { conn, stream, head } => {
            answer_at_once(conns, conn, at);
            core.handle_open(now, ConnId(conn.into()), call_id(conn, stream), head)
        }
        ToCore::Data { call, chunk } => {
            answer_at_once(conns, split_call(call).0, at);
            core.handle_data(now, call, &chunk)
        }
        ToCore::End { call } => {
            answer_at_once(conns, split_call(call).0, at);
            core.handle_end(now, call)
        }
        ToCore::Reset { call } => core.handle_reset(now, call),
        ToCore::Stalled { call } => core.handle_stalled(now, call),
        ToCore::Input(input) => core.handle_input(now, input),
    }
}
