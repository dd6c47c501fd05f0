//! Hoarders: connections that announce SETTINGS_INITIAL_WINDOW_SIZE = 0
//! (RFC 9113 §6.5.2, §6.9.2) and so never let the server send a byte of
//! DATA, each keeping as many calls open as the server allows, opening a
//! new one whenever one is cut, and a new connection whenever theirs is.
//! Whatever the server means to send them piles up unless it cuts them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::calls::{Client, Outcome};
use crate::frames::{Conn, SETTINGS_INITIAL_WINDOW_SIZE};

/// The calls to hoard.
#[derive(Clone, Debug)]
pub struct Hoard {
    pub path: &'static str,
    pub metadata: Vec<(&'static str, Vec<u8>)>,
    /// Request messages sent on each call (framed), then half-close if `end`.
    pub body: Vec<u8>,
    pub end: bool,
    pub connections: usize,
    pub calls_per_conn: usize,
    pub until: Instant,
}

/// How the hoarded calls ended.
#[derive(Debug, Default)]
pub struct Hoarded {
    pub connections: usize,
    pub opened: usize,
    /// Calls ended with each `grpc-status`, and a `grpc-message` of each.
    pub statuses: BTreeMap<u32, (usize, String)>,
    /// Calls reset, by error code.
    pub resets: BTreeMap<u32, usize>,
    /// Calls lost with their connection.
    pub lost: usize,
    /// Connections ended by GOAWAY, by error code.
    pub goaways: BTreeMap<u32, usize>,
}

impl Hoarded {
    fn tally(&mut self, o: &Outcome) {
        match (o.status, o.reset) {
            (Some(s), _) => {
                let e = self.statuses.entry(s).or_insert((0, o.message.clone()));
                e.0 += 1;
            }
            (None, Some(r)) => *self.resets.entry(r).or_default() += 1,
            _ => self.lost += 1,
        }
    }

    fn add(&mut self, other: Hoarded) {
        self.connections += other.connections;
        self.opened += other.opened;
        self.lost += other.lost;
        for (s, (n, m)) in other.statuses {
            self.statuses.entry(s).or_insert((0, m)).0 += n;
        }
        for (r, n) in other.resets {
            *self.resets.entry(r).or_default() += n;
        }
        for (c, n) in other.goaways {
            *self.goaways.entry(c).or_default() += n;
        }
    }

    /// Calls that ended with `status`.
    pub fn with_status(&self, status: u32) -> usize {
        self.statuses.get(&status).map_or(0, |s| s.0)
    }

    /// A one-line summary.
    pub fn describe(&self) -> String {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, (n, m))| format!("{n} x grpc-status {s} {m:?}"))
            .collect();
        format!(
            "{} connections, {} calls opened; ended: [{}], resets {:?}, lost with their connection {}, GOAWAYs {:?}",
            self.connections,
            self.opened,
            statuses.join(", "),
            self.resets,
            self.lost,
            self.goaways
        )
    }
}

/// Runs the hoard until its time is over.
pub fn run(addr: SocketAddr, hoard: &Hoard) -> Hoarded {
    let threads: Vec<_> = (0..hoard.connections)
        .map(|_| {
            let hoard = hoard.clone();
            thread::spawn(move || hoarder(addr, &hoard))
        })
        .collect();
    let mut all = Hoarded::default();
    for t in threads {
        all.add(t.join().expect("hoarder thread"));
    }
    all
}

fn hoarder(addr: SocketAddr, hoard: &Hoard) -> Hoarded {
    let mut seen = Hoarded::default();
    let metadata: Vec<(&str, &[u8])> = hoard
        .metadata
        .iter()
        .map(|(k, v)| (*k, v.as_slice()))
        .collect();
    while Instant::now() < hoard.until {
        let Ok(conn) = Conn::connect(addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        seen.connections += 1;
        let mut client = Client::new(conn);
        client.refill = false;
        while Instant::now() < hoard.until && !client.dead() {
            while client.open_calls() < hoard.calls_per_conn {
                match client.open(hoard.path, &metadata, &hoard.body, hoard.end) {
                    Ok(_) => seen.opened += 1,
                    Err(e) => {
                        client.closed = Some(e.to_string());
                        break;
                    }
                }
            }
            for (_, outcome) in client.poll(Duration::from_millis(50)) {
                seen.tally(&outcome);
            }
        }
        if let Some(code) = client.goaway {
            *seen.goaways.entry(code).or_default() += 1;
        }
        client.conn.shutdown();
    }
    seen
}
