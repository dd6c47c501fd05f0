//! The bystander: a well-behaved client that keeps one JoinChat stream
//! open in a room of its own, posts a probe every 100 ms and times the echo
//! (the server broadcasts to the whole room, sender included), and opens a
//! new connection every second for a health `Check`. It uses the project's
//! own client (`transport_h2::Channel`) on smol, on a thread of its own;
//! attackers use blocking sockets on other threads, so they do not share
//! its executor.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::Timer;
use chat_proto::health::{paths as health, HealthCheckRequest, HealthCheckResponse};
use chat_proto::{paths, ChatMessage, HistoryPage, HistoryRequest, User};
use futures_lite::future;
use transport_h2::{CallOptions, Channel};

/// The bystander's user id.
pub const USER: &str = "bystander";
/// Time between probes.
const PERIOD: Duration = Duration::from_millis(100);
/// Time between new connections, in probes.
const CONNECT_EVERY: u32 = 10;
/// Longest wait for one connection check (connect plus `Check`).
const CONNECT_LIMIT: Duration = Duration::from_secs(3);
/// How long unanswered probes may take once the bystander stops.
const DRAIN: Duration = Duration::from_secs(2);

/// What the bystander saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Its room.
    pub room: String,
    /// Round trip of each echoed probe.
    pub rtts: Vec<Duration>,
    /// Probes posted.
    pub sent: usize,
    /// Probes never echoed.
    pub unanswered: Vec<String>,
    /// Failures of its stream or its posts.
    pub errors: Vec<String>,
    /// New connections tried.
    pub connects: usize,
    /// How the failed ones failed.
    pub connect_failures: Vec<String>,
    /// The slowest successful new connection.
    pub slowest_connect: Duration,
    /// Echoed probes: (seq, text).
    pub acked: Vec<(u64, String)>,
}

impl Report {
    /// The 99th percentile round trip (the largest of fewer than 100).
    pub fn p99(&self) -> Option<Duration> {
        self.percentile(99)
    }

    /// The `p`th percentile round trip (nearest rank).
    pub fn percentile(&self, p: usize) -> Option<Duration> {
        let mut r = self.rtts.clone();
        r.sort();
        let i = (r.len() * p).div_ceil(100).checked_sub(1)?;
        r.get(i).copied()
    }

    /// The largest round trip.
    pub fn max(&self) -> Option<Duration> {
        self.rtts.iter().max().copied()
    }
}

/// A running bystander.
pub struct Bystander {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Report>,
}

impl Bystander {
    /// Starts posting in `room` on the server at `addr`.
    pub fn start(addr: SocketAddr, room: &str) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let room = room.to_owned();
        let thread = std::thread::spawn(move || smol::block_on(run(addr, room, flag)));
        Bystander { stop, thread }
    }

    /// Stops it (within a few seconds) and returns what it saw.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| Report {
            errors: vec!["the bystander panicked".into()],
            ..Report::default()
        })
    }
}

/// `f`, or `None` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

fn probe(text: String) -> ChatMessage {
    ChatMessage {
        user: Some(User {
            user_id: USER.into(),
            username: USER.into(),
            room_id: String::new(),
        }),
        message: text,
        ..ChatMessage::default()
    }
}

type Shared = Arc<Mutex<Report>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Report> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run(addr: SocketAddr, room: String, stop: Arc<AtomicBool>) -> Report {
    let report: Shared = Arc::new(Mutex::new(Report {
        room: room.clone(),
        ..Report::default()
    }));
    let fail = |e: String| {
        lock(&report).errors.push(e);
    };
    let target = addr.to_string();
    let Some(Ok(channel)) = within(CONNECT_LIMIT, Channel::connect(&target)).await else {
        fail("the bystander could not connect".into());
        return take(&report);
    };
    let options = CallOptions::default().metadata("chat-room", &room);
    let Some(Ok(call)) = within(CONNECT_LIMIT, channel.call(paths::JOIN_CHAT, options)).await
    else {
        fail("the bystander could not open JoinChat".into());
        return take(&report);
    };
    let (mut tx, mut rx) = call.split();
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (waiting, shared) = (pending.clone(), report.clone());
    let receiver = smol::spawn(async move {
        loop {
            match rx.message::<ChatMessage>().await {
                Ok(Some(m)) if m.presence == 0 => {
                    let sent = waiting.lock().unwrap().remove(&m.message);
                    if let Some(t0) = sent {
                        let mut r = lock(&shared);
                        r.rtts.push(t0.elapsed());
                        r.acked.push((m.seq, m.message));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(s) => return lock(&shared).errors.push(format!("JoinChat ended: {s}")),
            }
        }
    });
    let mut checks = Vec::new();
    let start = Instant::now();
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if tick % CONNECT_EVERY == 0 {
            checks.push(smol::spawn(check_connection(
                target.clone(),
                report.clone(),
            )));
        }
        let text = format!("probe {tick}");
        pending.lock().unwrap().insert(text.clone(), Instant::now());
        match within(Duration::from_secs(1), tx.send(&probe(text))).await {
            Some(Ok(())) => lock(&report).sent += 1,
            Some(Err(s)) => fail(format!("post {tick} refused: {s}")),
            None => fail(format!("post {tick} blocked for 1 s")),
        }
        tick += 1;
        Timer::at(start + PERIOD * tick).await;
    }
    let drained = Instant::now() + DRAIN;
    while !pending.lock().unwrap().is_empty() && Instant::now() < drained {
        Timer::after(Duration::from_millis(20)).await;
    }
    for check in checks {
        let _ = within(CONNECT_LIMIT, check).await;
    }
    let _ = tx.close();
    drop(receiver);
    let mut r = take(&report);
    r.unanswered = pending.lock().unwrap().keys().cloned().collect();
    r.unanswered.sort();
    r
}

fn take(report: &Shared) -> Report {
    std::mem::take(&mut *lock(report))
}

/// A new connection and a health `Check` on it.
async fn check_connection(target: String, report: Shared) {
    let t0 = Instant::now();
    let outcome = within(CONNECT_LIMIT, async {
        let channel = Channel::connect(&target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let options = CallOptions::default().timeout(CONNECT_LIMIT);
        let mut call = channel
            .call(health::CHECK, options)
            .await
            .map_err(|s| s.to_string())?;
        let req = HealthCheckRequest::default();
        call.sender.send(&req).await.map_err(|s| s.to_string())?;
        let _ = call.sender.close();
        match call.receiver.message::<HealthCheckResponse>().await {
            Ok(Some(r)) if r.status == 1 => Ok(()),
            other => Err(format!("Check answered {other:?}")),
        }
    })
    .await
    .unwrap_or_else(|| Err(format!("no answer within {CONNECT_LIMIT:?}")));
    let mut r = lock(&report);
    r.connects += 1;
    match outcome {
        Ok(()) => r.slowest_connect = r.slowest_connect.max(t0.elapsed()),
        Err(e) => r.connect_failures.push(e),
    }
}

/// The seqs of `acked` that the room's stored history lacks (paged back
/// with `History`), or why it could not be read.
pub fn missing_from_history(
    addr: SocketAddr,
    room: &str,
    acked: &[(u64, String)],
) -> Result<Vec<u64>, String> {
    let history = smol::block_on(within(Duration::from_secs(10), history(addr, room)))
        .ok_or("History took over 10 s")??;
    let stored: HashMap<u64, String> = history.into_iter().map(|m| (m.seq, m.message)).collect();
    Ok(acked
        .iter()
        .filter(|(seq, text)| stored.get(seq) != Some(text))
        .map(|(seq, _)| *seq)
        .collect())
}

async fn history(addr: SocketAddr, room: &str) -> Result<Vec<ChatMessage>, String> {
    let channel = Channel::connect(&addr.to_string())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut all, mut before) = (Vec::new(), 0);
    loop {
        let mut call = channel
            .call(paths::HISTORY, CallOptions::default())
            .await
            .map_err(|s| format!("History: {s}"))?;
        let req = HistoryRequest {
            room_id: room.into(),
            before_seq: before,
            limit: 100,
        };
        call.sender
            .send(&req)
            .await
            .map_err(|s| format!("History: {s}"))?;
        let _ = call.sender.close();
        let page: HistoryPage = match call.receiver.message().await {
            Ok(Some(p)) => p,
            other => return Err(format!("History answered {other:?}")),
        };
        let first = page.messages.first().map(|m| m.seq);
        all.extend(page.messages);
        match (page.more, first) {
            (true, Some(seq)) => before = seq,
            _ => return Ok(all),
        }
    }
}
