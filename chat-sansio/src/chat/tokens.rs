//! Tokens the core does not know the format of: the driver's verifier (an
//! identity provider's JWTs, checked in `bins`), and what it says of the
//! bearer. Kept out of the core's dependencies: the core only calls it.

use std::fmt;
use std::sync::Arc;

use crate::status::{Code, Status};

/// What a verified token says of its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claims {
    /// The user id (a JWT's `sub`).
    pub user_id: String,
    /// The display name delivered with their messages (may be empty).
    pub name: String,
    /// Roles, matched by `role:NAME` entries of rooms' readers and posters.
    pub roles: Vec<String>,
}

/// Checks bearer tokens that are not configured static tokens (JWTs from
/// an identity provider). The core knows nothing of their format: the
/// driver supplies the verifier, and the core calls it in
/// [`Policy::authenticate`](super::policy::Policy::authenticate).
pub trait TokenVerifier: Send + Sync + fmt::Debug {
    /// Who `token` authenticates, or why it does not
    /// ([`AuthError::Rejected`]).
    fn verify(&self, token: &str) -> Result<Claims, AuthError>;
}

/// The policy's verifier; two policies have the same one only if it is the
/// same object.
#[derive(Clone, Debug)]
pub(super) struct Verifier(pub(super) Arc<dyn TokenVerifier>);

impl PartialEq for Verifier {
    fn eq(&self, other: &Verifier) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Verifier {}

/// Why a call's credentials were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The `authorization` value is not `Bearer <token>`.
    Malformed,
    /// No user has this token.
    UnknownToken,
    /// The token verifier refused the token (a bad signature, expired, for
    /// another audience or issuer, ...): why.
    Rejected(String),
}

impl AuthError {
    /// The status to answer with: UNAUTHENTICATED.
    pub fn to_status(&self) -> Status {
        let msg = match self {
            AuthError::Malformed => "authorization must be \"Bearer <token>\"".to_owned(),
            AuthError::UnknownToken => "invalid token".to_owned(),
            AuthError::Rejected(why) => format!("invalid token: {why}"),
        };
        Status::new(Code::Unauthenticated, msg)
    }
}
