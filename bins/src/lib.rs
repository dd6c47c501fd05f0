//! Shared code of the chat binaries: config file, console output, signals,
//! start-up.

pub mod config;
pub mod console;
pub mod engines;
pub mod interop;
pub mod jwt;
pub mod metrics;
pub mod reload;
pub mod stdout;

use std::time::Duration;

use async_signal::{Signal, Signals};
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

/// Raises the soft limit on open files to the hard limit, as servers that
/// hold one descriptor per client do (Go's runtime does it for every
/// program); the 1,024 most systems start with would cap the server at
/// about a thousand clients. Logs what it could not do.
pub fn raise_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                tracing::warn!(
                    "cannot raise the open-file limit from {} to {}",
                    lim.rlim_cur,
                    lim.rlim_max
                );
            }
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or a journal
    // are noise, and a reader's terminal is not ours to recolour.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

pub use stdout::say;

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
