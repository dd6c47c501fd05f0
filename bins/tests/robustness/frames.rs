//! A raw HTTP/2 client for attacks: frames written by hand (RFC 9113 §4.1:
//! a 9-byte header, then the payload) on a blocking socket, and a reader
//! that returns whole frames, with header blocks decoded.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::hpack::{self, Field};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags (RFC 9113 §6.1, §6.2, §6.5, §6.7).
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The error code of GOAWAY for a peer causing excessive load (RFC 9113 §7).
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The largest window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// SETTINGS_MAX_FRAME_SIZE's initial value; we never raise it (§4.2).
pub const MAX_FRAME: usize = 16_384;

/// Appends one frame (RFC 9113 §4.1).
pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// SETTINGS with these parameters (§6.5).
pub fn settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(out, SETTINGS, 0, 0, &payload);
}

/// WINDOW_UPDATE (§6.9).
pub fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    frame(out, WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
}

/// PRIORITY on `stream`: no dependency, weight 16 (§6.3, §5.3.2).
pub fn priority(out: &mut Vec<u8>, stream: u32) {
    frame(out, PRIORITY, 0, stream, &[0, 0, 0, 0, 15]);
}

/// PING (§6.7).
pub fn ping(out: &mut Vec<u8>, flags: u8, data: [u8; 8]) {
    frame(out, PING, flags, 0, &data);
}

/// RST_STREAM (§6.4).
pub fn rst_stream(out: &mut Vec<u8>, stream: u32, code: u32) {
    frame(out, RST_STREAM, 0, stream, &code.to_be_bytes());
}

/// A header block as HEADERS plus CONTINUATION frames (§6.2, §6.10).
pub fn headers(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        frame(
            out,
            kind,
            flags | if last { END_HEADERS } else { 0 },
            stream,
            chunk,
        );
        if last {
            return;
        }
        (kind, flags) = (CONTINUATION, 0);
    }
}

/// DATA frames carrying `payload` (§6.1).
pub fn data(out: &mut Vec<u8>, stream: u32, payload: &[u8], end_stream: bool) {
    let mut chunks = payload.chunks(MAX_FRAME).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end_stream { END_STREAM } else { 0 };
        frame(out, DATA, flags, stream, chunk);
    }
}

/// A gRPC length-prefixed message (5-byte prefix, then the protobuf).
pub fn grpc<M: prost::Message>(msg: &M) -> Vec<u8> {
    chat_sansio::codec::encode(msg).expect("encodable").to_vec()
}

/// The header block of a gRPC request: HPACK literals without indexing.
pub fn request(addr: SocketAddr, path: &str, metadata: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    let authority = addr.to_string();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", &authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        hpack::literal(&mut block, n, v.as_bytes());
    }
    for (n, v) in metadata {
        hpack::literal(&mut block, n, v);
    }
    block
}

/// One frame read; a header block is whole (CONTINUATIONs joined) and
/// decoded.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
    /// The fields of HEADERS.
    pub fields: Vec<Field>,
}

impl Frame {
    /// The error code of GOAWAY (§6.8) or RST_STREAM (§6.4).
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Whether this DATA or HEADERS ends its stream.
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }

    /// A header field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `grpc-status` of trailers (or Trailers-Only).
    pub fn grpc_status(&self) -> Option<u32> {
        self.field("grpc-status")?.parse().ok()
    }
}

/// What a read brought.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// No whole frame within the wait.
    Idle,
    /// End of stream or a socket error.
    Closed(String),
}

/// A blocking HTTP/2 client connection.
pub struct Conn {
    io: TcpStream,
    buf: Vec<u8>,
    hpack: hpack::Decoder,
    pub addr: SocketAddr,
}

/// A TCP connection to `addr`, from `source` if given (another loopback
/// address is another peer to the server).
pub fn tcp(addr: SocketAddr, source: Option<IpAddr>, wait: Duration) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&addr.into(), wait)?;
    let io: TcpStream = socket.into();
    io.set_nodelay(true)?;
    Ok(io)
}

impl Conn {
    /// Connects, sends the preface and SETTINGS with `params`.
    pub fn connect(addr: SocketAddr, params: &[(u16, u32)]) -> io::Result<Conn> {
        Conn::connect_from(addr, None, params)
    }

    /// [`Conn::connect`] from a chosen source address.
    pub fn connect_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        params: &[(u16, u32)],
    ) -> io::Result<Conn> {
        let io = tcp(addr, source, Duration::from_secs(2))?;
        io.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut conn = Conn {
            io,
            buf: Vec::new(),
            hpack: hpack::Decoder::default(),
            addr,
        };
        let mut out = PREFACE.to_vec();
        settings(&mut out, params);
        conn.send(&out)?;
        Ok(conn)
    }

    /// Connects with the largest windows, for clients that read everything.
    pub fn reader(addr: SocketAddr) -> io::Result<Conn> {
        let mut conn = Conn::connect(addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW)])?;
        let mut out = Vec::new();
        window_update(&mut out, 0, MAX_WINDOW - 65_535);
        conn.send(&out)?;
        Ok(conn)
    }

    /// A second handle on the socket, for a reader thread.
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(Conn {
            io: self.io.try_clone()?,
            buf: Vec::new(),
            hpack: hpack::Decoder::default(),
            addr: self.addr,
        })
    }

    /// Writes all of `bytes` (bounded by the socket's 2 s write timeout).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes)
    }

    /// Writes what the socket takes now, within `wait`; 0 if nothing.
    pub fn send_some(&mut self, bytes: &[u8], wait: Duration) -> io::Result<usize> {
        self.io.set_write_timeout(Some(wait))?;
        let n = match self.io.write(bytes) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                0
            }
            other => other?,
        };
        self.io.set_write_timeout(Some(Duration::from_secs(2)))?;
        Ok(n)
    }

    /// Closes both directions of the socket.
    pub fn shutdown(&self) {
        let _ = self.io.shutdown(std::net::Shutdown::Both);
    }

    /// The next whole frame, waiting at most `wait` for it.
    pub fn read(&mut self, wait: Duration) -> Read {
        let deadline = Instant::now() + wait;
        loop {
            match self.take_frame() {
                Ok(Some(frame)) => return Read::Frame(frame),
                Ok(None) => {}
                Err(e) => return Read::Closed(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Read::Idle;
            }
            let _ = self.io.set_read_timeout(Some(left));
            let mut chunk = [0u8; 64 * 1024];
            match self.io.read(&mut chunk) {
                Ok(0) => return Read::Closed("end of stream".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Read::Idle
                }
                Err(e) => return Read::Closed(e.to_string()),
            }
        }
    }

    /// A whole frame (a whole header block) from the buffer, if there.
    fn take_frame(&mut self) -> Result<Option<Frame>, String> {
        let Some((kind, flags, stream, end)) = header_at(&self.buf, 0) else {
            return Ok(None);
        };
        let mut payload = self.buf[9..end].to_vec();
        let mut used = end;
        if kind == HEADERS {
            payload = block_of(&payload, flags)?;
            let mut ended = flags & END_HEADERS != 0;
            while !ended {
                let Some((k, f, _, e)) = header_at(&self.buf, used) else {
                    return Ok(None);
                };
                if k != CONTINUATION {
                    return Err(format!("frame type {k} inside a header block"));
                }
                payload.extend_from_slice(&self.buf[used + 9..e]);
                (used, ended) = (e, f & END_HEADERS != 0);
            }
        }
        self.buf.drain(..used);
        let fields = match kind {
            HEADERS => self.hpack.decode(&payload)?,
            _ => Vec::new(),
        };
        Ok(Some(Frame {
            kind,
            flags,
            stream,
            payload,
            fields,
        }))
    }
}

/// The header of the frame at `at` and where the frame ends, if whole.
fn header_at(buf: &[u8], at: usize) -> Option<(u8, u8, u32, usize)> {
    let h = buf.get(at..at + 9)?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW;
    let end = at + 9 + len;
    (buf.len() >= end).then_some((h[3], h[4], stream, end))
}

/// The header block fragment of a HEADERS payload: without padding and
/// priority fields (§6.2).
fn block_of(payload: &[u8], flags: u8) -> Result<Vec<u8>, String> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = *p.first().ok_or("empty padded HEADERS")? as usize;
        p = &p[1..];
    }
    if flags & PRIORITY_FLAG != 0 {
        p = p.get(5..).ok_or("short HEADERS")?;
    }
    let keep = p.len().checked_sub(pad).ok_or("padding too long")?;
    Ok(p[..keep].to_vec())
}
