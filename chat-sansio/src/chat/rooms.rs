//! Rooms in memory: opened from the engine on first use, run once it has
//! answered, and let go when idle and space is needed.

use crate::limits::MAX_ROOMS;
use crate::server::{GroupId, Outbox};
use crate::status::{Code, Status};
use crate::time::Time;

use super::room::{Log, Room, Waiting};
use super::{Chat, ChatCall, ChatEvent};

/// Rooms let go at once when memory is full: a few, so that a burst of new
/// rooms does not scan the map for each one.
const EVICT_BATCH: usize = MAX_ROOMS / 64 + 1;

impl Chat {
    /// The room, in memory: asked of the engine ([`ChatEvent::OpenRoom`])
    /// if it is not; RESOURCE_EXHAUSTED if memory holds as many rooms as it
    /// may and none of them is idle. The caller has checked that the
    /// policy lets it exist.
    pub(super) fn room_mut(
        &mut self,
        id: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<&mut Room, Status> {
        self.tick += 1;
        if !self.rooms.contains_key(id) {
            if self.rooms.len() >= MAX_ROOMS {
                self.evict(out);
                if self.rooms.len() >= MAX_ROOMS {
                    return Err(Status::new(
                        Code::ResourceExhausted,
                        "too many rooms in use; try again later",
                    ));
                }
            }
            let group = GroupId(self.next_group);
            self.next_group += 1;
            self.rooms.insert(id.to_owned(), Room::new(group));
        }
        let room = self.rooms.get_mut(id).expect("inserted above");
        if room.log.is_none() && !room.opening {
            // New here, or its last opening failed.
            room.opening = true;
            out.event(ChatEvent::OpenRoom {
                room: id.to_owned(),
            });
        }
        let tick = self.tick;
        let room = self.rooms.get_mut(id).expect("inserted above");
        room.last_used = tick;
        Ok(room)
    }

    /// Lets go of the least recently used idle rooms.
    fn evict(&mut self, out: &mut Outbox<'_, ChatEvent>) {
        let mut idle: Vec<(u64, String)> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.is_idle())
            .map(|(id, r)| (r.last_used, id.clone()))
            .collect();
        idle.sort_unstable();
        for (_, id) in idle.into_iter().take(EVICT_BATCH) {
            self.rooms.remove(&id);
            out.event(ChatEvent::CloseRoom { room: id });
        }
    }

    /// The engine says where `room`'s log stands: deliver what it holds for
    /// later, and run what waited for it.
    pub(super) fn room_opened(
        &mut self,
        now: Time,
        room_id: &str,
        epoch: u64,
        last_seq: u64,
        first_seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return; // Gone (it failed to open, and was let go).
        };
        if room.log.is_some() {
            return; // Opened already: a late second answer.
        }
        room.opening = false;
        room.log = Some(Log {
            epoch,
            delivered: last_seq,
            first: first_seq.min(last_seq + 1).max(1),
        });
        for call in room.streams().to_vec() {
            if let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) {
                s.since.get_or_insert(last_seq);
            }
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.held = room.held.split_off(&(last_seq + 1));
        room.held.retain(|_, e| e.epoch == epoch);
        let waiting = std::mem::take(&mut room.waiting);
        self.drain(now, room_id, out);
        for w in waiting {
            match w {
                Waiting::Post(call, conn, request) => self.issue_append(call, conn, *request, out),
                Waiting::Reply(call) => self.ask_join_history(call, room_id, out),
                Waiting::Resume(call, epoch, seq) => {
                    self.start_resume(call, room_id, epoch, seq, out)
                }
            }
        }
    }

    /// The engine could not open `room`: what waited for it fails with
    /// UNAVAILABLE, and so do the streams in it (nothing would reach them);
    /// the room stays (who is present there is still there) and its next
    /// use asks the engine again.
    pub(super) fn open_failed(
        &mut self,
        room_id: &str,
        reason: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.log.is_some() {
            return;
        }
        room.opening = false;
        let status = Status::new(
            Code::Unavailable,
            format!("room {room_id:?} cannot be opened: {reason}"),
        );
        let waiting = std::mem::take(&mut room.waiting);
        let streams = room.streams().to_vec();
        for w in waiting {
            let call = match w {
                Waiting::Post(call, conn, _) => {
                    self.settle_share(conn, out);
                    call
                }
                Waiting::Reply(call) => call,
                // A stream still resuming here is among the room's streams;
                // one that moved on is not this room's to end.
                Waiting::Resume(..) => continue,
            };
            if out.finish(call, status.clone()) {
                self.forget(call);
            }
        }
        for call in streams {
            if out.finish(call, status.clone()) {
                self.forget(call);
            }
        }
    }
}
