//! JoinChat streams: opening them (resumed from the last entry shown),
//! sending our lines on them, what arrives on them, and how they end.

use chat_bins::say;
use chat_proto::{ChatMessage, Presence, User};
use chat_sansio::Status;

use crate::client::{status_text, Client, Link};
use crate::link::{read_chat, ChatStream};
use crate::log::{RoomLog, Shown};
use crate::retry::{is_transient, resume_point};
use crate::show;

impl Client {
    /// Opens a stream pinned to `room`. One that `shows_room` resumes after
    /// the last entry we showed; one that does not only carries our lines
    /// and is half-closed once they are sent.
    pub(crate) async fn open_stream(&mut self, room: &str, shows_room: bool) {
        let Link::Up { channel, .. } = &self.link else {
            return;
        };
        let channel = channel.clone();
        let resume = shows_room
            .then(|| self.rooms.get(room).map(RoomLog::position))
            .flatten();
        let call = match self.target.open_chat(&channel, room, resume).await {
            Ok(call) => call,
            Err(status) if is_transient(&status) => return self.lost(&status),
            Err(status) => {
                return say(format_args!(
                    "-- cannot open the stream of {}: {}",
                    show::room(room),
                    status_text(&status)
                ))
            }
        };
        let id = self.next_stream;
        self.next_stream += 1;
        let (sender, receiver) = call.split();
        let stream = ChatStream {
            room: room.to_owned(),
            shows_room,
            quiet: false,
            resumed_from: resume,
            sender,
            _reader: read_chat(id, receiver, self.events.clone()),
        };
        self.streams.insert(id, stream);
        self.send_unsent(id).await;
        if !shows_room {
            if let Some(s) = self.streams.get_mut(&id) {
                let _ = s.sender.close();
            }
        }
    }

    /// Sends on stream `id` the lines of its room not in flight elsewhere.
    pub(crate) async fn send_unsent(&mut self, id: u64) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let Some(log) = self.rooms.get_mut(&stream.room) else {
            return;
        };
        for line in log.take_unsent(id) {
            let msg = ChatMessage {
                user: Some(User {
                    room_id: String::new(),
                    ..self.user.clone()
                }),
                message: line.text,
                room_id: stream.room.clone(),
                client_msg_id: line.id,
                ..ChatMessage::default()
            };
            if stream.sender.send(&msg).await.is_err() {
                // The stream has ended; its end says why, and its lines go
                // out again on the next one.
                break;
            }
        }
    }

    /// The stream that shows `room`, if one is open.
    pub(crate) fn stream_showing(&self, room: &str) -> Option<u64> {
        self.streams
            .iter()
            .find(|(_, s)| s.shows_room && s.room == room)
            .map(|(id, _)| *id)
    }

    /// Opens a stream for each room we have left with lines still to
    /// deliver and none open.
    pub(crate) async fn carry_left_rooms(&mut self) {
        let left: Vec<String> = self
            .rooms
            .iter()
            .filter(|(room, log)| {
                **room != self.room
                    && log.unacked() > 0
                    && !self.streams.values().any(|s| &s.room == *room)
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in left {
            self.open_stream(&room, false).await;
        }
    }

    /// A message on stream `id`.
    pub(crate) fn chat(&mut self, id: u64, msg: ChatMessage) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if let Some(refused) = &msg.refused {
            // One of our posts, refused (over a rate limit): not delivered.
            say(format_args!(
                "[{}] ! not delivered: {}",
                show::room(&stream.room),
                show::plain(&refused.message)
            ));
            return;
        }
        if msg.deleted {
            // A moderator's tombstone: the message it replaces is gone.
            say(format_args!(
                "[{}] * message #{} was deleted",
                show::room(&stream.room),
                msg.seq
            ));
            return;
        }
        if msg.presence != Presence::None as i32 || msg.seq == 0 {
            // Not part of the log: shown as it comes, never resumed.
            if stream.shows_room && !stream.quiet {
                say(format_args!("{}", show::notice(&msg)));
            }
            return;
        }
        let Some(log) = self.rooms.get_mut(&stream.room) else {
            return;
        };
        let mut out = Vec::new();
        if stream.shows_room {
            log.entry(msg, &mut out);
        } else {
            log.echo(msg, &mut out);
        }
        let room = stream.room.clone();
        self.print(&room, out);
    }

    /// Prints what a room's log shows.
    pub(crate) fn print(&self, room: &str, shown: Vec<Shown>) {
        for s in shown {
            match s {
                Shown::Message { msg, own } => say(format_args!("{}", show::message(&msg, own))),
                Shown::Missing(n) => say(format_args!("{}", show::missing(room, n))),
            }
        }
    }

    /// Stream `id` has ended with `status`.
    pub(crate) async fn chat_ended(&mut self, id: u64, status: Status) {
        let Some(stream) = self.streams.remove(&id) else {
            return;
        };
        let room = stream.room.clone();
        if let Some(log) = self.rooms.get_mut(&room) {
            log.stream_ended(id);
        }
        if !stream.shows_room {
            // A room we left: OK means everything sent has been delivered.
            if is_transient(&status) {
                self.lost(&status);
            } else if !status.is_ok() {
                self.refused(&room, &status);
            }
            return;
        }
        if let Some((epoch, seq)) = resume_point(&status) {
            if stream.resumed_from == Some((epoch, seq)) {
                return say(format_args!(
                    "-- cannot follow {}: {}",
                    show::room(&room),
                    status_text(&status)
                ));
            }
            if let Some(log) = self.rooms.get_mut(&room) {
                let lost = log.resume_from(epoch, seq);
                say(format_args!("{}", lost_note(&room, lost)));
            }
            return self.open_stream(&room, true).await;
        }
        if status.is_ok() || is_transient(&status) {
            // We never end this stream: the server or the way to it failed.
            return self.lost(&status);
        }
        if self.refused(&room, &status) > 0 {
            // It ended because of a line; the room is still ours to read.
            self.open_stream(&room, true).await;
        } else {
            say(format_args!(
                "-- the stream of {} ended ({}); type a line to open it again",
                show::room(&room),
                status_text(&status)
            ));
        }
    }

    /// The server refused what was sent in `room`: its unacknowledged lines
    /// are given up (any it had stored before show up as they come).
    /// Returns how many.
    fn refused(&mut self, room: &str, status: &Status) -> usize {
        let Some(log) = self.rooms.get_mut(room) else {
            return 0;
        };
        let dropped = log.drop_unacked();
        for line in &dropped {
            say(format_args!(
                "-- not sent to {}: {:?} ({})",
                show::room(room),
                show::plain(&line.text),
                status_text(status)
            ));
        }
        dropped.len()
    }
}

/// What the user is told when a room's stream cannot resume where it
/// stopped.
fn lost_note(room: &str, lost: Option<u64>) -> String {
    let room = show::room(room);
    match lost {
        Some(0) => format!("-- [{room}] resuming where the server can"),
        Some(n) => format!(
            "-- [{room}] missed messages could not be recovered; {n} message{} may be missing",
            if n == 1 { "" } else { "s" }
        ),
        None => format!(
            "-- [{room}] the room's history has started afresh; missed messages could not be recovered"
        ),
    }
}
