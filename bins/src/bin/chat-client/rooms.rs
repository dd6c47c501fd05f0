//! Joining rooms on the JoinChatRoom call: entering our room at start and
//! again on every new connection, `/join` (switching) and `/who`. The
//! server answers the requests of one call in order, so the answers are
//! matched to a queue of what was asked.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chat_bins::say;
use chat_proto::{paths, ChatRoom, Presence, User};
use chat_sansio::Status;

use crate::client::{status_text, Client, Join, Link, HELP};
use crate::link::read_answers;
use crate::log::RoomLog;
use crate::retry::is_transient;
use crate::show;

impl Client {
    /// Asks to join `room`; the answer comes as an `Event::Answer`.
    pub(crate) async fn ask(&mut self, room: &str, why: Join) {
        let Link::Up { rooms, .. } = &mut self.link else {
            return;
        };
        let user = User {
            room_id: room.to_owned(),
            ..self.user.clone()
        };
        // If the call has ended, its end (`Event::AnswersEnded`) says why
        // and settles this request too.
        let _ = rooms.send(&user).await;
        self.joins.push_back(why);
    }

    /// An answer to the oldest request.
    pub(crate) async fn answer(&mut self, room: ChatRoom) {
        if let Link::Up { proven, .. } = &mut self.link {
            proven.get_or_insert_with(Instant::now);
        }
        let Some(why) = self.joins.pop_front() else {
            return;
        };
        match why {
            Join::Enter if self.joined => self.entered_again().await,
            Join::Enter => self.entered(room).await,
            Join::Switch { from, .. } => self.switched(&from, room).await,
            Join::Who => say(format_args!("{}", show::users(&room))),
        }
    }

    /// In our room for the first time: show it and open its stream.
    async fn entered(&mut self, room: ChatRoom) {
        let asked = std::mem::replace(&mut self.room, room.room_id.clone());
        let mut log = fresh_log(&room);
        if let Some(early) = self.rooms.remove(&asked) {
            log.adopt(early);
        }
        self.rooms.insert(room.room_id.clone(), log);
        self.show_room(&room);
        self.joined = true;
        say(format_args!("{HELP}"));
        self.open_stream(&room.room_id, true).await;
    }

    /// In our room again on a new connection: its stream resumes where we
    /// stopped, and lines left in other rooms go out again.
    async fn entered_again(&mut self) {
        say(format_args!("-- reconnected"));
        let room = self.room.clone();
        self.open_stream(&room, true).await;
        self.carry_left_rooms().await;
    }

    /// Switched from `from`: we have left it (said first, so every switch
    /// reads "left, then joined"), its stream only carries our lines still
    /// on their way, and the new room is shown and streamed.
    async fn switched(&mut self, from: &str, room: ChatRoom) {
        let to = room.room_id.clone();
        if to == from {
            self.quiet(from, false);
            say(format_args!("Already in {}", show::room(&to)));
            say(format_args!("{}", show::users(&room)));
            return;
        }
        say(format_args!(
            "{}",
            show::presence(from, now_us(), "you", Presence::Left as i32)
        ));
        for s in self.streams.values_mut().filter(|s| s.room == from) {
            s.shows_room = false;
            // Half-closed, the stream delivers what it has sent, then ends.
            let _ = s.sender.close();
        }
        self.room.clone_from(&to);
        if !self.rooms.contains_key(&to) {
            self.rooms.insert(to.clone(), fresh_log(&room));
        }
        self.show_room(&room);
        self.open_stream(&to, true).await;
        self.carry_left_rooms().await;
    }

    /// Prints a room we have joined: who is there, and its history from
    /// where we stopped.
    fn show_room(&mut self, room: &ChatRoom) {
        say(format_args!(
            "Joined chat room {}",
            show::room(&room.room_id)
        ));
        say(format_args!("{}", show::users(room)));
        let Some(log) = self.rooms.get_mut(&room.room_id) else {
            return;
        };
        let mut out = Vec::new();
        log.history(room, &mut out);
        self.print(&room.room_id, out);
    }

    /// The JoinChatRoom call has ended: the connection is lost, or the
    /// server refused the oldest request (and then a new call carries the
    /// rest).
    pub(crate) async fn answers_ended(&mut self, status: Status) {
        if status.is_ok() || is_transient(&status) {
            return self.lost(&status);
        }
        match self.joins.pop_front() {
            Some(Join::Enter) => {
                let room = show::room(&self.room);
                return self.fail(format_args!("cannot join {room}: {}", status_text(&status)));
            }
            Some(Join::Switch { from, to }) => {
                self.quiet(&from, false);
                say(format_args!(
                    "error: cannot join {}: {}",
                    show::room(&to),
                    status_text(&status)
                ));
            }
            Some(Join::Who) | None => say(format_args!("error: {}", status_text(&status))),
        }
        let Link::Up { channel, .. } = &self.link else {
            return;
        };
        let call = match channel
            .call(paths::JOIN_CHAT_ROOM, self.target.options.clone())
            .await
        {
            Ok(call) => call,
            Err(status) => return self.lost(&status),
        };
        let (sender, receiver) = call.split();
        let reader = read_answers(self.attempt, receiver, self.events.clone());
        if let Link::Up {
            rooms, _answers, ..
        } = &mut self.link
        {
            *rooms = sender;
            *_answers = reader;
        }
        for join in std::mem::take(&mut self.joins) {
            let room = match &join {
                Join::Switch { to, .. } => to.clone(),
                Join::Enter | Join::Who => self.room.clone(),
            };
            self.ask(&room, join).await;
        }
    }

    /// Shows or hides presence notices on the stream of `room` (hidden
    /// while we switch away, so our own departure is told once, by us).
    pub(crate) fn quiet(&mut self, room: &str, quiet: bool) {
        for s in self.streams.values_mut() {
            if s.room == room && s.shows_room {
                s.quiet = quiet;
            }
        }
    }
}

/// The log of a room we have not been in: its history is all new.
fn fresh_log(room: &ChatRoom) -> RoomLog {
    let before = room
        .history
        .first()
        .map_or(room.last_seq, |m| m.seq.saturating_sub(1));
    RoomLog::new(room.epoch, before)
}

/// Now, in microseconds since the Unix epoch (for our own notices).
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
