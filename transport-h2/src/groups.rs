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

use bytes::{Bytes, BytesMut};
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
    /// Number of `frames[0]`.
    base: u64,
    /// Frames some member has not taken, each with how many still need it.
    frames: VecDeque<(Bytes, u32)>,
    members: u32,
    /// Members' connections by phase, one entry per member stream.
    by_phase: Vec<Vec<u32>>,
    /// Phases on the wheel for this group (bit per phase).
    armed: u64,
    /// When the last frame came.
    last: Option<Instant>,
}

impl Group {
    fn head(&self) -> u64 {
        self.base + self.frames.len() as u64
    }

    /// Counts the frames from `cursor` on as taken by one member, handing
    /// each to `each`; drops the frames nobody needs any more.
    fn take(&mut self, cursor: u64, mut each: impl FnMut(&Bytes)) {
        let from = usize::try_from(cursor.saturating_sub(self.base)).unwrap_or(usize::MAX);
        for (frame, needed) in self.frames.iter_mut().skip(from) {
            each(frame);
            *needed = needed.saturating_sub(1);
        }
        while self.frames.front().is_some_and(|(_, needed)| *needed == 0) {
            self.frames.pop_front();
            self.base += 1;
        }
    }
}

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

    /// Takes a member out of its group, handing it first the frames it has
    /// not taken yet (`each` may drop them).
    pub(crate) fn leave(&mut self, sub: Sub, conn: u32, phase: usize, each: impl FnMut(&Bytes)) {
        let Some(g) = self.map.get_mut(&sub.group) else {
            return;
        };
        g.take(sub.cursor, each);
        g.members = g.members.saturating_sub(1);
        let list = &mut g.by_phase[phase % self.phases];
        if let Some(i) = list.iter().position(|&c| c == conn) {
            list.swap_remove(i);
        }
        if g.members == 0 {
            self.map.remove(&sub.group);
        }
    }

    /// The frames multicast to a member's group since it last took, as one
    /// buffer (copied together if more than one).
    pub(crate) fn take(&mut self, sub: &mut Sub) -> Option<Bytes> {
        let g = self.map.get_mut(&sub.group)?;
        let head = g.head();
        if sub.cursor >= head {
            return None;
        }
        let from = (sub.cursor - g.base.min(sub.cursor)) as usize;
        let (len, count) = g
            .frames
            .iter()
            .skip(from)
            .fold((0, 0), |(len, n), (f, _)| (len + f.len(), n + 1));
        let mut one = None;
        let mut buf = BytesMut::new();
        if count > 1 {
            buf.reserve(len);
        }
        g.take(sub.cursor, |f| {
            if count == 1 {
                one = Some(f.clone());
            } else {
                buf.extend_from_slice(f);
            }
        });
        sub.cursor = head;
        one.or_else(|| Some(buf.freeze()))
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
        g.frames.push_back((frame, g.members));
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

    /// Frames held for `group` (for tests and limits).
    #[cfg(test)]
    fn held(&self, group: u64) -> usize {
        self.map.get(&group).map_or(0, |g| g.frames.len())
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
        // A lone frame is handed over without a copy.
        let lone = f("lone");
        g.multicast(7, lone.clone(), t0, iv);
        assert_eq!(g.take(&mut a).unwrap().as_ptr(), lone.as_ptr());
        // b leaves with a frame it had not taken: it gets it, and the log
        // no longer waits for it.
        let mut got = Vec::new();
        g.leave(b, 200, 1, |x| got.push(x.clone()));
        assert_eq!(got, [f("lone")]);
        assert_eq!(g.held(7), 0);
        assert_eq!(g.members(7).collect::<Vec<_>>(), [100]);
        g.multicast(7, f("x"), t0, iv);
        g.leave(a, 100, 0, |_| {});
        assert_eq!(g.members(7).count(), 0);
        assert_eq!(g.held(7), 0, "the group is gone with its last member");
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
}
