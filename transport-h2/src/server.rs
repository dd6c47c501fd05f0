//! The server: starts the core task, accepts connections, runs one task per
//! connection.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use async_io::Timer;
use bytes::Bytes;
use chat_sansio::server::{Handler, Server as Core};
use futures_lite::{future, AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::conn::{ConnDriver, Ended};
use crate::core_task::{self, Inbox, ToCore};

/// Time a new connection has to complete the HTTP/2 handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A gRPC server on HTTP/2 for one sans-IO core.
///
/// Cloning gives another handle to the same server.
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
    config: Arc<ServerConfig>,
    next_conn: AtomicU32,
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
    /// Starts the task that owns `core` on smol's executor. `on_event`
    /// receives the handler's events (log lines, records), in order, on
    /// that task: keep it quick.
    pub fn start(
        core: Core<H>,
        config: ServerConfig,
        on_event: impl FnMut(H::Event) + Send + 'static,
    ) -> Server<H> {
        let (tx, rx) = async_channel::bounded(config.core_queue.max(1));
        let flush = config.flush_interval;
        smol::spawn(core_task::run(core, rx, on_event, Clock::new(), flush)).detach();
        Server {
            inner: Arc::new(Inner {
                to_core: tx,
                config: Arc::new(config),
                next_conn: AtomicU32::new(1),
            }),
            _handler: PhantomData,
        }
    }

    /// A sender for application inputs.
    pub fn inputs(&self) -> InputSender<H::Input> {
        InputSender {
            tx: self.inner.to_core.clone(),
        }
    }

    /// Accepts TCP connections on `listener` forever, one task each.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    tracing::warn!("accept failed: {e}; retrying");
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.spawn_tcp(stream, peer.to_string());
        }
    }

    /// Serves one accepted TCP connection on its own task.
    pub fn spawn_tcp(&self, stream: TcpStream, peer: String) {
        // Small chat messages must not wait for Nagle (T-8).
        let _ = stream.set_nodelay(true);
        let server = self.clone();
        smol::spawn(async move { server.serve_connection(stream, Some(peer)).await }).detach();
    }

    /// Serves one connection of any byte stream (TCP, TLS, Unix socket,
    /// in-memory pipe) until it closes. HTTP/2 with prior knowledge (h2c).
    pub async fn serve_connection<T>(&self, io: T, peer: Option<String>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = &self.inner.config;
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(config.max_header_list_size)
            .initial_window_size(config.initial_stream_window)
            .initial_connection_window_size(config.initial_connection_window)
            .max_send_buffer_size(config.max_send_buffer);
        let handshake = builder.handshake::<_, Bytes>(crate::io::Io::new(io));
        let timeout = async {
            Timer::after(HANDSHAKE_TIMEOUT).await;
            None
        };
        let h2 = match future::or(async { Some(handshake.await) }, timeout).await {
            Some(Ok(h2)) => h2,
            Some(Err(e)) => {
                tracing::debug!(?peer, "HTTP/2 handshake failed: {e}");
                return;
            }
            None => {
                tracing::debug!(?peer, "HTTP/2 handshake timed out");
                return;
            }
        };
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        let to_core = self.inner.to_core.clone();
        let connect = ToCore::Connect {
            conn: id,
            inbox: inbox.clone(),
            peer: peer.clone(),
        };
        if to_core.send(connect).await.is_err() {
            return;
        }
        let driver = ConnDriver::new(id, h2, inbox, to_core.clone(), config.clone());
        match driver.await {
            Ended::Closed => tracing::debug!(?peer, "connection closed"),
            Ended::Error(e) => tracing::debug!(?peer, "connection ended: {e}"),
        }
        let _ = to_core.send(ToCore::Disconnect { conn: id }).await;
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
