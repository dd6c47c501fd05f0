//! Durable throughput: P publishers, each on its own connection and room,
//! each keeping W messages in flight (the next is sent when an echo comes
//! back), for a fixed time. With chat-server's store on, a message echoes
//! only once it is durable, so echoes per second are durable messages per
//! second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_proto::{paths, ChatMessage, User};
use transport_h2::{CallOptions, Channel};

use crate::stats::{ms, Latency};

/// Options of the durable benchmark.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Publishers, each on its own connection and room.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Messages each publisher keeps in flight.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Seconds to measure, after one second of warm-up.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Bytes of text in each message.
    #[arg(long, default_value_t = 64)]
    size: usize,
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let warm = start + Duration::from_secs(1);
    let end = warm + Duration::from_secs(args.seconds);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for p in 0..args.publishers {
        let channel = Channel::connect(&args.addr).await?;
        let room = format!("bench-durable-{p}");
        let options = CallOptions::default().metadata("chat-room", &room);
        let (mut tx, mut rx) = channel.call(paths::JOIN_CHAT, options).await?.split();
        let (size, in_flight, samples) = (args.size, args.in_flight, samples.clone());
        tasks.push(smol::spawn(async move {
            let _keep = channel;
            let user = User {
                user_id: format!("bench{p}"),
                username: format!("bench {p}"),
                room_id: String::new(),
            };
            let message = |sent: Instant| ChatMessage {
                user: Some(user.clone()),
                message: format!(
                    "{:020}{}",
                    sent.duration_since(start).as_nanos(),
                    "x".repeat(size.saturating_sub(20))
                ),
                ..Default::default()
            };
            let mut mine = Vec::new();
            for _ in 0..in_flight {
                tx.send(&message(Instant::now())).await?;
            }
            while let Some(m) = rx.message::<ChatMessage>().await? {
                let now = Instant::now();
                if m.presence != 0 {
                    continue;
                }
                let sent: u64 = m
                    .message
                    .get(..20)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if now >= warm && now < end {
                    mine.push(now.duration_since(start) - Duration::from_nanos(sent));
                }
                if now >= end {
                    break;
                }
                tx.send(&message(now)).await?;
            }
            samples.lock().unwrap().extend(mine);
            Ok::<(), chat_sansio::Status>(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    let lat = Latency::new(std::mem::take(&mut *samples.lock().unwrap()));
    let rate = lat.len() as f64 / args.seconds as f64;
    println!(
        "durable: {} publishers x {} in flight, {} B: {:.0} msgs/s; send-to-echo ms p50 {} p99 {} p99.9 {} max {}",
        args.publishers,
        args.in_flight,
        args.size,
        rate,
        ms(lat.pct(50.0)),
        ms(lat.pct(99.0)),
        ms(lat.pct(99.9)),
        ms(lat.pct(100.0))
    );
    Ok(())
}
