//! The bridge from futures-io byte streams (smol's) to the tokio-io traits
//! h2 is written against.
//!
//! tokio-util's `Compat` does the same job, but a futures-io read needs an
//! initialized buffer, so `Compat` zero-fills the whole spare capacity of
//! h2's read buffer (8 KiB) before every read; under chat traffic (many
//! reads of a few dozen bytes) that memset was 8% of the server's CPU. Here
//! a read goes into a per-thread scratch buffer, initialized once, and only
//! the bytes received are copied into h2's buffer.
//!
//! Second, h2 polls its socket for reading every time its connection task
//! runs, and the task runs for every outbound message. A read that finds
//! nothing costs a `recv` returning EAGAIN and a re-registration with the
//! reactor. So once a read has returned `Pending`, this adapter answers
//! `Pending` itself until the reactor has actually signalled readiness.
//!
//! Third, it counts the reads that brought bytes, so the connection's task
//! knows when h2 can have anything new for its streams (every frame comes
//! from a read) and skips polling them otherwise.
//!
//! Fourth, on a server connection, it is where a peer's input is bounded
//! before h2 sees it ([`crate::inbound`]): a share of input per turn, a
//! rate for control frames, and a pause while the core cannot take more.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

use crate::inbound::{FrameWatch, Meter};

/// Largest single read: large enough for bulk transfers to take few reads.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Whether the reader may have something, and the task to tell when it
/// might. Registered with the inner stream in place of the task's waker.
#[derive(Debug)]
struct Readiness {
    ready: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Readiness {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// A futures-io stream seen through the tokio-io traits.
#[derive(Debug)]
pub(crate) struct Io<T> {
    inner: T,
    read: Arc<Readiness>,
    read_waker: Waker,
    /// What the connection's task and this stream tell each other.
    meter: Arc<Meter>,
    /// A server connection's control-frame watch and its share of input
    /// per turn; `None` on the client.
    guard: Option<(FrameWatch, usize)>,
}

impl<T> Io<T> {
    /// Wraps `inner`, counting its reads in `meter`.
    pub(crate) fn new(inner: T, meter: Arc<Meter>) -> Io<T> {
        let read = Arc::new(Readiness {
            ready: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        let read_waker = Waker::from(read.clone());
        Io {
            inner,
            read,
            read_waker,
            meter,
            guard: None,
        }
    }

    /// Bounds the input as [`crate::inbound`] says: `watch` counts the
    /// control frames, and a turn takes at most `turn_bytes`.
    pub(crate) fn guarded(mut self, watch: FrameWatch, turn_bytes: usize) -> Io<T> {
        self.guard = Some((watch, turn_bytes));
        self
    }
}

impl<T: AsyncRead + Unpin> tokio::io::AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(SCRATCH);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        {
            let mut task = self
                .read
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if let Some((_, turn_bytes)) = &self.guard {
            if self.meter.flood().is_some() {
                // The task closes the connection.
                return Poll::Pending;
            }
            if self.meter.is_paused() {
                // The task lets h2 read again when it resumes.
                self.meter.note_refused();
                return Poll::Pending;
            }
            if self.meter.turn_spent(*turn_bytes) {
                // This turn's share is read: the task comes back after the
                // shard's other tasks.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if !self.read.ready.swap(false, Ordering::AcqRel) {
            // The inner stream has our waker and has not used it: nothing new.
            return Poll::Pending;
        }
        let this = &mut *self;
        let mut inner_cx = Context::from_waker(&this.read_waker);
        SCRATCH_BUF.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match Pin::new(&mut this.inner).poll_read(&mut inner_cx, &mut scratch[..want]) {
                Poll::Ready(Ok(n)) => {
                    this.read.ready.store(true, Ordering::Release);
                    this.meter.note_read(n);
                    if let Some((watch, _)) = &mut this.guard {
                        if let Err(flood) = watch.observe(&scratch[..n], Instant::now()) {
                            // h2 never sees these bytes; the task sends
                            // GOAWAY and closes.
                            this.meter.note_flood(flood);
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                    buf.put_slice(&scratch[..n]);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => {
                    this.read.ready.store(true, Ordering::Release);
                    this.meter.note_read(0);
                    Poll::Ready(Err(e))
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

impl<T: AsyncWrite + Unpin> tokio::io::AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.meter.note_written(n);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.meter.note_written(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
