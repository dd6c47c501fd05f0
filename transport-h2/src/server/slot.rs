//! What a shard's scheduler and its connections' tasks share: each
//! connection's [`Slot`] (its outputs waiting, and what the scheduler knows
//! of it) and the shard-wide [`Shared`] state. All of it lives on the
//! shard's thread, so `RefCell`, not locks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use chat_sansio::idmap::IdMap;

use super::groups::{Groups, Sub};
use super::messages::ToConn;

/// Where a connection's outputs wait for its task, and what the shard's
/// scheduler knows of it.
#[derive(Default)]
pub(crate) struct Slot {
    pub items: Vec<ToConn>,
    /// The task's waker, taken when it is woken.
    pub waker: Option<Waker>,
    /// When the task last took items to write.
    pub flushed: Option<Instant>,
    /// Items wait and the task has been woken, or is due on the wheel.
    pub scheduled: bool,
    /// The connection's phase on the wheel.
    pub phase: usize,
    /// Its streams' places in their multicast groups.
    pub subs: Vec<Sub>,
}

/// The slots of a shard's connections, by connection id.
pub(crate) type Slots = RefCell<IdMap<u32, Rc<RefCell<Slot>>>>;

/// What a shard's scheduler and its connections' tasks share.
pub(crate) struct Shared {
    pub groups: RefCell<Groups>,
    /// The server is shutting down: connections send GOAWAY.
    pub closing: Cell<bool>,
    /// Time spent in the shard's tasks so far (see [`timed`]).
    pub busy: Cell<Duration>,
}

impl Shared {
    /// A shard's shared state, for a wheel of `phases` phases.
    pub(crate) fn new(phases: usize) -> Shared {
        Shared {
            groups: RefCell::new(Groups::new(phases)),
            closing: Cell::new(false),
            busy: Cell::new(Duration::ZERO),
        }
    }
}

/// `fut`, with the time spent in its polls added to the shard's busy time
/// (which sets the pace of writes, [`super::pace`]).
pub(crate) fn timed<F: Future>(shared: Rc<Shared>, fut: F) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        let start = Instant::now();
        let out = fut.as_mut().poll(cx);
        shared.busy.set(shared.busy.get() + start.elapsed());
        out
    })
}

/// Takes stream `sid` of the slot's connection out of its group, if it is
/// in one; what the group sent it until now becomes its items. True if that
/// added items.
pub(crate) fn leave(groups: &mut Groups, s: &mut Slot, conn: u32, sid: u32) -> bool {
    let Some(i) = s.subs.iter().position(|sub| sub.sid == sid) else {
        return false;
    };
    let sub = s.subs.swap_remove(i);
    match groups.leave(sub, conn, s.phase) {
        Some(rest) => {
            s.items.push(ToConn::Message(sid, rest));
            true
        }
        None => false,
    }
}
