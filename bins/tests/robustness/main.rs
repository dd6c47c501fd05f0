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
mod frames;
mod hpack;
mod rig;
mod rss;

mod backlog;
mod floods;
mod hoard;
mod poster;

use std::time::Duration;

use rig::{Options, Rig};

/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(3);
/// A flooding connection must get GOAWAY within this.
const CALM_WITHIN: Duration = Duration::from_secs(1);

fn flood(name: &'static str, kind: floods::Kind, connections: usize, persistent: bool) {
    let mut rig = Rig::start(name, Options::default());
    let (outcomes, report) =
        rig.attack(|addr| floods::run(addr, kind, connections, persistent, FLOOD));
    rig.note(floods::summary(&outcomes));
    for finding in floods::findings(&outcomes, CALM_WITHIN).into_iter().take(5) {
        rig.fail(finding);
    }
    rig.check_history(&report);
    rig.finish();
}

/// No attack: the bounds hold for a quiet server (calibration).
#[test]
fn quiet_baseline() {
    let mut rig = Rig::start("quiet_baseline", Options::default());
    let ((), report) = rig.attack(|_| std::thread::sleep(FLOOD));
    rig.check_history(&report);
    rig.finish();
}

#[test]
fn window_update_flood() {
    flood("window_update_flood", floods::Kind::WindowUpdate, 1, false);
}

#[test]
fn priority_flood() {
    flood("priority_flood", floods::Kind::Priority, 1, false);
}

#[test]
fn unknown_frame_flood() {
    flood("unknown_frame_flood", floods::Kind::Unknown, 1, false);
}

#[test]
fn window_update_flood_on_two_connections() {
    flood(
        "window_update_flood_x2",
        floods::Kind::WindowUpdate,
        2,
        false,
    );
}

/// The same, connecting again each time the connection is cut.
#[test]
fn window_update_flood_reconnecting() {
    flood(
        "window_update_flood_reconnecting",
        floods::Kind::WindowUpdate,
        1,
        true,
    );
}

#[test]
fn settings_flood() {
    flood("settings_flood", floods::Kind::Settings, 1, false);
}

#[test]
fn ping_flood() {
    flood("ping_flood", floods::Kind::Ping, 1, false);
}
