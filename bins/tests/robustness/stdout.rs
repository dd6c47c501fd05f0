//! An operator's stdout that nobody reads (a stuck pipe, a log collector
//! that stalls): the console prints a line per message, and those lines
//! must never hold up the core, or one stuck reader of the log stops every
//! call of the server.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::poster::{self, Post};

/// Messages posted: their console lines (about 190 bytes each) are many
/// times what a pipe holds (64 KiB on Linux).
const MESSAGES: usize = 3_000;

#[test]
fn an_unread_stdout_does_not_stop_the_chat() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut server = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--memory", "--addr", &addr.to_string()])
        .args(["--messages-per-second", "0", "--joins-per-second", "0"])
        .stdin(Stdio::null())
        // Piped and never read.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "chat-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let posted = poster::start(
        addr,
        Post {
            room: "logged".into(),
            user: "poster".into(),
            text_len: 150,
            limit: Some(MESSAGES),
            until: Instant::now() + Duration::from_secs(30),
        },
    )
    .join()
    .expect("the poster");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(posted.echoed, MESSAGES, "{}", posted.describe());
}
