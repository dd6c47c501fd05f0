//! The moderation service, `chat.admin.ChatAdmin` (`proto/admin.proto`):
//! kick, ban and unban a user, list the rooms, delete a message. Only users
//! the policy marks as admins may call it; every action becomes a record
//! ([`ChatEvent::Admin`]) with who took it.

use bytes::Bytes;
use chat_proto::admin::{
    paths, AdminReply, DeleteMessageRequest, KickRequest, ListRoomsRequest, RoomInfo, RoomList,
    UnbanRequest,
};
use chat_proto::ChatMessage;
use prost::Message as _;

use crate::server::{CallId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::events::AdminAction;
use super::names::{self, Kind};
use super::policy::Identity;
use super::{Chat, ChatCall, ChatEvent, Session};

/// Longest reason kept with an action (what is recorded and told).
const MAX_REASON_LEN: usize = 256;

/// Which admin method a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Kick,
    Ban,
    Unban,
    ListRooms,
    DeleteMessage,
}

impl Method {
    /// The method of `path`, if it is one of the service's.
    pub(super) fn of(path: &str) -> Option<Method> {
        Some(match path {
            paths::KICK => Method::Kick,
            paths::BAN => Method::Ban,
            paths::UNBAN => Method::Unban,
            paths::LIST_ROOMS => Method::ListRooms,
            paths::DELETE_MESSAGE => Method::DeleteMessage,
            _ => return None,
        })
    }
}

/// Who may call: an admin; a guest is told to authenticate.
pub(super) fn check_admin(policy: &super::Policy, who: &Identity) -> Result<String, Status> {
    match who.user_id() {
        Some(id) if policy.is_admin(who) => Ok(id.to_owned()),
        Some(id) => Err(Status::new(
            Code::PermissionDenied,
            format!("user {id:?} is not an admin"),
        )),
        None => Err(Status::new(
            Code::Unauthenticated,
            "the admin service needs an admin's token",
        )),
    }
}

fn user_id(raw: &str) -> Result<String, Status> {
    let id = names::check(Kind::User, raw)?;
    if id.is_empty() {
        return Err(Status::new(Code::InvalidArgument, "user_id is empty"));
    }
    Ok(id)
}

fn reason(raw: &str) -> String {
    names::clip(raw, MAX_REASON_LEN).to_owned()
}

impl Chat {
    /// An admin call's one request.
    pub(super) fn admin_request(
        &mut self,
        now: Time,
        call: CallId,
        admin: &str,
        method: Method,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        let record = |action: AdminAction, reason: String, out: &mut Outbox<'_, ChatEvent>| {
            out.event(ChatEvent::Admin {
                by: admin.to_owned(),
                action,
                reason,
                at: now,
            });
        };
        let outcome = match method {
            Method::Kick | Method::Ban => {
                let req = KickRequest::decode(bytes).map_err(|e| malformed("KickRequest", &e))?;
                let target = user_id(&req.user_id)?;
                let why = reason(&req.reason);
                let ban = method == Method::Ban;
                if ban {
                    self.banned.insert(target.clone());
                }
                let ended = self.kick(now, &target, ban, &why, out);
                let action = if ban {
                    AdminAction::Ban { user_id: target }
                } else {
                    AdminAction::Kick { user_id: target }
                };
                record(action, why, out);
                format!("{} call(s) ended", ended)
            }
            Method::Unban => {
                let req = UnbanRequest::decode(bytes).map_err(|e| malformed("UnbanRequest", &e))?;
                let target = user_id(&req.user_id)?;
                let was = self.banned.remove(&target);
                record(AdminAction::Unban { user_id: target }, String::new(), out);
                if was { "unbanned" } else { "was not banned" }.to_owned()
            }
            Method::ListRooms => {
                ListRoomsRequest::decode(bytes).map_err(|e| malformed("ListRoomsRequest", &e))?;
                let reply = self.room_list();
                out.send_message(call, &reply);
                out.finish(call, Status::ok());
                return Ok(());
            }
            Method::DeleteMessage => {
                let req = DeleteMessageRequest::decode(bytes)
                    .map_err(|e| malformed("DeleteMessageRequest", &e))?;
                let room = self.policy.room_name(&req.room_id)?;
                if req.seq == 0 {
                    return Err(Status::new(
                        Code::InvalidArgument,
                        "seq must be a message's number",
                    ));
                }
                let id = self.next_request;
                self.next_request += 1;
                self.deletions.insert(id, call);
                if let Some(ChatCall::Admin { asked, .. }) = self.calls.get_mut(&call) {
                    *asked = true;
                }
                record(
                    AdminAction::Delete {
                        room: room.clone(),
                        seq: req.seq,
                    },
                    reason(&req.reason),
                    out,
                );
                out.event(ChatEvent::Delete {
                    id,
                    room,
                    seq: req.seq,
                });
                return Ok(());
            }
        };
        out.send_message(call, &AdminReply { outcome });
        out.finish(call, Status::ok());
        Ok(())
    }

    /// Ends every call of `user_id` here (PERMISSION_DENIED with the
    /// reason), and their sessions, whose rooms hear them leave. Returns
    /// how many calls ended.
    pub(super) fn kick(
        &mut self,
        now: Time,
        user_id: &str,
        banned: bool,
        why: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> usize {
        let conns: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user.user_id == user_id)
            .map(|(c, _)| *c)
            .collect();
        let calls: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                let (conn, who) = match c {
                    ChatCall::Stream(s) => (Some(s.conn), &s.who),
                    ChatCall::Join { conn, who, .. } => (Some(*conn), who),
                    ChatCall::History { who, .. } | ChatCall::Admin { who, .. } => (None, who),
                };
                who.user_id() == Some(user_id) || conn.is_some_and(|c| conns.contains(&c))
            })
            .map(|(id, _)| *id)
            .collect();
        let what = if banned { "banned" } else { "removed" };
        let message = if why.is_empty() {
            format!("{what} by an administrator")
        } else {
            format!("{what} by an administrator: {why}")
        };
        let mut ended = 0;
        for call in calls {
            self.forget(call);
            if out.finish(call, Status::new(Code::PermissionDenied, message.clone())) {
                ended += 1;
            }
        }
        for conn in conns {
            self.following.remove(&conn);
            if let Some(session) = self.sessions.remove(&conn) {
                let session: Session = session;
                self.leave(now, conn, &session, out);
            }
        }
        ended
    }

    /// The engine's answer to a deletion: the admin is told, and the room's
    /// streams here get the tombstone as a notice.
    pub(super) fn deleted(
        &mut self,
        id: u64,
        result: Result<Option<ChatMessage>, String>,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(call) = self.deletions.remove(&id) else {
            return;
        };
        let status = match result {
            Ok(Some(tombstone)) => {
                self.tombstone(&tombstone, out);
                let outcome = format!(
                    "message {} of {:?} deleted",
                    tombstone.seq, tombstone.room_id
                );
                out.send_message(call, &AdminReply { outcome });
                Status::ok()
            }
            Ok(None) => Status::new(Code::NotFound, "no such message (or no longer held)"),
            Err(reason) => Status::new(
                Code::Unavailable,
                format!("the message could not be deleted ({reason}); try again"),
            ),
        };
        self.calls.remove(&call);
        out.finish(call, status);
    }

    /// Tells the room's streams here that an entry is now a tombstone.
    pub(super) fn tombstone(&mut self, tombstone: &ChatMessage, out: &mut Outbox<'_, ChatEvent>) {
        if let Some(room) = self.rooms.get(&tombstone.room_id) {
            if let Ok(frame) = crate::codec::encode(tombstone) {
                out.multicast(room.group(), frame);
            }
        }
    }

    /// The rooms in memory here, by id.
    fn room_list(&self) -> RoomList {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|(id, r)| RoomInfo {
                room_id: id.clone(),
                users: r.users().into_iter().map(|u| u.user_id).collect(),
                epoch: r.log.map_or(0, |l| l.epoch),
                last_seq: r.log.map_or(0, |l| l.delivered),
                streams: u32::try_from(r.streams().len()).unwrap_or(u32::MAX),
            })
            .collect();
        rooms.sort_by(|a, b| a.room_id.cmp(&b.room_id));
        RoomList { rooms }
    }
}
