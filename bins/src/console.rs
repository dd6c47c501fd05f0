//! The server's console: the lines the seed's server prints, made safe
//! for an operator's terminal and log files.
//!
//! Everything a peer chooses (user ids, names, room ids, texts) is escaped
//! before it is printed: a control character becomes a visible escape
//! (`\n`, `\u{1b}`), so no client can forge a log line, move the cursor,
//! recolour a terminal or set its title. Texts are trimmed to a line's
//! worth, with their length, so a flood of large messages cannot flood the
//! log with them. Refused logins are counted per peer and summarized once
//! per interval rather than printed one line each. Lines are queued for
//! stdout, never written on the core's thread (`crate::stdout`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chat_sansio::chat::ChatEvent;

use crate::stdout::line as say;

/// Longest text printed whole, in characters; a longer one is cut there
/// and its length in bytes given.
pub const MAX_PRINTED_TEXT: usize = 200;

/// Longest id or name printed whole, in characters.
const MAX_PRINTED_NAME: usize = 80;

/// How often one peer's refused logins are summarized at most.
const REFUSALS_EVERY: Duration = Duration::from_secs(10);

/// Most peers whose refusals are counted at once (an attacker may come
/// from many addresses); past it, the counts are printed and dropped.
const MAX_COUNTED_PEERS: usize = 10_000;

/// `s` with every control, format (invisible, bidirectional) or other
/// non-printing character escaped, cut after `max` characters.
pub fn escape(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 2));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            let _ = write!(out, "… ({} bytes)", s.len());
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if is_unprintable(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the format characters that change
/// how text around them shows: bidirectional controls, zero-width ones,
/// and the byte-order mark.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width, LRM/RLM
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}'              // BOM / zero-width no-break space
            | '\u{fff9}'..='\u{fffb}' // interlinear annotations
        )
}

/// Prints chat events as the seed's server does, safely. One per server.
#[derive(Debug, Default)]
pub struct Console {
    /// Refused logins per peer since its last line.
    refused: HashMap<String, Refused>,
}

#[derive(Debug)]
struct Refused {
    since_line: u64,
    last_line: Instant,
    last_status: String,
}

impl Console {
    /// A console with nothing counted.
    pub fn new() -> Console {
        Console::default()
    }

    /// Prints an event: `Received message from <user>: <text>` and `User
    /// <user> joined the chat room <room>.` as the seed does, and refused
    /// logins (the first from a peer at once, then one summary per
    /// interval). Storage requests print nothing.
    pub fn print(&mut self, event: &ChatEvent) {
        match event {
            ChatEvent::Message { user_id, text, .. } => say(format_args!(
                "Received message from {}: {}",
                escape(user_id, MAX_PRINTED_NAME),
                escape(text, MAX_PRINTED_TEXT)
            )),
            ChatEvent::Login {
                user_id,
                room,
                outcome: Ok(()),
                ..
            } => say(format_args!(
                "User {} joined the chat room {}.",
                escape(user_id, MAX_PRINTED_NAME),
                escape(room, MAX_PRINTED_NAME)
            )),
            ChatEvent::Login {
                user_id,
                room,
                outcome: Err(status),
                peer,
                ..
            } => self.refused(peer.as_deref().unwrap_or("-"), user_id, room, status),
            ChatEvent::Admin { .. } => {
                if let Some(record) = chat_engine::AdminRecord::from_event(event) {
                    let (action, target) = record.describe();
                    say(format_args!(
                        "Admin {}: {action} {} ({})",
                        escape(&record.by, MAX_PRINTED_NAME),
                        escape(&target, MAX_PRINTED_NAME),
                        escape(&record.reason, MAX_PRINTED_TEXT)
                    ));
                }
            }
            _ => {}
        }
    }

    fn refused(&mut self, peer: &str, user_id: &str, room: &str, status: &chat_sansio::Status) {
        let now = Instant::now();
        if self.refused.len() >= MAX_COUNTED_PEERS && !self.refused.contains_key(peer) {
            self.flush(now, Duration::ZERO);
            self.refused.clear();
        }
        let line = || {
            format!(
                "Login refused: user {}, room {}, peer {}: {}",
                escape(user_id, MAX_PRINTED_NAME),
                escape(room, MAX_PRINTED_NAME),
                escape(peer, MAX_PRINTED_NAME),
                escape(&status.to_string(), MAX_PRINTED_TEXT)
            )
        };
        match self.refused.get_mut(peer) {
            None => {
                say(format_args!("{}", line()));
                self.refused.insert(
                    peer.to_owned(),
                    Refused {
                        since_line: 0,
                        last_line: now,
                        last_status: String::new(),
                    },
                );
            }
            Some(r) => {
                r.since_line += 1;
                r.last_status = escape(&status.to_string(), MAX_PRINTED_TEXT);
            }
        }
        self.flush(now, REFUSALS_EVERY);
    }

    /// Prints the count of every peer whose refusals have not been
    /// reported for `every`.
    fn flush(&mut self, now: Instant, every: Duration) {
        for (peer, r) in &mut self.refused {
            if r.since_line > 0 && now.duration_since(r.last_line) >= every {
                say(format_args!(
                    "Login refused: {} more from peer {} in the last {} s (last: {})",
                    r.since_line,
                    escape(peer, MAX_PRINTED_NAME),
                    now.duration_since(r.last_line).as_secs(),
                    r.last_status
                ));
                r.since_line = 0;
                r.last_line = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            escape("hi\nReceived message from admin: x", 100),
            "hi\\nReceived message from admin: x"
        );
        assert_eq!(
            escape("\u{1b}[31mred\u{1b}]0;title\u{7}", 100),
            "\\u{1b}[31mred\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(escape("a\u{202e}b\u{200b}c", 100), "a\\u{202e}b\\u{200b}c");
        assert_eq!(escape("back\\slash", 100), "back\\\\slash");
        assert_eq!(escape("café ☺", 100), "café ☺");
    }

    #[test]
    fn long_texts_are_cut_with_their_length() {
        let long = "x".repeat(1000);
        let shown = escape(&long, 10);
        assert_eq!(shown, "xxxxxxxxxx… (1000 bytes)");
        assert_eq!(escape("short", 10), "short");
    }
}
