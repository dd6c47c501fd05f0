//! Interop with Python grpcio, the seed's own client library: the real
//! `chat-server` binary against the scripts in `tests/python/`.
//!
//! No manual setup: the first test of a run makes the Python environment,
//! a venv at `<workspace>/target/pyenv` with the packages pinned in
//! `tests/python/requirements.txt` (from PyPI), unless one with exactly those
//! versions is there already, and generates the Python stubs from
//! `proto/` into it (see `common/python.rs`). If that fails, every test
//! here fails and says why.

// Scripts are run in their own process group, to kill what they start.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::python::{script_passes, script_passes_stopping, workspace, LOG_WAIT};
use common::ChatServer;

/// Test 1: the seed 000 client's flow: JoinChatRoom shows room1 and the
/// history; one JoinChat call per message, each echoing it and ending OK;
/// a second client's JoinChatRoom has the messages in order; presence ends
/// with the connection. The server logs the seed's lines.
#[test]
fn seed_000_client_flow() {
    let mut server = ChatServer::start();
    let out = script_passes(&mut server, "seed000_client.py", &[]);
    assert!(out.contains("Joined chat room room1"), "{out}");
    assert!(out.contains("Server response: how are you?"), "{out}");
    assert!(out.contains("alice: héllo wörld ✓"), "{out}");
    for text in ["hello", "how are you?", "héllo wörld ✓", "bye"] {
        server.expect_line(&format!("Received message from u1: {text}"), LOG_WAIT);
        assert_eq!(
            server.count_lines(&format!("Received message from u1: {text}")),
            1,
            "{}",
            server.output_report()
        );
    }
    server.expect_line("User u1 joined the chat room room1.", LOG_WAIT);
    server.expect_line("User u2 joined the chat room room1.", LOG_WAIT);
}

/// Test 2: seed 001's threaded client, two at once, both sending: everyone
/// gets every message, each sender's in order, in one total order.
#[test]
fn seed_001_threaded_clients_share_one_order() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "threaded_clients.py", &[]);
    for user in ["user-a", "user-b"] {
        let prefix = format!("Received message from {user}: ");
        let ok = server.wait_for_stdout(LOG_WAIT, |out| {
            out.lines().filter(|l| l.starts_with(&prefix)).count() == 26
        });
        assert!(
            ok,
            "want 26 `{prefix}` lines, got {}\n{}",
            server.count_lines_starting(&prefix),
            server.output_report()
        );
    }
}

/// Test 3: a JoinChat stream that never sends receives broadcasts, and
/// after its half-close everything broadcast before it, then OK.
#[test]
fn silent_stream_receives_and_drains_on_half_close() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "silent_stream.py", &[]);
}

/// Test 4: unknown method, malformed protobuf, a message over 4 MiB, chat
/// text over its limit and a deadline each get their status through
/// grpcio, and a normal client works afterwards.
#[test]
fn bad_input_gets_the_right_status() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "bad_input.py", &[]);
    // Each of the 5 cases checks a normal client twice afterwards; none of
    // the rejected messages was taken as a chat message.
    let healthy = "Received message from healthy: ";
    server.wait_for_stdout(LOG_WAIT, |out| {
        out.lines().filter(|l| l.starts_with(healthy)).count() >= 10
    });
    let out = server.stdout();
    let received: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Received message from "))
        .collect();
    assert!(
        received.len() == 10 && received.iter().all(|l| l.starts_with(healthy)),
        "want exactly the 10 healthy messages logged, got {received:#?}\n{}",
        server.output_report()
    );
}

/// Test 5: a client SIGKILLed with its JoinChat stream open, while messages
/// flow to it, does not disturb another client.
#[test]
fn vanished_client_does_not_disturb_others() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "vanishing_client.py", &[]);
    server.expect_line("Received message from survivor: after-19", LOG_WAIT);
}

/// Test 6: after 60 messages, a joiner gets at least the last 50, oldest
/// first, ending with the most recent.
#[test]
fn join_history_is_the_most_recent_messages() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "history.py", &[]);
    let prefix = "Received message from poster: ";
    let all = server.wait_for_stdout(LOG_WAIT, |out| {
        out.lines().filter(|l| l.starts_with(prefix)).count() == 60
    });
    assert!(all, "want 60 `{prefix}` lines\n{}", server.output_report());
    server.expect_line("User late joined the chat room room1.", LOG_WAIT);
}

/// Issue 3 through grpcio with only the .proto and metadata: guests and
/// tokens, UNAUTHENTICATED, PERMISSION_DENIED for read and for post,
/// NOT_FOUND rooms, spoofing, switching rooms with a following stream,
/// presence notices, numbering and history on join; and the records.
#[test]
fn rooms_permissions_and_switching() {
    let config = workspace().join("bins/chat.example.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let mut server = ChatServer::start_with(&["--config", config]);
    script_passes(&mut server, "rooms_auth.py", &[]);
    server.expect_line("Received message from eve: room1 #6", LOG_WAIT);
    // The records, as the seed's login_history.txt and message_history.txt,
    // in the store (queried as the README shows).
    let db = server.data_dir.join("chat.db");
    let logins = wait_for_rows(
        &db,
        "SELECT user_id || ' ' || room || ' ' || peer || ' ' || outcome FROM login_attempts ORDER BY ts_us",
        |rows| rows.iter().any(|r| r.contains("UNAUTHENTICATED")),
    );
    for want in [
        "alice staff 127.0.0.1:",
        "eve staff 127.0.0.1:",
        "PERMISSION_DENIED",
        " ok",
    ] {
        assert!(
            logins.iter().any(|r| r.contains(want)),
            "logins lack {want:?}: {logins:#?}"
        );
    }
    let messages = wait_for_rows(
        &db,
        "SELECT room || ' ' || seq || ' ' || user_id || ' ' || username || ' ' || text FROM messages ORDER BY room, seq",
        |rows| rows.iter().any(|r| r.ends_with("room1 #6")),
    );
    assert!(
        messages.contains(&"staff 1 alice Alice hello staff".to_owned()),
        "{messages:#?}"
    );
    assert!(
        !messages
            .iter()
            .any(|m| m.contains("I am bob") || m.contains("may I?")),
        "{messages:#?}"
    );
}

/// The rows of `sql` once `done` holds for them (the store is written by a
/// thread of its own; the logins a moment after the event).
fn wait_for_rows(db: &Path, sql: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let rows: Vec<String> = rusqlite::Connection::open(db)
            .and_then(|c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect()
            })
            .unwrap_or_default();
        if done(&rows) || Instant::now() > deadline {
            return rows;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Test 8: the health service through grpcio, and SIGTERM: health turns
/// NOT_SERVING, new calls get UNAVAILABLE, open streams end UNAVAILABLE
/// after the grace period, and the server exits 0 soon after.
#[test]
fn health_and_a_graceful_shutdown_on_sigterm() {
    let mut server = ChatServer::start_with(&["--memory", "--shutdown-grace-ms", "1500"]);
    let pid = server.pid().to_string();
    script_passes_stopping(&mut server, "shutdown.py", &[&pid]);
    let deadline = Instant::now() + LOG_WAIT;
    let code = loop {
        match server.try_exit_code() {
            Some(code) => break code,
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            None => panic!("chat-server did not exit\n{}", server.output_report()),
        }
    };
    assert_eq!(code, Some(0), "{}", server.output_report());
    let out = server.stdout();
    assert!(out.contains("shutting down"), "{out}");
    assert!(out.contains("chat-server: stopped\n"), "{out}");
}

/// Test 9: server reflection, v1 and v1alpha, through grpcio; a JoinChat
/// call made with message classes built from its answers alone.
#[test]
fn reflection_describes_the_service_well_enough_to_call_it() {
    let mut server = ChatServer::start_with(&["--memory"]);
    script_passes(&mut server, "reflection.py", &[]);
    server.expect_line("Received message from refl: found by reflection", LOG_WAIT);
}

/// Test 10: server keepalive, 100 ms: quiet grpcio clients answer the
/// pings and stay; one whose network is cut is dropped after its ping
/// timeout, and its room hears it leave.
#[test]
fn keepalive_keeps_quiet_clients_and_drops_vanished_ones() {
    let mut server = ChatServer::start_with(&[
        "--memory",
        "--keepalive-ms",
        "100",
        "--keepalive-timeout-ms",
        "1000",
    ]);
    script_passes(&mut server, "keepalive.py", &[]);
    let dropped = server
        .stderr()
        .matches("closing a connection whose peer did not answer a keepalive ping")
        .count();
    assert_eq!(dropped, 1, "{}", server.output_report());
}

/// Test 11: TLS (`--tls-cert`, `--tls-key`) through grpcio, with a fresh
/// self-signed certificate: chat over TLS by name and by address; an
/// untrusting client and a plaintext one are refused, and the server goes
/// on.
#[test]
fn chat_over_tls() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let dir = common::fresh_dir("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut server = ChatServer::start_with(&["--memory", "--tls-cert", cert, "--tls-key", key]);
    assert!(
        server.stdout().contains("(TLS)"),
        "{}",
        server.output_report()
    );
    script_passes(&mut server, "tls.py", &[cert]);
    server.expect_line("Received message from tls: still served", LOG_WAIT);
}

/// Test 12: compression. grpcio channels made with
/// `compression=grpc.Compression.Gzip` and `Deflate` send every request
/// compressed; Health/Check, JoinChat and JoinChatRoom all work, and the
/// messages reach a plain channel and the log as sent.
#[test]
fn compressed_requests_from_gzip_and_deflate_channels() {
    let mut server = ChatServer::start_with(&["--memory"]);
    script_passes(&mut server, "compression.py", &[]);
    for name in ["gzip", "deflate"] {
        let line = format!("Received message from {name}-poster: {name}: short");
        server.expect_line(&line, LOG_WAIT);
    }
}

/// Test 13: the same with `--compress-min-bytes 0`: every reply to one
/// call (Health/Check, the JoinChatRoom answer with its history, JoinChat
/// answers that are not broadcasts) goes compressed in the encoding grpcio
/// lists first among ours, and grpcio inflates it. That the bytes are
/// really compressed on the wire is checked by the transport's
/// conformance tests (`conformance/compression.rs`).
#[test]
fn compressed_responses_to_grpcio() {
    let mut server = ChatServer::start_with(&["--memory", "--compress-min-bytes", "0"]);
    script_passes(&mut server, "compression.py", &[]);
    for name in ["gzip", "deflate"] {
        let line = format!("Received message from {name}-poster: {name}: short");
        server.expect_line(&line, LOG_WAIT);
    }
}
