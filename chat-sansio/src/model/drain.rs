//! Draining `poll_output()` after an operation, with the protocol checks on
//! every output; and the checks on the whole state after every operation.

use std::collections::VecDeque;

use crate::chat::ChatEvent;
use crate::limits::MAX_RESUME_AHEAD;
use crate::server::{CallId, Output};
use crate::status::{Code, Status};

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
    let mut d = Drained {
        answered_pages: std::mem::take(&mut model.answered),
        ..Drained::default()
    };
    let mut expanded = VecDeque::new();
    // A debugging aid for `tests/model.rs`'s `explore`: every output.
    let trace = std::env::var_os("MODEL_TRACE").is_some();
    while let Some(o) = server.poll_output() {
        if trace {
            eprintln!("    <- {o:?}");
        }
        match &o {
            Output::Subscribe { call, group } => {
                let c = model.call(*call);
                assert!(c.live(), "Subscribe for {call:?} after it ended: {c:?}");
                assert!(c.headers, "Subscribe for {call:?} before its Headers");
                chat::on_subscribe(model, *call, *group);
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
    model.read_failed.clear();
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
        Output::Headers { call, .. } => {
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
        Output::Trailers { call, status, .. } => {
            assert_eq!(
                model.expand.group_of(call),
                None,
                "{call:?} ends in a group"
            );
            let c = model.call(call);
            assert!(c.live(), "Trailers for {call:?} after it ended: {c:?}");
            assert!(c.headers, "Trailers for {call:?} without Headers");
            end(model, call, &status, target, d);
        }
        Output::TrailersOnly {
            call,
            http_status,
            status,
            ..
        } => {
            let c = model.call(call);
            assert!(c.live(), "TrailersOnly for {call:?} after it ended: {c:?}");
            assert!(!c.headers, "TrailersOnly for {call:?} after Headers");
            assert!(
                matches!(http_status, 200 | 400 | 405 | 415),
                "{http_status}"
            );
            assert!(http_status == 200 || !status.is_ok());
            end(model, call, &status, target, d);
            d.trailers_only.insert(call, (http_status, status.code));
        }
        Output::Pause { conn } => {
            assert!(model.paused.insert(conn), "{conn:?} paused twice");
        }
        Output::Resume { conn } => {
            assert!(model.paused.remove(&conn), "{conn:?} resumed unpaused");
        }
        Output::WhenDrained { call } => {
            let c = model.call(call);
            assert!(c.live(), "WhenDrained for {call:?} after it ended");
            assert!(
                c.resuming.is_some(),
                "WhenDrained for {call:?}, not catching up"
            );
            model.asked.drains.push(call);
        }
        Output::Event(event) => chat::on_event(model, &event, target, d),
    }
}

/// A call got its final output: as predicted, or as the model allows (see
/// [`may_end`]), or it is the target and was fed what the model does not
/// predict.
fn end(model: &mut Model, call: CallId, status: &Status, target: Option<CallId>, d: &mut Drained) {
    let code = status.code;
    match model.call_mut(call).must_end.take() {
        Some(want) => assert_eq!(code, want, "{call:?} ended with the wrong code: {status:?}"),
        None => {
            let raw = model.call(call).raw_data && target == Some(call);
            assert!(
                raw || may_end(model, call, status),
                "{call:?} ended with {status:?}, which the model did not predict: {:?}",
                model.call(call)
            );
        }
    }
    model.call_mut(call).ended = true;
    d.ended.insert(call, code);
}

/// Ends the model allows without predicting the moment: UNAVAILABLE for
/// the owner of a read the engine failed in this operation (the model does
/// not know which call a read is for), and OUT_OF_RANGE for a stream
/// catching up whose room cannot prove what follows its point (another
/// epoch, entries after it removed, or a point far past the room), saying
/// a point it can resume from.
fn may_end(model: &mut Model, call: CallId, status: &Status) -> bool {
    match status.code {
        // One read has one owner.
        Code::Unavailable => {
            let owner = model.read_failed.remove(&call);
            if owner {
                model.read_failed.clear();
            }
            owner
        }
        Code::OutOfRange => {
            let c = model.call(call);
            let Some(r) = c.resuming else {
                return false;
            };
            let room = model.room_of(c);
            let (Some(open), Some(log)) = (model.node(&room).open, model.engine.log(&room)) else {
                return false;
            };
            let cannot = r.epoch != open.epoch
                || r.has + 1 < log.first
                || r.has > log.last_seq()
                || r.from > open.delivered + MAX_RESUME_AHEAD;
            let point = status
                .message
                .strip_prefix("cannot resume there; resume from ")
                .and_then(|p| p.split_once(':'))
                .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
            // The point is one this node delivered, or where the engine's
            // log now starts (this node may not have had it yet).
            let most = open.delivered.max(log.first.saturating_sub(1));
            cannot && point.is_some_and(|(epoch, seq)| epoch == open.epoch && seq <= most)
        }
        _ => false,
    }
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
