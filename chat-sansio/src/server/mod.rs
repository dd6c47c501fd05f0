//! The server side of gRPC as a sans-IO state machine.
//!
//! [`Server`] takes HTTP/2 stream events from a driver (a request's headers,
//! DATA chunks, end of stream, reset, time) and turns them into calls for a
//! [`Handler`]; it turns the handler's answers into [`Output`]s the driver
//! writes: response headers, framed messages, trailers.

mod calls;
mod config;
mod dispatch;
mod expand;
mod handler;
mod health;
mod ids;
mod output;
mod reflection;
mod request;
mod stats;

use std::collections::VecDeque;
use std::time::Duration;

use crate::compression;
use crate::limits::{MAX_CALLS, MAX_CALLS_PER_CONNECTION};
use crate::metadata::Metadata;
use crate::status::{Code, Status};
use crate::time::Time;

use calls::{Call, Calls};
pub use config::ServerConfig;
use dispatch::Services;
pub use expand::Expand;
pub use handler::{CloseReason, Handler, Outbox, Request, SendError};
pub use health::ServingStatus;
pub use ids::{CallId, ConnId, GroupId};
pub use output::{Output, RESPONSE_HEADERS};
use request::check;
pub use request::{is_grpc_content_type, Rejection, RequestHead};
pub use stats::{CallStats, MethodStats, MAX_METHODS, OTHER};

/// The status that ends a call whose client stopped reading (the
/// slow-consumer policy): RESOURCE_EXHAUSTED.
pub fn stalled_status() -> Status {
    Status::new(
        Code::ResourceExhausted,
        "client is not reading its stream; too many messages pending",
    )
}

/// A gRPC server as a plain state machine, generic over the application
/// [`Handler`].
///
/// # Run-loop contract
///
/// The driver owns the sockets, the clock and the timers. It:
///
/// 1. **Feeds events** as they happen, each with the current [`Time`], which
///    must never go backwards (a smaller value is treated as the last one):
///    - [`handle_connect`](Self::handle_connect) when a connection is
///      established, and [`handle_disconnect`](Self::handle_disconnect) when
///      it ends;
///    - [`handle_open`](Self::handle_open) for a request's headers,
///      [`handle_data`](Self::handle_data) for each DATA chunk,
///      [`handle_end`](Self::handle_end) when the client half-closes, and
///      [`handle_reset`](Self::handle_reset) when the client resets the
///      stream;
///    - [`handle_drained`](Self::handle_drained) when what is queued for a
///      call has been handed to its connection, after an
///      [`Output::WhenDrained`] asked for it;
///    - [`handle_stalled`](Self::handle_stalled) when a call's outbound
///      queue is full because its client is not reading;
///    - [`handle_input`](Self::handle_input) for application inputs;
///    - [`handle_shutdown`](Self::handle_shutdown) when it is asked to stop;
///    - [`handle_timeout`](Self::handle_timeout) when the time returned by
///      [`poll_timeout`](Self::poll_timeout) has come (trust the clock over
///      the timer: calling it early or late is harmless).
/// 2. **Drains** [`poll_output`](Self::poll_output) until it returns `None`
///    after feeding events (after each one, or after a batch: outputs queue
///    up inside, nothing is lost between), and carries the outputs out in
///    order for each call, a multicast counting as a message to each member
///    of its group at that point (or through [`Expand`], which does that).
///    `Headers`, `Trailers` and `TrailersOnly` carry the handler's response
///    metadata (empty unless it set some), checked by the core; the driver
///    writes its fields after the protocol's own, each `-bin` value through
///    [`wire_value`](crate::metadata::wire_value) (base64).
/// 3. **Re-arms** its timer from [`poll_timeout`](Self::poll_timeout) after
///    draining.
///
/// Events for calls the server no longer knows (finished, reset, never
/// opened) are ignored, so the driver need not track which calls the core
/// has ended. [`CallId`]s must be unique for the life of the server.
///
/// DATA chunks are consumed entirely by `handle_data` (the decoder keeps a
/// partial message, bounded by `max_message_size`), so a driver releases
/// HTTP/2 flow-control credit for a chunk once `handle_data` returns.
///
/// **Health.** Unless [`ServerConfig::health`] is off, the server answers
/// `grpc.health.v1.Health` itself: the handler's
/// [`services`](Handler::services) and `""` (the whole server) are SERVING
/// until [`set_health`](Self::set_health) says otherwise or the server shuts
/// down.
///
/// **Reflection.** Unless [`ServerConfig::reflection`] is `None`, the server
/// answers `grpc.reflection.v1` and `v1alpha` from that descriptor set,
/// listing the handler's services, health and reflection.
///
/// **Shutdown.** After [`handle_shutdown`](Self::handle_shutdown) every
/// health status is NOT_SERVING, new calls are refused with UNAVAILABLE,
/// and calls still open when the grace period ends are ended with
/// UNAVAILABLE. The driver stops accepting connections, sends GOAWAY, and is
/// done when [`open_calls`](Self::open_calls) is zero.
pub struct Server<H: Handler> {
    /// The handler and the built-in services.
    services: Services<H>,
    calls: Calls,
    queue: VecDeque<Output<H::Event>>,
    config: ServerConfig,
    now: Time,
    /// When the grace period of a shutdown ends.
    closing: Option<Time>,
    /// Calls per method, for metrics.
    stats: CallStats,
    /// The method of each call not ended yet (its ending is counted when
    /// its last output is taken, or when it is cancelled).
    method_of: crate::idmap::IdMap<CallId, u16>,
}

impl<H: Handler> Server<H> {
    /// A server with default settings.
    pub fn new(handler: H) -> Server<H> {
        Server::with_config(ServerConfig::default(), handler)
    }

    /// A server with `config`.
    pub fn with_config(config: ServerConfig, handler: H) -> Server<H> {
        Server {
            services: Services::new(handler, config.health, config.reflection),
            calls: Calls::default(),
            queue: VecDeque::new(),
            config,
            now: Time::ZERO,
            closing: None,
            stats: CallStats::default(),
            method_of: crate::idmap::IdMap::default(),
        }
    }

    /// The application handler.
    pub fn handler(&self) -> &H {
        &self.services.handler
    }

    /// Number of open calls.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Whether [`handle_shutdown`](Self::handle_shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.closing.is_some()
    }

    /// A service's health status, if the health service knows it.
    pub fn health(&self, service: &str) -> Option<ServingStatus> {
        self.services.health.as_ref()?.status(service)
    }

    /// Sets the health status of `service` (`""`: the whole server), adding
    /// it if it is new; its watchers hear of a change. Ignored if health is
    /// off.
    pub fn set_health(&mut self, now: Time, service: &str, status: ServingStatus) {
        self.tick(now);
        let Some(health) = &mut self.services.health else {
            return;
        };
        let mut out = Outbox {
            calls: &mut self.calls,
            queue: &mut self.queue,
        };
        health.set(service, status, &mut out);
    }

    /// The driver is stopping: every health status turns NOT_SERVING, new
    /// calls are refused with UNAVAILABLE, and the calls still open after
    /// `grace` are ended with UNAVAILABLE (at the first
    /// [`handle_timeout`](Self::handle_timeout) from then). A second call
    /// changes nothing.
    pub fn handle_shutdown(&mut self, now: Time, grace: Duration) {
        let now = self.tick(now);
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(now + grace);
        if let Some(health) = &mut self.services.health {
            let mut out = Outbox {
                calls: &mut self.calls,
                queue: &mut self.queue,
            };
            health.set_all_not_serving(&mut out);
        }
    }

    /// A connection was established with `peer` (an address, for records).
    pub fn handle_connect(&mut self, now: Time, conn: ConnId, peer: Option<String>) {
        self.tick(now);
        self.calls.connect(conn, peer);
    }

    /// A connection ended. Any call still open on it is closed as cancelled.
    pub fn handle_disconnect(&mut self, now: Time, conn: ConnId) {
        let now = self.tick(now);
        let orphans = self.calls.disconnect(conn);
        for (call, c) in &orphans {
            handler::leave(&mut self.queue, *call, c);
        }
        for (call, c) in orphans {
            self.closed(now, call, &c, CloseReason::Cancelled);
        }
        let (services, mut out) = self.split();
        services.handler.disconnected(now, conn, &mut out);
    }

    /// A request's headers arrived on `conn`, opening `call`.
    pub fn handle_open(&mut self, now: Time, conn: ConnId, call: CallId, head: RequestHead) {
        let now = self.tick(now);
        if self.calls.contains(call) || self.method_of.contains_key(&call) {
            return; // A driver bug; the first call with this id stands.
        }
        let method = self.stats.index(&head.path);
        self.stats.started(method);
        self.method_of.insert(call, method);
        let checked = match check(&head) {
            Ok(c) => c,
            Err(r) => return self.reject(call, r.http_status, r.status),
        };
        if self.closing.is_some() {
            let status = Status::new(Code::Unavailable, "server is shutting down");
            return self.reject(call, 200, status);
        }
        if self.calls.len() >= MAX_CALLS || self.calls.calls_on(conn) >= MAX_CALLS_PER_CONNECTION {
            let status = Status::new(Code::ResourceExhausted, "too many open calls");
            return self.reject(call, 200, status);
        }
        let deadline = checked.timeout.map(|t| now + t);
        if deadline.is_some_and(|d| d <= now) {
            let status = Status::new(Code::DeadlineExceeded, "deadline exceeded on arrival");
            return self.reject(call, 200, status);
        }
        self.calls.connect(conn, None);
        let by = self.services.route(&head.path);
        self.calls.insert(
            call,
            Call {
                conn,
                decoder: crate::codec::Decoder::new(self.config.max_message_size),
                encoding: checked.encoding,
                compress: checked.accepts.zip(self.config.compress_min_bytes),
                accepts: checked.accepts,
                last_compressed: false,
                held: 0,
                headers_sent: false,
                deadline,
                half_closed: false,
                group: None,
                by,
            },
        );
        let peer = self.calls.conn(conn).and_then(|c| c.peer.clone());
        let req = Request {
            call,
            conn,
            peer: peer.as_deref(),
            path: &head.path,
            metadata: &head.headers,
            deadline,
        };
        let (services, mut out) = self.split();
        match services.open(by, now, &req, &mut out) {
            Ok(()) => self.answer(call),
            Err(status) => self.end(call, status),
        }
    }

    /// Sends response headers of an accepted call at once, if nothing else
    /// did: long-lived streams show as answered to clients and proxies
    /// before the first message (Response-Headers first, PROTOCOL-HTTP2.md
    /// "Responses").
    fn answer(&mut self, call: CallId) {
        if let Some(c) = self.calls.get_mut(call) {
            if !c.headers_sent {
                c.headers_sent = true;
                let encoding = c.compress.map(|(enc, _)| enc);
                self.queue.push_back(Output::Headers {
                    call,
                    encoding,
                    metadata: Metadata::new(),
                });
            }
        }
    }

    /// Ends a call that was refused when it opened.
    fn end(&mut self, call: CallId, status: Status) {
        if let Some(c) = self.calls.remove(call) {
            handler::end(&mut self.queue, call, &c, 200, status);
        }
    }

    /// A DATA chunk arrived on `call`. All of it is consumed.
    pub fn handle_data(&mut self, now: Time, call: CallId, chunk: &[u8]) {
        let now = self.tick(now);
        self.stats.bytes_in += chunk.len() as u64;
        self.stats.changes += 1;
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.half_closed {
            return; // HTTP/2 forbids DATA after END_STREAM; a driver bug.
        }
        c.decoder.push(chunk);
        loop {
            let Some(c) = self.calls.get_mut(call) else {
                return;
            };
            match c.decoder.next_message() {
                Ok(None) => return self.check_decoding(now, call),
                Ok(Some(m)) => {
                    let payload = if !m.compressed {
                        m.payload
                    } else if let Some(enc) = c.encoding {
                        // The limit applies to the inflated bytes, checked
                        // while inflating (GRPC-CONFORMANCE Z-2).
                        match compression::inflate(enc, &m.payload, self.config.max_message_size) {
                            Ok(payload) => payload,
                            Err(e) => return self.fail(now, call, e.to_status()),
                        }
                    } else {
                        // Compressed-Flag 1 with no grpc-encoding or with
                        // identity: INTERNAL (doc/compression.md, test
                        // case 6; PROTOCOL-HTTP2.md "Compressed-Flag").
                        let status =
                            Status::new(Code::Internal, "compressed message without grpc-encoding");
                        return self.fail(now, call, status);
                    };
                    c.last_compressed = m.compressed;
                    let by = c.by;
                    let (services, mut out) = self.split();
                    services.message(by, now, call, payload, &mut out);
                }
                Err(e) => return self.fail(now, call, e.to_status()),
            }
        }
    }

    /// Counts what `call`'s decoder holds now; ends the call with
    /// RESOURCE_EXHAUSTED if that puts its connection or the server over
    /// their bounds for partial requests.
    fn check_decoding(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        let buffered = c.decoder.buffered();
        let grew = buffered > c.held;
        let (conn, all) = self.calls.note_buffered(call, buffered);
        if grew && (conn > self.config.max_decoding_per_conn || all > self.config.max_decoding) {
            let status = Status::new(
                Code::ResourceExhausted,
                "too many partial request messages held for this connection or server",
            );
            self.fail(now, call, status);
        }
    }

    /// Bytes of partial request messages the decoders hold now, for a
    /// driver that counts what peers make it hold.
    pub fn decoding(&self) -> usize {
        self.calls.decoding()
    }

    /// The client half-closed `call` (END_STREAM).
    pub fn handle_end(&mut self, now: Time, call: CallId) {
        let now = self.tick(now);
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if std::mem::replace(&mut c.half_closed, true) {
            return;
        }
        if let Err(e) = c.decoder.finish() {
            return self.fail(now, call, e.to_status());
        }
        let by = c.by;
        let (services, mut out) = self.split();
        services.half_close(by, now, call, &mut out);
    }

    /// The client reset `call` (RST_STREAM), or the stream broke.
    pub fn handle_reset(&mut self, now: Time, call: CallId) {
        let now = self.tick(now);
        let Some(c) = self.calls.remove(call) else {
            return;
        };
        handler::leave(&mut self.queue, call, &c);
        self.closed(now, call, &c, CloseReason::Cancelled);
    }

    /// The driver cannot deliver to `call` any more: its queue is full
    /// because the client stopped reading. The call ends with
    /// RESOURCE_EXHAUSTED; the driver should drop what it still holds for the
    /// call and send the trailers at once.
    pub fn handle_stalled(&mut self, now: Time, call: CallId) {
        let now = self.tick(now);
        if self.calls.contains(call) {
            self.stats.slow_consumers += 1;
        }
        self.fail(now, call, stalled_status());
    }

    /// Everything queued for `call` has been handed to its connection, after
    /// an [`Output::WhenDrained`] asked for this (answer at once if nothing
    /// was queued). Ignored for calls that have ended, or were not served
    /// by the handler.
    pub fn handle_drained(&mut self, now: Time, call: CallId) {
        let now = self.tick(now);
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.by != calls::ServedBy::Handler {
            return;
        }
        let (services, mut out) = self.split();
        services.handler.drained(now, call, &mut out);
    }

    /// An application input for the handler.
    pub fn handle_input(&mut self, now: Time, input: H::Input) {
        let now = self.tick(now);
        let (services, mut out) = self.split();
        services.handler.input(now, input, &mut out);
    }

    /// Time has passed: expire deadlines and run the handler's timers.
    pub fn handle_timeout(&mut self, now: Time) {
        let now = self.tick(now);
        while let Some(call) = self.calls.pop_expired(now) {
            let Some(c) = self.calls.remove(call) else {
                continue;
            };
            let status = Status::new(Code::DeadlineExceeded, "deadline exceeded");
            handler::end(&mut self.queue, call, &c, 200, status);
            self.closed(now, call, &c, CloseReason::DeadlineExceeded);
        }
        if self.closing.is_some_and(|at| at <= now) {
            for call in self.calls.ids() {
                let Some(c) = self.calls.remove(call) else {
                    continue;
                };
                let status = Status::new(Code::Unavailable, "server is shutting down");
                handler::end(&mut self.queue, call, &c, 200, status);
                self.closed(now, call, &c, CloseReason::ShuttingDown);
            }
        }
        if self
            .services
            .handler
            .poll_timeout()
            .is_some_and(|t| t <= now)
        {
            let (services, mut out) = self.split();
            services.handler.timeout(now, &mut out);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output<H::Event>> {
        let output = self.queue.pop_front()?;
        if let Output::Message { frame, .. } | Output::Multicast { frame, .. } = &output {
            self.stats.bytes_out += frame.len() as u64;
            self.stats.changes += 1;
        }
        if let Output::Trailers { call, status, .. } | Output::TrailersOnly { call, status, .. } =
            &output
        {
            if let Some(m) = self.method_of.remove(call) {
                self.stats.ended(m, status.code);
            }
        }
        Some(output)
    }

    /// Calls per method: opened, open, ended by status code, cancelled.
    pub fn call_stats(&self) -> &CallStats {
        &self.stats
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&mut self) -> Option<Time> {
        let closing = self.closing.filter(|_| self.calls.len() > 0);
        [
            self.calls.next_deadline(),
            self.services.handler.poll_timeout(),
            closing,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tick(&mut self, now: Time) -> Time {
        self.now = self.now.max(now);
        self.now
    }

    /// The handler and the built-in services, beside the outbox they answer
    /// through.
    fn split(&mut self) -> (&mut Services<H>, Outbox<'_, H::Event>) {
        (
            &mut self.services,
            Outbox {
                calls: &mut self.calls,
                queue: &mut self.queue,
            },
        )
    }

    /// Tells whoever served a call that has been taken out of the table
    /// that it ended.
    fn closed(&mut self, now: Time, call: CallId, c: &Call, reason: CloseReason) {
        if matches!(reason, CloseReason::Cancelled) {
            if let Some(m) = self.method_of.remove(&call) {
                self.stats.cancelled(m);
            }
        }
        let (services, mut out) = self.split();
        services.closed(c.by, now, call, reason, &mut out);
    }

    fn reject(&mut self, call: CallId, http_status: u16, status: Status) {
        self.queue.push_back(Output::TrailersOnly {
            call,
            http_status,
            status,
            metadata: Metadata::new(),
        });
    }

    /// Ends an open call from the protocol layer and tells the handler.
    fn fail(&mut self, now: Time, call: CallId, status: Status) {
        let Some(c) = self.calls.remove(call) else {
            return;
        };
        handler::end(&mut self.queue, call, &c, 200, status.clone());
        self.closed(now, call, &c, CloseReason::Failed(status));
    }
}
