//! The durable store: SQLite in `<data-dir>/chat.db` (rusqlite, bundled).
//!
//! Messages are written by a thread of its own, in batches: every request
//! that has arrived while the previous batch was being written goes into one
//! transaction with one fsync (group commit). Only then does the core hear
//! that they are durable and deliver them. Login records go to the same
//! database. See the README ("Durable history") for the schema and queries.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::{Chat, ChatEvent, ChatInput};
use chat_sansio::server::CallId;
use chat_sansio::Time;
use rusqlite::{params, Connection, OpenFlags};
use transport_h2::InputSender;

/// Most requests written in one transaction.
const MAX_BATCH: usize = 8192;
/// How often the writer logs its group-commit statistics.
const STATS_EVERY: Duration = Duration::from_secs(10);
/// How often retention runs, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// How much history the store keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Messages kept per room (the newest).
    pub messages_per_room: u64,
    /// Messages older than this are deleted; `None` keeps them.
    pub max_age: Option<Duration>,
    /// Login records kept (the newest).
    pub logins: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            messages_per_room: 100_000,
            max_age: Some(Duration::from_secs(365 * 24 * 3600)),
            logins: 1_000_000,
        }
    }
}

/// Why the store cannot be used.
#[derive(Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// The database.
pub struct Store {
    db: Connection,
    path: PathBuf,
    retention: Retention,
    last_prune: Instant,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room     TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    user_id  TEXT    NOT NULL,
    username TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    ts_us    INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (ts_us);
CREATE TABLE IF NOT EXISTS logins (
    id      INTEGER PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    peer    TEXT,
    outcome TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_by_time ON logins (ts_us);
";

impl Store {
    /// Opens (creating on first run) `dir/chat.db`. Every problem (a
    /// directory that cannot be made or written, a file that is not a
    /// database or is damaged) is a clear error here, before serving.
    pub fn open(dir: &Path, retention: Retention) -> Result<Store, StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError(format!("{}: {what}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the data directory", &e))?;
        let path = dir.join("chat.db");
        let db = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail("cannot open chat.db", &e))?;
        // WAL with synchronous=FULL: each commit is fsynced, so a message is
        // on disk before anyone is told about it, even across power loss.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| fail("chat.db is not a usable SQLite database", &e))?;
        let check: String = db
            .query_row("PRAGMA quick_check(3)", [], |r| r.get(0))
            .map_err(|e| fail("chat.db failed its integrity check", &e))?;
        if check != "ok" {
            let why = format!(
                "{} (restore it from a backup, or move it aside to start afresh)",
                check.replace('\n', "; ")
            );
            return Err(fail("chat.db failed its integrity check", &why));
        }
        db.execute_batch(SCHEMA)
            .map_err(|e| fail("cannot set up chat.db", &e))?;
        // Prove the directory is writable now rather than at the first post.
        db.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(|e| fail("chat.db cannot be written", &e))?;
        Ok(Store {
            db,
            path,
            retention,
            last_prune: Instant::now(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives every stored room, its numbering and its newest `recent`
    /// messages to the chat, before it serves.
    pub fn restore_into(&self, chat: &mut Chat, recent: usize) -> Result<usize, StoreError> {
        let err =
            |e: rusqlite::Error| StoreError(format!("{}: cannot read: {e}", self.path.display()));
        let mut rooms = self
            .db
            .prepare("SELECT room, last_seq FROM rooms")
            .map_err(err)?;
        let rooms: Vec<(String, u64)> = rooms
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        for (room, last_seq) in &rooms {
            let (mut messages, _) = self.page(room, 0, recent as u32).map_err(err)?;
            messages.retain(|m| m.seq <= *last_seq);
            chat.restore(room, *last_seq, messages);
        }
        Ok(rooms.len())
    }

    /// Up to `limit` messages of `room` numbered below `before` (0: the
    /// newest), oldest first, and whether older ones exist.
    pub fn page(
        &self,
        room: &str,
        before: u64,
        limit: u32,
    ) -> rusqlite::Result<(Vec<ChatMessage>, bool)> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let mut stmt = self.db.prepare_cached(
            "SELECT seq, user_id, username, text, ts_us FROM messages
             WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let mut messages: Vec<ChatMessage> = stmt
            .query_map(params![room, before, i64::from(limit) + 1], |r| {
                Ok(ChatMessage {
                    user: Some(User {
                        user_id: r.get(1)?,
                        username: r.get(2)?,
                        room_id: String::new(),
                    }),
                    message: r.get(3)?,
                    room_id: room.to_owned(),
                    seq: r.get::<_, i64>(0)? as u64,
                    timestamp_us: r.get(4)?,
                    presence: 0,
                })
            })?
            .collect::<Result<_, _>>()?;
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, more))
    }

    /// Writes a batch in one transaction (one fsync).
    fn commit(&mut self, messages: &[ChatMessage], logins: &[ChatEvent]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, user_id, username, text, ts_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut room = tx.prepare_cached(
                "INSERT INTO rooms (room, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            for m in messages {
                let user = m.user.clone().unwrap_or_default();
                insert.execute(params![
                    m.room_id,
                    m.seq as i64,
                    user.user_id,
                    user.username,
                    m.message,
                    m.timestamp_us
                ])?;
                room.execute(params![m.room_id, m.seq as i64])?;
            }
            let mut login = tx.prepare_cached(
                "INSERT INTO logins (ts_us, user_id, room, peer, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in logins {
                if let ChatEvent::Login {
                    user_id,
                    room,
                    peer,
                    outcome,
                    at,
                } = e
                {
                    let outcome = match outcome {
                        Ok(()) => "ok".to_owned(),
                        Err(status) => status.to_string(),
                    };
                    login.execute(params![micros(*at), user_id, room, peer, outcome])?;
                }
            }
        }
        tx.commit()
    }

    /// Applies the retention rules, at most every few seconds.
    fn prune(&mut self, now: Time) -> rusqlite::Result<()> {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return Ok(());
        }
        self.last_prune = Instant::now();
        let keep = self.retention.messages_per_room.min(i64::MAX as u64) as i64;
        self.db.execute(
            "DELETE FROM messages WHERE seq <= (SELECT last_seq FROM rooms WHERE rooms.room = messages.room) - ?1",
            params![keep],
        )?;
        if let Some(age) = self.retention.max_age {
            let cutoff = micros(now).saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
            self.db
                .execute("DELETE FROM messages WHERE ts_us < ?1", params![cutoff])?;
            self.db
                .execute("DELETE FROM logins WHERE ts_us < ?1", params![cutoff])?;
        }
        let keep = self.retention.logins.min(i64::MAX as u64) as i64;
        self.db.execute(
            "DELETE FROM logins WHERE id <= (SELECT max(id) FROM logins) - ?1",
            params![keep],
        )?;
        Ok(())
    }
}

fn micros(t: Time) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}

/// What the writer thread is asked to do.
enum Request {
    Persist {
        epoch: u64,
        id: u64,
        message: ChatMessage,
    },
    Login(ChatEvent),
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
    /// [`start_writer`] runs (the server must exist first, to answer it).
    pub fn new() -> (Writer, Requests) {
        let (tx, rx) = mpsc::channel();
        (Writer { tx }, Requests(rx))
    }

    /// Takes the storage events (Persist and ReadHistory; Login is copied
    /// into the store) and returns the rest, for the console.
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
            login @ ChatEvent::Login { .. } => {
                let _ = self.tx.send(Request::Login(login.clone()));
                return Some(login);
            }
            other => return Some(other),
        };
        let _ = self.tx.send(request);
        None
    }
}

/// Starts the writer thread on `store`; durability and pages go back to the
/// core through `inputs`.
pub fn start_writer(
    store: Store,
    requests: Requests,
    inputs: InputSender<ChatInput>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || write_loop(store, requests.0, inputs))?;
    Ok(())
}

fn write_loop(mut store: Store, rx: Receiver<Request>, inputs: InputSender<ChatInput>) {
    // Requests of an epoch whose writes failed are dropped: the core has
    // given them up and numbers their successors afresh.
    let mut dead_epoch: Option<u64> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stats = (0u64, 0u64, Instant::now()); // messages, commits, since
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut messages = Vec::new();
        let mut logins = Vec::new();
        let mut reads = Vec::new();
        let mut last: Option<(u64, u64)> = None;
        for r in batch.drain(..) {
            match r {
                Request::Persist { epoch, id, message } => {
                    if dead_epoch.is_some_and(|d| epoch <= d) {
                        continue;
                    }
                    last = Some((epoch, id));
                    messages.push(message);
                }
                Request::Login(e) => logins.push(e),
                Request::Read {
                    call,
                    room,
                    before,
                    limit,
                } => reads.push((call, room, before, limit)),
            }
        }
        if !messages.is_empty() || !logins.is_empty() {
            let now = logins.iter().find_map(|e| match e {
                ChatEvent::Login { at, .. } => Some(*at),
                _ => None,
            });
            let result = store.commit(&messages, &logins);
            if result.is_ok() {
                stats.0 += messages.len() as u64;
                stats.1 += 1;
                if stats.2.elapsed() >= STATS_EVERY {
                    let secs = stats.2.elapsed().as_secs_f64();
                    tracing::info!(
                        "store: {} messages in {} commits in {secs:.0} s ({:.1} per commit)",
                        stats.0,
                        stats.1,
                        stats.0 as f64 / stats.1 as f64
                    );
                    stats = (0, 0, Instant::now());
                }
            }
            match (result, last) {
                (Ok(()), Some((epoch, up_to))) => {
                    if !inputs.send_blocking(ChatInput::Durable { epoch, up_to }) {
                        return;
                    }
                }
                (Ok(()), None) => {}
                (Err(e), last) => {
                    tracing::error!("cannot write to {}: {e}", store.path().display());
                    if let Some((epoch, _)) = last {
                        dead_epoch = Some(epoch);
                        let reason = e.to_string();
                        if !inputs.send_blocking(ChatInput::StoreFailed { epoch, reason }) {
                            return;
                        }
                    }
                }
            }
            let now = now.or_else(|| {
                messages
                    .last()
                    .map(|m| Time::from_micros(m.timestamp_us.max(0) as u64))
            });
            if let Some(now) = now {
                if let Err(e) = store.prune(now) {
                    tracing::warn!("retention failed: {e}");
                }
            }
        }
        for (call, room, before, limit) in reads {
            let page = store
                .page(&room, before, limit)
                .map(|(messages, more)| HistoryPage {
                    room_id: room.clone(),
                    messages,
                    more,
                })
                .map_err(|e| e.to_string());
            if !inputs.send_blocking(ChatInput::HistoryPage { call, page }) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room: &str, seq: u64, text: &str) -> ChatMessage {
        ChatMessage {
            user: Some(User {
                user_id: "u".into(),
                username: "U".into(),
                room_id: String::new(),
            }),
            message: text.into(),
            room_id: room.into(),
            seq,
            timestamp_us: 1_000 + seq as i64,
            presence: 0,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chat-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn messages_survive_reopening_and_page_back() {
        let d = dir("reopen");
        let mut s = Store::open(&d, Retention::default()).unwrap();
        let batch: Vec<_> = (1..=5).map(|i| message("r", i, &format!("m{i}"))).collect();
        s.commit(&batch, &[]).unwrap();
        drop(s);
        let s = Store::open(&d, Retention::default()).unwrap();
        let (page, more) = s.page("r", 0, 2).unwrap();
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(more);
        let (page, more) = s.page("r", 4, 10).unwrap();
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(!more);
        assert_eq!(page[0], message("r", 1, "m1"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn retention_keeps_the_newest_per_room_and_the_numbering() {
        let d = dir("retention");
        let retention = Retention {
            messages_per_room: 3,
            max_age: None,
            logins: 10,
        };
        let mut s = Store::open(&d, retention).unwrap();
        let batch: Vec<_> = (1..=10).map(|i| message("r", i, "x")).collect();
        s.commit(&batch, &[]).unwrap();
        s.last_prune = Instant::now() - PRUNE_EVERY;
        s.prune(Time::from_micros(2_000)).unwrap();
        let (page, more) = s.page("r", 0, 100).unwrap();
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [8, 9, 10]);
        assert!(!more);
        let mut chat = Chat::default();
        assert_eq!(s.restore_into(&mut chat, 50).unwrap(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let d = dir("garbage");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("chat.db"), vec![0x42u8; 8192]).unwrap();
        let err = Store::open(&d, Retention::default())
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("chat.db"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
