//! Control-frame floods: a connection writes one kind of frame flat out
//! (the server must consume each and some cost an answer), and a reader
//! thread watches for GOAWAY and the connection's end. A persistent
//! flooder connects again whenever its connection ends, until the attack's
//! time is over.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::frames::{self, Conn, Read};
use crate::rig::{Options, Rig};

/// What a flood is made of.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// WINDOW_UPDATE on the connection, increment 1 (RFC 9113 §6.9).
    WindowUpdate,
    /// PRIORITY on stream 1 (§6.3; deprecated, but every server parses it).
    Priority,
    /// Frames of unknown type 0x20, which must be ignored (§4.1, §5.5).
    Unknown,
    /// Empty SETTINGS, each to be acknowledged (§6.5.3).
    Settings,
    /// PING, each to be answered (§6.7).
    Ping,
    /// "Rapid reset" (CVE-2023-44487): HEADERS opening a call, then
    /// RST_STREAM CANCEL at once (§6.2, §6.4), on stream after stream.
    RapidReset,
}

impl Kind {
    /// The next buffer of whole frames to write; `next` is the next
    /// stream id to open.
    fn chunk(self, addr: SocketAddr, next: &mut u32) -> Vec<u8> {
        let mut out = Vec::new();
        let block = frames::request(addr, chat_proto::health::paths::CHECK, &[]);
        while out.len() < 64 * 1024 {
            match self {
                Kind::RapidReset => {
                    frames::headers(&mut out, *next, &block, false);
                    frames::rst_stream(&mut out, *next, 0x8);
                    *next += 2;
                }
                Kind::WindowUpdate => frames::window_update(&mut out, 0, 1),
                Kind::Priority => frames::priority(&mut out, 1),
                Kind::Unknown => frames::frame(&mut out, 0x20, 0, 0, b"junk"),
                Kind::Settings => frames::settings(&mut out, &[]),
                Kind::Ping => frames::ping(&mut out, 0, *b"flooding"),
            }
        }
        out
    }
}

/// One connection of a flood, as seen from the flooder.
#[derive(Clone, Debug, Default)]
pub struct ConnOutcome {
    /// Bytes of flood written.
    pub sent: usize,
    /// GOAWAY's error code, and when it came (since the connection opened).
    pub goaway: Option<(u32, Duration)>,
    /// When the connection ended (since it opened), and how.
    pub closed: Option<(Duration, String)>,
    /// How long the connection lasted, if still open at the end.
    pub lasted: Duration,
}

/// Floods of `kind` on `connections` connections at once for `duration`
/// (connecting again when cut if `persistent`); every connection the
/// flooders opened, in order.
pub fn run(
    addr: SocketAddr,
    kind: Kind,
    connections: usize,
    persistent: bool,
    duration: Duration,
) -> Vec<ConnOutcome> {
    let end = Instant::now() + duration;
    let flooders: Vec<_> = (0..connections)
        .map(|_| thread::spawn(move || flooder(addr, kind, persistent, end)))
        .collect();
    flooders
        .into_iter()
        .flat_map(|t| t.join().expect("flooder thread"))
        .collect()
}

/// One flooder, until `end`.
fn flooder(addr: SocketAddr, kind: Kind, persistent: bool, end: Instant) -> Vec<ConnOutcome> {
    let mut outcomes = Vec::new();
    while Instant::now() < end {
        let Ok(mut conn) = Conn::connect(addr, &[]) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        let opened = Instant::now();
        let seen = Arc::new(Mutex::new(ConnOutcome::default()));
        let watcher = conn.try_clone().map(|reader| {
            let seen = seen.clone();
            thread::spawn(move || watch(reader, opened, end + Duration::from_secs(2), seen))
        });
        // Whole frames are kept in order across partial writes: the next
        // chunk starts once this one is written.
        let mut stream = 1;
        let mut chunk = kind.chunk(addr, &mut stream);
        let (mut at, mut sent) = (0, 0);
        while Instant::now() < end && seen.lock().unwrap().closed.is_none() {
            match conn.send_some(&chunk[at..], Duration::from_millis(50)) {
                Ok(n) => {
                    sent += n;
                    at += n;
                    if at == chunk.len() {
                        (at, chunk) = (0, kind.chunk(addr, &mut stream));
                    }
                }
                Err(_) => break,
            }
        }
        let lasted = opened.elapsed();
        // Give the reader a moment to see a GOAWAY that is on its way.
        let grace = Instant::now() + Duration::from_millis(300);
        while Instant::now() < grace && seen.lock().unwrap().closed.is_none() {
            thread::sleep(Duration::from_millis(10));
        }
        conn.shutdown();
        if let Ok(w) = watcher {
            let _ = w.join();
        }
        let mut outcome = seen.lock().unwrap().clone();
        outcome.sent = sent;
        outcome.lasted = lasted;
        outcomes.push(outcome);
        if !persistent {
            // The attack is over; the bystander goes on measuring.
            thread::sleep(end.saturating_duration_since(Instant::now()));
        }
    }
    outcomes
}

/// Reads (and drops) what the server sends until the connection ends or
/// `until`, recording GOAWAY and the end.
fn watch(mut reader: Conn, opened: Instant, until: Instant, seen: Arc<Mutex<ConnOutcome>>) {
    while Instant::now() < until {
        match reader.read(Duration::from_millis(100)) {
            Read::Frame(f) if f.kind == frames::GOAWAY => {
                let code = f.error_code().unwrap_or(u32::MAX);
                seen.lock()
                    .unwrap()
                    .goaway
                    .get_or_insert((code, opened.elapsed()));
            }
            Read::Frame(_) | Read::Idle => {}
            Read::Closed(why) => {
                seen.lock().unwrap().closed = Some((opened.elapsed(), why));
                return;
            }
        }
    }
}

/// Findings about the flood's connections: each must have got GOAWAY
/// ENHANCE_YOUR_CALM within `calm_within` and then been closed.
pub fn findings(outcomes: &[ConnOutcome], calm_within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let sent = format!("{:.1} MB sent", o.sent as f64 / 1e6);
        match (o.goaway, &o.closed) {
            (None, _) if o.lasted < calm_within => {} // cut short by the attack's end
            (None, None) => out.push(format!(
                "connection {i}: no GOAWAY after {:.1} s ({sent})",
                o.lasted.as_secs_f64()
            )),
            (None, Some((t, why))) => out.push(format!(
                "connection {i}: closed after {:.1} s without GOAWAY ({why}; {sent})",
                t.as_secs_f64()
            )),
            (Some((code, t)), closed) => {
                if code != frames::ENHANCE_YOUR_CALM {
                    out.push(format!(
                        "connection {i}: GOAWAY with code {code:#x}, not ENHANCE_YOUR_CALM"
                    ));
                }
                if t > calm_within {
                    out.push(format!(
                        "connection {i}: GOAWAY only after {:.1} s ({sent})",
                        t.as_secs_f64()
                    ));
                }
                if closed.is_none() {
                    out.push(format!("connection {i}: still open after GOAWAY"));
                }
            }
        }
    }
    out
}

/// A one-line summary for the notes.
pub fn summary(outcomes: &[ConnOutcome]) -> String {
    let mut times: Vec<u128> = outcomes
        .iter()
        .filter_map(|o| o.goaway.map(|(_, t)| t.as_millis()))
        .collect();
    times.sort();
    let calm = outcomes
        .iter()
        .filter(|o| {
            o.goaway
                .is_some_and(|(c, _)| c == frames::ENHANCE_YOUR_CALM)
        })
        .count();
    let sent: usize = outcomes.iter().map(|o| o.sent).sum();
    format!(
        "{} connection(s), {:.1} MB of flood written; GOAWAY on {} ({} ENHANCE_YOUR_CALM) after {:?} ms (min/median/max)",
        outcomes.len(),
        sent as f64 / 1e6,
        times.len(),
        calm,
        [times.first(), times.get(times.len() / 2), times.last()]
    )
}

/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(3);
/// A flooding connection must get GOAWAY within this.
const CALM_WITHIN: Duration = Duration::from_secs(1);

fn flood(name: &'static str, kind: Kind, connections: usize, persistent: bool) {
    let mut rig = Rig::start(name, Options::default());
    let (outcomes, report) = rig.attack(|addr| run(addr, kind, connections, persistent, FLOOD));
    rig.note(summary(&outcomes));
    for finding in findings(&outcomes, CALM_WITHIN).into_iter().take(5) {
        rig.fail(finding);
    }
    rig.check_history(&report);
    rig.finish();
}

#[test]
fn window_update_flood() {
    flood("window_update_flood", Kind::WindowUpdate, 1, false);
}

#[test]
fn priority_flood() {
    flood("priority_flood", Kind::Priority, 1, false);
}

#[test]
fn unknown_frame_flood() {
    flood("unknown_frame_flood", Kind::Unknown, 1, false);
}

#[test]
fn window_update_flood_on_two_connections() {
    flood("window_update_flood_x2", Kind::WindowUpdate, 2, false);
}

/// The same, connecting again each time the connection is cut.
#[test]
fn window_update_flood_reconnecting() {
    flood(
        "window_update_flood_reconnecting",
        Kind::WindowUpdate,
        1,
        true,
    );
}

#[test]
fn settings_flood() {
    flood("settings_flood", Kind::Settings, 1, false);
}

#[test]
fn rapid_reset_flood() {
    flood("rapid_reset_flood", Kind::RapidReset, 1, false);
}

#[test]
fn ping_flood() {
    flood("ping_flood", Kind::Ping, 1, false);
}
