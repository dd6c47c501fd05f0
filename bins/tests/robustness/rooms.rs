//! Room exhaustion: one post in each of 1,023 new rooms, as fast as one
//! connection's 128 streams allow. Others must still be able to open new
//! rooms afterwards, and after a restart on the same data directory too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_proto::paths;

use crate::calls::Client;
use crate::client::{self, block, join_room, message, post};
use crate::frames::{self, Conn};
use crate::rig::{Options, Rig};

/// Rooms the attacker posts in.
const ROOMS: usize = 1023;

/// How the attacker's posts ended, by `grpc-status` (or how else).
fn post_everywhere(addr: SocketAddr) -> BTreeMap<String, usize> {
    let mut ended = BTreeMap::new();
    let Ok(conn) = Conn::reader(addr) else {
        ended.insert("could not connect".into(), ROOMS);
        return ended;
    };
    let mut c = Client::new(conn);
    let body = frames::grpc(&message("roomer", "first!", ""));
    let (mut next, mut done) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while done < ROOMS && Instant::now() < deadline && !c.dead() {
        while next < ROOMS && c.open_calls() < 100 {
            let room = format!("flood-{next}");
            let md: [(&str, &[u8]); 1] = [("chat-room", room.as_bytes())];
            if c.open(paths::JOIN_CHAT, &md, &body, true).is_err() {
                break;
            }
            next += 1;
        }
        for (_, o) in c.poll(Duration::from_millis(20)) {
            done += 1;
            let key = match o.status {
                Some(0) => "OK".to_string(),
                _ => o.describe(),
            };
            *ended.entry(key).or_default() += 1;
        }
    }
    if done < ROOMS {
        ended.insert("no answer within 20 s".into(), ROOMS - done);
    }
    ended
}

/// A newcomer joins the brand-new room `room` and posts there.
fn new_room(addr: SocketAddr, room: &str) -> Result<(), String> {
    let ch = block(client::connect(addr)).map_err(|s| format!("connect: {s:?}"))?;
    let joined = block(join_room(&ch, "newcomer", room));
    let joined =
        joined.map_err(|s| format!("JoinChatRoom {room:?}: {}", client::outcome::<()>(&Err(s))))?;
    if joined.room_id != room {
        return Err(format!(
            "JoinChatRoom {room:?} answered room {:?}",
            joined.room_id
        ));
    }
    let echo = block(post(&ch, Some(room), message("newcomer", "hello", "")));
    echo.map(|_| ())
        .map_err(|s| format!("posting in {room:?}: {}", client::outcome::<()>(&Err(s))))
}

#[test]
fn one_post_in_each_of_1023_new_rooms() {
    let mut rig = Rig::start("rooms_1023", Options::default());
    let (ended, report) = rig.attack(post_everywhere);
    rig.note(format!("the attacker's {ROOMS} posts: {ended:?}"));
    if let Err(e) = new_room(rig.addr(), "brand-new") {
        rig.fail(format!(
            "after the attack, a newcomer cannot use a new room: {e}"
        ));
    }
    rig.restart();
    if let Err(e) = new_room(rig.addr(), "brand-new-after-restart") {
        rig.fail(format!(
            "after a restart, a newcomer cannot use a new room: {e}"
        ));
    }
    // Across the restart, too.
    rig.check_history(&report);
    rig.finish();
}
