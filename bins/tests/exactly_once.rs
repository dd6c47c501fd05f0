//! Exactly once across crashes, through the seed's own client library:
//! Python grpcio posters and readers (`tests/python/exactly_once.py`)
//! against the real `chat-server` in its default durable mode, killed with
//! SIGKILL twice while they run and restarted each time on the same address
//! and data directory. Posters retry every post with its `client_msg_id`
//! until echoed; readers resume with `chat-resume`, one of them from far
//! behind the room. The script checks that History holds every post once,
//! numbered without gaps, and that every reader received each message
//! once, in order; this side checks the database too. See
//! `common/python.rs` for the Python environment.

// Scripts are run in their own process group, to kill what they start.
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::python::{spawn_script, RunningScript};
use common::{fresh_dir, ChatServer};

const SCRIPT: &str = "exactly_once.py";
/// The script's room.
const ROOM: &str = "exactly-once";
const POSTERS: u64 = 3;
const PER_POSTER: u64 = 100;
/// The server is killed once every poster could have this many messages
/// stored (on average)...
const KILL_AT: [u64; 2] = [20, 50];
/// ...and a poster posts its message number `GATES[k]` only after the
/// `k + 1`th kill, so the crashes come while the posters are busy and
/// none of them has finished.
const GATES: [u64; 2] = [30, 70];
/// Where the lagging reader stops reading: until the first crash, then
/// until all is posted (300 - 40 messages to catch up: more than one page,
/// `chat_sansio::limits::RESUME_PAGE`).
const LAGS: [u64; 2] = [15, 40];
/// The longest the whole run may take (the script gives up a little
/// earlier, with the state of each client).
const LIMIT: Duration = Duration::from_secs(120);

/// Writes the number of kills so far where the script's posters read it
/// (by renaming, so they never read half a file).
fn tell_kills(file: &Path, kills: usize) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, kills.to_string()).expect("write the kills file");
    std::fs::rename(&tmp, file).expect("rename the kills file");
}

/// The `client_msg_id`s of the room's messages in the database.
fn stored_ids(db: &Path) -> HashSet<String> {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            let mut stmt = c.prepare("SELECT client_msg_id FROM messages WHERE room = ?1")?;
            let ids = stmt.query_map([ROOM], |r| r.get(0))?;
            ids.collect()
        })
        .expect("read the database")
}

/// The number of the room's messages in the database once there are at
/// least `want`; `None` if the script ends or time runs out first.
fn wait_for_stored(
    db: &Path,
    want: u64,
    script: &mut RunningScript,
    deadline: Instant,
) -> Option<u64> {
    loop {
        let stored = rusqlite::Connection::open(db)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM messages WHERE room = ?1",
                    [ROOM],
                    |r| r.get::<_, i64>(0),
                )
            })
            .map_or(0, |n| n as u64);
        if stored >= want {
            return Some(stored);
        }
        if script.has_exited() || Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn posts_and_resumes_are_exactly_once_across_kill_9() {
    let began = Instant::now();
    let deadline = began + LIMIT;
    let dir = fresh_dir("exactly-once");
    let kills_file = dir.join("kills");
    tell_kills(&kills_file, 0);
    let db = dir.join("chat.db");
    let mut server = ChatServer::start_on("127.0.0.1:0".parse().unwrap(), &dir, deadline);
    let addr = server.addr();
    let list = |numbers: [u64; 2]| numbers.map(|n| n.to_string()).join(",");
    let args = [
        kills_file.to_str().expect("a UTF-8 path"),
        &POSTERS.to_string(),
        &PER_POSTER.to_string(),
        &list(GATES),
        &list(LAGS),
    ];
    let mut script = spawn_script(SCRIPT, &addr.to_string(), &args);
    let mut reports = Vec::new();
    let mut stored_before_a_kill = HashSet::new();
    for (kills, at) in KILL_AT.into_iter().enumerate() {
        let Some(stored) = wait_for_stored(&db, POSTERS * at, &mut script, deadline) else {
            reports.push(server.output_report());
            let report = reports.join("\n--- after a restart ---\n");
            script.wait(LIMIT).passed(SCRIPT, &report);
            panic!(
                "{SCRIPT} passed before the server was killed {} times",
                kills + 1
            );
        };
        server.assert_healthy();
        server.kill();
        let killed = Instant::now();
        reports.push(server.output_report());
        stored_before_a_kill.extend(stored_ids(&db));
        tell_kills(&kills_file, kills + 1);
        server = ChatServer::start_on(addr, &dir, deadline);
        eprintln!(
            "killed the server {:.1?} in, with {stored} messages stored; up again in {:.1?}",
            killed - began,
            killed.elapsed()
        );
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let run = script.wait(left);
    reports.push(server.output_report());
    let out = run.passed(SCRIPT, &reports.join("\n--- after a restart ---\n"));
    server.assert_healthy();
    if let Some(summary) = out.lines().find(|l| l.starts_with("summary: ")) {
        eprintln!("{summary}");
    }
    // A post sent again that the killed server had stored (its echo lost
    // with the server) is one the store's dedupe answered.
    let deduped = out
        .lines()
        .find_map(|l| l.strip_prefix("sent again: "))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|id| stored_before_a_kill.contains(*id))
        .count();
    eprintln!("{deduped} of the posts sent again had been stored before the kill");
    for line in out.lines().filter(|l| l.contains(" resumed from: ")) {
        eprintln!("{line}");
    }

    // The database agrees: every post once, numbered 1..M.
    let (rows, keys, last): (i64, i64, i64) = rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*), count(DISTINCT user_id || ' ' || client_msg_id), max(seq)
                 FROM messages WHERE room = ?1",
                [ROOM],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .expect("query the database");
    let total = (POSTERS * PER_POSTER) as i64;
    assert_eq!((rows, keys, last), (total, total, total));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("exactly once across two crashes in {:.1?}", began.elapsed());
}
