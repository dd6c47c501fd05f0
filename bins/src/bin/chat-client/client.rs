//! The client's state and its loop's decisions: the connection and its
//! reconnecting, and what typed lines and commands do. Joining rooms is in
//! `rooms.rs`, the JoinChat streams in `streams.rs`.
//!
//! One connection at a time. On it: one JoinChatRoom call (joins, switches
//! and `/who`, answered in order), and JoinChat streams pinned to their
//! room with `chat-room`: the one of the room we are in, resumed with
//! `chat-resume` from the last entry shown, and, after a switch, one per
//! room we left with lines still unacknowledged, which only carries them.
//! When any call ends as a lost connection would (UNAVAILABLE and the
//! like), the whole connection is dropped and made again after a backoff;
//! the room is joined again, its stream resumes, and unacknowledged lines
//! are sent again with the same `client_msg_id`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chat_bins::say;
use chat_proto::User;
use chat_sansio::limits::MAX_CHAT_TEXT_LEN;
use chat_sansio::Status;
use smol::channel::Sender;
use smol::Task;
use transport_h2::{CallSender, Channel};

use crate::link::{ChatStream, Event, Target};
use crate::log::RoomLog;
use crate::retry::{Backoff, MsgIds, MAX_WAIT};

/// What the commands are.
pub const HELP: &str = "commands: /join ROOM (switch rooms), /who (who is here), /history [N] (N earlier messages, default 20), /help, /quit (or Ctrl-D); anything else is sent";

/// How long quitting waits for lines the server has not acknowledged.
const QUIT_WAIT: Duration = Duration::from_secs(3);

/// The connection.
pub(crate) enum Link {
    /// None; the next attempt is at `retry_at`.
    Down { retry_at: Instant },
    /// An attempt is under way.
    Connecting,
    /// Connected.
    Up {
        channel: Channel,
        /// The JoinChatRoom call's sending half.
        rooms: CallSender,
        /// Its reader.
        _answers: Task<()>,
        /// When the server first answered on it.
        proven: Option<Instant>,
    },
}

/// A JoinChatRoom request waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Join {
    /// Enter our room: at start, and again on each new connection.
    Enter,
    /// `/join`: leave `from` for `to`.
    Switch { from: String, to: String },
    /// `/who`.
    Who,
}

/// The chat client.
pub struct Client {
    pub(crate) target: Target,
    pub(crate) events: Sender<Event>,
    /// Who we say we are (empty fields: the server fills them from the
    /// token).
    pub(crate) user: User,
    pub(crate) link: Link,
    /// The current connection attempt; events of earlier ones are stale.
    pub(crate) attempt: u64,
    pub(crate) backoff: Backoff,
    ids: MsgIds,
    /// The room we are in, as the server names it once it has answered.
    pub(crate) room: String,
    /// Every room we have been in.
    pub(crate) rooms: HashMap<String, RoomLog>,
    /// Requests on the JoinChatRoom call, oldest first.
    pub(crate) joins: VecDeque<Join>,
    pub(crate) streams: HashMap<u64, ChatStream>,
    pub(crate) next_stream: u64,
    /// We have been in a room (the first answer has come).
    pub(crate) joined: bool,
    /// Told the user that lines wait for the connection.
    told_offline: bool,
    /// The room whose `/history` page is being fetched.
    pub(crate) paging: Option<String>,
    /// Quitting once everything is acknowledged, or at this time.
    quit_by: Option<Instant>,
    done: Option<i32>,
}

impl Client {
    /// A client that will join `room` as `user`; it connects at the first
    /// [`Event::Timer`].
    pub fn new(
        target: Target,
        events: Sender<Event>,
        user: User,
        room: String,
        seed: u64,
    ) -> Client {
        Client {
            target,
            events,
            user,
            link: Link::Down {
                retry_at: Instant::now(),
            },
            attempt: 0,
            backoff: Backoff::new(seed),
            ids: MsgIds::new(seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15),
            room,
            rooms: HashMap::new(),
            joins: VecDeque::new(),
            streams: HashMap::new(),
            next_stream: 1,
            joined: false,
            told_offline: false,
            paging: None,
            quit_by: None,
            done: None,
        }
    }

    /// The exit code, once the client is done.
    pub fn done(&self) -> Option<i32> {
        self.done
    }

    /// When the loop must wake without an event ([`Event::Timer`]).
    pub fn wake_at(&self) -> Option<Instant> {
        let retry = match self.link {
            Link::Down { retry_at } => Some(retry_at),
            _ => None,
        };
        match (retry, self.quit_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on one event.
    pub async fn handle(&mut self, event: Event) {
        match event {
            Event::Line(line) => self.line(line.trim()).await,
            Event::Eof => self.quit(),
            Event::Timer => self.timer(),
            Event::Connected { attempt, result } if attempt == self.attempt => match result {
                Ok((channel, call)) => self.connected(channel, call).await,
                Err(status) => self.lost(&status),
            },
            Event::Answer { attempt, room } if self.is_current(attempt) => self.answer(room).await,
            Event::AnswersEnded { attempt, status } if self.is_current(attempt) => {
                self.answers_ended(status).await;
            }
            Event::Chat { stream, msg } => self.chat(stream, msg),
            Event::ChatEnded { stream, status } => self.chat_ended(stream, status).await,
            Event::History { room, result } => self.history_page(room, result),
            _ => {} // about an earlier connection
        }
        if self.quit_by.is_some() && self.unacked() == 0 {
            self.done = Some(0);
        }
    }

    fn timer(&mut self) {
        let now = Instant::now();
        if let Some(by) = self.quit_by {
            if now >= by {
                let n = self.unacked();
                say(format_args!(
                    "-- quitting with {n} line{} not acknowledged: {} may not have been delivered",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "they" }
                ));
                self.done = Some(0);
                return;
            }
        }
        if matches!(self.link, Link::Down { retry_at } if now >= retry_at) {
            self.attempt += 1;
            self.link = Link::Connecting;
            let (attempt, target, events) =
                (self.attempt, self.target.clone(), self.events.clone());
            smol::spawn(async move {
                let result = target.connect().await;
                let _ = events.send(Event::Connected { attempt, result }).await;
            })
            .detach();
        }
    }

    /// A connection is made: the JoinChatRoom call is open; enter the room.
    async fn connected(&mut self, channel: Channel, call: transport_h2::Call) {
        let (rooms, answers) = call.split();
        let reader = crate::link::read_answers(self.attempt, answers, self.events.clone());
        self.link = Link::Up {
            channel,
            rooms,
            _answers: reader,
            proven: None,
        };
        let room = self.room.clone();
        self.ask(&room, Join::Enter).await;
    }

    /// The connection is lost (or an attempt failed): everything on it is
    /// dropped, and the next attempt waits for the backoff.
    pub(crate) fn lost(&mut self, status: &Status) {
        let proven = match &self.link {
            Link::Down { .. } => return,
            Link::Connecting => None,
            Link::Up { proven, .. } => *proven,
        };
        if proven.is_some_and(|t| t.elapsed() >= MAX_WAIT) {
            // It worked for a while: this is a new outage, not the same one.
            self.backoff.reset();
        }
        let wait = self.backoff.next_wait();
        self.streams.clear();
        for log in self.rooms.values_mut() {
            log.all_unsent();
        }
        for join in self.joins.drain(..) {
            if let Join::Switch { to, .. } = join {
                say(format_args!(
                    "-- /join {} did not complete; try again",
                    crate::show::room(&to)
                ));
            }
        }
        self.link = Link::Down {
            retry_at: Instant::now() + wait,
        };
        let what = if proven.is_some() {
            "connection lost"
        } else {
            "cannot connect"
        };
        say(format_args!(
            "-- {what} ({}); trying again in {:.1} s",
            status_text(status),
            wait.as_secs_f64()
        ));
    }

    /// A typed line: a command, or a message for the room we are in.
    async fn line(&mut self, line: &str) {
        if self.quit_by.is_some() {
            return;
        }
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        match command {
            "" => {}
            "/quit" => self.quit(),
            "/help" => say(format_args!("{HELP}")),
            "/who" if self.is_up() => {
                let room = self.room.clone();
                self.ask(&room, Join::Who).await;
            }
            "/history" if self.is_up() => self.ask_history(arg),
            "/join" if arg.is_empty() => say(format_args!("usage: /join ROOM")),
            "/join" if self.is_up() => {
                let from = self.room.clone();
                self.quiet(&from, true);
                let to = arg.to_owned();
                self.ask(&to.clone(), Join::Switch { from, to }).await;
            }
            "/who" | "/join" | "/history" => say(format_args!(
                "-- not connected: {} not done (you are still in {}); try again once reconnected",
                crate::show::plain(line),
                crate::show::room(&self.room)
            )),
            c if c.starts_with('/') => say(format_args!("unknown command {c}; {HELP}")),
            _ => self.post(line.to_owned()).await,
        }
    }

    /// Queues a line for our room and sends it if the room's stream is up.
    async fn post(&mut self, text: String) {
        if text.len() > MAX_CHAT_TEXT_LEN {
            say(format_args!(
                "-- not sent: {} bytes, the server takes at most {MAX_CHAT_TEXT_LEN}",
                text.len()
            ));
            return;
        }
        let id = self.ids.next_id();
        // Before the first answer there is no position yet: the answer's
        // history sets it.
        let log = self
            .rooms
            .entry(self.room.clone())
            .or_insert_with(|| RoomLog::new(0, 0));
        log.push(id, text);
        if !self.is_up() || !self.joined {
            if !self.told_offline {
                self.told_offline = true;
                say(format_args!(
                    "-- not connected yet: lines are kept and sent once connected"
                ));
            }
            return;
        }
        self.told_offline = false;
        match self.stream_showing(&self.room.clone()) {
            Some(id) => self.send_unsent(id).await,
            None => {
                let room = self.room.clone();
                self.open_stream(&room, true).await;
            }
        }
    }

    /// Ctrl-D or `/quit`: now if nothing is waiting for an acknowledgement,
    /// else once everything is or after [`QUIT_WAIT`].
    fn quit(&mut self) {
        let n = self.unacked();
        if n == 0 {
            self.done = Some(0);
            return;
        }
        say(format_args!(
            "-- waiting up to {} s for {n} line{} to be acknowledged",
            QUIT_WAIT.as_secs(),
            if n == 1 { "" } else { "s" }
        ));
        self.quit_by = Some(Instant::now() + QUIT_WAIT);
    }

    /// The client cannot go on (its room refused it).
    pub(crate) fn fail(&mut self, why: std::fmt::Arguments<'_>) {
        eprintln!("chat-client: {why}");
        self.done = Some(1);
    }

    pub(crate) fn is_up(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }

    /// Whether an event of connection `attempt` is about the one we have.
    fn is_current(&self, attempt: u64) -> bool {
        attempt == self.attempt && self.is_up()
    }

    /// Lines not acknowledged, in every room.
    fn unacked(&self) -> usize {
        self.rooms.values().map(RoomLog::unacked).sum()
    }
}

/// A status as one line for the user.
pub(crate) fn status_text(status: &Status) -> String {
    let message = crate::show::plain(&status.message);
    if message.is_empty() {
        status.code.name().to_owned()
    } else {
        format!("{}: {message}", status.code.name())
    }
}
