//! The task that owns the sans-IO core: it applies events from every
//! connection in arrival order, and routes the core's outputs to the
//! connections' shards, one batch per shard per turn.

use std::sync::Arc;

use async_channel::Receiver;
use async_io::Timer;
use chat_sansio::idmap::IdMap;
use chat_sansio::server::{CallId, ConnId, Handler, Output, Server};
use futures_lite::future;

use super::budget::Budget;
use super::inbox::Mailbox;
use super::messages::{call_id, shard_of, split_call, ToConn, ToCore, ToShard};
use crate::clock::Clock;

/// Most events applied to the core between two routings of its outputs, so
/// deliveries start while a burst is still arriving.
const MAX_EVENTS_PER_TURN: usize = 256;

/// Runs the core until every sender of events is gone.
///
/// Outputs are routed to the shard of their connection ([`shard_of`]) and handed over once
/// per turn; the shard decides when each connection writes.
/// What the core task shares with the rest of the server.
pub(crate) struct Shared {
    /// Each shard's mailbox.
    pub shards: Vec<Arc<Mailbox>>,
    /// The process-wide memory budget.
    pub budget: Arc<Budget>,
    /// The core's counts, copied after a turn that changed them.
    pub stats: Arc<std::sync::Mutex<chat_sansio::server::CallStats>>,
}

pub(crate) async fn run<H: Handler>(
    mut core: Server<H>,
    rx: Receiver<ToCore<H::Input>>,
    mut on_event: impl FnMut(H::Event) -> Option<H::Input>,
    clock: Clock,
    shared: Shared,
) {
    let Shared {
        shards,
        budget,
        stats,
    } = shared;
    let mut copied = u64::MAX;
    let mut batches: Vec<Vec<ToShard>> = shards.iter().map(|_| Vec::new()).collect();
    let mut members = Membership::default();
    let mut told_shutdown = false;
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
        budget.set_decoding(core.decoding());
        while let Some(output) = core.poll_output() {
            let (call, item) = match output {
                Output::Event(e) => {
                    // A synchronous engine answers in the same turn.
                    if let Some(input) = on_event(e) {
                        core.handle_input(now, input);
                    }
                    continue;
                }
                Output::Pause { conn } | Output::Resume { conn } => {
                    let pause = matches!(output, Output::Pause { .. });
                    let conn = conn.0 as u32;
                    let shard = shard_of(conn, batches.len());
                    batches[shard].push(ToShard::Conn(conn, ToConn::Pause(pause)));
                    continue;
                }
                Output::Multicast { group, frame } => {
                    for shard in members.shards(group.0) {
                        batches[shard].push(ToShard::Multicast(group.0, frame.clone()));
                    }
                    continue;
                }
                Output::Subscribe { call, group } => {
                    members.subscribe(call, group.0, batches.len());
                    (call, ToConn::Subscribe(split_call(call).1, group.0))
                }
                Output::Unsubscribe { call } => {
                    members.unsubscribe(call, batches.len());
                    (call, ToConn::Unsubscribe(split_call(call).1))
                }
                Output::Headers {
                    call,
                    encoding,
                    metadata,
                } => (
                    call,
                    ToConn::Headers(split_call(call).1, encoding, metadata),
                ),
                Output::Message { call, frame } => {
                    (call, ToConn::Message(split_call(call).1, frame))
                }
                Output::Trailers {
                    call,
                    status,
                    metadata,
                } => (call, ToConn::Trailers(split_call(call).1, status, metadata)),
                Output::WhenDrained { call } => (call, ToConn::WhenDrained(split_call(call).1)),
                Output::TrailersOnly {
                    call,
                    http_status,
                    status,
                    metadata,
                } => (
                    call,
                    ToConn::TrailersOnly(split_call(call).1, http_status, status, metadata),
                ),
                // Outputs of later versions of the core this driver does not
                // know yet: none exist today.
                _ => continue,
            };
            let conn = split_call(call).0;
            let shard = shard_of(conn, batches.len());
            batches[shard].push(ToShard::Conn(conn, item));
        }
        if core.is_shutting_down() && !std::mem::replace(&mut told_shutdown, true) {
            // After the outputs of the shutdown itself (health watchers
            // hear NOT_SERVING before GOAWAY).
            for batch in &mut batches {
                batch.push(ToShard::Shutdown);
            }
        }
        let changes = core.call_stats().changes;
        if changes != copied {
            if let Ok(mut s) = stats.lock() {
                s.clone_from(core.call_stats());
                copied = changes;
            }
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

/// How many members each group has on each shard, as the core's outputs
/// say, so a multicast goes only to shards where it has readers (waking a
/// shard for nothing costs a thread wake-up per message).
#[derive(Default)]
struct Membership {
    of: IdMap<CallId, u64>,
    per_shard: IdMap<u64, Vec<u32>>,
}

impl Membership {
    fn subscribe(&mut self, call: CallId, group: u64, shards: usize) {
        self.unsubscribe(call, shards);
        self.of.insert(call, group);
        let counts = self
            .per_shard
            .entry(group)
            .or_insert_with(|| vec![0; shards]);
        counts[shard_of(split_call(call).0, shards)] += 1;
    }

    fn unsubscribe(&mut self, call: CallId, shards: usize) {
        let Some(group) = self.of.remove(&call) else {
            return;
        };
        if let Some(counts) = self.per_shard.get_mut(&group) {
            let c = &mut counts[shard_of(split_call(call).0, shards)];
            *c = c.saturating_sub(1);
            if counts.iter().all(|&c| c == 0) {
                self.per_shard.remove(&group);
            }
        }
    }

    /// The shards with members of `group`.
    fn shards(&self, group: u64) -> impl Iterator<Item = usize> + '_ {
        self.per_shard
            .get(&group)
            .into_iter()
            .flat_map(|counts| counts.iter().enumerate())
            .filter(|(_, &c)| c > 0)
            .map(|(shard, _)| shard)
    }
}

fn apply<H: Handler>(core: &mut Server<H>, now: chat_sansio::Time, event: ToCore<H::Input>) {
    match event {
        ToCore::Connect { conn, peer } => core.handle_connect(now, ConnId(conn.into()), peer),
        ToCore::Disconnect { conn } => core.handle_disconnect(now, ConnId(conn.into())),
        ToCore::Open { conn, stream, head } => {
            core.handle_open(now, ConnId(conn.into()), call_id(conn, stream), head)
        }
        ToCore::Data { call, chunk, claim } => {
            core.handle_data(now, call, &chunk);
            drop(claim);
        }
        ToCore::End { call } => core.handle_end(now, call),
        ToCore::Reset { call } => core.handle_reset(now, call),
        ToCore::Stalled { call } => core.handle_stalled(now, call),
        ToCore::Drained { call } => core.handle_drained(now, call),
        ToCore::Input(input) => core.handle_input(now, input),
        ToCore::Shutdown { grace } => core.handle_shutdown(now, grace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicasts_go_only_to_shards_with_members() {
        let mut m = Membership::default();
        let (a, b, c) = (call_id(4, 1), call_id(5, 1), call_id(5, 3));
        m.subscribe(a, 7, 2);
        m.subscribe(b, 7, 2);
        m.subscribe(c, 7, 2);
        assert_eq!(m.shards(7).collect::<Vec<_>>(), [0, 1]);
        m.unsubscribe(a, 2);
        assert_eq!(m.shards(7).collect::<Vec<_>>(), [1]);
        // Moving to another group leaves the first.
        m.subscribe(b, 8, 2);
        m.unsubscribe(c, 2);
        m.unsubscribe(c, 2);
        assert_eq!(m.shards(7).count(), 0);
        assert_eq!(m.shards(8).collect::<Vec<_>>(), [1]);
    }
}
