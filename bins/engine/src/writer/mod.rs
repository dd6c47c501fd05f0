//! The engine on a thread of its own, for backends that write to disk:
//! a queue of requests, group commit, and the answers to the core.
//!
//! The driver hands every chat event to [`Writer::take`] and carries on; the
//! writer thread ([`start_writer`]) serves them. Every append and login
//! record that arrived while the previous batch was being written goes into
//! one [`Backend::append`] (one transaction, one fsync for SQLite), and only
//! then is the core told each entry as stored (or that the batch failed:
//! nothing of it is stored, and its posters may retry). Opens queued with
//! the batch are answered after it, so they see its entries; ranges and
//! pages go to a reader thread on the backend's [`Backend::reader`], so
//! that no read waits behind a commit or a retention run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_sansio::chat::{AppendRequest, ChatEvent, ChatInput, ReadToken};
use chat_sansio::Time;

use crate::backend::{AdminRecord, Backend, Login};
use crate::engine::{self, cause};

/// Most appends written in one commit.
const MAX_BATCH: usize = 8192;
/// How often the writer logs its group-commit statistics.
const STATS_EVERY: Duration = Duration::from_secs(10);
/// How often retention runs when it has caught up.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// How soon it runs again when it has more to delete: each run deletes a
/// bounded amount (milliseconds of work), and commits go between runs.
const PRUNE_AGAIN: Duration = Duration::from_millis(20);

/// How the writer's answers reach the core: the driver's own way of feeding
/// it (a channel of its runtime, typically). The writer runs on a thread of
/// its own, so `deliver` may block while the core's queue is full.
///
/// Any `FnMut(ChatInput) -> bool` is one.
pub trait Deliver {
    /// Hands `input` to the core; false if the core is gone, which stops the
    /// writer.
    fn deliver(&mut self, input: ChatInput) -> bool;
}

impl<F: FnMut(ChatInput) -> bool> Deliver for F {
    fn deliver(&mut self, input: ChatInput) -> bool {
        self(input)
    }
}

/// What the writer thread is asked to do.
enum Request {
    Open(String),
    Append(Box<AppendRequest>),
    Login(Login),
    Admin(AdminRecord),
    Delete {
        id: u64,
        room: String,
        seq: u64,
    },
    Presence {
        room: String,
        user: chat_proto::User,
        present: bool,
    },
    Range {
        token: ReadToken,
        room: String,
        after: u64,
        up_to: u64,
        limit: u32,
    },
    Page {
        token: ReadToken,
        room: String,
        before: u64,
        limit: u32,
    },
}

/// Hands the chat's engine requests to the writer thread (and reads to
/// the reader thread).
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Request>,
    reads: Sender<Request>,
    stats: Arc<CommitStats>,
}

/// Upper bounds (microseconds) of the commit-latency histogram's buckets;
/// a last bucket takes the rest.
pub const COMMIT_BUCKETS_US: [u64; 10] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// The writer's commits, for metrics: how long each took and how many
/// messages it carried.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Commits made (failed ones included).
    pub commits: AtomicU64,
    /// Messages appended in them.
    pub messages: AtomicU64,
    /// Their total time, microseconds.
    pub latency_sum_us: AtomicU64,
    /// Commits by latency: `COMMIT_BUCKETS_US`, then longer ones.
    pub latency_buckets: [AtomicU64; COMMIT_BUCKETS_US.len() + 1],
}

impl CommitStats {
    fn record(&self, took: Duration, messages: usize) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let i = COMMIT_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(COMMIT_BUCKETS_US.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The requests a [`Writer`] has queued, for [`start_writer`].
pub struct Requests {
    writes: Receiver<Request>,
    reads: Receiver<Request>,
    /// For a backend without a reader: its reads go to the writer.
    to_writer: Sender<Request>,
    stats: Arc<CommitStats>,
}

impl Writer {
    /// A writer and the queue its requests go to; requests wait there until
    /// [`start_writer`] runs (the driver must exist first, to be answered).
    pub fn new() -> (Writer, Requests) {
        let (tx, writes) = mpsc::channel();
        let (reads_tx, reads) = mpsc::channel();
        let stats = Arc::new(CommitStats::default());
        let requests = Requests {
            writes,
            reads,
            to_writer: tx.clone(),
            stats: Arc::clone(&stats),
        };
        (
            Writer {
                tx,
                reads: reads_tx,
                stats,
            },
            requests,
        )
    }

    /// The writer's commits so far (for metrics).
    pub fn stats(&self) -> Arc<CommitStats> {
        Arc::clone(&self.stats)
    }

    /// Takes the engine requests; copies `Login` records into the store;
    /// returns the rest (and the logins), for the console.
    pub fn take(&self, event: ChatEvent) -> Option<ChatEvent> {
        let request = match event {
            ChatEvent::OpenRoom { room } => Request::Open(room),
            ChatEvent::Append(request) => Request::Append(request),
            ChatEvent::ReadRange {
                token,
                room,
                after,
                up_to,
                limit,
            } => Request::Range {
                token,
                room,
                after,
                up_to,
                limit,
            },
            ChatEvent::ReadHistory {
                token,
                room,
                before_seq,
                limit,
            } => Request::Page {
                token,
                room,
                before: before_seq,
                limit,
            },
            ChatEvent::Delete { id, room, seq } => Request::Delete { id, room, seq },
            ChatEvent::Presence {
                room,
                user,
                present,
            } => Request::Presence {
                room,
                user,
                present,
            },
            other => {
                if let Some(login) = Login::from_event(&other) {
                    let _ = self.tx.send(Request::Login(login));
                }
                if let Some(record) = AdminRecord::from_event(&other) {
                    let _ = self.tx.send(Request::Admin(record));
                }
                return Some(other);
            }
        };
        // Presence goes with the reads, in order: a JoinChatRoom's answer
        // (a read) then follows the notice of the joiner's arrival.
        let queue = match request {
            Request::Range { .. } | Request::Page { .. } | Request::Presence { .. } => &self.reads,
            _ => &self.tx,
        };
        let _ = queue.send(request);
        None
    }
}

/// Starts the writer thread on `backend`, and a reader thread on its
/// [`Backend::reader`] (ranges and pages, so that no read waits behind a
/// commit or a retention run; without a reader, reads are served by the
/// writer between batches). Answers go back to the core through `deliver`.
/// The threads end when every [`Writer`] is dropped or the core is gone.
pub fn start_writer<B, D>(backend: B, requests: Requests, deliver: D) -> std::io::Result<()>
where
    B: Backend + Send + 'static,
    D: Deliver + Clone + Send + 'static,
{
    let Requests {
        writes,
        reads,
        to_writer,
        stats,
    } = requests;
    let reader = backend
        .reader()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let reads_thread = std::thread::Builder::new().name("store-reads".into());
    match reader {
        Some(reader) => {
            drop(to_writer);
            let mut deliver = deliver.clone();
            reads_thread.spawn(move || serve_reads(reader, &mut deliver, reads))?;
        }
        None => {
            reads_thread.spawn(move || {
                for r in reads {
                    if to_writer.send(r).is_err() {
                        return;
                    }
                }
            })?;
        }
    }
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || WriteLoop::new(backend, deliver, stats).run(writes))?;
    Ok(())
}

/// The reader thread: answers each read as it comes.
fn serve_reads<B: Backend, D: Deliver>(mut backend: B, deliver: &mut D, reads: Receiver<Request>) {
    for r in reads {
        let Some(answer) = answer(&mut backend, r) else {
            continue;
        };
        if !deliver.deliver(answer) {
            return;
        }
    }
}

/// The answer to an open or a read; `None` for appends and records.
fn answer<B: Backend>(backend: &mut B, request: Request) -> Option<ChatInput> {
    Some(match request {
        Request::Open(room) => engine::open(backend, room),
        Request::Range {
            token,
            room,
            after,
            up_to,
            limit,
        } => engine::range(backend, token, &room, after, up_to, limit),
        Request::Page {
            token,
            room,
            before,
            limit,
        } => engine::page(backend, token, &room, before, limit),
        Request::Delete { id, room, seq } => engine::delete(backend, id, &room, seq),
        Request::Presence {
            room,
            user,
            present,
        } => {
            let news = backend.presence(&room, &user, present).unwrap_or_else(|e| {
                // Announced here all the same; the backend sets itself in
                // line again when it can.
                tracing::warn!("{e}");
                true
            });
            if !news {
                return None;
            }
            ChatInput::Presence {
                room,
                user,
                present,
            }
        }
        Request::Admin(record) => {
            if let Err(e) = backend.record_admin(&record) {
                tracing::error!("{e}");
            }
            return None;
        }
        Request::Append(_) | Request::Login(_) => return None,
    })
}

/// The writer thread's state.
struct WriteLoop<B, D> {
    backend: B,
    deliver: D,
    stats: Stats,
    /// When retention runs next.
    next_prune: Instant,
    /// The chat's time of the last commit, for retention's clock.
    now: Time,
    commits: Arc<CommitStats>,
}

impl<B: Backend, D: Deliver> WriteLoop<B, D> {
    fn new(backend: B, deliver: D, commits: Arc<CommitStats>) -> Self {
        WriteLoop {
            backend,
            deliver,
            stats: Stats::new(),
            next_prune: Instant::now() + PRUNE_EVERY,
            now: Time::ZERO,
            commits,
        }
    }

    fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // While retention is behind, it runs between batches, also
            // when no request comes.
            let wait = self.next_prune.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait.max(PRUNE_AGAIN)) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.prune();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if !self.write(&mut batch) {
                return;
            }
        }
    }

    /// Commits one batch's appends and records, then answers its opens and
    /// reads in order (so they see what was committed before them). False
    /// once the core is gone.
    fn write(&mut self, batch: &mut Vec<Request>) -> bool {
        let mut appends = Vec::new();
        let mut logins = Vec::new();
        let mut rest = Vec::new();
        for r in batch.drain(..) {
            match r {
                Request::Append(a) => appends.push(*a),
                Request::Login(l) => logins.push(l),
                other => rest.push(other),
            }
        }
        if (!appends.is_empty() || !logins.is_empty()) && !self.commit(&appends, &logins) {
            return false;
        }
        for r in rest {
            let Some(answer) = answer(&mut self.backend, r) else {
                continue;
            };
            if !self.deliver.deliver(answer) {
                return false;
            }
        }
        true
    }

    /// Appends a batch and tells the core each entry, or that it failed.
    /// False once the core is gone.
    fn commit(&mut self, appends: &[AppendRequest], logins: &[Login]) -> bool {
        // Records and dedupe keys age by the chat's clock, as stamped on the
        // requests, not by this thread's.
        let now = appends
            .iter()
            .map(|a| a.at)
            .chain(logins.iter().map(|l| l.at))
            .max()
            .unwrap_or(Time::ZERO);
        let began = Instant::now();
        let result = self.backend.append(appends, logins, now);
        self.commits.record(began.elapsed(), appends.len());
        match result {
            Ok(stored) => {
                self.stats.committed(appends.len(), logins.len());
                for (request, appended) in appends.iter().zip(stored) {
                    let input = ChatInput::Committed {
                        id: request.id,
                        entry: appended.entry,
                        duplicate: appended.duplicate,
                    };
                    if !self.deliver.deliver(input) {
                        return false;
                    }
                }
            }
            Err(e) => {
                tracing::error!("{e}");
                let reason = cause(&e);
                for request in appends {
                    let input = ChatInput::AppendFailed {
                        id: request.id,
                        reason: reason.clone(),
                    };
                    if !self.deliver.deliver(input) {
                        return false;
                    }
                }
            }
        }
        self.now = self.now.max(now);
        if Instant::now() >= self.next_prune {
            self.prune();
        }
        true
    }
}

impl<B: Backend, D: Deliver> WriteLoop<B, D> {
    /// Runs retention once (a bounded amount), and sets when it runs next.
    fn prune(&mut self) {
        let more = if self.now > Time::ZERO {
            self.backend.prune(self.now).unwrap_or_else(|e| {
                tracing::warn!("{e}");
                false
            })
        } else {
            false
        };
        self.next_prune = Instant::now() + if more { PRUNE_AGAIN } else { PRUNE_EVERY };
    }
}

/// Group-commit statistics, logged every [`STATS_EVERY`].
struct Stats {
    messages: u64,
    logins: u64,
    commits: u64,
    since: Instant,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            messages: 0,
            logins: 0,
            commits: 0,
            since: Instant::now(),
        }
    }

    /// One commit of `messages` and `logins` records; the figures since
    /// the last line are logged when one is due (at a commit: an idle
    /// store logs nothing, and its next line covers the idle time too).
    fn committed(&mut self, messages: usize, logins: usize) {
        self.messages += messages as u64;
        self.logins += logins as u64;
        self.commits += 1;
        let elapsed = self.since.elapsed();
        if elapsed >= STATS_EVERY {
            tracing::info!(
                "store: {} messages and {} login records in {} commits in the last {:.0} s",
                self.messages,
                self.logins,
                self.commits,
                elapsed.as_secs_f64(),
            );
            *self = Stats::new();
        }
    }
}

#[cfg(test)]
mod tests;
