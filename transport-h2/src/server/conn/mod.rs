//! One HTTP/2 connection: h2 streams mapped to core calls.
//!
//! A single task per connection, on its shard's thread, polls everything:
//! the h2 connection (which reads and writes the socket), new streams, each
//! stream's request body, the slot where the shard leaves core outputs, and
//! each stream's send window. It keeps reading while writes are pending,
//! and stops reading only while its events cannot be queued for the core.

mod core_queue;
pub(crate) mod open;
mod send_queue;
mod wake;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_channel::Sender;
use bytes::Bytes;
use chat_sansio::idmap::IdMap;
use chat_sansio::limits::MAX_CALLS_PER_CONNECTION;
use chat_sansio::metadata::Metadata;
use chat_sansio::server::RequestHead;
use chat_sansio::{Code, Status};
use h2::server::Connection;

use crate::headers;
use crate::inbound::Meter;
use crate::io::Io;
use crate::keepalive::Keepalive;
use crate::server::budget::Budget;
use crate::server::config::ServerConfig;
use crate::server::groups::Overflow;
use crate::server::messages::{call_id, ToConn, ToCore};
use crate::server::share::Share;
use crate::server::slot::{Shared, Slot};
use core_queue::CoreQueue;
use send_queue::Stream;
use wake::PollWaker;

/// Most rounds of work per wake-up before yielding to other tasks.
const MAX_ROUNDS_PER_POLL: usize = 8;

/// While the process budget is spent, a call with more than this queued
/// is cut as one that is not keeping up. Readers that keep up have at most
/// a few messages waiting; 64 KiB is hundreds of chat messages.
const CUT_WHEN_FULL: usize = 64 * 1024;

impl<T, I> Unpin for ConnDriver<T, I> {}

/// Drives one connection until it closes.
pub(crate) struct ConnDriver<T, I> {
    id: u32,
    h2: Connection<Io<T>, Bytes>,
    streams: IdMap<u32, Stream>,
    slot: Rc<RefCell<Slot>>,
    shared: Rc<Shared>,
    taken: Vec<ToConn>,
    /// Members found too far behind to take what their group sent.
    overflowed: Vec<u32>,
    core: CoreQueue<I>,
    config: Arc<ServerConfig>,
    waker: Arc<PollWaker>,
    /// `waker` as a `Waker`, handed to h2.
    h2_waker: Waker,
    /// What the socket under h2 tells us ([`Io`]): reads so far, floods.
    meter: Arc<Meter>,
    /// Reads at the last full pass over the streams: only a read can bring
    /// them anything.
    reads_seen: u64,
    /// The process-wide budget, and this connection's output counted in it.
    budget: Arc<Budget>,
    counted: usize,
    /// Bytes of DATA handed to h2 so far (against what the socket took:
    /// what h2 still holds for a client that does not read).
    handed: u64,
    /// The peer, for the log.
    peer: Option<String>,
    /// Sent GOAWAY ENHANCE_YOUR_CALM.
    calmed: bool,
    /// The streams need a pass whatever the socket did: one stopped early
    /// (the core's queue was full), or a stream is new.
    streams_pending: bool,
    /// GOAWAY has been sent (the server is shutting down).
    going_away: bool,
    /// Pings a silent peer; `None` when keepalive is off.
    keepalive: Option<Keepalive>,
}

/// How a connection ended.
pub(crate) enum Ended {
    Closed,
    Error(h2::Error),
    /// The peer did not answer a keepalive ping in time.
    Unresponsive,
}

impl<T, I> ConnDriver<T, I>
where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    I: Send + 'static,
{
    #[allow(clippy::too_many_arguments)] // one per thing a connection is tied to
    pub(crate) fn new(
        id: u32,
        mut h2: Connection<Io<T>, Bytes>,
        meter: Arc<Meter>,
        slot: Rc<RefCell<Slot>>,
        shared: Rc<Shared>,
        to_core: Sender<ToCore<I>>,
        config: Arc<ServerConfig>,
        budget: Arc<Budget>,
        peer: Option<String>,
    ) -> Self {
        let waker = Arc::new(PollWaker::default());
        let keepalive = config.keepalive_time.and_then(|time| {
            let pings = h2.ping_pong()?;
            Some(Keepalive::new(pings, time, config.keepalive_timeout))
        });
        ConnDriver {
            id,
            h2,
            streams: IdMap::default(),
            slot,
            shared,
            taken: Vec::new(),
            overflowed: Vec::new(),
            core: CoreQueue::new(
                to_core,
                Arc::new(Share::new(config.max_input_in_flight, budget.clone())),
            ),
            config,
            h2_waker: Waker::from(waker.clone()),
            waker,
            meter,
            reads_seen: u64::MAX,
            budget,
            counted: 0,
            handed: 0,
            peer,
            calmed: false,
            streams_pending: false,
            going_away: false,
            keepalive,
        }
    }

    /// Accepts new streams, or only drives the connection while reading is
    /// paused. Returns `Some` when the connection is over.
    fn poll_connection(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Option<Ended> {
        if !self.core.is_clear() {
            return match self.h2.poll_closed(cx) {
                Poll::Ready(Ok(())) => Some(Ended::Closed),
                Poll::Ready(Err(e)) => Some(Ended::Error(e)),
                Poll::Pending => None,
            };
        }
        loop {
            match self.h2.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => {
                    *progress = true;
                    // Its body may have come with its headers.
                    self.streams_pending = true;
                    if self.streams.len() >= MAX_CALLS_PER_CONNECTION {
                        // h2 frees a slot as soon as a client's RST_STREAM
                        // arrives; tell the core of such resets before
                        // this call, or it would count the freed slot.
                        self.sweep_resets(cx);
                    }
                    let stream = respond.stream_id().as_u32();
                    if self.budget.is_full() {
                        // The process holds all it may for peers: refuse
                        // new work until those behind have been let go.
                        let status = Status::new(
                            Code::ResourceExhausted,
                            "server is out of memory for new calls; try again",
                        );
                        let mut respond = respond;
                        let _ = respond.send_response(
                            headers::trailers_only(200, &status, &Metadata::new()),
                            true,
                        );
                        continue;
                    }
                    let (parts, body) = req.into_parts();
                    let head = RequestHead {
                        method: parts.method.as_str().to_owned(),
                        path: parts.uri.path().to_owned(),
                        headers: headers::to_metadata(&parts.headers),
                    };
                    self.streams.insert(stream, Stream::new(respond, body));
                    self.core.push(ToCore::Open {
                        conn: self.id,
                        stream,
                        head,
                    });
                    if !self.core.poll_flush(cx) {
                        return None;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Some(Ended::Error(e)),
                Poll::Ready(None) => return Some(Ended::Closed),
                Poll::Pending => return None,
            }
        }
    }

    /// Applies the core's outputs the shard has left for this connection,
    /// and what its streams' groups have multicast since they last took,
    /// and leaves the task's waker for the next ones.
    fn drain_slot(&mut self, task: &Waker, progress: &mut bool) {
        {
            let mut slot = self.slot.borrow_mut();
            let slot = &mut *slot;
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(task)) {
                slot.waker = Some(task.clone());
            }
            slot.scheduled = false;
            std::mem::swap(&mut slot.items, &mut self.taken);
            if !slot.subs.is_empty() {
                // A member takes what its group sent only within its
                // connection's bound: one further behind is cut without a
                // copy, so a thousand stalled members cost nothing
                // (copies of the log would otherwise pile up before the
                // slow-consumer policy could let them go).
                let config = &self.config;
                let mut conn_room = config
                    .max_queued_bytes_per_conn
                    .saturating_sub(self.streams.values().map(Stream::behind).sum());
                let mut groups = self.shared.groups.borrow_mut();
                for sub in &mut slot.subs {
                    // (The per-call policy applies once what can go out
                    // has gone: a reader that keeps up may take a burst.)
                    let room = match self.streams.get(&sub.sid) {
                        Some(s) if !s.is_cut() => conn_room,
                        _ => 0,
                    };
                    match groups.take_at_most(sub, room) {
                        Ok(Some(frames)) => {
                            conn_room = conn_room.saturating_sub(frames.len());
                            self.taken.push(ToConn::Message(sub.sid, frames));
                        }
                        Ok(None) => {}
                        Err(Overflow) => self.overflowed.push(sub.sid),
                    }
                }
            }
            if self.taken.is_empty() && self.overflowed.is_empty() {
                return;
            }
            slot.flushed = Some(Instant::now());
        }
        *progress = true;
        let mut taken = std::mem::take(&mut self.taken);
        for item in taken.drain(..) {
            self.apply(item);
        }
        self.taken = taken;
        for sid in std::mem::take(&mut self.overflowed) {
            if let Some(s) = self.streams.get_mut(&sid) {
                if s.cut(&self.config) {
                    self.core.push(ToCore::Stalled {
                        call: call_id(self.id, sid),
                    });
                }
            }
        }
    }

    fn apply(&mut self, item: ToConn) {
        match item {
            ToConn::Headers(sid, encoding, metadata) => {
                let Some(s) = self.streams.get_mut(&sid) else {
                    return;
                };
                let Some(mut respond) = s.respond.take() else {
                    return;
                };
                match respond.send_response(headers::response_headers(encoding, &metadata), false) {
                    Ok(send) => s.send = Some(send),
                    Err(_) => self.reset(sid),
                }
            }
            ToConn::Message(sid, frame) => {
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.push(frame);
                }
            }
            ToConn::Trailers(sid, status, metadata) => {
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.finish(status, metadata);
                }
            }
            ToConn::TrailersOnly(sid, http_status, status, metadata) => {
                let Some(mut s) = self.remove(sid) else {
                    return;
                };
                if let Some(mut respond) = s.respond.take() {
                    let resp = headers::trailers_only(http_status, &status, &metadata);
                    let _ = respond.send_response(resp, true);
                } else if let Some(send) = &mut s.send {
                    let _ = send.send_trailers(headers::trailers(&status, &metadata));
                }
                // Dropping the request body now makes h2 reset the client's
                // side with NO_ERROR if it is still sending (PROTOCOL-HTTP2.md, "Early
                // Server Closure").
            }
            // Reading stops (or goes on) with the next round's check.
            ToConn::Pause(paused) => self.core.paused = paused,
            ToConn::WhenDrained(sid) => {
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.want_drained = true;
                }
            }
            // The shard keeps the groups; these never reach a connection.
            ToConn::Subscribe(..) | ToConn::Unsubscribe(_) => {}
        }
    }

    /// Drops a stream, and its place in a group if it has one.
    fn remove(&mut self, sid: u32) -> Option<Stream> {
        let stream = self.streams.remove(&sid)?;
        let mut slot = self.slot.borrow_mut();
        if let Some(i) = slot.subs.iter().position(|sub| sub.sid == sid) {
            let sub = slot.subs.swap_remove(i);
            let phase = slot.phase;
            self.shared.groups.borrow_mut().leave(sub, self.id, phase);
        }
        Some(stream)
    }

    /// The client's side of a stream is gone: tell the core, drop the stream.
    fn reset(&mut self, sid: u32) {
        if let Some(s) = self.remove(sid) {
            if !s.ended {
                self.core.push(ToCore::Reset {
                    call: call_id(self.id, sid),
                });
            }
        }
    }

    /// Finds streams the client has reset and tells the core.
    fn sweep_resets(&mut self, cx: &mut Context<'_>) {
        let gone: Vec<u32> = self
            .streams
            .iter_mut()
            .filter(|(_, s)| !s.ended)
            .filter_map(|(&sid, s)| s.poll_reset(cx).then_some(sid))
            .collect();
        for sid in gone {
            self.reset(sid);
        }
    }

    /// Hands queued messages to h2 as its flow-control window allows, and
    /// sends trailers behind them (see [`Stream::flush`]).
    fn flush_sends(&mut self, cx: &mut Context<'_>, progress: &mut bool) {
        let mut broken = Vec::new();
        let mut done = Vec::new();
        for (&sid, s) in &mut self.streams {
            let pass = s.flush(cx, &self.config);
            *progress |= pass.progress;
            self.handed += pass.handed as u64;
            if pass.broken {
                broken.push(sid);
                continue;
            }
            if pass.stalled {
                self.core.push(ToCore::Stalled {
                    call: call_id(self.id, sid),
                });
            }
            if pass.drained {
                self.core.push(ToCore::Drained {
                    call: call_id(self.id, sid),
                });
            }
            if pass.done {
                done.push(sid);
            }
        }
        self.enforce_budgets(cx, &mut done);
        for sid in done {
            // Dropping the stream after trailers: h2 resets the client's
            // side with NO_ERROR if it is still sending (PROTOCOL-HTTP2.md,
            // "Early Server Closure").
            self.remove(sid);
        }
        for sid in broken {
            self.reset(sid);
        }
    }

    /// Keeps the connection's output within its own budget and, while the
    /// process budget is spent, cuts its calls that are behind: the largest
    /// backlogs first, each with RESOURCE_EXHAUSTED as a slow consumer.
    fn enforce_budgets(&mut self, cx: &mut Context<'_>, done: &mut Vec<u32>) {
        let limit = self.config.max_queued_bytes_per_conn;
        let full = self.budget.is_full();
        loop {
            // What h2 holds for the socket: DATA handed to it and not yet
            // written (an underestimate: what was written includes framing).
            let in_h2 = self.handed.saturating_sub(self.meter.written()) as usize;
            let behind: usize = self.streams.values().map(Stream::behind).sum::<usize>() + in_h2;
            let Some((&sid, s)) = self
                .streams
                .iter_mut()
                .filter(|(_, s)| s.behind() > 0 && !s.is_cut())
                .max_by_key(|(_, s)| s.behind())
            else {
                break;
            };
            let over = behind > limit || (full && s.behind() > CUT_WHEN_FULL);
            if !over || !s.cut(&self.config) {
                break;
            }
            self.core.push(ToCore::Stalled {
                call: call_id(self.id, sid),
            });
            // Its trailers (or, after a grace, its reset) go out now.
            if s.flush(cx, &self.config).done {
                done.push(sid);
            }
        }
        let in_h2 = self.handed.saturating_sub(self.meter.written()) as usize;
        let held = self.streams.values().map(Stream::queued).sum::<usize>() + in_h2;
        self.budget.output_changed(self.counted, held);
        self.counted = held;
    }

    /// Reads request bodies and watches for client resets, if the socket
    /// has brought anything since the last pass, or if `asked` (h2 woke the
    /// task, as it does when it gives a stream frames).
    fn poll_streams(&mut self, cx: &mut Context<'_>, progress: &mut bool, asked: bool) {
        let reads = self.meter.reads();
        if reads == self.reads_seen && !self.streams_pending && !asked {
            return;
        }
        self.reads_seen = reads;
        self.streams_pending = false;
        let mut gone = Vec::new();
        let core = &mut self.core;
        for (&sid, s) in &mut self.streams {
            if !core.is_clear() {
                break;
            }
            let call = call_id(self.id, sid);
            let Some(recv) = &mut s.recv else {
                if !s.ended && s.poll_reset(cx) {
                    gone.push(sid);
                }
                continue;
            };
            loop {
                match recv.poll_data(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        *progress = true;
                        let _ = recv.flow_control().release_capacity(chunk.len());
                        if !s.ended && !chunk.is_empty() {
                            core.push_data(call, chunk);
                            if !core.is_clear() {
                                break;
                            }
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        *progress = true;
                        gone.push(sid);
                        break;
                    }
                    Poll::Ready(None) => {
                        *progress = true;
                        s.recv = None;
                        if !s.ended {
                            core.push(ToCore::End { call });
                        }
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        // Stopped by backpressure, maybe with data left in some stream:
        // the next poll passes again, socket read or not.
        self.streams_pending = !self.core.is_clear();
        for sid in gone {
            self.reset(sid);
        }
    }
}

impl<T, I> Drop for ConnDriver<T, I> {
    fn drop(&mut self) {
        // What it held is freed with it.
        self.budget.output_changed(self.counted, 0);
    }
}

impl<T, I> ConnDriver<T, I>
where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    /// If the peer has flooded us with control frames, ends the connection
    /// with GOAWAY ENHANCE_YOUR_CALM (once). True when it did so now.
    fn calm(&mut self) -> bool {
        let Some(flood) = self.meter.flood() else {
            return false;
        };
        if std::mem::replace(&mut self.calmed, true) {
            return false;
        }
        tracing::warn!(
            peer = self.peer.as_deref().unwrap_or("-"),
            "closing a connection: {}; GOAWAY ENHANCE_YOUR_CALM",
            flood.describe()
        );
        self.h2.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
        true
    }
}

impl<T, I> Future for ConnDriver<T, I>
where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    I: Send + 'static,
{
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let this = self.get_mut();
        let task = cx.waker();
        this.waker.begin(task);
        this.meter.begin_turn();
        let h2_waker = this.h2_waker.clone();
        let mut cx = Context::from_waker(&h2_waker);
        let mut ended = None;
        let mut again = false;
        if !this.going_away && this.shared.closing.get() {
            // GOAWAY; h2 ends the connection once its streams are done (the
            // core ends those left at the end of its grace period).
            this.going_away = true;
            this.h2.graceful_shutdown();
        }
        for _ in 0..MAX_ROUNDS_PER_POLL {
            let mut progress = false;
            let clear = this.core.poll_flush(&mut cx);
            this.meter.pause(!clear);
            this.drain_slot(task, &mut progress);
            this.flush_sends(&mut cx, &mut progress);
            // What h2 asked for so far (every `send_data` wakes its
            // connection) is served by polling the connection now.
            this.waker.take_woken();
            ended = this.poll_connection(&mut cx, &mut progress);
            if ended.is_some() {
                break;
            }
            // A wake-up during the connection's poll may be h2 handing a
            // stream frames it had already read: look at the streams then
            // too, and go round again in case it was the socket.
            let asked = this.waker.take_woken();
            this.poll_streams(&mut cx, &mut progress, asked);
            let clear = this.core.poll_flush(&mut cx);
            this.meter.pause(!clear);
            if this.calm() {
                // h2 sends the GOAWAY and closes; the next poll sees it.
                task.wake_by_ref();
                break;
            }
            // Another round only if something arrived or was asked for in
            // this one (new streams, data, a wake-up from h2 or the socket)
            // and this turn's share of input is not spent.
            // Streams (or a socket) left unread while the core's queue was
            // full are read again as soon as it has room: the wake-up that
            // said so may have come during this poll and been taken above.
            let unread = clear && (this.streams_pending || this.meter.take_refused());
            again = asked || unread || (progress && this.waker.take_woken());
            if !again || this.meter.turn_spent(this.config.input.turn_bytes) {
                break;
            }
        }
        if let (None, Some(keepalive)) = (&ended, &mut this.keepalive) {
            if keepalive.poll(&mut cx, this.meter.reads()).is_ready() {
                ended = Some(Ended::Unresponsive);
            }
        }
        let woken = this.waker.end();
        if (again || woken) && ended.is_none() {
            // Still busy, or woken at the very end: come back after the
            // other tasks of the shard have run.
            task.wake_by_ref();
        }
        match ended {
            Some(ended) => Poll::Ready(ended),
            None => Poll::Pending,
        }
    }
}
