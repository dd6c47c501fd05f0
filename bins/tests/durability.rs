//! Durable history: the real server binary, killed with SIGKILL at random
//! moments while clients post, restarted on the same data directory. After
//! every crash: every message any client received is in the stored history,
//! per-room numbers go on without gaps or duplicates, and history on join
//! comes from the store. A post retried with its `client_msg_id` after a
//! crash is stored once and echoed with its first number. Also: a bad data
//! directory is a clear error at start-up, never a panic.

#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_proto::{paths, ChatMessage, ChatRoom, HistoryPage, HistoryRequest, User};
use common::{fresh_dir, ChatServer};
use transport_h2::{CallOptions, CallReceiver, CallSender, Channel};

const ROOMS: [&str; 2] = ["r1", "r2"];
const ROUNDS: usize = 5;

fn start(dir: &std::path::Path) -> ChatServer {
    let dir = dir.to_str().expect("UTF-8 path");
    ChatServer::start_binary(
        env!("CARGO_BIN_EXE_chat-server"),
        &[],
        false,
        &["--data-dir", dir],
    )
}

/// A tiny deterministic generator; the seed is printed so a failure can be
/// replayed with CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The whole stored history of `room`, paged back with the History RPC.
async fn stored(channel: &Channel, room: &str) -> Vec<ChatMessage> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let mut call = channel
            .call(paths::HISTORY, CallOptions::default())
            .await
            .expect("History");
        let req = HistoryRequest {
            room_id: room.into(),
            before_seq: before,
            limit: 100,
        };
        call.sender.send(&req).await.expect("send");
        call.sender.close().expect("close");
        let page: HistoryPage = call
            .receiver
            .message()
            .await
            .expect("page")
            .expect("a page");
        assert!(call
            .receiver
            .message::<HistoryPage>()
            .await
            .expect("OK")
            .is_none());
        let first = page.messages.first().map(|m| m.seq);
        let mut messages = page.messages;
        messages.extend(all);
        all = messages;
        match (page.more, first) {
            (true, Some(seq)) => before = seq,
            _ => return all,
        }
    }
}

/// One round: subscribers and publishers until the server is killed.
/// Returns what every client received, as (room, seq) -> text.
fn round(
    server: &mut ChatServer,
    rng: &mut Rng,
    last: &HashMap<String, u64>,
) -> Vec<(String, u64, String)> {
    let addr = server.addr().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let run_for = Duration::from_millis(200 + rng.below(400));
    let publishers = 1 + rng.below(3) as usize;
    let got = received.clone();
    let last = last.clone();
    let tasks = smol::block_on(async move {
        let mut tasks = Vec::new();
        for room in ROOMS {
            let channel = Channel::connect(&addr).await.expect("connect");
            let options = CallOptions::default().metadata("chat-room", room);
            let (_tx, mut rx) = channel
                .call(paths::JOIN_CHAT, options)
                .await
                .expect("JoinChat")
                .split();
            let got = got.clone();
            let want_first = last.get(room).copied().unwrap_or(0) + 1;
            tasks.push(smol::spawn(async move {
                let _keep = (channel, _tx);
                let mut expected = want_first;
                while let Ok(Some(m)) = rx.message::<ChatMessage>().await {
                    if m.presence != 0 {
                        continue;
                    }
                    // A subscriber from the start sees every number, in
                    // order, starting right after what the store had.
                    assert_eq!(m.seq, expected, "gap or duplicate in {}: {m:?}", m.room_id);
                    expected += 1;
                    got.lock().unwrap().push((m.room_id, m.seq, m.message));
                }
            }));
        }
        for p in 0..publishers {
            let channel = Channel::connect(&addr).await.expect("connect");
            let room = ROOMS[p % ROOMS.len()];
            let options = CallOptions::default().metadata("chat-room", room);
            let (mut tx, mut rx) = channel
                .call(paths::JOIN_CHAT, options)
                .await
                .expect("JoinChat")
                .split();
            let got = got.clone();
            tasks.push(smol::spawn(async move {
                let _keep = channel;
                // Echoes are deliveries too.
                let reader = smol::spawn(async move {
                    while let Ok(Some(m)) = rx.message::<ChatMessage>().await {
                        if m.presence == 0 {
                            got.lock().unwrap().push((m.room_id, m.seq, m.message));
                        }
                    }
                });
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                for i in 0.. {
                    let msg = ChatMessage {
                        user: Some(User {
                            user_id: format!("p{p}"),
                            username: format!("publisher {p}"),
                            room_id: String::new(),
                        }),
                        message: format!("{stamp}-{p}-{i}"),
                        ..Default::default()
                    };
                    if tx.send(&msg).await.is_err() {
                        break;
                    }
                    if i % 8 == 0 {
                        smol::Timer::after(Duration::from_millis(1)).await;
                    }
                }
                reader.await;
            }));
        }
        smol::Timer::after(run_for).await;
        tasks
    });
    server.kill();
    smol::block_on(async {
        for t in tasks {
            t.await;
        }
    });
    let got = received.lock().unwrap().clone();
    got
}

#[test]
fn nothing_received_is_lost_across_crashes() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = fresh_dir("crash");
    let mut received: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for n in 0..ROUNDS {
        let mut server = start(&dir);
        let got = round(&mut server, &mut rng, &last);
        assert!(!got.is_empty(), "round {n}: nothing was delivered");
        for (room, seq, text) in got {
            if let Some(prev) = received.insert((room.clone(), seq), text.clone()) {
                assert_eq!(
                    prev, text,
                    "two different messages numbered {seq} in {room}"
                );
            }
            let l = last.entry(room).or_default();
            *l = (*l).max(seq);
        }
        // What the store has may run ahead of what anyone received (written,
        // then killed before delivery); numbering resumes after the store.
        let server = start(&dir);
        let addr = server.addr().to_string();
        smol::block_on(async {
            let channel = Channel::connect(&addr).await.expect("connect");
            for room in ROOMS {
                let history = stored(&channel, room).await;
                if let Some(m) = history.last() {
                    last.insert(room.to_owned(), m.seq);
                }
            }
        });
        drop(server);
    }

    // The contract, checked against the store after the last crash.
    let server = start(&dir);
    let addr = server.addr().to_string();
    smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        for room in ROOMS {
            let history = stored(&channel, room).await;
            let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
            let want: Vec<u64> = (1..=history.len() as u64).collect();
            assert_eq!(seqs, want, "{room}: stored numbers have gaps or duplicates");
            let by_seq: HashMap<u64, &str> = history
                .iter()
                .map(|m| (m.seq, m.message.as_str()))
                .collect();
            for ((r, seq), text) in &received {
                if r == room {
                    assert_eq!(
                        by_seq.get(seq),
                        Some(&text.as_str()),
                        "{room} #{seq} was received but is not stored"
                    );
                }
            }
            // History on join comes from the store.
            let mut join = channel
                .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
                .await
                .expect("join");
            let user = User {
                user_id: "checker".into(),
                username: "Checker".into(),
                room_id: room.into(),
            };
            join.sender.send(&user).await.expect("send");
            let reply: ChatRoom = join
                .receiver
                .message()
                .await
                .expect("ok")
                .expect("ChatRoom");
            let tail: Vec<&str> = history
                .iter()
                .rev()
                .take(50)
                .rev()
                .map(|m| m.message.as_str())
                .collect();
            let got: Vec<&str> = reply.history.iter().map(|m| m.message.as_str()).collect();
            assert_eq!(got, tail, "{room}: history on join is not the store's");
        }
    });
    eprintln!(
        "{} messages received over {ROUNDS} crashes, all stored",
        received.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The room of the retry test, and the longest any of its calls may take.
const RETRY_ROOM: &str = "retry";
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// A JoinChat stream pinned to [`RETRY_ROOM`] on a connection of its own.
async fn retry_stream(addr: &str) -> (Channel, CallSender, CallReceiver) {
    let channel = Channel::connect(addr).await.expect("connect");
    let options = CallOptions::default()
        .metadata("chat-room", RETRY_ROOM)
        .timeout(CALL_LIMIT);
    let (tx, rx) = channel
        .call(paths::JOIN_CHAT, options)
        .await
        .expect("JoinChat")
        .split();
    (channel, tx, rx)
}

fn chat_message(user_id: &str, text: &str, client_msg_id: &str) -> ChatMessage {
    ChatMessage {
        user: Some(User {
            user_id: user_id.into(),
            username: format!("name of {user_id}"),
            room_id: String::new(),
        }),
        message: text.into(),
        client_msg_id: client_msg_id.into(),
        ..Default::default()
    }
}

/// The next chat message (not a presence notice) on a stream.
async fn next_chat(rx: &mut CallReceiver) -> ChatMessage {
    loop {
        let m: ChatMessage = rx
            .message()
            .await
            .expect("the stream goes on")
            .expect("a message before the end");
        if m.presence == 0 {
            return m;
        }
    }
}

/// Posts `text` from `poster` as `client_msg_id` on a new stream, and
/// returns its echo once the stream has ended OK after a half-close.
async fn post(addr: &str, client_msg_id: &str, text: &str) -> ChatMessage {
    let (_channel, mut tx, mut rx) = retry_stream(addr).await;
    tx.send(&chat_message("poster", text, client_msg_id))
        .await
        .expect("send");
    let echo = loop {
        let m = next_chat(&mut rx).await;
        if m.client_msg_id == client_msg_id {
            break m;
        }
    };
    tx.close().expect("half-close");
    while let Some(m) = rx.message::<ChatMessage>().await.expect("ends OK") {
        assert!(
            m.presence != 0 || m.client_msg_id != client_msg_id,
            "{client_msg_id} echoed twice: {m:?}"
        );
    }
    echo
}

/// A post acknowledged (echoed) before a SIGKILL, retried after the
/// restart with the same `client_msg_id`: the echo is the stored original
/// (same number, time and epoch), no member of the room receives it again,
/// the history holds it once, and a post with a new id is numbered next.
#[test]
fn a_post_retried_after_a_crash_is_stored_once() {
    let dir = fresh_dir("retry");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut server = ChatServer::start_on("127.0.0.1:0".parse().unwrap(), &dir, deadline);
    let addr = server.addr();
    let first = smol::block_on(post(&addr.to_string(), "m-1", "only once"));
    assert_eq!(first.seq, 1, "{first:?}");
    // A retry while the server runs is the same message too.
    let again = smol::block_on(post(&addr.to_string(), "m-1", "only once"));
    assert_eq!(again, first, "a retry before the crash");
    server.kill();

    let mut server = ChatServer::start_on(addr, &dir, deadline);
    let addr = addr.to_string();
    smol::block_on(async {
        // A member of the room from before the retry: its own post, echoed,
        // proves it receives what the room delivers from then on.
        let (_observer, mut otx, mut orx) = retry_stream(&addr).await;
        otx.send(&chat_message("observer", "here", ""))
            .await
            .expect("send");
        let here = next_chat(&mut orx).await;
        assert_eq!((here.message.as_str(), here.seq), ("here", 2), "{here:?}");

        let retried = post(&addr, "m-1", "only once").await;
        assert_eq!(retried, first, "the retry's echo is the stored original");
        let next = post(&addr, "m-2", "a new one").await;
        assert_eq!(next.seq, here.seq + 1, "{next:?}");
        assert_eq!(next.epoch, first.epoch, "{next:?}");
        // The room delivers in order: had the retry gone to the room, the
        // observer would have it before m-2.
        let seen = next_chat(&mut orx).await;
        assert_eq!(seen, next, "the observer's next message after its own");

        let channel = Channel::connect(&addr).await.expect("connect");
        let history = stored(&channel, RETRY_ROOM).await;
        let got: Vec<(u64, &str)> = history
            .iter()
            .map(|m| (m.seq, m.client_msg_id.as_str()))
            .collect();
        assert_eq!(got, [(1, "m-1"), (2, ""), (3, "m-2")], "{history:#?}");
    });
    server.assert_healthy();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the server on `data_dir`, which must make it exit 1 at once with a
/// message (not start serving, not panic); returns its stderr.
fn start_fails(data_dir: &std::path::Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run chat-server");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "chat-server started on a bad data directory: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "must exit 1 with a message: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_bad_data_directory_is_a_clear_error_at_start_up() {
    let dir = fresh_dir("bad");
    // Not a database.
    std::fs::write(
        dir.join("chat.db"),
        b"this is not a database, just text".repeat(200),
    )
    .unwrap();
    let err = start_fails(&dir);
    assert!(
        err.contains("chat.db") && err.contains("not a usable SQLite database"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // A damaged database: a real one with its pages overwritten.
    let dir = fresh_dir("damaged");
    {
        let mut server = start(&dir);
        let addr = server.addr().to_string();
        smol::block_on(async {
            let channel = Channel::connect(&addr).await.expect("connect");
            let mut call = channel
                .call(paths::JOIN_CHAT, CallOptions::default())
                .await
                .expect("call");
            let msg = ChatMessage {
                user: Some(User {
                    user_id: "u".into(),
                    username: "U".into(),
                    room_id: String::new(),
                }),
                message: "x".repeat(3000),
                ..Default::default()
            };
            for _ in 0..20 {
                call.sender.send(&msg).await.expect("send");
            }
            call.sender.close().expect("close");
            while call
                .receiver
                .message::<ChatMessage>()
                .await
                .expect("ok")
                .is_some()
            {}
        });
        server.kill();
    }
    // Move everything from the write-ahead log into chat.db, then damage
    // its pages after the header page (the tables' b-trees).
    let db = dir.join("chat.db");
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))
        .expect("checkpoint");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 4096, "the database holds the messages");
    for b in bytes.iter_mut().skip(4096).step_by(7) {
        *b = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let err = start_fails(&dir);
    assert!(err.contains("chat.db"), "{err}");
    // A data directory that cannot be created (a file is in the way).
    let parent = fresh_dir("blocked");
    let blocked = parent.join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let err = start_fails(&blocked.join("data"));
    assert!(err.contains("cannot create the data directory"), "{err}");
    for d in [dir, parent] {
        let _ = std::fs::remove_dir_all(d);
    }
}
