//! A queue from one thread to a task on another, taken whole: how the core
//! hands each shard its outputs, one lock and at most one wake-up per batch.

use std::sync::{Mutex, PoisonError};
use std::task::Waker;

use super::messages::ToShard;

/// See the module docs.
pub(crate) struct Inbox<T> {
    inner: Mutex<(Vec<T>, Option<Waker>)>,
}

/// The core's outputs for one shard.
pub(crate) type Mailbox = Inbox<ToShard>;

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            inner: Mutex::new((Vec::new(), None)),
        }
    }
}

impl<T> Inbox<T> {
    /// Moves `batch` in; returns the reader's waker if it was waiting.
    pub(crate) fn deliver(&self, batch: &mut Vec<T>) -> Option<Waker> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.0.is_empty() {
            std::mem::swap(&mut inner.0, batch);
        } else {
            inner.0.append(batch);
        }
        inner.1.take()
    }

    /// Swaps the pending items into `buf` (which must be empty); if there
    /// are none, registers `waker` for the next delivery (with `None`, the
    /// reader will come back by itself, and a delivery wakes nobody).
    pub(crate) fn take(&self, buf: &mut Vec<T>, waker: Option<&Waker>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.0.is_empty() {
            match waker {
                Some(waker) if !inner.1.as_ref().is_some_and(|w| w.will_wake(waker)) => {
                    inner.1 = Some(waker.clone());
                }
                Some(_) => {}
                None => inner.1 = None,
            }
        } else {
            std::mem::swap(&mut inner.0, buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_is_taken_whole_and_wakes_its_reader_once() {
        let inbox = Inbox::default();
        let (mut buf, mut batch) = (Vec::new(), vec![1, 2]);
        inbox.take(&mut buf, Some(Waker::noop()));
        assert!(buf.is_empty());
        assert!(inbox.deliver(&mut batch).is_some(), "the waiting reader");
        let mut more = vec![3];
        assert!(inbox.deliver(&mut more).is_none(), "already woken");
        inbox.take(&mut buf, Some(Waker::noop()));
        assert_eq!(buf, [1, 2, 3]);
    }
}
