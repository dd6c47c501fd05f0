//! The writer thread against an in-memory backend.
use std::error::Error;
use std::fmt;

use chat_proto::{ChatMessage, HistoryPage, User};

use super::*;
use crate::backend::{Appended, Retention, RoomState};
use crate::memory::MemoryLog;

/// The memory log, failing the appends it is told to.
struct Flaky {
    log: MemoryLog,
    fail_next: bool,
    commits: usize,
    logins: Vec<Login>,
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

impl Backend for Flaky {
    type Error = Broken;

    fn open_room(&mut self, room: &str) -> Result<RoomState, Broken> {
        Ok(self.log.open_room(room).unwrap_or_else(|e| match e {}))
    }

    fn append(
        &mut self,
        batch: &[AppendRequest],
        logins: &[Login],
        now: Time,
    ) -> Result<Vec<Appended>, Broken> {
        if std::mem::take(&mut self.fail_next) {
            return Err(Broken(Cause));
        }
        self.commits += 1;
        self.logins.extend_from_slice(logins);
        Ok(self
            .log
            .append(batch, logins, now)
            .unwrap_or_else(|e| match e {}))
    }

    fn range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), Broken> {
        Ok(self
            .log
            .range(room, after, up_to, limit)
            .unwrap_or_else(|e| match e {}))
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, Broken> {
        Ok(self
            .log
            .page(room, before, limit)
            .unwrap_or_else(|e| match e {}))
    }

    fn delete(&mut self, room: &str, seq: u64) -> Result<Option<ChatMessage>, Broken> {
        Ok(self.log.delete(room, seq).unwrap_or_else(|e| match e {}))
    }

    fn prune(&mut self, _now: Time) -> Result<bool, Broken> {
        Ok(false)
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

fn harness() -> (Writer, Requests, WriteLoop<Flaky, Core>) {
    let (writer, requests) = Writer::new();
    let core = Core {
        got: Vec::new(),
        alive: true,
    };
    let backend = Flaky {
        log: MemoryLog::new(100, Retention::default()),
        fail_next: false,
        commits: 0,
        logins: Vec::new(),
    };
    (
        writer,
        requests,
        WriteLoop::new(backend, core, Arc::default()),
    )
}

fn append(writer: &Writer, id: u64, text: &str) {
    let request = AppendRequest {
        id,
        room: "r".into(),
        user: User::default(),
        text: text.into(),
        client_msg_id: String::new(),
        at: Time::from_micros(id),
    };
    assert!(writer.take(ChatEvent::Append(Box::new(request))).is_none());
}

/// Writes everything queued so far as one batch.
fn write_queued(requests: &Requests, w: &mut WriteLoop<Flaky, Core>) -> bool {
    // As the writer sees them without a reader: reads after writes.
    let mut batch: Vec<Request> = requests
        .writes
        .try_iter()
        .chain(requests.reads.try_iter())
        .collect();
    w.write(&mut batch)
}

#[test]
fn a_batch_is_one_commit_then_its_reads() {
    let (writer, requests, mut w) = harness();
    assert!(writer
        .take(ChatEvent::OpenRoom { room: "r".into() })
        .is_none());
    for id in 1..=3 {
        append(&writer, id, "m");
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
        token: ReadToken(9),
        room: "r".into(),
        before_seq: 0,
        limit: 10,
    };
    assert_eq!(writer.take(read), None);
    assert!(write_queued(&requests, &mut w));
    assert_eq!(w.backend.commits, 1);
    assert_eq!(w.backend.logins.len(), 1);
    let got = &w.deliver.got;
    assert_eq!(got.len(), 5, "three entries, the open, the page");
    for (i, input) in got[..3].iter().enumerate() {
        match input {
            ChatInput::Committed { id, entry, .. } => {
                assert_eq!((*id, entry.seq), (i as u64 + 1, i as u64 + 1));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(&got[3], ChatInput::RoomOpened { last_seq: 3, .. }));
    match &got[4] {
        ChatInput::HistoryPage { token, page: Ok(p) } => {
            assert_eq!(*token, ReadToken(9));
            assert_eq!(p.messages.len(), 3, "the page sees its batch's commit");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_commit_fails_its_appends_and_numbers_nothing() {
    let (writer, requests, mut w) = harness();
    w.backend.fail_next = true;
    append(&writer, 1, "a");
    append(&writer, 2, "b");
    assert!(write_queued(&requests, &mut w));
    assert_eq!(
        w.deliver.got,
        [
            ChatInput::AppendFailed {
                id: 1,
                reason: "disk full".into()
            },
            ChatInput::AppendFailed {
                id: 2,
                reason: "disk full".into()
            }
        ],
        "clients hear the cause, not the operator's context"
    );
    append(&writer, 3, "c");
    assert!(write_queued(&requests, &mut w));
    match &w.deliver.got[2] {
        ChatInput::Committed { id: 3, entry, .. } => assert_eq!(entry.seq, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_writer_stops_when_the_core_is_gone_or_the_writers_are() {
    let (writer, requests, mut w) = harness();
    w.deliver.alive = false;
    append(&writer, 1, "a");
    assert!(!write_queued(&requests, &mut w));
    let (writer, requests, w) = harness();
    append(&writer, 1, "a");
    drop(writer);
    // Returns: the queue is drained, then closed.
    drop(requests.to_writer);
    w.run(requests.writes);
}
