//! What a peer sends, watched as it is read, before h2 sees it.
//!
//! h2 consumes control frames itself (WINDOW_UPDATE, PRIORITY, SETTINGS,
//! PING, RST_STREAM and frames of unknown types) and reads for as long as
//! the socket has bytes, so a peer that streams such frames keeps its
//! connection's task, and the shard thread under it, busy for ever without
//! ever reaching our code. Two defences sit in the byte stream under h2
//! (the `io` module):
//!
//! - **A share of the shard per turn.** A connection's task reads at most
//!   [`Limits::turn_bytes`] per poll; then reads answer `Pending` and the
//!   task goes to the back of its shard's queue, so the shard serves its
//!   other connections (RFC 9113 §10.5 asks implementations to bound the
//!   work a peer can cause).
//! - **A rate for control frames.** `FrameWatch` follows the frame
//!   headers (RFC 9113 §4.1: a 9-byte header with a 24-bit length, then the
//!   payload) and counts the frames that need no answer (WINDOW_UPDATE,
//!   PRIORITY, RST_STREAM, unknown types, SETTINGS and PING acks) and those
//!   that cost one (SETTINGS, PING) in two token buckets. A peer over either
//!   rate gets GOAWAY with ENHANCE_YOUR_CALM (RFC 9113 §7: "the endpoint is
//!   detecting a peer that is exhibiting a behavior that might be
//!   generating excessive load"), as grpc-go does for pings and h2 for
//!   resets and CONTINUATION floods.
//!
//! It also pauses reading while the connection's events cannot be queued
//! for the core, so h2 does not read DATA it could not hand on: what a
//! peer sends then waits in the kernel, and TCP slows it down.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

/// Length of the client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// Length of an HTTP/2 frame header (RFC 9113 §4.1).
const FRAME_HEADER_LEN: usize = 9;

/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
/// The ACK flag of SETTINGS and PING.
const ACK: u8 = 0x1;

/// How much a connection may read and send, with the reasons.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes read per poll of the connection's task before it yields to
    /// the shard's other connections. 128 KiB is two of our largest reads:
    /// a bulk upload still moves at memory speed, while a flood of tiny
    /// frames costs at most a few hundred microseconds per turn.
    pub turn_bytes: usize,
    /// Control frames that need no answer, per second, sustained. A client
    /// sends WINDOW_UPDATEs as it reads (about one per half window), a few
    /// PRIORITY frames, a RST_STREAM per cancelled call: hundreds a second
    /// at the most. The floods seen in the wild run at millions.
    pub control_per_sec: u32,
    /// Burst allowance of the same.
    pub control_burst: u32,
    /// SETTINGS and PING frames (each costs us an answer), per second,
    /// sustained. Keepalive sends one every few seconds; BDP probes of
    /// grpc-go and C-core at most one per round trip while data flows.
    pub answered_per_sec: u32,
    /// Burst allowance of the same.
    pub answered_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            turn_bytes: 128 * 1024,
            control_per_sec: 2_000,
            control_burst: 20_000,
            answered_per_sec: 500,
            answered_burst: 5_000,
        }
    }
}

/// A peer over one of the rates of [`Limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flood {
    /// Too many frames that need no answer.
    Control,
    /// Too many SETTINGS or PING frames.
    Answered,
}

impl Flood {
    fn code(self) -> u8 {
        match self {
            Flood::Control => 1,
            Flood::Answered => 2,
        }
    }

    fn from_code(code: u8) -> Option<Flood> {
        match code {
            1 => Some(Flood::Control),
            2 => Some(Flood::Answered),
            _ => None,
        }
    }

    /// What it means, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            Flood::Control => "too many WINDOW_UPDATE, PRIORITY, RST_STREAM or unknown frames",
            Flood::Answered => "too many SETTINGS or PING frames",
        }
    }
}

/// What the byte stream under h2 tells the connection's task, and what the
/// task tells it. Shared by the two (the stream is owned by h2).
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Reads that brought bytes (or an error).
    reads: AtomicU64,
    /// Bytes read since the task's poll began.
    turn: AtomicUsize,
    /// Bytes written to the socket.
    written: AtomicU64,
    /// Reading is paused (the core's queue is full for this connection).
    paused: AtomicBool,
    /// h2 asked to read while reading was paused: the socket may hold
    /// bytes whose readiness was already signalled, so the task must let h2
    /// read again once it resumes.
    refused: AtomicBool,
    /// A [`Flood`] code once the peer has gone over a rate; reading stops.
    flood: AtomicU8,
}

impl Meter {
    /// Reads that brought something so far.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Bytes written to the socket so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The task's poll begins: a new share of input.
    pub(crate) fn begin_turn(&self) {
        self.turn.store(0, Ordering::Relaxed);
    }

    /// Whether this turn's share of input has been read.
    pub(crate) fn turn_spent(&self, limit: usize) -> bool {
        self.turn.load(Ordering::Relaxed) >= limit
    }

    /// Stops (or resumes) reading.
    pub(crate) fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Whether reading is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// A read was refused because reading was paused.
    pub(crate) fn note_refused(&self) {
        self.refused.store(true, Ordering::Relaxed);
    }

    /// Whether a read was refused since the last call.
    pub(crate) fn take_refused(&self) -> bool {
        self.refused.swap(false, Ordering::Relaxed)
    }

    /// The flood the peer was caught at, if any.
    pub(crate) fn flood(&self) -> Option<Flood> {
        Flood::from_code(self.flood.load(Ordering::Relaxed))
    }

    pub(crate) fn note_read(&self, n: usize) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.turn.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn note_written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn note_flood(&self, flood: Flood) {
        self.flood.store(flood.code(), Ordering::Relaxed);
    }
}

/// Where the watcher is in the byte stream.
#[derive(Debug)]
enum Cursor {
    /// In the client preface; this many bytes left.
    Preface(usize),
    /// In a frame header; the bytes so far.
    Header([u8; FRAME_HEADER_LEN], usize),
    /// In a frame's payload; this many bytes left.
    Payload(usize),
}

/// A token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
        }
    }

    /// Takes `n` tokens; false if there were not that many.
    fn take(&mut self, n: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= f64::from(n);
        self.tokens >= 0.0
    }
}

/// Follows the frame headers of a server connection's input and counts
/// control frames against [`Limits`]. See the module docs.
#[derive(Debug)]
pub(crate) struct FrameWatch {
    cursor: Cursor,
    control: Bucket,
    answered: Bucket,
}

impl FrameWatch {
    /// A watcher for the input of a server connection, which starts with
    /// the client preface.
    pub(crate) fn server(limits: &Limits, now: Instant) -> FrameWatch {
        FrameWatch {
            cursor: Cursor::Preface(PREFACE_LEN),
            control: Bucket::new(limits.control_per_sec, limits.control_burst, now),
            answered: Bucket::new(limits.answered_per_sec, limits.answered_burst, now),
        }
    }

    /// Takes note of `bytes` just read; an error once the peer is over a
    /// rate. Frames are counted as their headers complete, in batches per
    /// read, so the clock is read once per read, not per frame.
    pub(crate) fn observe(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Flood> {
        let (mut control, mut answered) = (0u32, 0u32);
        while !bytes.is_empty() {
            match &mut self.cursor {
                Cursor::Preface(left) | Cursor::Payload(left) => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.cursor = Cursor::Header([0; FRAME_HEADER_LEN], 0);
                    }
                }
                Cursor::Header(header, have) => {
                    let n = (FRAME_HEADER_LEN - *have).min(bytes.len());
                    header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have < FRAME_HEADER_LEN {
                        continue;
                    }
                    let len = usize::from(header[0]) << 16
                        | usize::from(header[1]) << 8
                        | usize::from(header[2]);
                    match (header[3], header[4] & ACK != 0) {
                        (DATA | HEADERS | CONTINUATION | PUSH_PROMISE | GOAWAY, _) => {}
                        (SETTINGS | PING, false) => answered = answered.saturating_add(1),
                        _ => control = control.saturating_add(1),
                    }
                    self.cursor = if len == 0 {
                        Cursor::Header([0; FRAME_HEADER_LEN], 0)
                    } else {
                        Cursor::Payload(len)
                    };
                }
            }
        }
        if control > 0 && !self.control.take(control, now) {
            return Err(Flood::Control);
        }
        if answered > 0 && !self.answered.take(answered, now) {
            return Err(Flood::Answered);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    const WINDOW_UPDATE: u8 = 0x8;

    fn limits() -> Limits {
        Limits {
            control_per_sec: 10,
            control_burst: 20,
            answered_per_sec: 2,
            answered_burst: 3,
            ..Limits::default()
        }
    }

    #[test]
    fn frames_are_found_however_the_bytes_are_cut() {
        let t0 = Instant::now();
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..20 {
            input.extend(frame(DATA, 0, &[7; 300]));
            input.extend(frame(WINDOW_UPDATE, 0, &[0, 0, 0, 1]));
        }
        // 20 window updates fit the burst, in any cutting of the input.
        for cut in [1, 2, 5, 9, 13, 100, 4096] {
            let mut w = FrameWatch::server(&limits(), t0);
            for chunk in input.chunks(cut) {
                assert_eq!(w.observe(chunk, t0), Ok(()), "cut {cut}");
            }
            // The 21st is one too many.
            let more = frame(WINDOW_UPDATE, 0, &[0, 0, 0, 1]);
            assert_eq!(w.observe(&more, t0), Err(Flood::Control), "cut {cut}");
        }
    }

    #[test]
    fn rates_refill_with_time_and_acks_need_no_answer() {
        let t0 = Instant::now();
        let mut w = FrameWatch::server(&limits(), t0);
        w.observe(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t0).unwrap();
        let ping = frame(PING, 0, &[0; 8]);
        let pong = frame(PING, ACK, &[0; 8]);
        for _ in 0..3 {
            w.observe(&ping, t0).unwrap();
        }
        assert_eq!(w.observe(&ping, t0), Err(Flood::Answered));
        // Half a second later one more is allowed (2 a second).
        let mut w = FrameWatch::server(&limits(), t0);
        w.observe(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t0).unwrap();
        for _ in 0..3 {
            w.observe(&ping, t0).unwrap();
        }
        w.observe(&ping, t0 + Duration::from_millis(500)).unwrap();
        // A PING ack counts as a control frame, not an answered one.
        for _ in 0..20 {
            w.observe(&pong, t0 + Duration::from_millis(500)).unwrap();
        }
        let settings = frame(SETTINGS, 0, &[]);
        assert_eq!(
            w.observe(&settings, t0 + Duration::from_millis(500)),
            Err(Flood::Answered)
        );
    }

    #[test]
    fn data_and_headers_are_never_limited_here() {
        let t0 = Instant::now();
        let mut w = FrameWatch::server(&limits(), t0);
        w.observe(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t0).unwrap();
        for _ in 0..1000 {
            w.observe(&frame(HEADERS, 0x4, &[0x82]), t0).unwrap();
            w.observe(&frame(DATA, 0, &[]), t0).unwrap();
        }
    }
}
