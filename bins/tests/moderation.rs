//! The moderation service through grpcio (`python/admin.py`) against the
//! real server, durable, on the example config (alice is an admin): kick,
//! ban and unban, the room list, a deletion and its tombstone; every action
//! in the `admin_actions` table with who took it; a ban that outlives a
//! restart.

#![cfg(unix)]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::python::{script_passes, workspace};
use common::{fresh_dir, ChatServer};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");

fn actions(db: &std::path::Path) -> Vec<String> {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            let mut stmt = c.prepare(
                "SELECT by_user || ' ' || action || ' ' || target || ' ' || reason
                 FROM admin_actions ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .unwrap_or_default()
}

#[test]
fn admins_kick_ban_list_and_delete_and_it_is_all_recorded() {
    let config = workspace().join("bins/chat.example.toml");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    let dir = fresh_dir("moderation");
    let dir_arg = dir.to_str().expect("a UTF-8 path").to_owned();
    let args = ["--config", config.as_str(), "--data-dir", dir_arg.as_str()];
    let mut server = ChatServer::start_binary(SERVER, &[], false, &args);
    script_passes(&mut server, "admin.py", &["main"]);
    server.expect_line("Admin alice: kick bob (spam)", Duration::from_secs(5));
    let db = dir.join("chat.db");
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = [
        "alice kick bob spam",
        "alice ban bob again",
        "alice unban bob ",
        "alice ban bob for the restart",
    ];
    loop {
        let got = actions(&db);
        let deleted = got
            .iter()
            .any(|a| a.starts_with("alice delete room1#") && a.ends_with(" rude"));
        let listed = want.iter().all(|w| got.iter().any(|g| g == w));
        if deleted && listed {
            break;
        }
        assert!(Instant::now() < deadline, "admin_actions: {got:?}");
        thread::sleep(Duration::from_millis(20));
    }
    let addr = server.addr().to_string();
    drop(server);
    let mut server = ChatServer::start_binary_at(SERVER, &[], &addr, false, &args);
    assert!(
        server.stdout().contains("1 user(s) banned"),
        "{}",
        server.output_report()
    );
    script_passes(&mut server, "admin.py", &["after-restart"]);
    let _ = std::fs::remove_dir_all(&dir);
}
