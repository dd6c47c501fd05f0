//! The server's config file (TOML): users with token hashes, and rooms with
//! their permissions. See `bins/chat.example.toml` and the README.

use std::path::Path;

use chat_sansio::chat::policy::{GuestAccess, Policy, RoomRule, Users};
use chat_sansio::chat::RateLimits;
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "user")]
    users: Vec<UserEntry>,
    #[serde(default, rename = "room")]
    rooms: Vec<RoomEntry>,
    /// `redis://HOST:PORT[/DB]`: this node shares rooms with the others on
    /// that Redis (as `--redis`).
    #[serde(default)]
    redis: Option<String>,
    /// Rate limits (the `--messages-per-second` ... flags win over them).
    #[serde(default)]
    limits: Option<LimitsEntry>,
    /// Bearer JWTs from an identity provider (`crate::jwt`).
    #[serde(default)]
    jwt: Option<crate::jwt::JwtConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    messages_per_second: Option<u32>,
    message_burst: Option<u32>,
    joins_per_second: Option<u32>,
    join_burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    id: String,
    #[serde(default)]
    name: String,
    /// SHA-256 of the token, hex (`chat-server hash-token TOKEN`).
    token_sha256: String,
    /// May call the moderation service (`chat.admin.ChatAdmin`).
    #[serde(default)]
    admin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomEntry {
    id: String,
    /// User ids who may read; `"*"` for every authenticated user;
    /// `"role:NAME"` for JWTs with that role.
    #[serde(default)]
    readers: Vec<String>,
    /// User ids who may post; `"*"` for every authenticated user.
    #[serde(default)]
    posters: Vec<String>,
    /// `"none"`, `"read"` or `"post"`.
    #[serde(default = "no_guests")]
    guests: String,
}

fn no_guests() -> String {
    "none".into()
}

/// Reads a config file into a policy. Errors name the file and the entry.
pub fn load(path: &Path) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_in(&text, base).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Redis URL a config file names (`redis = "..."`), if any.
pub fn redis_url(path: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.redis)
}

/// The rate limits a config file sets (`[limits]`), over `base` (what is
/// not set keeps `base`'s value); `None` if it has no `[limits]`.
pub fn limits(path: &Path, base: RateLimits) -> Result<Option<RateLimits>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_limits(&text, base).map_err(|e| format!("{}: {e}", path.display()))
}

/// The rate limits given on the command line; each one set wins over the
/// config file's, at start and on every reload.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitFlags {
    /// `--messages-per-second`.
    pub messages_per_second: Option<u32>,
    /// `--message-burst`.
    pub message_burst: Option<u32>,
    /// `--joins-per-second`.
    pub joins_per_second: Option<u32>,
    /// `--join-burst`.
    pub join_burst: Option<u32>,
}

impl LimitFlags {
    /// The limits in force: each flag given, else the file's `[limits]`
    /// (when there is a file), else the default.
    pub fn resolve(&self, file: Option<&Path>) -> Result<RateLimits, String> {
        let base = match file {
            Some(path) => limits(path, RateLimits::default())?.unwrap_or_default(),
            None => RateLimits::default(),
        };
        Ok(self.over(base))
    }

    fn over(&self, base: RateLimits) -> RateLimits {
        RateLimits {
            messages_per_second: self.messages_per_second.unwrap_or(base.messages_per_second),
            message_burst: self.message_burst.unwrap_or(base.message_burst),
            joins_per_second: self.joins_per_second.unwrap_or(base.joins_per_second),
            join_burst: self.join_burst.unwrap_or(base.join_burst),
        }
    }
}

fn parse_limits(text: &str, base: RateLimits) -> Result<Option<RateLimits>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(file.limits.map(|l| RateLimits {
        messages_per_second: l.messages_per_second.unwrap_or(base.messages_per_second),
        message_burst: l.message_burst.unwrap_or(base.message_burst),
        joins_per_second: l.joins_per_second.unwrap_or(base.joins_per_second),
        join_burst: l.join_burst.unwrap_or(base.join_burst),
    }))
}

/// Parses a config file's text into a policy (key files found from the
/// current directory).
pub fn parse(text: &str) -> Result<Policy, String> {
    parse_in(text, Path::new("."))
}

/// Parses a config file's text into a policy, with key files named in it
/// found from `base`.
pub fn parse_in(text: &str, base: &Path) -> Result<Policy, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut policy = Policy::empty();
    for u in &file.users {
        policy
            .add_user(&u.id, &u.name, &u.token_sha256)
            .map_err(|e| e.to_string())?;
        if u.admin {
            policy.add_admin(&u.id).map_err(|e| e.to_string())?;
        }
    }
    for r in &file.rooms {
        let guests = match r.guests.as_str() {
            "none" => GuestAccess::None,
            "read" => GuestAccess::Read,
            "post" => GuestAccess::Post,
            other => {
                return Err(format!(
                    "room {:?}: guests must be \"none\", \"read\" or \"post\", not {other:?}",
                    r.id
                ))
            }
        };
        let rule = RoomRule {
            readers: Users::from_list(&r.readers),
            posters: Users::from_list(&r.posters),
            guests,
        };
        policy.add_room(&r.id, rule).map_err(|e| e.to_string())?;
    }
    if let Some(jwt) = &file.jwt {
        crate::jwt::install(&mut policy, jwt, base)?;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_sansio::chat::policy::{hash_token, Identity};
    use chat_sansio::Code;

    #[test]
    fn the_example_file_parses_and_means_what_it_says() {
        let text = include_str!("../chat.example.toml");
        let p = parse(text).unwrap();
        let alice = p.authenticate(Some(b"Bearer alice-secret-token")).unwrap();
        assert_eq!(alice, Identity::User("alice".into()));
        assert!(p.check_post(&Identity::Guest, "room1").is_ok());
        assert!(p.check_post(&alice, "staff").is_ok());
        let bob = p.authenticate(Some(b"Bearer bob-secret-token")).unwrap();
        assert_eq!(
            p.check_post(&bob, "staff").unwrap_err().code,
            Code::PermissionDenied
        );
        assert_eq!(
            p.check_read(&Identity::Guest, "staff").unwrap_err().code,
            Code::PermissionDenied
        );
        assert!(p.check_read(&Identity::Guest, "announcements").is_ok());
        assert!(p.check_post(&Identity::Guest, "announcements").is_err());
    }

    #[test]
    fn limits_replace_the_flags_where_set() {
        let base = RateLimits::default();
        assert_eq!(parse_limits("", base).unwrap(), None);
        let got = parse_limits("[limits]\nmessages_per_second = 5\n", base)
            .unwrap()
            .unwrap();
        assert_eq!(got.messages_per_second, 5);
        assert_eq!(got.message_burst, base.message_burst);
        assert!(parse_limits("[limits]\nper_day = 5\n", base).is_err());
        let flags = LimitFlags {
            message_burst: Some(9),
            ..LimitFlags::default()
        };
        let file = parse_limits(
            "[limits]\nmessages_per_second = 5\nmessage_burst = 3\n",
            base,
        );
        let both = flags.over(file.unwrap().unwrap());
        assert_eq!((both.messages_per_second, both.message_burst), (5, 9));
        assert_eq!(flags.over(base).message_burst, 9);
        let p = parse(include_str!("../chat.example.toml")).unwrap();
        let alice = p.authenticate(Some(b"Bearer alice-secret-token")).unwrap();
        assert!(p.is_admin(&alice));
        let bob = p.authenticate(Some(b"Bearer bob-secret-token")).unwrap();
        assert!(!p.is_admin(&bob));
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse("[[room]]\nid = \"x\"\nguests = \"maybe\"\n")
            .unwrap_err()
            .contains("guests"));
        assert!(parse("[[user]]\nid = \"a\"\ntoken_sha256 = \"zz\"\n")
            .unwrap_err()
            .contains("64 hex"));
        assert!(parse("[[usr]]\n").is_err());
        let twice = format!(
            "[[user]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\n[[user]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\n",
            h = hash_token("t")
        );
        assert!(parse(&twice).unwrap_err().contains("twice"));
    }
}
