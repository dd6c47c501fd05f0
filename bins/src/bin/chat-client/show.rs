//! What the client prints. Every message, from history or live, has one
//! form, `[room] HH:MM:SS Name: text`, with `✓ #seq` after our own once the
//! server has it; presence notices are `[room] HH:MM:SS * Name joined`;
//! the client's own notes start with `-- `. Whatever a peer chooses
//! (names, rooms, texts) is escaped, so no one can forge a line or drive
//! the terminal.

use chat_bins::console::escape;
use chat_proto::{ChatMessage, ChatRoom, Presence, User};

/// Longest name or room id printed whole, in characters.
const MAX_NAME: usize = 64;

/// Longest text printed whole (the server takes at most 16 KiB).
const MAX_TEXT: usize = 16 * 1024;

/// `timestamp_us` (microseconds since the Unix epoch) as local `HH:MM:SS`.
pub fn clock(timestamp_us: i64) -> String {
    let secs = timestamp_us.div_euclid(1_000_000);
    let mut tm: libc::tm = zeroed_tm();
    let t = secs as libc::time_t;
    // SAFETY: localtime_r reads `t` and writes only `tm` (POSIX.1-2017,
    // localtime_r: reentrant, no shared buffer).
    let local = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if local {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        let s = secs.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

fn zeroed_tm() -> libc::tm {
    // SAFETY: `tm` is plain integers (and, on some systems, a pointer that
    // may be null), so all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// The name to show for `user`: the username, else the id.
pub fn name(user: Option<&User>) -> String {
    let shown = match user {
        Some(u) if !u.username.is_empty() => &u.username,
        Some(u) => &u.user_id,
        None => "?",
    };
    escape(shown, MAX_NAME)
}

/// A room id, escaped.
pub fn room(room_id: &str) -> String {
    escape(room_id, MAX_NAME)
}

/// Anything else a peer chose (a status message), escaped.
pub fn plain(s: &str) -> String {
    escape(s, 200)
}

/// A chat message; `own` adds the mark of a line the server has.
pub fn message(msg: &ChatMessage, own: bool) -> String {
    let line = format!(
        "[{}] {} {}: {}",
        room(&msg.room_id),
        clock(msg.timestamp_us),
        name(msg.user.as_ref()),
        escape(&msg.message, MAX_TEXT)
    );
    if own {
        format!("{line} ✓ #{}", msg.seq)
    } else {
        line
    }
}

/// A presence notice (`presence != 0`).
pub fn notice(msg: &ChatMessage) -> String {
    presence(
        &msg.room_id,
        msg.timestamp_us,
        &name(msg.user.as_ref()),
        msg.presence,
    )
}

/// `[room] HH:MM:SS * who joined|left`.
pub fn presence(room_id: &str, timestamp_us: i64, who: &str, presence: i32) -> String {
    let verb = if presence == Presence::Left as i32 {
        "left"
    } else {
        "joined"
    };
    format!("[{}] {} * {who} {verb}", room(room_id), clock(timestamp_us))
}

/// Who is in a room.
pub fn users(answer: &ChatRoom) -> String {
    let names: Vec<String> = answer.users.iter().map(|u| name(Some(u))).collect();
    format!("Present in {}: {}", room(&answer.room_id), names.join(", "))
}

/// Entries of a room that will not be shown.
pub fn missing(room_id: &str, n: u64) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("-- [{}] {n} earlier message{s} not shown", room(room_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> ChatMessage {
        ChatMessage {
            user: Some(User {
                user_id: "u2".into(),
                username: "Bob".into(),
                room_id: String::new(),
            }),
            message: text.into(),
            room_id: "lobby".into(),
            seq: 12,
            timestamp_us: 1_700_000_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn one_form_for_every_message() {
        let line = message(&msg("hi"), false);
        let (head, rest) = line.split_at("[lobby] ".len());
        assert_eq!(head, "[lobby] ");
        assert_eq!(rest.len(), "12:34:56 Bob: hi".len(), "{line}");
        assert!(rest.ends_with(" Bob: hi"), "{line}");
        assert!(message(&msg("hi"), true).ends_with(" Bob: hi ✓ #12"));
    }

    #[test]
    fn peers_cannot_drive_the_terminal() {
        let line = message(&msg("a\u{1b}[2Jb\nfake line"), false);
        assert!(line.ends_with("a\\u{1b}[2Jb\\nfake line"), "{line}");
    }

    #[test]
    fn the_clock_has_a_fixed_width() {
        for t in [0, 1_700_000_000_123_456, -1] {
            assert_eq!(clock(t).len(), 8);
        }
    }
}
