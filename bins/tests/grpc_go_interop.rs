//! grpc-go's interop client (Debian's grpc-go 1.33) against our server
//! (`seed-server interop`): every case of grpc/grpc
//! doc/interop-test-descriptions.md that the client has and that needs no
//! cloud credentials. `tests/go/interop.sh` installs Go and grpc-go from
//! Debian when they are missing, builds the client and runs the cases.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::Command;

use common::ChatServer;

#[test]
fn grpc_go_client_passes_every_case_against_our_server() {
    let mut server =
        ChatServer::start_binary(env!("CARGO_BIN_EXE_seed-server"), &["interop"], false, &[]);
    let port = server.addr().port().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/interop.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&port)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); it needs root and a Debian apt mirror the first \
         time, to install Go and grpc-go\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.output_report()
    );
    server.assert_healthy();
}
