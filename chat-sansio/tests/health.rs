//! The built-in health service and shutdown, driven in memory on a
//! simulated clock.

mod util;

use std::time::Duration;

use chat_proto::health::health_check_response::ServingStatus;
use chat_proto::health::{paths, HealthCheckRequest, HealthCheckResponse, HealthListResponse};
use chat_proto::paths::JOIN_CHAT;
use chat_sansio::chat::Chat;
use chat_sansio::server::{Server, ServerConfig};
use chat_sansio::Code;
use util::{chat, Harness};

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

fn statuses(h: &Harness<Chat>, call: chat_sansio::server::CallId) -> Vec<ServingStatus> {
    h.decoded::<HealthCheckResponse>(call)
        .iter()
        .map(|r| r.status())
        .collect()
}

/// A unary Check: request, half-close, then the answer.
fn check(h: &mut Harness<Chat>, service: &str) -> chat_sansio::server::CallId {
    let call = h.open(1, paths::CHECK);
    h.send(call, &ask(service));
    assert!(
        h.log(call).messages.is_empty(),
        "answers only after half-close"
    );
    h.end_stream(call);
    call
}

#[test]
fn check_knows_the_server_and_the_handlers_services() {
    let mut h = chat();
    for name in ["", "ChatService"] {
        let call = check(&mut h, name);
        assert_eq!(h.status(call).code, Code::Ok);
        assert_eq!(statuses(&h, call), [ServingStatus::Serving]);
    }
    let call = check(&mut h, "Nope");
    assert_eq!(h.status(call).code, Code::NotFound);
    assert!(h.log(call).messages.is_empty());
    assert_eq!(h.server.open_calls(), 0);
}

#[test]
fn health_calls_with_the_wrong_number_of_requests_fail() {
    let mut h = chat();
    let none = h.open(1, paths::CHECK);
    h.end_stream(none);
    assert_eq!(h.status(none).code, Code::Internal);
    let two = h.open(1, paths::CHECK);
    h.send(two, &ask(""));
    h.send(two, &ask(""));
    assert_eq!(h.status(two).code, Code::Internal);
    let garbage = h.open(1, paths::CHECK);
    h.data(garbage, &[0, 0, 0, 0, 2, 0xff, 0xff]);
    assert_eq!(h.status(garbage).code, Code::Internal);
    let unknown = h.open(1, "/grpc.health.v1.Health/Nope");
    assert_eq!(h.status(unknown).code, Code::Unimplemented);
    assert_eq!(h.server.open_calls(), 0);
}

#[test]
fn watch_sends_the_status_now_and_on_every_change() {
    let mut h = chat();
    let call = h.open(1, paths::WATCH);
    h.send(call, &ask("ChatService"));
    h.end_stream(call);
    assert_eq!(statuses(&h, call), [ServingStatus::Serving]);
    // Setting the same status again is not a change.
    h.server
        .set_health(h.now, "ChatService", ServingStatus::Serving);
    h.server
        .set_health(h.now, "ChatService", ServingStatus::NotServing);
    h.server.set_health(h.now, "", ServingStatus::NotServing);
    h.drain();
    assert_eq!(
        statuses(&h, call),
        [ServingStatus::Serving, ServingStatus::NotServing]
    );
    assert!(h.log(call).end.is_empty(), "a watch stays open");
}

#[test]
fn watching_an_unknown_service_waits_for_it() {
    let mut h = chat();
    let call = h.open(1, paths::WATCH);
    h.send(call, &ask("later.Service"));
    assert_eq!(statuses(&h, call), [ServingStatus::ServiceUnknown]);
    assert!(h.log(call).end.is_empty());
    h.server
        .set_health(h.now, "later.Service", ServingStatus::Serving);
    h.drain();
    assert_eq!(
        statuses(&h, call),
        [ServingStatus::ServiceUnknown, ServingStatus::Serving]
    );
    // A watcher that goes away is forgotten.
    h.reset(call);
    h.server
        .set_health(h.now, "later.Service", ServingStatus::NotServing);
    h.drain();
    assert_eq!(h.log(call).messages.len(), 2);
    assert_eq!(h.log(call).after_end, 0);
}

#[test]
fn list_answers_every_known_status() {
    let mut h = chat();
    h.server
        .set_health(h.now, "extra", ServingStatus::NotServing);
    let call = h.open(1, paths::LIST);
    h.send(call, &chat_proto::health::HealthListRequest {});
    h.end_stream(call);
    assert_eq!(h.status(call).code, Code::Ok);
    let list = &h.decoded::<HealthListResponse>(call)[0];
    let mut got: Vec<(String, i32)> = list
        .statuses
        .iter()
        .map(|(k, v)| (k.clone(), v.status))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (String::new(), ServingStatus::Serving as i32),
            ("ChatService".into(), ServingStatus::Serving as i32),
            ("chat.admin.ChatAdmin".into(), ServingStatus::Serving as i32),
            ("extra".into(), ServingStatus::NotServing as i32),
        ]
    );
}

#[test]
fn list_refuses_more_than_its_limit() {
    let mut h = chat();
    for i in 0..chat_sansio::limits::MAX_HEALTH_LIST {
        h.server
            .set_health(h.now, &format!("s{i}"), ServingStatus::Serving);
    }
    let call = h.open(1, paths::LIST);
    h.send(call, &chat_proto::health::HealthListRequest {});
    h.end_stream(call);
    assert_eq!(h.status(call).code, Code::ResourceExhausted);
}

#[test]
fn with_health_off_the_paths_are_the_handlers() {
    let config = ServerConfig {
        health: false,
        ..ServerConfig::default()
    };
    let mut h = util::chat_with(Server::with_config(config, Chat::default()));
    let call = h.open(1, paths::CHECK);
    assert_eq!(h.status(call).code, Code::Unimplemented);
    assert_eq!(h.server.health(""), None);
}

#[test]
fn shutdown_turns_health_off_refuses_calls_and_ends_the_rest_after_grace() {
    let mut h = chat();
    h.connect(1);
    let watch = h.open(1, paths::WATCH);
    h.send(watch, &ask(""));
    let stream = h.open(1, JOIN_CHAT);
    h.server.handle_shutdown(h.now, Duration::from_secs(5));
    h.drain();
    assert!(h.server.is_shutting_down());
    assert_eq!(
        statuses(&h, watch),
        [ServingStatus::Serving, ServingStatus::NotServing]
    );
    assert_eq!(
        h.server.health("ChatService"),
        Some(ServingStatus::NotServing)
    );
    // New calls are refused, health checks included.
    let late = h.open(1, JOIN_CHAT);
    assert_eq!(h.status(late).code, Code::Unavailable);
    assert!(h.log(late).end[0].1, "Trailers-Only");
    let probe = h.open(1, paths::CHECK);
    assert_eq!(h.status(probe).code, Code::Unavailable);
    // A second shutdown does not move the deadline.
    h.advance(Duration::from_secs(3));
    h.server.handle_shutdown(h.now, Duration::from_secs(60));
    assert!(h.log(stream).end.is_empty());
    h.advance(Duration::from_millis(1999));
    assert!(h.log(stream).end.is_empty());
    h.advance(Duration::from_millis(1));
    for call in [watch, stream] {
        assert_eq!(h.status(call).code, Code::Unavailable);
        assert!(!h.log(call).end[0].1, "after headers: trailers");
    }
    assert_eq!(h.server.open_calls(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}
