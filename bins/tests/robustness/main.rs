//! The attacker's side: a robustness suite against the real `chat-server`
//! binary. Each test runs one attack from the report on the release build
//! for a few seconds while a well-behaved bystander posts in its own room,
//! then checks the bystander's round trips and new connections, the
//! server's peak resident memory, that every message the bystander saw
//! acknowledged is in the history, and what the attack itself should have
//! met (GOAWAY, a status). Tests take turns (see `rig`), and each one
//! reports every finding, with what was measured against its bound.

#![cfg(target_os = "linux")]

#[path = "../common/mod.rs"]
mod common;

mod bystander;
mod calls;
mod client;
mod frames;
mod hpack;
mod rig;
mod rss;

mod backlog;
mod floods;
mod hoard;
mod idle;
mod ids;
mod output;
mod poster;
mod rooms;
mod stdout;

use std::time::Duration;

use rig::{Options, Rig};

/// No attack: the bounds hold for a quiet server (calibration).
#[test]
fn quiet_baseline() {
    let mut rig = Rig::start("quiet_baseline", Options::default());
    let ((), report) = rig.attack(|_| std::thread::sleep(Duration::from_secs(3)));
    rig.check_history(&report);
    rig.finish();
}
