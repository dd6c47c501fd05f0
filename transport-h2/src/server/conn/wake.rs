//! The waker a connection task hands to h2, its streams and its socket.
//!
//! h2 wakes the connection's task whenever a stream has something to send,
//! so every `send_data` made while the task is running asks for another
//! poll of a task that is about to poll h2 anyway; with the task's own
//! waker that is one more executor round and one more full pass over h2 per
//! write. This waker notes wake-ups that happen during the task's own poll
//! (the task then goes round once more itself, if it needs to) and forwards
//! only those that happen while it is parked.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct PollWaker {
    polling: AtomicBool,
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for PollWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Noted first, then forwarded unless a poll is on: a poll that ends
        // after the note sees it in `end`.
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(task) = task.as_ref() {
                task.wake_by_ref();
            }
        }
    }
}

impl PollWaker {
    /// A poll of the task woken by `task` begins.
    pub(crate) fn begin(&self, task: &Waker) {
        {
            let mut slot = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|t| t.will_wake(task)) {
                *slot = Some(task.clone());
            }
        }
        self.polling.store(true, SeqCst);
        self.woken.store(false, SeqCst);
    }

    /// Whether anything asked for a poll since the last call (or `begin`).
    pub(crate) fn take_woken(&self) -> bool {
        self.woken.swap(false, SeqCst)
    }

    /// The poll ends; true if something asked for another poll meanwhile
    /// (the caller must then wake its task).
    pub(crate) fn end(&self) -> bool {
        self.polling.store(false, SeqCst);
        self.take_woken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn wakes_during_a_poll_are_noted_not_forwarded() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let pw = Arc::new(PollWaker::default());
        let waker = Waker::from(pw.clone());
        pw.begin(&task);
        waker.wake_by_ref();
        assert_eq!(count.0.load(SeqCst), 0);
        assert!(pw.take_woken());
        assert!(!pw.take_woken());
        waker.wake_by_ref();
        assert!(pw.end(), "a wake before the end is reported");
        // Parked: forwarded.
        waker.wake_by_ref();
        assert_eq!(count.0.load(SeqCst), 1);
    }
}
