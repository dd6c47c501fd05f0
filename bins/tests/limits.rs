//! Rate limits through grpcio (`python/rate_limits.py`) against the real
//! server with small limits: a flood refused in band while its stream stays
//! open, another connection undisturbed, joins refused with a retry hint.

#![cfg(unix)]

mod common;

use common::python::script_passes;
use common::ChatServer;

#[test]
fn floods_are_refused_in_band_and_joins_with_a_hint() {
    let mut server = ChatServer::start_with(&[
        "--messages-per-second",
        "5",
        "--message-burst",
        "2",
        "--joins-per-second",
        "1",
        "--join-burst",
        "1",
    ]);
    script_passes(&mut server, "rate_limits.py", &[]);
    server.assert_healthy();
}
