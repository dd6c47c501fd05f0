//! `chat-bench`: a load generator speaking plain gRPC to any ChatService
//! server (ours or the tonic baseline). Every number it reports is measured
//! here, in this run; see the README ("Benchmarks") for commands and
//! results.
//!
//! - `durable`: closed-loop publishers, each keeping messages in flight on
//!   its own room, measuring delivered (so, with chat-server's default
//!   store, durable) messages per second and the send-to-echo latency.
//! - `fanout`: subscribers and publishers on a fixed schedule in one room:
//!   deliveries per second, latency percentiles, loss, server CPU.
//! - `idle`: idle clients, the server's memory per client.
//! - `floor`: no server: what loopback writes and reads cost this machine's
//!   kernel, the floor under any fan-out.

mod durable;
mod fanout;
mod floor;
mod idle;
mod lean;
mod stats;

use clap::{Parser, Subcommand};

/// Benchmark a ChatService server.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Durable throughput: publishers with messages in flight.
    Durable(durable::Args),
    /// Fan-out to many subscribers at a fixed publishing rate.
    Fanout(fanout::Args),
    /// Memory per idle client.
    Idle(idle::Args),
    /// The kernel's cost of loopback fan-out, without a server.
    Floor(floor::Args),
}

fn main() {
    chat_bins::init_runtime();
    let args = Args::parse();
    let result = match args.mode {
        Mode::Durable(a) => smol::block_on(durable::run(a)),
        Mode::Fanout(a) => smol::block_on(fanout::run(a)),
        Mode::Idle(a) => smol::block_on(idle::run(a)),
        Mode::Floor(a) => floor::run(a),
    };
    if let Err(e) = result {
        eprintln!("chat-bench: {e}");
        std::process::exit(1);
    }
}
