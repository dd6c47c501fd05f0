//! Tokens checked by a driver's verifier (the server's JWTs): the claims'
//! user id, name and roles; rooms granting by `role:NAME`; an admin role;
//! a refused token answered UNAUTHENTICATED and recorded; static tokens
//! still working beside them. The verifier here is a fake made for the
//! test: the core never sees a JWT.

mod util;

use std::sync::Arc;

use chat_proto::admin::{paths, ListRoomsRequest};
use chat_proto::paths::JOIN_CHAT;
use chat_sansio::chat::policy::{
    hash_token, AuthError, Claims, GuestAccess, Identity, Policy, RoomRule, TokenVerifier, Users,
};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent};
use chat_sansio::server::{CallId, Server};
use chat_sansio::Code;
use util::{chat_message, grpc_head, Harness};

/// Accepts `ok:ID:NAME:ROLE,ROLE`; refuses anything else as expired.
#[derive(Debug)]
struct Fake;

impl TokenVerifier for Fake {
    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut parts = token.splitn(4, ':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ok"), Some(id), Some(name), Some(roles)) => Ok(Claims {
                user_id: id.into(),
                name: name.into(),
                roles: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }),
            _ => Err(AuthError::Rejected("the token has expired".into())),
        }
    }
}

fn policy() -> Policy {
    let mut p = Policy::empty();
    p.add_user("ann", "Ann", &hash_token("ann-token")).unwrap();
    p.add_room(
        "ops",
        RoomRule {
            readers: Users::from_list(&["role:ops", "role:audit", "ann"]),
            posters: Users::from_list(&["role:ops"]),
            guests: GuestAccess::None,
        },
    )
    .unwrap();
    p.set_verifier(Arc::new(Fake));
    p.set_admin_role("chat-admin");
    p
}

fn harness() -> Harness<Chat> {
    let chat = Chat::new(ChatConfig {
        policy: policy(),
        ..ChatConfig::default()
    });
    let mut h = util::chat_with(Server::new(chat));
    h.connect(1);
    h
}

fn open(h: &mut Harness<Chat>, path: &str, token: &str, room: &str) -> CallId {
    let auth = format!("Bearer {token}");
    let mut extra = vec![("authorization", auth.as_str())];
    if !room.is_empty() {
        extra.push(("chat-room", room));
    }
    h.open_with(1, grpc_head(path, &extra))
}

fn ended(h: &Harness<Chat>, call: CallId) -> bool {
    !h.log(call).end.is_empty()
}

#[test]
fn the_verifier_is_asked_only_for_tokens_that_are_not_static() {
    let p = policy();
    assert_eq!(
        p.authenticate(Some(b"Bearer ann-token")),
        Ok(Identity::User("ann".into()))
    );
    let who = p.authenticate(Some(b"Bearer ok:zed:Zed:ops")).unwrap();
    assert_eq!(who.user_id(), Some("zed"));
    assert_eq!(
        p.authenticate(Some(b"Bearer forged")),
        Err(AuthError::Rejected("the token has expired".into()))
    );
    assert_eq!(
        p.authenticate(Some(b"Bearer ok::Nobody:ops")).unwrap_err(),
        AuthError::Rejected("the subject is not a valid user id".into())
    );
    assert!(Policy::empty()
        .add_user("role:ops", "", &hash_token("x"))
        .is_err());
}

#[test]
fn roles_grant_rooms_and_the_admin_role_grants_moderation() {
    let p = policy();
    let ops = p.authenticate(Some(b"Bearer ok:zed:Zed:ops")).unwrap();
    let audit = p.authenticate(Some(b"Bearer ok:amy:Amy:audit")).unwrap();
    let none = p.authenticate(Some(b"Bearer ok:nat:Nat:")).unwrap();
    let admin = p
        .authenticate(Some(b"Bearer ok:root:Root:chat-admin"))
        .unwrap();
    assert!(p.check_post(&ops, "ops").is_ok());
    assert!(p.check_read(&audit, "ops").is_ok());
    assert_eq!(
        p.check_post(&audit, "ops").unwrap_err().code,
        Code::PermissionDenied
    );
    assert_eq!(
        p.check_read(&none, "ops").unwrap_err().code,
        Code::PermissionDenied
    );
    assert!(p.is_admin(&admin));
    assert!(!p.is_admin(&ops));
}

#[test]
fn a_verified_user_posts_under_the_tokens_name_and_a_refused_one_is_recorded() {
    let mut h = harness();
    let zed = open(&mut h, JOIN_CHAT, "ok:zed:Zed:ops", "ops");
    assert!(!ended(&h, zed));
    h.send(zed, &chat_message("", "hello ops"));
    let got: Vec<chat_proto::ChatMessage> = h.decoded(zed);
    let user = got[0].user.clone().unwrap_or_default();
    assert_eq!(
        (user.user_id.as_str(), user.username.as_str()),
        ("zed", "Zed")
    );
    assert_eq!(got[0].message, "hello ops");

    let bad = open(&mut h, JOIN_CHAT, "forged", "ops");
    let status = h.status(bad).clone();
    assert_eq!(status.code, Code::Unauthenticated);
    assert_eq!(status.message, "invalid token: the token has expired");
    assert!(h.events.iter().any(|e| matches!(
        e,
        ChatEvent::Login { outcome: Err(s), .. } if s.code == Code::Unauthenticated
    )));

    let list = open(&mut h, paths::LIST_ROOMS, "ok:root:Root:chat-admin", "");
    h.send(list, &ListRoomsRequest::default());
    h.end_stream(list);
    assert_eq!(h.status(list).code, Code::Ok);
    let denied = open(&mut h, paths::LIST_ROOMS, "ok:zed:Zed:ops", "");
    h.send(denied, &ListRoomsRequest::default());
    assert_eq!(h.status(denied).code, Code::PermissionDenied);
}
