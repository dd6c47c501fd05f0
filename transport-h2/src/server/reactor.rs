//! Each shard's own event loop: its TCP sockets in an epoll set of its own,
//! read and written by the same thread that runs their tasks.
//!
//! async-io, under smol, has one reactor for the process: one thread at a
//! time waits on it and wakes the thread whose socket became ready (a
//! futex wake, a context switch), and it re-arms every socket after each
//! readiness (an `epoll_ctl` each time). At a few thousand chat messages a
//! second those hand-offs were most of the server's CPU beyond the writes
//! themselves. Here each shard thread waits on its own poller, registered
//! once per socket in edge-triggered mode: a socket event wakes the thread
//! that owns the socket, directly, and nothing is re-armed.
//!
//! [`block_on`] runs the shard's executor: it polls it, and when nothing
//! is runnable waits on the poller (or only checks it, when a task was
//! woken meanwhile). Wake-ups from other threads (the core's mail, timers,
//! shares of the core's queue) notify the poller. [`ShardTcp`] is a TCP
//! stream on the current shard's poller, for h2 (through `crate::io`) and
//! TLS alike.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use chat_sansio::idmap::IdMap;
use futures_lite::{AsyncRead, AsyncWrite};

use super::poller::{Notify, Poller, Ready};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// A shard's poller, the sockets registered with it, and its timers.
pub(crate) struct Reactor {
    poller: Poller,
    sources: RefCell<IdMap<usize, Rc<Source>>>,
    next_key: Cell<usize>,
    /// Wakers by deadline (and a number, for equal deadlines).
    timers: RefCell<BTreeMap<(Instant, usize), Waker>>,
    /// Time spent in the sockets' write calls so far (the part of the
    /// shard's work that batching writes saves: [`super::pace`]).
    writing: Cell<Duration>,
}

/// One socket's readiness, as the poller last reported it, and the tasks
/// waiting for it.
#[derive(Default)]
struct Source {
    readable: Cell<bool>,
    writable: Cell<bool>,
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
}

impl Reactor {
    /// A reactor for the calling thread (a shard's).
    pub(crate) fn new() -> io::Result<Rc<Reactor>> {
        Ok(Rc::new(Reactor {
            poller: Poller::new()?,
            sources: RefCell::default(),
            next_key: Cell::new(0),
            timers: RefCell::default(),
            writing: Cell::new(Duration::ZERO),
        }))
    }

    /// Wakes the tasks whose deadline has come; returns the next deadline.
    fn fire_timers(&self, now: Instant) -> Option<Instant> {
        let mut timers = self.timers.borrow_mut();
        while let Some(entry) = timers.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            entry.remove().wake();
        }
        None
    }

    /// The calling shard's reactor, if it runs on one.
    fn current() -> Option<Rc<Reactor>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    fn dispatch(&self, events: &[Ready]) {
        let sources = self.sources.borrow();
        for ev in events {
            let Some(source) = sources.get(&ev.key) else {
                continue; // Gone since.
            };
            if ev.readable {
                source.readable.set(true);
                if let Some(w) = source.reader.take() {
                    w.wake();
                }
            }
            if ev.writable {
                source.writable.set(true);
                if let Some(w) = source.writer.take() {
                    w.wake();
                }
            }
        }
    }
}

/// The time the calling shard has spent in its sockets' write calls so
/// far; `None` off a shard.
pub(crate) fn write_time() -> Option<Duration> {
    Reactor::current().map(|r| r.writing.get())
}

/// Wakes the shard's thread: marks the loop as woken and, if it is waiting
/// on the poller, interrupts the wait.
struct Notifier {
    poller: Notify,
    woken: AtomicBool,
    sleeping: AtomicBool,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, SeqCst) && self.sleeping.load(SeqCst) {
            let _ = self.poller.notify();
        }
    }
}

/// Runs `fut` to completion on the calling thread with `reactor` as its
/// reactor (see the module docs).
pub(crate) fn block_on<T>(reactor: Rc<Reactor>, fut: impl Future<Output = T>) -> T {
    CURRENT.with(|c| *c.borrow_mut() = Some(reactor.clone()));
    let notifier = Arc::new(Notifier {
        poller: reactor.poller.notifier(),
        woken: AtomicBool::new(false),
        sleeping: AtomicBool::new(false),
    });
    let waker = Waker::from(notifier.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut events = Vec::new();
    loop {
        notifier.woken.store(false, SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            CURRENT.with(|c| *c.borrow_mut() = None);
            return out;
        }
        // Wait for the poller, unless a task was woken meanwhile: then
        // only look at what it has (sockets must not starve while the
        // executor is always busy).
        notifier.sleeping.store(true, SeqCst);
        let next_timer = reactor.fire_timers(Instant::now());
        let deadline = if notifier.woken.load(SeqCst) {
            Some(Instant::now())
        } else {
            next_timer
        };
        events.clear();
        if let Err(e) = reactor.poller.wait(&mut events, deadline) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("shard poller failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        notifier.sleeping.store(false, SeqCst);
        reactor.dispatch(&events);
        reactor.fire_timers(Instant::now());
    }
}

/// A timer on the calling shard's reactor: its deadline wakes the shard's
/// thread directly, without async-io's timer thread (for the scheduler,
/// which sets one per slot of the wheel, thousands a second under load).
/// Off a shard (tests), it falls back to async-io's timer.
pub(crate) struct LocalTimer {
    reactor: Option<Rc<Reactor>>,
    /// The deadline, and its entry in the reactor's timers.
    entry: Option<(Instant, usize)>,
    fallback: async_io::Timer,
}

impl LocalTimer {
    pub(crate) fn new() -> LocalTimer {
        LocalTimer {
            reactor: Reactor::current(),
            entry: None,
            fallback: async_io::Timer::never(),
        }
    }

    /// Sets the deadline (replacing any before).
    pub(crate) fn set_at(&mut self, at: Instant) {
        self.clear();
        match &self.reactor {
            Some(reactor) => {
                let n = reactor.next_key.get();
                reactor.next_key.set(n.wrapping_add(1));
                self.entry = Some((at, n));
            }
            None => self.fallback.set_at(at),
        }
    }

    fn clear(&mut self) {
        if let (Some(reactor), Some(entry)) = (&self.reactor, self.entry.take()) {
            reactor.timers.borrow_mut().remove(&entry);
        }
    }

    /// Ready once the deadline has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(reactor) = &self.reactor else {
            return Pin::new(&mut self.fallback).poll(cx).map(|_| ());
        };
        let Some(entry) = self.entry else {
            return Poll::Pending;
        };
        if entry.0 <= Instant::now() {
            self.clear();
            return Poll::Ready(());
        }
        reactor
            .timers
            .borrow_mut()
            .insert(entry, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for LocalTimer {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A TCP stream served on the calling shard's reactor.
pub(crate) struct ShardTcp {
    io: TcpStream,
    key: usize,
    source: Rc<Source>,
    reactor: Rc<Reactor>,
}

impl ShardTcp {
    /// Registers `io` with the calling shard's reactor.
    pub(crate) fn new(io: TcpStream) -> io::Result<ShardTcp> {
        let reactor =
            Reactor::current().ok_or_else(|| io::Error::other("not on a shard thread"))?;
        io.set_nonblocking(true)?;
        let key = reactor.next_key.get();
        reactor.next_key.set(key.wrapping_add(1));
        let source = Rc::new(Source {
            readable: Cell::new(true),
            writable: Cell::new(true),
            ..Source::default()
        });
        // Deleted from the poller in `Drop`, before it is closed (`io`
        // drops after `drop` returns).
        reactor.poller.add(&io, key)?;
        reactor.sources.borrow_mut().insert(key, source.clone());
        Ok(ShardTcp {
            io,
            key,
            source,
            reactor,
        })
    }

    /// Runs an I/O call of `len` bytes while the socket is ready for it; on
    /// WouldBlock, waits for the poller's next edge. A call that moved
    /// fewer bytes than asked found the socket's queue empty (read) or full
    /// (write): the next one would only get WouldBlock, so the socket
    /// counts as not ready until its next edge (tokio does the same). Bytes
    /// that arrive after that call are a new edge, reported by the poller
    /// after this poll, so nothing is missed. At light load that is one
    /// `recv` returning EAGAIN less per message read.
    fn poll_io(
        &mut self,
        cx: &Context<'_>,
        write: bool,
        len: usize,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let (ready, waiter) = if write {
            (&self.source.writable, &self.source.writer)
        } else {
            (&self.source.readable, &self.source.reader)
        };
        loop {
            if !ready.get() {
                waiter.set(Some(cx.waker().clone()));
                return Poll::Pending;
            }
            let started = write.then(Instant::now);
            let result = op(&mut self.io);
            if let Some(started) = started {
                let writing = &self.reactor.writing;
                writing.set(writing.get() + started.elapsed());
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.set(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) if n > 0 && n < len => {
                    ready.set(false);
                    return Poll::Ready(Ok(n));
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Drop for ShardTcp {
    fn drop(&mut self) {
        let _ = self.reactor.poller.delete(&self.io);
        self.reactor.sources.borrow_mut().remove(&self.key);
    }
}

impl AsyncRead for ShardTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.poll_io(cx, false, len, |io| io.read(buf))
    }
}

impl AsyncWrite for ShardTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, true, buf.len(), |io| io.write(buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.poll_io(cx, true, len, |io| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::net::TcpListener;

    #[test]
    fn a_shard_reads_and_writes_its_own_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            // Late, so that the shard waits on its poller for it.
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&buf).unwrap();
            s.write_all(&vec![7u8; 1 << 20]).unwrap();
        });
        let reactor = Reactor::new().unwrap();
        let got = block_on(reactor, async move {
            let mut tcp = ShardTcp::new(TcpStream::connect(addr).unwrap()).unwrap();
            tcp.write_all(b"hello").await.unwrap();
            let mut back = [0u8; 5];
            tcp.read_exact(&mut back).await.unwrap();
            let mut rest = Vec::new();
            tcp.read_to_end(&mut rest).await.unwrap();
            (back, rest.len())
        });
        peer.join().unwrap();
        assert_eq!(got, (*b"hello", 1 << 20));
    }
}
