//! Test support (feature `model`): a model of `Server<Chat>` and of the
//! engine under it, checked after every operation of an arbitrary run. One
//! model serves two runners: the fuzz target `fuzz/fuzz_targets/server.rs`
//! (libFuzzer, nightly) and the property test `tests/model.rs` (proptest,
//! stable). Both hand [`run`] a [`Scenario`] decoded by `arbitrary` from
//! bytes.
//!
//! A run sets the chat up ([`Setup`]: a prompt engine or one that answers
//! when told, history on join, random permissions for three rooms and for
//! the others, users `u0`..`u2` with tokens) and applies [`Operation`]s on a
//! simulated clock that only moves forward, draining `poll_output()` after
//! each, multicasts turned into per-call messages by
//! [`Expand`](crate::server::Expand) as a driver would. The model plays the
//! engine ([`EngineModel`]: each room's log, epochs, dedupe of client
//! message ids): it answers opens, appends and reads when the operations
//! say, in the order they pick, late, twice or with a failure; it appends
//! entries of other nodes, reports them at once, later or out of order, and
//! removes old entries (retention); and it plays the transport's
//! `handle_drained`. With a prompt engine it answers everything after each
//! operation. Health and reflection are off: they have their own tests, and
//! their paths would be accepted where the model expects UNIMPLEMENTED.
//!
//! The driver side follows the contract on [`Server`]:
//! every `Open` gets a fresh `CallId`, stored in one of 16 call slots, and
//! arrives on one of the (4) connections that are up; the other operations
//! pick among the calls opened so far, live or ended (an index of 250 or
//! more gives one never opened). Events for calls that are not live are
//! still fed: the server must ignore them.
//!
//! # What is checked
//!
//! **Protocol, per call** (`drain`, `step`):
//! - every output addressed to a call comes after its `Open`, never after
//!   its final output (`Trailers` / `TrailersOnly`), nor after it was reset
//!   or its connection closed; at most one final output;
//! - at most one `Headers`, before any `Message`; `TrailersOnly` never
//!   follows `Headers`; `Trailers` only follows it; each `Message` is one
//!   whole uncompressed frame;
//! - `Subscribe` only for live calls after their `Headers`; `Unsubscribe`
//!   only for calls in a group; no call ends while in one;
//! - an `Open` is answered at once: `Headers` if accepted, otherwise a
//!   `TrailersOnly` with exactly the predicted HTTP status and code (HTTP
//!   checks, shutdown, the per-connection limit, deadline on arrival,
//!   credentials, path, the stream's room and resume point);
//! - **every call ends as predicted, and only then**: `End`, `Stalled`
//!   (RESOURCE_EXHAUSTED), `Timeout` (DEADLINE_EXCEEDED for calls past
//!   their deadline, then after a shutdown's grace period UNAVAILABLE for
//!   every other live call), refused messages and joins with their codes,
//!   failed opens and appends (UNAVAILABLE), delivered posts of half-closed
//!   streams and sent answers (OK); `Connect`, `Disconnect`, `Reset` and
//!   `Shutdown` send no status. The model does not know which call a read
//!   is for, so when the engine fails a read, one call that may own it may
//!   end with UNAVAILABLE; and a stream catching up may end with
//!   OUT_OF_RANGE exactly when its room cannot prove what follows its point
//!   (another epoch, entries after it removed, a point far ahead), naming a
//!   point it can resume from. A call fed raw DATA may end with any code in
//!   that operation (and with INTERNAL on `End`);
//! - events for calls that are not live (or have half-closed) produce
//!   nothing; `open_calls()` and `poll_timeout()` agree with the model.
//!
//! **Chat** (`chat`, `chat_ops`, `engine_ops`; the contract in the docs of
//! [`crate::chat`]):
//! - **each room's entries reach its streams exactly once, in seq order,
//!   without gaps**: every delivery is the next entry of the room's log
//!   (past a hole only where retention removed the entries), as the engine
//!   stored it, whoever appended it and however late, twice or out of order
//!   the engine told; it goes, as one identical frame, to exactly the
//!   subscribed JoinChat streams of the room; no chat message reaches a
//!   stream outside such a broadcast but a catching-up page or an echo;
//! - **a resume yields exactly the missing suffix**: a stream resuming from
//!   a point gets the entries after it one by one, from the engine, then
//!   subscribes exactly when it has everything the room has delivered;
//! - **a retry never makes a second entry**: an append is asked exactly
//!   once per accepted post (sender of record, text, room, normalized client
//!   message id, time), in an open room; the engine's answer for a post the
//!   room has delivered already comes to its poster as its echo;
//! - nothing reaches a stream from a room its caller may not read;
//! - a stream's room is its `chat-room` metadata, else its connection's
//!   last successful JoinChatRoom room, else `room1`; streams that follow a
//!   connection move with it (and stop catching up), or end with
//!   PERMISSION_DENIED;
//! - every presence notice is predicted: exactly the live streams of the
//!   room get it, in order;
//! - an invalid post, or one its caller may not post, ends the stream with
//!   the predicted code; a valid join logs in once and is answered once the
//!   room's history is read (room, users present, a run of the newest
//!   entries as stored, epoch, last seq), in the order of the joins; an
//!   invalid one is recorded as refused with its code; every History page
//!   is one the engine gave; `Login` records carry the peer and the time;
//! - **after `Settle`** (the engine answers everything): every open room
//!   has delivered the engine's whole log, every post is delivered, every
//!   answer and page sent, and every stream has caught up (or waits for its
//!   room to reach a point ahead of it);
//! - `users_in`, `streams_in`, `pending()` and `rooms_in_memory()` agree
//!   with the model after every operation, and when every connection closes
//!   at the end of a run no call stays open.

mod chat;
mod chat_ops;
mod drain;
mod engine;
mod engine_ops;
mod open;
mod ops;
mod record;
mod rules;
mod state;
mod step;
mod weights;

use arbitrary::{Arbitrary, Unstructured};

use crate::chat::Chat;
use crate::server::{Server, ServerConfig};

pub use engine::{EngineModel, LogModel};
pub use ops::{
    ContentTypeChoice, Credential, GrpcVariant, Headers, Join, MsgId, Name, NotGrpc, OddQuirk,
    OddTimeout, Operation, OtherPath, PathChoice, Post, Quirk, Rarely, ResumeChoice, RoomName,
    RuleChoice, Setup, Short, ShortBytes, TimeoutChoice,
};

/// One run: how the chat is set up, and what the driver does.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The chat's mode and policy.
    pub setup: Setup,
    /// The operations, in order.
    pub ops: Vec<Operation>,
}

impl<'a> Arbitrary<'a> for Scenario {
    /// The setup, then operations until the input runs out. (`arbitrary`'s
    /// own `Vec` reads a continue bit before each element, so random bytes,
    /// as proptest gives, would stop after one or two operations.)
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Scenario> {
        let setup = Setup::arbitrary(u)?;
        let mut ops = Vec::new();
        while !u.is_empty() {
            ops.push(Operation::arbitrary(u)?);
        }
        Ok(Scenario { setup, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Scenario> {
        Scenario::arbitrary(&mut u)
    }
}

impl Scenario {
    /// The scenario `bytes` encode, read as the fuzz target reads its input.
    pub fn from_bytes(bytes: &[u8]) -> Scenario {
        Scenario::arbitrary_take_rest(Unstructured::new(bytes))
            .expect("every input decodes to a scenario")
    }
}

/// Runs `scenario` against a fresh `Server<Chat>`, checking the model after
/// every operation; panics at the first difference.
pub fn run(scenario: Scenario) {
    run_traced(scenario, |_, _| {});
}

/// [`run`], telling `trace` each operation (and its index) before it is
/// applied: what a failing run did last.
pub fn run_traced(scenario: Scenario, mut trace: impl FnMut(usize, &Operation)) {
    let mut model = state::Model::new(&scenario.setup);
    let config = ServerConfig {
        health: false,
        reflection: None,
        ..ServerConfig::default()
    };
    let mut server = Server::with_config(config, Chat::new(model.chat_config()));
    for slot in 0..state::CONN_SLOTS {
        step::connect(&mut server, &mut model, slot, true);
    }
    for (i, op) in scenario.ops.into_iter().enumerate() {
        trace(i, &op);
        step::step(&mut server, &mut model, op);
    }
    for slot in 0..state::CONN_SLOTS {
        step::disconnect(&mut server, &mut model, slot);
        drain::check_state(&mut server, &model);
    }
    assert_eq!(
        server.open_calls(),
        0,
        "every call ends with its connection"
    );
}
