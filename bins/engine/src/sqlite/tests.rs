//! The store's own tests, on temporary directories.

use std::path::PathBuf;

use chat_proto::{ChatMessage, User};
use chat_sansio::chat::AppendRequest;
use chat_sansio::Time;

use super::{NewDatabase, SqliteStore, StoreError};
use crate::backend::{Backend, Login, Retention};

fn append(room: &str, text: &str, key: &str, at: i64) -> AppendRequest {
    AppendRequest {
        id: 0,
        room: room.into(),
        user: User {
            user_id: "u".into(),
            username: "U".into(),
            room_id: String::new(),
        },
        text: text.into(),
        client_msg_id: key.into(),
        at: Time::from_micros(at as u64),
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chat-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[test]
fn entries_are_numbered_survive_reopening_and_page_back() {
    let d = dir("reopen");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let fresh = s.open_room("r").unwrap();
    assert_eq!((fresh.last_seq, fresh.first_seq), (0, 1));
    let batch: Vec<_> = (1..=5)
        .map(|i| append("r", &format!("m{i}"), "", i))
        .collect();
    let appended = s.append(&batch, &[], Time::from_micros(10)).unwrap();
    assert_eq!(
        seqs(&appended.iter().map(|a| a.entry.clone()).collect::<Vec<_>>()),
        [1, 2, 3, 4, 5]
    );
    assert!(appended
        .iter()
        .all(|a| a.entry.epoch == fresh.epoch && !a.duplicate));
    drop(s);
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let state = s.open_room("r").unwrap();
    assert_eq!(
        (state.epoch, state.last_seq, state.first_seq),
        (fresh.epoch, 5, 1)
    );
    let page = s.page("r", 0, 2).unwrap();
    assert_eq!(seqs(&page.messages), [4, 5]);
    assert!(page.more);
    let page = s.page("r", 4, 10).unwrap();
    assert_eq!(seqs(&page.messages), [1, 2, 3]);
    assert!(!page.more);
    assert_eq!(page.messages[0].message, "m1");
    let (range, first) = s.range("r", 2, 4, 10).unwrap();
    assert_eq!((seqs(&range), first), (vec![3, 4], 1));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_retry_within_the_window_gets_the_original() {
    let d = dir("dedupe");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let now = Time::from_micros(1_000_000);
    let first = s
        .append(&[append("r", "hi", "k1", 1_000_000)], &[], now)
        .unwrap();
    // The retry is in the same batch as another post, after a restart.
    drop(s);
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let batch = [
        append("r", "other", "", 2_000_000),
        append("r", "hi", "k1", 2_000_000),
    ];
    let again = s.append(&batch, &[], now).unwrap();
    assert_eq!(first[0].entry.seq, 1);
    assert_eq!((again[0].entry.seq, again[0].duplicate), (2, false));
    assert_eq!((again[1].entry.seq, again[1].duplicate), (1, true));
    assert_eq!(again[1].entry.message, "hi");
    assert_eq!(s.open_room("r").unwrap().last_seq, 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn retention_keeps_the_newest_per_room_and_the_numbering() {
    let d = dir("retention");
    let retention = Retention {
        messages_per_room: 3,
        max_age: None,
        logins: 10,
        ..Retention::default()
    };
    let mut s = SqliteStore::open(&d, retention).unwrap();
    let batch: Vec<_> = (1..=10).map(|i| append("r", "x", "", i)).collect();
    s.append(&batch, &[], Time::from_micros(10)).unwrap();
    s.prune(Time::from_micros(2_000)).unwrap();
    let page = s.page("r", 0, 100).unwrap();
    assert_eq!(seqs(&page.messages), [8, 9, 10]);
    assert!(!page.more);
    let state = s.open_room("r").unwrap();
    assert_eq!((state.last_seq, state.first_seq), (10, 8));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let d = dir("garbage");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("chat.db"), vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&d, Retention::default())
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert_eq!(err.path(), d.join("chat.db"));
    let line = err.to_string();
    assert!(
        line.starts_with(&format!(
            "{}: chat.db is not a usable SQLite database: ",
            d.display()
        )),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_directory_that_cannot_be_made_is_a_clear_error() {
    let d = dir("blocked");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("file"), b"x").unwrap();
    let data = d.join("file").join("data");
    let err = SqliteStore::open(&data, Retention::default())
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: cannot create the data directory: ",
            data.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn logins_are_recorded_with_their_outcome() {
    let d = dir("logins");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let login = |user: &str, outcome| Login {
        user_id: user.into(),
        room: "r".into(),
        peer: Some("127.0.0.1:1".into()),
        outcome,
        at: Time::from_micros(5),
    };
    let refused = chat_sansio::Status::new(chat_sansio::Code::Unauthenticated, "no");
    s.append(
        &[],
        &[login("a", Ok(())), login("b", Err(refused.clone()))],
        Time::from_micros(5),
    )
    .unwrap();
    let rows: Vec<(String, String)> =
        s.db.prepare("SELECT user_id, outcome FROM logins ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(rows, [("a".to_owned(), "ok".to_owned())]);
    let rows: Vec<(String, String)> =
        s.db.prepare("SELECT user_id, outcome FROM refused_logins ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(rows, [("b".to_owned(), refused.to_string())]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A flood of refused attempts pushes out older refusals, never a
/// successful login: each trail has its own retention.
#[test]
fn a_flood_of_refusals_keeps_the_successful_logins() {
    let d = dir("refusal-flood");
    let retention = Retention {
        logins: 5,
        refused_logins: 100,
        ..Retention::default()
    };
    let mut s = SqliteStore::open(&d, retention).unwrap();
    let login = |user: &str, outcome| Login {
        user_id: user.into(),
        room: "r".into(),
        peer: Some("127.0.0.1:1".into()),
        outcome,
        at: Time::from_micros(5),
    };
    s.append(&[], &[login("alice", Ok(()))], Time::from_micros(5))
        .unwrap();
    let refused = chat_sansio::Status::new(chat_sansio::Code::Unauthenticated, "invalid token");
    let flood: Vec<_> = (0..1000)
        .map(|_| login("mallory", Err(refused.clone())))
        .collect();
    s.append(&[], &flood, Time::from_micros(6)).unwrap();
    while s.prune(Time::from_micros(7)).unwrap() {}
    let count = |sql: &str| -> i64 { s.db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM logins WHERE user_id = 'alice'"),
        1
    );
    assert_eq!(count("SELECT count(*) FROM refused_logins"), 100);
    assert_eq!(count("SELECT count(*) FROM login_attempts"), 101);
    let _ = std::fs::remove_dir_all(&d);
}

/// A database from before `refused_logins` has its refusals moved there
/// on its first start with it, once.
#[test]
fn refusals_recorded_in_logins_before_move_to_their_table() {
    let d = dir("refusal-move");
    drop(SqliteStore::open(&d, Retention::default()).unwrap());
    {
        let db = raw(&d);
        db.execute_batch(
            "DELETE FROM meta WHERE key = 'refused_logins';
             INSERT INTO logins (ts_us, user_id, room, peer, outcome)
                 VALUES (1, 'a', 'r', NULL, 'ok'), (2, 'm', 'r', NULL, 'UNAUTHENTICATED: no');",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&d, Retention::default()).unwrap();
    let count = |sql: &str| -> i64 { s.db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM logins"), 1);
    assert_eq!(count("SELECT count(*) FROM refused_logins"), 1);
    let _ = std::fs::remove_dir_all(&d);
}

/// A plain connection to the store's file, to damage it as a bad day would.
fn raw(d: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(d.join("chat.db")).unwrap()
}

#[test]
fn a_missing_database_where_one_was_is_refused_unless_allowed() {
    let d = dir("missing");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let first = s.open_room("r").unwrap().epoch;
    s.append(&[append("r", "a", "", 1)], &[], Time::from_micros(1))
        .unwrap();
    drop(s);
    // Lost: deleted, or truncated to nothing beside a write-ahead log.
    std::fs::remove_file(d.join("chat.db")).unwrap();
    let err = SqliteStore::open(&d, Retention::default())
        .err()
        .expect("must refuse");
    assert!(
        matches!(err, StoreError::NewDatabaseRefused { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--allow-new-database"), "{err}");
    std::fs::write(d.join("chat.db"), b"").unwrap();
    std::fs::write(d.join("chat.db-wal"), b"old frames").unwrap();
    let err = SqliteStore::open(&d, Retention::default())
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("chat.db-wal"), "{err}");
    // Allowed: a new database, a new epoch, the old log set aside.
    let mut s = SqliteStore::open_with(&d, Retention::default(), NewDatabase::Allowed).unwrap();
    let state = s.open_room("r").unwrap();
    assert_eq!(state.last_seq, 0);
    assert_ne!(state.epoch, first);
    let aside = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("set-aside"))
        .count();
    assert_eq!(aside, 1);
    drop(s);
    // And from then on it opens as usual.
    SqliteStore::open(&d, Retention::default()).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn numbering_behind_the_stored_messages_is_repaired_at_start_up() {
    let d = dir("repair");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let batch = [
        append("r", "1", "", 1),
        append("r", "2", "", 2),
        append("r", "3", "", 3),
        append("q", "1", "", 4),
        append("q", "2", "", 5),
    ];
    s.append(&batch, &[], Time::from_micros(10)).unwrap();
    let epoch = s.open_room("q").unwrap().epoch;
    drop(s);
    raw(&d)
        .execute_batch(
            "UPDATE rooms SET last_seq = 1 WHERE room = 'r'; DELETE FROM rooms WHERE room = 'q';",
        )
        .unwrap();
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    assert_eq!(s.open_room("r").unwrap().last_seq, 3);
    assert_eq!(s.open_room("q").unwrap().last_seq, 2);
    assert_eq!(s.open_room("q").unwrap().epoch, epoch);
    let next = s
        .append(
            &[append("r", "4", "", 6), append("q", "3", "", 6)],
            &[],
            Time::from_micros(10),
        )
        .unwrap();
    assert_eq!((next[0].entry.seq, next[1].entry.seq), (4, 3));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_undecodable_row_is_left_out_of_reads_and_reported_once() {
    let d = dir("undecodable");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let batch: Vec<_> = (1..=3)
        .map(|i| append("r", &format!("m{i}"), &format!("k{i}"), i))
        .collect();
    s.append(&batch, &[], Time::from_micros(10)).unwrap();
    // One byte of a stored text flipped: no longer UTF-8.
    raw(&d)
        .execute_batch("UPDATE messages SET text = CAST(X'6DFF' AS TEXT) WHERE seq = 2")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(seqs(&s.page("r", 0, 10).unwrap().messages), [1, 3]);
        let (range, first) = s.range("r", 0, 3, 10).unwrap();
        assert_eq!((seqs(&range), first), (vec![1, 3], 1));
    }
    // A limit counts what is answered, not what was left out.
    assert_eq!(seqs(&s.range("r", 0, 3, 2).unwrap().0), [1, 3]);
    assert_eq!(s.reported.len(), 1);
    // A retry of the damaged post is still its original number.
    let again = s
        .append(&[append("r", "m2", "k2", 20)], &[], Time::from_micros(20))
        .unwrap();
    assert_eq!((again[0].entry.seq, again[0].duplicate), (2, true));
    let _ = std::fs::remove_dir_all(&d);
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_at_start_up_says_so() {
    let d = dir("full");
    std::fs::create_dir_all(&d).unwrap();
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink("/dev/full", d.join("chat.db")).unwrap();
    let err = SqliteStore::open(&d, Retention::default())
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: the disk holding chat.db is full",
            d.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_backup_taken_while_open_holds_every_commit_and_numbering_goes_on() {
    let d = dir("backup");
    let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
    let batch: Vec<_> = (1..=3).map(|i| append("r", "x", "", i)).collect();
    s.append(&batch, &[], Time::from_micros(10)).unwrap();
    let epoch = s.open_room("r").unwrap().epoch;
    // The store stays open: its commits are in the -wal, not yet chat.db.
    let copy = d.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let size = super::backup(&d, &copy.join("chat.db")).unwrap();
    assert!(size > 0);
    let err = super::backup(&d, &copy.join("chat.db")).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    let mut restored = SqliteStore::open(&copy, Retention::default()).unwrap();
    let state = restored.open_room("r").unwrap();
    assert_eq!((state.epoch, state.last_seq), (epoch, 3));
    let next = restored
        .append(&[append("r", "y", "", 4)], &[], Time::from_micros(10))
        .unwrap();
    assert_eq!(next[0].entry.seq, 4);
    drop(s);
    let _ = std::fs::remove_dir_all(&d);
}

/// Retention deletes a bounded amount a run, says when there is more, and
/// gets through a backlog over several runs.
#[test]
fn retention_works_through_a_backlog_in_bounded_runs() {
    let d = dir("retention-backlog");
    let retention = Retention {
        messages_per_room: 10,
        max_age: None,
        ..Retention::default()
    };
    let mut s = SqliteStore::open(&d, retention).unwrap();
    let batch: Vec<_> = (1..=650).map(|i| append("r", "x", "", i)).collect();
    s.append(&batch, &[], Time::from_micros(3_000)).unwrap();
    let count = |s: &SqliteStore| -> i64 {
        s.db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let mut runs = 0;
    while s.prune(Time::from_micros(4_000)).unwrap() {
        runs += 1;
        assert!(count(&s) >= 10, "never past the rule");
        assert!(runs < 10, "a backlog of 640 takes a few runs");
    }
    assert_eq!(runs, 2, "250 rows a run: two full runs, then the rest");
    assert_eq!(count(&s), 10);
    assert_eq!(s.page("r", 0, 100).unwrap().messages[0].seq, 641);
    let _ = std::fs::remove_dir_all(&d);
}

/// Through the writer and its reader thread: a page asked once an entry is
/// committed sees it (the reader's connection reads the last commit).
#[test]
fn reads_on_their_own_thread_see_what_was_committed() {
    use chat_sansio::chat::{ChatEvent, ChatInput, ReadToken};
    let d = dir("reader-thread");
    let store = SqliteStore::open(&d, Retention::default()).unwrap();
    let (writer, requests) = crate::Writer::new();
    let (tx, rx) = std::sync::mpsc::channel::<ChatInput>();
    crate::start_writer(store, requests, move |input| tx.send(input).is_ok()).unwrap();
    let wait = || rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert!(writer
        .take(ChatEvent::Append(Box::new(append("r", "hello", "", 1))))
        .is_none());
    assert!(matches!(wait(), ChatInput::Committed { .. }));
    let read = ChatEvent::ReadHistory {
        token: ReadToken(4),
        room: "r".into(),
        before_seq: 0,
        limit: 10,
    };
    assert!(writer.take(read).is_none());
    match wait() {
        ChatInput::HistoryPage {
            token,
            page: Ok(page),
        } => {
            assert_eq!(token, ReadToken(4));
            assert_eq!(page.messages.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    drop(writer);
    let _ = std::fs::remove_dir_all(&d);
}
