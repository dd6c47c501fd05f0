//! gRPC's interop suite (`grpc.testing.TestService`), every case that
//! needs no cloud credentials: our interop client (`seed-client interop
//! --test_case NAME`) against our server (`seed-server interop`) and
//! against a grpcio TestService (`python/interop_server.py`); grpcio as the
//! client (`python/interop_client.py`) against our server.

#![cfg(unix)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chat_bins::interop::CASES;
use common::python::{script_passes, spawn_script};
use common::ChatServer;

/// The longest one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Cases a grpcio server cannot serve as the descriptions ask: its
/// servicer does not see a request's compressed flag, so it cannot refuse
/// the uncompressed probe with INVALID_ARGUMENT (`expect_compressed`).
const NOT_WITH_GRPCIO_SERVER: &[&str] = &["client_compressed_unary", "client_compressed_streaming"];

/// Runs `cases` with our interop client against the server on `port`;
/// the failures, with what the client said.
fn run_cases(cases: &[&str], port: &str) -> Vec<String> {
    cases
        .iter()
        .filter_map(|case| {
            run_case(case, port)
                .err()
                .map(|why| format!("{case}: {why}"))
        })
        .collect()
}

/// Runs `case`: its output if it failed (or hung past the limit).
fn run_case(case: &str, port: &str) -> Result<(), String> {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_seed-client"))
        .args(["interop", "--test_case", case, "--server_host", "127.0.0.1"])
        .args(["--server_port", port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run seed-client");
    while child.try_wait().ok().flatten().is_none() && began.elapsed() < CASE_LIMIT {
        thread::sleep(Duration::from_millis(10));
    }
    let hung = began.elapsed() >= CASE_LIMIT;
    if hung {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("seed-client's output");
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}{}",
        if hung { "hung; " } else { "" },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn our_client_passes_every_case_against_our_server() {
    let mut server =
        ChatServer::start_binary(env!("CARGO_BIN_EXE_seed-server"), &["interop"], false, &[]);
    let port = server.addr().port().to_string();
    let failed = run_cases(CASES, &port);
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    server.assert_healthy();
}

#[test]
fn grpcio_as_the_client_passes_against_our_server() {
    let mut server =
        ChatServer::start_binary(env!("CARGO_BIN_EXE_seed-server"), &["interop"], false, &[]);
    script_passes(&mut server, "interop_client.py", &[]);
    server.assert_healthy();
}

#[test]
fn our_client_passes_against_a_grpcio_server() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn_script("interop_server.py", &addr, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            !server.has_exited() && Instant::now() < deadline,
            "the grpcio interop server did not start"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let cases: Vec<&str> = CASES
        .iter()
        .copied()
        .filter(|c| !NOT_WITH_GRPCIO_SERVER.contains(c))
        .collect();
    let failed = run_cases(&cases, &port.to_string());
    drop(server.wait(Duration::ZERO));
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
}
