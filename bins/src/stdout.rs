//! Standard output that never holds up the core.
//!
//! The console prints a line per chat message, on the core's thread. A
//! write to stdout blocks while whatever reads it (a terminal, a pipe, a
//! log collector) does not keep up, and a blocked core stops every call of
//! the server. So those lines ([`line()`](fn@line)) go into a bounded buffer that a
//! thread of its own writes out: the core only appends to a string. When
//! the reader falls more than [`MAX_PENDING`] bytes behind, lines are
//! dropped and counted, and one line says how many once it catches up.
//!
//! The writer writes what has piled up, then waits [`LINGER`] before it
//! looks again, so under load the lines go out in few writes and the core
//! never has to wake it; only a line into an empty buffer, with the writer
//! parked, does. Other lines ([`say`]: start-up, shutdown, addresses) are
//! written at once, after whatever is pending, so the order holds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// Most bytes of lines waiting for stdout: about five thousand chat lines.
/// Past it the reader is not keeping up, and lines are dropped rather than
/// held in memory without bound or allowed to block the core.
pub const MAX_PENDING: usize = 1024 * 1024;

/// How long the writer waits after a write before it looks again.
pub const LINGER: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Pending {
    text: String,
    dropped: u64,
    /// The writer waits for a line (and must be woken).
    parked: bool,
}

impl Pending {
    /// Takes what is waiting, with a note of what was dropped.
    fn take(&mut self) -> String {
        let mut text = std::mem::take(&mut self.text);
        if self.dropped > 0 {
            let _ = writeln!(
                text,
                "({} console lines dropped: stdout was not keeping up)",
                std::mem::take(&mut self.dropped)
            );
        }
        text
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static SHARED: OnceLock<&'static Shared> = OnceLock::new();

/// The buffer, and its writer thread, started on first use.
fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        }));
        let started = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || write_out(shared));
        if let Err(e) = started {
            // Lines are then written by `say` and `flush` only.
            tracing::warn!("cannot start the stdout writer: {e}");
        }
        shared
    })
}

fn write_out(shared: &'static Shared) {
    loop {
        {
            let mut pending = shared.lock();
            while pending.text.is_empty() && pending.dropped == 0 {
                pending.parked = true;
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            pending.parked = false;
        }
        // Taken under stdout's lock, so no `say` writes between the take
        // and the write.
        let mut out = std::io::stdout().lock();
        let text = shared.lock().take();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        drop(out);
        std::thread::sleep(LINGER);
    }
}

/// Queues a line for stdout without waiting for it (the core's lines).
pub fn line(args: std::fmt::Arguments<'_>) {
    let shared = shared();
    let mut pending = shared.lock();
    if pending.text.len() >= MAX_PENDING {
        pending.dropped += 1;
        return;
    }
    let _ = pending.text.write_fmt(args);
    pending.text.push('\n');
    if std::mem::replace(&mut pending.parked, false) {
        shared.wake.notify_one();
    }
}

/// Prints a line to stdout at once, after the queued ones, and flushes it
/// (tests and pipes read it).
pub fn say(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Some(shared) = SHARED.get() {
        let text = shared.lock().take();
        let _ = out.write_all(text.as_bytes());
    }
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Writes out the queued lines now (before the process exits).
pub fn flush() {
    let mut out = std::io::stdout().lock();
    if let Some(shared) = SHARED.get() {
        let text = shared.lock().take();
        let _ = out.write_all(text.as_bytes());
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_dropped_is_said_once() {
        let mut p = Pending {
            text: "a\n".into(),
            dropped: 3,
            parked: false,
        };
        assert_eq!(
            p.take(),
            "a\n(3 console lines dropped: stdout was not keeping up)\n"
        );
        assert_eq!(p.take(), "");
    }
}
