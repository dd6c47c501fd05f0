//! One room as this client has shown it: where the room's log stands for
//! us (its epoch and the last seq shown), the lines typed here and not yet
//! acknowledged, and what each arriving entry means for the screen.
//!
//! The server numbers a room's messages 1, 2, 3, ... without gaps and
//! delivers them in that order, so one number says what we have. Entries
//! reach us through history (`ChatRoom.history`), a resumed stream and the
//! live stream, and a retried line's echo may come straight to us ahead of
//! its turn (the server answers a retry of a stored line with the original
//! entry); each seq is shown once, in order where it can be. Pure: no I/O,
//! no clock.

use std::collections::{BTreeSet, VecDeque};

use chat_proto::{ChatMessage, ChatRoom};

/// A line typed and not yet acknowledged by its echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacked {
    /// Its `client_msg_id`, the same on every retry.
    pub id: String,
    /// The text typed.
    pub text: String,
    /// The stream it was last sent on, while that stream is open.
    pub sent_on: Option<u64>,
}

/// What an arriving entry shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A message; `own` if it acknowledges a line typed here.
    Message {
        /// The entry as delivered.
        msg: Box<ChatMessage>,
        /// It is the echo of one of our lines.
        own: bool,
    },
    /// This many entries before the next one will not be shown.
    Missing(u64),
}

/// A room's log as shown here, and our unacknowledged lines in it.
#[derive(Debug, Clone)]
pub struct RoomLog {
    epoch: u64,
    /// Every entry up to this one has been shown (or reported missing).
    last: u64,
    /// Entries above `last` shown already: echoes that came before their
    /// turn.
    ahead: BTreeSet<u64>,
    /// The lowest seq of this epoch shown here (0: none): `/history` pages
    /// back from it.
    oldest: u64,
    unacked: VecDeque<Unacked>,
}

impl RoomLog {
    /// A room whose entries up to `last` of `epoch` need not be shown.
    pub fn new(epoch: u64, last: u64) -> RoomLog {
        RoomLog {
            epoch,
            last,
            ahead: BTreeSet::new(),
            oldest: 0,
            unacked: VecDeque::new(),
        }
    }

    /// Where a stream resumes from: the epoch and the last seq shown.
    pub fn position(&self) -> (u64, u64) {
        (self.epoch, self.last)
    }

    /// The epoch and the seq `/history` asks for entries before: the oldest
    /// entry shown, or the one after our position if none has been.
    pub fn before(&self) -> (u64, u64) {
        let before = if self.oldest > 0 {
            self.oldest
        } else {
            self.last + 1
        };
        (self.epoch, before)
    }

    /// A page of older entries (from `/history`, oldest first) has been
    /// shown: the next page comes from before its first.
    pub fn shown_older(&mut self, epoch: u64, first: u64) {
        if epoch == self.epoch && first > 0 && (self.oldest == 0 || first < self.oldest) {
            self.oldest = first;
        }
    }

    /// An entry of the room's log, from history or a stream that shows the
    /// room: shown in its turn, once.
    pub fn entry(&mut self, msg: ChatMessage, out: &mut Vec<Shown>) {
        let own = self.take_unacked(&msg.client_msg_id);
        if msg.epoch != self.epoch {
            // A new numbering (the caller has said why): it starts here.
            self.restart(msg.epoch, msg.seq.saturating_sub(1));
        }
        let seq = msg.seq;
        if seq <= self.last || self.ahead.contains(&seq) {
            return;
        }
        if seq > self.last + 1 {
            if own {
                // A retry's echo, ahead of the entries before it.
                self.ahead.insert(seq);
                out.push(Shown::Message {
                    msg: Box::new(msg),
                    own,
                });
                return;
            }
            let shown_between = self.ahead.range(self.last + 1..seq).count() as u64;
            out.push(Shown::Missing(seq - self.last - 1 - shown_between));
        }
        self.last = seq;
        self.settle();
        self.shown_older(msg.epoch, seq);
        out.push(Shown::Message {
            msg: Box::new(msg),
            own,
        });
    }

    /// An entry from a stream that only carries our lines (a room we have
    /// left): shown only if it acknowledges one of them.
    pub fn echo(&mut self, msg: ChatMessage, out: &mut Vec<Shown>) {
        if !self.take_unacked(&msg.client_msg_id) {
            return;
        }
        if msg.epoch != self.epoch || msg.seq <= self.last || !self.ahead.insert(msg.seq) {
            return;
        }
        out.push(Shown::Message {
            msg: Box::new(msg),
            own: true,
        });
    }

    /// A JoinChatRoom answer for this room: its history from where we
    /// stopped (all of it if the numbering changed), and the log stands at
    /// its `last_seq` afterwards.
    pub fn history(&mut self, room: &ChatRoom, out: &mut Vec<Shown>) {
        if room.epoch != self.epoch {
            let first = room
                .history
                .first()
                .map_or(room.last_seq, |m| m.seq.saturating_sub(1));
            self.restart(room.epoch, first);
        }
        let first = room.history.first().map_or(room.last_seq + 1, |m| m.seq);
        if first > self.last + 1 {
            // More came than history holds: say so and go on after it.
            out.push(Shown::Missing(first - self.last - 1));
            self.last = first - 1;
            self.settle();
        }
        for m in &room.history {
            self.entry(m.clone(), out);
        }
        if room.last_seq > self.last {
            out.push(Shown::Missing(room.last_seq - self.last));
            self.last = room.last_seq;
            self.settle();
        }
    }

    /// The server cannot resume at our position and names another: the
    /// log goes on from there. Returns how many entries are lost, if that
    /// can be told (same epoch, later point).
    pub fn resume_from(&mut self, epoch: u64, seq: u64) -> Option<u64> {
        let lost = (epoch == self.epoch && seq >= self.last).then(|| seq - self.last);
        self.restart(epoch, seq);
        lost
    }

    fn restart(&mut self, epoch: u64, last: u64) {
        self.epoch = epoch;
        self.last = last;
        self.ahead.clear();
        self.oldest = 0;
    }

    /// Moves `last` over echoes shown ahead of their turn, and forgets
    /// those it has passed.
    fn settle(&mut self) {
        while self.ahead.remove(&(self.last + 1)) {
            self.last += 1;
        }
        self.ahead = self.ahead.split_off(&(self.last + 1));
    }

    /// Removes the unacknowledged line `id`, if there is one.
    fn take_unacked(&mut self, id: &str) -> bool {
        if id.is_empty() {
            return false;
        }
        match self.unacked.iter().position(|u| u.id == id) {
            Some(i) => {
                self.unacked.remove(i);
                true
            }
            None => false,
        }
    }

    /// A line typed in this room, to be sent until acknowledged.
    pub fn push(&mut self, id: String, text: String) {
        self.unacked.push_back(Unacked {
            id,
            text,
            sent_on: None,
        });
    }

    /// The lines not in flight on an open stream, in the order typed, now
    /// marked as sent on `stream`.
    pub fn take_unsent(&mut self, stream: u64) -> Vec<Unacked> {
        let mut lines = Vec::new();
        for u in self.unacked.iter_mut().filter(|u| u.sent_on.is_none()) {
            u.sent_on = Some(stream);
            lines.push(u.clone());
        }
        lines
    }

    /// `stream` has ended: what was sent on it goes out again on the next.
    pub fn stream_ended(&mut self, stream: u64) {
        for u in self.unacked.iter_mut() {
            if u.sent_on == Some(stream) {
                u.sent_on = None;
            }
        }
    }

    /// Every stream has gone (the connection): everything goes out again.
    pub fn all_unsent(&mut self) {
        for u in self.unacked.iter_mut() {
            u.sent_on = None;
        }
    }

    /// Takes over `other`'s unacknowledged lines (typed before the room
    /// had answered, under the name we asked for).
    pub fn adopt(&mut self, other: RoomLog) {
        self.unacked.extend(other.unacked);
    }

    /// Gives up on every unacknowledged line (the server refused them).
    pub fn drop_unacked(&mut self) -> Vec<Unacked> {
        self.unacked.drain(..).collect()
    }

    /// Lines not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, id: &str) -> ChatMessage {
        ChatMessage {
            seq,
            epoch: 7,
            message: format!("m{seq}"),
            client_msg_id: id.to_owned(),
            ..Default::default()
        }
    }

    /// The seqs shown, with `!` for own lines and `-N` for N missing.
    fn shown(out: &[Shown]) -> Vec<String> {
        out.iter()
            .map(|s| match s {
                Shown::Message { msg, own: true } => format!("{}!", msg.seq),
                Shown::Message { msg, own: false } => msg.seq.to_string(),
                Shown::Missing(n) => format!("-{n}"),
            })
            .collect()
    }

    #[test]
    fn entries_show_once_in_order() {
        let mut log = RoomLog::new(7, 2);
        let mut out = Vec::new();
        for seq in [1, 3, 3, 4, 2, 5] {
            log.entry(msg(seq, ""), &mut out);
        }
        assert_eq!(shown(&out), ["3", "4", "5"]);
        assert_eq!(log.position(), (7, 5));
    }

    #[test]
    fn history_pages_back_from_the_oldest_entry_shown() {
        // Joined where 4 entries were known to us and none shown: page
        // from 5.
        let mut log = RoomLog::new(7, 4);
        assert_eq!(log.before(), (7, 5));
        let mut out = Vec::new();
        for seq in [8, 9] {
            log.entry(msg(seq, ""), &mut out);
        }
        assert_eq!(log.before(), (7, 8), "the oldest shown, not the skipped");
        log.shown_older(7, 3);
        assert_eq!(log.before(), (7, 3));
        log.shown_older(7, 6);
        log.shown_older(6, 1);
        assert_eq!(log.before(), (7, 3), "never forward, never another epoch");
        log.entry(
            ChatMessage {
                epoch: 8,
                ..msg(2, "")
            },
            &mut out,
        );
        assert_eq!(log.before(), (8, 2), "a new numbering starts again");
    }

    #[test]
    fn an_echo_acknowledges_its_line() {
        let mut log = RoomLog::new(7, 0);
        log.push("c-1".into(), "hi".into());
        log.push("c-2".into(), "again".into());
        assert_eq!(log.take_unsent(1).len(), 2);
        assert!(log.take_unsent(1).is_empty(), "in flight already");
        let mut out = Vec::new();
        log.entry(msg(1, "c-1"), &mut out);
        log.entry(msg(2, "other"), &mut out);
        assert_eq!(shown(&out), ["1!", "2"]);
        assert_eq!(log.unacked(), 1);
        log.stream_ended(1);
        let again = log.take_unsent(2);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, "c-2");
    }

    #[test]
    fn a_retry_echo_ahead_of_its_turn_is_shown_once() {
        // We have 5; the stored original of our retried line is 7, and the
        // server sends it to us before the resumed 6 and 7.
        let mut log = RoomLog::new(7, 5);
        log.push("c-9".into(), "late".into());
        let mut out = Vec::new();
        log.entry(msg(7, "c-9"), &mut out);
        log.entry(msg(6, ""), &mut out);
        log.entry(msg(7, "c-9"), &mut out);
        log.entry(msg(8, ""), &mut out);
        assert_eq!(shown(&out), ["7!", "6", "8"]);
        assert_eq!(log.unacked(), 0);
        assert_eq!(log.position(), (7, 8));
    }

    #[test]
    fn a_hole_is_reported() {
        let mut log = RoomLog::new(7, 3);
        let mut out = Vec::new();
        log.entry(msg(6, ""), &mut out);
        assert_eq!(shown(&out), ["-2", "6"]);
    }

    #[test]
    fn history_shows_what_we_have_not_seen() {
        let mut log = RoomLog::new(7, 4);
        let room = ChatRoom {
            epoch: 7,
            last_seq: 6,
            history: (3..=6).map(|s| msg(s, "")).collect(),
            ..Default::default()
        };
        let mut out = Vec::new();
        log.history(&room, &mut out);
        assert_eq!(shown(&out), ["5", "6"]);

        // Back much later: 40 came, history holds the last 2.
        let room = ChatRoom {
            epoch: 7,
            last_seq: 46,
            history: (45..=46).map(|s| msg(s, "")).collect(),
            ..Default::default()
        };
        out.clear();
        log.history(&room, &mut out);
        assert_eq!(shown(&out), ["-38", "45", "46"]);

        // Another numbering: all of it.
        let room = ChatRoom {
            epoch: 8,
            last_seq: 2,
            history: (1..=2)
                .map(|s| ChatMessage {
                    epoch: 8,
                    ..msg(s, "")
                })
                .collect(),
            ..Default::default()
        };
        out.clear();
        log.history(&room, &mut out);
        assert_eq!(shown(&out), ["1", "2"]);
        assert_eq!(log.position(), (8, 2));
    }

    #[test]
    fn history_without_entries_moves_the_log_on() {
        let mut log = RoomLog::new(7, 1);
        let room = ChatRoom {
            epoch: 7,
            last_seq: 4,
            ..Default::default()
        };
        let mut out = Vec::new();
        log.history(&room, &mut out);
        assert_eq!(shown(&out), ["-3"]);
        assert_eq!(log.position(), (7, 4));
    }

    #[test]
    fn a_left_room_shows_only_our_echoes() {
        let mut log = RoomLog::new(7, 3);
        log.push("c-1".into(), "bye".into());
        let mut out = Vec::new();
        log.echo(msg(4, "x"), &mut out);
        log.echo(msg(5, "c-1"), &mut out);
        log.echo(msg(5, "c-1"), &mut out);
        assert_eq!(shown(&out), ["5!"]);
        // Back in the room: 4 is new, 5 was shown.
        out.clear();
        let room = ChatRoom {
            epoch: 7,
            last_seq: 5,
            history: (3..=5).map(|s| msg(s, "")).collect(),
            ..Default::default()
        };
        log.history(&room, &mut out);
        assert_eq!(shown(&out), ["4"]);
    }

    #[test]
    fn resuming_elsewhere_counts_what_is_lost() {
        let mut log = RoomLog::new(7, 3);
        assert_eq!(log.resume_from(7, 10), Some(7));
        assert_eq!(log.position(), (7, 10));
        assert_eq!(log.resume_from(9, 0), None);
        assert_eq!(log.position(), (9, 0));
    }
}
