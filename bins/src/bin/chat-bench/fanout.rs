//! Fan-out: S subscribers and P publishers in one room, every client on its
//! own connection. Publishers send on a fixed schedule (message i at
//! start + i / rate, whatever the server does, so latency cannot hide
//! behind back-pressure), each message carrying its send time. Reports
//! deliveries per second, delivery latency percentiles and loss, and, given
//! the server's pid, its CPU time per delivery.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use chat_proto::{paths, ChatMessage, User};
use transport_h2::{CallOptions, CallReceiver, CallSender, Channel};

use prost::Message as _;

use crate::lean;
use crate::stats::{cpu_time, ms, run_queue_wait, Latency};

/// What the subscribers' readers share with the schedule.
struct Shared {
    start: Instant,
    /// Subscribers that have seen a probe.
    ready: AtomicU64,
    /// Timestamped messages received.
    seen: AtomicU64,
    /// The measured window, in nanoseconds after `start`; 0 until known.
    window: [AtomicU64; 2],
    stop: AtomicBool,
}

impl Shared {
    /// Counts a subscriber's first probe; records the latency of a
    /// timestamped message (given by its text) sent inside the window.
    fn record(&self, text: &[u8], probed: &mut bool, lat: &mut Vec<u32>) {
        if text == b"probe" {
            if !*probed {
                *probed = true;
                self.ready.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(sent) = sent_at(text) else { return };
        let now = self.start.elapsed();
        self.seen.fetch_add(1, Ordering::Relaxed);
        let (w0, w1) = (
            self.window[0].load(Ordering::Relaxed),
            self.window[1].load(Ordering::Relaxed),
        );
        let sent_ns = sent.as_nanos() as u64;
        if w1 != 0 && sent_ns >= w0 && sent_ns < w1 {
            lat.push(now.saturating_sub(sent).as_micros().min(u32::MAX as u128) as u32);
        }
    }
}

/// Opens a JoinChat call on a connection of its own, with the full client.
async fn open_call(
    addr: &str,
    options: &CallOptions,
) -> Result<(Channel, CallSender, CallReceiver), Box<dyn std::error::Error>> {
    let channel = Channel::connect(addr).await?;
    let (tx, rx) = channel
        .call(paths::JOIN_CHAT, options.clone())
        .await?
        .split();
    Ok((channel, tx, rx))
}

/// The lean subscribers, read by one thread until told to stop.
/// The first `counted` are subscribers; the rest are lean publishers,
/// whose echoes are read and not measured.
fn read_lean(mut subs: Vec<lean::Subscriber>, counted: usize, shared: Arc<Shared>) -> Vec<u32> {
    let mut probed = vec![false; subs.len()];
    let mut lat = Vec::new();
    let result = lean::read_all(&mut subs, &shared.stop, |i, bytes| {
        if i >= counted {
            return;
        }
        if let Some(text) = text_field(bytes) {
            shared.record(text, &mut probed[i], &mut lat);
        }
    });
    if let Err(e) = result {
        eprintln!("chat-bench: subscriber reader: {e}");
    }
    if let Some(gone) = subs.iter().position(lean::Subscriber::ended) {
        eprintln!("chat-bench: subscriber {gone} was ended by the server");
    }
    lat
}

/// One subscriber on the full client, read until told to stop.
async fn read_h2(
    mut rx: CallReceiver,
    stop: smol::channel::Receiver<()>,
    shared: Arc<Shared>,
) -> Vec<u32> {
    let (mut probed, mut lat) = (false, Vec::new());
    loop {
        let next =
            futures_lite::future::or(async { rx.message::<ChatMessage>().await.ok()? }, async {
                let _ = stop.recv().await;
                None
            })
            .await;
        let Some(m) = next else { break };
        shared.record(m.message.as_bytes(), &mut probed, &mut lat);
    }
    lat
}

/// Options of the fan-out benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Subscribers (each on its own connection).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publishers (each on its own connection).
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Messages per second per publisher.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Bytes of text in each message.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// The server's pid, to report its CPU time per delivery.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Subscribers connect to these addresses in turn (comma separated:
    /// the nodes of a cluster); default: --addr. Publishers stay on --addr.
    #[arg(long, value_delimiter = ',')]
    pub sub_addrs: Vec<String>,
    /// More processes whose CPU time per delivery is reported, each as
    /// NAME=PID (comma separated: the other nodes, redis-server).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<String>,
    /// A label for the output line.
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Read subscribers with the full HTTP/2 client (transport-h2) instead of
    /// the lean reader; costs the bench about twice the CPU.
    #[arg(long)]
    pub h2_subscribers: bool,
    /// Closed loop: each publisher sends its next message as soon as the
    /// echo of the last one arrives (`--rate` is then ignored), so the
    /// rate is whatever the server sustains at that latency.
    #[arg(long)]
    pub closed_loop: bool,
}

/// Text of a message sent `at` after `start`: 20 digits of nanoseconds,
/// padded to `size` bytes.
fn text(at: Duration, size: usize) -> String {
    let mut t = format!("{:020}", at.as_nanos());
    t.extend(std::iter::repeat_n('x', size.saturating_sub(20)));
    t
}

fn sent_at(text: &[u8]) -> Option<Duration> {
    let digits = text.get(..20)?;
    let mut ns = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        ns = ns.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(Duration::from_nanos(ns))
}

/// The `message` field (2) of an encoded `ChatMessage`, found without
/// decoding the rest (the reader sees a million of these a second).
fn text_field(mut msg: &[u8]) -> Option<&[u8]> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                varint(&mut msg)?;
            }
            1 => msg = msg.get(8..)?,
            5 => msg = msg.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                let value = msg.get(..len)?;
                if key >> 3 == 2 {
                    return Some(value);
                }
                msg = &msg[len..];
            }
            _ => return None,
        }
    }
    Some(&[])
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = CallOptions::default().metadata("chat-room", "bench");
    let shared = Arc::new(Shared {
        start: Instant::now(),
        ready: AtomicU64::new(0),
        seen: AtomicU64::new(0),
        window: [AtomicU64::new(0), AtomicU64::new(0)],
        stop: AtomicBool::new(false),
    });
    let start = shared.start;
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut keep = Vec::new();
    // Publishers on a schedule are lean too (a thread each, writing DATA
    // frames), so that the bench adds as little as it can to the latency it
    // measures; closed-loop ones wait for their echo on the full client.
    let mut lean_pubs = Vec::new();
    let sub_addrs = if args.sub_addrs.is_empty() {
        vec![args.addr.clone()]
    } else {
        args.sub_addrs.clone()
    };
    let sub_addr = |i: usize| sub_addrs[i % sub_addrs.len()].as_str();
    let others: Vec<(String, u32)> = args
        .pids
        .iter()
        .map(|p| {
            let (name, pid) = p.split_once('=').ok_or("--pids takes NAME=PID")?;
            Ok::<_, String>((name.to_owned(), pid.parse().map_err(|_| "a bad pid")?))
        })
        .collect::<Result<_, _>>()?;
    let readers: Vec<smol::Task<Vec<u32>>> = if args.h2_subscribers {
        let mut readers = Vec::new();
        for i in 0..args.subscribers {
            let (channel, tx, rx) = open_call(sub_addr(i), &options).await?;
            keep.push((channel, tx));
            readers.push(smol::spawn(read_h2(rx, stop_rx.clone(), shared.clone())));
        }
        readers
    } else {
        let mut subs = Vec::new();
        for i in 0..args.subscribers {
            let sub =
                lean::Subscriber::connect(sub_addr(i), paths::JOIN_CHAT, &[("chat-room", "bench")])
                    .map_err(|e| format!("subscriber {i}: {e}"))?;
            subs.push(sub);
        }
        if !args.closed_loop {
            for p in 0..args.publishers {
                let publisher = lean::Subscriber::connect(
                    &args.addr,
                    paths::JOIN_CHAT,
                    &[("chat-room", "bench")],
                )
                .map_err(|e| format!("publisher {p}: {e}"))?;
                lean_pubs.push(publisher.sender()?);
                subs.push(publisher);
            }
        }
        let (shared, counted) = (shared.clone(), args.subscribers);
        let thread = std::thread::spawn(move || read_lean(subs, counted, shared));
        vec![smol::unblock(move || thread.join().unwrap_or_default())]
    };
    let mut publishers = Vec::new();
    if lean_pubs.is_empty() {
        for _ in 0..args.publishers {
            publishers.push(open_call(&args.addr, &options).await?);
        }
    }
    // Every subscriber registered: each must receive a probe. A stream's
    // headers can reach the server after a probe, so probes repeat until
    // every subscriber has seen one.
    let probe = crate::stats::probe();
    let probing = Instant::now();
    while shared.ready.load(Ordering::Relaxed) < args.subscribers as u64 {
        if probing.elapsed() > Duration::from_secs(30) {
            return Err("subscribers never received the probe message".into());
        }
        match lean_pubs.first_mut() {
            Some(sender) => sender.send(&probe.encode_to_vec())?,
            None => publishers[0].1.send(&probe).await?,
        }
        Timer::after(Duration::from_millis(100)).await;
    }
    // Let the probes' tail drain before the schedule starts.
    Timer::after(Duration::from_millis(200)).await;

    let t0 = start.elapsed() + Duration::from_millis(200);
    let window = (
        t0 + Duration::from_secs(args.warmup),
        t0 + Duration::from_secs(args.warmup + args.seconds),
    );
    shared.window[0].store(window.0.as_nanos() as u64, Ordering::Relaxed);
    shared.window[1].store(window.1.as_nanos() as u64, Ordering::Relaxed);
    let until = start + window.1 + Duration::from_secs(3);
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let mut lean_threads = Vec::new();
    for (p, mut sender) in lean_pubs.into_iter().enumerate() {
        let (size, rate, sent) = (args.size, args.rate, sent_in_window.clone());
        lean_threads.push(std::thread::spawn(move || {
            let user = User {
                user_id: format!("pub{p}"),
                username: format!("publisher {p}"),
                room_id: String::new(),
            };
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let offset = interval.mul_f64(p as f64 / 2.0);
            for i in 0u64.. {
                let at = t0 + offset + interval * i as u32;
                if at >= window.1 {
                    break;
                }
                if let Some(wait) = (start + at).checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Stamped when it is sent, not when it was due (the sleep
                // ends late by the bench's own scheduling, not the
                // server's; a send held back by the server still counts).
                let msg = ChatMessage {
                    user: Some(user.clone()),
                    message: text(start.elapsed().max(at), size),
                    ..Default::default()
                };
                if sender.send(&msg.encode_to_vec()).is_err() {
                    break;
                }
                if at >= window.0 {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            sender
        }));
    }
    let mut pubs = Vec::new();
    for (p, (channel, mut tx, mut rx)) in publishers.into_iter().enumerate() {
        let user = User {
            user_id: format!("pub{p}"),
            username: format!("publisher {p}"),
            room_id: String::new(),
        };
        if args.closed_loop {
            let (size, sent) = (args.size, sent_in_window.clone());
            pubs.push(smol::spawn(async move {
                Timer::at(start + t0).await;
                loop {
                    let at = start.elapsed();
                    if at >= window.1 {
                        break;
                    }
                    let msg = ChatMessage {
                        user: Some(user.clone()),
                        message: text(at, size),
                        ..Default::default()
                    };
                    if tx.send(&msg).await.is_err() {
                        break;
                    }
                    if at >= window.0 {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    // Its own echo (the stream gets every message of the
                    // room; the others' are skipped).
                    loop {
                        match rx.message::<ChatMessage>().await {
                            Ok(Some(m)) if m.message == msg.message => break,
                            Ok(Some(_)) => continue,
                            _ => return (channel, tx),
                        }
                    }
                }
                smol::spawn(
                    async move { while let Ok(Some(_)) = rx.message::<ChatMessage>().await {} },
                )
                .detach();
                (channel, tx)
            }));
            continue;
        }
        // Publishers read their own stream too (it gets every message).
        smol::spawn(async move { while let Ok(Some(_)) = rx.message::<ChatMessage>().await {} })
            .detach();
        let (size, rate, sent) = (args.size, args.rate, sent_in_window.clone());
        pubs.push(smol::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let offset = interval.mul_f64(p as f64 / 2.0);
            for i in 0u64.. {
                let at = t0 + offset + interval * i as u32;
                if at >= window.1 {
                    break;
                }
                Timer::at(start + at).await;
                // Stamped when it is sent, not when it was due: the timer
                // wakes this task 0.1-0.3 ms late here, which is the
                // bench's, not the server's. (A send held back by the
                // server still counts: it happens after the stamp.)
                let msg = ChatMessage {
                    user: Some(user.clone()),
                    message: text(start.elapsed().max(at), size),
                    ..Default::default()
                };
                if tx.send(&msg).await.is_err() {
                    break;
                }
                if at >= window.0 {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Keep the connection until the end: dropping it would drop
            // messages still queued on it.
            (channel, tx)
        }));
    }
    Timer::at(start + window.0).await;
    let cpu0 = args.server_pid.and_then(cpu_time);
    let wait0 = args.server_pid.and_then(run_queue_wait);
    let own0 = cpu_time(std::process::id());
    let others0: Vec<_> = others.iter().map(|(_, pid)| cpu_time(*pid)).collect();
    let seen0 = shared.seen.load(Ordering::Relaxed);
    Timer::at(start + window.1).await;
    let cpu1 = args.server_pid.and_then(cpu_time);
    let wait1 = args.server_pid.and_then(run_queue_wait);
    let own1 = cpu_time(std::process::id());
    let others1: Vec<_> = others.iter().map(|(_, pid)| cpu_time(*pid)).collect();
    let seen1 = shared.seen.load(Ordering::Relaxed);
    let mut publishers = Vec::new();
    for p in pubs {
        publishers.push(p.await);
    }
    let lean_senders: Vec<lean::Sender> = lean_threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .collect();
    Timer::at(until).await;
    shared.stop.store(true, Ordering::Relaxed);
    drop((stop_tx, stop_rx));
    let mut samples = Vec::new();
    for s in readers {
        samples.extend(
            s.await
                .into_iter()
                .map(|us| Duration::from_micros(u64::from(us))),
        );
    }
    let lat = Latency::new(samples);
    let expected = sent_in_window.load(Ordering::Relaxed) * args.subscribers as u64;
    let lost = expected.saturating_sub(lat.len() as u64);
    let deliveries = (seen1 - seen0) as f64 / args.seconds as f64;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!(
            "{:.2} us",
            (b - a).as_secs_f64() * 1e6 / (seen1 - seen0).max(1) as f64
        ),
        _ => "n/a".into(),
    };
    let rate = if args.closed_loop {
        "closed-loop".to_owned()
    } else {
        format!("{}/s", args.rate)
    };
    println!(
        "fanout {}: {} subs x {} pubs x {}, {} B: {:.0} deliveries/s; latency ms p50 {} p99 {} p99.9 {}; lost {} of {}; server cpu/delivery {}",
        args.label,
        args.subscribers,
        args.publishers,
        rate,
        args.size,
        deliveries,
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.pct(99.9)),
        lost,
        expected,
        cpu
    );
    // Where the machine's cores went: the server's threads waiting for one
    // (summed over threads, so up to the thread count per second), and
    // this load generator's own use of them.
    if let (Some(w0), Some(w1), Some(o0), Some(o1)) = (wait0, wait1, own0, own1) {
        let secs = args.seconds as f64;
        println!(
            "  machine: server threads waited for a CPU {:.0} ms/s; this load generator used {:.0}% of a core",
            // A thread that ended between the two readings takes its wait
            // with it: never below zero.
            w1.saturating_sub(w0).as_secs_f64() * 1e3 / secs,
            (o1 - o0).as_secs_f64() * 100.0 / secs
        );
    }
    for (((name, _), a), b) in others.iter().zip(others0).zip(others1) {
        if let (Some(a), Some(b)) = (a, b) {
            println!(
                "  cpu/delivery of {name}: {:.2} us",
                (b - a).as_secs_f64() * 1e6 / (seen1 - seen0).max(1) as f64
            );
        }
    }
    drop((keep, publishers, lean_senders));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_field_is_found_without_decoding() {
        let m = ChatMessage {
            user: Some(User {
                user_id: "u".repeat(200),
                username: "name".into(),
                room_id: String::new(),
            }),
            message: text(Duration::from_nanos(123_456_789), 64),
            room_id: "bench".into(),
            seq: 300,
            timestamp_us: 1 << 50,
            presence: 0,
            client_msg_id: "c-1".into(),
            epoch: 1 << 40,
            deleted: false,
            refused: None,
        };
        let bytes = m.encode_to_vec();
        let t = text_field(&bytes).unwrap();
        assert_eq!(t, m.message.as_bytes());
        assert_eq!(sent_at(t), Some(Duration::from_nanos(123_456_789)));
        assert_eq!(
            text_field(&ChatMessage::default().encode_to_vec()),
            Some(&b""[..])
        );
        let only_text = ChatMessage {
            message: "x".repeat(64),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(text_field(&only_text[..only_text.len() - 1]), None);
        assert_eq!(sent_at(b"probe"), None);
    }
}
