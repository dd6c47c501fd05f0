//! The seeds' other services, driven in memory with the seeds' client flows.

mod util;

use std::time::Duration;

use chat_proto::routeguide::{paths, Feature, Point, Rectangle, RouteNote, RouteSummary};
use chat_proto::tutorial::{NumberRequest, NumberResponse, ACCUMULATE_NUMBERS};
use chat_proto::BidiChatMessage;
use chat_sansio::server::Server;
use chat_sansio::services::{BidiChat, Numbers, RouteGuide, RouteGuideConfig};
use chat_sansio::Code;
use util::{grpc_head, Harness};

#[test]
fn seed_002_chat_answers_name_colon_message_then_completes() {
    let mut h = Harness::new(Server::new(BidiChat::default()));
    let call = h.open(1, chat_proto::paths::BIDI_CHAT);
    for (name, message) in [("Sam", "Hi"), ("Ann", "Hey"), ("John", "Hello")] {
        h.send(
            call,
            &BidiChatMessage {
                name: name.into(),
                message: message.into(),
            },
        );
    }
    h.end_stream(call);
    assert_eq!(
        h.decoded::<String>(call),
        ["Sam: Hi", "Ann: Hey", "John: Hello"]
    );
    assert_eq!(h.status(call).code, Code::Ok);
    let wrong = h.open(1, "/Chat/Chat");
    assert_eq!(h.status(wrong).code, Code::Unimplemented);
}

#[test]
fn seed_003_numbers_answer_running_sums_under_a_deadline() {
    let mut h = Harness::new(Server::new(Numbers::default()));
    let call = h.open_with(1, grpc_head(ACCUMULATE_NUMBERS, &[("grpc-timeout", "1S")]));
    for num in 1..=10 {
        h.send(call, &NumberRequest { num });
        h.advance(Duration::from_millis(10));
    }
    h.end_stream(call);
    let sums: Vec<i32> = h
        .decoded::<NumberResponse>(call)
        .iter()
        .map(|r| r.sum)
        .collect();
    assert_eq!(sums, [1, 3, 6, 10, 15, 21, 28, 36, 45, 55]);
    assert_eq!(h.status(call).code, Code::Ok);
    // Past the deadline the call ends with DEADLINE_EXCEEDED.
    let slow = h.open_with(1, grpc_head(ACCUMULATE_NUMBERS, &[("grpc-timeout", "1S")]));
    h.send(slow, &NumberRequest { num: 1 });
    h.advance(Duration::from_secs(1));
    assert_eq!(h.status(slow).code, Code::DeadlineExceeded);
}

#[test]
fn numbers_refuse_to_overflow() {
    let mut h = Harness::new(Server::new(Numbers::default()));
    let call = h.open(1, ACCUMULATE_NUMBERS);
    h.send(call, &NumberRequest { num: i32::MAX });
    h.send(call, &NumberRequest { num: 1 });
    assert_eq!(h.decoded::<NumberResponse>(call).len(), 1);
    assert_eq!(h.status(call).code, Code::OutOfRange);
}

fn note(lat: i32, lng: i32, text: &str) -> RouteNote {
    RouteNote {
        location: Some(Point {
            latitude: lat,
            longitude: lng,
        }),
        message: text.into(),
    }
}

#[test]
fn seed_004_route_chat_answers_with_every_note_at_the_location() {
    let mut h = Harness::new(Server::new(RouteGuide::default()));
    let call = h.open(1, paths::ROUTE_CHAT);
    let notes = [
        note(0, 1, "First message"),
        note(0, 2, "Second message"),
        note(0, 3, "Third message"),
        note(0, 1, "Fourth message"),
        note(0, 2, "Fifth message"),
        note(0, 3, "Sixth message"),
    ];
    for n in &notes {
        h.send(call, n);
    }
    h.end_stream(call);
    let got: Vec<String> = h
        .decoded::<RouteNote>(call)
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(
        got,
        [
            "First message",
            "Second message",
            "Third message",
            "First message",
            "Fourth message",
            "Second message",
            "Fifth message",
            "Third message",
            "Sixth message",
        ]
    );
    assert_eq!(h.status(call).code, Code::Ok);
    // Notes are shared by every call, as in the seed's server.
    let other = h.open(2, paths::ROUTE_CHAT);
    h.send(other, &note(0, 1, "Seventh"));
    let got: Vec<String> = h
        .decoded::<RouteNote>(other)
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(got, ["First message", "Fourth message", "Seventh"]);
}

#[test]
fn the_other_route_guide_methods() {
    let config = RouteGuideConfig::default();
    let known = config.features[0].clone();
    let mut h = Harness::new(Server::new(RouteGuide::new(config)));
    // Unary: a known point, an unknown point, and cardinality errors.
    let call = h.open(1, paths::GET_FEATURE);
    h.send(call, known.location.as_ref().unwrap());
    h.end_stream(call);
    assert_eq!(h.decoded::<Feature>(call), std::slice::from_ref(&known));
    let call = h.open(1, paths::GET_FEATURE);
    h.send(
        call,
        &Point {
            latitude: 1,
            longitude: 1,
        },
    );
    h.end_stream(call);
    assert_eq!(h.decoded::<Feature>(call)[0].name, "");
    let call = h.open(1, paths::GET_FEATURE);
    h.end_stream(call);
    assert_eq!(h.status(call).code, Code::Internal);
    let call = h.open(1, paths::GET_FEATURE);
    h.send(call, &Point::default());
    h.send(call, &Point::default());
    assert_eq!(h.status(call).code, Code::Internal);
    // Server streaming.
    let call = h.open(1, paths::LIST_FEATURES);
    h.send(
        call,
        &Rectangle {
            lo: Some(Point {
                latitude: 400_000_000,
                longitude: -750_000_000,
            }),
            hi: Some(Point {
                latitude: 420_000_000,
                longitude: -730_000_000,
            }),
        },
    );
    h.end_stream(call);
    assert_eq!(h.decoded::<Feature>(call).len(), 5);
    assert_eq!(h.status(call).code, Code::Ok);
    // Client streaming.
    let call = h.open(1, paths::RECORD_ROUTE);
    h.send(call, known.location.as_ref().unwrap());
    h.send(
        call,
        &Point {
            latitude: 408_122_808,
            longitude: -743_999_179,
        },
    );
    h.send(
        call,
        &Point {
            latitude: 1,
            longitude: 1,
        },
    );
    h.advance(Duration::from_secs(3));
    h.end_stream(call);
    let summary = &h.decoded::<RouteSummary>(call)[0];
    assert_eq!(
        (
            summary.point_count,
            summary.feature_count,
            summary.elapsed_time
        ),
        (3, 2, 3)
    );
    assert!(summary.distance > 18_000, "{summary:?}");
}
