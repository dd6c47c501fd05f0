//! `--metrics-addr`: the Prometheus endpoint scraped with a real HTTP client
//! (Python's urllib, `python/metrics.py`) while grpcio calls are made.

#![cfg(unix)]

mod common;

use std::time::Duration;

use common::python::script_passes;
use common::ChatServer;

#[test]
fn the_figures_move_as_calls_are_made() {
    let mut server = ChatServer::start_with(&["--metrics-addr", "127.0.0.1:0"]);
    assert!(server.wait_for_stdout(Duration::from_secs(5), |s| s.contains("metrics at http://")));
    let url = server
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("metrics at ").map(str::to_owned))
        .expect("the metrics address");
    script_passes(&mut server, "metrics.py", &[&url]);
    server.assert_healthy();
}
