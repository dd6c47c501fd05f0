//! Attacks that make the server hold output or input: readers with a zero
//! window in a busy room, History pages for clients that never read, and
//! posters writing as fast as flow control allows.

use std::time::{Duration, Instant};

use chat_proto::{paths, HistoryPage, HistoryRequest};
use prost::Message as _;

use crate::calls::Client;
use crate::frames::{self, Conn};
use crate::hoard::{self, Hoard};
use crate::poster::{self, Post};
use crate::rig::{Options, Rig};

/// RESOURCE_EXHAUSTED.
const RESOURCE_EXHAUSTED: u32 = 8;
/// The largest message a default gRPC client accepts.
const CLIENT_MAX: usize = 4 * 1024 * 1024;

/// Zero window: 20 connections x 128 JoinChat streams in a room where a
/// poster posts 1 KiB messages flat out; streams are reopened when cut.
#[test]
fn zero_window_streams_in_a_busy_room() {
    let mut rig = Rig::start("zero_window", Options::default());
    let (hoarded, report) = rig.attack(|addr| {
        let until = Instant::now() + Duration::from_secs(4);
        let post = Post {
            room: "busy".into(),
            user: "poster".into(),
            text_len: 1024,
            limit: None,
            until,
        };
        let poster = poster::start(addr, post);
        let hoard = Hoard {
            path: paths::JOIN_CHAT,
            metadata: vec![("chat-room", b"busy".to_vec())],
            body: Vec::new(),
            end: false,
            connections: 20,
            calls_per_conn: 128,
            until,
        };
        let hoarded = hoard::run(addr, &hoard);
        (hoarded, poster.join().expect("poster"))
    });
    let (hoarded, posted) = hoarded;
    rig.note(format!("poster in the busy room: {}", posted.describe()));
    rig.note(format!("zero-window streams: {}", hoarded.describe()));
    rig.expect(
        hoarded.with_status(RESOURCE_EXHAUSTED) > 0,
        format!(
            "no zero-window stream was cut with RESOURCE_EXHAUSTED ({})",
            hoarded.describe()
        ),
    );
    rig.check_history(&report);
    rig.finish();
}

/// Scaled down from 1,000 messages to 300 (posting them takes a while in
/// debug builds): 300 messages of 16 KiB are a 4.9 MB page, over a default
/// client's 4 MiB; then 100 `History(limit = 1000)` calls in flight (10
/// connections x 10) from clients with a zero window, reissued when cut.
#[test]
fn history_pages_for_readers_that_never_read() {
    const MESSAGES: usize = 300;
    let mut rig = Rig::start("history_hoard", Options::default());
    let addr = rig.addr();
    let fill = poster::start(
        addr,
        Post {
            room: "big".into(),
            user: "filler".into(),
            text_len: 16 * 1024,
            limit: Some(MESSAGES),
            until: Instant::now() + Duration::from_secs(30),
        },
    );
    let filled = fill.join().expect("filler");
    rig.note(format!("filling the room: {}", filled.describe()));
    rig.expect(
        filled.echoed >= MESSAGES,
        format!(
            "only {} of {MESSAGES} messages of 16 KiB were posted",
            filled.echoed
        ),
    );
    let request = frames::grpc(&HistoryRequest {
        room_id: "big".into(),
        before_seq: 0,
        limit: 1000,
    });
    let ((hoarded, page), report) = rig.attack(|addr| {
        let hoard = Hoard {
            path: paths::HISTORY,
            metadata: Vec::new(),
            body: request.clone(),
            end: true,
            connections: 10,
            calls_per_conn: 10,
            until: Instant::now() + Duration::from_secs(4),
        };
        let hoarder = std::thread::spawn(move || hoard::run(addr, &hoard));
        std::thread::sleep(Duration::from_secs(1));
        let page = read_page(addr, &request);
        (hoarder.join().expect("hoarders"), page)
    });
    rig.note(format!(
        "History calls that never read: {}",
        hoarded.describe()
    ));
    match page {
        Ok((largest, page)) => {
            rig.note(format!(
                "a reader's History(limit = 1000): a {largest}-byte page of {} messages, more = {}",
                page.messages.len(),
                page.more
            ));
            rig.expect(
                largest <= CLIENT_MAX,
                format!("a History page of {largest} bytes (a default client takes at most {CLIENT_MAX})"),
            );
            rig.expect(
                page.more || page.messages.len() >= MESSAGES,
                format!(
                    "a page of {} of {MESSAGES} messages without more = true",
                    page.messages.len()
                ),
            );
        }
        Err(e) => rig.fail(format!("a reader's History(limit = 1000) failed: {e}")),
    }
    rig.check_history(&report);
    rig.finish();
}

/// One History call from a client that reads: the size of the answer's
/// message and the page.
fn read_page(addr: std::net::SocketAddr, request: &[u8]) -> Result<(usize, HistoryPage), String> {
    let mut client = Client::new(Conn::reader(addr).map_err(|e| e.to_string())?);
    client.keep = true;
    let stream = client
        .open(paths::HISTORY, &[], request, true)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for (id, o) in client.poll(Duration::from_millis(50)) {
            if id != stream {
                continue;
            }
            if o.status != Some(0) {
                return Err(o.describe());
            }
            let bytes = o.messages.first().ok_or("no page in the answer")?;
            let page = HistoryPage::decode(&bytes[..]).map_err(|e| e.to_string())?;
            return Ok((o.largest, page));
        }
    }
    Err("no answer within 10 s".into())
}

/// Two connections posting as fast as flow control allows, each in its own
/// room, while the bystander posts in its own.
fn fast_posters(name: &'static str, memory: bool) {
    let mut rig = Rig::start(
        name,
        Options {
            memory,
            ..Options::default()
        },
    );
    let (posted, report) = rig.attack(|addr| {
        let until = Instant::now() + Duration::from_secs(4);
        let posters: Vec<_> = (0..2)
            .map(|i| {
                let post = Post {
                    room: format!("fast-{i}"),
                    user: format!("fast-{i}"),
                    text_len: 64,
                    limit: None,
                    until,
                };
                poster::start(addr, post)
            })
            .collect();
        posters
            .into_iter()
            .map(|p| p.join().expect("poster"))
            .collect::<Vec<_>>()
    });
    for (i, p) in posted.iter().enumerate() {
        rig.note(format!("poster {i}: {}", p.describe()));
    }
    rig.check_history(&report);
    rig.finish();
}

#[test]
fn fast_posters_in_memory_mode() {
    fast_posters("fast_posters_memory", true);
}

#[test]
fn fast_posters_in_durable_mode() {
    fast_posters("fast_posters_durable", false);
}
