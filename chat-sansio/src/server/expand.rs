//! Multicast groups expanded into per-call messages, for drivers that keep
//! no groups of their own.

use std::collections::VecDeque;

use crate::idmap::IdMap;

use super::ids::{CallId, GroupId};
use super::output::Output;

/// Follows `Subscribe`/`Unsubscribe` and turns each `Multicast` into one
/// `Message` per member, in the order the outputs define. Every other output
/// passes through unchanged; `Subscribe` and `Unsubscribe` are consumed.
///
/// This is the reference meaning of a multicast: a driver that shares
/// broadcasts among its connections must deliver exactly what this would.
#[derive(Debug, Default)]
pub struct Expand {
    members: IdMap<GroupId, Vec<CallId>>,
    /// Each subscribed call's group and its index in the group's members.
    of: IdMap<CallId, (GroupId, usize)>,
}

impl Expand {
    /// Applies one output, pushing what the driver must carry out to `out`.
    pub fn apply<E>(&mut self, output: Output<E>, out: &mut VecDeque<Output<E>>) {
        match output {
            Output::Subscribe { call, group } => {
                self.leave(call);
                let members = self.members.entry(group).or_default();
                self.of.insert(call, (group, members.len()));
                members.push(call);
            }
            Output::Unsubscribe { call } => self.leave(call),
            Output::Multicast { group, frame } => {
                for &call in self.members.get(&group).into_iter().flatten() {
                    out.push_back(Output::Message {
                        call,
                        frame: frame.clone(),
                    });
                }
            }
            other => out.push_back(other),
        }
    }

    /// The group `call` is subscribed to.
    pub fn group_of(&self, call: CallId) -> Option<GroupId> {
        self.of.get(&call).map(|&(group, _)| group)
    }

    /// Number of calls subscribed to `group`.
    pub fn members(&self, group: GroupId) -> usize {
        self.members.get(&group).map_or(0, Vec::len)
    }

    fn leave(&mut self, call: CallId) {
        let Some((group, i)) = self.of.remove(&call) else {
            return;
        };
        let Some(members) = self.members.get_mut(&group) else {
            return;
        };
        members.swap_remove(i);
        if let Some(&moved) = members.get(i) {
            self.of.insert(moved, (group, i));
        }
        if members.is_empty() {
            self.members.remove(&group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn messages(out: &mut VecDeque<Output<()>>) -> Vec<(u64, Bytes)> {
        out.drain(..)
            .map(|o| match o {
                Output::Message { call, frame } => (call.0, frame),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn multicasts_reach_the_members_of_the_moment() {
        let (g, h) = (GroupId(1), GroupId(2));
        let mut e = Expand::default();
        let mut out = VecDeque::new();
        let f = |s: &'static str| Bytes::from_static(s.as_bytes());
        for call in 1..=3 {
            e.apply(
                Output::<()>::Subscribe {
                    call: CallId(call),
                    group: g,
                },
                &mut out,
            );
        }
        e.apply(
            Output::Multicast {
                group: g,
                frame: f("a"),
            },
            &mut out,
        );
        assert_eq!(messages(&mut out), [(1, f("a")), (2, f("a")), (3, f("a"))]);
        // 1 leaves, 3 moves to h: the swap keeps the index table right.
        e.apply(Output::Unsubscribe { call: CallId(1) }, &mut out);
        e.apply(
            Output::Subscribe {
                call: CallId(3),
                group: h,
            },
            &mut out,
        );
        e.apply(
            Output::Multicast {
                group: g,
                frame: f("b"),
            },
            &mut out,
        );
        e.apply(
            Output::Multicast {
                group: h,
                frame: f("c"),
            },
            &mut out,
        );
        assert_eq!(messages(&mut out), [(2, f("b")), (3, f("c"))]);
        assert_eq!((e.members(g), e.members(h)), (1, 1));
        e.apply(Output::Unsubscribe { call: CallId(2) }, &mut out);
        e.apply(Output::Unsubscribe { call: CallId(2) }, &mut out);
        assert_eq!(e.members(g), 0);
        // Other outputs pass through.
        e.apply(
            Output::Headers {
                call: CallId(9),
                encoding: None,
                metadata: Default::default(),
            },
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
