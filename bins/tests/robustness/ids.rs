//! Attacks through ids: room ids of megabytes, and room and guest ids that
//! look like others (case, trailing space, zero-width and bidi marks,
//! Cyrillic and fullwidth letters) next to a configured user `alice`.

use std::net::SocketAddr;

use chat_sansio::{Code, Status};

use crate::calls::Client;
use crate::client::{self, block, join_room, message, post};
use crate::frames::{self, Conn};
use crate::rig::{Options, Rig};

/// One case: what was tried, how it came out, and whether that is right.
type Case = (String, String, bool);

/// A case expecting the call to be refused with `want`.
fn expect<T>(what: String, got: Result<T, Status>, want: Code) -> Case {
    let ok = matches!(&got, Err(s) if s.code == want);
    (what, client::outcome(&got), ok)
}

/// Records the cases as notes and the wrong ones as findings.
fn judge(rig: &mut Rig, cases: Vec<Case>, want: &str) {
    for (what, got, ok) in cases {
        if ok {
            rig.note(format!("{what}: {got}"));
        } else {
            rig.fail(format!("{what}: {got} (expected {want})"));
        }
    }
}

/// A room id of 1 MB or 4 MB, in JoinChatRoom, in `chat-room` metadata
/// and in ChatMessage.room_id: INVALID_ARGUMENT (room ids will be limited
/// to 128 bytes). Metadata of 1 MB is over the 8 KiB header list limit,
/// so it is tried at 4 KiB too, which h2 lets through.
#[test]
fn huge_room_ids() {
    let mut rig = Rig::start("huge_room_ids", Options::default());
    let (cases, report) = rig.attack(|addr| {
        let mut cases = Vec::new();
        let Ok(ch) = block(client::connect(addr)) else {
            return vec![("connect".into(), "failed".into(), false)];
        };
        for size in [1_000_000, 4_000_000] {
            let got = block(join_room(&ch, "roomer", &"r".repeat(size)));
            let what = format!("JoinChatRoom with a room id of {size} bytes");
            cases.push(expect(what, got, Code::InvalidArgument));
        }
        // If that was accepted, the connection is in the 1 MB room, and a
        // stream following it posts there by name.
        let big = "r".repeat(1_000_000);
        let got = block(join_room(&ch, "roomer", &big));
        let got = got.and_then(|_| block(post(&ch, None, message("roomer", "hi", &big))));
        let what = "ChatMessage.room_id of 1,000,000 bytes on a stream in that room".into();
        cases.push(expect(what, got, Code::InvalidArgument));
        let got = block(post(
            &ch,
            Some(&"m".repeat(4096)),
            message("roomer", "hi", ""),
        ));
        let what = "chat-room metadata of 4,096 bytes".into();
        cases.push(expect(what, got, Code::InvalidArgument));
        cases.push(megabyte_metadata(addr));
        cases
    });
    judge(&mut rig, cases, "INVALID_ARGUMENT");
    rig.check_history(&report);
    rig.finish();
}

/// `chat-room` metadata of 1 MB (HEADERS and CONTINUATION frames): any
/// refusal will do, as long as nothing is posted.
fn megabyte_metadata(addr: SocketAddr) -> Case {
    let what = "chat-room metadata of 1,000,000 bytes (raw HEADERS + CONTINUATION)".to_string();
    let Ok(conn) = Conn::reader(addr) else {
        return (what, "could not connect".into(), false);
    };
    let mut c = Client::new(conn);
    let big = vec![b'm'; 1_000_000];
    let body = frames::grpc(&message("roomer", "hi", ""));
    let Ok(stream) = c.open(
        chat_proto::paths::JOIN_CHAT,
        &[("chat-room", &big)],
        &body,
        false,
    ) else {
        return (
            what,
            "refused (the server closed the connection while we sent it)".into(),
            true,
        );
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        for (id, o) in c.poll(std::time::Duration::from_millis(50)) {
            if id == stream {
                let accepted = o.count > 0 || o.status == Some(0);
                return (what, o.describe(), !accepted);
            }
        }
        if c.outcome(stream).is_some_and(|o| o.count > 0) {
            return (what, "accepted: the message was echoed".into(), false);
        }
    }
    (what, "no answer within 5 s".into(), false)
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config with user `alice` (token `alice-token`) and every room open
/// to guests, and the flags to use it; the config lives as long as the
/// guard.
fn config() -> (Options, Scratch) {
    let exe = env!("CARGO_BIN_EXE_chat-server");
    let out = std::process::Command::new(exe)
        .args(["hash-token", "alice-token"])
        .output()
        .expect("chat-server hash-token");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dir = Scratch(crate::common::fresh_dir("robust-config"));
    let path = dir.0.join("chat.toml");
    let toml = format!(
        "[[user]]\nid = \"alice\"\nname = \"Alice\"\ntoken_sha256 = \"{hash}\"\n\n\
         [[room]]\nid = \"*\"\nreaders = [\"*\"]\nposters = [\"*\"]\nguests = \"post\"\n"
    );
    std::fs::write(&path, toml).expect("write the config");
    let options = Options {
        extra: vec!["--config".into(), path.display().to_string()],
        ..Options::default()
    };
    (options, dir)
}

/// Guest ids confusable with the configured `alice`: PERMISSION_DENIED.
#[test]
fn lookalike_guest_ids() {
    let (options, _config) = config();
    let mut rig = Rig::start("lookalike_guest_ids", options);
    let (cases, report) = rig.attack(|addr| {
        let Ok(ch) = block(client::connect(addr)) else {
            return vec![("connect".into(), "failed".into(), false)];
        };
        let mut cases = Vec::new();
        for id in ["alice", "Alice", "ALICE", "\u{430}lice", "ａｌｉｃｅ"] {
            let got = block(join_room(&ch, id, "lobby"));
            let what = format!("guest JoinChatRoom as {id:?}");
            cases.push(expect(what, got, Code::PermissionDenied));
        }
        for id in ["Alice", "\u{430}lice"] {
            let got = block(post(&ch, Some("lobby"), message(id, "hi", "")));
            let what = format!("guest post as {id:?}");
            cases.push(expect(what, got, Code::PermissionDenied));
        }
        cases
    });
    judge(&mut rig, cases, "PERMISSION_DENIED");
    rig.check_history(&report);
    rig.finish();
}

/// User and room ids with control, invisible or bidi characters:
/// INVALID_ARGUMENT.
#[test]
fn invisible_and_bidi_ids() {
    // A trailing space is not a look-alike but an invalid id (no id may
    // start or end with a space), so it is here.
    const BAD: [&str; 8] = [
        "bob ",
        "bob\u{200B}",
        "alice\u{200B}",
        "bob\u{202E}",
        "\u{202E}bob",
        "bob\u{200F}",
        "bob\n",
        "bob\x1b[31m",
    ];
    let (options, _config) = config();
    let mut rig = Rig::start("invisible_and_bidi_ids", options);
    let (cases, report) = rig.attack(|addr| {
        let Ok(ch) = block(client::connect(addr)) else {
            return vec![("connect".into(), "failed".into(), false)];
        };
        let mut cases = Vec::new();
        for id in BAD {
            let got = block(join_room(&ch, id, "lobby"));
            cases.push(expect(
                format!("user id {id:?}"),
                got,
                Code::InvalidArgument,
            ));
        }
        for id in BAD.map(|b| b.replace("bob", "lobby")) {
            let got = block(join_room(&ch, "guest", &id));
            cases.push(expect(
                format!("room id {id:?}"),
                got,
                Code::InvalidArgument,
            ));
        }
        let got = block(post(&ch, Some("lobby"), message("bob\u{200B}", "hi", "")));
        cases.push(expect(
            "post as \"bob\\u{200b}\"".into(),
            got,
            Code::InvalidArgument,
        ));
        cases
    });
    judge(&mut rig, cases, "INVALID_ARGUMENT");
    rig.check_history(&report);
    rig.finish();
}

/// Composed and decomposed `café` are one room (NFC).
#[test]
fn room_ids_are_nfc_normalized() {
    let (options, _config) = config();
    let mut rig = Rig::start("room_ids_nfc", options);
    let (result, report) = rig.attack(|addr| {
        let a = block(client::connect(addr))?;
        block(join_room(&a, "guest-a", "caf\u{e9}"))?;
        block(post(&a, None, message("guest-a", "bonjour", "")))?;
        let b = block(client::connect(addr))?;
        block(join_room(&b, "guest-b", "cafe\u{301}"))
    });
    match result {
        Ok(room) => rig.expect(
            room.history.iter().any(|m| m.message == "bonjour"),
            format!(
                "\"cafe\\u{{301}}\" is not the room of \"caf\\u{{e9}}\": it answered room {:?} with {} messages of history",
                room.room_id,
                room.history.len()
            ),
        ),
        Err(s) => rig.fail(format!("joining café failed: {s:?}")),
    }
    rig.check_history(&report);
    rig.finish();
}
