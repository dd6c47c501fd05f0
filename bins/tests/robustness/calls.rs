//! gRPC calls over a raw connection: many streams at once, each ending
//! with a status, a reset or the connection's end; flow control tracked
//! both ways (RFC 9113 §5.2, §6.9), so a client can read (or refuse to)
//! and post as fast as the server's windows allow.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use chat_sansio::codec::Decoder;

use crate::frames::{self, Conn, Read};

/// How a call ended, and what it brought.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `:status` of the response headers.
    pub http: Option<String>,
    /// `grpc-status` of the trailers (or Trailers-Only).
    pub status: Option<u32>,
    /// `grpc-message`.
    pub message: String,
    /// RST_STREAM's error code.
    pub reset: Option<u32>,
    /// Why the connection ended under the call, if it did.
    pub lost: Option<String>,
    /// Whole response messages received.
    pub count: usize,
    /// The largest of them, in bytes.
    pub largest: usize,
    /// The messages, if the client keeps them.
    pub messages: Vec<Bytes>,
    decoder: Option<Decoder>,
}

impl Outcome {
    /// A one-line summary: the status, or how else it ended.
    pub fn describe(&self) -> String {
        match (self.status, self.reset, &self.lost) {
            (Some(s), _, _) => format!("grpc-status {s} {:?}", self.message),
            (_, Some(r), _) => format!("RST_STREAM {r:#x}"),
            (_, _, Some(why)) => format!("connection lost: {why}"),
            _ => format!("ended without status (HTTP {:?})", self.http),
        }
    }
}

/// A raw client connection with its calls.
pub struct Client {
    pub conn: Conn,
    next: u32,
    open: HashMap<u32, Outcome>,
    /// Whether to hand back flow-control credit for DATA read.
    pub refill: bool,
    /// Whether to keep whole response messages in [`Outcome::messages`].
    pub keep: bool,
    /// GOAWAY's error code, once received.
    pub goaway: Option<u32>,
    /// Why the connection ended, once it has.
    pub closed: Option<String>,
    send_conn: i64,
    send_initial: i64,
    send: HashMap<u32, i64>,
}

impl Client {
    /// Calls on `conn`.
    pub fn new(conn: Conn) -> Client {
        Client {
            conn,
            next: 1,
            open: HashMap::new(),
            refill: true,
            keep: false,
            goaway: None,
            closed: None,
            // Initial windows (RFC 9113 §6.9.2) until the server's SETTINGS.
            send_conn: 65_535,
            send_initial: 65_535,
            send: HashMap::new(),
        }
    }

    /// Calls still open.
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// What an open call has brought so far.
    pub fn outcome(&self, stream: u32) -> Option<&Outcome> {
        self.open.get(&stream)
    }

    /// Whether the connection is gone (GOAWAY or closed).
    pub fn dead(&self) -> bool {
        self.goaway.is_some() || self.closed.is_some()
    }

    /// Opens a call to `path` and sends `body` (framed messages), ending
    /// the request if `end`; returns the stream id. `body` must fit the
    /// server's initial window (use [`Client::send_data`] for more).
    pub fn open(
        &mut self,
        path: &str,
        metadata: &[(&str, &[u8])],
        body: &[u8],
        end: bool,
    ) -> io::Result<u32> {
        let stream = self.next;
        self.next += 2;
        let mut out = Vec::new();
        let block = frames::request(self.conn.addr, path, metadata);
        frames::headers(&mut out, stream, &block, end && body.is_empty());
        if !body.is_empty() {
            frames::data(&mut out, stream, body, end);
        }
        self.send_conn -= body.len() as i64;
        self.send
            .insert(stream, self.send_initial - body.len() as i64);
        self.open.insert(
            stream,
            Outcome {
                decoder: Some(Decoder::new(1 << 30)),
                ..Outcome::default()
            },
        );
        self.conn.send(&out)?;
        Ok(stream)
    }

    /// Sends as much of `bytes` on `stream` as the windows allow now;
    /// returns how much.
    pub fn send_data(&mut self, stream: u32, bytes: &[u8]) -> io::Result<usize> {
        let window = self
            .send
            .get(&stream)
            .copied()
            .unwrap_or(0)
            .min(self.send_conn);
        let n = bytes.len().min(window.max(0) as usize);
        if n == 0 {
            return Ok(0);
        }
        let mut out = Vec::new();
        frames::data(&mut out, stream, &bytes[..n], false);
        self.conn.send(&out)?;
        self.send_conn -= n as i64;
        *self.send.entry(stream).or_default() -= n as i64;
        Ok(n)
    }

    /// Reads frames for at most `wait` (until the first read finds none);
    /// returns the calls that ended.
    pub fn poll(&mut self, wait: Duration) -> Vec<(u32, Outcome)> {
        let mut ended = Vec::new();
        let mut reply = Vec::new();
        let mut wait = wait;
        while self.closed.is_none() {
            let frame = match self.conn.read(wait) {
                Read::Frame(f) => f,
                Read::Idle => break,
                Read::Closed(why) => {
                    self.closed = Some(why);
                    break;
                }
            };
            // Then only what is already there or comes at once.
            wait = Duration::from_millis(1);
            self.on_frame(frame, &mut reply, &mut ended);
        }
        if !reply.is_empty() && self.conn.send(&reply).is_err() {
            self.closed.get_or_insert_with(|| "write failed".into());
        }
        if let Some(why) = self.closed.clone() {
            for (id, mut outcome) in self.open.drain() {
                outcome.lost = Some(why.clone());
                ended.push((id, outcome));
            }
        }
        ended
    }

    fn on_frame(&mut self, f: frames::Frame, reply: &mut Vec<u8>, ended: &mut Vec<(u32, Outcome)>) {
        match f.kind {
            frames::SETTINGS if f.flags & frames::ACK == 0 => {
                for p in f.payload.chunks_exact(6) {
                    if u16::from_be_bytes([p[0], p[1]]) == frames::SETTINGS_INITIAL_WINDOW_SIZE {
                        let new = u32::from_be_bytes([p[2], p[3], p[4], p[5]]) as i64;
                        self.send
                            .values_mut()
                            .for_each(|w| *w += new - self.send_initial);
                        self.send_initial = new;
                    }
                }
                frames::frame(reply, frames::SETTINGS, frames::ACK, 0, &[]);
            }
            frames::PING if f.flags & frames::ACK == 0 => {
                let data: [u8; 8] = f
                    .payload
                    .get(..8)
                    .and_then(|d| d.try_into().ok())
                    .unwrap_or_default();
                frames::ping(reply, frames::ACK, data);
            }
            frames::WINDOW_UPDATE if f.payload.len() == 4 => {
                let inc =
                    u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]);
                match f.stream {
                    0 => self.send_conn += inc as i64,
                    s => *self.send.entry(s).or_default() += inc as i64,
                }
            }
            frames::GOAWAY => {
                self.goaway = f.error_code();
                self.closed = Some(format!("GOAWAY {:#x}", self.goaway.unwrap_or(0)));
            }
            frames::DATA => {
                if self.refill && !f.payload.is_empty() {
                    let n = f.payload.len() as u32;
                    frames::window_update(reply, 0, n);
                    if !f.ends_stream() {
                        frames::window_update(reply, f.stream, n);
                    }
                }
                if let Some(o) = self.open.get_mut(&f.stream) {
                    let decoder = o.decoder.as_mut().expect("a decoder per call");
                    decoder.push(&f.payload);
                    while let Ok(Some(m)) = decoder.next_message() {
                        o.count += 1;
                        o.largest = o.largest.max(m.payload.len());
                        if self.keep {
                            o.messages.push(m.payload);
                        }
                    }
                }
            }
            frames::HEADERS => {
                if let Some(o) = self.open.get_mut(&f.stream) {
                    if let Some(s) = f.field(":status") {
                        o.http = Some(s.to_owned());
                    }
                    o.status = o.status.or(f.grpc_status());
                    if let Some(m) = f.field("grpc-message") {
                        o.message = m.to_owned();
                    }
                }
            }
            frames::RST_STREAM => {
                if let Some(o) = self.open.get_mut(&f.stream) {
                    o.reset = f.error_code();
                }
            }
            _ => {}
        }
        let ends = f.ends_stream() || f.kind == frames::RST_STREAM;
        if ends {
            self.send.remove(&f.stream);
            if let Some(outcome) = self.open.remove(&f.stream) {
                ended.push((f.stream, outcome));
            }
        }
    }
}
