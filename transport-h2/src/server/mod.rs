//! The server side of the transport: [`Server`] starts the shards (the
//! core task runs on the first), accepts connections and hands each to a
//! shard.
//!
//! How the parts fit:
//!
//! - [`messages`]: everything that crosses between tasks and threads;
//! - `core_task`: the task that owns the sans-IO core;
//! - `shard`, `local`, `inbox`: the threads that run connections, their
//!   state, and how the core's outputs reach them;
//! - `scheduler`, `groups`, `flush`: when each connection writes, and the
//!   shared multicast logs;
//! - `conn`: one connection (its handshake and life in `conn::open`, its
//!   streams' send queues in `conn::send_queue`, backpressure to the core
//!   in `conn::core_queue`, keepalive).

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use chat_sansio::server::{CallStats, Handler, Server as Core};
use futures_lite::{future, AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};

mod admission;
mod budget;
mod config;
mod conn;
mod core_task;
mod flush;
mod groups;
mod inbox;
mod local;
pub(crate) mod messages;
mod pace;
mod poller;
mod reactor;
mod scheduler;
mod shard;
mod share;
mod slot;

pub use config::ServerConfig;

use crate::clock::Clock;
use admission::PeerSlot;
use messages::{Live, NewConn, Socket, ToCore};
use shard::Shard;

/// How often a failing `accept` is logged at most.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// How long [`Server::shutdown`] waits, after the grace period, for
/// connections to write their last trailers and close.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);

/// A gRPC server on HTTP/2 for one sans-IO core.
///
/// Cloning gives another handle to the same server. The server runs on
/// threads of its own ([`ServerConfig::threads`] shards); the core and
/// every connection stay on their shard's thread for their whole life.
pub struct Server<H: Handler> {
    inner: Arc<Inner<H::Input>>,
    _handler: PhantomData<fn() -> H>,
}

impl<H: Handler> Clone for Server<H> {
    fn clone(&self) -> Self {
        Server {
            inner: self.inner.clone(),
            _handler: PhantomData,
        }
    }
}

struct Inner<I> {
    to_core: Sender<ToCore<I>>,
    admission: Arc<admission::Admission>,
    shards: Vec<Shard>,
    next_shard: AtomicUsize,
    /// Connections handed to shards and not yet closed.
    live: Arc<AtomicUsize>,
    /// Closed by [`Server::shutdown`]; `serve` loops stop on it.
    stop: (Sender<()>, Receiver<()>),
    /// The core's counts, copied by the core task when they change.
    call_stats: Arc<std::sync::Mutex<CallStats>>,
}

/// What the server counts, readable from any thread (for metrics).
#[derive(Clone)]
pub struct StatsHandle {
    calls: Arc<std::sync::Mutex<CallStats>>,
    live: Arc<AtomicUsize>,
    busy: Vec<Arc<std::sync::atomic::AtomicU64>>,
}

impl StatsHandle {
    /// The core's counts per method, as of its last turn.
    pub fn call_stats(&self) -> CallStats {
        self.calls.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Each shard thread's busy time so far (inside its tasks' polls).
    pub fn shard_busy(&self) -> Vec<Duration> {
        self.busy
            .iter()
            .map(|b| Duration::from_nanos(b.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Sends application inputs to the core from any thread.
pub struct InputSender<I> {
    tx: Sender<ToCore<I>>,
}

impl<I> Clone for InputSender<I> {
    fn clone(&self) -> Self {
        InputSender {
            tx: self.tx.clone(),
        }
    }
}

impl<I> InputSender<I> {
    /// Queues an input, waiting for room. False if the server is gone.
    pub async fn send(&self, input: I) -> bool {
        self.tx.send(ToCore::Input(input)).await.is_ok()
    }

    /// Queues an input from a thread outside the executor, blocking it
    /// while the queue is full. False if the server is gone.
    pub fn send_blocking(&self, input: I) -> bool {
        self.tx.send_blocking(ToCore::Input(input)).is_ok()
    }
}

impl<H> Server<H>
where
    H: Handler + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    /// Starts the server's threads; `core` runs on the first. `on_event`
    /// receives the handler's events (log lines, records, requests), in
    /// order, on that thread: keep it quick. What it returns is fed back to
    /// the core at once, in the same turn (a synchronous engine's answer);
    /// inputs that come later go through [`inputs`](Self::inputs).
    pub fn start(
        core: Core<H>,
        config: ServerConfig,
        on_event: impl FnMut(H::Event) -> Option<H::Input> + Send + 'static,
    ) -> Server<H> {
        let (tx, rx) = async_channel::bounded(config.core_queue.max(1));
        let config = Arc::new(config);
        let budget = Arc::new(budget::Budget::new(config.memory_budget));
        let (mailboxes_tx, mailboxes_rx) = std::sync::mpsc::sync_channel(1);
        let core_budget = budget.clone();
        let call_stats = Arc::new(std::sync::Mutex::new(CallStats::default()));
        let core_stats = call_stats.clone();
        let core_task = Box::pin(async move {
            let Ok(mailboxes) = mailboxes_rx.recv() else {
                return;
            };
            let shared = core_task::Shared {
                shards: mailboxes,
                budget: core_budget,
                stats: core_stats,
            };
            core_task::run(core, rx, on_event, Clock::new(), shared).await;
        });
        let shards = shard::start(&config, &tx, &budget, core_task);
        let _ = mailboxes_tx.send(shards.iter().map(|s| s.mailbox.clone()).collect());
        let live = Arc::new(AtomicUsize::new(0));
        let admission = admission::Admission::new(config.max_connections_per_peer, live.clone());
        Server {
            inner: Arc::new(Inner {
                to_core: tx,
                admission: Arc::new(admission),
                shards,
                next_shard: AtomicUsize::new(0),
                live,
                stop: async_channel::bounded(1),
                call_stats,
            }),
            _handler: PhantomData,
        }
    }

    /// The server's counts (the core's calls per method, opened, open,
    /// ended by status, cancelled; bytes; slow consumers; connections),
    /// readable from any thread: for metrics.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle {
            calls: self.inner.call_stats.clone(),
            live: self.inner.live.clone(),
            busy: self.inner.shards.iter().map(|s| s.busy.clone()).collect(),
        }
    }

    /// A sender for application inputs.
    pub fn inputs(&self) -> InputSender<H::Input> {
        InputSender {
            tx: self.inner.to_core.clone(),
        }
    }

    /// Accepts TCP connections on `listener`, handing each to a shard,
    /// until [`shutdown`](Self::shutdown) is called.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        self.accept(listener, |stream, peer, slot| {
            if let Some(stream) = into_std(stream) {
                let socket = Socket::Tcp {
                    stream,
                    #[cfg(feature = "tls")]
                    tls: None,
                };
                self.open_connection(socket, Some(peer), slot);
            }
        })
        .await
    }

    /// As [`serve`](Self::serve), with TLS on every connection (ALPN h2;
    /// see [`crate::tls`]). The TLS handshake runs on the connection's
    /// shard.
    #[cfg(feature = "tls")]
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<()> {
        let acceptor = crate::tls::TlsAcceptor::from(tls);
        self.accept(listener, |stream, peer, slot| {
            self.open_tls(stream, peer, acceptor.clone(), slot)
        })
        .await
    }

    /// Serves one accepted TCP connection with TLS on one of the shards.
    #[cfg(feature = "tls")]
    pub fn spawn_tls(&self, stream: TcpStream, peer: String, acceptor: crate::tls::TlsAcceptor) {
        self.open_tls(stream, peer, acceptor, None);
    }

    #[cfg(feature = "tls")]
    fn open_tls(
        &self,
        stream: TcpStream,
        peer: String,
        acceptor: crate::tls::TlsAcceptor,
        slot: Option<PeerSlot>,
    ) {
        if let Some(stream) = into_std(stream) {
            let socket = Socket::Tcp {
                stream,
                tls: Some(acceptor),
            };
            self.open_connection(socket, Some(peer), slot);
        }
    }

    /// Accepts TCP connections on `listener` until shutdown, handing each
    /// its peer admits (see [`admission`]) to `spawn`.
    async fn accept(
        &self,
        listener: TcpListener,
        spawn: impl Fn(TcpStream, String, Option<PeerSlot>),
    ) -> io::Result<()> {
        let mut last_warning: Option<std::time::Instant> = None;
        let stop = self.inner.stop.1.clone();
        loop {
            let accepted = future::or(async { Some(listener.accept().await) }, async {
                let _ = stop.recv().await;
                None
            });
            let Some(accepted) = accepted.await else {
                return Ok(());
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    // Out of descriptors, typically: connections wait in
                    // the kernel's queue; silent ones are let go sooner
                    // (`Admission::handshake_limit`). One line per interval.
                    if last_warning.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY) {
                        tracing::warn!("accept failed: {e}; retrying");
                        last_warning = Some(std::time::Instant::now());
                    }
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(slot) = self.inner.admission.admit(peer.ip()) else {
                continue; // Dropped: the peer sees the connection close.
            };
            spawn(stream, peer.to_string(), Some(slot));
        }
    }

    /// Serves one accepted TCP connection on one of the shards.
    pub fn spawn_tcp(&self, stream: TcpStream, peer: String) {
        if let Some(stream) = into_std(stream) {
            let socket = Socket::Tcp {
                stream,
                #[cfg(feature = "tls")]
                tls: None,
            };
            self.open_connection(socket, Some(peer), None);
        }
    }

    /// Serves one connection of any byte stream (TCP, TLS, Unix socket,
    /// in-memory pipe) on one of the shards, until it closes. HTTP/2 with
    /// prior knowledge (h2c). Returns at once.
    pub fn serve_connection<T>(&self, io: T, peer: Option<String>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.open_connection(Socket::Stream(Box::new(io)), peer, None);
    }

    /// Hands a connection whose byte stream is still `opening` (a TLS
    /// handshake) to one of the shards.
    fn open_connection(&self, socket: Socket, peer: Option<String>, slot: Option<PeerSlot>) {
        if self.is_shutting_down() {
            return; // Dropped: the client sees the connection close.
        }
        let shards = &self.inner.shards;
        let i = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % shards.len();
        let conn = NewConn {
            socket,
            peer,
            live: Live::new(&self.inner.live, slot),
            handshake_limit: self.inner.admission.handshake_limit(),
        };
        if !shards[i].serve(conn) {
            tracing::warn!("shard {i} is gone; connection dropped");
        }
    }
}

impl<H: Handler> Server<H> {
    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.stop.0.is_closed()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Shuts the server down gracefully and waits until it is done:
    ///
    /// 1. `serve` stops accepting, and new connections are dropped;
    /// 2. the core turns every health status NOT_SERVING and refuses new
    ///    calls with UNAVAILABLE ([`Core::handle_shutdown`]);
    /// 3. every connection sends GOAWAY, so clients open new calls
    ///    elsewhere, and closes once its calls are over;
    /// 4. calls still open after `grace` end with UNAVAILABLE.
    ///
    /// Returns the number of connections still open when it stopped waiting
    /// (`grace` and a short linger for the last writes); they close when the
    /// process exits. Calling it again waits again.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let until = std::time::Instant::now() + grace + SHUTDOWN_LINGER;
        if !self.inner.stop.0.close() {
            tracing::debug!("shutdown already asked for");
        }
        let _ = self.inner.to_core.send(ToCore::Shutdown { grace }).await;
        while self.connections() > 0 && std::time::Instant::now() < until {
            Timer::after(Duration::from_millis(10)).await;
        }
        self.connections()
    }
}

/// The std socket under an accepted smol stream, taken off async-io's
/// reactor (its shard's own takes it), with Nagle off: small chat messages
/// must not wait. `None` (logged) if that fails.
fn into_std(stream: TcpStream) -> Option<std::net::TcpStream> {
    let _ = stream.set_nodelay(true);
    let shared: Arc<async_io::Async<std::net::TcpStream>> = stream.into();
    let Ok(owned) = Arc::try_unwrap(shared) else {
        tracing::warn!("an accepted socket is still shared; dropped");
        return None;
    };
    match owned.into_inner() {
        Ok(std) => Some(std),
        Err(e) => {
            tracing::warn!("cannot take an accepted socket off the reactor: {e}");
            None
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}
