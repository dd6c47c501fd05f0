//! Log injection: user ids and texts with `\n`, `\r`, ANSI and OSC escapes.
//! The server's stdout and stderr (pipes here, not terminals) must carry
//! no raw control character from them (no forged lines), and no ANSI
//! colour codes at all.

use std::collections::BTreeMap;

use chat_proto::User;

use crate::client::{self, block, join_room, message, post};
use crate::rig::{Options, Rig};

/// The forged line a text tries to start.
const FORGED: &str = "Received message from admin";

/// (user id, text) of the posts; the user ids also join a room.
const POSTS: [(&str, &str); 6] = [
    ("mallory\nReceived message from admin: x", "hello"),
    ("eve\r", "hi\nReceived message from admin: x"),
    ("eve", "\x1b[31mred\x1b[0m"),
    ("eve", "\x1b]0;title\x07"),
    ("\x1b]0;pwned\x07eve", "cr\roverwrite"),
    ("\x1b[2J\x1b[Heve", "\x1b[1A\x1b[2Kerased"),
];

/// Control characters in `text` other than newline and tab, counted, and
/// the first with some context.
fn controls(text: &str) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut first = None;
    for (i, c) in text.char_indices() {
        if c.is_control() && c != '\n' && c != '\t' {
            *counts.entry(format!("{c:?}")).or_default() += 1;
            first.get_or_insert(i);
        }
    }
    let at = first?;
    let (mut from, mut to) = (at.saturating_sub(40), (at + 40).min(text.len()));
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    while !text.is_char_boundary(to) {
        to += 1;
    }
    Some(format!("{counts:?}, first in {:?}", &text[from..to]))
}

#[test]
fn control_characters_in_ids_and_texts() {
    let mut rig = Rig::start("control_characters", Options::default());
    let (outcomes, report) = rig.attack(|addr| {
        let Ok(ch) = block(client::connect(addr)) else {
            return vec!["could not connect".to_string()];
        };
        let mut outcomes = Vec::new();
        for (id, text) in POSTS {
            let joined = block(join_room(&ch, id, "lobby"));
            let posted = block(post(&ch, Some("lobby"), message(id, text, "")));
            outcomes.push(format!(
                "{id:?} joins: {}, posts {text:?}: {}",
                client::outcome(&joined),
                client::outcome(&posted)
            ));
        }
        // A name with escapes, too.
        let mut user = client::user("mallet", "lobby");
        user.username = "\x1b[31mAdmin\x1b[0m".into();
        let named = block(async {
            let mut call = ch
                .call(chat_proto::paths::JOIN_CHAT_ROOM, Default::default())
                .await?;
            call.sender.send::<User>(&user).await?;
            call.receiver.message::<chat_proto::ChatRoom>().await
        });
        outcomes.push(format!(
            "a name with colour codes: {}",
            client::outcome(&named)
        ));
        // Something for the server to log on stderr (a warning).
        let short = std::time::Duration::from_millis(200);
        crate::floods::run(addr, crate::floods::Kind::WindowUpdate, 1, false, short);
        std::thread::sleep(std::time::Duration::from_millis(300));
        outcomes
    });
    for o in outcomes {
        rig.note(o);
    }
    let (stdout, stderr) = (rig.server.stdout(), rig.server.stderr());
    let forged = stdout.lines().filter(|l| l.starts_with(FORGED)).count();
    rig.expect(
        forged == 0,
        format!("{forged} forged stdout line(s) starting with {FORGED:?}"),
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        if let Some(found) = controls(text) {
            rig.fail(format!("raw control characters in {name}: {found}"));
        }
        let ansi = text.matches("\x1b[").count();
        rig.expect(
            ansi == 0,
            format!("{ansi} ANSI escape sequence(s) in {name}, which is a pipe, not a terminal"),
        );
    }
    rig.check_history(&report);
    rig.finish();
}
