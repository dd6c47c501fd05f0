//! Who may do what: users and their tokens, and per-room permissions.
//!
//! The policy is plain data handed to the core by the driver (which reads
//! it from a config file); the core only looks things up. Tokens are never
//! stored: only their SHA-256 hashes. Tokens are random secrets, not
//! passwords, so a fast unsalted hash is the right tool: it cannot be
//! reversed, and a lookup by hash reveals nothing about other tokens.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::status::{Code, Status};

use super::names::{self, Kind};

/// Who a call acts as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials were presented.
    Guest,
    /// Authenticated as this configured user id.
    User(String),
    /// Authenticated by a token the policy's [`TokenVerifier`] accepted (an
    /// identity provider's JWT): who the token says. A variant of its own,
    /// rather than a role map beside `User`, because the roles belong to
    /// the token presented, not to a configured account.
    Verified(Arc<Claims>),
}

impl Identity {
    /// The authenticated user's id; `None` for a guest.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Identity::Guest => None,
            Identity::User(id) => Some(id),
            Identity::Verified(c) => Some(&c.user_id),
        }
    }
}

use super::tokens::Verifier;
pub use super::tokens::{AuthError, Claims, TokenVerifier};

/// What guests (callers without credentials) may do in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuestAccess {
    /// Guests may not enter.
    None,
    /// Guests may read.
    Read,
    /// Guests may read and post.
    Post,
}

/// A set of authenticated users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Users {
    /// Every authenticated user.
    All,
    /// These user ids.
    Only(HashSet<String>),
}

impl Users {
    /// No authenticated user.
    pub fn none() -> Users {
        Users::Only(HashSet::new())
    }

    /// From a list of ids where `"*"` means everyone.
    pub fn from_list<S: AsRef<str>>(ids: &[S]) -> Users {
        if ids.iter().any(|i| i.as_ref() == "*") {
            Users::All
        } else {
            Users::Only(ids.iter().map(|i| i.as_ref().to_owned()).collect())
        }
    }

    fn contains(&self, user: &str) -> bool {
        match self {
            Users::All => true,
            Users::Only(set) => set.contains(user),
        }
    }

    /// Whether `who` is among these users: by id, or (for a verified
    /// token) by a `role:NAME` entry naming one of its roles.
    fn admits(&self, who: &Identity) -> bool {
        match (self, who) {
            (_, Identity::Guest) => false,
            (Users::All, _) => true,
            (_, Identity::User(id)) => self.contains(id),
            (Users::Only(set), Identity::Verified(c)) => {
                set.contains(&c.user_id)
                    || c.roles
                        .iter()
                        .any(|r| set.contains(&format!("{ROLE_PREFIX}{r}")))
            }
        }
    }
}

/// How a readers or posters entry names a role rather than a user id.
pub const ROLE_PREFIX: &str = "role:";

/// Permissions of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRule {
    /// Authenticated users who may read (join, see messages and presence).
    pub readers: Users,
    /// Authenticated users who may post; they must also be readers.
    pub posters: Users,
    /// What callers without credentials may do.
    pub guests: GuestAccess,
}

impl RoomRule {
    /// Everyone may read and post, guests included.
    pub fn open() -> RoomRule {
        RoomRule {
            readers: Users::All,
            posters: Users::All,
            guests: GuestAccess::Post,
        }
    }
}

/// A configured user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The display name delivered with their messages.
    pub name: String,
}

/// A policy entry that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// A token hash that is not 64 hex digits.
    BadTokenHash(String),
    /// Two users with the same id.
    DuplicateUser(String),
    /// Two users with the same token.
    DuplicateToken(String),
    /// Two rules for the same room.
    DuplicateRoom(String),
    /// A user or room id that is empty, too long, not in NFC, or has
    /// characters ids may not have (see the `names` rule).
    BadId(String),
    /// An admin who is not a configured user.
    UnknownAdmin(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadTokenHash(u) => {
                write!(f, "user {u:?}: token_sha256 must be 64 hex digits")
            }
            PolicyError::DuplicateUser(u) => write!(f, "user {u:?} is listed twice"),
            PolicyError::DuplicateToken(u) => {
                write!(f, "user {u:?} has the same token as another user")
            }
            PolicyError::DuplicateRoom(r) => write!(f, "room {r:?} is listed twice"),
            PolicyError::UnknownAdmin(u) => {
                write!(f, "admin {u:?} is not a configured user")
            }
            PolicyError::BadId(id) => write!(
                f,
                "id {id:?} is empty, too long, not in NFC, or has control, invisible or bidirectional characters"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Users, tokens and room rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    accounts: HashMap<String, Account>,
    tokens: HashMap<[u8; 32], String>,
    rooms: HashMap<String, RoomRule>,
    /// The rule for rooms not listed; `None` means only listed rooms exist.
    other_rooms: Option<RoomRule>,
    /// Skeletons ([`names::skeleton`]) of configured user ids and names,
    /// with the user they belong to: guests may not take a look-alike.
    user_lookalikes: HashMap<String, String>,
    /// Skeletons of configured room ids, with the room.
    room_lookalikes: HashMap<String, String>,
    /// Users who may call the moderation service (`chat.admin.ChatAdmin`).
    admins: std::collections::HashSet<String>,
    /// Checks bearer tokens that are not static ones (JWTs).
    verifier: Option<Verifier>,
    /// Verified tokens with this role may call the moderation service.
    admin_role: Option<String>,
}

impl Default for Policy {
    /// The built-in policy when no config is given: no accounts, and every
    /// room (`room1` included) open to everyone, guests included.
    fn default() -> Policy {
        Policy {
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            rooms: HashMap::new(),
            other_rooms: Some(RoomRule::open()),
            user_lookalikes: HashMap::new(),
            room_lookalikes: HashMap::new(),
            admins: Default::default(),
            verifier: None,
            admin_role: None,
        }
    }
}

/// SHA-256 of a token, as lower-case hex: what a config file stores.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A configured id must follow the rule for names ([`names`]) as given:
/// already in NFC, so that what a client sends matches it.
fn check_id(kind: Kind, id: &str) -> Result<(), PolicyError> {
    match names::check(kind, id) {
        Ok(nfc) if !id.is_empty() && nfc == id => Ok(()),
        _ => Err(PolicyError::BadId(id.to_owned())),
    }
}

impl Policy {
    /// A policy with no accounts and no rooms: add them with the methods
    /// below.
    pub fn empty() -> Policy {
        Policy {
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            rooms: HashMap::new(),
            other_rooms: None,
            user_lookalikes: HashMap::new(),
            room_lookalikes: HashMap::new(),
            admins: Default::default(),
            verifier: None,
            admin_role: None,
        }
    }

    /// Adds a user whose token hashes to `token_sha256` (hex).
    pub fn add_user(
        &mut self,
        id: &str,
        name: &str,
        token_sha256: &str,
    ) -> Result<(), PolicyError> {
        check_id(Kind::User, id)?;
        if id.starts_with(ROLE_PREFIX) {
            // It would be matched by a room's role entry.
            return Err(PolicyError::BadId(id.to_owned()));
        }
        let hash =
            parse_hash(token_sha256).ok_or_else(|| PolicyError::BadTokenHash(id.to_owned()))?;
        if self.accounts.contains_key(id) {
            return Err(PolicyError::DuplicateUser(id.to_owned()));
        }
        if self.tokens.contains_key(&hash) {
            return Err(PolicyError::DuplicateToken(id.to_owned()));
        }
        self.tokens.insert(hash, id.to_owned());
        for s in [id, name] {
            if !s.is_empty() {
                self.user_lookalikes
                    .insert(names::skeleton(s), id.to_owned());
            }
        }
        self.accounts.insert(
            id.to_owned(),
            Account {
                name: name.to_owned(),
            },
        );
        Ok(())
    }

    /// Sets the rule of room `id`; `"*"` sets the rule for every room not
    /// listed (without one, only listed rooms exist).
    pub fn add_room(&mut self, id: &str, rule: RoomRule) -> Result<(), PolicyError> {
        if id == "*" {
            if self.other_rooms.is_some() {
                return Err(PolicyError::DuplicateRoom(id.to_owned()));
            }
            self.other_rooms = Some(rule);
            return Ok(());
        }
        check_id(Kind::Room, id)?;
        if self.rooms.insert(id.to_owned(), rule).is_some() {
            return Err(PolicyError::DuplicateRoom(id.to_owned()));
        }
        self.room_lookalikes
            .insert(names::skeleton(id), id.to_owned());
        Ok(())
    }

    /// The configured user whose id or name `s` looks like (see
    /// [`names::skeleton`]), if any.
    pub fn user_lookalike(&self, s: &str) -> Option<&str> {
        if self.user_lookalikes.is_empty() || s.is_empty() {
            return None;
        }
        self.user_lookalikes
            .get(&names::skeleton(s))
            .map(String::as_str)
    }

    /// The room a client means by `raw`: `room1` for an empty id, else the
    /// id checked and normalized ([`names::check`]). An id that looks like
    /// a configured room without being it is refused with
    /// INVALID_ARGUMENT, so nobody can open "ѕtaff" beside "staff".
    pub fn room_name(&self, raw: &str) -> Result<String, Status> {
        if raw.is_empty() {
            return Ok(super::DEFAULT_ROOM.to_owned());
        }
        let room = names::check(Kind::Room, raw)?;
        if !self.room_lookalikes.is_empty() && !self.rooms.contains_key(&room) {
            if let Some(real) = self.room_lookalikes.get(&names::skeleton(&room)) {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!("room id {room:?} looks like the room {real:?}"),
                ));
            }
        }
        Ok(room)
    }

    /// The identity a call's `authorization` value grants: guest without
    /// one, the user whose token it carries, or an error.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Identity, AuthError> {
        let Some(value) = authorization else {
            return Ok(Identity::Guest);
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| AuthError::Malformed)?
            .trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(id) = self.tokens.get(&hash) {
            return Ok(Identity::User(id.clone()));
        }
        match &self.verifier {
            Some(v) => {
                let claims = v.0.verify(token)?;
                check_id(Kind::User, &claims.user_id).map_err(|_| {
                    AuthError::Rejected("the subject is not a valid user id".into())
                })?;
                if names::check(Kind::Name, &claims.name).is_err() {
                    return Err(AuthError::Rejected(
                        "the name claim is not a valid name".into(),
                    ));
                }
                Ok(Identity::Verified(Arc::new(claims)))
            }
            None => Err(AuthError::UnknownToken),
        }
    }

    /// Tokens that are not static ones are checked by `verifier` (JWTs
    /// from an identity provider); the static tokens keep working.
    pub fn set_verifier(&mut self, verifier: Arc<dyn TokenVerifier>) {
        self.verifier = Some(Verifier(verifier));
    }

    /// Verified tokens carrying `role` may call the moderation service.
    pub fn set_admin_role(&mut self, role: &str) {
        self.admin_role = Some(role.to_owned());
    }

    /// Lets configured user `id` call the moderation service.
    pub fn add_admin(&mut self, id: &str) -> Result<(), PolicyError> {
        if !self.accounts.contains_key(id) {
            return Err(PolicyError::UnknownAdmin(id.to_owned()));
        }
        self.admins.insert(id.to_owned());
        Ok(())
    }

    /// Whether `who` may call the moderation service: an authenticated
    /// user the config marks as admin.
    pub fn is_admin(&self, who: &Identity) -> bool {
        match who {
            Identity::Guest => false,
            Identity::User(id) => self.admins.contains(id),
            Identity::Verified(c) => self
                .admin_role
                .as_ref()
                .is_some_and(|role| c.roles.contains(role)),
        }
    }

    /// How many users are configured.
    pub fn user_count(&self) -> usize {
        self.accounts.len()
    }

    /// How many rooms are listed (the rule for other rooms not counted).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The account of a configured user.
    pub fn account(&self, user_id: &str) -> Option<&Account> {
        self.accounts.get(user_id)
    }

    /// Whether `user_id` belongs to a configured account (guests may not
    /// use such an id).
    pub fn is_registered(&self, user_id: &str) -> bool {
        self.accounts.contains_key(user_id)
    }

    /// The rule of `room`, if the room exists.
    pub fn rule(&self, room: &str) -> Option<&RoomRule> {
        self.rooms.get(room).or(self.other_rooms.as_ref())
    }

    /// Whether `who` may read `room`; NOT_FOUND if the room does not exist,
    /// PERMISSION_DENIED if they may not.
    pub fn check_read(&self, who: &Identity, room: &str) -> Result<(), Status> {
        let rule = self.existing(room)?;
        let allowed = match who {
            Identity::Guest => rule.guests >= GuestAccess::Read,
            _ => rule.readers.admits(who),
        };
        if allowed {
            Ok(())
        } else {
            Err(Status::new(
                Code::PermissionDenied,
                format!("{} may not read room {room:?}", describe(who)),
            ))
        }
    }

    /// Whether `who` may post in `room`.
    pub fn check_post(&self, who: &Identity, room: &str) -> Result<(), Status> {
        self.check_read(who, room)?;
        let rule = self.existing(room)?;
        let allowed = match who {
            Identity::Guest => rule.guests >= GuestAccess::Post,
            _ => rule.posters.admits(who),
        };
        if allowed {
            Ok(())
        } else {
            Err(Status::new(
                Code::PermissionDenied,
                format!("{} may not post in room {room:?}", describe(who)),
            ))
        }
    }

    fn existing(&self, room: &str) -> Result<&RoomRule, Status> {
        self.rule(room)
            .ok_or_else(|| Status::new(Code::NotFound, format!("no room {room:?}")))
    }
}

fn describe(who: &Identity) -> String {
    match who.user_id() {
        None => "a guest".to_owned(),
        Some(id) => format!("user {id:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut p = Policy::empty();
        p.add_user("alice", "Alice", &hash_token("alice-secret"))
            .unwrap();
        p.add_user("bob", "Bob", &hash_token("bob-secret")).unwrap();
        p.add_room("lobby", RoomRule::open()).unwrap();
        p.add_room(
            "staff",
            RoomRule {
                readers: Users::from_list(&["alice", "bob"]),
                posters: Users::from_list(&["alice"]),
                guests: GuestAccess::None,
            },
        )
        .unwrap();
        p
    }

    #[test]
    fn tokens_authenticate_their_users() {
        let p = policy();
        assert_eq!(p.authenticate(None), Ok(Identity::Guest));
        assert_eq!(
            p.authenticate(Some(b"Bearer alice-secret")),
            Ok(Identity::User("alice".into()))
        );
        assert_eq!(
            p.authenticate(Some(b"bearer  bob-secret ")),
            Ok(Identity::User("bob".into()))
        );
        assert_eq!(
            p.authenticate(Some(b"Bearer nope")),
            Err(AuthError::UnknownToken)
        );
        assert_eq!(
            p.authenticate(Some(b"Basic abc")),
            Err(AuthError::Malformed)
        );
        assert_eq!(p.authenticate(Some(b"Bearer")), Err(AuthError::Malformed));
        assert_eq!(
            p.authenticate(Some(&[0xff, 0xfe])),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn rooms_grant_read_and_post_separately() {
        let p = policy();
        let alice = Identity::User("alice".into());
        let bob = Identity::User("bob".into());
        assert!(p.check_post(&alice, "staff").is_ok());
        assert!(p.check_read(&bob, "staff").is_ok());
        assert_eq!(
            p.check_post(&bob, "staff").unwrap_err().code,
            Code::PermissionDenied
        );
        assert_eq!(
            p.check_read(&Identity::Guest, "staff").unwrap_err().code,
            Code::PermissionDenied
        );
        assert!(p.check_post(&Identity::Guest, "lobby").is_ok());
        assert_eq!(
            p.check_read(&alice, "nowhere").unwrap_err().code,
            Code::NotFound
        );
    }

    #[test]
    fn the_default_policy_opens_every_room_to_guests() {
        let p = Policy::default();
        assert!(p.check_post(&Identity::Guest, "room1").is_ok());
        assert!(p.check_post(&Identity::Guest, "anything").is_ok());
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut p = policy();
        assert!(matches!(
            p.add_user("carol", "C", "abc"),
            Err(PolicyError::BadTokenHash(_))
        ));
        assert!(matches!(
            p.add_user("alice", "A", &hash_token("x")),
            Err(PolicyError::DuplicateUser(_))
        ));
        assert!(matches!(
            p.add_user("carol", "C", &hash_token("alice-secret")),
            Err(PolicyError::DuplicateToken(_))
        ));
        assert!(matches!(
            p.add_room("lobby", RoomRule::open()),
            Err(PolicyError::DuplicateRoom(_))
        ));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
