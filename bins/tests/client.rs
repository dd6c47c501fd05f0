//! The interactive client, the real `chat-client` binary driven through
//! its stdin and stdout against the real `chat-server`: own lines marked
//! delivered, one form for every message, commands, quitting on one end of
//! input (a pipe's and a terminal's), and, across a server killed with
//! SIGKILL and restarted on its data, reconnecting by itself, resuming its
//! room (what others said meanwhile, exactly once) and delivering lines
//! typed during the outage exactly once, a line whose echo was lost
//! included. A TCP proxy keeps one client away while the others go on.
//!
//! Every wait polls for the expected output under a generous deadline; no
//! step depends on a fixed sleep.

#![cfg(unix)]

mod common;
#[path = "client/proxy.rs"]
mod proxy;
#[path = "client/user.rs"]
mod user;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use chat_proto::{paths, ChatMessage, HistoryPage, HistoryRequest};
use common::{fresh_dir, ChatServer};
use proxy::Proxy;
use transport_h2::{CallOptions, Channel};
use user::{parse_message, Mark, User};

/// Every server here pings idle connections each second. The client needs
/// none of it; it bounds how long a server that forgets to wake one of its
/// connections can hold back what that connection is owed (the keepalive
/// timer wakes it): seen with a resumed stream's catch-up, which otherwise
/// waited the default 60 s, as long as these tests wait for anything.
const KEEPALIVE: [&str; 2] = ["--keepalive-ms", "1000"];

/// A server in memory with `extra` arguments.
fn in_memory(extra: &[&str]) -> ChatServer {
    let mut args = vec!["--memory"];
    args.extend(KEEPALIVE);
    args.extend(extra);
    ChatServer::start_with(&args)
}

/// A durable server (SQLite, its default) on `dir`, listening on `addr`.
fn durable(dir: &std::path::Path, addr: &str) -> ChatServer {
    let dir = dir.to_str().expect("UTF-8 path");
    let mut args = vec!["--data-dir", dir];
    args.extend(KEEPALIVE);
    ChatServer::start_binary_at(env!("CARGO_BIN_EXE_chat-server"), &[], addr, false, &args)
}

/// A line that is `text` from `name` in `room`, someone else's.
fn plain<'a>(room: &'a str, name: &'a str, text: &'a str) -> impl Fn(&str) -> bool + 'a {
    move |l| parse_message(l, room, name, text) == Some(Mark::Plain)
}

/// A line that is our own `text`, delivered.
fn own<'a>(room: &'a str, name: &'a str, text: &'a str) -> impl Fn(&str) -> bool + 'a {
    move |l| matches!(parse_message(l, room, name, text), Some(Mark::Own(_)))
}

/// A line that shows `text` from `name` in any way.
fn any<'a>(room: &'a str, name: &'a str, text: &'a str) -> impl Fn(&str) -> bool + 'a {
    move |l| parse_message(l, room, name, text).is_some()
}

/// The seq an own line was delivered as.
fn seq_of(line: &str, room: &str, name: &str, text: &str) -> u64 {
    match parse_message(line, room, name, text) {
        Some(Mark::Own(seq)) => seq.parse().expect("a number"),
        other => panic!("{line:?} is not an own line: {other:?}"),
    }
}

/// Everything stored in `room`, oldest first (one History page).
fn stored(addr: SocketAddr, room: &str) -> Vec<ChatMessage> {
    smol::block_on(async {
        let channel = Channel::connect(&addr.to_string()).await.expect("connect");
        let mut call = channel
            .call(paths::HISTORY, CallOptions::default())
            .await
            .expect("History");
        let req = HistoryRequest {
            room_id: room.into(),
            before_seq: 0,
            limit: 1000,
        };
        call.sender.send(&req).await.expect("send");
        call.sender.close().expect("close");
        let page: HistoryPage = call
            .receiver
            .message()
            .await
            .expect("History answers")
            .expect("a page");
        assert!(!page.more, "more than one page in {room}");
        page.messages
    })
}

#[test]
fn own_lines_are_marked_delivered_and_every_message_has_one_form() {
    let server = in_memory(&[]);
    let addr = server.addr().to_string();
    let mut alice = User::start(&addr, "alice", "Alice", "basics");
    alice.wait_line("Joined chat room basics");

    alice.type_line("hello there");
    let line = alice.wait_for(
        "her line marked delivered",
        own("basics", "Alice", "hello there"),
    );
    assert_eq!(seq_of(&line, "basics", "Alice", "hello there"), 1);

    // Bob comes later: the line is history to him, in the same form.
    let mut bob = User::start(&addr, "bob", "Bob", "basics");
    bob.wait_for("history", plain("basics", "Alice", "hello there"));
    alice.wait_for("bob's arrival", |l| {
        l.starts_with("[basics] ") && l.ends_with(" * Bob joined")
    });
    bob.type_line("hi alice");
    bob.wait_for(
        "his line marked delivered",
        own("basics", "Bob", "hi alice"),
    );
    alice.wait_for("bob's line", plain("basics", "Bob", "hi alice"));

    // Each line once on each screen; nothing left unmarked.
    for user in [&alice, &bob] {
        for (name, text) in [("Alice", "hello there"), ("Bob", "hi alice")] {
            assert_eq!(
                user.count(any("basics", name, text)),
                1,
                "{}",
                user.report()
            );
        }
    }
    assert_eq!(alice.count(plain("basics", "Alice", "hello there")), 0);
}

/// `--compress gzip` and `deflate`: the client's lines go compressed, the
/// server (compressing every reply to one call) answers compressed, and a
/// plain client joining later sees them in the history, as typed.
#[test]
fn compressed_lines_and_replies() {
    let server = in_memory(&["--compress-min-bytes", "0"]);
    let addr = server.addr().to_string();
    let long = "a long line that squeezes well. ".repeat(20);
    let long = long.trim_end();
    for (id, algo) in [("gz", "gzip"), ("df", "deflate")] {
        let name = format!("Packer-{algo}");
        let args = ["--compress", algo];
        let mut packer = User::start_args(&addr, id, &name, "squeeze", Stdio::piped(), &args);
        packer.wait_line("Joined chat room squeeze");
        packer.type_line(long);
        packer.wait_for("the long line delivered", own("squeeze", &name, long));
    }
    let reader = User::start(&addr, "rd", "Reader", "squeeze");
    for algo in ["gzip", "deflate"] {
        let name = format!("Packer-{algo}");
        reader.wait_for("the history", plain("squeeze", &name, long));
    }
}

#[test]
fn commands_switch_left_then_joined_and_one_end_of_input_quits() {
    let server = in_memory(&[]);
    let addr = server.addr().to_string();
    let mut alice = User::start(&addr, "alice", "Alice", "here");
    let mut bob = User::start(&addr, "bob", "Bob", "here");
    alice.wait_line("Joined chat room here");
    bob.wait_line("Joined chat room here");
    // Bob's stream is live once his own line comes back on it (presence
    // notices, unlike messages, are not resumed).
    bob.type_line("ready");
    bob.wait_for("his line", own("here", "Bob", "ready"));

    alice.type_line("/join");
    alice.wait_line("usage: /join ROOM");
    alice.type_line("/nonsense");
    alice.wait_for("unknown command", |l| {
        l.starts_with("unknown command /nonsense")
    });
    alice.type_line("/who");
    alice.wait_for("who is here", |l| l == "Present in here: Alice, Bob");

    alice.type_line("/join there");
    alice.wait_line("Joined chat room there");
    let lines = alice.lines();
    let left = lines
        .iter()
        .position(|l| l.starts_with("[here] ") && l.ends_with(" * you left"))
        .unwrap_or_else(|| panic!("no departure\n{}", alice.report()));
    let joined = lines
        .iter()
        .position(|l| l == "Joined chat room there")
        .expect("joined");
    assert!(left < joined, "left after joined\n{}", alice.report());
    bob.wait_for("alice leaving", |l| {
        l.starts_with("[here] ") && l.ends_with(" * Alice left")
    });

    // A line, then the end of input at once: it is delivered, then the
    // client quits without being asked twice.
    alice.type_line("last words");
    alice.end_input();
    let status = alice
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("one end of input did not quit\n{}", alice.report()));
    assert!(status.success(), "exit {status}\n{}", alice.report());
    alice.wait_for("the line delivered", own("there", "Alice", "last words"));
}

/// `/history [N]` pages back from the oldest message shown, page after
/// page, to the room's first message.
#[test]
fn history_pages_back_to_the_first_message() {
    let server = in_memory(&["--history-on-join", "3"]);
    let addr = server.addr().to_string();
    let mut alice = User::start(&addr, "alice", "Alice", "pages");
    alice.wait_line("Joined chat room pages");
    for i in 1..=8 {
        let text = format!("line {i}");
        alice.type_line(&text);
        alice.wait_for("her line", own("pages", "Alice", &text));
    }
    let mut bob = User::start(&addr, "bob", "Bob", "pages");
    bob.wait_for("the last three", plain("pages", "Alice", "line 8"));
    assert_eq!(bob.count(any("pages", "Alice", "line 5")), 0);

    bob.type_line("/history 0");
    bob.wait_line("usage: /history [N], N from 1 to 1000");
    bob.type_line("/history 3");
    bob.wait_line("-- 3 earlier messages in pages:");
    bob.wait_line("-- /history for more");
    bob.type_line("/history");
    bob.wait_line("-- 2 earlier messages in pages:");
    bob.wait_line("-- that is the room's first message");
    bob.type_line("/history");
    bob.wait_line("-- no earlier messages in pages");
    // Every line once; each page oldest first.
    let lines = bob.lines();
    let at = |text: &str| {
        let found: Vec<usize> = (0..lines.len())
            .filter(|&i| any("pages", "Alice", text)(&lines[i]))
            .collect();
        assert_eq!(found.len(), 1, "{text}\n{}", bob.report());
        found[0]
    };
    let order: Vec<usize> = [3, 4, 5, 1, 2]
        .iter()
        .map(|i| at(&format!("line {i}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", bob.report());
    assert!(at("line 6") < order[0]);
}

#[test]
fn one_ctrl_d_on_a_terminal_quits() {
    let server = in_memory(&[]);
    let (mut master, slave) = pty();
    let mut user = User::start_with(
        &server.addr().to_string(),
        "tty",
        "Tty",
        "tty",
        Stdio::from(slave),
    );
    user.wait_line("Joined chat room tty");
    master.write_all(b"typed on a terminal\n").expect("type");
    user.wait_for(
        "the line delivered",
        own("tty", "Tty", "typed on a terminal"),
    );
    // Ctrl-D at the start of a line: the terminal's end of file, which a
    // read sees once (POSIX.1-2017, 11.1.9 "Special Characters", EOF).
    master.write_all(&[0x04]).expect("Ctrl-D");
    assert!(
        user.wait_exit(Duration::from_secs(30)).is_some(),
        "one Ctrl-D did not quit\n{}",
        user.report()
    );
}

/// A new pseudo-terminal: its master (to type into) and its slave (the
/// client's stdin), in canonical mode with the usual control characters.
fn pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers given; the
    // null name, termios and window size pointers ask for the defaults.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// `--keepalive-ms`: a client that stops hearing from the server (the
/// proxy drops everything the server sends, closing nothing) finds out by
/// its unanswered ping, says so, and connects again once the way is clear.
#[test]
fn a_silent_server_is_found_out_by_the_clients_ping() {
    let server = in_memory(&[]);
    let proxy = Proxy::start(server.addr());
    let args = ["--keepalive-ms", "300", "--keepalive-timeout-ms", "500"];
    let mut alice = User::start_args(
        &proxy.addr().to_string(),
        "alice",
        "Alice",
        "ping",
        Stdio::piped(),
        &args,
    );
    alice.wait_line("Joined chat room ping");
    proxy.lose_downstream(true);
    alice.wait_for("the loss", |l| {
        l.starts_with("-- connection lost (UNAVAILABLE")
    });
    proxy.lose_downstream(false);
    alice.wait_line("-- reconnected");
    alice.type_line("back");
    alice.wait_for("her line", own("ping", "Alice", "back"));
}

#[test]
fn reconnects_resumes_and_sends_each_line_once_across_a_crash() {
    const ROOM: &str = "crash";
    let dir = fresh_dir("client-crash");
    let mut server = durable(&dir, "127.0.0.1:0");
    let addr = server.addr();
    let proxy = Proxy::start(addr);
    let mut alice = User::start(&proxy.addr().to_string(), "alice", "Alice", ROOM);
    let mut bob = User::start(&addr.to_string(), "bob", "Bob", ROOM);
    alice.wait_line("Joined chat room crash");
    bob.wait_line("Joined chat room crash");

    alice.type_line("a1 first");
    alice.wait_for("a1 delivered", own(ROOM, "Alice", "a1 first"));
    bob.wait_for("a1", plain(ROOM, "Alice", "a1 first"));

    // Stored and delivered to bob, but its echo never reaches alice: she
    // must send it again, and the server must not store it twice.
    proxy.lose_downstream(true);
    alice.type_line("a2 echo lost");
    bob.wait_for("a2", plain(ROOM, "Alice", "a2 echo lost"));

    // Alice is cut off and kept away while bob talks and the server
    // crashes; she types a line meanwhile.
    proxy.refuse();
    proxy.lose_downstream(false);
    alice.wait_for("the loss", |l| l.starts_with("-- connection lost"));
    alice.type_line("a3 typed while away");
    bob.type_line("b1 while alice is away");
    bob.wait_for("b1 delivered", own(ROOM, "Bob", "b1 while alice is away"));

    server.kill();
    bob.wait_for("the crash", |l| l.starts_with("-- connection lost"));
    bob.type_line("b2 typed while the server is down");
    let server = durable(&dir, &addr.to_string());
    bob.wait_line("-- reconnected");
    bob.wait_for(
        "b2 delivered",
        own(ROOM, "Bob", "b2 typed while the server is down"),
    );

    // Alice comes back: she resumes from a1 and sees everything once.
    proxy.accept();
    alice.wait_line("-- reconnected");
    alice.wait_for("a2 delivered", own(ROOM, "Alice", "a2 echo lost"));
    alice.wait_for("b1", plain(ROOM, "Bob", "b1 while alice is away"));
    alice.wait_for(
        "b2",
        plain(ROOM, "Bob", "b2 typed while the server is down"),
    );
    alice.wait_for("a3 delivered", own(ROOM, "Alice", "a3 typed while away"));
    bob.wait_for("a3", plain(ROOM, "Alice", "a3 typed while away"));
    // A last line: whoever shows it has shown everything before it.
    bob.type_line("b3 last");
    bob.wait_for("b3 delivered", own(ROOM, "Bob", "b3 last"));
    alice.wait_for("b3", plain(ROOM, "Bob", "b3 last"));

    let texts = [
        ("Alice", "a1 first"),
        ("Alice", "a2 echo lost"),
        ("Bob", "b1 while alice is away"),
        ("Bob", "b2 typed while the server is down"),
        ("Alice", "a3 typed while away"),
        ("Bob", "b3 last"),
    ];
    for user in [&alice, &bob] {
        for (name, text) in texts {
            assert_eq!(
                user.count(any(ROOM, name, text)),
                1,
                "{text:?} not shown exactly once\n{}",
                user.report()
            );
        }
        assert_eq!(
            user.count(|l| l.contains("could not be recovered") || l.contains("not shown")),
            0,
            "nothing was lost\n{}",
            user.report()
        );
    }
    // The retry of a2 was answered with the original entry.
    let a2 = alice.wait_for("a2", own(ROOM, "Alice", "a2 echo lost"));
    assert_eq!(seq_of(&a2, ROOM, "Alice", "a2 echo lost"), 2);

    // Stored once each, in the order shown, numbered without gaps.
    let history = stored(server.addr(), ROOM);
    let got: Vec<(u64, &str)> = history
        .iter()
        .map(|m| (m.seq, m.message.as_str()))
        .collect();
    let want: Vec<(u64, &str)> = (1..).zip(texts.iter().map(|(_, t)| *t)).collect();
    assert_eq!(got, want, "the store\n{}\n{}", alice.report(), bob.report());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resume_the_server_cannot_serve_is_told_and_goes_on() {
    const ROOM: &str = "short";
    // Memory keeps the newest 3 messages of a room: what alice misses
    // beyond them cannot be resumed.
    let server = in_memory(&["--retain-messages", "3"]);
    let proxy = Proxy::start(server.addr());
    let mut alice = User::start(&proxy.addr().to_string(), "alice", "Alice", ROOM);
    let mut bob = User::start(&server.addr().to_string(), "bob", "Bob", ROOM);
    alice.wait_line("Joined chat room short");
    bob.wait_line("Joined chat room short");
    alice.type_line("before");
    alice.wait_for("her line", own(ROOM, "Alice", "before"));

    proxy.refuse();
    alice.wait_for("the loss", |l| l.starts_with("-- connection lost"));
    let missed: Vec<String> = (1..=10).map(|i| format!("missed {i}")).collect();
    for text in &missed {
        bob.type_line(text);
    }
    bob.wait_for("his last", own(ROOM, "Bob", "missed 10"));

    // Alice had seq 1; 2..=11 came; the server keeps 9..=11, so it can
    // resume her after 8: 7 are lost, and she is told so.
    proxy.accept();
    alice.wait_line("-- [short] missed messages could not be recovered; 7 messages may be missing");
    alice.wait_for("the newest", plain(ROOM, "Bob", "missed 10"));
    for (i, text) in missed.iter().enumerate() {
        let want = usize::from(i >= 7);
        assert_eq!(
            alice.count(any(ROOM, "Bob", text)),
            want,
            "{text}\n{}",
            alice.report()
        );
    }
    // And she goes on as before.
    alice.type_line("after");
    alice.wait_for("her line", own(ROOM, "Alice", "after"));
    bob.wait_for("her line", plain(ROOM, "Alice", "after"));
}
