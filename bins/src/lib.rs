//! Shared code of the chat binaries: config file, records, start-up.

pub mod config;
pub mod store;

use std::io::Write;

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
