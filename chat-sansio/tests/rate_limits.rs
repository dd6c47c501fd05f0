//! Rate limits in the chat (`chat::RateLimits`): posts over the limit are
//! refused in band and the stream stays open; joins over the limit end
//! their call with RESOURCE_EXHAUSTED and a retry hint; new limits
//! (`ChatInput::Limits`, the server's SIGHUP) take over at once.

mod util;

use std::time::Duration;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatMessage, User};
use chat_sansio::chat::{Chat, ChatConfig, ChatInput, RateLimits};
use chat_sansio::server::Server;
use chat_sansio::Code;
use util::{chat_message, chat_with, message_texts, Harness};

fn limited(limits: RateLimits) -> Harness<Chat> {
    let mut h = chat_with(Server::new(Chat::new(ChatConfig {
        limits,
        ..ChatConfig::default()
    })));
    for conn in 1..=3 {
        h.connect(conn);
    }
    h
}

fn refusals(h: &Harness<Chat>, call: chat_sansio::server::CallId) -> Vec<ChatMessage> {
    h.decoded::<ChatMessage>(call)
        .into_iter()
        .filter(|m| m.refused.is_some())
        .collect()
}

#[test]
fn a_flood_is_refused_in_band_and_the_stream_goes_on() {
    let mut h = limited(RateLimits::default());
    let flood = h.open(1, JOIN_CHAT);
    let reader = h.open(2, JOIN_CHAT);
    for i in 0..50 {
        let mut m = chat_message("guest", &format!("m{i}"));
        m.client_msg_id = format!("id-{i}");
        h.send(flood, &m);
    }
    // The burst (40) and the one being sent get through; the rest do not.
    assert_eq!(message_texts(&h, reader).len(), 41);
    let refused = refusals(&h, flood);
    assert_eq!(refused.len(), 9);
    let r = refused[0].refused.as_ref().unwrap();
    assert_eq!(r.code, Code::ResourceExhausted as i32);
    assert_eq!(r.retry_after_ms, 50, "20 a second: one every 50 ms");
    assert_eq!(refused[0].client_msg_id, "id-41", "names the post");
    assert_eq!(refused[0].seq, 0, "not a message of the room");
    assert!(h.log(flood).end.is_empty(), "the stream stays open");
    // Another connection is not slowed.
    let other = h.open(3, JOIN_CHAT);
    h.send(other, &chat_message("other", "unaffected"));
    assert_eq!(message_texts(&h, reader).last().unwrap(), "unaffected");
    // After the wait the flooder may post again.
    h.advance(Duration::from_millis(50));
    h.send(flood, &chat_message("guest", "later"));
    assert_eq!(message_texts(&h, reader).last().unwrap(), "later");
}

#[test]
fn joins_over_the_limit_end_with_a_retry_hint() {
    let mut h = limited(RateLimits {
        joins_per_second: 2,
        join_burst: 1,
        ..RateLimits::default()
    });
    let mut ended = None;
    for i in 0..3 {
        let call = h.open(1, JOIN_CHAT_ROOM);
        h.send(
            call,
            &User {
                user_id: format!("u{i}"),
                username: String::new(),
                room_id: "room1".into(),
            },
        );
        if !h.log(call).end.is_empty() {
            ended = Some(call);
        }
    }
    let call = ended.expect("the third join is refused");
    let status = h.status(call);
    assert_eq!(status.code, Code::ResourceExhausted);
    assert!(status.message.contains("try again in 500 ms"), "{status:?}");
}

#[test]
fn new_limits_take_over_at_once_and_buckets_keep_at_most_the_new_burst() {
    let mut h = limited(RateLimits::default());
    let poster = h.open(1, JOIN_CHAT);
    let reader = h.open(2, JOIN_CHAT);
    let post = |h: &mut Harness<Chat>, text: &str| h.send(poster, &chat_message("guest", text));
    for i in 0..5 {
        post(&mut h, &format!("a{i}"));
    }
    assert_eq!(
        message_texts(&h, reader).len(),
        5,
        "under the default burst"
    );
    // Down to 2 a second, burst 1: the full bucket holds two now.
    h.input(ChatInput::Limits(RateLimits {
        messages_per_second: 2,
        message_burst: 1,
        ..RateLimits::default()
    }));
    for i in 0..4 {
        post(&mut h, &format!("b{i}"));
    }
    assert_eq!(message_texts(&h, reader).len(), 7);
    let refused = refusals(&h, poster);
    assert_eq!(refused.len(), 2);
    let r = refused[0].refused.as_ref().unwrap();
    assert_eq!(r.retry_after_ms, 500, "2 a second: one every 500 ms");
    // Off: nothing is refused any more.
    h.input(ChatInput::Limits(RateLimits::off()));
    for i in 0..100 {
        post(&mut h, &format!("c{i}"));
    }
    assert_eq!(message_texts(&h, reader).len(), 107);
    assert_eq!(refusals(&h, poster).len(), 2);
}
