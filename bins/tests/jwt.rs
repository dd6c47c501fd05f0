//! Tokens from an identity provider through grpcio (`python/jwt.py`)
//! against the real server: a config with `[jwt]` (HS256) and a room
//! granted by role; tokens made here with `jsonwebtoken::encode`. A JWT
//! user posts in the room; an expired and a forged token get
//! UNAUTHENTICATED and are recorded as refused logins.

#![cfg(unix)]

mod common;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use common::python::script_passes;
use common::{fresh_dir, ChatServer};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const SECRET: &str = "the identity provider's shared secret";
/// SHA-256 of "alice-secret-token" (the example file's).
const ALICE: &str = "e706f2008f191924f4f6d6107fa56e8677a25a416815975bb848eb48e9694416";

fn token(secret: &str, roles: &[&str], exp_from_now: i64) -> String {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("a time");
    let body = json!({
        "sub": "zed",
        "name": "Zed",
        "roles": roles,
        "iss": "https://id.example.com",
        "aud": "chat",
        "exp": now + exp_from_now,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &body,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}

#[test]
fn a_jwt_user_posts_in_a_room_granted_by_role_and_bad_tokens_are_refused() {
    let dir = fresh_dir("jwt");
    let file = dir.join("chat.toml");
    let config = format!(
        "[[user]]\nid = \"alice\"\nname = \"Alice\"\ntoken_sha256 = \"{ALICE}\"\n\
         [[room]]\nid = \"ops\"\nreaders = [\"alice\", \"role:ops\"]\nposters = [\"alice\", \"role:ops\"]\n\
         [jwt]\nissuer = \"https://id.example.com\"\naudience = \"chat\"\nleeway_seconds = 5\n\
         [[jwt.key]]\nalg = \"HS256\"\nsecret = \"{SECRET}\"\n"
    );
    std::fs::write(&file, config).expect("write the config");
    let file_arg = file.to_str().expect("a UTF-8 path").to_owned();
    let mut server =
        ChatServer::start_binary(SERVER, &[], false, &["--memory", "--config", &file_arg]);
    let good = token(SECRET, &["ops"], 600);
    let expired = token(SECRET, &["ops"], -600);
    let forged = token("not the provider's secret", &["ops"], 600);
    let no_role = token(SECRET, &["sales"], 600);
    script_passes(&mut server, "jwt.py", &[&good, &expired, &forged, &no_role]);
    let said = server.wait_for_stdout(std::time::Duration::from_secs(5), |out| {
        out.lines()
            .any(|l| l.starts_with("Login refused: ") && l.contains("the token has expired"))
    });
    assert!(
        said,
        "the refused login is not recorded\n{}",
        server.output_report()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
