//! The store on an operator's bad day, with the real `chat-server` binary:
//! a read-only database, a lost one, numbering behind the stored messages,
//! a full disk, a damaged row, and a backup taken while the server runs
//! and restored. Each starts, stops or reads a server in a second or so.

#![cfg(unix)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_proto::{paths, ChatMessage, ChatRoom, HistoryPage, HistoryRequest, User};
use chat_sansio::{Code, Status};
use common::{fresh_dir, ChatServer};
use transport_h2::{CallOptions, Channel};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");

/// Starts `chat-server` on `dir` with `extra` arguments; it must serve.
fn start(dir: &Path, extra: &[&str]) -> ChatServer {
    let mut args = vec!["--data-dir", dir.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    ChatServer::start_binary(SERVER, &[], false, &args)
}

/// Runs `command` to its end (at most 20 s); its exit code and stderr.
fn run(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chat-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "chat-server did not stop: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

/// `chat-server --data-dir dir`, which must exit 1 at once with one line
/// (no panic, never serving); that line.
fn refused(mut command: Command, dir: &Path) -> String {
    command
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir);
    let (code, stderr) = run(command);
    assert_eq!(code, Some(1), "must exit 1 with a message: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

fn message(text: &str) -> ChatMessage {
    ChatMessage {
        user: Some(User {
            user_id: "u".into(),
            username: "U".into(),
            room_id: String::new(),
        }),
        message: text.into(),
        ..Default::default()
    }
}

/// Posts `texts` to `room` on one JoinChat stream, half-closes it and
/// returns the echoes (each as stored), or the stream's error.
fn post(server: &ChatServer, room: &str, texts: &[&str]) -> Result<Vec<ChatMessage>, Status> {
    let addr = server.addr().to_string();
    smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let options = CallOptions::default()
            .metadata("chat-room", room)
            .timeout(Duration::from_secs(20));
        let mut call = channel.call(paths::JOIN_CHAT, options).await?;
        for text in texts {
            call.sender.send(&message(text)).await?;
        }
        call.sender.close()?;
        let mut echoes = Vec::new();
        while let Some(m) = call.receiver.message::<ChatMessage>().await? {
            if m.presence == 0 {
                echoes.push(m);
            }
        }
        Ok(echoes)
    })
}

/// One History page of `room` (the newest 100), or the call's error.
fn history(server: &ChatServer, room: &str) -> Result<HistoryPage, Status> {
    let addr = server.addr().to_string();
    smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let mut call = channel.call(paths::HISTORY, CallOptions::default()).await?;
        let req = HistoryRequest {
            room_id: room.into(),
            before_seq: 0,
            limit: 100,
        };
        call.sender.send(&req).await?;
        call.sender.close()?;
        let page = call.receiver.message::<HistoryPage>().await?;
        call.receiver.message::<HistoryPage>().await?;
        Ok(page.expect("a page"))
    })
}

/// The history sent on JoinChatRoom to `room`, or the call's error.
fn join_history(server: &ChatServer, room: &str) -> Result<Vec<ChatMessage>, Status> {
    let addr = server.addr().to_string();
    smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let mut join = channel
            .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
            .await?;
        let user = User {
            user_id: "reader".into(),
            username: "Reader".into(),
            room_id: room.into(),
        };
        join.sender.send(&user).await?;
        let reply: ChatRoom = join.receiver.message().await?.expect("ChatRoom");
        Ok(reply.history)
    })
}

/// A JoinChat stream on `room` resuming after `epoch:after`: the seqs of
/// the chat messages it receives, until it has `want` of them or it ends
/// (then with its status).
fn resume(
    server: &ChatServer,
    room: &str,
    epoch: u64,
    after: u64,
    want: usize,
) -> (Vec<u64>, Option<Status>) {
    let addr = server.addr().to_string();
    smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let options = CallOptions::default()
            .metadata("chat-room", room)
            .metadata("chat-resume", &format!("{epoch}:{after}"))
            .timeout(Duration::from_secs(20));
        let (_tx, mut rx) = channel
            .call(paths::JOIN_CHAT, options)
            .await
            .expect("JoinChat")
            .split();
        let mut got = Vec::new();
        while got.len() < want {
            match rx.message::<ChatMessage>().await {
                Ok(Some(m)) if m.presence == 0 => got.push(m.seq),
                Ok(Some(_)) => {}
                Ok(None) => return (got, Some(Status::ok())),
                Err(status) => return (got, Some(status)),
            }
        }
        (got, None)
    })
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// A server that posted `texts` to `room` and was killed (SIGKILL): its
/// data directory with `chat.db`, `chat.db-wal` and `chat.db-shm`.
fn crashed_with(dir: &Path, room: &str, texts: &[&str]) -> Vec<ChatMessage> {
    let mut server = start(dir, &[]);
    let echoes = post(&server, room, texts).expect("posts");
    server.kill();
    echoes
}

/// `chat-server`, unable to write what its permissions forbid. Root writes
/// read-only files anyway: as root it runs without the capability that lets
/// it (CAP_DAC_OVERRIDE), as a plain user would.
fn without_privilege() -> Command {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Command::new(SERVER);
    }
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set=-dac_override,-dac_read_search", "--"])
        .arg(SERVER);
    c
}

#[test]
fn a_read_only_database_stops_the_server_at_start_up() {
    let dir = fresh_dir("read-only");
    crashed_with(&dir, "r", &["one"]);
    assert!(dir.join("chat.db-wal").exists() && dir.join("chat.db-shm").exists());
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for entry in std::fs::read_dir(&dir).unwrap() {
        mode(&entry.unwrap().path(), 0o444);
    }
    mode(&dir, 0o555);
    let err = refused(without_privilege(), &dir);
    mode(&dir, 0o755);
    assert!(err.contains("chat.db is read-only"), "{err}");
    // A writable chat.db, closed cleanly (no -wal or -shm), in a read-only
    // directory: its write-ahead log cannot be made.
    for entry in std::fs::read_dir(&dir).unwrap() {
        mode(&entry.unwrap().path(), 0o644);
    }
    let last = rusqlite::Connection::open(dir.join("chat.db")).unwrap();
    last.execute_batch("SELECT * FROM meta").unwrap();
    drop(last);
    assert!(!dir.join("chat.db-wal").exists());
    mode(&dir, 0o555);
    let err = refused(without_privilege(), &dir);
    mode(&dir, 0o755);
    assert!(err.contains("chat.db is read-only"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lost_database_is_refused_unless_the_operator_allows_a_new_one() {
    let dir = fresh_dir("lost");
    let before = crashed_with(&dir, "r", &["one", "two"]);
    std::fs::remove_file(dir.join("chat.db")).unwrap();
    let err = refused(Command::new(SERVER), &dir);
    assert!(
        err.contains("chat.db is missing or empty") && err.contains("--allow-new-database"),
        "{err}"
    );
    // An empty chat.db (a copy that went wrong) is refused the same way.
    std::fs::write(dir.join("chat.db"), b"").unwrap();
    refused(Command::new(SERVER), &dir);
    let server = start(&dir, &["--allow-new-database"]);
    let after = post(&server, "r", &["afresh"]).expect("post");
    assert_eq!(after[0].seq, 1);
    assert_ne!(
        after[0].epoch, before[0].epoch,
        "a new database, a new epoch"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numbering_behind_the_stored_messages_is_repaired_at_start_up() {
    let dir = fresh_dir("behind");
    crashed_with(&dir, "fix", &["one", "two", "three"]);
    rusqlite::Connection::open(dir.join("chat.db"))
        .and_then(|c| c.execute_batch("UPDATE rooms SET last_seq = 1 WHERE room = 'fix'"))
        .expect("set the numbering back");
    let mut server = start(&dir, &[]);
    let next = post(&server, "fix", &["four"]).expect("posts go on");
    assert_eq!(seqs(&next), [4]);
    let err = server.stderr();
    assert!(
        err.contains(r#"room "fix": last_seq was 1 behind its stored messages; set to 3"#),
        "{}",
        server.output_report()
    );
    server.assert_healthy();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_at_start_up_is_called_a_full_disk() {
    let dir = fresh_dir("full");
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink("/dev/full", dir.join("chat.db")).unwrap();
    let err = refused(Command::new(SERVER), &dir);
    assert!(err.contains("the disk holding chat.db is full"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_undecodable_row_is_left_out_not_retried_forever() {
    let dir = fresh_dir("undecodable");
    crashed_with(&dir, "r", &["one", "two", "three"]);
    // One byte of the second text flipped: no longer UTF-8.
    rusqlite::Connection::open(dir.join("chat.db"))
        .and_then(|c| {
            c.execute_batch(
                "UPDATE messages SET text = CAST(X'74FF6F' AS TEXT) WHERE room = 'r' AND seq = 2",
            )
        })
        .expect("damage a row");
    let mut server = start(&dir, &[]);
    for _ in 0..2 {
        let page = history(&server, "r").expect("History answers");
        assert_eq!(seqs(&page.messages), [1, 3]);
        let joined = join_history(&server, "r").expect("JoinChatRoom answers");
        assert_eq!(seqs(&joined), [1, 3]);
    }
    let next = post(&server, "r", &["four"]).expect("posts go on");
    assert_eq!(seqs(&next), [4]);
    let epoch = next[0].epoch;
    // A resume after the missing row goes on; one across it cannot be
    // proved complete and is told so (OUT_OF_RANGE, as across retention),
    // not to retry.
    assert_eq!(resume(&server, "r", epoch, 2, 2), (vec![3, 4], None));
    let (got, end) = resume(&server, "r", epoch, 0, 4);
    assert_eq!(got, [1], "{end:?}");
    assert_eq!(end.map(|s| s.code), Some(Code::OutOfRange));
    let logged = server
        .stderr()
        .matches(r#"room "r" seq 2 cannot be decoded"#)
        .count();
    assert_eq!(logged, 1, "{}", server.output_report());
    server.assert_healthy();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_backup_of_a_live_server_restores_its_history_and_numbering() {
    let live = fresh_dir("live");
    let server = start(&live, &[]);
    let posted = post(&server, "r", &["one", "two", "three"]).expect("posts");
    // Copying chat.db alone while the server runs misses what is still in
    // chat.db-wal: here, everything.
    let copied = fresh_dir("copied");
    std::fs::copy(live.join("chat.db"), copied.join("chat.db")).unwrap();
    {
        let from_copy = start(&copied, &[]);
        let page = history(&from_copy, "r").expect("History");
        assert!(page.messages.len() < 3, "{page:?}");
    }
    let _ = std::fs::remove_dir_all(&copied);

    let restored = fresh_dir("restored");
    let dest = restored.join("chat.db");
    let mut backup = Command::new(SERVER);
    backup.arg("backup").arg(&dest).arg("--data-dir").arg(&live);
    let (code, stderr) = run(backup);
    assert_eq!(code, Some(0), "{stderr}");
    // The live server goes on meanwhile.
    let later = post(&server, "r", &["after the backup"]).expect("post");
    assert_eq!(seqs(&later), [4]);
    drop(server);

    let server = start(&restored, &[]);
    let page = history(&server, "r").expect("History");
    assert_eq!(
        page.messages, posted,
        "the copy's history is the original's"
    );
    let next = post(&server, "r", &["on the copy"]).expect("post");
    assert_eq!(seqs(&next), [4]);
    assert_eq!(
        next[0].epoch, posted[0].epoch,
        "the same epoch: clients resume"
    );
    drop(server);
    // A backup never overwrites.
    let mut again = Command::new(SERVER);
    again.arg("backup").arg(&dest).arg("--data-dir").arg(&live);
    let (code, stderr) = run(again);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");
    let _ = std::fs::remove_dir_all(&live);
    let _ = std::fs::remove_dir_all(&restored);
}
