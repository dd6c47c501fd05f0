//! The seeds' other services (seed 002 `Chat`, seed 003 `NumberService`,
//! seed 004 `RouteGuide`) on our transport, each driven by a grpcio client
//! replaying the seed's flow and by our Rust `seed-client`; and the chat
//! core embedded in tokio (`chat-server-tokio`) passing the chat interop
//! scripts the smol server passes, durable as it is by default.

#![cfg(unix)]

mod common;

use std::process::Command;

use chat_proto::{paths, ChatRoom, User};
use common::python::script_passes;
use common::ChatServer;
use transport_h2::{CallOptions, Channel};

fn seed_server(service: &str) -> ChatServer {
    ChatServer::start_binary(env!("CARGO_BIN_EXE_seed-server"), &[service], false, &[])
}

/// Runs our Rust client for `service`; returns its stdout.
fn rust_client(service: &str, server: &ChatServer) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_seed-client"))
        .args([service, "--addr", &server.addr().to_string()])
        .output()
        .expect("cannot run seed-client");
    assert!(
        out.status.success(),
        "seed-client {service} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.output_report()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn seed_002_chat() {
    let mut server = seed_server("chat");
    script_passes(&mut server, "seed002_chat.py", &[]);
    let out = rust_client("chat", &server);
    assert_eq!(out, "Sam: Hi\nAnn: Hey\nJohn: Hello\n");
}

#[test]
fn seed_003_numbers() {
    let mut server = seed_server("numbers");
    script_passes(&mut server, "seed003_numbers.py", &[]);
    let out = rust_client("numbers", &server);
    let want: String = [1, 3, 6, 10, 15, 21, 28, 36, 45, 55]
        .iter()
        .map(|s| format!("Sum: {s}\n"))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn seed_004_route_guide() {
    let mut server = seed_server("routeguide");
    script_passes(&mut server, "seed004_routeguide.py", &[]);
    // Notes are kept server-wide, as in the seed: a fresh server for ours.
    let server = seed_server("routeguide");
    let out = rust_client("routeguide", &server);
    let want = [
        "First message at point(0, 1)",
        "Second message at point(0, 2)",
        "Third message at point(0, 3)",
        "First message at point(0, 1)",
        "Fourth message at point(0, 1)",
        "Second message at point(0, 2)",
        "Fifth message at point(0, 2)",
        "Third message at point(0, 3)",
        "Sixth message at point(0, 3)",
    ];
    let want: String = want.iter().map(|l| format!("Got message {l}\n")).collect();
    assert_eq!(out, want);
}

const TOKIO: &str = env!("CARGO_BIN_EXE_chat-server-tokio");

/// The tokio example as it runs by default (durable), on a fresh data
/// directory.
fn tokio_server(extra: &[&str]) -> ChatServer {
    ChatServer::start_binary(TOKIO, &[], true, extra)
}

#[test]
fn tokio_embedding_serves_the_seed_000_client() {
    let mut server = tokio_server(&[]);
    script_passes(&mut server, "seed000_client.py", &[]);
    server.expect_line("Received message from u1: bye", common::python::LOG_WAIT);
}

#[test]
fn tokio_embedding_serves_the_threaded_clients() {
    let mut server = tokio_server(&[]);
    script_passes(&mut server, "threaded_clients.py", &[]);
}

#[test]
fn tokio_embedding_serves_rooms_and_permissions() {
    let config = common::python::workspace().join("bins/chat.example.toml");
    let mut server = tokio_server(&["--config", config.to_str().expect("UTF-8 path")]);
    script_passes(&mut server, "rooms_auth.py", &[]);
}

#[test]
fn tokio_embedding_handles_bad_input() {
    let mut server = tokio_server(&[]);
    script_passes(&mut server, "bad_input.py", &[]);
}

#[test]
fn tokio_embedding_keeps_history_across_a_restart() {
    let dir = common::fresh_dir("tokio-durable");
    let args = ["--data-dir", dir.to_str().expect("UTF-8 path")];
    let mut server = ChatServer::start_binary(TOKIO, &[], false, &args);
    script_passes(&mut server, "seed000_client.py", &[]);
    server.kill();
    let server = ChatServer::start_binary(TOKIO, &[], false, &args);
    let addr = server.addr().to_string();
    let history = smol::block_on(async {
        let channel = Channel::connect(&addr).await.expect("connect");
        let mut join = channel
            .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
            .await
            .expect("JoinChatRoom");
        let user = User {
            user_id: "after".into(),
            username: "After".into(),
            room_id: "room1".into(),
        };
        join.sender.send(&user).await.expect("send");
        let room: ChatRoom = join
            .receiver
            .message()
            .await
            .expect("ok")
            .expect("a ChatRoom");
        room.history
    });
    let texts: Vec<&str> = history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(
        texts,
        ["hello", "how are you?", "héllo wörld ✓", "bye"],
        "{}",
        server.output_report()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
