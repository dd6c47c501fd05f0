//! The machine's floor for fan-out: what writing to and reading from N
//! loopback TCP sockets costs the kernel, with no gRPC, HTTP/2 or server in
//! between. A writer thread writes one buffer of M 120-byte messages to
//! each socket once per interval (all sockets in one burst, or in G evenly
//! spaced bursts, or one by one spread over the interval), and one reader
//! thread reads them all from a level-triggered epoll set, as the fan-out
//! bench's reader does. Reports each side's CPU time per write (from
//! /proc/thread-self/stat) and the delivery latency the schedule alone
//! causes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

use crate::stats::{ms, Latency};

/// Bytes of one message, as a 64-byte chat message comes to on the wire.
const MESSAGE: usize = 120;

/// Options of the floor measurement.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Sockets (each a loopback TCP connection).
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Microseconds between two writes to one socket.
    #[arg(long, default_value_t = 30_000)]
    pub interval_us: u64,
    /// Messages per write.
    #[arg(long, default_value_t = 12)]
    pub messages: usize,
    /// Bursts per interval: 1 writes every socket back to back, N (the
    /// number of sockets) spreads the writes one by one.
    #[arg(long, default_value_t = 1)]
    pub bursts: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

fn pairs(n: usize) -> std::io::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut writers, mut readers) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let r = TcpStream::connect(addr)?;
        let (w, _) = listener.accept()?;
        w.set_nodelay(true)?;
        r.set_nodelay(true)?;
        r.set_nonblocking(true)?;
        writers.push(w);
        readers.push(r);
    }
    Ok((writers, readers))
}

/// Reads every socket until `stop`; returns its CPU time, the latencies
/// (each message carries its send time) and the reads that brought bytes.
fn read_all(
    mut socks: Vec<TcpStream>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Duration, Vec<Duration>, u64)> {
    let poller = Poller::new()?;
    for (i, s) in socks.iter().enumerate() {
        // SAFETY: every socket is deleted from the poller before it is
        // dropped, at the end of this function.
        unsafe { poller.add_with_mode(s, Event::readable(i), PollMode::Level)? };
    }
    let mut events = Events::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut lat, mut reads) = (Vec::new(), 0u64);
    let cpu0 = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(50)))?;
        for ev in events.iter() {
            let Ok(n) = socks[ev.key].read(&mut buf) else {
                continue;
            };
            reads += 1;
            let now = start.elapsed();
            // Writes are whole messages and small: a read never splits one.
            for m in buf[..n - n % MESSAGE].chunks(MESSAGE) {
                let sent = u64::from_le_bytes(m[..8].try_into().unwrap_or_default());
                lat.push(now.saturating_sub(Duration::from_nanos(sent)));
            }
        }
    }
    let cpu = thread_cpu() - cpu0;
    for s in &socks {
        poller.delete(s)?;
    }
    socks.clear();
    Ok((cpu, lat, reads))
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (mut writers, readers) = pairs(args.sockets)?;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_all(readers, start, stop))
    };
    let n = args.sockets;
    let bursts = args.bursts.clamp(1, n.max(1));
    let interval = Duration::from_micros(args.interval_us);
    let mut msg = vec![b'x'; MESSAGE * args.messages.max(1)];
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let cpu0 = thread_cpu();
    let mut writes = 0u64;
    let mut tick = Instant::now();
    while tick < end {
        for b in 0..bursts {
            let at = tick + interval * b as u32 / bursts as u32;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sent = (start.elapsed().as_nanos() as u64).to_le_bytes();
            for m in msg.chunks_mut(MESSAGE) {
                m[..8].copy_from_slice(&sent);
            }
            for w in &mut writers[b * n / bursts..(b + 1) * n / bursts] {
                w.write_all(&msg)?;
                writes += 1;
            }
        }
        tick += interval;
    }
    let cpu = thread_cpu() - cpu0;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (read_cpu, lat, reads) = reader.join().map_err(|_| "reader panicked")??;
    let lat = Latency::new(lat);
    let per = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "floor: {} sockets, {} x {} B per write every {} us in {} bursts: {:.0} writes/s; \
         writer {:.2} us/write ({:.3} us/message); reader {:.2} us/read, {:.2} writes/read; \
         latency ms p50 {} p99 {}",
        n,
        args.messages,
        MESSAGE,
        args.interval_us,
        bursts,
        writes as f64 / args.seconds as f64,
        per(cpu, writes),
        per(cpu, writes * args.messages as u64),
        per(read_cpu, reads),
        writes as f64 / reads.max(1) as f64,
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
    );
    Ok(())
}
