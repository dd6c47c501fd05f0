//! What the transport's integration tests share.

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use smol::Timer;

/// Runs a test body on the current thread, failing if it takes longer than
/// `secs` seconds.
pub fn run(secs: u64, test: impl Future<Output = ()>) {
    let finished = smol::block_on(future::or(
        async {
            test.await;
            true
        },
        async {
            Timer::after(Duration::from_secs(secs)).await;
            false
        },
    ));
    assert!(finished, "test timed out after {secs} s");
}
