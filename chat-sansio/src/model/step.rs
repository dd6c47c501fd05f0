//! Applying one [`Operation`]: the driver's side of the `Server` contract,
//! with the model's prediction for each. The chat's own operations are in
//! `chat_ops`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::limits::MAX_RESUME_AHEAD;
use crate::server::{CallId, ConnId};
use crate::status::Code;

use super::drain::{check_state, drain, ignored};
use super::open::{open_request, Expect};
use super::ops::{Headers, Operation};
use super::record::ChatServer;
use super::state::{CallModel, ConnModel, Kind, Model, Resuming, CALL_SLOTS, CONN_SLOTS};
use super::{chat_ops, engine_ops};

/// Applies `op` to the server and the model, checks its outputs, then the
/// whole state; with a prompt engine, then answers everything asked.
pub fn step(server: &mut ChatServer, model: &mut Model, op: Operation) {
    match op {
        Operation::Connect { conn, with_peer } => {
            connect(server, model, usize::from(conn) % CONN_SLOTS, with_peer)
        }
        Operation::Disconnect { conn } => disconnect(server, model, usize::from(conn) % CONN_SLOTS),
        Operation::Open {
            conn,
            call,
            headers,
        } => open(server, model, conn, call, headers),
        Operation::Data { call, bytes } => data(server, model, call, &bytes.0),
        Operation::FramedChatMessage { call, post, split } => {
            let id = model.target(call, Some(Kind::JoinChat));
            chat_ops::post(server, model, id, post, split)
        }
        Operation::FramedUser { call, join, split } => {
            let id = model.target(call, Some(Kind::JoinChatRoom));
            chat_ops::join(server, model, id, join, split)
        }
        Operation::FramedHistoryRequest {
            call,
            room,
            before_seq,
            limit,
        } => {
            let id = model.target(call, Some(Kind::History));
            chat_ops::history(server, model, id, room, before_seq, limit)
        }
        Operation::End { call } => end(server, model, call),
        Operation::Reset { call } => reset(server, model, call),
        Operation::Stalled { call } => stalled(server, model, call),
        Operation::Advance { millis } => model.now += u64::from(millis) * 1000,
        Operation::Timeout { jump } => timeout(server, model, jump),
        Operation::Shutdown { grace_millis } => shutdown(server, model, grace_millis),
        Operation::EngineOpen { index, fail } => engine_ops::open(server, model, index, fail.0),
        Operation::EngineCommit {
            index,
            reported_first,
        } => engine_ops::commit(server, model, index, reported_first),
        Operation::EngineFailAppend { index, stored } => {
            engine_ops::fail_append(server, model, index, stored)
        }
        Operation::EngineRead { index, ok } => engine_ops::read(server, model, index, ok),
        Operation::EngineReplay { index } => engine_ops::replay(server, model, index),
        Operation::Foreign { room, text, report } => {
            engine_ops::foreign(server, model, room, text.0, report)
        }
        Operation::Report { reverse } => engine_ops::report(server, model, reverse),
        Operation::Trim { room, keep } => engine_ops::trim(model, room, keep),
        Operation::Drained { index } => engine_ops::drained(server, model, index),
        Operation::Settle => engine_ops::settle(server, model),
    }
    check_state(server, model);
    if model.prompt {
        engine_ops::settle(server, model);
    }
}

/// A connection comes up in `slot`; a second connect for the same
/// connection only updates its peer. It sends nothing.
pub fn connect(server: &mut ChatServer, model: &mut Model, slot: usize, with_peer: bool) {
    let id = match &model.conns[slot] {
        Some(c) => c.id,
        None => {
            let id = ConnId(model.next_conn);
            model.next_conn += 1;
            id
        }
    };
    let peer = with_peer.then(|| format!("192.0.2.{slot}:{}", 40000 + id.0));
    server.handle_connect(model.now(), id, peer.clone());
    let known = model.conns[slot].as_ref().and_then(|c| c.peer.clone());
    let peer = peer.or(known);
    model.conns[slot] = Some(ConnModel {
        id,
        peer: peer.clone(),
    });
    model.peers.insert(id, peer);
    let d = drain(server, model, None);
    assert_eq!(d.outputs, 0, "Connect sends nothing");
}

/// The connection in `slot` goes down: its calls are gone without a status,
/// and its user leaves its room if no other connection keeps them there.
pub fn disconnect(server: &mut ChatServer, model: &mut Model, slot: usize) {
    let Some(c) = model.conns[slot].take() else {
        return; // Nothing to disconnect.
    };
    for call in model.calls.values_mut() {
        if call.conn == c.id && call.live() {
            call.gone = true;
        }
    }
    if let Some((user, room)) = model.sessions.remove(&c.id) {
        if !model.present(&room).contains(&user) {
            model.tell(&room, &user, false, &BTreeSet::new());
        }
    }
    server.handle_disconnect(model.now(), c.id);
    let d = drain(server, model, None);
    assert!(d.ended.is_empty(), "Disconnect ends no call with a status");
    assert_eq!(d.delivered.len() + d.appends.len() + d.logins, 0);
}

/// A request on one of the connections that are up (none arrives on a
/// connection that is not there), with a fresh call id: answered at once,
/// with headers or with exactly the predicted refusal.
fn open(server: &mut ChatServer, model: &mut Model, conn: u8, call: u8, headers: Headers) {
    let up: Vec<ConnModel> = model.conns.iter().flatten().cloned().collect();
    let Some(c) = up.get(usize::from(conn) % up.len().max(1)).cloned() else {
        return;
    };
    let req = open_request(model, c.id, headers);
    let id = CallId(model.next_call);
    model.next_call += 1;
    model.slots[usize::from(call) % CALL_SLOTS] = Some(id);
    let mut m = match req.expect {
        Expect::Accept {
            kind,
            who,
            deadline,
        } => CallModel::new(c.id, kind, Some(who), deadline),
        Expect::Reject(_, code) => {
            let mut m = CallModel::new(c.id, Kind::Rejected, None, None);
            m.must_end = Some(code);
            m
        }
    };
    m.pinned = req.pinned;
    m.resuming = req.resume.map(|(epoch, seq)| Resuming {
        epoch,
        from: seq,
        has: seq,
    });
    // A stream resuming in an open room from another epoch, from before
    // what the engine held when the room opened, or from far past it,
    // learns at once that it cannot.
    let cannot_resume = m.resuming.is_some_and(|r| {
        let room = model.room_of(&m);
        let open = model.rooms.get(&room).and_then(|n| n.open);
        open.is_some_and(|o| {
            r.epoch != o.epoch || r.from + 1 < o.first || r.from > o.delivered + MAX_RESUME_AHEAD
        })
    });
    model.calls.insert(id, m);
    server.handle_open(model.now(), c.id, id, req.head);
    let d = drain(server, model, Some(id));
    match req.expect {
        Expect::Accept { .. } => {
            let refused = d.trailers_only.get(&id) == Some(&(200, Code::OutOfRange));
            assert!(
                d.headers.contains(&id) || refused,
                "an accepted call gets Headers at once, not {:?}",
                d.trailers_only
            );
            assert_eq!(refused, cannot_resume, "OUT_OF_RANGE at once");
            assert!(
                refused || d.ended.is_empty(),
                "an accepted call ended at once"
            );
        }
        Expect::Reject(http, code) => {
            assert_eq!(d.trailers_only.get(&id), Some(&(http, code)), "the refusal");
            assert_eq!(d.ended.len(), 1);
        }
    }
    let refused: &[(String, Code)] = if req.unauthenticated {
        &[(String::new(), Code::Unauthenticated)]
    } else {
        &[]
    };
    assert_eq!(d.refused, refused, "a refused credential is recorded");
    assert_eq!(d.delivered.len() + d.appends.len() + d.logins, 0);
}

/// Raw DATA: the model follows the call's framing, predicts each message
/// it completes, and gives up on a frame header it does not follow (see
/// `chat_ops::feed_data`); a call that is not listening ignores it.
fn data(server: &mut ChatServer, model: &mut Model, call: u8, bytes: &[u8]) {
    let id = model.target(call, None);
    chat_ops::feed_data(server, model, id, bytes, 0);
}

/// What half-closing a call does, given what the chat knows.
enum EndOutcome {
    /// It ends with this code.
    Ends(Code),
    /// It stays open: a JoinChat stream until its posts are delivered, a
    /// JoinChatRoom call until its answers are sent, a History call until
    /// the engine answers.
    Stays,
}

/// The client half-closes: a JoinChat stream ends OK once its posts are
/// delivered, a JoinChatRoom call once its answers are sent; a History call
/// that asked waits for the engine, one that did not ends with INTERNAL; so
/// does any call with a message begun and not finished. A call fed a frame
/// header the model does not follow may also end with INTERNAL.
fn end(server: &mut ChatServer, model: &mut Model, call: u8) {
    let id = model.target(call, None);
    let listening = model.calls.get(&id).is_some_and(CallModel::listening);
    if !listening {
        server.handle_end(model.now(), id);
        return ignored(&drain(server, model, Some(id)), "End");
    }
    let c = model.call(id);
    let outcome = match c.kind {
        // A message begun and not finished.
        _ if !c.raw_data && !c.buffered.is_empty() => EndOutcome::Ends(Code::Internal),
        Kind::JoinChat if c.undelivered > 0 => EndOutcome::Stays,
        Kind::JoinChatRoom if !c.replies.is_empty() => EndOutcome::Stays,
        Kind::JoinChat | Kind::JoinChatRoom => EndOutcome::Ends(Code::Ok),
        Kind::History if c.asked => EndOutcome::Stays,
        Kind::History => EndOutcome::Ends(Code::Internal),
        Kind::Rejected => unreachable!("a rejected call is not listening"),
    };
    let raw = c.raw_data;
    let c = model.call_mut(id);
    c.half_closed = true;
    if let (EndOutcome::Ends(code), false) = (&outcome, raw) {
        c.must_end = Some(*code);
    }
    server.handle_end(model.now(), id);
    let d = drain(server, model, Some(id));
    assert!(d.ended.len() <= 1, "End ends at most its call");
    match (outcome, d.ended.get(&id)) {
        (EndOutcome::Ends(code), Some(got)) => assert!(
            *got == code || (raw && *got == Code::Internal),
            "End ended {id:?} with {got:?}, not {code:?}"
        ),
        (EndOutcome::Ends(code), None) => panic!("End should have ended {id:?} with {code:?}"),
        (EndOutcome::Stays, Some(got)) => assert!(
            raw && *got == Code::Internal,
            "End ended {id:?} with {got:?}; it should wait"
        ),
        (EndOutcome::Stays, None) => {}
    }
}

/// The client resets the call: it is gone, without a status.
fn reset(server: &mut ChatServer, model: &mut Model, call: u8) {
    let id = model.target(call, None);
    if let Some(c) = model.calls.get_mut(&id) {
        c.gone |= c.live();
    }
    server.handle_reset(model.now(), id);
    let d = drain(server, model, None);
    assert_eq!(d.outputs, 0, "Reset sends nothing (but leaving its group)");
}

/// The driver cannot deliver to the call: it ends with RESOURCE_EXHAUSTED.
fn stalled(server: &mut ChatServer, model: &mut Model, call: u8) {
    let id = model.target(call, None);
    let live = model.is_live(id);
    if live {
        model.call_mut(id).must_end = Some(Code::ResourceExhausted);
    }
    server.handle_stalled(model.now(), id);
    let d = drain(server, model, Some(id));
    if !live {
        ignored(&d, "Stalled");
    }
}

/// `handle_timeout` ends exactly the calls past their deadline, with
/// DEADLINE_EXCEEDED, and after a shutdown's grace period every other live
/// call, with UNAVAILABLE.
fn timeout(server: &mut ChatServer, model: &mut Model, jump: bool) {
    if jump {
        if let Some(t) = server.poll_timeout() {
            model.now = model.now.max(t.as_micros());
        }
    }
    let now = model.now();
    let cut = model.closing.is_some_and(|at| at <= now);
    for c in model.calls.values_mut().filter(|c| c.live()) {
        if c.deadline.is_some_and(|d| d <= now) {
            c.must_end = Some(Code::DeadlineExceeded);
        } else if cut {
            c.must_end = Some(Code::Unavailable);
        }
    }
    server.handle_timeout(now);
    drain(server, model, None);
}

/// `handle_shutdown`: nothing is sent at once (health is off); new requests
/// are refused from now on, and live calls cut after the grace period.
fn shutdown(server: &mut ChatServer, model: &mut Model, grace_millis: u16) {
    let now = model.now();
    let grace = Duration::from_millis(u64::from(grace_millis));
    server.handle_shutdown(now, grace);
    let d = drain(server, model, None);
    assert_eq!(
        d.outputs, 0,
        "Shutdown sends nothing at once (health is off)"
    );
    assert!(server.is_shutting_down());
    model.closing.get_or_insert(now + grace);
}
