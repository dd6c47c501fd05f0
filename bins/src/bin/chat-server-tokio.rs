//! The chat core embedded in a different runtime: tokio, with h2 used
//! directly. No smol and no `transport-h2` here; this is what an application
//! that already runs on tokio writes to host `chat_sansio::server::Server`.
//! (`transport-h2` does the same job more thoroughly: bounded queues, slow
//! consumers, window-aware sends.)
//!
//! The embedding contract, as it shows here:
//! - one task owns the core; every event reaches it through one channel, in
//!   order, with the current time (`core_loop`);
//! - after each batch of events it drains `poll_output()` completely and
//!   routes each output to the call's writer, in order, multicasts turned
//!   into one message per member by `Expand`;
//! - it sleeps until `poll_timeout()` and then calls `handle_timeout`;
//! - connections report opens, DATA, half-closes, resets and disconnects;
//! - the core's engine requests go to an engine: in memory
//!   (`chat_engine::Engine`), answered in the same turn; durable
//!   (`chat_engine::Writer`), whose thread's answers come back through the
//!   same channel as everything else (`Event::Input`), with tokio's
//!   `blocking_send`;
//! - `Output::WhenDrained` travels down the call's write queue behind what
//!   was queued before it, and comes back as `Event::Drained` once the
//!   writer has handed all of it to h2 within the stream's window.
//!
//! Durable by default, as `chat-server` is: history and login records live
//! in `<data-dir>/chat.db` (default retention), and a message is delivered
//! only once it is on disk. `--memory` keeps everything in memory.

use std::collections::HashMap;
use std::future::poll_fn;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chat_bins::console::Console;
use chat_bins::engines::Log;
use chat_bins::{config, say};
use chat_engine::memory::MemoryLog;
use chat_engine::sqlite::{NewDatabase, SqliteStore};
use chat_engine::{start_writer, Engine, Retention, Writer};
use chat_sansio::chat::policy::Policy;
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent, ChatInput, RateLimits};
use chat_sansio::compression::Encoding;
use chat_sansio::metadata::{wire_value, Metadata};
use chat_sansio::server::{CallId, ConnId, Expand, Output, RequestHead, Server, RESPONSE_HEADERS};
use chat_sansio::{Status, Time};
use clap::Parser;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Serve the chat on tokio (an example of embedding the core).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Users and room permissions (TOML), as for chat-server.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the database (chat.db: history and login records) is kept, as
    /// for chat-server.
    #[arg(long, default_value = "chat-data")]
    data_dir: PathBuf,
    /// Make a new chat.db even where files show one was, as for
    /// chat-server.
    #[arg(long)]
    allow_new_database: bool,
    /// Keep nothing on disk: history lives in memory only and is lost on
    /// restart, and messages are delivered without waiting for a disk.
    #[arg(long)]
    memory: bool,
    /// Messages a second each user and each connection may post (0: no
    /// limit), as for chat-server.
    #[arg(long, default_value_t = RateLimits::default().messages_per_second)]
    messages_per_second: u32,
    /// JoinChatRoom requests a second each connection may make (0: no
    /// limit), as for chat-server.
    #[arg(long, default_value_t = RateLimits::default().joins_per_second)]
    joins_per_second: u32,
}

/// What a call's writer task is told to do.
enum Write {
    /// Response headers, with `grpc-encoding` if the call compresses, and
    /// the handler's initial metadata.
    Headers(Option<Encoding>, Metadata),
    Message(Bytes),
    /// The status, the HTTP status of a Trailers-Only answer, and the
    /// handler's trailing metadata.
    End(Status, Option<u16>, Metadata),
    /// Tell the core once everything before this is written.
    Drained,
}

/// Everything the core task hears about.
enum Event {
    Connect(ConnId, String),
    Disconnect(ConnId),
    Open(ConnId, CallId, RequestHead, mpsc::UnboundedSender<Write>),
    Data(CallId, Bytes),
    End(CallId),
    Reset(CallId),
    /// A call's writer has written everything before a `Write::Drained`.
    Drained(CallId),
    /// From the store's writer thread.
    Input(ChatInput),
}

/// The core's clock: monotonic, anchored to the wall clock once.
struct Clock(Instant, u64);

impl Clock {
    fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock(Instant::now(), unix.as_micros() as u64)
    }
    fn now(&self) -> Time {
        Time::from_micros(self.1) + self.0.elapsed()
    }
    fn instant(&self, t: Time) -> Instant {
        self.0 + t.saturating_since(Time::from_micros(self.1))
    }
}

async fn core_loop(mut core: Server<Chat>, mut events: mpsc::Receiver<Event>, mut log: Log) {
    let clock = Clock::new();
    let mut writers: HashMap<CallId, mpsc::UnboundedSender<Write>> = HashMap::new();
    let mut expand = Expand::default();
    let mut console = Console::new();
    let mut expanded = std::collections::VecDeque::new();
    loop {
        let wake = core.poll_timeout().map(|t| clock.instant(t));
        let event = tokio::select! {
            e = events.recv() => match e { Some(e) => Some(e), None => return },
            _ = sleep_until(wake) => None,
        };
        let now = clock.now();
        match event {
            Some(Event::Connect(conn, peer)) => core.handle_connect(now, conn, Some(peer)),
            Some(Event::Disconnect(conn)) => core.handle_disconnect(now, conn),
            Some(Event::Open(conn, call, head, writer)) => {
                writers.insert(call, writer);
                core.handle_open(now, conn, call, head);
            }
            Some(Event::Data(call, chunk)) => core.handle_data(now, call, &chunk),
            Some(Event::End(call)) => core.handle_end(now, call),
            Some(Event::Reset(call)) => {
                writers.remove(&call);
                core.handle_reset(now, call);
            }
            Some(Event::Drained(call)) => core.handle_drained(now, call),
            Some(Event::Input(input)) => core.handle_input(now, input),
            None => core.handle_timeout(now),
        }
        // Answers ready at once (the memory engine's) go back in this turn.
        let mut answers = Vec::new();
        loop {
            for input in answers.drain(..) {
                core.handle_input(now, input);
            }
            while let Some(output) = core.poll_output() {
                expand.apply(output, &mut expanded);
            }
            route(&mut expanded, &mut writers, &mut answers, |e| {
                log.on_event(&mut console, e)
            });
            if answers.is_empty() {
                break;
            }
        }
    }
}

/// Sends each output to its call's writer; engine requests to `serve`,
/// collecting the answers it has at once.
fn route(
    expanded: &mut std::collections::VecDeque<Output<ChatEvent>>,
    writers: &mut HashMap<CallId, mpsc::UnboundedSender<Write>>,
    answers: &mut Vec<ChatInput>,
    mut serve: impl FnMut(ChatEvent) -> Option<ChatInput>,
) {
    while let Some(output) = expanded.pop_front() {
        let (call, write) = match output {
            Output::Event(event) => {
                answers.extend(serve(event));
                continue;
            }
            Output::WhenDrained { call } => (call, Write::Drained),
            // `Expand` has turned these into messages.
            Output::Subscribe { .. } | Output::Unsubscribe { .. } | Output::Multicast { .. } => {
                continue
            }
            Output::Headers {
                call,
                encoding,
                metadata,
            } => (call, Write::Headers(encoding, metadata)),
            Output::Message { call, frame } => (call, Write::Message(frame)),
            Output::Trailers {
                call,
                status,
                metadata,
            } => (call, Write::End(status, None, metadata)),
            Output::TrailersOnly {
                call,
                http_status,
                status,
                metadata,
            } => (call, Write::End(status, Some(http_status), metadata)),
            // Pause/Resume ask a driver to stop reading a connection
            // that has too much waiting in the core; this example reads
            // each call on its own task and does not, which is allowed:
            // the core refuses what goes past its hard bounds. Anything
            // else is an output this example does not know yet.
            _ => continue,
        };
        let last = matches!(write, Write::End(..));
        if let Some(w) = writers.get(&call) {
            let _ = w.send(write);
        }
        if last {
            writers.remove(&call);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn serve_connection(
    socket: TcpStream,
    conn: ConnId,
    peer: String,
    events: mpsc::Sender<Event>,
) {
    let _ = socket.set_nodelay(true);
    let mut h2 = match h2::server::Builder::new()
        .max_concurrent_streams(100)
        .max_header_list_size(8 * 1024)
        .initial_window_size(1024 * 1024)
        .initial_connection_window_size(2 * 1024 * 1024)
        .handshake::<_, Bytes>(socket)
        .await
    {
        Ok(h2) => h2,
        Err(_) => return,
    };
    if events.send(Event::Connect(conn, peer)).await.is_err() {
        return;
    }
    let mut next_stream = 0u32;
    while let Some(Ok((request, respond))) = h2.accept().await {
        next_stream += 1;
        let call = CallId(conn.0 << 32 | u64::from(next_stream));
        let (parts, body) = request.into_parts();
        let mut headers = Metadata::new();
        for (name, value) in &parts.headers {
            headers.push(name.as_str(), Bytes::copy_from_slice(value.as_bytes()));
        }
        let head = RequestHead {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if events
            .send(Event::Open(conn, call, head, tx))
            .await
            .is_err()
        {
            break;
        }
        tokio::spawn(read_body(call, body, events.clone()));
        tokio::spawn(write_call(call, respond, rx, events.clone()));
    }
    let _ = events.send(Event::Disconnect(conn)).await;
}

/// Feeds a request body to the core, releasing flow-control credit once the
/// core's queue has taken each chunk.
async fn read_body(call: CallId, mut body: RecvStream, events: mpsc::Sender<Event>) {
    loop {
        match body.data().await {
            Some(Ok(chunk)) => {
                let n = chunk.len();
                if events.send(Event::Data(call, chunk)).await.is_err() {
                    return;
                }
                let _ = body.flow_control().release_capacity(n);
            }
            Some(Err(_)) => {
                let _ = events.send(Event::Reset(call)).await;
                return;
            }
            None => {
                let _ = events.send(Event::End(call)).await;
                return;
            }
        }
    }
}

fn status_headers(map: &mut HeaderMap, status: &Status) {
    map.insert(
        "grpc-status",
        HeaderValue::from_static(status.code.as_header_value()),
    );
    if let Some(msg) = status
        .encoded_message()
        .and_then(|m| HeaderValue::from_str(&m).ok())
    {
        map.insert("grpc-message", msg);
    }
}

/// Appends a handler's response metadata after the protocol's fields
/// (PROTOCOL-HTTP2.md: Custom-Metadata comes last), `-bin` values in
/// base64. The core has checked it; a field http would still refuse is
/// skipped rather than sent broken.
fn metadata_headers(map: &mut HeaderMap, metadata: &Metadata) {
    for (key, value) in metadata.iter() {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_maybe_shared(wire_value(key, value)) {
            map.append(name, value);
        }
    }
}

/// Writes what the core says for one call, in order, within the window.
async fn write_call(
    call: CallId,
    mut respond: SendResponse<Bytes>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    events: mpsc::Sender<Event>,
) {
    let mut send: Option<SendStream<Bytes>> = None;
    while let Some(write) = writes.recv().await {
        match write {
            Write::Headers(encoding, metadata) => {
                let mut resp = Response::new(());
                for (k, v) in RESPONSE_HEADERS {
                    resp.headers_mut().insert(*k, HeaderValue::from_static(v));
                }
                if let Some(enc) = encoding {
                    let value = HeaderValue::from_static(enc.name());
                    resp.headers_mut().insert("grpc-encoding", value);
                }
                metadata_headers(resp.headers_mut(), &metadata);
                match respond.send_response(resp, false) {
                    Ok(s) => send = Some(s),
                    Err(_) => return,
                }
            }
            Write::Message(mut frame) => {
                let Some(s) = send.as_mut() else { return };
                while !frame.is_empty() {
                    s.reserve_capacity(frame.len());
                    let Some(Ok(_)) = poll_fn(|cx| s.poll_capacity(cx)).await else {
                        return;
                    };
                    let n = s.capacity().min(frame.len());
                    if s.send_data(frame.split_to(n), false).is_err() {
                        return;
                    }
                }
            }
            Write::End(status, http, metadata) => {
                match (send.as_mut(), http) {
                    (Some(s), _) => {
                        let mut trailers = HeaderMap::new();
                        status_headers(&mut trailers, &status);
                        metadata_headers(&mut trailers, &metadata);
                        let _ = s.send_trailers(trailers);
                    }
                    (None, http) => {
                        let mut resp = Response::new(());
                        *resp.status_mut() =
                            StatusCode::from_u16(http.unwrap_or(200)).unwrap_or(StatusCode::OK);
                        for (k, v) in RESPONSE_HEADERS {
                            resp.headers_mut().insert(*k, HeaderValue::from_static(v));
                        }
                        status_headers(resp.headers_mut(), &status);
                        metadata_headers(resp.headers_mut(), &metadata);
                        let _ = respond.send_response(resp, true);
                    }
                }
                return;
            }
            Write::Drained => {
                if events.send(Event::Drained(call)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Exits on SIGTERM or SIGINT, after writing out the console lines still
/// queued (`Received message from ...`: they are written at most every
/// 100 ms). This example keeps no graceful shutdown; `chat-server` has one.
async fn exit_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    chat_bins::stdout::flush();
    std::process::exit(0);
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("chat-server-tokio: {msg}");
    std::process::exit(1);
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let policy = match &args.config {
        Some(path) => config::load(path).unwrap_or_else(|e| fail(e)),
        None => Policy::default(),
    };
    let chat = Chat::new(ChatConfig {
        policy,
        limits: RateLimits {
            messages_per_second: args.messages_per_second,
            joins_per_second: args.joins_per_second,
            ..RateLimits::default()
        },
        ..ChatConfig::default()
    });
    let (events, rx) = mpsc::channel(4096);
    let retention = Retention::default();
    let log = if args.memory {
        let per_room = usize::try_from(retention.messages_per_room).unwrap_or(usize::MAX);
        Log::Memory(Box::new(Engine::new(MemoryLog::new(per_room, retention))))
    } else {
        let new = if args.allow_new_database {
            NewDatabase::Allowed
        } else {
            NewDatabase::WhereNoneWas
        };
        let store =
            SqliteStore::open_with(&args.data_dir, retention, new).unwrap_or_else(|e| fail(e));
        say(format_args!("history: {}", store.path().display()));
        let (writer, requests) = Writer::new();
        // The writer is a thread of its own, outside the runtime, so it may
        // block while the core's queue is full.
        let to_core = events.clone();
        start_writer(store, requests, move |input| {
            to_core.blocking_send(Event::Input(input)).is_ok()
        })
        .unwrap_or_else(|e| fail(e));
        Log::Durable(writer)
    };
    tokio::spawn(core_loop(Server::new(chat), rx, log));
    tokio::spawn(exit_on_signal());
    let listener = TcpListener::bind(&args.addr)
        .await
        .unwrap_or_else(|e| fail(e));
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    say(format_args!("chat-server-tokio listening on {local}"));
    let mut next_conn = 0u64;
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                next_conn += 1;
                tokio::spawn(serve_connection(
                    socket,
                    ConnId(next_conn),
                    peer.to_string(),
                    events.clone(),
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
