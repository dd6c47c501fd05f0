//! A shard's own state, on its thread: its connections' slots, what they
//! share, and the way to the core.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use async_channel::Sender;

use super::budget::Budget;
use super::config::ServerConfig;
use super::messages::ToCore;
use super::slot::{Shared, Slots};

/// See the module docs.
pub(crate) struct Local<I> {
    pub index: u32,
    pub shards: u32,
    pub config: Arc<ServerConfig>,
    pub to_core: Sender<ToCore<I>>,
    /// The process-wide memory budget, shared by every shard.
    pub budget: Arc<Budget>,
    pub slots: Slots,
    pub shared: Rc<Shared>,
    pub accepted: Cell<u32>,
    /// Phases of the flush wheel; a connection's phase is below this.
    pub phases: usize,
}

impl<I> Local<I> {
    /// A new connection's id, and its number on this shard. `id % shards`
    /// is the shard, so the core routes outputs without a table. Ids are
    /// not reused until about 2^32 connections have come and gone, and
    /// never while one is in use.
    pub(crate) fn next_id(&self) -> (u32, u32) {
        let last = u32::MAX / self.shards - 1;
        loop {
            let n = match self.accepted.get() {
                n if n >= last => 1,
                n => n + 1,
            };
            self.accepted.set(n);
            let id = n * self.shards + self.index;
            if !self.slots.borrow().contains_key(&id) {
                return (id, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_name_their_shard_and_wrap_around_live_ones() {
        let local = Local::<()> {
            index: 2,
            shards: 3,
            config: Arc::default(),
            to_core: async_channel::bounded(1).0,
            budget: Arc::new(Budget::new(1)),
            slots: Slots::default(),
            shared: Rc::new(Shared::new(1)),
            accepted: Cell::new(0),
            phases: 1,
        };
        let (id, n) = local.next_id();
        assert_eq!((id, n, id % 3), (5, 1, 2));
        // Near the end of the range: back to the start, skipping ids in use.
        local.accepted.set(u32::MAX / 3 - 1);
        local.slots.borrow_mut().insert(5, Rc::default());
        let (id, n) = local.next_id();
        assert_eq!((id, n), (8, 2));
    }
}
