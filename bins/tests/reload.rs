//! Live config through grpcio (`python/reload.py`) against the real
//! server: the config file is rewritten and SIGHUP sent; a reader who lost
//! permission has their stream ended with PERMISSION_DENIED, others go on;
//! a broken file leaves the reloaded config in force and the server says
//! why, naming the file; `[limits]` added to the file takes over at once
//! (`python/rate_limits.py`), with the command line's limits still winning.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::python::{script_passes, spawn_script};
use common::{fresh_dir, ChatServer};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");

/// Alice and bob (the example file's tokens); staff readable by `readers`.
fn config(readers: &str) -> String {
    let alice = "e706f2008f191924f4f6d6107fa56e8677a25a416815975bb848eb48e9694416";
    let bob = "b714483beed9b3189d35d6228ff4abf31c738b49747ecbd267ae8899e466c729";
    format!(
        "[[user]]\nid = \"alice\"\nname = \"Alice\"\ntoken_sha256 = \"{alice}\"\n\
         [[user]]\nid = \"bob\"\nname = \"Bob\"\ntoken_sha256 = \"{bob}\"\n\
         [[room]]\nid = \"room1\"\nreaders = [\"*\"]\nposters = [\"*\"]\nguests = \"post\"\n\
         [[room]]\nid = \"staff\"\nreaders = [{readers}]\nposters = [{readers}]\n"
    )
}

fn hangup(server: &ChatServer) {
    let pid = libc::pid_t::try_from(server.pid()).expect("a pid");
    // SAFETY: kill only sends a signal to our own child process.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill(SIGHUP): {}", std::io::Error::last_os_error());
}

fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn sighup_withdraws_a_readers_permission_and_a_broken_file_changes_nothing() {
    let dir = fresh_dir("reload");
    let file = dir.join("chat.toml");
    std::fs::write(&file, config("\"alice\", \"bob\"")).expect("write the config");
    let file_arg = file.to_str().expect("a UTF-8 path").to_owned();
    let mut server =
        ChatServer::start_binary(SERVER, &[], false, &["--memory", "--config", &file_arg]);
    let ready = dir.join("ready");
    let ready_arg = ready.to_str().expect("a UTF-8 path").to_owned();
    let addr = server.addr().to_string();
    let script = spawn_script("reload.py", &addr, &["withdrawn", &ready_arg]);
    let streaming = wait_for_file(&ready, Duration::from_secs(30));

    std::fs::write(&file, config("\"alice\"")).expect("rewrite the config");
    hangup(&server);
    let run = script.wait(Duration::from_secs(60));
    assert!(streaming, "reload.py never got to stream");
    run.passed("reload.py", &server.output_report());
    server.expect_line(
        "chat-server: config reloaded: 2 users, 2 rooms; limits: 0 messages/s (burst 40), \
         0 joins/s (burst 20) (0: none)",
        Duration::from_secs(5),
    );

    std::fs::write(&file, "[[user]\nid = ").expect("break the config");
    hangup(&server);
    let said = server.wait_for_stdout(Duration::from_secs(10), |out| {
        out.lines().any(|l| {
            l.starts_with("chat-server: config not reloaded, the old one stays in force: ")
                && l.contains(&file_arg)
        })
    });
    assert!(
        said,
        "no word of the broken file\n{}",
        server.output_report()
    );
    script_passes(&mut server, "reload.py", &["still"]);
    assert_eq!(
        server.count_lines_starting("chat-server: config reloaded"),
        1,
        "{}",
        server.output_report()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_puts_the_files_new_limits_in_force_and_flags_still_win() {
    let dir = fresh_dir("reload-limits");
    let file = dir.join("chat.toml");
    std::fs::write(&file, config("\"alice\"")).expect("write the config");
    let file_arg = file.to_str().expect("a UTF-8 path").to_owned();
    // The defaults (20 a second, burst 40) would let rate_limits.py's
    // flood through; the join burst comes from the command line, and wins
    // over the file's.
    let mut server = ChatServer::start_binary(
        SERVER,
        &[],
        false,
        &["--memory", "--config", &file_arg, "--join-burst", "1"],
    );
    let limits =
        "[[room]]\nid = \"limits\"\nreaders = [\"*\"]\nposters = [\"*\"]\nguests = \"post\"\n\
                  [limits]\nmessages_per_second = 5\nmessage_burst = 2\n\
                  joins_per_second = 1\njoin_burst = 7\n";
    std::fs::write(&file, config("\"alice\"") + limits).expect("rewrite the config");
    hangup(&server);
    server.expect_line(
        "chat-server: config reloaded: 2 users, 3 rooms; limits: 5 messages/s (burst 2), \
         1 joins/s (burst 1) (0: none)",
        Duration::from_secs(10),
    );
    script_passes(&mut server, "rate_limits.py", &[]);
    server.assert_healthy();
    let _ = std::fs::remove_dir_all(&dir);
}
