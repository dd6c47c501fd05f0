//! A connection's share of the core's queue: how many bytes of DATA it may
//! have in flight to the core at once, so that one peer posting as fast as
//! it can fills its own share, not the queue every connection needs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};

use super::budget::Budget;

/// A connection's DATA in flight to the core, shared with the core task,
/// which releases it as it applies the chunks (through [`Claim`]).
#[derive(Debug)]
pub(crate) struct Share {
    in_flight: AtomicUsize,
    limit: usize,
    budget: Arc<Budget>,
    /// The connection's task, while it waits for its share to drain.
    waiting: Mutex<Option<Waker>>,
}

impl Share {
    pub(crate) fn new(limit: usize, budget: Arc<Budget>) -> Share {
        Share {
            in_flight: AtomicUsize::new(0),
            limit,
            budget,
            waiting: Mutex::new(None),
        }
    }

    pub(crate) fn is_spent(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) >= self.limit
    }

    pub(crate) fn claim(self: &Arc<Self>, len: usize) -> Claim {
        self.in_flight.fetch_add(len, Ordering::AcqRel);
        self.budget.input_queued(len);
        Claim {
            len,
            share: self.clone(),
        }
    }

    /// `len` bytes were applied or dropped.
    pub(crate) fn release(&self, len: usize) {
        let before = self.in_flight.fetch_sub(len, Ordering::AcqRel);
        self.budget.input_applied(len);
        if before >= self.limit && before - len < self.limit {
            let waker = self
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Registers the task to wake when the share drains; true if it is
    /// spent (re-checked after registering, so no wake-up is lost).
    pub(crate) fn poll_spent(&self, cx: &Context<'_>) -> bool {
        if !self.is_spent() {
            return false;
        }
        *self.waiting.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        self.is_spent()
    }
}

/// A DATA chunk's claim on its connection's share of the core's queue and
/// on the process budget; released when dropped (applied by the core, or
/// discarded because the server is going away).
pub(crate) struct Claim {
    pub len: usize,
    pub share: Arc<Share>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.share.release(self.len);
    }
}
