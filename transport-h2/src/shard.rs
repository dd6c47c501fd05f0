//! Shards: the threads that run connections.
//!
//! Each shard is one thread with its own executor, owning the connections
//! handed to it for their whole life, so everything one connection does
//! happens on one thread, with its state in that thread's cache. The core's
//! outputs reach a shard in one batch per core turn (one lock and one
//! wake-up per shard, not per message); the shard's scheduler task hands
//! each connection its part, keeps the shard's multicast groups
//! ([`crate::groups`]), and decides, by the flush wheel ([`crate::flush`]),
//! when each connection's task is woken to write. The core task runs on
//! shard 0.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_io::Timer;
use bytes::Bytes;
use chat_sansio::idmap::IdMap;
use futures_lite::{future, AsyncRead, AsyncWrite};
use smol::LocalExecutor;

use crate::config::ServerConfig;
use crate::conn::{ConnDriver, Ended};
use crate::core_task::{ToConn, ToCore, ToShard};
use crate::flush::Wheel;
use crate::groups::{Arrival, Groups, Sub};

/// Time a new connection has to complete its handshakes (TLS, if any, and
/// HTTP/2) together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Any byte stream a connection can run on.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// A connection's byte stream, once ready: at once for a plain stream,
/// after its handshake for TLS. Awaited on the shard, never on the
/// accepting task.
pub(crate) type Opening =
    Pin<Box<dyn Future<Output = std::io::Result<Box<dyn ByteStream>>> + Send>>;

/// A connection handed to a shard.
pub(crate) struct NewConn {
    pub io: Opening,
    pub peer: Option<String>,
    /// Counts the connection as live until it is dropped.
    pub live: Live,
}

/// One connection in the server's count of live connections, from when it
/// is handed to a shard until its task is done with it.
pub(crate) struct Live(Arc<AtomicUsize>);

impl Live {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::AcqRel);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A queue from one thread to a task on another, taken whole.
pub(crate) struct Inbox<T> {
    inner: Mutex<(Vec<T>, Option<Waker>)>,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            inner: Mutex::new((Vec::new(), None)),
        }
    }
}

impl<T> Inbox<T> {
    /// Moves `batch` in; returns the reader's waker if it was waiting.
    pub(crate) fn deliver(&self, batch: &mut Vec<T>) -> Option<Waker> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.0.is_empty() {
            std::mem::swap(&mut inner.0, batch);
        } else {
            inner.0.append(batch);
        }
        inner.1.take()
    }

    /// Swaps the pending items into `buf` (which must be empty); if there
    /// are none, registers `waker` for the next delivery.
    fn take(&self, buf: &mut Vec<T>, waker: &Waker) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.0.is_empty() {
            if !inner.1.as_ref().is_some_and(|w| w.will_wake(waker)) {
                inner.1 = Some(waker.clone());
            }
        } else {
            std::mem::swap(&mut inner.0, buf);
        }
    }
}

/// The core's outputs for one shard.
pub(crate) type Mailbox = Inbox<ToShard>;

/// A shard as the rest of the server sees it.
pub(crate) struct Shard {
    conns: Sender<NewConn>,
    pub mailbox: Arc<Mailbox>,
}

impl Shard {
    /// Hands a connection to the shard; false if the shard is gone.
    pub(crate) fn serve(&self, conn: NewConn) -> bool {
        self.conns.try_send(conn).is_ok()
    }
}

/// Where a connection's outputs wait for its task, and what the shard's
/// scheduler knows of it. Shared by the scheduler and the connection's
/// task, which run on the same thread.
#[derive(Default)]
pub(crate) struct Slot {
    pub items: Vec<ToConn>,
    /// The task's waker, taken when it is woken.
    pub waker: Option<Waker>,
    /// When the task last took items to write.
    pub flushed: Option<Instant>,
    /// When the client last sent something (a call, a message, an end).
    pub heard: Option<Instant>,
    /// Items wait and the task has been woken, or is due on the wheel.
    pub scheduled: bool,
    /// The connection's phase on the wheel.
    pub phase: usize,
    /// Its streams' places in their multicast groups.
    pub subs: Vec<Sub>,
    /// In the shard's list of connections heard from lately.
    pub hot: bool,
}

/// What a shard's scheduler and its connections' tasks share.
pub(crate) struct Shared {
    pub groups: RefCell<Groups>,
    /// Connections whose clients sent something within the flush interval
    /// (some may have gone quiet since; the scheduler prunes them).
    pub hot: RefCell<Vec<u32>>,
    /// The server is shutting down: connections send GOAWAY.
    pub closing: Cell<bool>,
}

/// What the wheel defers: one connection, or a group's members in one
/// phase.
enum Due {
    Conn(u32),
    Group(u64, usize),
}

/// A shard's own state, on its thread.
struct Local<I> {
    index: u32,
    shards: u32,
    config: Arc<ServerConfig>,
    to_core: Sender<ToCore<I>>,
    slots: RefCell<IdMap<u32, Rc<RefCell<Slot>>>>,
    shared: Rc<Shared>,
    accepted: Cell<u32>,
    phases: usize,
}

impl<I> Local<I> {
    /// A new connection's id, and its number on this shard. `id % shards`
    /// is the shard, so the core routes outputs without a table. Ids are
    /// not reused until about 2^32 connections have come and gone, and
    /// never while one is in use.
    fn next_id(&self) -> (u32, u32) {
        let last = u32::MAX / self.shards - 1;
        loop {
            let n = match self.accepted.get() {
                n if n >= last => 1,
                n => n + 1,
            };
            self.accepted.set(n);
            let id = n * self.shards + self.index;
            if !self.slots.borrow().contains_key(&id) {
                return (id, n);
            }
        }
    }
}

/// Starts `config`'s number of shard threads; `core` runs on shard 0.
pub(crate) fn start<I: Send + 'static>(
    config: &Arc<ServerConfig>,
    to_core: &Sender<ToCore<I>>,
    core: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Vec<Shard> {
    let n = config.shard_count();
    let mut core = Some(core);
    (0..n)
        .map(|index| {
            let (tx, rx) = async_channel::unbounded();
            let mailbox = Arc::new(Mailbox::default());
            let (config, to_core) = (config.clone(), to_core.clone());
            let boot = core.take();
            let mb = mailbox.clone();
            std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    let phases = Wheel::<()>::new(config.flush_interval, Instant::now()).phases();
                    let local = Local {
                        index: index as u32,
                        shards: n as u32,
                        phases,
                        config,
                        to_core,
                        slots: RefCell::default(),
                        shared: Rc::new(Shared {
                            groups: RefCell::new(Groups::new(phases)),
                            hot: RefCell::default(),
                            closing: Cell::new(false),
                        }),
                        accepted: Cell::new(0),
                    };
                    run(local, rx, mb, boot)
                })
                .expect("cannot start a shard thread");
            Shard { conns: tx, mailbox }
        })
        .collect()
}

/// A shard thread: runs its connections until the server is dropped and
/// the last of them has ended.
fn run<I: Send + 'static>(
    local: Local<I>,
    new_conns: Receiver<NewConn>,
    mailbox: Arc<Mailbox>,
    boot: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
) {
    let ex = Rc::new(LocalExecutor::new());
    let local = Rc::new(local);
    if let Some(core) = boot {
        ex.spawn(core).detach();
    }
    ex.spawn(schedule(local.clone(), mailbox)).detach();
    let main = {
        let ex = ex.clone();
        async move {
            while let Ok(conn) = new_conns.recv().await {
                ex.spawn(connection(local.clone(), conn)).detach();
            }
            while !local.slots.borrow().is_empty() {
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    };
    async_io::block_on(ex.run(main));
}

/// The shard's scheduler: hands each connection the core's outputs for it,
/// keeps the groups, and wakes connections' tasks now or at their phase.
async fn schedule<I>(local: Rc<Local<I>>, mailbox: Arc<Mailbox>) {
    let mut s = Scheduler {
        wheel: Wheel::new(local.config.flush_interval, Instant::now()),
        interval: local.config.flush_interval,
        wake: Vec::new(),
    };
    let mut batch = Vec::new();
    let mut due = Vec::new();
    let mut timer = Timer::never();
    let mut timer_at = None;
    future::poll_fn(|cx| loop {
        mailbox.take(&mut batch, cx.waker());
        let now = Instant::now();
        let got_mail = !batch.is_empty();
        for item in batch.drain(..) {
            s.route(&local, item, now);
        }
        s.wheel.take_due(now, &mut due);
        for d in due.drain(..) {
            s.turn(&local, d);
        }
        for w in s.wake.drain(..) {
            w.wake();
        }
        if let Some(at) = s.wheel.due() {
            if timer_at != Some(at) {
                timer.set_at(at);
                timer_at = Some(at);
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                timer_at = None;
                continue;
            }
        }
        if !got_mail {
            return Poll::<()>::Pending;
        }
    })
    .await
}

/// The scheduler's own state.
struct Scheduler {
    wheel: Wheel<Due>,
    interval: Duration,
    /// Tasks to wake once the batch is routed.
    wake: Vec<Waker>,
}

impl Scheduler {
    fn route<I>(&mut self, local: &Local<I>, item: ToShard, now: Instant) {
        let slots = local.slots.borrow();
        let mut groups = local.shared.groups.borrow_mut();
        let (conn, item) = match item {
            ToShard::Conn(conn, item) => (conn, item),
            ToShard::Shutdown => {
                local.shared.closing.set(true);
                for slot in slots.values() {
                    self.wake.extend(slot.borrow_mut().waker.take());
                }
                return;
            }
            ToShard::Multicast(group, frame) => {
                match groups.multicast(group, frame, now, self.interval) {
                    Arrival::Nobody => return,
                    Arrival::Quiet => {
                        for conn in groups.members(group) {
                            if let Some(slot) = slots.get(&conn) {
                                self.wake.extend(slot.borrow_mut().waker.take());
                            }
                        }
                    }
                    Arrival::Busy => {
                        let (wheel, now) = (&mut self.wheel, now);
                        groups.arm(group, |p| wheel.defer(Due::Group(group, p), p, now));
                    }
                }
                // Clients waiting for answers get them at once.
                let (wheel, wake) = (&self.wheel, &mut self.wake);
                local.shared.hot.borrow_mut().retain(|conn| {
                    let Some(slot) = slots.get(conn) else {
                        return false;
                    };
                    let mut s = slot.borrow_mut();
                    if !wheel.recent(s.heard, now) {
                        s.hot = false;
                        return false;
                    }
                    if s.subs.iter().any(|sub| sub.group == group) {
                        wake.extend(s.waker.take());
                    }
                    true
                });
                return;
            }
        };
        let Some(slot) = slots.get(&conn) else {
            return;
        };
        let mut s = slot.borrow_mut();
        let s = &mut *s;
        match item {
            ToConn::Subscribe(sid, group) => {
                let phase = s.phase;
                if leave(&mut groups, s, conn, sid) {
                    self.schedule(s, conn, now);
                }
                let sub = groups.join(group, sid, conn, phase);
                s.subs.push(sub);
            }
            ToConn::Unsubscribe(sid) => {
                if leave(&mut groups, s, conn, sid) {
                    self.schedule(s, conn, now);
                }
            }
            item => {
                // What the group sent the stream before this goes first.
                let sid = item.stream();
                if let Some(sub) = s.subs.iter_mut().find(|sub| sub.sid == sid) {
                    if let Some(frames) = groups.take(sub) {
                        s.items.push(ToConn::Message(sid, frames));
                    }
                }
                s.items.push(item);
                self.schedule(s, conn, now);
            }
        }
    }

    /// Wakes a connection with new items now, or defers it to its phase.
    fn schedule(&mut self, s: &mut Slot, conn: u32, now: Instant) {
        if std::mem::replace(&mut s.scheduled, true) {
            return;
        }
        if self.wheel.recent(s.flushed, now) && !self.wheel.recent(s.heard, now) {
            self.wheel.defer(Due::Conn(conn), s.phase, now);
        } else {
            self.wake.extend(s.waker.take());
        }
    }

    /// Something deferred is due.
    fn turn<I>(&mut self, local: &Local<I>, due: Due) {
        let slots = local.slots.borrow();
        let mut wake = |conn: &u32, only_scheduled: bool| {
            if let Some(slot) = slots.get(conn) {
                let mut s = slot.borrow_mut();
                if s.scheduled || !only_scheduled {
                    self.wake.extend(s.waker.take());
                }
            }
        };
        match due {
            Due::Conn(conn) => wake(&conn, true),
            Due::Group(group, phase) => {
                let mut groups = local.shared.groups.borrow_mut();
                for conn in groups.turn(group, phase) {
                    wake(conn, false);
                }
            }
        }
    }
}

/// Takes stream `sid` of the slot's connection out of its group, if it is
/// in one; what the group sent it until now becomes its items. True if that
/// added items.
fn leave(groups: &mut Groups, s: &mut Slot, conn: u32, sid: u32) -> bool {
    let Some(i) = s.subs.iter().position(|sub| sub.sid == sid) else {
        return false;
    };
    let sub = s.subs.swap_remove(i);
    match groups.leave(sub, conn, s.phase) {
        Some(rest) => {
            s.items.push(ToConn::Message(sid, rest));
            true
        }
        None => false,
    }
}

/// One connection, from the HTTP/2 handshake until it closes.
async fn connection<I: Send + 'static>(local: Rc<Local<I>>, conn: NewConn) {
    let NewConn { io, peer, live } = conn;
    let _live = live;
    let config = &local.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(config.max_header_list_size)
        .initial_window_size(config.initial_stream_window)
        .initial_connection_window_size(config.initial_connection_window)
        .max_send_buffer_size(config.max_send_buffer);
    let reads = Arc::new(AtomicU64::new(0));
    let handshakes = async {
        let io = match io.await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(?peer, "TLS handshake failed: {e}");
                return None;
            }
        };
        let h2 = builder.handshake::<_, Bytes>(crate::io::Io::new(io, reads.clone()));
        Some(h2.await)
    };
    let timeout = async {
        Timer::after(HANDSHAKE_TIMEOUT).await;
        None
    };
    let h2 = match future::or(async { Some(handshakes.await) }, timeout).await {
        Some(Some(Ok(h2))) => h2,
        Some(None) => return,
        Some(Some(Err(e))) => {
            tracing::debug!(?peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        None => {
            tracing::debug!(?peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    let (id, n) = local.next_id();
    let slot = Rc::new(RefCell::new(Slot {
        phase: n as usize % local.phases,
        ..Slot::default()
    }));
    local.slots.borrow_mut().insert(id, slot.clone());
    let to_core = local.to_core.clone();
    let connect = ToCore::Connect {
        conn: id,
        peer: peer.clone(),
    };
    if to_core.send(connect).await.is_ok() {
        let driver = ConnDriver::new(
            id,
            h2,
            reads,
            slot.clone(),
            local.shared.clone(),
            to_core.clone(),
            config.clone(),
        );
        match driver.await {
            Ended::Closed => tracing::debug!(?peer, "connection closed"),
            Ended::Error(e) => tracing::debug!(?peer, "connection ended: {e}"),
            Ended::Unresponsive => tracing::info!(
                ?peer,
                "closing a connection whose peer did not answer a keepalive ping"
            ),
        }
        let _ = to_core.send(ToCore::Disconnect { conn: id }).await;
    }
    local.slots.borrow_mut().remove(&id);
    let mut s = slot.borrow_mut();
    let mut groups = local.shared.groups.borrow_mut();
    for sub in std::mem::take(&mut s.subs) {
        groups.leave(sub, id, s.phase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_is_taken_whole_and_wakes_its_reader_once() {
        let inbox = Inbox::default();
        let (mut buf, mut batch) = (Vec::new(), vec![1, 2]);
        inbox.take(&mut buf, Waker::noop());
        assert!(buf.is_empty());
        assert!(inbox.deliver(&mut batch).is_some(), "the waiting reader");
        let mut more = vec![3];
        assert!(inbox.deliver(&mut more).is_none(), "already woken");
        inbox.take(&mut buf, Waker::noop());
        assert_eq!(buf, [1, 2, 3]);
    }

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    struct Rig {
        local: Local<()>,
        sched: Scheduler,
        wakes: Vec<Arc<Count>>,
        t0: Instant,
    }

    const IV: Duration = Duration::from_millis(10);

    /// A shard with connections 1..=n (connection c in phase c - 1) and no
    /// sockets: the scheduler alone.
    fn rig(n: u32) -> Rig {
        let config = Arc::new(ServerConfig {
            flush_interval: IV,
            ..ServerConfig::default()
        });
        let t0 = Instant::now();
        let wheel = Wheel::new(IV, t0);
        let phases = wheel.phases();
        let local = Local {
            index: 0,
            shards: 1,
            config,
            to_core: async_channel::bounded(1).0,
            slots: RefCell::default(),
            shared: Rc::new(Shared {
                groups: RefCell::new(Groups::new(phases)),
                hot: RefCell::default(),
                closing: Cell::new(false),
            }),
            accepted: Cell::new(0),
            phases,
        };
        let mut wakes = Vec::new();
        for c in 1..=n {
            let count = Arc::new(Count(Default::default()));
            let slot = Slot {
                phase: c as usize - 1,
                waker: Some(Waker::from(count.clone())),
                ..Slot::default()
            };
            local
                .slots
                .borrow_mut()
                .insert(c, Rc::new(RefCell::new(slot)));
            wakes.push(count);
        }
        let sched = Scheduler {
            wheel,
            interval: IV,
            wake: Vec::new(),
        };
        Rig {
            local,
            sched,
            wakes,
            t0,
        }
    }

    impl Rig {
        fn route(&mut self, item: ToShard, at: Duration) {
            self.sched.route(&self.local, item, self.t0 + at);
            for w in self.sched.wake.drain(..) {
                w.wake();
            }
        }

        fn woken(&self, conn: u32) -> usize {
            self.wakes[conn as usize - 1]
                .0
                .load(std::sync::atomic::Ordering::SeqCst)
        }

        /// What the connection's task would take: its items, then what its
        /// groups sent since; re-arms its waker as the task does.
        fn take(&mut self, conn: u32) -> Vec<String> {
            let slots = self.local.slots.borrow();
            let mut s = slots[&conn].borrow_mut();
            let mut out: Vec<String> = std::mem::take(&mut s.items)
                .into_iter()
                .map(|i| match i {
                    ToConn::Message(sid, f) => format!("{sid}:{}", String::from_utf8_lossy(&f)),
                    other => format!("{other:?}"),
                })
                .collect();
            let mut groups = self.local.shared.groups.borrow_mut();
            for sub in &mut s.subs {
                if let Some(f) = groups.take(sub) {
                    out.push(format!("{}:{}", sub.sid, String::from_utf8_lossy(&f)));
                }
            }
            s.scheduled = false;
            s.waker = Some(Waker::from(self.wakes[conn as usize - 1].clone()));
            out
        }
    }

    fn frame(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn connection_ids_name_their_shard_and_wrap_around_live_ones() {
        let mut r = rig(0);
        r.local.shards = 3;
        r.local.index = 2;
        let (id, n) = r.local.next_id();
        assert_eq!((id, n, id % 3), (5, 1, 2));
        // Near the end of the range: back to the start, skipping ids in use.
        r.local.accepted.set(u32::MAX / 3 - 1);
        r.local.slots.borrow_mut().insert(5, Rc::default());
        let (id, n) = r.local.next_id();
        assert_eq!((id, n), (8, 2));
    }

    #[test]
    fn the_scheduler_keeps_group_and_direct_outputs_in_order() {
        let ms = Duration::from_millis;
        let mut r = rig(3);
        for conn in [1, 2] {
            r.route(ToShard::Conn(conn, ToConn::Subscribe(1, 7)), ms(0));
        }
        // A quiet group wakes its members at once; a non-member is left.
        r.route(ToShard::Multicast(7, frame("a")), ms(1));
        assert_eq!((r.woken(1), r.woken(2), r.woken(3)), (1, 1, 0));
        // A direct message to a member comes after what the group sent it
        // before, and before what the group sends after.
        r.route(ToShard::Conn(1, ToConn::Message(1, frame("direct"))), ms(2));
        r.route(ToShard::Multicast(7, frame("b")), ms(3));
        assert_eq!(r.take(1), ["1:a", "1:direct", "1:b"]);
        // Leaving: what came before is still delivered, nothing after.
        r.route(ToShard::Conn(2, ToConn::Unsubscribe(1)), ms(4));
        r.route(ToShard::Multicast(7, frame("c")), ms(5));
        assert_eq!(r.take(2), ["1:ab"]);
        assert!(r.take(2).is_empty());
        assert_eq!(r.take(1), ["1:c"]);
        // Moving to another group: what the old one sent first.
        r.route(ToShard::Multicast(7, frame("d")), ms(6));
        r.route(ToShard::Conn(1, ToConn::Subscribe(1, 8)), ms(6));
        r.route(ToShard::Multicast(7, frame("e")), ms(7));
        r.route(ToShard::Multicast(8, frame("f")), ms(7));
        assert_eq!(r.take(1), ["1:d", "1:f"]);
    }

    #[test]
    fn a_busy_group_wakes_its_members_at_their_phase() {
        let ms = Duration::from_millis;
        let mut r = rig(2);
        for conn in [1, 2] {
            r.route(ToShard::Conn(conn, ToConn::Subscribe(1, 7)), ms(0));
        }
        r.route(ToShard::Multicast(7, frame("quiet")), ms(1));
        assert_eq!((r.woken(1), r.woken(2)), (1, 1));
        r.take(1);
        r.take(2);
        // Within the interval: busy, so nobody is woken now...
        r.route(ToShard::Multicast(7, frame("busy")), ms(2));
        assert_eq!((r.woken(1), r.woken(2)), (1, 1));
        // ...but each at its phase's next turn (phase p at p x 0.5 ms).
        let mut due = Vec::new();
        r.sched.wheel.take_due(r.t0 + ms(10), &mut due);
        assert_eq!(due.len(), 1, "phase 0 turns at 10 ms");
        for d in due.drain(..) {
            r.sched.turn(&r.local, d);
        }
        r.sched
            .wheel
            .take_due(r.t0 + ms(10) + Duration::from_micros(500), &mut due);
        for d in due.drain(..) {
            r.sched.turn(&r.local, d);
        }
        for w in r.sched.wake.drain(..) {
            w.wake();
        }
        assert_eq!((r.woken(1), r.woken(2)), (2, 2));
        assert_eq!(r.take(1), ["1:busy"]);
        assert_eq!(r.take(2), ["1:busy"]);
        // A client heard from lately gets a busy group's frames at once.
        r.local.slots.borrow()[&1].borrow_mut().heard = Some(r.t0 + ms(10));
        r.local.slots.borrow()[&1].borrow_mut().hot = true;
        r.local.shared.hot.borrow_mut().push(1);
        r.route(ToShard::Multicast(7, frame("echo")), ms(11));
        assert_eq!((r.woken(1), r.woken(2)), (3, 2));
        // Once it has been quiet for an interval, it is off the list.
        r.take(1);
        r.route(ToShard::Multicast(7, frame("later")), ms(20));
        assert!(r.local.shared.hot.borrow().is_empty());
    }
}
