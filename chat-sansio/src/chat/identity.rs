//! Who a message or a join is from: the sender of record.

use chat_proto::User;

use crate::limits::MAX_USER_FIELD_LEN;
use crate::status::{Code, Status};

use super::policy::{Identity, Policy};

/// The user a call acts as, given its identity and what the client claims.
///
/// - An authenticated caller is always their configured account: a claim to
///   be anyone else is refused with PERMISSION_DENIED (never delivered under
///   the other id); an empty claim is filled in.
/// - A guest is who they claim to be, except that a guest may not use the id
///   of a configured account (PERMISSION_DENIED) and must give some id
///   (INVALID_ARGUMENT).
pub(crate) fn sender(policy: &Policy, who: &Identity, claimed: &User) -> Result<User, Status> {
    if claimed.user_id.len() > MAX_USER_FIELD_LEN || claimed.username.len() > MAX_USER_FIELD_LEN {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("user_id and username are limited to {MAX_USER_FIELD_LEN} bytes"),
        ));
    }
    match who {
        Identity::User(id) => {
            if !claimed.user_id.is_empty() && claimed.user_id != *id {
                return Err(Status::new(
                    Code::PermissionDenied,
                    format!(
                        "authenticated as {id:?}; may not act as {:?}",
                        claimed.user_id
                    ),
                ));
            }
            let name = policy
                .account(id)
                .map(|a| a.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| claimed.username.clone());
            Ok(User {
                user_id: id.clone(),
                username: name,
                room_id: String::new(),
            })
        }
        Identity::Guest => {
            if claimed.user_id.is_empty() {
                return Err(Status::new(
                    Code::InvalidArgument,
                    "user_id must not be empty",
                ));
            }
            if policy.is_registered(&claimed.user_id) {
                return Err(Status::new(
                    Code::PermissionDenied,
                    format!(
                        "user id {:?} belongs to a registered user; authenticate to use it",
                        claimed.user_id
                    ),
                ));
            }
            Ok(User {
                user_id: claimed.user_id.clone(),
                username: claimed.username.clone(),
                room_id: String::new(),
            })
        }
    }
}
