//! The policy under test and the naming rules, as the model states them:
//! who the users are, what rooms they may read and post in, and what room
//! a client means by what it sends.

use crate::chat::names::{self, Kind as NameKind};
use crate::chat::policy::{hash_token, GuestAccess, Policy, RoomRule, Users};
use crate::chat::{DEFAULT_PAGE, DEFAULT_ROOM, MAX_PAGE};
use crate::status::Code;

use super::ops::RuleChoice;

/// The rooms with rules of their own.
pub const ROOMS: [&str; 3] = [DEFAULT_ROOM, "r1", "r2"];
/// Users with accounts: `u0`..`u2`.
pub const USERS: u8 = 3;

/// Who a call acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Guest `g<n>`: no credentials.
    Guest(u8),
    /// User `u<n>`, authenticated by its token.
    User(u8),
}

impl Who {
    /// The user id it acts as when it claims its own.
    pub fn id(self) -> String {
        match self {
            Who::Guest(g) => format!("g{g}"),
            Who::User(u) => format!("u{u}"),
        }
    }
}

/// The token of user `u`.
pub fn token(u: u8) -> String {
    format!("tok-u{u}")
}

/// The configured name of user `u`, which the chat delivers.
pub fn account_name(u: u8) -> String {
    format!("User {u}")
}

/// The room a client means by `raw`, as the chat decides: `room1` for
/// nothing, else the id under the names rule (`crate::chat::names`, tested
/// on its own and used here as the oracle for what is valid and its NFC
/// form), and not a look-alike of a listed room (INVALID_ARGUMENT).
pub fn room_name(raw: &str) -> Result<String, Code> {
    if raw.is_empty() {
        return Ok(crate::chat::DEFAULT_ROOM.to_owned());
    }
    let room = names::check(NameKind::Room, raw).map_err(|_| Code::InvalidArgument)?;
    let lookalike = ROOMS
        .iter()
        .any(|r| *r != room && names::skeleton(r) == names::skeleton(&room));
    if lookalike {
        return Err(Code::InvalidArgument);
    }
    Ok(room)
}

/// Whether a guest's claimed id or name is, or looks like, a configured
/// user's id or name.
pub fn is_lookalike(claim: &str) -> bool {
    !claim.is_empty()
        && (0..USERS).any(|u| {
            [Who::User(u).id(), account_name(u)]
                .iter()
                .any(|own| names::skeleton(own) == names::skeleton(claim))
        })
}

/// Whether `id` belongs to a configured account.
pub fn is_registered(id: &str) -> bool {
    (0..USERS).any(|u| Who::User(u).id() == id)
}

/// The page size the chat uses for a requested `limit`: 0 means the
/// default, and no more than the maximum.
pub fn page_size(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// A room's permissions: bit sets over users `u0`..`u2`, and guests' level
/// (0 none, 1 read, 2 post).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    readers: u8,
    posters: u8,
    guests: u8,
}

impl Rule {
    fn new(choice: RuleChoice) -> Rule {
        match choice {
            RuleChoice::Open => Rule {
                readers: 7,
                posters: 7,
                guests: 2,
            },
            RuleChoice::Some {
                readers,
                posters,
                guests,
            } => Rule {
                readers: readers & 7,
                posters: posters & 7,
                guests: guests % 3,
            },
        }
    }

    /// Whether `who` may read the room.
    pub fn can_read(self, who: Who) -> bool {
        match who {
            Who::Guest(_) => self.guests >= 1,
            Who::User(u) => self.readers & (1 << u) != 0,
        }
    }

    /// Whether `who` may post in the room.
    pub fn can_post(self, who: Who) -> bool {
        self.can_read(who)
            && match who {
                Who::Guest(_) => self.guests >= 2,
                Who::User(u) => self.posters & (1 << u) != 0,
            }
    }

    fn to_rule(self) -> RoomRule {
        let users = |bits: u8| {
            if bits == 7 {
                return Users::All;
            }
            let ids: Vec<String> = (0..USERS)
                .filter(|u| bits & (1 << u) != 0)
                .map(|u| Who::User(u).id())
                .collect();
            Users::from_list(&ids)
        };
        RoomRule {
            readers: users(self.readers),
            posters: users(self.posters),
            guests: [GuestAccess::None, GuestAccess::Read, GuestAccess::Post]
                [usize::from(self.guests)],
        }
    }
}

/// The rooms' rules.
#[derive(Debug)]
pub struct Rules {
    listed: [Rule; 3],
    other: Option<Rule>,
}

impl Rules {
    /// The rules `listed` and `other` choose.
    pub fn new(listed: [RuleChoice; 3], other: Option<RuleChoice>) -> Rules {
        Rules {
            listed: listed.map(Rule::new),
            other: other.map(Rule::new),
        }
    }
}

impl Rules {
    /// The rule of `room`, if it exists.
    pub fn rule(&self, room: &str) -> Option<Rule> {
        match ROOMS.iter().position(|r| *r == room) {
            Some(i) => Some(self.listed[i]),
            None => self.other,
        }
    }

    /// What `Policy::check_read` answers: NOT_FOUND, PERMISSION_DENIED or ok.
    pub fn check_read(&self, who: Who, room: &str) -> Result<(), Code> {
        match self.rule(room) {
            None => Err(Code::NotFound),
            Some(r) if !r.can_read(who) => Err(Code::PermissionDenied),
            Some(_) => Ok(()),
        }
    }

    /// What `Policy::check_post` answers.
    pub fn check_post(&self, who: Who, room: &str) -> Result<(), Code> {
        self.check_read(who, room)?;
        match self.rule(room) {
            Some(r) if r.can_post(who) => Ok(()),
            _ => Err(Code::PermissionDenied),
        }
    }

    /// The policy the chat under test gets.
    pub fn policy(&self) -> Policy {
        let mut policy = Policy::empty();
        for u in 0..USERS {
            let id = Who::User(u).id();
            policy
                .add_user(&id, &account_name(u), &hash_token(&token(u)))
                .expect("a valid user");
        }
        for (room, rule) in ROOMS.iter().zip(self.listed) {
            policy.add_room(room, rule.to_rule()).expect("a valid room");
        }
        if let Some(rule) = self.other {
            policy.add_room("*", rule.to_rule()).expect("one default");
        }
        policy
    }
}
