//! What a room id, a user id and a display name may be, and when two of
//! them look the same.
//!
//! The rule (the README's "Names" says the same to clients):
//!
//! - **Normalized.** Every id and name is taken in Unicode Normalization
//!   Form C, so `café` typed as `e` + U+0301 and as `é` is one room (UAX
//!   #15). What the server stores and sends is the NFC form.
//! - **Visible.** No control characters (C0, DEL, C1), no format characters
//!   (zero-width spaces and joiners, bidirectional marks, embeddings,
//!   overrides and isolates, the byte-order mark, tag characters), no
//!   invisible fillers, and no whitespace other than U+0020 SPACE, which
//!   may not start or end an id (UTS #39 §3.1 lists such characters as not
//!   allowed in identifiers). These let two ids that look the same differ,
//!   or reorder how a line is shown.
//! - **Bounded.** Room ids at most [`MAX_ROOM_ID_LEN`] bytes, user ids and
//!   names at most [`MAX_USER_FIELD_LEN`] bytes, after normalization.
//!
//! Anything else is INVALID_ARGUMENT. On top of that, a guest may not take
//! an id or a display name that is *confusable* with a configured user's id
//! or name: equal after compatibility normalization (fullwidth letters,
//! ligatures), case folding, and the UTS #39 confusable skeleton (Cyrillic
//! `а` and Latin `a`, `l` and `I`), with spaces ignored
//! ([`skeleton`]; the policy keeps the configured users' skeletons).

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton as uts39_skeleton;

use crate::limits::{MAX_ROOM_ID_LEN, MAX_USER_FIELD_LEN};
use crate::status::{Code, Status};

/// What an id or name is, for messages.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A room id.
    Room,
    /// A user id.
    User,
    /// A display name.
    Name,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Room => "room id",
            Kind::User => "user id",
            Kind::Name => "user name",
        }
    }

    fn max(self) -> usize {
        match self {
            Kind::Room => MAX_ROOM_ID_LEN,
            Kind::User | Kind::Name => MAX_USER_FIELD_LEN,
        }
    }
}

/// `raw` checked against the rule of the module docs and normalized to
/// NFC; INVALID_ARGUMENT saying why if it breaks the rule. An empty string
/// passes (callers decide what empty means).
pub fn check(kind: Kind, raw: &str) -> Result<String, Status> {
    let invalid = |why: String| Err(Status::new(Code::InvalidArgument, why));
    // A cheap bound first: NFC never grows a string more than threefold.
    if raw.len() > kind.max() * 3 {
        return invalid(format!(
            "{} is limited to {} bytes",
            kind.what(),
            kind.max()
        ));
    }
    if let Some(c) = raw.chars().find(|&c| !is_allowed(c)) {
        return invalid(format!(
            "{} may not contain U+{:04X} (control, invisible, bidirectional or whitespace character)",
            kind.what(),
            c as u32
        ));
    }
    let nfc: String = raw.nfc().collect();
    if nfc.len() > kind.max() {
        return invalid(format!(
            "{} is limited to {} bytes",
            kind.what(),
            kind.max()
        ));
    }
    if matches!(kind, Kind::Room | Kind::User) && (nfc.starts_with(' ') || nfc.ends_with(' ')) {
        return invalid(format!("{} may not start or end with a space", kind.what()));
    }
    Ok(nfc)
}

/// Whether `c` may appear in an id or name.
fn is_allowed(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control() || c.is_whitespace() || is_format_or_invisible(c))
}

/// Format characters (general category Cf) and the invisible fillers that
/// render as nothing.
fn is_format_or_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}'                      // soft hyphen
        | '\u{034f}'                    // combining grapheme joiner
        | '\u{0600}'..='\u{0605}'
        | '\u{061c}'                    // Arabic letter mark
        | '\u{06dd}'
        | '\u{070f}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08e2}'
        | '\u{115f}'..='\u{1160}'       // Hangul fillers
        | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}'       // Mongolian selectors and separator
        | '\u{200b}'..='\u{200f}'       // zero-width, LRM, RLM
        | '\u{202a}'..='\u{202e}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{206f}'       // joiners, invisible operators, isolates
        | '\u{2800}'                    // braille blank
        | '\u{3164}'                    // Hangul filler
        | '\u{fe00}'..='\u{fe0f}'       // variation selectors
        | '\u{feff}'                    // byte-order mark
        | '\u{ffa0}'                    // halfwidth Hangul filler
        | '\u{fff9}'..='\u{fffb}'       // interlinear annotations
        | '\u{110bd}' | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}'     // tags and variation selectors
    )
}

/// At most the first `max` bytes of `s`, cut at a character boundary: what
/// a record keeps of an id it could not accept.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The form under which two ids or names count as the same to a reader:
/// NFKC (fullwidth and compatibility forms), lower case, the UTS #39
/// confusable skeleton, spaces dropped.
pub fn skeleton(s: &str) -> String {
    let folded: String = s.nfkc().flat_map(char::to_lowercase).collect();
    uts39_skeleton(&folded)
        .flat_map(char::to_lowercase)
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalized_to_nfc() {
        assert_eq!(check(Kind::Room, "cafe\u{301}").unwrap(), "caf\u{e9}");
        assert_eq!(check(Kind::Room, "caf\u{e9}").unwrap(), "caf\u{e9}");
        assert_eq!(check(Kind::Room, "").unwrap(), "");
        assert_eq!(check(Kind::Name, "Alice Smith").unwrap(), "Alice Smith");
    }

    #[test]
    fn invisible_control_and_bidi_characters_are_refused() {
        for bad in [
            "bob\u{200b}",
            "bob\u{202e}",
            "\u{202e}bob",
            "bob\u{200f}",
            "bob\n",
            "bob\u{1b}[31m",
            "bob\u{feff}",
            "bob\u{a0}",
            "bob\t",
            "\u{3164}",
            "bob\u{e0041}",
        ] {
            let e = check(Kind::User, bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
        }
        assert!(check(Kind::Room, " lobby").is_err());
        assert!(check(Kind::Room, "lobby ").is_err());
        assert!(check(Kind::Room, "the lobby").is_ok());
        assert!(check(Kind::Name, "trailing ").is_ok());
    }

    #[test]
    fn lengths_are_bounded_after_normalization() {
        assert!(check(Kind::Room, &"r".repeat(MAX_ROOM_ID_LEN)).is_ok());
        assert!(check(Kind::Room, &"r".repeat(MAX_ROOM_ID_LEN + 1)).is_err());
        assert!(check(Kind::Room, &"r".repeat(4 << 20)).is_err());
        assert!(check(Kind::User, &"u".repeat(MAX_USER_FIELD_LEN + 1)).is_err());
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let alice = skeleton("alice");
        for same in [
            "Alice",
            "ALICE",
            "alice ",
            "\u{430}lice",
            "ａｌｉｃｅ",
            "a lice",
        ] {
            assert_eq!(skeleton(same), alice, "{same:?}");
        }
        assert_ne!(skeleton("bob"), alice);
        assert_eq!(skeleton("paypal"), skeleton("pаypаl"));
    }
}
