//! The writer protocol any backend needs: a queue of requests, group commit,
//! epochs, and the answers to the core.
//!
//! The driver hands every chat event to [`Writer::take`] and carries on; a
//! thread of its own ([`start_writer`]) writes. Every request that arrived
//! while the previous batch was being written goes into one
//! [`Backend::commit`] (one fsync for SQLite), and only then is the core told
//! that its messages are durable. When a commit fails the core is told so,
//! gives up its pending messages and starts a new epoch; requests of the
//! failed epoch still in the queue are dropped, since the core numbers their
//! successors afresh.

use std::error::Error;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use chat_proto::ChatMessage;
use chat_sansio::chat::{ChatEvent, ChatInput};
use chat_sansio::server::CallId;
use chat_sansio::Time;

use crate::backend::{Backend, Login};

/// Most requests written in one commit.
const MAX_BATCH: usize = 8192;
/// How often the writer logs its group-commit statistics.
const STATS_EVERY: Duration = Duration::from_secs(10);
/// How often retention runs, at most: it scans tables, so not per commit.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

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
    Persist {
        epoch: u64,
        id: u64,
        message: ChatMessage,
    },
    Login(Login),
    Read {
        call: CallId,
        room: String,
        before: u64,
        limit: u32,
    },
}

/// Hands the chat's storage events to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Request>,
}

/// The requests a [`Writer`] has queued, for [`start_writer`].
pub struct Requests(Receiver<Request>);

impl Writer {
    /// A writer and the queue its requests go to; requests wait there until
    /// [`start_writer`] runs (the driver must exist first, to be answered).
    pub fn new() -> (Writer, Requests) {
        let (tx, rx) = mpsc::channel();
        (Writer { tx }, Requests(rx))
    }

    /// Takes the storage events (`Persist` and `ReadHistory`; `Login` is
    /// copied into the store) and returns the rest, for the console.
    pub fn take(&self, event: ChatEvent) -> Option<ChatEvent> {
        let request = match event {
            ChatEvent::Persist { epoch, id, message } => Request::Persist { epoch, id, message },
            ChatEvent::ReadHistory {
                call,
                room,
                before_seq,
                limit,
            } => Request::Read {
                call,
                room,
                before: before_seq,
                limit,
            },
            other => {
                if let Some(login) = Login::from_event(&other) {
                    let _ = self.tx.send(Request::Login(login));
                }
                return Some(other);
            }
        };
        let _ = self.tx.send(request);
        None
    }
}

/// Starts the writer thread on `backend`; what is durable, what failed and
/// the pages read go back to the core through `deliver`. The thread ends when
/// every [`Writer`] is dropped or the core is gone.
pub fn start_writer<B, D>(backend: B, requests: Requests, deliver: D) -> std::io::Result<()>
where
    B: Backend + Send + 'static,
    D: Deliver + Send + 'static,
{
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || WriteLoop::new(backend, deliver).run(requests.0))?;
    Ok(())
}

/// The writer thread's state.
struct WriteLoop<B, D> {
    backend: B,
    deliver: D,
    /// The latest epoch whose commit failed: its requests are dropped.
    dead_epoch: Option<u64>,
    stats: Stats,
    last_prune: Instant,
}

impl<B: Backend, D: Deliver> WriteLoop<B, D> {
    fn new(backend: B, deliver: D) -> Self {
        WriteLoop {
            backend,
            deliver,
            dead_epoch: None,
            stats: Stats::new(),
            last_prune: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
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

    /// Commits one batch, then answers its reads (so a page sees the
    /// messages committed before it). False once the core is gone.
    fn write(&mut self, batch: &mut Vec<Request>) -> bool {
        let mut messages = Vec::new();
        let mut logins = Vec::new();
        let mut reads = Vec::new();
        let mut last: Option<(u64, u64)> = None;
        for r in batch.drain(..) {
            match r {
                Request::Persist { epoch, id, message } => {
                    if self.dead_epoch.is_some_and(|d| epoch <= d) {
                        continue;
                    }
                    last = Some((epoch, id));
                    messages.push(message);
                }
                Request::Login(l) => logins.push(l),
                Request::Read {
                    call,
                    room,
                    before,
                    limit,
                } => reads.push((call, room, before, limit)),
            }
        }
        if (!messages.is_empty() || !logins.is_empty()) && !self.commit(&messages, &logins, last) {
            return false;
        }
        for (call, room, before, limit) in reads {
            let page = self
                .backend
                .page(&room, before, limit)
                .map_err(|e| cause(&e));
            if !self.deliver.deliver(ChatInput::HistoryPage { call, page }) {
                return false;
            }
        }
        true
    }

    /// Commits a batch and tells the core the outcome; `last` is the epoch
    /// and id of its last message, if any. False once the core is gone.
    fn commit(
        &mut self,
        messages: &[ChatMessage],
        logins: &[Login],
        last: Option<(u64, u64)>,
    ) -> bool {
        let result = self.backend.commit(messages, logins);
        match (result, last) {
            (Ok(()), last) => {
                self.stats.committed(messages.len());
                if let Some((epoch, up_to)) = last {
                    if !self.deliver.deliver(ChatInput::Durable { epoch, up_to }) {
                        return false;
                    }
                }
            }
            (Err(e), last) => {
                tracing::error!("{e}");
                if let Some((epoch, _)) = last {
                    self.dead_epoch = Some(epoch);
                    let reason = cause(&e);
                    if !self
                        .deliver
                        .deliver(ChatInput::StoreFailed { epoch, reason })
                    {
                        return false;
                    }
                }
            }
        }
        // Records age by the chat's clock, as stamped on them, not by this
        // thread's.
        let now = logins.first().map(|l| l.at).or_else(|| {
            messages
                .last()
                .map(|m| Time::from_micros(m.timestamp_us.max(0) as u64))
        });
        if let Some(now) = now {
            if self.last_prune.elapsed() >= PRUNE_EVERY {
                self.last_prune = Instant::now();
                if let Err(e) = self.backend.prune(now) {
                    tracing::warn!("{e}");
                }
            }
        }
        true
    }
}

/// What clients are told about a failure: the bare cause, without the
/// operator's context (the file), as [`Backend`] asks of its errors.
fn cause(e: &dyn Error) -> String {
    match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// Group-commit statistics, logged every [`STATS_EVERY`].
struct Stats {
    messages: u64,
    commits: u64,
    since: Instant,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            messages: 0,
            commits: 0,
            since: Instant::now(),
        }
    }

    fn committed(&mut self, messages: usize) {
        self.messages += messages as u64;
        self.commits += 1;
        let elapsed = self.since.elapsed();
        if elapsed >= STATS_EVERY {
            tracing::info!(
                "store: {} messages in {} commits in {:.0} s ({:.1} per commit)",
                self.messages,
                self.commits,
                elapsed.as_secs_f64(),
                self.messages as f64 / self.commits as f64
            );
            *self = Stats::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use chat_proto::HistoryPage;

    use super::*;

    /// A second backend: in memory, failing the commits it is told to.
    #[derive(Default)]
    struct Memory {
        messages: Vec<ChatMessage>,
        logins: Vec<Login>,
        commits: usize,
        fail_next: bool,
    }

    #[derive(Debug)]
    struct Broken(Cause);

    #[derive(Debug)]
    struct Cause;

    impl fmt::Display for Broken {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "/srv/memory: broken: {}", self.0)
        }
    }
    impl fmt::Display for Cause {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk full")
        }
    }
    impl Error for Broken {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
    impl Error for Cause {}

    impl Backend for Memory {
        type Error = Broken;

        fn rooms(&mut self) -> Result<Vec<(String, u64)>, Broken> {
            Ok(Vec::new())
        }

        fn page(&mut self, room: &str, _before: u64, _limit: u32) -> Result<HistoryPage, Broken> {
            Ok(HistoryPage {
                room_id: room.to_owned(),
                messages: self.messages.clone(),
                more: false,
            })
        }

        fn commit(&mut self, messages: &[ChatMessage], logins: &[Login]) -> Result<(), Broken> {
            if std::mem::take(&mut self.fail_next) {
                return Err(Broken(Cause));
            }
            self.commits += 1;
            self.messages.extend_from_slice(messages);
            self.logins.extend_from_slice(logins);
            Ok(())
        }

        fn prune(&mut self, _now: Time) -> Result<(), Broken> {
            Ok(())
        }
    }

    /// The core's side: what it was told, and whether it is still there.
    struct Core {
        got: Vec<ChatInput>,
        alive: bool,
    }

    impl Deliver for Core {
        fn deliver(&mut self, input: ChatInput) -> bool {
            self.got.push(input);
            self.alive
        }
    }

    fn harness() -> (Writer, Requests, WriteLoop<Memory, Core>) {
        let (writer, requests) = Writer::new();
        let core = Core {
            got: Vec::new(),
            alive: true,
        };
        (writer, requests, WriteLoop::new(Memory::default(), core))
    }

    fn persist(writer: &Writer, epoch: u64, id: u64, text: &str) {
        let message = ChatMessage {
            message: text.into(),
            room_id: "r".into(),
            seq: id,
            ..ChatMessage::default()
        };
        assert!(writer
            .take(ChatEvent::Persist { epoch, id, message })
            .is_none());
    }

    /// Writes everything queued so far as one batch.
    fn write_queued(requests: &Requests, w: &mut WriteLoop<Memory, Core>) -> bool {
        let mut batch: Vec<Request> = requests.0.try_iter().collect();
        w.write(&mut batch)
    }

    #[test]
    fn a_batch_is_one_commit_then_its_reads() {
        let (writer, requests, mut w) = harness();
        for id in 1..=3 {
            persist(&writer, 0, id, "m");
        }
        let login = ChatEvent::Login {
            user_id: "u".into(),
            room: "r".into(),
            peer: None,
            outcome: Ok(()),
            at: Time::from_micros(7),
        };
        assert_eq!(writer.take(login.clone()), Some(login));
        let read = ChatEvent::ReadHistory {
            call: CallId(9),
            room: "r".into(),
            before_seq: 0,
            limit: 10,
        };
        assert_eq!(writer.take(read), None);
        assert!(write_queued(&requests, &mut w));
        assert_eq!(w.backend.commits, 1);
        assert_eq!(w.backend.logins.len(), 1);
        assert_eq!(w.deliver.got.len(), 2);
        assert_eq!(w.deliver.got[0], ChatInput::Durable { epoch: 0, up_to: 3 });
        match &w.deliver.got[1] {
            ChatInput::HistoryPage { call, page: Ok(p) } => {
                assert_eq!(*call, CallId(9));
                assert_eq!(p.messages.len(), 3, "the page sees its batch's commit");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_commit_drops_the_rest_of_its_epoch() {
        let (writer, requests, mut w) = harness();
        w.backend.fail_next = true;
        persist(&writer, 0, 1, "a");
        persist(&writer, 0, 2, "b");
        assert!(write_queued(&requests, &mut w));
        assert_eq!(
            w.deliver.got,
            [ChatInput::StoreFailed {
                epoch: 0,
                reason: "disk full".into()
            }],
            "clients hear the cause, not the operator's context"
        );
        // Queued before the core heard of the failure: stale.
        persist(&writer, 0, 3, "c");
        // Numbered afresh in the core's next epoch.
        persist(&writer, 1, 1, "d");
        assert!(write_queued(&requests, &mut w));
        let stored: Vec<_> = w.backend.messages.iter().map(|m| &m.message).collect();
        assert_eq!(stored, ["d"]);
        assert_eq!(w.deliver.got[1], ChatInput::Durable { epoch: 1, up_to: 1 });
    }

    #[test]
    fn the_writer_stops_when_the_core_is_gone_or_the_writers_are() {
        let (writer, requests, mut w) = harness();
        w.deliver.alive = false;
        persist(&writer, 0, 1, "a");
        assert!(!write_queued(&requests, &mut w));
        let (writer, requests, w) = harness();
        persist(&writer, 0, 1, "a");
        drop(writer);
        // Returns: the queue is drained, then closed.
        w.run(requests.0);
    }
}
