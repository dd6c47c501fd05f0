//! Who a message or a join is from: the sender of record.

use chat_proto::User;

use crate::status::{Code, Status};

use super::names::{self, Kind};
use super::policy::{Identity, Policy};

/// The user a call acts as, given its identity and what the client claims.
///
/// - The claimed id and name must follow the rule for names (see
///   [`names`]): INVALID_ARGUMENT otherwise; they are taken in NFC.
/// - An authenticated caller is always their configured account: a claim to
///   be anyone else is refused with PERMISSION_DENIED (never delivered under
///   the other id); an empty claim is filled in.
/// - A guest is who they claim to be, except that a guest may not use an id
///   or a name that is, or looks like, a configured account's id or name
///   (PERMISSION_DENIED), and must give some id (INVALID_ARGUMENT).
pub(crate) fn sender(policy: &Policy, who: &Identity, claimed: &User) -> Result<User, Status> {
    let user_id = names::check(Kind::User, &claimed.user_id)?;
    let username = names::check(Kind::Name, &claimed.username)?;
    match who {
        Identity::User(_) | Identity::Verified(_) => {
            let id = who.user_id().unwrap_or_default();
            if !user_id.is_empty() && user_id != id {
                return Err(Status::new(
                    Code::PermissionDenied,
                    format!("authenticated as {id:?}; may not act as {user_id:?}"),
                ));
            }
            // A configured name, or the token's, wins over the claim.
            let given = match who {
                Identity::Verified(c) => Some(c.name.clone()),
                _ => policy.account(id).map(|a| a.name.clone()),
            };
            let name = given.filter(|n| !n.is_empty()).unwrap_or(username);
            Ok(User {
                user_id: id.to_owned(),
                username: name,
                room_id: String::new(),
            })
        }
        Identity::Guest => {
            if user_id.is_empty() {
                return Err(Status::new(
                    Code::InvalidArgument,
                    "user_id must not be empty",
                ));
            }
            for claim in [&user_id, &username] {
                if let Some(owner) = policy.user_lookalike(claim) {
                    return Err(Status::new(
                        Code::PermissionDenied,
                        format!(
                            "{claim:?} is, or looks like, registered user {owner:?}; authenticate to use it"
                        ),
                    ));
                }
            }
            Ok(User {
                user_id,
                username,
                room_id: String::new(),
            })
        }
    }
}
