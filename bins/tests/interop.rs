//! gRPC's interop suite (`grpc.testing.TestService`): our interop client
//! (`seed-client interop --test_case NAME`) against our server
//! (`seed-server interop`), every case that needs no cloud credentials.

mod common;

use std::process::Command;

use common::ChatServer;

const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
];

#[test]
fn our_client_passes_every_case_against_our_server() {
    let mut server =
        ChatServer::start_binary(env!("CARGO_BIN_EXE_seed-server"), &["interop"], false, &[]);
    let port = server.addr().port().to_string();
    let mut failed = Vec::new();
    for case in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_seed-client"))
            .args(["interop", "--test_case", case, "--server_host", "127.0.0.1"])
            .args(["--server_port", &port])
            .output()
            .expect("run seed-client");
        if !out.status.success() {
            failed.push(format!(
                "{case}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    server.assert_healthy();
}
