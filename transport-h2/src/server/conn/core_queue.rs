//! Backpressure from the core to one connection, and its fair share of the
//! core's queue.
//!
//! A connection's events go straight into the core's shared bounded queue;
//! when that is full they wait here, and the connection reads nothing more
//! until they are in, so HTTP/2 flow control slows its client instead of
//! the server buffering for it. Besides, each connection may have at most
//! [`ServerConfig::max_input_in_flight`] bytes of DATA queued for the core
//! at once ([`Share`](crate::server::share::Share)): one peer posting as fast as it can fills its share,
//! not the queue every other connection needs.
//!
//! [`ServerConfig::max_input_in_flight`]: crate::ServerConfig::max_input_in_flight

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use async_channel::{Sender, TrySendError};
use bytes::Bytes;

use crate::server::messages::ToCore;
use crate::server::share::Share;

type BoxedSend = Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module docs.
pub(super) struct CoreQueue<I> {
    tx: Sender<ToCore<I>>,
    backlog: VecDeque<ToCore<I>>,
    blocked: Option<BoxedSend>,
    share: Arc<Share>,
    /// The share was spent at the last check.
    spent: bool,
    /// The core asked us to stop reading (`Output::Pause`).
    pub paused: bool,
}

impl<I: Send + 'static> CoreQueue<I> {
    pub(super) fn new(tx: Sender<ToCore<I>>, share: Arc<Share>) -> CoreQueue<I> {
        CoreQueue {
            tx,
            backlog: VecDeque::new(),
            blocked: None,
            share,
            spent: false,
            paused: false,
        }
    }

    /// Whether nothing is waiting and the share is not spent, so reading
    /// may go on.
    pub(super) fn is_clear(&self) -> bool {
        self.backlog.is_empty() && self.blocked.is_none() && !self.spent && !self.paused
    }

    /// Queues a DATA chunk of `call`, claiming its part of the share.
    pub(super) fn push_data(&mut self, call: chat_sansio::server::CallId, chunk: Bytes) {
        let claim = self.share.claim(chunk.len());
        self.spent = self.share.is_spent();
        self.push(ToCore::Data { call, chunk, claim });
    }

    pub(super) fn push(&mut self, event: ToCore<I>) {
        if self.backlog.is_empty() && self.blocked.is_none() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
    }

    /// Moves waiting events into the shared queue; true when none wait and
    /// the share is not spent.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if let Some(fut) = &mut self.blocked {
                if fut.as_mut().poll(cx).is_pending() {
                    return false;
                }
                self.blocked = None;
            }
            let Some(event) = self.backlog.pop_front() else {
                self.spent = self.share.poll_spent(cx);
                return !self.spent && !self.paused;
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
