//! Lean gRPC subscribers: one JoinChat call per plain HTTP/2 connection,
//! all read by one thread from one level-triggered epoll set, one `read()`
//! per ready socket, parsed in place: a message that arrives whole in one
//! DATA frame is handed over as a slice of the read buffer, with no copy
//! and no allocation.
//!
//! The load generator shares the machine with the server under test; at
//! 400k deliveries/s a full HTTP/2 client stack on the bench side (a task
//! per call, woken through the executor) costs about a core, which the
//! server then cannot have. This reader does the
//! least a conforming HTTP/2 client must: the preface and SETTINGS, one
//! request HEADERS block (HPACK literals, no table), SETTINGS and PING
//! acknowledgements, and WINDOW_UPDATEs. Response header blocks are skipped
//! without decoding (it never uses the HPACK dynamic table, and skipping a
//! block leaves the server's encoder state irrelevant to us). It speaks to
//! any server (ours, tonic); `fanout --h2-subscribers` uses the full client
//! instead, to cross-check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_sansio::codec::Decoder;
use polling::{Event, Events, PollMode, Poller};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
/// The one stream this client opens.
const STREAM: u32 = 1;
/// The window given to the stream and the connection: the largest allowed.
const WINDOW: u32 = (1 << 31) - 1;
/// Read buffer: room for a whole frame at the default SETTINGS_MAX_FRAME_SIZE
/// (this client never raises it) several times over.
const BUF: usize = 64 * 1024;
/// Window handed back once this much has been consumed.
const REFILL: u32 = 1 << 30;

/// One subscriber's connection with its JoinChat call.
pub struct Subscriber {
    io: TcpStream,
    /// Received bytes: `buf[pos..end]` is not parsed yet.
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    grpc: Decoder,
    consumed: u32,
    ended: bool,
    /// What the server lets us send: its connection and stream windows, as
    /// its SETTINGS and WINDOW_UPDATEs say (RFC 9113 §6.9).
    windows: Arc<Windows>,
    initial_stream_window: u32,
}

/// The server's receive windows, shared by the reader (which applies its
/// SETTINGS and WINDOW_UPDATE frames) and a [`Sender`].
#[derive(Debug)]
pub struct Windows {
    conn: AtomicI64,
    stream: AtomicI64,
}

/// The sending side of a lean connection: DATA frames on its call, within
/// the server's windows. For a publisher whose echoes the reader thread
/// reads with everyone else's.
pub struct Sender {
    io: TcpStream,
    windows: Arc<Windows>,
    buf: Vec<u8>,
}

impl Sender {
    /// Sends one gRPC message (its protobuf bytes) as one DATA frame,
    /// waiting for window if it must.
    pub fn send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let len = payload.len() + 5;
        while self.windows.conn.load(Ordering::Acquire) < len as i64
            || self.windows.stream.load(Ordering::Acquire) < len as i64
        {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.windows.conn.fetch_sub(len as i64, Ordering::AcqRel);
        self.windows.stream.fetch_sub(len as i64, Ordering::AcqRel);
        self.buf.clear();
        let mut grpc = Vec::with_capacity(len);
        grpc.push(0);
        grpc.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        grpc.extend_from_slice(payload);
        frame(&mut self.buf, DATA, 0, STREAM, &grpc);
        let buf = std::mem::take(&mut self.buf);
        let result = write_fully(&mut self.io, &buf);
        self.buf = buf;
        result
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK "literal header field without indexing, new name", no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for s in [name, value] {
        let len = s.len();
        if len < 127 {
            out.push(len as u8);
        } else {
            // 7-bit prefix integer (RFC 7541 5.1).
            out.push(127);
            let mut rest = len - 127;
            while rest >= 128 {
                out.push((rest % 128) as u8 | 0x80);
                rest /= 128;
            }
            out.push(rest as u8);
        }
        out.extend_from_slice(s.as_bytes());
    }
}

impl Subscriber {
    /// Connects and opens `path` with the given metadata (blocking); the
    /// socket is non-blocking afterwards.
    pub fn connect(
        addr: &str,
        path: &str,
        metadata: &[(&str, &str)],
    ) -> std::io::Result<Subscriber> {
        let io = TcpStream::connect(addr)?;
        io.set_nodelay(true)?;
        let mut out = PREFACE.to_vec();
        let mut settings = Vec::new();
        for (id, value) in [(0x2u16, 0u32), (0x4, WINDOW)] {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        frame(&mut out, SETTINGS, 0, 0, &settings);
        frame(
            &mut out,
            WINDOW_UPDATE,
            0,
            0,
            &(WINDOW - 65535).to_be_bytes(),
        );
        let mut block = Vec::new();
        for (n, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", addr),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            literal(&mut block, n, v);
        }
        for (n, v) in metadata {
            literal(&mut block, n, v);
        }
        frame(&mut out, HEADERS, END_HEADERS, STREAM, &block);
        let mut s = Subscriber {
            io,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            grpc: Decoder::default(),
            consumed: 0,
            ended: false,
            // The defaults until the server's SETTINGS say otherwise.
            windows: Arc::new(Windows {
                conn: AtomicI64::new(65_535),
                stream: AtomicI64::new(65_535),
            }),
            initial_stream_window: 65_535,
        };
        s.io.write_all(&out)?;
        s.io.set_nonblocking(true)?;
        Ok(s)
    }

    /// A sender of messages on this connection's call.
    pub fn sender(&self) -> std::io::Result<Sender> {
        Ok(Sender {
            io: self.io.try_clone()?,
            windows: self.windows.clone(),
            buf: Vec::new(),
        })
    }

    /// Whether the call or the connection has ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads what is there and hands every whole message to `each`.
    pub fn on_readable(&mut self, mut each: impl FnMut(&[u8])) {
        match self.read(&mut each) {
            Ok(true) => {}
            Ok(false) => self.ended = true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.ended = true,
        }
    }

    /// Hands the gRPC messages of one DATA payload to `each`: in place while
    /// they arrive whole, through the decoder once one is split.
    fn data(&mut self, mut data: &[u8], each: &mut impl FnMut(&[u8])) {
        while self.grpc.buffered() == 0 && data.len() >= 5 {
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            if data.len() - 5 < len {
                break;
            }
            each(&data[5..5 + len]);
            data = &data[5 + len..];
        }
        if data.is_empty() {
            return;
        }
        self.grpc.push(data);
        loop {
            match self.grpc.next_message() {
                Ok(Some(m)) => each(&m.payload),
                Ok(None) => return,
                Err(_) => {
                    self.ended = true;
                    return;
                }
            }
        }
    }

    /// Reads once and handles every whole frame; false at end of stream.
    fn read(&mut self, each: &mut impl FnMut(&[u8])) -> std::io::Result<bool> {
        if self.end - self.pos < 9 + 16 * 1024 && self.end > BUF / 2 {
            // Keep room for a whole frame: move the unparsed tail to the front.
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = self.io.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Ok(false);
        }
        self.end += n;
        let mut replies = Vec::new();
        while self.end - self.pos >= 9 {
            let h = &self.buf[self.pos..self.pos + 9];
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if len > BUF / 2 {
                return Err(std::io::Error::other(
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            if self.end - self.pos - 9 < len {
                break;
            }
            let body = self.pos + 9..self.pos + 9 + len;
            self.pos = body.end;
            let buf = std::mem::take(&mut self.buf);
            let payload = &buf[body];
            match kind {
                DATA if stream == STREAM => {
                    let data = if flags & PADDED != 0 {
                        let pad = *payload.first().unwrap_or(&0) as usize;
                        payload
                            .get(1..payload.len().saturating_sub(pad))
                            .unwrap_or(&[])
                    } else {
                        payload
                    };
                    self.data(data, each);
                    self.consumed += len as u32;
                    if flags & END_STREAM != 0 {
                        self.ended = true;
                    }
                }
                HEADERS if flags & END_STREAM != 0 => self.ended = true,
                RST_STREAM | GOAWAY => self.ended = true,
                SETTINGS if flags & ACK == 0 => {
                    for setting in payload.chunks_exact(6) {
                        if setting[..2] == [0, 4] {
                            // SETTINGS_INITIAL_WINDOW_SIZE: the stream's
                            // window moves by the difference (§6.9.2).
                            let new = u32::from_be_bytes([
                                setting[2], setting[3], setting[4], setting[5],
                            ]);
                            let old = self.initial_stream_window;
                            self.initial_stream_window = new;
                            self.windows
                                .stream
                                .fetch_add(i64::from(new) - i64::from(old), Ordering::AcqRel);
                        }
                    }
                    frame(&mut replies, SETTINGS, ACK, 0, &[]);
                }
                WINDOW_UPDATE if payload.len() == 4 => {
                    let n = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                    let window = if stream == 0 {
                        &self.windows.conn
                    } else {
                        &self.windows.stream
                    };
                    window.fetch_add(i64::from(n), Ordering::AcqRel);
                }
                PING if flags & ACK == 0 => frame(&mut replies, PING, ACK, 0, payload),
                _ => {}
            }
            self.buf = buf;
        }
        if self.pos == self.end {
            (self.pos, self.end) = (0, 0);
        }
        if self.consumed >= REFILL {
            for s in [0, STREAM] {
                frame(
                    &mut replies,
                    WINDOW_UPDATE,
                    0,
                    s,
                    &self.consumed.to_be_bytes(),
                );
            }
            self.consumed = 0;
        }
        if !replies.is_empty() {
            // Tiny and rare (acks, window updates): a blocking-style write
            // of a few bytes into an almost empty socket buffer.
            write_fully(&mut self.io, &replies)?;
        }
        Ok(true)
    }
}

fn write_fully(io: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match io.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads every subscriber until `stop` is set (or until all have ended),
/// from one epoll set on the calling thread; `each(index, message)` gets
/// every message.
pub fn read_all(
    subs: &mut [Subscriber],
    stop: &AtomicBool,
    mut each: impl FnMut(usize, &[u8]),
) -> std::io::Result<()> {
    let poller = Poller::new()?;
    for (i, s) in subs.iter().enumerate() {
        // SAFETY: every socket is deleted from the poller below, before
        // `subs` (which owns them) can be dropped.
        unsafe { poller.add_with_mode(&s.io, Event::readable(i), PollMode::Level)? };
    }
    let mut events = Events::new();
    let mut live = subs.len();
    while live > 0 && !stop.load(Ordering::Relaxed) {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let Some(s) = subs.get_mut(ev.key) else {
                continue;
            };
            if s.ended {
                continue;
            }
            s.on_readable(|m| each(ev.key, m));
            if s.ended {
                live -= 1;
                poller.delete(&s.io)?;
            }
        }
    }
    for s in subs.iter().filter(|s| !s.ended) {
        poller.delete(&s.io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_literals_use_the_prefix_integer() {
        let mut out = Vec::new();
        literal(&mut out, "a", "b");
        assert_eq!(out, [0, 1, b'a', 1, b'b']);
        let long = "x".repeat(300);
        let mut out = Vec::new();
        literal(&mut out, "n", &long);
        // 300 = 127 + 173; 173 = 0b1010_1101 -> 0xad (with the continuation
        // bit) then 1.
        assert_eq!(&out[..6], &[0, 1, b'n', 127, 0xad, 1]);
        assert_eq!(out.len(), 6 + 300);
    }
}
