//! Resuming a JoinChat stream after a reconnect: the client says the last
//! message it has (epoch and seq, [`super::RESUME_METADATA`]); the stream
//! receives every message of its room after that one, from the engine, a
//! page at a time, then joins the live ones, with no gap and no duplicate.
//!
//! While it catches up the stream is in its room but not subscribed to the
//! room's group: what the room delivers meanwhile comes to it in a later
//! page. Each page is asked for once the previous one has left the
//! transport's queue for the call (`Outbox::notify_drained`), so a large
//! gap is never buffered whole. When a page leaves nothing between what the
//! stream has and what the room has delivered, the stream subscribes, in
//! the same step: from then on it receives the live messages.

use chat_proto::ChatMessage;

use crate::limits::{MAX_RESUME_AHEAD, RESUME_PAGE};
use crate::server::{CallId, Outbox};
use crate::status::{Code, Status};

use super::pages::Read;
use super::room::Waiting;
use super::{Chat, ChatCall, ChatEvent, StreamCall};

/// Where a resuming stream is.
#[derive(Debug, Clone, Copy)]
pub(super) struct CatchUp {
    /// The last seq it has.
    pub next: u64,
    /// A page has been asked for and not answered.
    pub reading: bool,
    /// A page has been sent and the transport has not sent it on yet.
    pub draining: bool,
    /// The engine holds `next` (asked when it is past what the room has
    /// delivered: a client may not claim what was never stored).
    pub held: bool,
}

/// Parses `EPOCH:SEQ`.
pub(super) fn parse(value: &str) -> Result<(u64, u64), Status> {
    let bad = || {
        Status::new(
            Code::InvalidArgument,
            format!("{} must be EPOCH:SEQ", super::RESUME_METADATA),
        )
    };
    let (epoch, seq) = value.trim().split_once(':').ok_or_else(bad)?;
    Ok((
        epoch.parse().map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}

impl Chat {
    /// Puts a stream that resumes from `seq` of `epoch` into its room, not
    /// subscribed; its catching up starts once the room is open.
    pub(super) fn place_resuming(
        &mut self,
        call: CallId,
        mut stream: StreamCall,
        epoch: u64,
        seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        stream.catch_up = Some(CatchUp {
            next: seq,
            reading: false,
            draining: false,
            held: false,
        });
        let room_id = stream.room.clone();
        self.add_stream(call, stream, out)?;
        match self.rooms.get_mut(&room_id) {
            Some(room) if room.log.is_none() => {
                room.waiting.push(Waiting::Resume(call, epoch, seq));
            }
            _ => self.start_resume(call, &room_id, epoch, seq, out),
        }
        Ok(())
    }

    /// Checks that `room` can give a stream what it missed, and starts;
    /// unless the stream has left it since (it started afresh where it went).
    pub(super) fn start_resume(
        &mut self,
        call: CallId,
        room: &str,
        epoch: u64,
        seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let still = matches!(
            self.calls.get(&call),
            Some(ChatCall::Stream(s)) if s.room == room && s.catch_up.is_some()
        );
        let Some(log) = self.log_of(call).filter(|_| still) else {
            return;
        };
        let from = if epoch != log.epoch || seq + 1 < log.first {
            // Another history, or what came after it has been removed:
            // start over from what the room holds.
            Some(log.first - 1)
        } else if seq > log.delivered + MAX_RESUME_AHEAD {
            // Far ahead of this node's room (a node behind by a moment
            // waits; this much is a wrong number).
            Some(log.delivered)
        } else {
            None
        };
        match from {
            Some(from) => self.cannot_resume(call, log.epoch, from, out),
            None => self.continue_resume(call, out),
        }
    }

    /// Ends a stream that cannot resume where it asked, saying where it can.
    fn cannot_resume(
        &mut self,
        call: CallId,
        epoch: u64,
        from: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let status = Status::new(
            Code::OutOfRange,
            format!("cannot resume there; resume from {epoch}:{from}"),
        );
        if out.finish(call, status) {
            self.forget(call);
        }
    }

    /// The epoch and delivered seq of a stream's room, if it is open.
    fn log_of(&self, call: CallId) -> Option<super::room::Log> {
        let Some(ChatCall::Stream(s)) = self.calls.get(&call) else {
            return None;
        };
        self.rooms.get(&s.room)?.log
    }

    /// Asks for the next page, or, if the stream has everything the room
    /// has delivered, subscribes it.
    pub(super) fn continue_resume(&mut self, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        let Some(log) = self.log_of(call) else {
            return;
        };
        let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(catch_up) = s.catch_up.as_mut() else {
            return;
        };
        if catch_up.reading || catch_up.draining {
            return; // Waits for its page, or for the transport.
        }
        if catch_up.next > log.delivered {
            if catch_up.held {
                // Waits for this node's room to reach what the client has
                // seen (on another node).
                return;
            }
            // Past what this room has delivered: does the engine hold it?
            catch_up.reading = true;
            let (room, at) = (s.room.clone(), catch_up.next);
            self.issue_read(
                Read::Ahead { call },
                |token| ChatEvent::ReadRange {
                    token,
                    room,
                    after: at - 1,
                    up_to: at,
                    limit: 1,
                },
                out,
            );
            return;
        }
        if catch_up.next == log.delivered {
            s.catch_up = None;
            let room_id = s.room.clone();
            if let Some(room) = self.rooms.get_mut(&room_id) {
                room.catching_up = room.catching_up.saturating_sub(1);
                out.subscribe(call, room.group());
            }
            return;
        }
        catch_up.reading = true;
        let (room, after) = (s.room.clone(), catch_up.next);
        self.issue_read(
            Read::Resume { call },
            |token| ChatEvent::ReadRange {
                token,
                room,
                after,
                up_to: log.delivered,
                limit: RESUME_PAGE,
            },
            out,
        );
    }

    /// A page for a resuming stream: sent to it, then the next asked for
    /// once the transport has sent it on.
    pub(super) fn resume_page(
        &mut self,
        call: CallId,
        entries: Result<Vec<ChatMessage>, String>,
        first_seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(log) = self.log_of(call) else {
            return;
        };
        let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(catch_up) = s.catch_up.as_mut() else {
            return;
        };
        catch_up.reading = false;
        catch_up.draining = true;
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return self.read_failed(call, &e, out),
        };
        if catch_up.next + 1 < first_seq {
            let from = first_seq - 1;
            return self.cannot_resume(call, log.epoch, from, out);
        }
        let before = catch_up.next;
        for entry in entries {
            if entry.epoch != log.epoch
                || entry.seq != catch_up.next + 1
                || entry.seq > log.delivered
            {
                continue;
            }
            catch_up.next = entry.seq;
            if !out.send_message(call, &entry) {
                return;
            }
        }
        if catch_up.next == before {
            // The engine has none of what follows: it cannot be proved.
            let from = log.delivered;
            return self.cannot_resume(call, log.epoch, from, out);
        }
        out.notify_drained(call);
    }

    /// The engine's answer on a point past what the room has delivered: if
    /// it holds it, the entry goes to the room (which fills the gap before
    /// it, as for any entry from elsewhere) and the stream waits for the
    /// room to reach it; if not, the client claims what was never stored,
    /// and is told where it can resume from.
    pub(super) fn resume_ahead(
        &mut self,
        now: crate::time::Time,
        call: CallId,
        entries: Result<Vec<ChatMessage>, String>,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(log) = self.log_of(call) else {
            return;
        };
        let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(catch_up) = s.catch_up.as_mut() else {
            return;
        };
        catch_up.reading = false;
        let entry = match entries {
            Ok(entries) => entries
                .into_iter()
                .find(|e| e.seq == catch_up.next && e.epoch == log.epoch),
            Err(e) => return self.read_failed(call, &e, out),
        };
        let Some(entry) = entry else {
            return self.cannot_resume(call, log.epoch, log.delivered, out);
        };
        catch_up.held = true;
        let room = s.room.clone();
        self.accept(now, &room, entry, out);
        self.continue_resume(call, out);
    }

    /// The transport has sent on everything queued for `call`.
    pub(super) fn catch_up_drained(&mut self, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        if let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) {
            if let Some(c) = s.catch_up.as_mut() {
                c.draining = false;
            }
        }
        self.continue_resume(call, out);
    }

    /// The room delivered up to a new seq: streams waiting for it to reach
    /// what they have go on.
    pub(super) fn room_moved(&mut self, room_id: &str, out: &mut Outbox<'_, ChatEvent>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        if room.catching_up == 0 {
            return;
        }
        let waiting: Vec<CallId> = room
            .streams()
            .iter()
            .copied()
            .filter(|c| {
                matches!(self.calls.get(c), Some(ChatCall::Stream(s))
                    if s.catch_up.is_some_and(|c| !c.reading && !c.draining))
            })
            .collect();
        for call in waiting {
            self.continue_resume(call, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_parse() {
        assert_eq!(parse("7:42").unwrap(), (7, 42));
        assert_eq!(parse(" 0:0 ").unwrap(), (0, 0));
        for bad in ["", "7", "7:", ":4", "a:b", "-1:2", "1:2:3"] {
            assert_eq!(parse(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
    }
}
