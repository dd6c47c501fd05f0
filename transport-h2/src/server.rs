//! The server: starts the shards (the core task runs on the first),
//! accepts connections and hands each to a shard.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use async_io::Timer;
use chat_sansio::server::{Handler, Server as Core};
use futures_lite::{AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::core_task::{self, ToCore};
use crate::shard::{self, NewConn, Shard};

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
    shards: Vec<Shard>,
    next_shard: AtomicUsize,
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
    /// receives the handler's events (log lines, records), in order, on
    /// that thread: keep it quick.
    pub fn start(
        core: Core<H>,
        config: ServerConfig,
        on_event: impl FnMut(H::Event) + Send + 'static,
    ) -> Server<H> {
        let (tx, rx) = async_channel::bounded(config.core_queue.max(1));
        let config = Arc::new(config);
        let (mailboxes_tx, mailboxes_rx) = std::sync::mpsc::sync_channel(1);
        let core_task = Box::pin(async move {
            let Ok(mailboxes) = mailboxes_rx.recv() else {
                return;
            };
            core_task::run(core, rx, on_event, Clock::new(), mailboxes).await;
        });
        let shards = shard::start(&config, &tx, core_task);
        let _ = mailboxes_tx.send(shards.iter().map(|s| s.mailbox.clone()).collect());
        Server {
            inner: Arc::new(Inner {
                to_core: tx,
                shards,
                next_shard: AtomicUsize::new(0),
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

    /// Accepts TCP connections on `listener` forever, handing each to a
    /// shard.
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

    /// Serves one accepted TCP connection on one of the shards.
    pub fn spawn_tcp(&self, stream: TcpStream, peer: String) {
        // Small chat messages must not wait for Nagle (T-8).
        let _ = stream.set_nodelay(true);
        self.serve_connection(stream, Some(peer));
    }

    /// Serves one connection of any byte stream (TCP, TLS, Unix socket,
    /// in-memory pipe) on one of the shards, until it closes. HTTP/2 with
    /// prior knowledge (h2c). Returns at once.
    pub fn serve_connection<T>(&self, io: T, peer: Option<String>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shards = &self.inner.shards;
        let i = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % shards.len();
        let conn = NewConn {
            io: Box::new(io),
            peer,
        };
        if !shards[i].serve(conn) {
            tracing::warn!("shard {i} is gone; connection dropped");
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
