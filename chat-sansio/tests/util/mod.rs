//! An in-memory harness: a core server on a simulated clock, with a record
//! of everything it output, per call.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chat_sansio::chat::{Chat, ChatEvent};
use chat_sansio::codec;
use chat_sansio::metadata::Metadata;
use chat_sansio::model::EngineModel;
use chat_sansio::server::{CallId, ConnId, Expand, Handler, Output, RequestHead, Server};
use chat_sansio::{Status, Time};

/// What one call has received so far.
#[derive(Debug, Default, Clone)]
pub struct CallLog {
    pub headers: usize,
    pub messages: Vec<Bytes>,
    /// The final status and whether it came as Trailers-Only.
    pub end: Vec<(Status, bool, u16)>,
    /// The connection it was opened on.
    pub conn: u64,
    /// Outputs that arrived after the call's end (must stay empty).
    pub after_end: usize,
    /// The `grpc-encoding` of its response headers.
    pub encoding: Option<chat_sansio::compression::Encoding>,
    /// How many of its messages came compressed (`messages` has them
    /// inflated).
    pub compressed: usize,
}

pub struct Harness<H: Handler> {
    pub server: Server<H>,
    pub now: Time,
    pub calls: HashMap<CallId, CallLog>,
    pub events: Vec<H::Event>,
    next_call: u64,
    /// Multicasts turned into per-call messages, as a driver would.
    expand: Expand,
    expanded: std::collections::VecDeque<Output<H::Event>>,
    /// Connections the handler asked us to stop reading.
    pub paused: std::collections::HashSet<u64>,
    /// Answers the handler's requests to its driver (the chat's engine
    /// requests) as they come out; `None` leaves them to the test, in
    /// `events`.
    pub answer: Option<Answer<H>>,
    answers: Vec<H::Input>,
    /// Calls that asked to hear when their queue is sent (at once here).
    drained: Vec<CallId>,
}

/// Answers one event with an input, or with nothing.
pub type Answer<H> = Box<dyn FnMut(&<H as Handler>::Event) -> Option<<H as Handler>::Input>>;

/// An in-memory engine answering every engine request at once.
pub fn engine() -> Answer<Chat> {
    let mut engine = EngineModel::new(1);
    Box::new(move |event| engine.answer(event))
}

/// A chat whose engine answers at once (rate limits off: the tests post
/// many messages at one instant; `tests/rate_limits.rs` has them on).
pub fn chat() -> Harness<Chat> {
    chat_with(Server::new(Chat::new(chat_sansio::chat::ChatConfig {
        limits: chat_sansio::chat::RateLimits::off(),
        ..Default::default()
    })))
}

/// `server`, with an engine that answers at once.
pub fn chat_with(server: Server<Chat>) -> Harness<Chat> {
    let mut h = Harness::new(server);
    h.answer = Some(engine());
    h
}

/// A chat whose engine requests wait for the test to answer them.
pub fn chat_held() -> Harness<Chat> {
    Harness::new(Server::new(Chat::new(chat_sansio::chat::ChatConfig {
        limits: chat_sansio::chat::RateLimits::off(),
        ..Default::default()
    })))
}

pub fn grpc_head(path: &str, extra: &[(&str, &str)]) -> RequestHead {
    let mut headers = Metadata::new();
    headers.push("content-type", "application/grpc");
    headers.push("te", "trailers");
    for (k, v) in extra {
        headers.push(*k, v.to_string());
    }
    RequestHead {
        method: "POST".into(),
        path: path.into(),
        headers,
    }
}

impl<H: Handler> Harness<H> {
    pub fn new(server: Server<H>) -> Self {
        Harness {
            server,
            now: Time::from_micros(1_700_000_000_000_000),
            calls: HashMap::new(),
            events: Vec::new(),
            next_call: 1,
            expand: Expand::default(),
            expanded: Default::default(),
            paused: Default::default(),
            answer: None,
            answers: Vec::new(),
            drained: Vec::new(),
        }
    }

    pub fn drain(&mut self) {
        loop {
            while let Some(out) = self.server.poll_output() {
                self.expand.apply(out, &mut self.expanded);
                self.record_expanded();
            }
            if self.answers.is_empty() && self.drained.is_empty() {
                break;
            }
            for input in std::mem::take(&mut self.answers) {
                self.server.handle_input(self.now, input);
            }
            for call in std::mem::take(&mut self.drained) {
                self.server.handle_drained(self.now, call);
            }
        }
    }

    fn record_expanded(&mut self) {
        while let Some(out) = self.expanded.pop_front() {
            let (call, kind) = match out {
                Output::Event(e) => {
                    if let Some(input) = self.answer.as_mut().and_then(|a| a(&e)) {
                        self.answers.push(input);
                    }
                    self.events.push(e);
                    continue;
                }
                Output::Subscribe { .. }
                | Output::Unsubscribe { .. }
                | Output::Multicast { .. } => {
                    unreachable!("Expand consumes group outputs")
                }
                Output::Headers { call, encoding, .. } => {
                    self.calls.entry(call).or_default().encoding = encoding;
                    (call, 0)
                }
                Output::Message { call, ref frame } => {
                    let log = self.calls.entry(call).or_default();
                    if log.end.is_empty() {
                        let mut dec = codec::Decoder::default();
                        dec.push(frame);
                        let m = dec.next_message().unwrap().unwrap();
                        assert!(dec.next_message().unwrap().is_none());
                        let payload = if m.compressed {
                            log.compressed += 1;
                            let enc = log.encoding.expect("compressed without grpc-encoding");
                            chat_sansio::compression::inflate(enc, &m.payload, 64 << 20).unwrap()
                        } else {
                            m.payload
                        };
                        log.messages.push(payload);
                    } else {
                        log.after_end += 1;
                    }
                    continue;
                }
                Output::Trailers { call, status, .. } => {
                    self.end(call, status, false, 200);
                    continue;
                }
                Output::TrailersOnly {
                    call,
                    http_status,
                    status,
                    ..
                } => {
                    self.end(call, status, true, http_status);
                    continue;
                }
                Output::WhenDrained { call } => {
                    self.drained.push(call);
                    continue;
                }
                Output::Pause { conn } => {
                    assert!(self.paused.insert(conn.0), "{conn:?} paused twice");
                    continue;
                }
                Output::Resume { conn } => {
                    assert!(self.paused.remove(&conn.0), "{conn:?} resumed unpaused");
                    continue;
                }
                _ => panic!("an output the harness does not know"),
            };
            let log = self.calls.entry(call).or_default();
            if !log.end.is_empty() {
                log.after_end += 1;
            }
            if kind == 0 {
                log.headers += 1;
            }
        }
    }

    fn end(&mut self, call: CallId, status: Status, only: bool, http: u16) {
        assert_eq!(
            self.expand.group_of(call),
            None,
            "{call:?} ended while still in a group"
        );
        let log = self.calls.entry(call).or_default();
        if !log.end.is_empty() {
            log.after_end += 1;
        }
        log.end.push((status, only, http));
    }

    pub fn connect(&mut self, conn: u64) {
        self.server
            .handle_connect(self.now, ConnId(conn), Some(format!("10.0.0.{conn}:5000")));
        self.drain();
    }

    pub fn disconnect(&mut self, conn: u64) {
        self.server.handle_disconnect(self.now, ConnId(conn));
        self.drain();
        for (call, log) in &self.calls {
            if log.conn == conn {
                assert_eq!(
                    self.expand.group_of(*call),
                    None,
                    "{call:?} left in a group"
                );
            }
        }
    }

    pub fn open_with(&mut self, conn: u64, head: RequestHead) -> CallId {
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.calls.insert(
            call,
            CallLog {
                conn,
                ..CallLog::default()
            },
        );
        self.server.handle_open(self.now, ConnId(conn), call, head);
        self.drain();
        call
    }

    pub fn open(&mut self, conn: u64, path: &str) -> CallId {
        self.open_with(conn, grpc_head(path, &[]))
    }

    pub fn send<M: prost::Message>(&mut self, call: CallId, msg: &M) {
        let frame = codec::encode(msg).unwrap();
        self.data(call, &frame);
    }

    pub fn data(&mut self, call: CallId, bytes: &[u8]) {
        self.server.handle_data(self.now, call, bytes);
        self.drain();
    }

    pub fn input(&mut self, input: H::Input) {
        self.server.handle_input(self.now, input);
        self.drain();
    }

    pub fn end_stream(&mut self, call: CallId) {
        self.server.handle_end(self.now, call);
        self.drain();
    }

    pub fn reset(&mut self, call: CallId) {
        self.server.handle_reset(self.now, call);
        self.drain();
        assert_eq!(
            self.expand.group_of(call),
            None,
            "reset {call:?} still in a group"
        );
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        self.drain();
    }

    pub fn log(&self, call: CallId) -> &CallLog {
        &self.calls[&call]
    }

    pub fn decoded<M: prost::Message + Default>(&self, call: CallId) -> Vec<M> {
        self.log(call)
            .messages
            .iter()
            .map(|b| M::decode(b.clone()).unwrap())
            .collect()
    }

    /// The one final status of `call`, asserting there is exactly one.
    pub fn status(&self, call: CallId) -> &Status {
        let log = self.log(call);
        assert_eq!(
            log.end.len(),
            1,
            "call {call:?} must end exactly once: {log:?}"
        );
        &log.end[0].0
    }
}

/// Texts of the chat messages `call` received (presence notices left out).
pub fn message_texts(h: &Harness<Chat>, call: CallId) -> Vec<String> {
    h.decoded::<chat_proto::ChatMessage>(call)
        .into_iter()
        .filter(|m| m.presence == 0)
        .map(|m| m.message)
        .collect()
}

/// The presence notices `call` received, as (user id, joined).
pub fn notices(h: &Harness<Chat>, call: CallId) -> Vec<(String, bool)> {
    h.decoded::<chat_proto::ChatMessage>(call)
        .into_iter()
        .filter(|m| m.presence != 0)
        .map(|m| {
            let joined = m.presence == chat_proto::Presence::Joined as i32;
            (m.user.unwrap_or_default().user_id, joined)
        })
        .collect()
}

pub fn chat_message(user: &str, text: &str) -> chat_proto::ChatMessage {
    chat_proto::ChatMessage {
        user: Some(chat_proto::User {
            user_id: user.into(),
            username: format!("name-{user}"),
            room_id: String::new(),
        }),
        message: text.into(),
        ..Default::default()
    }
}

pub fn received_events(h: &Harness<Chat>) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}
