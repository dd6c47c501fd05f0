//! Our server on a free loopback port, serving from a thread of its own.

use std::future::Future;
use std::net::SocketAddr;

use chat_engine::memory::MemoryLog;
use chat_engine::{Engine, Retention, Served};
use chat_sansio::chat::Chat;
use chat_sansio::server::Handler;
use smol::net::TcpListener;
use transport_h2::{Server, ServerConfig};

use super::echo::Echo;

/// A handler the tests serve, with what answers its events at once: for
/// the chat, an engine over a log in memory.
pub trait Inline: Handler + Sized {
    /// A fresh answerer of the handler's events.
    fn inline() -> Box<dyn FnMut(Self::Event) -> Option<Self::Input> + Send>;
}

impl Inline for Chat {
    fn inline() -> Box<dyn FnMut(Self::Event) -> Option<Self::Input> + Send> {
        let mut engine = Engine::new(MemoryLog::new(100, Retention::default()));
        Box::new(move |event| match engine.serve(event) {
            Served::Answer(input) => Some(input),
            _ => None,
        })
    }
}

impl Inline for Echo {
    fn inline() -> Box<dyn FnMut(()) -> Option<()> + Send> {
        Box::new(|()| None)
    }
}

/// Starts a server for `handler` on a free port of 127.0.0.1; returns its
/// address.
pub fn start<H>(handler: H, config: ServerConfig) -> SocketAddr
where
    H: Inline + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    start_with(handler, config, H::inline()).0
}

/// As [`start`], with `on_event` receiving the handler's events (and what
/// it returns fed back at once); also returns a handle on the server (for
/// its inputs, or to shut it down).
pub fn start_with<H>(
    handler: H,
    config: ServerConfig,
    on_event: impl FnMut(H::Event) -> Option<H::Input> + Send + 'static,
) -> (SocketAddr, Server<H>)
where
    H: Handler + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    let server = Server::start(chat_sansio::server::Server::new(handler), config, on_event);
    let serving = server.clone();
    let addr = on_free_port(move |listener| async move { serving.serve(listener).await });
    (addr, server)
}

/// As [`start`], with the core's own settings (`core`).
pub fn start_core<H>(
    handler: H,
    core: chat_sansio::server::ServerConfig,
    config: ServerConfig,
) -> SocketAddr
where
    H: Inline + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    let core = chat_sansio::server::Server::with_config(core, handler);
    let server = Server::start(core, config, H::inline());
    let addr = on_free_port(move |listener| async move { server.serve(listener).await });
    addr
}

/// As [`start`], with TLS on every connection.
#[cfg(feature = "tls")]
pub fn start_tls<H>(
    handler: H,
    config: ServerConfig,
    tls: std::sync::Arc<transport_h2::tls::rustls::ServerConfig>,
) -> SocketAddr
where
    H: Inline + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    let server = Server::start(
        chat_sansio::server::Server::new(handler),
        config,
        H::inline(),
    );
    on_free_port(move |listener| async move { server.serve_tls(listener, tls).await })
}

/// Binds a free port of 127.0.0.1 and runs `serve` on it, with smol, on a
/// thread of its own; returns the address.
fn on_free_port<F>(serve: impl FnOnce(TcpListener) -> F + Send + 'static) -> SocketAddr
where
    F: Future<Output = std::io::Result<()>>,
{
    let listener = smol::block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    std::thread::Builder::new()
        .name(format!("server-{addr}"))
        .spawn(move || {
            let _ = smol::block_on(serve(listener));
        })
        .expect("spawn the server thread");
    addr
}
