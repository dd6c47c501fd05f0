//! A new policy while running ([`ChatInput::Policy`](super::ChatInput::Policy)):
//! the operator rewrote the config and the driver read it again.
//!
//! Nothing is dropped that the new policy still allows. What it no longer
//! allows ends: a JoinChat stream whose caller may not read its room any
//! more gets PERMISSION_DENIED, and a session (connection presence) whose
//! user may not read its room leaves it, as if it had switched elsewhere.
//! Calls that read once and finish (JoinChatRoom answers, History) are
//! left to finish; the next request is checked against the new policy.

use crate::server::{CallId, ConnId, Outbox};
use crate::status::{Code, Status};
use crate::time::Time;

use super::policy::Policy;
use super::{Chat, ChatCall, ChatEvent};

impl Chat {
    /// Puts `policy` in force and ends what it no longer allows.
    pub(super) fn replace_policy(
        &mut self,
        now: Time,
        policy: Policy,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        self.policy = policy;
        let withdrawn: Vec<(CallId, String)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| match c {
                ChatCall::Stream(s) if self.policy.check_read(&s.who, &s.room).is_err() => {
                    Some((*id, s.room.clone()))
                }
                _ => None,
            })
            .collect();
        for (call, room) in withdrawn {
            self.forget(call);
            out.finish(
                call,
                Status::new(
                    Code::PermissionDenied,
                    format!("permission to read {room} was withdrawn"),
                ),
            );
        }
        let leaving: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| self.policy.check_read(&s.who, &s.room).is_err())
            .map(|(conn, _)| *conn)
            .collect();
        for conn in leaving {
            if let Some(session) = self.sessions.remove(&conn) {
                self.leave(now, conn, &session, out);
            }
        }
    }
}
