//! Backpressure from the core to one connection: its events go straight
//! into the core's shared bounded queue; when that is full they wait here,
//! and the connection reads nothing more until they are in, so HTTP/2 flow
//! control slows its client instead of the server buffering for it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use async_channel::{Sender, TrySendError};

use crate::server::messages::ToCore;

type BoxedSend = Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module docs.
pub(super) struct CoreQueue<I> {
    tx: Sender<ToCore<I>>,
    backlog: VecDeque<ToCore<I>>,
    blocked: Option<BoxedSend>,
    /// An event from the client was queued since the shard last heard.
    pub heard: bool,
}

impl<I: Send + 'static> CoreQueue<I> {
    pub(super) fn new(tx: Sender<ToCore<I>>) -> CoreQueue<I> {
        CoreQueue {
            tx,
            backlog: VecDeque::new(),
            blocked: None,
            heard: false,
        }
    }

    /// Whether nothing is waiting, so reading may go on.
    pub(super) fn is_clear(&self) -> bool {
        self.backlog.is_empty() && self.blocked.is_none()
    }

    pub(super) fn push(&mut self, event: ToCore<I>) {
        self.heard = true;
        if self.is_clear() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
    }

    /// Moves waiting events into the shared queue; true when none wait.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if let Some(fut) = &mut self.blocked {
                if fut.as_mut().poll(cx).is_pending() {
                    return false;
                }
                self.blocked = None;
            }
            let Some(event) = self.backlog.pop_front() else {
                return true;
            };
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    let tx = self.tx.clone();
                    self.blocked = Some(Box::pin(async move {
                        let _ = tx.send(event).await;
                    }));
                }
                Err(TrySendError::Closed(_)) => {
                    // The core is gone: the server is shutting down.
                    self.backlog.clear();
                    return true;
                }
            }
        }
    }
}
