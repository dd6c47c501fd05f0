//! Shared code of the chat binaries: config file, records, start-up.

pub mod config;
pub mod store;

use std::io::Write;
use std::time::Duration;

use async_signal::{Signal, Signals};
use chat_sansio::chat::ChatEvent;
use chat_sansio::server::Handler;
use futures_lite::{future, StreamExt};
use transport_h2::Server;

/// Runs smol's executor on every core unless `SMOL_THREADS` says otherwise;
/// smol defaults to a single thread.
pub fn init_runtime() {
    if std::env::var_os("SMOL_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("SMOL_THREADS", n.to_string());
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints a line to stdout and flushes it at once (tests and pipes read it).
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Prints a chat event as the seed's server does (`Received message from
/// ...`, `User ... joined the chat room ...`), and refused logins. Storage
/// requests print nothing.
pub fn print_event(event: &ChatEvent) {
    match event {
        ChatEvent::Message { user_id, text, .. } => {
            say(format_args!("Received message from {user_id}: {text}"));
        }
        ChatEvent::Login {
            user_id,
            room,
            outcome: Ok(()),
            ..
        } => say(format_args!("User {user_id} joined the chat room {room}.")),
        ChatEvent::Login {
            user_id,
            room,
            outcome: Err(status),
            peer,
            ..
        } => say(format_args!(
            "Login refused: user {user_id:?}, room {room:?}, peer {}: {status}",
            peer.as_deref().unwrap_or("-")
        )),
        ChatEvent::Persist { .. } | ChatEvent::ReadHistory { .. } => {}
        _ => {}
    }
}

/// SIGTERM and SIGINT, caught from now on (call it before announcing the
/// server, so a signal right after cannot kill it abruptly).
pub fn stop_signals() -> std::io::Result<Signals> {
    Signals::new([Signal::Term, Signal::Int])
}

/// Waits for SIGTERM or SIGINT, then shuts the server down gracefully; a
/// second signal cuts the wait short. Returns when the server is done.
pub async fn stop_on_signal<H>(
    name: &str,
    server: &Server<H>,
    mut signals: Signals,
    grace: Duration,
) -> std::io::Result<()>
where
    H: Handler + Send + 'static,
    H::Event: Send + 'static,
    H::Input: Send + 'static,
{
    let Some(signal) = signals.next().await else {
        return Ok(());
    };
    let signal = signal?;
    say(format_args!(
        "{name}: {signal:?}: shutting down (connections: {}; grace {} ms, a second signal stops at once)",
        server.connections(),
        grace.as_millis()
    ));
    let waited = async { Some(server.shutdown(grace).await) };
    let cut = async {
        let _ = signals.next().await;
        None
    };
    match future::or(waited, cut).await {
        Some(0) => say(format_args!("{name}: stopped")),
        Some(left) => say(format_args!(
            "{name}: stopped with {left} connections still open"
        )),
        None => say(format_args!("{name}: stopped at once")),
    }
    Ok(())
}
