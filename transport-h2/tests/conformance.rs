//! Transport conformance tests: raw HTTP/2 (the `h2` client crate) against
//! an in-process `transport_h2::Server`, checked against
//! GRPC-CONFORMANCE.md (section names in the comments).
//!
//! Two services are served: the chat (`/ChatService/JoinChat`,
//! `/ChatService/JoinChatRoom`) and a test-only [`Echo`] handler that echoes
//! every request message as-is, to test framing and flow control without
//! chat rules. Every test runs under a time limit so a hang fails.

mod common;

use common::echo::{Echo, ECHO, ECHO_UNARY};
use common::messages::chat;
use common::server::{start, start_with};
use common::time::{run, within, SHORT};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chat_proto::ChatMessage;
use chat_sansio::chat::Chat;
use chat_sansio::codec;
use futures_lite::future;
use h2::client::{self, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, Method, Request, StatusCode};
use prost::Message as _;
use smol::net::TcpStream;
use smol::Timer;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use transport_h2::ServerConfig;

const JOIN_CHAT: &str = chat_proto::paths::JOIN_CHAT;

fn chat_server() -> SocketAddr {
    start(Chat::default(), ServerConfig::default())
}

fn echo_server() -> SocketAddr {
    start(Echo::default(), ServerConfig::default())
}

// ---------------------------------------------------------------------------
// Raw HTTP/2 client helpers
// ---------------------------------------------------------------------------

/// One HTTP/2 connection; the h2 connection future runs on smol's executor
/// until this is dropped.
struct Client {
    addr: SocketAddr,
    send: SendRequest<Bytes>,
    conn: smol::Task<()>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &client::Builder::new()).await
    }

    async fn connect_with(addr: SocketAddr, builder: &client::Builder) -> Client {
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
    fn request(&self, path: &str) -> http::request::Builder {
        grpc_request(self.addr, path)
    }

    /// Sends a request's headers, waiting for a stream slot.
    async fn start(
        &self,
        req: Request<()>,
        end_of_stream: bool,
    ) -> (ResponseFuture, SendStream<Bytes>) {
        let mut send = self.send.clone().ready().await.expect("connection ready");
        send.send_request(req, end_of_stream).expect("send_request")
    }

    /// Opens a normal gRPC call to `path`.
    async fn call(&self, path: &str) -> (ResponseFuture, SendStream<Bytes>) {
        self.start(self.request(path).body(()).unwrap(), false)
            .await
    }

    /// A call that sends `frames` as one DATA frame with END_STREAM and
    /// reads the whole response.
    async fn unary_raw(&self, path: &str, frames: Bytes) -> Reply {
        let (resp, mut stream) = self.call(path).await;
        stream.send_data(frames, true).expect("send_data");
        read_reply(resp).await
    }
}

fn grpc_request(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// A whole response.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The first HEADERS block carried END_STREAM (Trailers-Only).
    trailers_only: bool,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl Reply {
    /// grpc-status from the trailers, or from the headers of a
    /// Trailers-Only response.
    fn grpc_status(&self) -> Option<&str> {
        let block = if self.trailers_only {
            Some(&self.headers)
        } else {
            self.trailers.as_ref()
        };
        block?.get("grpc-status").map(|v| v.to_str().unwrap())
    }

    fn messages(&self) -> Vec<Bytes> {
        split_messages(&self.body)
    }
}

/// Reads a whole response, releasing flow-control capacity as it goes.
async fn read_reply(resp: ResponseFuture) -> Reply {
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
fn split_messages(mut body: &[u8]) -> Vec<Bytes> {
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
struct Messages {
    body: RecvStream,
    buf: BytesMut,
}

impl Messages {
    /// Waits for response headers, which must be a normal (not
    /// Trailers-Only) 200 gRPC response.
    async fn open(resp: ResponseFuture) -> Messages {
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
    async fn next(&mut self) -> Option<Bytes> {
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
    /// (room, number, time) cleared, so it compares equal to what was sent.
    async fn next_chat(&mut self) -> ChatMessage {
        match within(SHORT, "a chat message", self.next()).await {
            Some(m) => {
                let m = ChatMessage::decode(m).expect("a ChatMessage");
                assert!(m.seq > 0 && m.timestamp_us > 0 && !m.room_id.is_empty());
                ChatMessage {
                    room_id: String::new(),
                    seq: 0,
                    timestamp_us: 0,
                    ..m
                }
            }
            None => {
                let trailers = self.body.trailers().await;
                panic!("the call ended instead of sending a message: {trailers:?}")
            }
        }
    }

    /// Reads to the end; returns the remaining messages and grpc-status.
    async fn finish(mut self) -> (Vec<Bytes>, String) {
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
async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes) {
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

fn frame(msg: &ChatMessage) -> Bytes {
    codec::encode(msg).unwrap()
}

/// A framed message of `len` bytes of a recognisable pattern.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn header_str<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).map(|v| v.to_str().unwrap())
}

/// A Trailers-Only response with `http` status and `grpc` status, and a
/// gRPC content-type.
fn assert_trailers_only(reply: &Reply, http: u16, grpc: &str) {
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
    // grpc-message is percent-encoded, so visible ASCII and space only.
    if let Some(msg) = reply.headers.get("grpc-message") {
        assert!(
            msg.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b)),
            "{msg:?}"
        );
    }
}

/// A normal response (headers, then trailers) ending with `grpc`.
fn assert_ended_with(reply: &Reply, grpc: &str) {
    assert!(!reply.trailers_only, "unexpected Trailers-Only: {reply:?}");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.grpc_status(), Some(grpc), "{reply:?}");
}

// ---------------------------------------------------------------------------
// 1-5: headers
// ---------------------------------------------------------------------------

/// F-3/HC-1: response headers are `:status 200` and
/// `content-type: application/grpc` without grpc-status; trailers carry
/// `grpc-status: 0` for OK; zero-message calls end OK.
#[test]
fn response_headers_then_trailers_with_ok() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;

        // response headers come before any message, without the
        // client sending anything.
        let (resp, _idle) = c.call(JOIN_CHAT).await;
        let head = within(SHORT, "early response headers", resp).await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.headers().get("grpc-status").is_none());
        assert!(!head.body().is_end_stream());

        // One message, then half-close.
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        stream.send_data(frame(&chat("ann", "hi")), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(
            header_str(&reply.headers, "content-type"),
            Some("application/grpc")
        );
        assert!(reply.headers.get("grpc-status").is_none(), "{reply:?}");
        assert!(reply.headers.get("grpc-message").is_none(), "{reply:?}");
        let trailers = reply.trailers.as_ref().unwrap();
        assert!(trailers.get(":status").is_none());
        let msgs = reply.messages();
        assert_eq!(msgs.len(), 1);
        let echo = ChatMessage::decode(msgs[0].clone()).unwrap();
        assert_eq!(
            (echo.user, echo.message),
            (chat("ann", "hi").user, "hi".into())
        );

        // Zero messages, END_STREAM on the request HEADERS.
        let (resp, _s) = c.start(c.request(JOIN_CHAT).body(()).unwrap(), true).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        check_zero_message_ok(&reply);

        // Zero messages, END_STREAM on an empty DATA frame (HC-1).
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        stream.send_data(Bytes::new(), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        check_zero_message_ok(&reply);
    });
}

fn check_zero_message_ok(reply: &Reply) {
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

/// H-4: the server must not require `te: trailers`.
#[test]
fn te_trailers_is_not_required() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}{JOIN_CHAT}"))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let (resp, mut stream) = c.start(req, false).await;
        stream.send_data(frame(&chat("bo", "no te")), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.messages().len(), 1);
    });
}

/// H-5: a non-gRPC content-type gets HTTP 415 with grpc-status 3
/// (INVALID_ARGUMENT) and a gRPC content-type, in one END_STREAM block;
/// `application/grpc+proto` and `;params` are accepted.
#[test]
fn wrong_or_missing_content_type_is_415() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}{JOIN_CHAT}"))
            .header("content-type", "application/json")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, false).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_trailers_only(&reply, 415, "3");

        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}{JOIN_CHAT}"))
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, true).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_trailers_only(&reply, 415, "3");

        for ct in ["application/grpc+proto", "application/grpc;charset=utf-8"] {
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("http://{addr}{JOIN_CHAT}"))
                .header("content-type", ct)
                .body(())
                .unwrap();
            let (resp, _s) = c.start(req, true).await;
            let reply = within(SHORT, "reply", read_reply(resp)).await;
            check_zero_message_ok(&reply);
        }
    });
}

/// §18 unimplemented_method / unimplemented_service: Trailers-Only,
/// `:status 200`, grpc-status 12, content-type present.
#[test]
fn unknown_method_and_service_are_unimplemented() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        for path in [
            "/ChatService/NoSuchMethod",
            "/NoSuchService/JoinChat",
            "/grpc.reflection.v1.ServerReflection/NoSuchMethod",
        ] {
            let (resp, mut stream) = c.call(path).await;
            // The client may still be sending when the answer comes.
            let _ = stream.send_data(frame(&chat("x", "y")), false);
            let reply = within(SHORT, "reply", read_reply(resp)).await;
            assert_trailers_only(&reply, 200, "12");
            // HC-3: the server then resets the client's side with NO_ERROR
            // (not CANCEL, which clients would report as CANCELLED).
            let reset = within(SHORT, "RST_STREAM", poll_fn(|cx| stream.poll_reset(cx))).await;
            assert_eq!(reset.expect("a reset"), Reason::NO_ERROR);
        }
        // The connection still serves calls.
        let (resp, _s) = c.start(c.request(JOIN_CHAT).body(()).unwrap(), true).await;
        check_zero_message_ok(&within(SHORT, "reply", read_reply(resp)).await);
    });
}

/// H-1, H-6, Z-C1: GET → 405; malformed `grpc-timeout` → 400 with
/// INTERNAL; `grpc-encoding: gzip` → UNIMPLEMENTED with a
/// `grpc-accept-encoding` that does not list gzip.
#[test]
fn bad_method_timeout_and_encoding() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;

        let req = c.request(JOIN_CHAT).method(Method::GET).body(()).unwrap();
        let (resp, _s) = c.start(req, true).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_trailers_only(&reply, 405, "13");

        let req = c
            .request(JOIN_CHAT)
            .header("grpc-timeout", "1x")
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, false).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_trailers_only(&reply, 400, "13");

        for bad in ["123456789m", "m", "-1S", "1.5S"] {
            let req = c
                .request(JOIN_CHAT)
                .header("grpc-timeout", bad)
                .body(())
                .unwrap();
            let (resp, _s) = c.start(req, true).await;
            let reply = within(SHORT, "reply", read_reply(resp)).await;
            assert_trailers_only(&reply, 400, "13");
        }

        let req = c
            .request(JOIN_CHAT)
            .header("grpc-encoding", "gzip")
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, false).await;
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_trailers_only(&reply, 200, "12");
        let accept = header_str(&reply.headers, "grpc-accept-encoding")
            .expect("grpc-accept-encoding in the rejection");
        assert!(
            !accept.split(',').any(|e| e.trim() == "gzip"),
            "must not list the rejected encoding: {accept}"
        );

        // `identity` is always accepted.
        let req = c
            .request(JOIN_CHAT)
            .header("grpc-encoding", "identity")
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, true).await;
        check_zero_message_ok(&within(SHORT, "reply", read_reply(resp)).await);
    });
}

// ---------------------------------------------------------------------------
// 6: framing and flow control through Echo
// ---------------------------------------------------------------------------

/// F-1: one message split over many DATA frames, the prefix split too.
#[test]
fn message_split_over_many_data_frames() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let payload = pattern(2000, 7);
        let mut wire = codec::encode_raw(&payload).unwrap();
        let (resp, mut stream) = c.call(ECHO).await;
        let mut frames = 0;
        while !wire.is_empty() {
            let n = wire.len().min(3 + frames % 11);
            stream.send_data(wire.split_to(n), false).unwrap();
            frames += 1;
        }
        assert!(frames > 200);
        stream.send_data(Bytes::new(), true).unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        let msgs = reply.messages();
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0][..], &payload[..]);
    });
}

/// F-1, F-3: many messages in one DATA frame, zero-length ones included,
/// come back in order.
#[test]
fn many_messages_in_one_data_frame_and_zero_length_messages() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let payloads: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                if i % 3 == 0 {
                    Vec::new()
                } else {
                    pattern(i * 7, i as u8)
                }
            })
            .collect();
        let mut wire = BytesMut::new();
        for p in &payloads {
            wire.extend_from_slice(&codec::encode_raw(p).unwrap());
        }
        let reply = within(SHORT, "reply", c.unary_raw(ECHO, wire.freeze())).await;
        assert_ended_with(&reply, "0");
        let msgs = reply.messages();
        assert_eq!(msgs.len(), payloads.len());
        for (got, want) in msgs.iter().zip(&payloads) {
            assert_eq!(&got[..], &want[..]);
        }

        // Only zero-length messages.
        let wire = Bytes::from_static(&[0; 15]);
        let reply = within(SHORT, "reply", c.unary_raw(ECHO, wire)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.body, vec![0u8; 15]);
    });
}

/// FC-1, FC-3: 3 MiB through both directions in messages of 1000 KiB,
/// one at a time: the server must release receive capacity (its stream
/// window is 1 MiB) and respect the client's 64 KiB window when sending.
#[test]
fn large_messages_round_trip_with_flow_control() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(ECHO).await;
        let mut msgs = Messages::open(resp).await;
        for i in 0..3u8 {
            let payload = pattern(1000 * 1024, i);
            send_all(&mut stream, codec::encode_raw(&payload).unwrap()).await;
            let got = within(Duration::from_secs(5), "the echo", msgs.next())
                .await
                .expect("an echoed message");
            assert!(got[..] == payload[..], "echo {i} differs");
        }
        stream.send_data(Bytes::new(), true).unwrap();
        let (rest, status) = within(SHORT, "trailers", msgs.finish()).await;
        assert!(rest.is_empty());
        assert_eq!(status, "0");
    });
}

/// FC-1, FC-3, Z-1: a single 3 MiB message (under the 4 MiB limit) is
/// echoed back intact; the client keeps its side open until the echo is in.
#[test]

fn three_mib_message_is_echoed_intact() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(ECHO).await;
        let payload = pattern(3 * 1024 * 1024, 42);
        let wire = codec::encode_raw(&payload).unwrap();
        let mut msgs = Messages::open(resp).await;
        let recv = async {
            let got = msgs.next().await;
            (got, msgs)
        };
        let ((), (got, mut msgs)) = future::zip(send_all(&mut stream, wire), recv).await;
        let Some(got) = got else {
            let trailers = msgs.body.trailers().await;
            panic!("no echo; the call ended with {trailers:?}");
        };
        assert!(got[..] == payload[..], "echo differs");
        stream.send_data(Bytes::new(), true).unwrap();
        let (rest, status) = within(SHORT, "trailers", msgs.finish()).await;
        assert!(rest.is_empty());
        assert_eq!(status, "0");
    });
}

/// R-2, §11: a call must never end with OK after dropping one of its
/// messages. A unary-style handler sends a 2 MiB echo and finishes with OK
/// in the same callback; the echo overflows the 1 MiB per-call send queue,
/// so the transport drops it and asks the core to end the call with
/// RESOURCE_EXHAUSTED, but the core has already finished the call: the
/// handler's OK goes out after nothing.
#[test]

fn a_call_never_ends_ok_with_a_dropped_message() {
    let addr = echo_server();
    run(20, async {
        let c = Client::connect(addr).await;
        for i in 0..3u8 {
            let (resp, mut stream) = c.call(ECHO_UNARY).await;
            let payload = pattern(2 * 1024 * 1024, i);
            let wire = codec::encode_raw(&payload).unwrap();
            let send = async {
                send_all(&mut stream, wire).await;
                let _ = stream.send_data(Bytes::new(), true);
            };
            let ((), reply) = future::zip(send, read_reply(resp)).await;
            if reply.grpc_status() == Some("0") {
                let msgs = reply.messages();
                assert_eq!(msgs.len(), 1, "call {i} ended OK without its echo");
                assert!(msgs[0][..] == payload[..], "echo differs");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// 7-9: bad request messages
// ---------------------------------------------------------------------------

/// Z-2: a prefix announcing 5 MiB (over the 4 MiB limit) ends the call
/// with RESOURCE_EXHAUSTED at once, without waiting for the body.
#[test]
fn oversized_message_is_refused_from_its_prefix() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(ECHO).await;
        let len = 5u32 * 1024 * 1024;
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&len.to_be_bytes());
        stream.send_data(Bytes::from(prefix), false).unwrap();
        // The request stays open: the answer must not need the body.
        let reply = within(SHORT, "RESOURCE_EXHAUSTED", read_reply(resp)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.grpc_status(), Some("8"), "{reply:?}");
        assert!(reply.body.is_empty());
        // HC-3: early trailers are followed by RST_STREAM(NO_ERROR).
        let reset = within(SHORT, "RST_STREAM", poll_fn(|cx| stream.poll_reset(cx))).await;
        assert_eq!(reset.expect("a reset"), Reason::NO_ERROR);
        drop(stream);
        // The connection still works.
        let reply = c.unary_raw(ECHO, codec::encode_raw(b"ok").unwrap()).await;
        assert_ended_with(&reply, "0");
        assert_eq!(&reply.messages()[0][..], b"ok");
    });
}

/// F-2, F-4: compressed flag 1 without grpc-encoding, flag 2, and a stream
/// ending inside a message (or inside a prefix) all end with INTERNAL.
#[test]
fn bad_compressed_flag_and_truncated_stream_are_internal() {
    let addr = echo_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let cases: [(&str, &[u8], bool); 5] = [
            (
                "compressed flag without grpc-encoding",
                &[1, 0, 0, 0, 1, 7],
                false,
            ),
            ("compressed flag, half-closed", &[1, 0, 0, 0, 1, 7], true),
            ("flag 2", &[2, 0, 0, 0, 1, 7], false),
            (
                "10-byte message cut after 3",
                &[0, 0, 0, 0, 10, 1, 2, 3],
                true,
            ),
            ("prefix cut after 3 bytes", &[0, 0, 0], true),
        ];
        for (what, wire, end) in cases {
            let (resp, mut stream) = c.call(ECHO).await;
            stream.send_data(Bytes::from_static(wire), end).unwrap();
            let reply = within(SHORT, what, read_reply(resp)).await;
            assert_eq!(reply.grpc_status(), Some("13"), "{what}: {reply:?}");
            assert!(reply.body.is_empty(), "{what}: nothing must be echoed");
        }
        // A good message before the bad one is echoed; the bad one ends it.
        let mut wire = codec::encode_raw(b"first").unwrap().to_vec();
        wire.extend_from_slice(&[2, 0, 0, 0, 0]);
        let reply = c.unary_raw(ECHO, Bytes::from(wire)).await;
        assert_ended_with(&reply, "13");
        assert_eq!(reply.messages(), vec![Bytes::from_static(b"first")]);
    });
}

/// Malformed protobuf on JoinChat ends that call with INTERNAL; other
/// callers keep chatting and never see the bad bytes.
#[test]
fn malformed_protobuf_fails_only_its_call() {
    let addr = chat_server();
    run(10, async {
        let a = Client::connect(addr).await;
        let b = Client::connect(addr).await;
        let (resp, _sb) = b.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;

        // Field 1, length-delimited, 5 bytes announced, 1 present.
        let garbage = codec::encode_raw(&[0x0a, 0x05, 0x01]).unwrap();
        let reply = within(SHORT, "reply", a.unary_raw(JOIN_CHAT, garbage)).await;
        assert_eq!(reply.grpc_status(), Some("13"), "{reply:?}");
        assert!(reply.messages().is_empty());

        // Same connection, a good message: everyone gets it, and it is the
        // first thing the subscriber sees.
        let reply = a.unary_raw(JOIN_CHAT, frame(&chat("ann", "after"))).await;
        assert_ended_with(&reply, "0");
        assert_eq!(sub.next_chat().await, chat("ann", "after"));
    });
}

// ---------------------------------------------------------------------------
// 10: deadlines
// ---------------------------------------------------------------------------

/// D-1, H-6: `grpc-timeout: 200m` on an idle call ends it with
/// DEADLINE_EXCEEDED after about 200 ms; `0n` ends it at once.
#[test]
fn deadlines_end_calls_with_deadline_exceeded() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        let req = c
            .request(JOIN_CHAT)
            .header("grpc-timeout", "200m")
            .body(())
            .unwrap();
        let started = Instant::now();
        let (resp, _stream) = c.start(req, false).await;
        let reply = within(SHORT, "DEADLINE_EXCEEDED", read_reply(resp)).await;
        let took = started.elapsed();
        assert_eq!(reply.grpc_status(), Some("4"), "{reply:?}");
        assert!(!reply.trailers_only, "headers go out at once on JoinChat");
        assert!(
            took >= Duration::from_millis(180) && took < Duration::from_millis(1500),
            "deadline fired after {took:?}"
        );

        for zero in ["0n", "0S", "0m"] {
            let req = c
                .request(JOIN_CHAT)
                .header("grpc-timeout", zero)
                .body(())
                .unwrap();
            let started = Instant::now();
            let (resp, _stream) = c.start(req, false).await;
            let reply = within(SHORT, "DEADLINE_EXCEEDED", read_reply(resp)).await;
            assert_eq!(reply.grpc_status(), Some("4"), "{zero}: {reply:?}");
            assert!(started.elapsed() < Duration::from_millis(500));
        }

        // A deadline that does not expire does not disturb the call.
        let req = c
            .request(JOIN_CHAT)
            .header("grpc-timeout", "5S")
            .body(())
            .unwrap();
        let (resp, mut stream) = c.start(req, false).await;
        stream
            .send_data(frame(&chat("d", "in time")), true)
            .unwrap();
        let reply = within(SHORT, "reply", read_reply(resp)).await;
        assert_ended_with(&reply, "0");
        assert_eq!(reply.messages().len(), 1);
    });
}

// ---------------------------------------------------------------------------
// 11-12: cancellation and vanishing clients
// ---------------------------------------------------------------------------

/// X-2, SEC-1: a client's RST_STREAM(CANCEL) ends only that call; 200
/// open+cancel cycles on one connection leave it working.
#[test]
fn cancellation_ends_only_the_cancelled_call() {
    let addr = chat_server();
    run(15, async {
        let sub_conn = Client::connect(addr).await;
        let (resp, _sub_stream) = sub_conn.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;

        let c = Client::connect(addr).await;
        let (resp, mut victim) = c.call(JOIN_CHAT).await;
        let mut victim_msgs = Messages::open(resp).await;
        // The victim is subscribed: it sees a broadcast...
        let reply = c.unary_raw(JOIN_CHAT, frame(&chat("p", "one"))).await;
        assert_ended_with(&reply, "0");
        assert_eq!(victim_msgs.next_chat().await, chat("p", "one"));
        assert_eq!(sub.next_chat().await, chat("p", "one"));
        // ...then cancels.
        victim.send_reset(Reason::CANCEL);
        drop(victim_msgs);

        // 200 calls opened, answered with headers, then cancelled.
        for i in 0..200 {
            let (resp, mut stream) = c.call(JOIN_CHAT).await;
            let resp = within(SHORT, "response headers", resp)
                .await
                .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            assert_eq!(resp.status(), StatusCode::OK);
            stream.send_reset(Reason::CANCEL);
        }

        // The connection still serves calls, and broadcasts still flow.
        let reply = within(
            SHORT,
            "reply",
            c.unary_raw(JOIN_CHAT, frame(&chat("p", "two"))),
        )
        .await;
        assert_ended_with(&reply, "0");
        assert_eq!(
            reply.messages().len(),
            1,
            "only the sender's own call gets it"
        );
        assert_eq!(sub.next_chat().await, chat("p", "two"));
    });
}

/// a client that drops its TCP connection with open streams, one of
/// them mid-message, does not disturb anyone else.
#[test]
fn vanishing_client_does_not_disturb_others() {
    let addr = chat_server();
    run(10, async {
        let b = Client::connect(addr).await;
        let (resp, _sb) = b.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;

        for round in 0..3 {
            let gone = Client::connect(addr).await;
            let mut streams = Vec::new();
            for _ in 0..3 {
                let (resp, stream) = gone.call(JOIN_CHAT).await;
                streams.push((Messages::open(resp).await, stream));
            }
            // One stream is in the middle of a message.
            let half = frame(&chat("gone", "never finished"));
            streams[0].1.send_data(half.slice(..8), false).unwrap();
            // And one has received part of the broadcast traffic.
            let text = format!("before {round}");
            let reply = b.unary_raw(JOIN_CHAT, frame(&chat("b", &text))).await;
            assert_ended_with(&reply, "0");
            assert_eq!(streams[1].0.next_chat().await, chat("b", &text));
            assert_eq!(sub.next_chat().await, chat("b", &text));

            // Vanish: stop the connection task (closing the socket, no
            // GOAWAY, no RST_STREAM), then drop the handles.
            let Client { send, conn, .. } = gone;
            conn.cancel().await;
            drop((send, streams));

            let text = format!("after {round}");
            let reply = b.unary_raw(JOIN_CHAT, frame(&chat("b", &text))).await;
            assert_ended_with(&reply, "0");
            assert_eq!(sub.next_chat().await, chat("b", &text));
        }
        // New connections are still served.
        let c = Client::connect(addr).await;
        let reply = c.unary_raw(JOIN_CHAT, frame(&chat("c", "new"))).await;
        assert_ended_with(&reply, "0");
        assert_eq!(sub.next_chat().await, chat("c", "new"));
    });
}

/// X-2, §18 cancel_after_begin: calls cancelled right after their HEADERS,
/// before any answer, 200 of them in batches of 10 (h2 itself allows 20
/// resets of not-yet-accepted streams at once; more is Rapid Reset and gets
/// GOAWAY ENHANCE_YOUR_CALM), leave the connection and the server working.
#[test]
fn cancel_after_begin_in_batches() {
    let addr = chat_server();
    run(15, async {
        let sub_conn = Client::connect(addr).await;
        let (resp, _sub_stream) = sub_conn.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;
        let c = Client::connect(addr).await;
        for batch in 0..20 {
            for _ in 0..10 {
                let (_resp, mut stream) = c.call(JOIN_CHAT).await;
                stream.send_reset(Reason::CANCEL);
            }
            let text = format!("batch {batch}");
            let reply = within(
                SHORT,
                "reply",
                c.unary_raw(JOIN_CHAT, frame(&chat("p", &text))),
            )
            .await;
            assert_ended_with(&reply, "0");
            assert_eq!(reply.messages().len(), 1);
            assert_eq!(sub.next_chat().await, chat("p", &text));
        }
    });
}

// ---------------------------------------------------------------------------
// 13: slow consumers
// ---------------------------------------------------------------------------

/// Reads a stream's DATA without ever releasing window, then its trailers.
async fn drain_unreleased(body: &mut RecvStream) -> (Vec<u8>, Option<HeaderMap>) {
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        data.extend_from_slice(&chunk.expect("slow call's body"));
    }
    let trailers = body.trailers().await.expect("slow call's trailers");
    (data, trailers)
}

/// FC-2, §11: a JoinChat client with a 1 KiB window that never releases
/// it, while a publisher sends 500 messages (the server's per-call queue
/// limit is 8 KiB). Checks that the publisher's
/// own stream and a normal subscriber get every message in order, and
/// returns what the slow call received: its body and its trailers.
fn slow_consumer_scenario() -> (Vec<u8>, Option<HeaderMap>) {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        ..ServerConfig::default()
    };
    let addr = start(Chat::default(), config);
    run(20, async {
        let mut tiny = client::Builder::new();
        tiny.initial_window_size(1024);
        let slow = Client::connect_with(addr, &tiny).await;
        let (resp, _slow_send) = slow.call(JOIN_CHAT).await;
        let resp = within(SHORT, "headers", resp).await.expect("headers");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut slow_body = resp.into_body();

        let b = Client::connect(addr).await;
        let (resp, _sb) = b.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;

        let p = Client::connect(addr).await;
        let (resp, mut pub_stream) = p.call(JOIN_CHAT).await;
        let mut own = Messages::open(resp).await;

        // Lock-step, one message at a time, so the fast readers never have
        // more than one message queued (see
        // `burst_does_not_stall_a_fast_reader` for bursts).
        for i in 0..500 {
            let text = format!("{i:04} {}", "x".repeat(100));
            send_all(&mut pub_stream, frame(&chat("p", &text))).await;
            assert_eq!(
                own.next_chat().await.message,
                text,
                "publisher's own stream"
            );
            assert_eq!(sub.next_chat().await.message, text, "subscriber");
        }
        pub_stream.send_data(Bytes::new(), true).unwrap();
        let (rest, status) = within(SHORT, "publisher's trailers", own.finish()).await;
        assert!(rest.is_empty());
        assert_eq!(status, "0");

        let slow_end = within(
            SHORT,
            "the slow call's end",
            drain_unreleased(&mut slow_body),
        )
        .await;
        assert!(slow_end.0.len() <= 1024, "more than the window was sent");
        slow_end
    })
}

/// The slow call ends with RESOURCE_EXHAUSTED in its trailers.
#[test]
fn slow_consumer_is_ended_with_resource_exhausted() {
    let (_body, trailers) = slow_consumer_scenario();
    let trailers = trailers.expect("a trailers block");
    assert_eq!(
        header_str(&trailers, "grpc-status"),
        Some("8"),
        "{trailers:?}"
    );
}

/// F-4, X-3: the slow call's body before its trailers must hold whole
/// messages only; otherwise clients report INTERNAL ("stream ended inside a
/// message") instead of RESOURCE_EXHAUSTED.
#[test]

fn slow_consumer_trailers_follow_whole_messages() {
    let (body, trailers) = slow_consumer_scenario();
    assert!(trailers.is_some());
    let msgs = split_messages(&body);
    assert!(!msgs.is_empty());
}

/// A slow client's first message larger than any window it has given: the
/// server must split it, the client stops reading half-way, and the stall
/// finds a partly sent message. Returns the slow call's body stream, with
/// the publisher done. `grace` is the server's `stall_grace`.
async fn stalled_mid_message(addr: SocketAddr) -> RecvStream {
    let mut tiny = client::Builder::new();
    tiny.initial_window_size(1024);
    let slow = Client::connect_with(addr, &tiny).await;
    let (resp, slow_send) = slow.call(JOIN_CHAT).await;
    // Keep the connection and the request side open after we return.
    std::mem::forget(slow_send);
    std::mem::forget(slow);
    let resp = within(SHORT, "headers", resp).await.expect("headers");
    let slow_body = resp.into_body();
    let p = Client::connect(addr).await;
    let (resp, mut pub_stream) = p.call(JOIN_CHAT).await;
    let mut own = Messages::open(resp).await;
    let big = "B".repeat(3000);
    send_all(&mut pub_stream, frame(&chat("p", &big))).await;
    assert_eq!(own.next_chat().await.message, big);
    for i in 0..120 {
        let text = format!("{i:04} {}", "x".repeat(100));
        send_all(&mut pub_stream, frame(&chat("p", &text))).await;
        assert_eq!(own.next_chat().await.message, text);
    }
    slow_body
}

/// cut off in the middle of a message and never reading again, a
/// slow client's stream is reset with CANCEL once the grace period is over
/// (trailers after half a message would read as a corrupt stream).
#[test]
fn slow_consumer_cut_mid_message_is_reset_after_grace() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        stall_grace: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let addr = start(Chat::default(), config);
    run(20, async {
        let mut body = stalled_mid_message(addr).await;
        let mut received = 0;
        let reason = within(SHORT, "the reset", async {
            loop {
                match body.data().await {
                    Some(Ok(chunk)) => received += chunk.len(),
                    Some(Err(e)) => return e.reason(),
                    None => return None,
                }
            }
        })
        .await;
        assert!(received <= 1024, "more than the window was sent");
        assert_eq!(reason, Some(Reason::CANCEL));
    });
}

/// The same cut, but the client reads again within the grace period: it
/// gets the rest of the message, then RESOURCE_EXHAUSTED, and no more.
#[test]
fn slow_consumer_cut_mid_message_gets_the_rest_then_resource_exhausted() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 8 * 1024,
        stall_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let addr = start(Chat::default(), config);
    run(20, async {
        let mut body = stalled_mid_message(addr).await;
        let mut data = Vec::new();
        within(SHORT, "the rest of the body", async {
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("body");
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
        })
        .await;
        let trailers = within(SHORT, "trailers", body.trailers())
            .await
            .expect("trailers")
            .expect("a trailers block");
        assert_eq!(header_str(&trailers, "grpc-status"), Some("8"));
        let msgs = split_messages(&data);
        assert_eq!(msgs.len(), 1, "exactly the message that was in flight");
        let first = ChatMessage::decode(msgs[0].clone()).expect("whole message");
        assert_eq!(first.message, "B".repeat(3000));
    });
}

/// §11 slow-consumer policy: the per-call limit is on bytes left waiting
/// for a client's window. A subscriber with a 16 MiB window that reads
/// promptly has nothing waiting, so one DATA frame carrying 20 small chat
/// messages (about 2.4 KiB in all, against a 1 KiB limit) must reach it.
#[test]

fn burst_does_not_stall_a_fast_reader() {
    let config = ServerConfig {
        max_queued_bytes_per_call: 1024,
        ..ServerConfig::default()
    };
    let addr = start(Chat::default(), config);
    run(10, async {
        let mut wide = client::Builder::new();
        wide.initial_window_size(16 * 1024 * 1024)
            .initial_connection_window_size(32 * 1024 * 1024);
        let b = Client::connect_with(addr, &wide).await;
        let (resp, _sb) = b.call(JOIN_CHAT).await;
        let mut sub = Messages::open(resp).await;

        let texts: Vec<String> = (0..20)
            .map(|i| format!("{i:02} {}", "z".repeat(100)))
            .collect();
        let mut wire = BytesMut::new();
        for t in &texts {
            wire.extend_from_slice(&frame(&chat("p", t)));
        }
        let p = Client::connect_with(addr, &wide).await;
        let reply = within(
            SHORT,
            "publisher's reply",
            p.unary_raw(JOIN_CHAT, wire.freeze()),
        )
        .await;
        for t in &texts {
            assert_eq!(&sub.next_chat().await.message, t, "subscriber");
        }
        assert_ended_with(&reply, "0");
        assert_eq!(
            reply.messages().len(),
            texts.len(),
            "publisher's own stream"
        );
    });
}

/// FC-2: with a core queue of one event every connection runs into
/// backpressure at once and stops reading, with DATA frames already read
/// and left in h2's stream buffers. Once the core catches up they must still
/// reach it, though the socket brings nothing new: every message on every
/// stream comes back.
#[test]
fn a_full_core_queue_slows_clients_but_loses_nothing() {
    let config = ServerConfig {
        core_queue: 1,
        ..ServerConfig::default()
    };
    let addr = start(Echo::default(), config);
    run(30, async {
        // A wide window: h2 budgets small DATA frames by it, and this client
        // gets over a thousand small echoes at once.
        let mut wide = client::Builder::new();
        wide.initial_window_size(16 * 1024 * 1024)
            .initial_connection_window_size(32 * 1024 * 1024);
        let c = Client::connect_with(addr, &wide).await;
        let mut calls = Vec::new();
        for s in 0..3u8 {
            let (resp, mut stream) = c.call(ECHO).await;
            let payloads: Vec<Vec<u8>> = (0..400)
                .map(|i| pattern(1 + i % 40, s.wrapping_mul(7).wrapping_add(i as u8)))
                .collect();
            for p in &payloads {
                // One DATA frame each: many frames per read of the socket.
                stream
                    .send_data(codec::encode_raw(p).unwrap(), false)
                    .unwrap();
            }
            stream.send_data(Bytes::new(), true).unwrap();
            // Read every response as it comes: the client's own h2 closes
            // a connection on which many small frames are left unread.
            calls.push((smol::spawn(read_reply(resp)), stream, payloads));
        }
        for (reply, _stream, payloads) in calls {
            let reply = within(Duration::from_secs(20), "reply", reply).await;
            assert_ended_with(&reply, "0");
            let msgs = reply.messages();
            assert_eq!(msgs.len(), payloads.len());
            for (got, want) in msgs.iter().zip(&payloads) {
                assert_eq!(&got[..], &want[..]);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// 14: concurrency limit
// ---------------------------------------------------------------------------

/// T-4: the server advertises SETTINGS_MAX_CONCURRENT_STREAMS.
#[test]
fn server_advertises_max_concurrent_streams() {
    let addr = chat_server();
    run(10, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = client::handshake(tcp.compat()).await.unwrap();
        let mut conn = std::pin::pin!(conn);
        // Drive the connection here until a call has completed, so the
        // server's SETTINGS have been received.
        let call = async {
            let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
            let mut send = send.ready().await.unwrap();
            let (resp, _s) = send.send_request(req, true).unwrap();
            read_reply(resp).await
        };
        let reply = future::or(async { Some(call.await) }, async {
            let _ = conn.as_mut().await;
            None
        })
        .await
        .expect("connection ended early");
        check_zero_message_ok(&reply);
        assert_eq!(
            conn.max_concurrent_send_streams(),
            ServerConfig::default().max_concurrent_streams as usize
        );
    });
}

/// T-4, T-6: a client at the stream limit that cancels one call and opens
/// another right away (the RST_STREAM and the new HEADERS in one write) is
/// within the advertised limit, so the new call must be served.
#[test]

fn cancel_and_reopen_at_the_stream_limit() {
    let addr = chat_server();
    let limit = ServerConfig::default().max_concurrent_streams as usize;
    run(15, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = client::handshake(tcp.compat()).await.unwrap();
        let mut conn = std::pin::pin!(conn);
        // The connection is driven by this task only, so frames queued
        // without an await in between go out in one write.
        let test = async {
            let mut open = Vec::new();
            for _ in 0..limit {
                let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
                let mut s = send.clone().ready().await.unwrap();
                open.push(s.send_request(req, false).unwrap());
            }
            let mut calls = Vec::new();
            for (resp, stream) in open {
                let resp = within(SHORT, "headers", resp).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert!(
                    !resp.body().is_end_stream(),
                    "refused: {:?}",
                    resp.headers()
                );
                calls.push((resp.into_body(), stream));
            }
            for round in 0..20 {
                let (_body, mut stream) = calls.remove(0);
                stream.send_reset(Reason::CANCEL);
                let req = grpc_request(addr, JOIN_CHAT).body(()).unwrap();
                let mut s = send.clone().ready().await.unwrap();
                let (resp, stream) = s.send_request(req, false).unwrap();
                let resp = within(SHORT, "headers", resp).await.unwrap();
                assert!(
                    !resp.body().is_end_stream(),
                    "round {round}: the new call was refused: {:?}",
                    resp.headers()
                );
                calls.push((resp.into_body(), stream));
            }
        };
        future::or(test, async {
            let r = conn.as_mut().await;
            panic!("connection ended: {r:?}");
        })
        .await;
    });
}

// ---------------------------------------------------------------------------
// 15: header size
// ---------------------------------------------------------------------------

/// T-4, M-6: request headers over the 8 KiB SETTINGS_MAX_HEADER_LIST_SIZE
/// get HTTP 431 (or a refused stream); headers under it are served; the
/// connection goes on serving.
#[test]
fn oversized_request_headers_get_431() {
    let addr = chat_server();
    run(10, async {
        let c = Client::connect(addr).await;
        // Under the limit: served.
        let req = c
            .request(JOIN_CHAT)
            .header("x-medium", "m".repeat(6 * 1024))
            .body(())
            .unwrap();
        let (resp, _s) = c.start(req, true).await;
        check_zero_message_ok(&within(SHORT, "reply", read_reply(resp)).await);

        for size in [9 * 1024, 12 * 1024] {
            let req = c
                .request(JOIN_CHAT)
                .header("x-big", "b".repeat(size))
                .body(())
                .unwrap();
            let (resp, _s) = c.start(req, true).await;
            match within(SHORT, "reply", resp).await {
                Ok(resp) => {
                    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                    assert!(resp.body().is_end_stream());
                }
                Err(e) => assert_eq!(e.reason(), Some(Reason::REFUSED_STREAM), "{e}"),
            }
            // The next call on the same connection is served.
            let reply = within(
                SHORT,
                "reply",
                c.unary_raw(JOIN_CHAT, frame(&chat("h", "after big headers"))),
            )
            .await;
            assert_ended_with(&reply, "0");
            assert_eq!(reply.messages().len(), 1);
        }
    });
}

/// Write coalescing must not slow a closed-loop client: with a flush
/// interval far longer than the test, a client whose connection was woken a
/// moment ago still gets the answer to what it has just sent at once. The
/// answers are released by the test (durable mode: the echo waits for the
/// store's acknowledgement), so the connection's task is parked, with its
/// wake-up left to the core task, when each one is routed.
#[test]
fn write_coalescing_never_holds_a_closed_loop_answer() {
    use chat_sansio::chat::{ChatConfig, ChatEvent, ChatInput};
    let config = ServerConfig {
        flush_interval: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let handler = Chat::new(ChatConfig {
        durable: true,
        ..ChatConfig::default()
    });
    let (persist_tx, persist_rx) = smol::channel::unbounded();
    let (addr, server) = start_with(handler, config, move |ev| {
        if let ChatEvent::Persist { epoch, id, .. } = ev {
            let _ = persist_tx.try_send((epoch, id));
        }
    });
    let inputs = server.inputs();
    run(20, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        // Sends one message and releases its echo once the connection's
        // task has long been parked.
        let post = |stream: &mut SendStream<Bytes>, text: String| {
            stream.send_data(frame(&chat("u", &text)), false).unwrap();
            let (persist_rx, inputs) = (persist_rx.clone(), inputs.clone());
            async move {
                let (epoch, id) = within(SHORT, "a persist request", persist_rx.recv())
                    .await
                    .unwrap();
                Timer::after(Duration::from_millis(100)).await;
                assert!(inputs.send(ChatInput::Durable { epoch, up_to: id }).await);
                text
            }
        };
        let first = post(&mut stream, "first".into()).await;
        let mut msgs = Messages::open(resp).await;
        assert_eq!(msgs.next_chat().await.message, first);
        // The connection was woken just now: without its client's send
        // counting, these would wait for the tick, 60 s away (next_chat
        // allows 3 s).
        for i in 0..3 {
            let text = post(&mut stream, format!("message {i}")).await;
            assert_eq!(msgs.next_chat().await.message, text);
        }
    });
}

// ---------------------------------------------------------------------------
// Our client against a server that ends calls first
// ---------------------------------------------------------------------------

/// HC-3 seen from the client: a unary-style method answers and ends before
/// the client half-closes, and the server then resets the request side
/// with NO_ERROR. Half-closing afterwards is not an error (there is nothing
/// left to close), and a send says the call has ended, never INTERNAL.
#[test]
fn our_client_may_half_close_a_call_the_server_has_ended() {
    let addr = echo_server();
    run(10, async {
        let channel = transport_h2::Channel::connect(&addr.to_string())
            .await
            .expect("connect");
        let options = transport_h2::CallOptions::default;
        let mut ended = channel.call(ECHO_UNARY, options()).await.expect("call");
        let msg = chat("u", "only");
        ended.sender.send(&msg).await.expect("send");
        let echo: ChatMessage = ended.receiver.message().await.expect("ok").expect("echo");
        assert_eq!(echo, msg);
        assert!(ended
            .receiver
            .message::<ChatMessage>()
            .await
            .expect("OK")
            .is_none());
        // A second round trip on the connection: the server wrote its
        // RST_STREAM for the first call before this answer, so by now the
        // client's h2 has taken the first stream out of service.
        let mut other = channel.call(ECHO_UNARY, options()).await.expect("call");
        other.sender.send(&msg).await.expect("send");
        assert!(other
            .receiver
            .message::<ChatMessage>()
            .await
            .expect("ok")
            .is_some());

        ended.sender.close().expect("half-close after the end");
        ended.sender.close().expect("a second half-close");
        let err = ended
            .sender
            .send(&msg)
            .await
            .expect_err("send after the end");
        assert_eq!(err.code, chat_sansio::Code::FailedPrecondition, "{err:?}");
        other.sender.close().expect("half-close after the end");
    });
}
