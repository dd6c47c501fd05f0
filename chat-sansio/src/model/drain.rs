//! Draining `poll_output()` after an operation, with the protocol checks on
//! every output; and the checks on the whole state after every operation.

use std::collections::VecDeque;

use crate::chat::ChatEvent;
use crate::server::{CallId, Output};
use crate::status::Code;

use super::chat;
use super::record::{ChatServer, Drained};
use super::state::{Kind, Model};

/// Drains `poll_output()`, checking every output against the model in
/// order. `target` is the call the operation fed, if any.
///
/// Every call that ends must end as the model predicted (its `must_end`),
/// except the target when what it was fed is not predicted (`raw_data`);
/// every predicted end must happen; every presence notice a stream is owed
/// must arrive; and every chat message must belong to a broadcast.
pub fn drain(server: &mut ChatServer, model: &mut Model, target: Option<CallId>) -> Drained {
    let mut d = Drained::default();
    let mut expanded = VecDeque::new();
    while let Some(o) = server.poll_output() {
        match &o {
            Output::Subscribe { call, .. } => {
                let c = model.call(*call);
                assert!(c.live(), "Subscribe for {call:?} after it ended: {c:?}");
                assert!(c.headers, "Subscribe for {call:?} before its Headers");
            }
            Output::Unsubscribe { call } => {
                assert!(
                    model.expand.group_of(*call).is_some(),
                    "Unsubscribe for {call:?}, which is in no group"
                );
            }
            _ => {}
        }
        model.expand.apply(o, &mut expanded);
        while let Some(o) = expanded.pop_front() {
            check_output(model, o, target, &mut d);
            d.outputs += 1;
        }
    }
    assert!(
        d.unconfirmed.is_empty(),
        "chat messages outside any broadcast: {:?}",
        d.unconfirmed
    );
    for (id, c) in &model.calls {
        assert!(
            c.notices.is_empty(),
            "{id:?} did not get the presence notices {:?}",
            c.notices
        );
        assert!(
            c.must_end.is_none(),
            "{id:?} should have ended with {:?}: {c:?}",
            c.must_end
        );
    }
    d
}

/// Checks one output (after expansion) against the model.
fn check_output(model: &mut Model, o: Output<ChatEvent>, target: Option<CallId>, d: &mut Drained) {
    match o {
        Output::Subscribe { .. } | Output::Unsubscribe { .. } | Output::Multicast { .. } => {
            unreachable!("expanded")
        }
        Output::Headers { call } => {
            let c = model.call_mut(call);
            assert!(c.live(), "Headers for {call:?} after it ended: {c:?}");
            assert!(!c.headers, "second Headers for {call:?}");
            c.headers = true;
            d.headers.insert(call);
        }
        Output::Message { call, frame } => {
            let c = model.call(call);
            assert!(c.live(), "Message for {call:?} after it ended: {c:?}");
            assert!(c.headers, "Message for {call:?} before its Headers");
            assert!(frame.len() >= 5 && frame[0] == 0, "a frame, uncompressed");
            let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
            assert_eq!(len, frame.len() - 5, "one whole frame per Message");
            chat::on_message(model, call, frame, d);
        }
        Output::Trailers { call, status } => {
            assert_eq!(
                model.expand.group_of(call),
                None,
                "{call:?} ends in a group"
            );
            let c = model.call(call);
            assert!(c.live(), "Trailers for {call:?} after it ended: {c:?}");
            assert!(c.headers, "Trailers for {call:?} without Headers");
            end(model, call, status.code, target, d);
        }
        Output::TrailersOnly {
            call,
            http_status,
            status,
        } => {
            let c = model.call(call);
            assert!(c.live(), "TrailersOnly for {call:?} after it ended: {c:?}");
            assert!(!c.headers, "TrailersOnly for {call:?} after Headers");
            assert!(
                matches!(http_status, 200 | 400 | 405 | 415),
                "{http_status}"
            );
            assert!(http_status == 200 || !status.is_ok());
            end(model, call, status.code, target, d);
            d.trailers_only.insert(call, (http_status, status.code));
        }
        Output::Pause { conn } => {
            assert!(model.paused.insert(conn), "{conn:?} paused twice");
        }
        Output::Resume { conn } => {
            assert!(model.paused.remove(&conn), "{conn:?} resumed unpaused");
        }
        Output::Event(event) => chat::on_event(model, &event, target, d),
    }
}

/// A call got its final output: as predicted, or it is the target and was
/// fed what the model does not predict.
fn end(model: &mut Model, call: CallId, code: Code, target: Option<CallId>, d: &mut Drained) {
    let c = model.call_mut(call);
    match c.must_end.take() {
        Some(want) => assert_eq!(code, want, "{call:?} ended with the wrong code"),
        None => assert!(
            c.raw_data && target == Some(call),
            "{call:?} ended with {code:?}, which the model did not predict: {c:?}"
        ),
    }
    c.ended = true;
    d.ended.insert(call, code);
}

/// Checks taken after every operation.
pub fn check_state(server: &mut ChatServer, model: &Model) {
    let live = model.calls.values().filter(|c| c.live()).count();
    assert_eq!(server.open_calls(), live, "open_calls");
    let next = model
        .calls
        .values()
        .filter(|c| c.live())
        .filter_map(|c| c.deadline)
        .chain(model.closing.filter(|_| live > 0))
        .min();
    assert_eq!(server.poll_timeout(), next, "poll_timeout");
    for c in model.calls.values() {
        assert!(
            c.ended || c.gone || c.kind != Kind::Rejected,
            "a rejected call ends at once"
        );
    }
    chat::check(server, model);
}

/// After an operation on a call that is not listening: nothing at all.
pub fn ignored(d: &Drained, what: &str) {
    assert_eq!(
        d.outputs, 0,
        "{what} for a call that is not live (or has half-closed) must be ignored"
    );
}
