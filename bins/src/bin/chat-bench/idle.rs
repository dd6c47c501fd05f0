//! Idle clients: N connections, each with one open JoinChat stream and
//! nothing sent; reports the server's resident memory per client.

use std::time::Duration;

use async_io::Timer;
use chat_proto::{paths, ChatMessage};
use transport_h2::{CallOptions, Channel};

use crate::stats::rss;

/// Options of the idle-client benchmark.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Idle clients to open.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// The server's pid (required: memory is read from /proc).
    #[arg(long)]
    pub server_pid: u32,
    /// Seconds to hold the clients after the measurement (to look at the
    /// server meanwhile).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// A label for the output line.
    #[arg(long, default_value = "server")]
    pub label: String,
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let before = rss(args.server_pid).ok_or("cannot read the server's memory")?;
    let mut clients = Vec::with_capacity(args.clients);
    let options = CallOptions::default().metadata("chat-room", "idle");
    for i in 0..args.clients {
        let channel = Channel::connect(&args.addr)
            .await
            .map_err(|e| format!("client {i}: {e}"))?;
        let call = channel.call(paths::JOIN_CHAT, options.clone()).await?;
        clients.push((channel, call));
    }
    // Every stream registered: one message reaches the last client.
    let (_, last) = clients.last_mut().ok_or("no clients")?;
    let probe = crate::stats::probe();
    last.sender.send(&probe).await?;
    let _ = last.receiver.message::<ChatMessage>().await?;
    Timer::after(Duration::from_secs(1)).await;
    let after = rss(args.server_pid).ok_or("cannot read the server's memory")?;
    println!(
        "idle {}: {} clients (one connection and one open JoinChat stream each): server RSS {:.1} MiB -> {:.1} MiB, {:.1} KiB per client",
        args.label,
        args.clients,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / 1024.0 / args.clients as f64
    );
    Timer::after(Duration::from_secs(args.hold)).await;
    Ok(())
}
