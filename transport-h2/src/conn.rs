//! One HTTP/2 connection: h2 streams mapped to core calls.
//!
//! A single task per connection, on its shard's thread, polls everything:
//! the h2 connection (which reads and writes the socket), new streams, each
//! stream's request body, the slot where the shard leaves core outputs, and
//! each stream's send window. It keeps reading while writes are pending,
//! and stops reading only while its events cannot be queued for the core.

use chat_sansio::idmap::IdMap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::io::Io;
use crate::keepalive::Keepalive;
use async_channel::{Sender, TrySendError};
use async_io::Timer;
use bytes::{Bytes, BytesMut};
use chat_sansio::limits::MAX_CALLS_PER_CONNECTION;
use chat_sansio::server::{stalled_status, RequestHead};
use chat_sansio::Status;
use h2::server::{Connection, SendResponse};
use h2::{RecvStream, SendStream};

use crate::config::ServerConfig;
use crate::core_task::{call_id, ToConn, ToCore};
use crate::headers;
use crate::shard::{Shared, Slot};
use crate::wake::PollWaker;

/// Most bytes of queued messages copied together into one DATA frame (h2's
/// default frame size).
const MAX_COALESCE: usize = 16 * 1024;

/// Most rounds of work per wake-up before yielding to other tasks.
const MAX_ROUNDS_PER_POLL: usize = 8;

type BoxedSend = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One call's h2 stream.
struct Stream {
    /// Until response headers go out.
    respond: Option<SendResponse<Bytes>>,
    /// After response headers went out.
    send: Option<SendStream<Bytes>>,
    /// Until the client half-closes or resets.
    recv: Option<RecvStream>,
    /// Framed messages waiting for the send window.
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The first queued message has been partly handed to h2.
    partial: bool,
    /// The largest send capacity h2 has granted this stream: a message no
    /// larger waits for that much window instead of being split, so a
    /// slow client can almost always be cut off between whole messages.
    max_capacity: usize,
    /// After a stall that left a message half sent: how long its client
    /// has to take the rest before the stream is reset.
    grace: Option<Timer>,
    /// Status to send once the queue is empty.
    trailers: Option<Status>,
    /// The core has ended this call: ignore what the client still sends.
    ended: bool,
    /// Ended here as a slow consumer; the core's own ending is ignored.
    stalled: bool,
}

impl Stream {
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> bool {
        let reset = match (&mut self.send, &mut self.respond) {
            (Some(s), _) => s.poll_reset(cx),
            (None, Some(r)) => r.poll_reset(cx),
            (None, None) => return false,
        };
        reset.is_ready()
    }
}

/// The way from one connection to the core: events go straight into the
/// shared bounded queue; when it is full they wait here, and the connection
/// reads nothing more until they are in.
struct CoreQueue<I> {
    tx: Sender<ToCore<I>>,
    backlog: VecDeque<ToCore<I>>,
    blocked: Option<BoxedSend>,
    /// An event from the client was queued since the shard last heard.
    heard: bool,
}

impl<I: Send + 'static> CoreQueue<I> {
    /// Whether nothing is waiting, so reading may go on.
    fn is_clear(&self) -> bool {
        self.backlog.is_empty() && self.blocked.is_none()
    }

    fn push(&mut self, event: ToCore<I>) {
        self.heard = true;
        if self.is_clear() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
    }

    /// Moves waiting events into the shared queue; true when none wait.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if let Some(fut) = &mut self.blocked {
                if fut.as_mut().poll(cx).is_pending() {
                    return false;
                }
                self.blocked = None;
            }
            let Some(event) = self.backlog.pop_front() else {
                return true;
            };
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    let tx = self.tx.clone();
                    self.blocked = Some(Box::pin(async move {
                        let _ = tx.send(event).await;
                    }));
                }
                Err(TrySendError::Closed(_)) => {
                    // The core is gone: the server is shutting down.
                    self.backlog.clear();
                    return true;
                }
            }
        }
    }
}

impl<T, I> Unpin for ConnDriver<T, I> {}

/// Drives one connection until it closes.
pub(crate) struct ConnDriver<T, I> {
    id: u32,
    h2: Connection<Io<T>, Bytes>,
    streams: IdMap<u32, Stream>,
    slot: Rc<RefCell<Slot>>,
    shared: Rc<Shared>,
    taken: Vec<ToConn>,
    core: CoreQueue<I>,
    config: Arc<ServerConfig>,
    waker: Arc<PollWaker>,
    /// `waker` as a `Waker`, handed to h2.
    h2_waker: Waker,
    /// Reads of the socket so far (counted by [`Io`]), and at the last full
    /// pass over the streams: only a read can bring them anything.
    reads: Arc<AtomicU64>,
    reads_seen: u64,
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
    pub(crate) fn new(
        id: u32,
        mut h2: Connection<Io<T>, Bytes>,
        reads: Arc<AtomicU64>,
        slot: Rc<RefCell<Slot>>,
        shared: Rc<Shared>,
        to_core: Sender<ToCore<I>>,
        config: Arc<ServerConfig>,
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
            core: CoreQueue {
                tx: to_core,
                backlog: VecDeque::new(),
                blocked: None,
                heard: false,
            },
            config,
            h2_waker: Waker::from(waker.clone()),
            waker,
            reads,
            reads_seen: u64::MAX,
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
                    let (parts, body) = req.into_parts();
                    let head = RequestHead {
                        method: parts.method.as_str().to_owned(),
                        path: parts.uri.path().to_owned(),
                        headers: headers::to_metadata(&parts.headers),
                    };
                    self.streams.insert(
                        stream,
                        Stream {
                            respond: Some(respond),
                            send: None,
                            recv: Some(body),
                            queue: VecDeque::new(),
                            queued: 0,
                            partial: false,
                            max_capacity: 0,
                            grace: None,
                            trailers: None,
                            ended: false,
                            stalled: false,
                        },
                    );
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
                let mut groups = self.shared.groups.borrow_mut();
                for sub in &mut slot.subs {
                    if let Some(frames) = groups.take(sub) {
                        self.taken.push(ToConn::Message(sub.sid, frames));
                    }
                }
            }
            if self.taken.is_empty() {
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
    }

    fn apply(&mut self, item: ToConn) {
        match item {
            ToConn::Headers(sid) => {
                let Some(s) = self.streams.get_mut(&sid) else {
                    return;
                };
                let Some(mut respond) = s.respond.take() else {
                    return;
                };
                match respond.send_response(headers::response_headers(), false) {
                    Ok(send) => s.send = Some(send),
                    Err(_) => self.reset(sid),
                }
            }
            ToConn::Message(sid, frame) => {
                let Some(s) = self.streams.get_mut(&sid) else {
                    return;
                };
                if !s.ended {
                    s.queued += frame.len();
                    s.queue.push_back(frame);
                }
            }
            ToConn::Trailers(sid, status) => {
                let Some(s) = self.streams.get_mut(&sid) else {
                    return;
                };
                s.ended = true;
                if !s.stalled {
                    s.trailers = Some(status);
                }
            }
            ToConn::TrailersOnly(sid, http_status, status) => {
                let Some(mut s) = self.remove(sid) else {
                    return;
                };
                if let Some(mut respond) = s.respond.take() {
                    let resp = headers::trailers_only(http_status, &status);
                    let _ = respond.send_response(resp, true);
                } else if let Some(send) = &mut s.send {
                    let _ = send.send_trailers(headers::trailers(&status));
                }
                // Dropping the request body now makes h2 reset the client's
                // side with NO_ERROR if it is still sending (HC-3).
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
    /// sends trailers behind them.
    fn flush_sends(&mut self, cx: &mut Context<'_>, progress: &mut bool) {
        let mut broken = Vec::new();
        let mut done = Vec::new();
        let config = &self.config;
        let core = &mut self.core;
        let id = self.id;
        for (&sid, s) in &mut self.streams {
            let Some(send) = &mut s.send else { continue };
            let mut failed = false;
            while let Some(front) = s.queue.front_mut() {
                let mut capacity = send.capacity();
                if capacity < front.len() {
                    send.reserve_capacity(s.queued);
                    capacity = send.capacity();
                    s.max_capacity = s.max_capacity.max(capacity);
                }
                // Split a message only if it is larger than any window this
                // client has given, or if it is already partly sent.
                let whole_fits_later = !s.partial && front.len() <= s.max_capacity;
                if capacity == 0 || (capacity < front.len() && whole_fits_later) {
                    match send.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(_))) => continue,
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => failed = true,
                        Poll::Pending => {}
                    }
                    break;
                }
                let chunk = if capacity >= front.len() {
                    s.partial = false;
                    coalesce(&mut s.queue, capacity)
                } else {
                    s.partial = true;
                    front.split_to(capacity)
                };
                s.queued -= chunk.len();
                *progress = true;
                if send.send_data(chunk, false).is_err() {
                    failed = true;
                    break;
                }
            }
            if failed {
                broken.push(sid);
                continue;
            }
            if !s.stalled && over_limit(s, config) {
                stall(s, config.stall_grace);
                core.push(ToCore::Stalled {
                    call: call_id(id, sid),
                });
            }
            let Some(send) = &mut s.send else { continue };
            if s.queue.is_empty() {
                if let Some(status) = s.trailers.take() {
                    *progress = true;
                    let _ = send.send_trailers(headers::trailers(&status));
                    done.push(sid);
                }
            } else if let Some(grace) = &mut s.grace {
                if Pin::new(grace).poll(cx).is_ready() {
                    // The client never took the rest of its last message:
                    // the byte stream is incomplete, so reset.
                    send.send_reset(h2::Reason::CANCEL);
                    done.push(sid);
                }
            }
        }
        for sid in done {
            // Dropping the stream after trailers: h2 resets the client's
            // side with NO_ERROR if it is still sending (HC-3).
            self.remove(sid);
        }
        for sid in broken {
            self.reset(sid);
        }
    }

    /// Reads request bodies and watches for client resets, if the socket
    /// has brought anything since the last pass, or if `asked` (h2 woke the
    /// task, as it does when it gives a stream frames).
    fn poll_streams(&mut self, cx: &mut Context<'_>, progress: &mut bool, asked: bool) {
        let reads = self.reads.load(Ordering::Relaxed);
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
                            core.push(ToCore::Data { call, chunk });
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

/// Takes the first queued message, and as many whole messages after it as
/// fit in `capacity` (up to [`MAX_COALESCE`] bytes), as one buffer: several
/// gRPC messages in one DATA frame cost h2, the socket and the client one
/// frame instead of several. A lone message goes as it is, without copying.
fn coalesce(queue: &mut VecDeque<Bytes>, capacity: usize) -> Bytes {
    let Some(first) = queue.pop_front() else {
        return Bytes::new();
    };
    let limit = capacity.min(MAX_COALESCE);
    let mut len = first.len();
    let mut more = 0;
    for next in queue.iter() {
        if len + next.len() > limit {
            break;
        }
        len += next.len();
        more += 1;
    }
    if more == 0 {
        return first;
    }
    let mut buf = BytesMut::with_capacity(len);
    buf.extend_from_slice(&first);
    for m in queue.drain(..more) {
        buf.extend_from_slice(&m);
    }
    buf.freeze()
}

/// Whether more waits behind the message being sent than the slow-consumer
/// policy allows. One message of any size may always be in flight.
fn over_limit(s: &Stream, config: &ServerConfig) -> bool {
    let front = s.queue.front().map_or(0, Bytes::len);
    s.queued - front > config.max_queued_bytes_per_call
        || s.queue.len().saturating_sub(1) > config.max_queued_messages_per_call
}

/// Ends a stream whose client is not reading: drops what it has not been
/// sent, except the rest of a message already partly sent (so the client
/// never sees a cut message), and ends with RESOURCE_EXHAUSTED after that,
/// whatever the core had decided.
fn stall(s: &mut Stream, grace: std::time::Duration) {
    let keep = if s.partial { s.queue.pop_front() } else { None };
    s.queue.clear();
    s.queued = 0;
    if let Some(rest) = keep {
        s.queued = rest.len();
        s.queue.push_back(rest);
        s.grace = Some(Timer::after(grace));
    }
    s.stalled = true;
    s.ended = true;
    s.trailers = Some(stalled_status());
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
            this.core.poll_flush(&mut cx);
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
            this.core.poll_flush(&mut cx);
            // Another round only if something arrived or was asked for in
            // this one: new streams, data, a wake-up from h2 or the socket.
            again = asked || (progress && this.waker.take_woken());
            if !again {
                break;
            }
        }
        if let (None, Some(keepalive)) = (&ended, &mut this.keepalive) {
            let reads = this.reads.load(Ordering::Relaxed);
            if keepalive.poll(&mut cx, reads).is_ready() {
                ended = Some(Ended::Unresponsive);
            }
        }
        if std::mem::take(&mut this.core.heard) {
            let mut slot = this.slot.borrow_mut();
            slot.heard = Some(Instant::now());
            if !std::mem::replace(&mut slot.hot, true) {
                this.shared.hot.borrow_mut().push(this.id);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(sizes: &[usize]) -> VecDeque<Bytes> {
        sizes
            .iter()
            .map(|&n| Bytes::from(vec![n as u8; n]))
            .collect()
    }

    #[test]
    fn coalescing_takes_whole_messages_that_fit() {
        let mut q = queue(&[10, 20, 30, 40]);
        let first = coalesce(&mut q, 65);
        assert_eq!(first.len(), 60); // 10 + 20 + 30; 40 more would not fit
        assert_eq!(&first[..10], &[10u8; 10]);
        assert_eq!(&first[30..], &[30u8; 30]);
        assert_eq!(q.len(), 1);
        // A lone message is returned as it is (no copy), even if larger than
        // the capacity: the caller only calls with room for the first.
        let mut q = queue(&[40]);
        let ptr = q[0].as_ptr();
        assert_eq!(coalesce(&mut q, 40).as_ptr(), ptr);
        // Never more than MAX_COALESCE bytes at once.
        let mut q = queue(&[200; 200]);
        let chunk = coalesce(&mut q, usize::MAX);
        assert!(chunk.len() <= MAX_COALESCE && chunk.len() > MAX_COALESCE - 200);
    }
}
