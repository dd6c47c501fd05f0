//! A gRPC client over HTTP/2: connect, open calls, send and receive
//! messages. It serves the CLI client, the tests and the benchmark.
//!
//! Response handling (status from trailers, Trailers-Only, HTTP status
//! mapping, resets) is the core's [`ResponseReader`]; this module only moves
//! bytes.

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::inbound::Meter;
use crate::io::Io;
use crate::keepalive::Keepalive;
use async_io::Timer;
use bytes::Bytes;
use chat_sansio::client::{status_from_reset, ResponseReader};
use chat_sansio::compression::{compress_frame, Encoding, ACCEPT_ENCODING};
use chat_sansio::limits::DEFAULT_MAX_MESSAGE_SIZE;
use chat_sansio::metadata::Metadata;
use chat_sansio::timeout::encode_timeout;
use chat_sansio::{codec, Code, Status};
use futures_lite::{future, AsyncRead, AsyncWrite};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::{Method, Request};
use smol::net::TcpStream;
use smol::Task;

use crate::headers;

/// The user agent we send (PROTOCOL-HTTP2.md "User Agents").
const USER_AGENT: &str = concat!("grpc-rust-chat-h2/", env!("CARGO_PKG_VERSION"));

/// An HTTP/2 connection to a gRPC server. Cheap to clone; the connection
/// closes when the last clone is dropped.
#[derive(Clone)]
pub struct Channel {
    send_request: SendRequest<Bytes>,
    /// `http` or `https`, for `:scheme`.
    scheme: &'static str,
    authority: Arc<str>,
    _driver: Arc<Task<()>>,
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Request metadata, as (lower-case key, value) pairs.
    pub metadata: Vec<(String, String)>,
    /// The call's deadline, sent as `grpc-timeout` and enforced locally.
    pub timeout: Option<Duration>,
    /// Compress request messages with this encoding (sent as
    /// `grpc-encoding`); each goes plain if compressing does not make it
    /// smaller. `None`: every message plain. Responses are inflated
    /// whatever this says, per the response's `grpc-encoding`.
    pub compression: Option<Encoding>,
}

impl CallOptions {
    /// Adds a metadata pair.
    pub fn metadata(mut self, key: &str, value: &str) -> CallOptions {
        self.metadata.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses request messages with `encoding`.
    pub fn compression(mut self, encoding: Encoding) -> CallOptions {
        self.compression = Some(encoding);
        self
    }
}

/// Per-connection options.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// Client keepalive (gRFC A8 `KEEPALIVE_TIME`): after this long without
    /// reading anything from the server, send an HTTP/2 PING. `None` (the
    /// default, as in gRPC's libraries) sends none. Servers may limit how
    /// often a client pings: grpc-go's answers pings more often than every
    /// 5 minutes on a connection it has sent nothing on with GOAWAY
    /// `too_many_pings`; ours has no such limit.
    pub keepalive_time: Option<Duration>,
    /// How long a PING may go unanswered, with nothing read meanwhile,
    /// before the connection is taken for dead: it is closed and its calls
    /// end UNAVAILABLE (gRFC A8 `KEEPALIVE_TIMEOUT`, default 20 s).
    pub keepalive_timeout: Duration,
}

impl Default for ChannelOptions {
    fn default() -> ChannelOptions {
        ChannelOptions {
            keepalive_time: None,
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::new(Code::Unavailable, e.to_string())
}

/// The status for an h2 error on a call.
fn status_from_h2(e: &h2::Error) -> Status {
    match e.reason() {
        Some(reason) if e.is_reset() => status_from_reset(reason.into()),
        _ if e.is_go_away() || e.is_io() => unavailable(e),
        _ => Status::new(Code::Internal, e.to_string()),
    }
}

impl Channel {
    /// Connects over TCP to `addr` (`host:port`, or `http://host:port`).
    pub async fn connect(addr: &str) -> io::Result<Channel> {
        Channel::connect_with(addr, ChannelOptions::default()).await
    }

    /// [`Channel::connect`] with `options`.
    pub async fn connect_with(addr: &str, options: ChannelOptions) -> io::Result<Channel> {
        let authority = addr.trim_start_matches("http://").trim_end_matches('/');
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Channel::with_io_options(stream, authority, options).await
    }

    /// Connects over TCP to `addr` (`host:port`) and then TLS, checking
    /// the server's certificate against `config`'s roots for
    /// `server_name` (a DNS name or an IP address), with ALPN h2.
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> io::Result<Channel> {
        Channel::connect_tls_with(addr, server_name, config, ChannelOptions::default()).await
    }

    /// [`Channel::connect_tls`] with `options`.
    #[cfg(feature = "tls")]
    pub async fn connect_tls_with(
        addr: &str,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        options: ChannelOptions,
    ) -> io::Result<Channel> {
        let authority = addr.trim_start_matches("https://").trim_end_matches('/');
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let tls = crate::tls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        crate::tls::check_alpn(tls.get_ref().1.alpn_protocol())?;
        let mut channel = Channel::with_io_options(tls, authority, options).await?;
        channel.scheme = "https";
        Ok(channel)
    }

    /// Runs HTTP/2 over any byte stream; `authority` names the server in
    /// `:authority`.
    pub async fn with_io<T>(io: T, authority: &str) -> io::Result<Channel>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Channel::with_io_options(io, authority, ChannelOptions::default()).await
    }

    /// [`Channel::with_io`] with `options`.
    pub async fn with_io_options<T>(
        io: T,
        authority: &str,
        options: ChannelOptions,
    ) -> io::Result<Channel>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let meter = Arc::new(Meter::default());
        let (send_request, mut connection) = h2::client::Builder::new()
            .initial_window_size(1024 * 1024)
            .initial_connection_window_size(2 * 1024 * 1024)
            .max_header_list_size(64 * 1024)
            .handshake::<_, Bytes>(Io::new(io, meter.clone()))
            .await
            .map_err(io::Error::other)?;
        let mut keepalive = match (options.keepalive_time, connection.ping_pong()) {
            (Some(time), Some(pings)) => {
                Some(Keepalive::new(pings, time, options.keepalive_timeout))
            }
            _ => None,
        };
        let driver = smol::spawn(async move {
            // The connection runs until it ends, or until a ping goes
            // unanswered: then it is dropped, and its calls end.
            let dead = poll_fn(|cx| match &mut keepalive {
                Some(k) => k.poll(cx, meter.reads()),
                None => Poll::Pending,
            });
            let ended = async { connection.await.err().map(|e| e.to_string()) };
            let dead = async {
                dead.await;
                Some("the server did not answer a keepalive ping".to_owned())
            };
            if let Some(why) = future::or(ended, dead).await {
                tracing::debug!("client connection ended: {why}");
            }
        });
        Ok(Channel {
            send_request,
            scheme: "http",
            authority: authority.into(),
            _driver: Arc::new(driver),
        })
    }

    /// Opens a call to `path` (`/package.Service/Method`).
    pub async fn call(&self, path: &str, options: CallOptions) -> Result<Call, Status> {
        let mut req = Request::builder()
            .method(Method::POST)
            // Absolute URI so h2 sends :scheme and :authority (C-core
            // servers refuse requests without them: `http_server_filter.cc`).
            .uri(format!("{}://{}{}", self.scheme, self.authority, path));
        if let Some(t) = options.timeout {
            req = req.header("grpc-timeout", encode_timeout(t));
        }
        req = req
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", USER_AGENT)
            // What responses may use (GRPC-CONFORMANCE Z-C5).
            .header("grpc-accept-encoding", ACCEPT_ENCODING);
        if let Some(enc) = options.compression {
            req = req.header("grpc-encoding", enc.name());
        }
        for (k, v) in &options.metadata {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(())
            .map_err(|e| Status::new(Code::Internal, format!("bad request metadata: {e}")))?;
        // Wait for a stream slot: respects MAX_CONCURRENT_STREAMS (RFC 9113
        // §5.1.2; h2 `src/client.rs`: never send before `ready`).
        let mut send_request = self
            .send_request
            .clone()
            .ready()
            .await
            .map_err(unavailable)?;
        let (response, stream) = send_request
            .send_request(req, false)
            .map_err(|e| status_from_h2(&e))?;
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let stream = Arc::new(Mutex::new(stream));
        if let Some(deadline) = deadline {
            // Cancel on the wire when the deadline passes, whether or not
            // anyone is reading or sending (PROTOCOL-HTTP2.md, "Timeout"). Holds only a weak
            // reference, so a finished call is not kept alive.
            let weak = Arc::downgrade(&stream);
            smol::spawn(cancel_at(deadline, weak)).detach();
        }
        Ok(Call {
            sender: CallSender {
                stream,
                deadline,
                compression: options.compression,
            },
            receiver: CallReceiver {
                state: RecvState::Waiting(response),
                reader: ResponseReader::new(DEFAULT_MAX_MESSAGE_SIZE),
                deadline,
                status: None,
                headers: None,
                trailers: None,
            },
        })
    }
}

/// An open call: its sending and its receiving half.
pub struct Call {
    /// Sends request messages.
    pub sender: CallSender,
    /// Receives response messages and the final status.
    pub receiver: CallReceiver,
}

impl Call {
    /// The two halves, to use from different tasks.
    pub fn split(self) -> (CallSender, CallReceiver) {
        (self.sender, self.receiver)
    }
}

async fn cancel_at(deadline: Instant, stream: Weak<Mutex<SendStream<Bytes>>>) {
    Timer::at(deadline).await;
    if let Some(stream) = stream.upgrade() {
        lock(&stream).send_reset(h2::Reason::CANCEL);
    }
}

fn lock(stream: &Mutex<SendStream<Bytes>>) -> MutexGuard<'_, SendStream<Bytes>> {
    stream.lock().unwrap_or_else(PoisonError::into_inner)
}

fn deadline_exceeded() -> Status {
    Status::new(Code::DeadlineExceeded, "deadline exceeded")
}

/// Whether an error from `send_data` means only that this side may no
/// longer send: h2 reports a stream the server has already ended (trailers,
/// then RST_STREAM NO_ERROR: PROTOCOL-HTTP2.md, "Early Server Closure") or a second half-close as a user error,
/// which is neither a reset, a GOAWAY nor an I/O failure.
fn sending_has_ended(e: &h2::Error) -> bool {
    !(e.is_reset() || e.is_go_away() || e.is_io())
}

/// What a send on an ended call returns: the call's own outcome is on the
/// receiver, as with grpc-go's `SendMsg` returning `io.EOF`.
fn call_has_ended() -> Status {
    Status::new(
        Code::FailedPrecondition,
        "the call has ended; its status is on the receiver",
    )
}

/// The sending half of a call.
pub struct CallSender {
    stream: Arc<Mutex<SendStream<Bytes>>>,
    deadline: Option<Instant>,
    compression: Option<Encoding>,
}

impl CallSender {
    fn check_deadline(&self) -> Result<(), Status> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            lock(&self.stream).send_reset(h2::Reason::CANCEL);
            return Err(deadline_exceeded());
        }
        Ok(())
    }

    /// Encodes and sends one message, waiting for flow-control window;
    /// compressed if the call has an encoding
    /// ([`CallOptions::compression`]).
    pub async fn send<M: prost::Message>(&mut self, msg: &M) -> Result<(), Status> {
        self.send_with(msg, true).await
    }

    /// [`send`](Self::send), choosing for this message whether to compress
    /// it with the call's encoding: the Compressed-Flag is per message
    /// (PROTOCOL-HTTP2.md "Compressed-Flag"), and the interop tests send
    /// plain messages on compressed calls.
    pub async fn send_with<M: prost::Message>(
        &mut self,
        msg: &M,
        compress: bool,
    ) -> Result<(), Status> {
        let mut frame =
            codec::encode(msg).map_err(|e| Status::new(Code::Internal, e.to_string()))?;
        if let Some(enc) = self.compression.filter(|_| compress) {
            frame = compress_frame(enc, &frame).unwrap_or(frame);
        }
        self.send_frame(frame).await
    }

    /// Sends raw bytes as DATA, as they are: a framed message, or anything
    /// else (tests use this to send malformed input).
    pub async fn send_frame(&mut self, mut frame: Bytes) -> Result<(), Status> {
        while !frame.is_empty() {
            self.check_deadline()?;
            lock(&self.stream).reserve_capacity(frame.len());
            let capacity = poll_fn(|cx| {
                let mut stream = lock(&self.stream);
                let now = stream.capacity();
                if now > 0 {
                    return Poll::Ready(Ok(now));
                }
                match stream.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => Poll::Ready(Ok(stream.capacity())),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Err(status_from_h2(&e))),
                    Poll::Ready(None) => Poll::Ready(Err(call_has_ended())),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
            .map_err(|e| {
                if self.check_deadline().is_err() {
                    deadline_exceeded()
                } else {
                    e
                }
            })?;
            if capacity == 0 {
                continue;
            }
            self.check_deadline()?;
            let chunk = frame.split_to(capacity.min(frame.len()));
            lock(&self.stream).send_data(chunk, false).map_err(|e| {
                if sending_has_ended(&e) {
                    call_has_ended()
                } else {
                    status_from_h2(&e)
                }
            })?;
        }
        Ok(())
    }

    /// Half-closes: the server will get no more messages (an empty DATA
    /// frame with END_STREAM, as PROTOCOL-HTTP2.md requires).
    ///
    /// Closing a call the server has already ended, or closing twice, is
    /// not an error: there is nothing left to close, and the call's outcome
    /// is on the receiver. A server may end a call before the client
    /// half-closes (a unary answer), so this races with the response.
    pub fn close(&mut self) -> Result<(), Status> {
        self.check_deadline()?;
        match lock(&self.stream).send_data(Bytes::new(), true) {
            Err(e) if !sending_has_ended(&e) => Err(status_from_h2(&e)),
            _ => Ok(()),
        }
    }

    /// Cancels the call (RST_STREAM CANCEL; PROTOCOL-HTTP2.md, "Errors").
    pub fn cancel(&mut self) {
        lock(&self.stream).send_reset(h2::Reason::CANCEL);
    }
}

enum RecvState {
    Waiting(ResponseFuture),
    Body(RecvStream),
    Done,
}

/// The receiving half of a call.
pub struct CallReceiver {
    state: RecvState,
    reader: ResponseReader,
    deadline: Option<Instant>,
    status: Option<Status>,
    /// The response headers, once they have arrived.
    headers: Option<Metadata>,
    /// The trailers (or the Trailers-Only block), once they have arrived.
    trailers: Option<Metadata>,
}

impl CallReceiver {
    /// The response headers (initial metadata, protocol fields included),
    /// once they have arrived; a Trailers-Only response has them too.
    pub fn headers(&self) -> Option<&Metadata> {
        self.headers.as_ref()
    }

    /// The trailers (trailing metadata, `grpc-status` included), once the
    /// call has ended with them; for a Trailers-Only response, its single
    /// block.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }

    /// Whether the message last returned arrived compressed.
    pub fn last_was_compressed(&self) -> bool {
        self.reader.last_was_compressed()
    }

    /// The next response message, decoded; `Ok(None)` when the call ended
    /// with OK, `Err` with the status when it ended otherwise.
    pub async fn message<M: prost::Message + Default>(&mut self) -> Result<Option<M>, Status> {
        match self.raw_message().await? {
            Some(bytes) => M::decode(bytes)
                .map(Some)
                .map_err(|e| Status::new(Code::Internal, format!("malformed response: {e}"))),
            None => Ok(None),
        }
    }

    /// The next response message as bytes; see [`CallReceiver::message`].
    pub async fn raw_message(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(status) = &self.status {
                return if status.is_ok() {
                    Ok(None)
                } else {
                    Err(status.clone())
                };
            }
            match self.reader.next_message() {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => {}
                Err(status) => {
                    self.end(status);
                    continue;
                }
            }
            match self.deadline {
                Some(deadline) => {
                    let timer = async {
                        Timer::at(deadline).await;
                        false
                    };
                    let stepped = future::or(
                        async {
                            self.step().await;
                            true
                        },
                        timer,
                    )
                    .await;
                    if !stepped || (Instant::now() >= deadline && self.ended_by_reset()) {
                        // Generated locally, never from trailers (PROTOCOL-HTTP2.md,
                        // "Timeout"); a
                        // CANCELLED after the deadline is reported as
                        // DEADLINE_EXCEEDED too.
                        self.status = None;
                        self.end(deadline_exceeded());
                    }
                }
                None => self.step().await,
            }
        }
    }

    /// The final status, once the call has ended.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    fn ended_by_reset(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.code == Code::Cancelled && s.message.starts_with("stream reset"))
    }

    fn end(&mut self, status: Status) {
        self.status.get_or_insert(status);
        self.state = RecvState::Done;
    }

    /// Waits for the next event from h2 and feeds it to the reader.
    async fn step(&mut self) {
        match &mut self.state {
            RecvState::Waiting(response) => match response.await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let md = headers::to_metadata(&parts.headers);
                    let end = self
                        .reader
                        .headers(parts.status.as_u16(), &md, body.is_end_stream());
                    if end.is_some() {
                        self.trailers = Some(md.clone());
                    }
                    self.headers = Some(md);
                    match end {
                        Some(status) => self.end(status),
                        None => self.state = RecvState::Body(body),
                    }
                }
                Err(e) => self.end(status_from_h2(&e)),
            },
            RecvState::Body(body) => match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.reader.data(&chunk);
                }
                Some(Err(e)) => self.end(status_from_h2(&e)),
                None => {
                    let status = match body.trailers().await {
                        Ok(Some(t)) => {
                            let md = headers::to_metadata(&t);
                            let status = self.reader.trailers(&md);
                            self.trailers = Some(md);
                            status
                        }
                        Ok(None) => self.reader.ended_without_trailers(),
                        Err(e) => status_from_h2(&e),
                    };
                    self.end(status);
                }
            },
            RecvState::Done => {}
        }
    }
}
