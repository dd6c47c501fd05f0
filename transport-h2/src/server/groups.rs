//! A shard's multicast groups: one log of frames per group, shared by the
//! group's member streams on the shard, each with its cursor into it.
//!
//! The core multicasts a broadcast once (`Output::Multicast`), and each
//! shard appends it once to the group's log, whatever the number of
//! members: no per-recipient work when a message is sent. A member takes
//! what it has not taken yet when its connection writes (once per flush
//! interval under load), all of it as one buffer. A frame is dropped from
//! the log once every member that was there when it came has taken it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_sansio::idmap::IdMap;

/// One member stream's place in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sub {
    /// The h2 stream id.
    pub sid: u32,
    pub group: u64,
    /// Number of the next frame it takes.
    cursor: u64,
}

#[derive(Debug)]
struct Group {
    /// Number of the oldest frame held.
    base: u64,
    /// The held frames' bytes, back to back after `dead` bytes of frames
    /// already dropped: one copy hands a member everything it has not taken.
    arena: Vec<u8>,
    dead: usize,
    /// Where each held frame ends in `arena`, and how many members still
    /// need it.
    frames: VecDeque<(usize, u32)>,
    members: u32,
    /// Members' connections by phase, one entry per member stream.
    by_phase: Vec<Vec<u32>>,
    /// Phases on the wheel for this group (bit per phase).
    armed: u64,
    /// When the last frame came.
    last: Option<Instant>,
}

/// Dropped bytes at the front of a group's arena worth moving the rest
/// down for (when they are also more than half of it).
const COMPACT_AT: usize = 16 * 1024;

impl Group {
    fn head(&self) -> u64 {
        self.base + self.frames.len() as u64
    }

    /// One member takes the frames from `cursor` on: returns them as one
    /// buffer (at most `max` bytes: a member further behind than that gets
    /// nothing, `Err`, and its frames are let go all the same), and drops
    /// the frames nobody needs any more.
    fn take(&mut self, cursor: u64, max: usize) -> Result<Option<Bytes>, Overflow> {
        let Some(from) = cursor
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return Ok(None);
        };
        if from >= self.frames.len() {
            return Ok(None);
        }
        let start = match from {
            0 => self.dead,
            i => self.frames[i - 1].0,
        };
        let taken = if self.arena.len() - start > max {
            Err(Overflow)
        } else {
            Ok(Some(Bytes::copy_from_slice(&self.arena[start..])))
        };
        for (_, needed) in self.frames.iter_mut().skip(from) {
            *needed = needed.saturating_sub(1);
        }
        while let Some(&(end, 0)) = self.frames.front() {
            self.frames.pop_front();
            self.base += 1;
            self.dead = end;
        }
        if self.frames.is_empty() {
            self.arena.clear();
            self.dead = 0;
            if self.arena.capacity() > KEEP_CAPACITY {
                // A burst is over: give its memory back.
                self.arena = Vec::new();
            }
        } else if self.dead >= COMPACT_AT && self.dead * 2 > self.arena.len() {
            self.arena.drain(..self.dead);
            for (end, _) in &mut self.frames {
                *end -= self.dead;
            }
            self.dead = 0;
        }
        taken
    }
}

/// A member was further behind than it may take at once: it is let go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

/// Capacity an empty group's arena keeps for the next frames.
const KEEP_CAPACITY: usize = 64 * 1024;

/// What a multicast asks of the scheduler.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// No member on this shard.
    Nobody,
    /// The group was quiet for an interval: wake every member at once.
    Quiet,
    /// The group is busy: members are woken at their phases.
    Busy,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Groups {
    map: IdMap<u64, Group>,
    phases: usize,
}

impl Groups {
    pub(crate) fn new(phases: usize) -> Groups {
        Groups {
            map: IdMap::default(),
            phases: phases.clamp(1, 64),
        }
    }

    /// Makes stream `sid` of `conn` (of wheel phase `phase`) a member of
    /// `group`; it receives the frames multicast from now on.
    pub(crate) fn join(&mut self, group: u64, sid: u32, conn: u32, phase: usize) -> Sub {
        let phases = self.phases;
        let g = self.map.entry(group).or_insert_with(|| Group {
            base: 0,
            arena: Vec::new(),
            dead: 0,
            frames: VecDeque::new(),
            members: 0,
            by_phase: vec![Vec::new(); phases],
            armed: 0,
            last: None,
        });
        g.members += 1;
        g.by_phase[phase % phases].push(conn);
        Sub {
            sid,
            group,
            cursor: g.head(),
        }
    }

    /// Takes a member out of its group; returns the frames it had not
    /// taken yet, as one buffer.
    pub(crate) fn leave(&mut self, sub: Sub, conn: u32, phase: usize) -> Option<Bytes> {
        let g = self.map.get_mut(&sub.group)?;
        let rest = g.take(sub.cursor, usize::MAX).ok().flatten();
        g.members = g.members.saturating_sub(1);
        let list = &mut g.by_phase[phase % self.phases];
        if let Some(i) = list.iter().position(|&c| c == conn) {
            list.swap_remove(i);
        }
        if g.members == 0 {
            self.map.remove(&sub.group);
        }
        rest
    }

    /// The frames multicast to a member's group since it last took, as one
    /// buffer.
    pub(crate) fn take(&mut self, sub: &mut Sub) -> Option<Bytes> {
        self.take_at_most(sub, usize::MAX).ok().flatten()
    }

    /// The same, if they are at most `max` bytes; otherwise `Err`: the
    /// member is too far behind, nothing is copied for it, and it has
    /// passed those frames all the same (its stream is to be cut).
    pub(crate) fn take_at_most(
        &mut self,
        sub: &mut Sub,
        max: usize,
    ) -> Result<Option<Bytes>, Overflow> {
        let Some(g) = self.map.get_mut(&sub.group) else {
            return Ok(None);
        };
        let head = g.head();
        let taken = g.take(sub.cursor, max);
        sub.cursor = head;
        taken
    }

    /// A frame multicast to `group` at `now`; `interval` is the flush
    /// interval, which tells a quiet group from a busy one.
    pub(crate) fn multicast(
        &mut self,
        group: u64,
        frame: Bytes,
        now: Instant,
        interval: Duration,
    ) -> Arrival {
        let Some(g) = self.map.get_mut(&group) else {
            return Arrival::Nobody;
        };
        g.arena.extend_from_slice(&frame);
        g.frames.push_back((g.arena.len(), g.members));
        let quiet = g
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        g.last = Some(now);
        if quiet {
            Arrival::Quiet
        } else {
            Arrival::Busy
        }
    }

    /// Every member connection of `group` on this shard, once per member.
    pub(crate) fn members(&self, group: u64) -> impl Iterator<Item = u32> + '_ {
        self.map
            .get(&group)
            .into_iter()
            .flat_map(|g| g.by_phase.iter().flatten().copied())
    }

    /// Marks the phases with members of `group` that are not on the wheel
    /// yet as on it, handing each to `arm`.
    pub(crate) fn arm(&mut self, group: u64, mut arm: impl FnMut(usize)) {
        let Some(g) = self.map.get_mut(&group) else {
            return;
        };
        for (phase, list) in g.by_phase.iter().enumerate() {
            if !list.is_empty() && g.armed & (1 << phase) == 0 {
                g.armed |= 1 << phase;
                arm(phase);
            }
        }
    }

    /// A phase of `group` came off the wheel: its member connections.
    pub(crate) fn turn(&mut self, group: u64, phase: usize) -> &[u32] {
        match self.map.get_mut(&group) {
            Some(g) => {
                g.armed &= !(1 << phase);
                &g.by_phase[phase % self.phases]
            }
            None => &[],
        }
    }

    /// Frames held for `group`.
    #[cfg(test)]
    fn held(&self, group: u64) -> usize {
        self.map.get(&group).map_or(0, |g| g.frames.len())
    }

    /// Bytes the arena of `group` holds, dropped ones included.
    #[cfg(test)]
    fn arena_len(&self, group: u64) -> usize {
        self.map.get(&group).map_or(0, |g| g.arena.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn members_take_what_came_since_they_joined_and_the_log_empties() {
        let (t0, iv) = (Instant::now(), Duration::from_millis(10));
        let mut g = Groups::new(4);
        assert_eq!(g.multicast(7, f("nobody"), t0, iv), Arrival::Nobody);
        let mut a = g.join(7, 1, 100, 0);
        assert_eq!(g.multicast(7, f("a1 "), t0, iv), Arrival::Quiet);
        let mut b = g.join(7, 3, 200, 1);
        assert_eq!(g.multicast(7, f("ab2 "), t0, iv), Arrival::Busy);
        assert_eq!(g.multicast(7, f("ab3"), t0 + iv, iv), Arrival::Quiet);
        assert_eq!(g.take(&mut a).unwrap(), f("a1 ab2 ab3"));
        assert_eq!(g.take(&mut a), None);
        // b still needs two frames; the first, only a's, is gone.
        assert_eq!(g.held(7), 2);
        assert_eq!(g.take(&mut b).unwrap(), f("ab2 ab3"));
        assert_eq!(g.held(7), 0);
        // b leaves with a frame it had not taken: it gets it, and the log
        // no longer waits for it.
        g.multicast(7, f("last"), t0, iv);
        assert_eq!(g.take(&mut a).unwrap(), f("last"));
        assert_eq!(g.leave(b, 200, 1), Some(f("last")));
        assert_eq!(g.held(7), 0);
        assert_eq!(g.members(7).collect::<Vec<_>>(), [100]);
        g.multicast(7, f("x"), t0, iv);
        assert_eq!(g.leave(a, 100, 0), Some(f("x")));
        assert_eq!(g.members(7).count(), 0);
        assert_eq!(g.held(7), 0, "the group is gone with its last member");
    }

    #[test]
    fn a_member_far_behind_keeps_the_arena_bounded_by_what_it_lacks() {
        let (t0, iv) = (Instant::now(), Duration::from_millis(10));
        let mut g = Groups::new(1);
        let mut fast = g.join(1, 1, 1, 0);
        let mut slow = g.join(1, 3, 2, 0);
        let frame = Bytes::from(vec![7u8; 1000]);
        for _ in 0..100 {
            g.multicast(1, frame.clone(), t0, iv);
            g.take(&mut fast);
        }
        assert_eq!(g.held(1), 100);
        // The slow one takes all; its late friend does not keep the bytes.
        assert_eq!(g.take(&mut slow).unwrap().len(), 100_000);
        assert_eq!((g.held(1), g.arena_len(1)), (0, 0));
        // Two taking in turns, so the log is never empty: the bytes of
        // dropped frames are reclaimed, not piled up.
        let mut other = g.join(1, 5, 3, 0);
        for i in 0..200 {
            g.multicast(1, frame.clone(), t0, iv);
            g.take(&mut fast);
            let (now, later) = if i % 2 == 0 {
                (&mut slow, &mut other)
            } else {
                (&mut other, &mut slow)
            };
            let got = g.take(now).unwrap().len();
            assert!(got == 1000 || got == 2000, "{got}");
            assert!(g.held(1) >= 1, "{later:?} lags");
        }
        assert!(
            g.arena_len(1) <= 2 * COMPACT_AT + 1000,
            "{}",
            g.arena_len(1)
        );
    }

    #[test]
    fn a_member_too_far_behind_takes_nothing_and_holds_nothing() {
        let (t0, iv) = (Instant::now(), Duration::from_millis(10));
        let mut g = Groups::new(1);
        let mut fast = g.join(1, 1, 1, 0);
        let mut slow = g.join(1, 3, 2, 0);
        for _ in 0..10 {
            g.multicast(1, Bytes::from(vec![1u8; 100]), t0, iv);
        }
        assert_eq!(
            g.take_at_most(&mut fast, 1000).unwrap().unwrap().len(),
            1000
        );
        assert_eq!(g.take_at_most(&mut slow, 999), Err(Overflow));
        assert_eq!((g.held(1), g.arena_len(1)), (0, 0), "nothing kept for it");
        g.multicast(1, Bytes::from(vec![2u8; 100]), t0, iv);
        assert_eq!(g.take_at_most(&mut slow, 999).unwrap().unwrap().len(), 100);
    }

    #[test]
    fn phases_are_armed_once_until_they_turn() {
        let mut g = Groups::new(4);
        g.join(1, 1, 10, 0);
        g.join(1, 3, 10, 0);
        g.join(1, 1, 30, 2);
        let mut armed = Vec::new();
        g.arm(1, |p| armed.push(p));
        g.arm(1, |p| armed.push(p));
        assert_eq!(armed, [0, 2]);
        assert_eq!(g.turn(1, 0), [10, 10]);
        armed.clear();
        g.arm(1, |p| armed.push(p));
        assert_eq!(armed, [0]);
        assert!(g.turn(9, 0).is_empty());
    }

    /// One step of the model-based test: what can happen to a shard's groups.
    #[derive(Debug, Clone)]
    enum Op {
        Join { member: usize, group: u64 },
        Leave { member: usize },
        Multicast { group: u64, len: usize },
        Take { member: usize },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6usize, 0..3u64).prop_map(|(member, group)| Op::Join { member, group }),
            (0..6usize).prop_map(|member| Op::Leave { member }),
            (0..3u64, 1..40usize).prop_map(|(group, len)| Op::Multicast { group, len }),
            (0..6usize).prop_map(|member| Op::Take { member }),
            (0..6usize).prop_map(|member| Op::Take { member }),
        ]
    }

    proptest::proptest! {
        /// Against the reference meaning (every member gets every frame
        /// multicast to its group while it is in it, in order, once), under
        /// any interleaving of joins, leaves, multicasts and takes: each
        /// member receives exactly that; a group holds no frame that every
        /// member has taken; a group with no members is gone.
        #[test]
        fn groups_deliver_what_the_reference_does(ops in proptest::collection::vec(op(), 1..200)) {
            let (t0, iv) = (Instant::now(), Duration::from_millis(10));
            let mut g = Groups::new(4);
            // Per member: its sub (if in a group), what it got, what it should.
            let mut subs: Vec<Option<Sub>> = vec![None; 6];
            let mut got: Vec<Vec<u8>> = vec![Vec::new(); 6];
            let mut want: Vec<Vec<u8>> = vec![Vec::new(); 6];
            let mut next = 0u8;
            for op in ops {
                match op {
                    Op::Join { member, group } => {
                        if let Some(old) = subs[member].take() {
                            got[member].extend(g.leave(old, member as u32, member).unwrap_or_default());
                        }
                        subs[member] = Some(g.join(group, 1, member as u32, member));
                    }
                    Op::Leave { member } => {
                        if let Some(old) = subs[member].take() {
                            got[member].extend(g.leave(old, member as u32, member).unwrap_or_default());
                        }
                    }
                    Op::Multicast { group, len } => {
                        next = next.wrapping_add(1);
                        let frame = Bytes::from(vec![next; len]);
                        for (m, sub) in subs.iter().enumerate() {
                            if sub.as_ref().is_some_and(|s| s.group == group) {
                                want[m].extend_from_slice(&frame);
                            }
                        }
                        g.multicast(group, frame, t0, iv);
                    }
                    Op::Take { member } => {
                        if let Some(sub) = subs[member].as_mut() {
                            got[member].extend(g.take(sub).unwrap_or_default());
                        }
                    }
                }
                for group in 0..3u64 {
                    let members = subs.iter().flatten().filter(|s| s.group == group).count();
                    proptest::prop_assert_eq!(g.members(group).count(), members);
                    let behind = subs
                        .iter()
                        .flatten()
                        .filter(|s| s.group == group)
                        .map(|s| g.map.get(&group).map_or(0, |gr| gr.head() - s.cursor))
                        .max()
                        .unwrap_or(0);
                    proptest::prop_assert_eq!(g.held(group) as u64, behind, "group {}", group);
                }
            }
            for (m, sub) in subs.iter_mut().enumerate() {
                if let Some(sub) = sub.as_mut() {
                    got[m].extend(g.take(sub).unwrap_or_default());
                }
            }
            proptest::prop_assert_eq!(got, want);
        }
    }
}
