//! The Redis backend against the memory one: the same appends (retries
//! included), ranges and pages, answered alike (epochs and the order of
//! their making aside); a retry that reaches another node; the scripts
//! flushed under a live connection; a log wiped under a node.

#![cfg(unix)]

mod common;

use std::time::Duration;

use chat_engine::memory::MemoryLog;
use chat_engine::redis::RedisLog;
use chat_engine::{Appended, Backend, Retention};
use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::AppendRequest;
use chat_sansio::Time;
use common::redis::RedisServer;

const KEEP: u64 = 40;

fn retention() -> Retention {
    Retention {
        messages_per_room: KEEP,
        ..Retention::default()
    }
}

fn redis_log(redis: &RedisServer) -> RedisLog {
    RedisLog::new(
        redis::Client::open(redis.url()).unwrap(),
        retention(),
        "test-node",
    )
}

/// A small deterministic generator (the sequence is the test).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn request(id: u64, room: &str, user: &str, msg_id: &str, at: u64) -> AppendRequest {
    AppendRequest {
        id,
        room: room.to_owned(),
        user: User {
            user_id: user.to_owned(),
            username: format!("name of {user}"),
            room_id: String::new(),
        },
        text: format!("text {id}"),
        client_msg_id: msg_id.to_owned(),
        at: Time::from_micros(at),
    }
}

/// An entry without its epoch (each backend makes its own).
fn plain(mut m: ChatMessage) -> ChatMessage {
    m.epoch = 0;
    m
}

fn plain_appended(a: Vec<Appended>) -> Vec<(ChatMessage, bool)> {
    a.into_iter()
        .map(|a| (plain(a.entry), a.duplicate))
        .collect()
}

fn plain_page(mut p: HistoryPage) -> HistoryPage {
    p.messages = p.messages.into_iter().map(plain).collect();
    p
}

#[test]
fn redis_answers_as_memory_does() {
    let redis = RedisServer::start();
    let mut r = redis_log(&redis);
    let mut m = MemoryLog::new(KEEP as usize, retention());
    let mut rng = Lcg(7);
    let rooms = ["a", "b b", "c"];
    let mut at = 1_700_000_000_000_000;
    for room in rooms {
        let (rs, ms) = (r.open_room(room).unwrap(), m.open_room(room).unwrap());
        assert_eq!((rs.last_seq, rs.first_seq), (ms.last_seq, ms.first_seq));
    }
    for step in 0..300u64 {
        let room = rooms[rng.below(3) as usize];
        match rng.below(4) {
            0 | 1 => {
                let n = 1 + rng.below(4);
                let batch: Vec<_> = (0..n)
                    .map(|i| {
                        at += 1;
                        let user = format!("u{}", rng.below(3));
                        // Ids from a small set: retries come often.
                        let msg_id = match rng.below(3) {
                            0 => String::new(),
                            _ => format!("m{}", rng.below(20)),
                        };
                        request(step * 10 + i, room, &user, &msg_id, at)
                    })
                    .collect();
                let now = Time::from_micros(at);
                let got = plain_appended(r.append(&batch, &[], now).unwrap());
                let want = plain_appended(m.append(&batch, &[], now).unwrap());
                // A retry whose original memory has let go: memory answers
                // with the number alone (Redis, holding more, the original).
                let first = m.open_room(room).unwrap().first_seq;
                for (g, w) in got.iter().zip(&want) {
                    if w.1 && w.0.seq < first {
                        assert_eq!((g.0.seq, g.1), (w.0.seq, w.1), "step {step}");
                    } else {
                        assert_eq!(g, w, "step {step}: append {batch:?}");
                    }
                }
                assert_eq!(got.len(), want.len());
            }
            2 => {
                let state = m.open_room(room).unwrap();
                // Within what both hold (Redis trims in whole blocks,
                // MAXLEN ~, and may hold more than memory's exact count).
                let after = rng.below(state.last_seq + 2).max(state.first_seq - 1);
                let up_to = after + 1 + rng.below(60);
                let limit = 1 + rng.below(30) as u32;
                let (got, got_first) = r.range(room, after, up_to, limit).unwrap();
                let (want, want_first) = m.range(room, after, up_to, limit).unwrap();
                let got: Vec<_> = got.into_iter().map(plain).collect();
                let want: Vec<_> = want.into_iter().map(plain).collect();
                assert_eq!(
                    got, want,
                    "step {step}: range {room} {after}..={up_to} x{limit}"
                );
                // Redis trims in whole blocks (MAXLEN ~): it may hold more.
                assert!(
                    got_first <= want_first,
                    "step {step}: first {got_first} > {want_first}"
                );
            }
            _ => {
                let last = m.open_room(room).unwrap().last_seq;
                let before = rng.below(last + 2);
                let limit = 1 + rng.below(30) as u32;
                let got = plain_page(r.page(room, before, limit).unwrap());
                let want = plain_page(m.page(room, before, limit).unwrap());
                // Only within what both hold (memory keeps exactly KEEP).
                let oldest = m.range(room, 0, u64::MAX, 1).unwrap().1;
                let kept: Vec<_> = got
                    .messages
                    .iter()
                    .filter(|e| e.seq >= oldest)
                    .cloned()
                    .collect();
                assert_eq!(
                    kept, want.messages,
                    "step {step}: page {room} before {before} x{limit}"
                );
            }
        }
    }
    for room in rooms {
        let (rs, ms) = (r.open_room(room).unwrap(), m.open_room(room).unwrap());
        assert_eq!(rs.last_seq, ms.last_seq, "{room}: the same numbering");
        assert!(rs.epoch > 0);
    }
}

#[test]
fn a_retry_on_another_node_gets_the_original() {
    let redis = RedisServer::start();
    let (mut a, mut b) = (redis_log(&redis), redis_log(&redis));
    let now = Time::from_micros(1);
    let first = a
        .append(&[request(1, "r", "u", "id-1", 1)], &[], now)
        .unwrap();
    let again = b
        .append(&[request(9, "r", "u", "id-1", 5)], &[], now)
        .unwrap();
    assert!(!first[0].duplicate && again[0].duplicate);
    assert_eq!(
        first[0].entry, again[0].entry,
        "the stored original, time and all"
    );
    // Another sender's same id is another message.
    let other = b
        .append(&[request(10, "r", "v", "id-1", 6)], &[], now)
        .unwrap();
    assert_eq!((other[0].entry.seq, other[0].duplicate), (2, false));
}

#[test]
fn flushed_scripts_are_loaded_again() {
    let redis = RedisServer::start();
    let mut r = redis_log(&redis);
    let now = Time::from_micros(1);
    r.append(&[request(1, "r", "u", "", 1)], &[], now).unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut redis.connection())
        .unwrap();
    let got = r.append(&[request(2, "r", "u", "", 2)], &[], now).unwrap();
    assert_eq!(got[0].entry.seq, 2);
}

#[test]
fn a_log_wiped_under_a_node_is_refused_then_starts_a_new_epoch() {
    let redis = RedisServer::start();
    let mut r = redis_log(&redis);
    let now = Time::from_micros(1);
    let before = r.open_room("r").unwrap();
    r.append(&[request(1, "r", "u", "", 1)], &[], now).unwrap();
    redis::cmd("FLUSHALL")
        .query::<()>(&mut redis.connection())
        .unwrap();
    let err = r
        .append(&[request(2, "r", "u", "", 2)], &[], now)
        .unwrap_err();
    assert!(err.to_string().contains("lost"), "{err}");
    std::thread::sleep(Duration::from_millis(2));
    let after = r.open_room("r").unwrap();
    assert_eq!((after.last_seq, after.first_seq), (0, 1));
    assert_ne!(
        after.epoch, before.epoch,
        "a new epoch: clients cannot resume across"
    );
    let got = r.append(&[request(3, "r", "u", "", 3)], &[], now).unwrap();
    assert_eq!((got[0].entry.seq, got[0].entry.epoch), (1, after.epoch));
}

#[test]
fn an_unreachable_redis_is_an_error_not_a_wait() {
    let mut redis = RedisServer::start();
    let mut r = redis_log(&redis);
    let now = Time::from_micros(1);
    r.append(&[request(1, "r", "u", "", 1)], &[], now).unwrap();
    redis.kill();
    let t = std::time::Instant::now();
    assert!(r.append(&[request(2, "r", "u", "", 2)], &[], now).is_err());
    assert!(r.range("r", 0, 10, 10).is_err());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    redis.restart();
    // The AOF kept the first; the link comes back by itself.
    let got = r.append(&[request(3, "r", "u", "", 3)], &[], now).unwrap();
    assert_eq!(got[0].entry.seq, 2);
}
