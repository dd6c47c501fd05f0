//! Test support (feature `model`): a model of `Server<Chat>`, checked after
//! every operation of an arbitrary run. One model serves two runners: the
//! fuzz target `fuzz/fuzz_targets/server.rs` (libFuzzer, nightly) and the
//! property test `tests/model.rs` (proptest, stable). Both hand [`run`] a
//! [`Scenario`] decoded by `arbitrary` from bytes.
//!
//! A run sets the chat up ([`Setup`]: memory or durable mode, history sizes,
//! random permissions for three rooms and for the others, users `u0`..`u2`
//! with tokens) and applies [`Operation`]s on a simulated clock that only
//! moves forward, draining `poll_output()` after each, multicasts turned into
//! per-call messages by [`Expand`](crate::server::Expand) as a driver would.
//! In durable mode the model plays the store: it acknowledges, fails, or
//! answers reads at the moments the operations say. Health and reflection
//! are off: they have their own tests, and their paths would be accepted
//! where the model expects UNIMPLEMENTED.
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
//!   credentials, path, the stream's room);
//! - **every call ends exactly as predicted, and only then**: `End`,
//!   `Stalled` (RESOURCE_EXHAUSTED), `Timeout` (DEADLINE_EXCEEDED for calls
//!   past their deadline, then after a shutdown's grace period UNAVAILABLE
//!   for every other live call), refused messages, joins and reads with
//!   their codes, store answers; `Connect`, `Disconnect`, `Reset` and
//!   `Shutdown` send no status. The one exception is a call fed raw DATA,
//!   whose decoder state is not predicted: it may end with any code in that
//!   operation (and with INTERNAL on `End`);
//! - events for calls that are not live (or have half-closed) produce
//!   nothing; `open_calls()` and `poll_timeout()` agree with the model.
//!
//! **Chat** (`chat`, `chat_ops`; the contract in the docs of
//! [`crate::chat`]):
//! - each delivered message goes, as one identical frame, to exactly the
//!   live JoinChat streams of its room (the sender's included, in memory
//!   mode), and no chat message reaches a stream outside such a broadcast;
//!   messages are numbered 1, 2, 3, ... per room, each stream sees its
//!   room's numbers increase, and the frame matches its `ChatEvent::Message`
//!   (and in durable mode the `Persist` it was accepted as, in order);
//! - nothing reaches a stream from a room its caller may not read;
//! - a stream's room is its `chat-room` metadata, else its connection's
//!   last successful JoinChatRoom room, else `room1`; streams that follow a
//!   connection move with it, or end with PERMISSION_DENIED;
//! - every presence notice is predicted: exactly the live streams of the
//!   room get it, in order (a connection's user leaves its old room when it
//!   switches user or room or disconnects, unless another connection keeps
//!   them there; a user arrives in a room they were not present in);
//! - a valid post is accepted once, as the sender of record (an
//!   authenticated caller is its account; guests may not claim registered
//!   ids), with its text and room; an invalid one, or one its caller may not
//!   post, ends the stream with the predicted code (INVALID_ARGUMENT,
//!   PERMISSION_DENIED, NOT_FOUND); a valid join logs in once and is
//!   answered, an invalid one is recorded as refused with its code;
//! - every `ChatRoom` reply (room, users, the last N messages) and every
//!   `HistoryPage` agree with the model; `Login` records carry the
//!   connection's peer and the time;
//! - durable mode: nothing is delivered before the store says it is durable;
//!   `Persist` ids go 1, 2, 3, ... in the current epoch; a failure ends the
//!   posters of pending messages with UNAVAILABLE, lets waiting streams end
//!   OK, and rewinds the numbering; stale answers change nothing; a
//!   half-closed stream ends only once what it waited for is delivered;
//! - `users_in`, `streams_in` and `pending()` agree with the model after
//!   every operation, and when every connection closes at the end of a run
//!   no call stays open.

mod chat;
mod chat_ops;
mod drain;
mod open;
mod ops;
mod record;
mod state;
mod step;
mod weights;

use arbitrary::{Arbitrary, Unstructured};

use crate::chat::Chat;
use crate::server::{Server, ServerConfig};

pub use ops::{
    ContentTypeChoice, Credential, GrpcVariant, Headers, Join, Name, NotGrpc, OddQuirk, OddTimeout,
    Operation, OtherPath, PathChoice, Post, Quirk, Rarely, RoomName, RuleChoice, Setup, Short,
    ShortBytes, TimeoutChoice,
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
    for op in scenario.ops {
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
