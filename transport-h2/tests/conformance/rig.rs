//! The raw HTTP/2 client rig: a [`Client`] on the `h2` crate that sends
//! whatever the tests need, whole replies ([`Reply`]) or message by message
//! ([`Messages`]), and the assertions the themes share.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use chat_proto::ChatMessage;
use chat_sansio::codec;
use futures_lite::future;
use h2::client::{self, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, Method, Request, StatusCode};
use prost::Message as _;
use smol::net::TcpStream;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};
use transport_h2::ServerConfig;

use crate::common::echo::Echo;
use crate::common::server::start;
use crate::common::time::{within, SHORT};

pub const JOIN_CHAT: &str = chat_proto::paths::JOIN_CHAT;

/// Our chat server, default configuration.
pub fn chat_server() -> SocketAddr {
    start(crate::common::chat(), ServerConfig::default())
}

/// An [`Echo`] server, default configuration.
pub fn echo_server() -> SocketAddr {
    start(Echo::default(), ServerConfig::default())
}

/// One HTTP/2 connection; the h2 connection future runs on smol's executor
/// until this is dropped.
pub struct Client {
    pub addr: SocketAddr,
    pub send: SendRequest<Bytes>,
    pub conn: smol::Task<()>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &client::Builder::new()).await
    }

    pub async fn connect_with(addr: SocketAddr, builder: &client::Builder) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (send, conn) = builder
            .handshake::<_, Bytes>(tcp.compat())
            .await
            .expect("HTTP/2 handshake");
        let conn = smol::spawn(async move {
            let _ = conn.await;
        });
        Client { addr, send, conn }
    }

    /// A gRPC request to `path`: POST, absolute URI, content-type and te.
    pub fn request(&self, path: &str) -> http::request::Builder {
        grpc_request(self.addr, path)
    }

    /// A gRPC request to `path` with one more header, `name: value`.
    pub fn request_with(&self, path: &str, name: &str, value: &str) -> Request<()> {
        self.request(path).header(name, value).body(()).unwrap()
    }

    /// Sends a request's headers, waiting for a stream slot.
    pub async fn start(
        &self,
        req: Request<()>,
        end_of_stream: bool,
    ) -> (ResponseFuture, SendStream<Bytes>) {
        let mut send = self.send.clone().ready().await.expect("connection ready");
        send.send_request(req, end_of_stream).expect("send_request")
    }

    /// Opens a normal gRPC call to `path`.
    pub async fn call(&self, path: &str) -> (ResponseFuture, SendStream<Bytes>) {
        self.start(self.request(path).body(()).unwrap(), false)
            .await
    }

    /// Sends a request's headers and reads the whole response, within
    /// [`SHORT`]. The request's stream comes back too, for the caller to
    /// keep open for as long as the original test kept it.
    pub async fn ask(&self, req: Request<()>, end_of_stream: bool) -> (Reply, SendStream<Bytes>) {
        let (resp, stream) = self.start(req, end_of_stream).await;
        (within(SHORT, "reply", read_reply(resp)).await, stream)
    }

    /// Opens a call to `path` and waits for its response headers: the
    /// messages it will receive, and its request stream.
    pub async fn open(&self, path: &str) -> (Messages, SendStream<Bytes>) {
        let (resp, stream) = self.call(path).await;
        (Messages::open(resp).await, stream)
    }

    /// Posts one chat message on a JoinChat call of its own (sent with
    /// END_STREAM) and reads the whole response, within [`SHORT`].
    pub async fn post(&self, msg: &ChatMessage) -> Reply {
        within(SHORT, "reply", self.unary_raw(JOIN_CHAT, frame(msg))).await
    }

    /// A call that sends `frames` as one DATA frame with END_STREAM and
    /// reads the whole response.
    pub async fn unary_raw(&self, path: &str, frames: Bytes) -> Reply {
        let (resp, mut stream) = self.call(path).await;
        stream.send_data(frames, true).expect("send_data");
        read_reply(resp).await
    }
}

/// An HTTP/2 connection whose h2 future the test drives itself (see
/// [`driving`]), so that frames queued without an await in between go out
/// in one write.
pub type Driven = client::Connection<Compat<TcpStream>, Bytes>;

/// Opens a [`Driven`] connection.
pub async fn handshake(addr: SocketAddr) -> (SendRequest<Bytes>, Driven) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    client::handshake(tcp.compat())
        .await
        .expect("HTTP/2 handshake")
}

/// Runs `f` while driving `conn`; panics if the connection ends first.
pub async fn driving<T>(conn: Pin<&mut Driven>, f: impl Future<Output = T>) -> T {
    future::or(f, async {
        let r = conn.await;
        panic!("connection ended: {r:?}")
    })
    .await
}

/// A POST to `path` on `addr`, with an absolute URI and no header.
pub fn bare_request(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
}

/// A gRPC request to `path` on `addr`: POST, absolute URI, content-type
/// and te.
pub fn grpc_request(addr: SocketAddr, path: &str) -> http::request::Builder {
    bare_request(addr, path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The first HEADERS block carried END_STREAM (Trailers-Only).
    pub trailers_only: bool,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// grpc-status from the trailers, or from the headers of a
    /// Trailers-Only response.
    pub fn grpc_status(&self) -> Option<&str> {
        let block = if self.trailers_only {
            Some(&self.headers)
        } else {
            self.trailers.as_ref()
        };
        block?.get("grpc-status").map(|v| v.to_str().unwrap())
    }

    pub fn messages(&self) -> Vec<Bytes> {
        split_messages(&self.body)
    }
}

/// Reads a whole response, releasing flow-control capacity as it goes.
pub async fn read_reply(resp: ResponseFuture) -> Reply {
    let resp = resp.await.expect("response headers");
    let (parts, mut body) = resp.into_parts();
    let trailers_only = body.is_end_stream();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("response trailers");
    Reply {
        status: parts.status,
        headers: parts.headers,
        trailers_only,
        body: data,
        trailers,
    }
}

/// Splits a response body into messages; panics on a compressed flag or a
/// partial message.
pub fn split_messages(mut body: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "partial message prefix: {body:?}");
        assert_eq!(body[0], 0, "compressed flag set in a response message");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(
            body.len() >= 5 + len,
            "partial message: {} of {len} bytes",
            body.len() - 5
        );
        out.push(Bytes::copy_from_slice(&body[5..5 + len]));
        body = &body[5 + len..];
    }
    out
}

/// Reads a streaming response message by message.
pub struct Messages {
    pub body: RecvStream,
    buf: BytesMut,
}

impl Messages {
    /// Waits for response headers, which must be a normal (not
    /// Trailers-Only) 200 gRPC response.
    pub async fn open(resp: ResponseFuture) -> Messages {
        let resp = within(SHORT, "response headers", resp)
            .await
            .expect("response headers");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            !resp.body().is_end_stream(),
            "unexpected Trailers-Only response: {:?}",
            resp.headers()
        );
        Messages {
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }

    /// The next message, or None at end of stream.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.buf.len() >= 5 {
                assert_eq!(self.buf[0], 0, "compressed flag set");
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() >= 5 + len {
                    let mut m = self.buf.split_to(5 + len);
                    return Some(m.split_off(5).freeze());
                }
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => panic!("response body failed: {e}"),
                None => {
                    assert!(self.buf.is_empty(), "stream ended inside a message");
                    return None;
                }
            }
        }
    }

    /// The next chat message, with the fields the server sets on delivery
    /// (room, number, time, epoch) cleared, so it compares equal to what
    /// was sent.
    pub async fn next_chat(&mut self) -> ChatMessage {
        match within(SHORT, "a chat message", self.next()).await {
            Some(m) => {
                let m = ChatMessage::decode(m).expect("a ChatMessage");
                assert!(m.seq > 0 && m.timestamp_us > 0 && !m.room_id.is_empty());
                assert!(m.epoch > 0);
                ChatMessage {
                    room_id: String::new(),
                    seq: 0,
                    timestamp_us: 0,
                    epoch: 0,
                    ..m
                }
            }
            None => {
                let trailers = self.body.trailers().await;
                panic!("the call ended instead of sending a message: {trailers:?}")
            }
        }
    }

    /// Half-closes `stream`, then reads to the end, which must be OK with no
    /// message left.
    pub async fn end_ok(self, stream: &mut SendStream<Bytes>) {
        stream.send_data(Bytes::new(), true).unwrap();
        let (rest, status) = within(SHORT, "trailers", self.finish()).await;
        assert!(rest.is_empty());
        assert_eq!(status, "0");
    }

    /// Reads to the end; returns the remaining messages and grpc-status.
    pub async fn finish(mut self) -> (Vec<Bytes>, String) {
        let mut rest = Vec::new();
        while let Some(m) = self.next().await {
            rest.push(m);
        }
        let trailers = self
            .body
            .trailers()
            .await
            .expect("trailers")
            .expect("a trailers block");
        let status = trailers
            .get("grpc-status")
            .expect("grpc-status in trailers")
            .to_str()
            .unwrap()
            .to_owned();
        (rest, status)
    }
}

/// Sends `data` as DATA frames as the stream's window allows.
pub async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes) {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let capacity = poll_fn(|cx| {
            if stream.capacity() > 0 {
                return Poll::Ready(stream.capacity());
            }
            match stream.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => Poll::Ready(stream.capacity()),
                Poll::Ready(Some(Err(e))) => panic!("stream failed: {e}"),
                Poll::Ready(None) => panic!("stream closed while sending"),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if capacity == 0 {
            continue;
        }
        let chunk = data.split_to(capacity.min(data.len()));
        stream.send_data(chunk, false).expect("send_data");
    }
}

/// Waits for the server's RST_STREAM on `stream`; returns its reason.
pub async fn reset_of(stream: &mut SendStream<Bytes>) -> Reason {
    within(SHORT, "RST_STREAM", poll_fn(|cx| stream.poll_reset(cx)))
        .await
        .expect("a reset")
}

/// `msg`, framed as one gRPC message.
pub fn frame(msg: &ChatMessage) -> Bytes {
    codec::encode(msg).unwrap()
}

/// A framed message of `len` bytes of a recognisable pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The value of header `name`, if present.
pub fn header_str<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).map(|v| v.to_str().unwrap())
}

/// A Trailers-Only response with `http` status and `grpc` status, and a
/// gRPC content-type (PROTOCOL-HTTP2.md, "Responses": Trailers-Only).
pub fn assert_trailers_only(reply: &Reply, http: u16, grpc: &str) {
    assert!(reply.trailers_only, "expected Trailers-Only, got {reply:?}");
    assert_eq!(reply.status.as_u16(), http, "{reply:?}");
    assert_eq!(
        header_str(&reply.headers, "grpc-status"),
        Some(grpc),
        "{reply:?}"
    );
    assert_eq!(
        header_str(&reply.headers, "content-type"),
        Some("application/grpc"),
        "{reply:?}"
    );
    assert!(
        reply.body.is_empty() && reply.trailers.is_none(),
        "{reply:?}"
    );
    // grpc-message is percent-encoded, so visible ASCII and space only
    // (PROTOCOL-HTTP2.md, "Responses": Status-Message).
    if let Some(msg) = reply.headers.get("grpc-message") {
        assert!(
            msg.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b)),
            "{msg:?}"
        );
    }
}

/// A normal response (headers, then trailers) ending with `grpc`.
pub fn assert_ended_with(reply: &Reply, grpc: &str) {
    assert!(!reply.trailers_only, "unexpected Trailers-Only: {reply:?}");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.grpc_status(), Some(grpc), "{reply:?}");
}

/// A call that ended OK with no message, Trailers-Only or not.
pub fn check_zero_message_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        header_str(&reply.headers, "content-type"),
        Some("application/grpc")
    );
    assert_eq!(reply.grpc_status(), Some("0"), "{reply:?}");
    assert!(reply.body.is_empty(), "{reply:?}");
    if !reply.trailers_only {
        assert!(reply.headers.get("grpc-status").is_none(), "{reply:?}");
    }
}
