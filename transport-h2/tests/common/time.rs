//! Time limits: every wait in a test is bounded, so a hang fails the test
//! instead of blocking the run.
//!
//! The timers are async-io's, driven from a thread of its own, so these
//! work under any executor: smol for our server and client, tokio for tonic.

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use smol::Timer;

/// The longest one step of a test (headers, a message, a reply) may take.
pub const SHORT: Duration = Duration::from_secs(3);

/// Runs a test body on the current thread with smol, failing if it takes
/// longer than `secs` seconds; returns what the body returns.
pub fn run<T>(secs: u64, test: impl Future<Output = T>) -> T {
    smol::block_on(within(Duration::from_secs(secs), "the test", test))
}

/// As [`run`], on a tokio runtime with two workers, for tests that drive
/// tonic.
pub fn run_tokio<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(within(Duration::from_secs(secs), "the test", test))
}

/// Awaits `f`, panicking with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match before(limit, f).await {
        Some(v) => v,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Awaits `f` for at most `limit`: `None` if it has not finished by then.
pub async fn before<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}
