//! Idle connections: 1,500 TCP connections that never send a byte, from
//! one peer address (127.0.0.2; the bystander is 127.0.0.1), against a
//! server limited to 1,024 descriptors. New well-behaved connections must
//! still succeed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::frames;
use crate::rig::{Options, Rig};

const CONNECTIONS: usize = 1500;
const THREADS: usize = 10;
/// The attacker's address: another peer than the bystander.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Opens the connections (a thread gives up after 3 failures in a row)
/// and holds them until `until`; how many opened, and the first failure.
fn hold(addr: SocketAddr, until: Instant) -> (usize, Option<String>) {
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(move || {
                let (mut held, mut failures, mut first) = (Vec::<TcpStream>::new(), 0, None);
                while held.len() < CONNECTIONS / THREADS && failures < 3 && Instant::now() < until {
                    match frames::tcp(addr, Some(ATTACKER), Duration::from_millis(300)) {
                        Ok(s) => {
                            held.push(s);
                            failures = 0;
                        }
                        Err(e) => {
                            failures += 1;
                            first.get_or_insert(e.to_string());
                        }
                    }
                }
                thread::sleep(until.saturating_duration_since(Instant::now()));
                (held.len(), first)
            })
        })
        .collect();
    let (mut opened, mut first) = (0, None);
    for t in threads {
        let (n, f) = t.join().expect("idle thread");
        opened += n;
        first = first.or(f);
    }
    (opened, first)
}

#[test]
fn idle_connections_under_a_descriptor_limit() {
    let options = Options {
        nofile: Some(1024),
        extra: vec!["--max-conns-per-peer".into(), "100".into()],
        ..Options::default()
    };
    let mut rig = Rig::start("idle_connections", options);
    let ((opened, first), report) =
        rig.attack(|addr| hold(addr, Instant::now() + Duration::from_secs(4)));
    rig.note(format!(
        "the attacker held {opened} of {CONNECTIONS} idle connections (first failure: {first:?})"
    ));
    rig.check_history(&report);
    rig.finish();
}
