//! The task that owns the sans-IO core: it applies events from every
//! connection in arrival order, and routes the core's outputs to the
//! connections' shards, one batch per shard per turn.

use std::sync::Arc;

use async_channel::Receiver;
use async_io::Timer;
use bytes::Bytes;
use chat_sansio::server::{CallId, ConnId, Handler, Output, RequestHead, Server};
use chat_sansio::Status;
use futures_lite::future;

use crate::clock::Clock;
use crate::shard::Mailbox;

/// Most events applied to the core between two routings of its outputs, so
/// deliveries start while a burst is still arriving.
const MAX_EVENTS_PER_TURN: usize = 256;

/// An event for the core, from a connection or from the application.
pub(crate) enum ToCore<I> {
    Connect {
        conn: u32,
        peer: Option<String>,
    },
    Disconnect {
        conn: u32,
    },
    Open {
        conn: u32,
        stream: u32,
        head: RequestHead,
    },
    Data {
        call: CallId,
        chunk: Bytes,
    },
    End {
        call: CallId,
    },
    Reset {
        call: CallId,
    },
    Stalled {
        call: CallId,
    },
    Input(I),
}

/// What the core asks one connection to write, by h2 stream id.
#[derive(Debug)]
pub(crate) enum ToConn {
    Headers(u32),
    Message(u32, Bytes),
    Trailers(u32, Status),
    TrailersOnly(u32, u16, Status),
    /// Handled by the shard ([`crate::groups`]), not the connection.
    Subscribe(u32, u64),
    Unsubscribe(u32),
}

impl ToConn {
    /// The h2 stream it is for.
    pub(crate) fn stream(&self) -> u32 {
        match *self {
            ToConn::Headers(sid)
            | ToConn::Message(sid, _)
            | ToConn::Trailers(sid, _)
            | ToConn::TrailersOnly(sid, ..)
            | ToConn::Subscribe(sid, _)
            | ToConn::Unsubscribe(sid) => sid,
        }
    }
}

/// What the core hands a shard: something for one of its connections, or
/// a multicast, which every shard gets once.
#[derive(Debug)]
pub(crate) enum ToShard {
    Conn(u32, ToConn),
    Multicast(u64, Bytes),
}

/// The id the core knows a call by: the connection in the high half, the
/// h2 stream id in the low half, so routing an output needs no table.
pub(crate) fn call_id(conn: u32, stream: u32) -> CallId {
    CallId(u64::from(conn) << 32 | u64::from(stream))
}

fn split_call(call: CallId) -> (u32, u32) {
    ((call.0 >> 32) as u32, call.0 as u32)
}

/// Runs the core until every sender of events is gone.
///
/// Outputs are routed to the shard of their connection (the connection id
/// modulo the number of shards, see [`crate::shard`]) and handed over once
/// per turn; the shard decides when each connection writes.
pub(crate) async fn run<H: Handler>(
    mut core: Server<H>,
    rx: Receiver<ToCore<H::Input>>,
    mut on_event: impl FnMut(H::Event),
    clock: Clock,
    shards: Vec<Arc<Mailbox>>,
) {
    let mut batches: Vec<Vec<ToShard>> = shards.iter().map(|_| Vec::new()).collect();
    loop {
        let first = match core.poll_timeout().map(|t| clock.instant_at(t)) {
            Some(at) => {
                let timer = async {
                    Timer::at(at).await;
                    None
                };
                future::or(async { Some(rx.recv().await) }, timer).await
            }
            None => Some(rx.recv().await),
        };
        let now = clock.now();
        match first {
            Some(Ok(event)) => apply(&mut core, now, event),
            Some(Err(_)) => break,
            None => {}
        }
        for _ in 1..MAX_EVENTS_PER_TURN {
            match rx.try_recv() {
                Ok(event) => apply(&mut core, now, event),
                Err(_) => break,
            }
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        while let Some(output) = core.poll_output() {
            let (call, item) = match output {
                Output::Event(e) => {
                    on_event(e);
                    continue;
                }
                Output::Multicast { group, frame } => {
                    for batch in &mut batches {
                        batch.push(ToShard::Multicast(group.0, frame.clone()));
                    }
                    continue;
                }
                Output::Subscribe { call, group } => {
                    (call, ToConn::Subscribe(split_call(call).1, group.0))
                }
                Output::Unsubscribe { call } => (call, ToConn::Unsubscribe(split_call(call).1)),
                Output::Headers { call } => (call, ToConn::Headers(split_call(call).1)),
                Output::Message { call, frame } => {
                    (call, ToConn::Message(split_call(call).1, frame))
                }
                Output::Trailers { call, status } => {
                    (call, ToConn::Trailers(split_call(call).1, status))
                }
                Output::TrailersOnly {
                    call,
                    http_status,
                    status,
                } => (
                    call,
                    ToConn::TrailersOnly(split_call(call).1, http_status, status),
                ),
            };
            let conn = split_call(call).0;
            let shard = conn as usize % batches.len();
            batches[shard].push(ToShard::Conn(conn, item));
        }
        for (batch, mailbox) in batches.iter_mut().zip(&shards) {
            if !batch.is_empty() {
                if let Some(waker) = mailbox.deliver(batch) {
                    waker.wake();
                }
            }
        }
    }
}

fn apply<H: Handler>(core: &mut Server<H>, now: chat_sansio::Time, event: ToCore<H::Input>) {
    match event {
        ToCore::Connect { conn, peer } => core.handle_connect(now, ConnId(conn.into()), peer),
        ToCore::Disconnect { conn } => core.handle_disconnect(now, ConnId(conn.into())),
        ToCore::Open { conn, stream, head } => {
            core.handle_open(now, ConnId(conn.into()), call_id(conn, stream), head)
        }
        ToCore::Data { call, chunk } => core.handle_data(now, call, &chunk),
        ToCore::End { call } => core.handle_end(now, call),
        ToCore::Reset { call } => core.handle_reset(now, call),
        ToCore::Stalled { call } => core.handle_stalled(now, call),
        ToCore::Input(input) => core.handle_input(now, input),
    }
}
