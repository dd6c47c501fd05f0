//! A shard's scheduler: it hands each connection the core's outputs for
//! it, keeps the shard's multicast groups ([`super::groups`]), and decides,
//! by the flush wheel ([`super::flush`]), when each connection's task is
//! woken to write.

use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;

use super::config::ServerConfig;
use super::flush::Wheel;
use super::groups::Arrival;
use super::inbox::Mailbox;
use super::messages::{ToConn, ToShard};
use super::pace::Pace;
use super::reactor::{self, LocalTimer};
use super::slot::{leave, Shared, Slot, Slots};

/// What the wheel defers: one connection, or a group's members in one
/// phase.
enum Due {
    Conn(u32),
    Group(u64, usize),
}

/// Runs a shard's scheduler for ever: takes the core's batches from
/// `mailbox` and wakes connections now or at their phase, at the pace the
/// shard's busy time sets ([`super::pace`]).
pub(crate) async fn run(
    slots: &Slots,
    shared: &Shared,
    config: &ServerConfig,
    mailbox: Arc<Mailbox>,
    busy_ns: Arc<std::sync::atomic::AtomicU64>,
) {
    let start = Instant::now();
    let mut s = Scheduler::new(Duration::ZERO, start);
    let mut pace = Pace::new(config.flush_interval, config.pace_target, start);
    let mut batch = Vec::new();
    let mut due = Vec::new();
    let mut timer = LocalTimer::new();
    let mut timer_at = None;
    future::poll_fn(|cx| loop {
        // While the shard is busy enough for writes to wait, the core's
        // mail waits for the next turn of the wheel too: a thread woken for
        // every core turn (thousands a second) costs a context switch each.
        let lazy = !s.wheel.interval().is_zero() && s.wheel.due().is_some();
        mailbox.take(&mut batch, (!lazy).then_some(cx.waker()));
        let now = Instant::now();
        let busy = shared.busy.get();
        busy_ns.store(
            u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        let writing = reactor::write_time().unwrap_or(busy);
        if let Some(gap) = pace.update(now, busy, writing) {
            s.wheel.set_interval(gap);
        }
        let got_mail = !batch.is_empty();
        for item in batch.drain(..) {
            s.route(slots, shared, item, now);
        }
        s.wheel.take_due(now, &mut due);
        for d in due.drain(..) {
            s.turn(slots, shared, d);
        }
        for w in s.wake.drain(..) {
            w.wake();
        }
        if let Some(at) = s.wheel.due() {
            if timer_at != Some(at) {
                timer.set_at(at);
                timer_at = Some(at);
            }
            if timer.poll(cx).is_ready() {
                timer_at = None;
                continue;
            }
        }
        if got_mail {
            continue;
        }
        if s.wheel.due().is_none() {
            // Nothing to come back for: the mail must wake us after all.
            mailbox.take(&mut batch, Some(cx.waker()));
            if !batch.is_empty() {
                continue;
            }
        }
        return Poll::<()>::Pending;
    })
    .await
}

/// The scheduler's own state.
struct Scheduler {
    wheel: Wheel<Due>,
    /// Tasks to wake once the batch is routed.
    wake: Vec<Waker>,
}

impl Scheduler {
    fn new(interval: Duration, epoch: Instant) -> Scheduler {
        Scheduler {
            wheel: Wheel::new(interval, epoch),
            wake: Vec::new(),
        }
    }

    fn route(&mut self, slots: &Slots, shared: &Shared, item: ToShard, now: Instant) {
        let slots = slots.borrow();
        let mut groups = shared.groups.borrow_mut();
        let (conn, item) = match item {
            ToShard::Conn(conn, item) => (conn, item),
            ToShard::Shutdown => {
                shared.closing.set(true);
                for slot in slots.values() {
                    self.wake.extend(slot.borrow_mut().waker.take());
                }
                return;
            }
            ToShard::Multicast(group, frame) => {
                match groups.multicast(group, frame, now, self.wheel.interval()) {
                    Arrival::Nobody => return,
                    Arrival::Quiet => {
                        for conn in groups.members(group) {
                            if let Some(slot) = slots.get(&conn) {
                                self.wake.extend(slot.borrow_mut().waker.take());
                            }
                        }
                    }
                    Arrival::Busy => {
                        let (wheel, now) = (&mut self.wheel, now);
                        groups.arm(group, |p| wheel.defer(Due::Group(group, p), p, now));
                    }
                }
                return;
            }
        };
        let Some(slot) = slots.get(&conn) else {
            return;
        };
        let mut s = slot.borrow_mut();
        let s = &mut *s;
        match item {
            ToConn::Subscribe(sid, group) => {
                let phase = s.phase;
                if leave(&mut groups, s, conn, sid) {
                    self.schedule(s, conn, now);
                }
                let sub = groups.join(group, sid, conn, phase);
                s.subs.push(sub);
            }
            ToConn::Unsubscribe(sid) => {
                if leave(&mut groups, s, conn, sid) {
                    self.schedule(s, conn, now);
                }
            }
            item => {
                // What the group sent the stream before this goes first.
                if let Some(sid) = item.stream() {
                    if let Some(sub) = s.subs.iter_mut().find(|sub| sub.sid == sid) {
                        if let Some(frames) = groups.take(sub) {
                            s.items.push(ToConn::Message(sid, frames));
                        }
                    }
                }
                s.items.push(item);
                self.schedule(s, conn, now);
            }
        }
    }

    /// Wakes a connection with new items now, or defers it to its phase.
    fn schedule(&mut self, s: &mut Slot, conn: u32, now: Instant) {
        if std::mem::replace(&mut s.scheduled, true) {
            return;
        }
        if self.wheel.recent(s.flushed, now) {
            self.wheel.defer(Due::Conn(conn), s.phase, now);
        } else {
            self.wake.extend(s.waker.take());
        }
    }

    /// Something deferred is due.
    fn turn(&mut self, slots: &Slots, shared: &Shared, due: Due) {
        let slots = slots.borrow();
        let mut wake = |conn: &u32, only_scheduled: bool| {
            if let Some(slot) = slots.get(conn) {
                let mut s = slot.borrow_mut();
                if s.scheduled || !only_scheduled {
                    self.wake.extend(s.waker.take());
                }
            }
        };
        match due {
            Due::Conn(conn) => wake(&conn, true),
            Due::Group(group, phase) => {
                let mut groups = shared.groups.borrow_mut();
                for conn in groups.turn(group, phase) {
                    wake(conn, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    use bytes::Bytes;

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    struct Rig {
        slots: Slots,
        shared: Shared,
        sched: Scheduler,
        wakes: Vec<Arc<Count>>,
        t0: Instant,
    }

    const IV: Duration = Duration::from_millis(10);

    /// A shard with connections 1..=n (connection c in phase 8 (c - 1), its own slot) and no
    /// sockets: the scheduler alone.
    fn rig(n: u32) -> Rig {
        let t0 = Instant::now();
        let sched = Scheduler::new(IV, t0);
        let shared = Shared::new(crate::server::flush::PHASES);
        let slots = Slots::default();
        let mut wakes = Vec::new();
        for c in 1..=n {
            let count = Arc::new(Count(Default::default()));
            let slot = Slot {
                phase: 8 * (c as usize - 1),
                waker: Some(Waker::from(count.clone())),
                ..Slot::default()
            };
            slots.borrow_mut().insert(c, Rc::new(RefCell::new(slot)));
            wakes.push(count);
        }
        Rig {
            slots,
            shared,
            sched,
            wakes,
            t0,
        }
    }

    impl Rig {
        fn route(&mut self, item: ToShard, at: Duration) {
            self.sched
                .route(&self.slots, &self.shared, item, self.t0 + at);
            for w in self.sched.wake.drain(..) {
                w.wake();
            }
        }

        fn woken(&self, conn: u32) -> usize {
            self.wakes[conn as usize - 1]
                .0
                .load(std::sync::atomic::Ordering::SeqCst)
        }

        /// What the connection's task would take: its items, then what its
        /// groups sent since; re-arms its waker as the task does.
        fn take(&mut self, conn: u32) -> Vec<String> {
            let slots = self.slots.borrow();
            let mut s = slots[&conn].borrow_mut();
            let mut out: Vec<String> = std::mem::take(&mut s.items)
                .into_iter()
                .map(|i| match i {
                    ToConn::Message(sid, f) => format!("{sid}:{}", String::from_utf8_lossy(&f)),
                    other => format!("{other:?}"),
                })
                .collect();
            let mut groups = self.shared.groups.borrow_mut();
            for sub in &mut s.subs {
                if let Some(f) = groups.take(sub) {
                    out.push(format!("{}:{}", sub.sid, String::from_utf8_lossy(&f)));
                }
            }
            s.scheduled = false;
            s.waker = Some(Waker::from(self.wakes[conn as usize - 1].clone()));
            out
        }
    }

    fn frame(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_scheduler_keeps_group_and_direct_outputs_in_order() {
        let ms = Duration::from_millis;
        let mut r = rig(3);
        for conn in [1, 2] {
            r.route(ToShard::Conn(conn, ToConn::Subscribe(1, 7)), ms(0));
        }
        // A quiet group wakes its members at once; a non-member is left.
        r.route(ToShard::Multicast(7, frame("a")), ms(1));
        assert_eq!((r.woken(1), r.woken(2), r.woken(3)), (1, 1, 0));
        // A direct message to a member comes after what the group sent it
        // before, and before what the group sends after.
        r.route(ToShard::Conn(1, ToConn::Message(1, frame("direct"))), ms(2));
        r.route(ToShard::Multicast(7, frame("b")), ms(3));
        assert_eq!(r.take(1), ["1:a", "1:direct", "1:b"]);
        // Leaving: what came before is still delivered, nothing after.
        r.route(ToShard::Conn(2, ToConn::Unsubscribe(1)), ms(4));
        r.route(ToShard::Multicast(7, frame("c")), ms(5));
        assert_eq!(r.take(2), ["1:ab"]);
        assert!(r.take(2).is_empty());
        assert_eq!(r.take(1), ["1:c"]);
        // Moving to another group: what the old one sent first.
        r.route(ToShard::Multicast(7, frame("d")), ms(6));
        r.route(ToShard::Conn(1, ToConn::Subscribe(1, 8)), ms(6));
        r.route(ToShard::Multicast(7, frame("e")), ms(7));
        r.route(ToShard::Multicast(8, frame("f")), ms(7));
        assert_eq!(r.take(1), ["1:d", "1:f"]);
    }

    #[test]
    fn a_busy_group_wakes_its_members_at_their_phase() {
        let ms = Duration::from_millis;
        let mut r = rig(2);
        for conn in [1, 2] {
            r.route(ToShard::Conn(conn, ToConn::Subscribe(1, 7)), ms(0));
        }
        r.route(ToShard::Multicast(7, frame("quiet")), ms(1));
        assert_eq!((r.woken(1), r.woken(2)), (1, 1));
        r.take(1);
        r.take(2);
        // Within the interval: busy, so nobody is woken now...
        r.route(ToShard::Multicast(7, frame("busy")), ms(2));
        assert_eq!((r.woken(1), r.woken(2)), (1, 1));
        // ...but each at its phase's next turn (phase 8 at 1.25 ms).
        let mut due = Vec::new();
        r.sched.wheel.take_due(r.t0 + ms(10), &mut due);
        assert_eq!(due.len(), 1, "phase 0 turns at 10 ms");
        for d in due.drain(..) {
            r.sched.turn(&r.slots, &r.shared, d);
        }
        r.sched
            .wheel
            .take_due(r.t0 + ms(10) + Duration::from_micros(1250), &mut due);
        for d in due.drain(..) {
            r.sched.turn(&r.slots, &r.shared, d);
        }
        for w in r.sched.wake.drain(..) {
            w.wake();
        }
        assert_eq!((r.woken(1), r.woken(2)), (2, 2));
        assert_eq!(r.take(1), ["1:busy"]);
        assert_eq!(r.take(2), ["1:busy"]);
    }
}
