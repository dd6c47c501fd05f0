//! The seeds' clients, in Rust on our transport: each sends on one task and
//! reads on another, as the seeds do, and exits non-zero on any error.

use std::time::Duration;

use chat_bins::say;
use chat_proto::routeguide::{paths, Point, RouteNote};
use chat_proto::tutorial::{NumberRequest, NumberResponse, ACCUMULATE_NUMBERS};
use chat_proto::BidiChatMessage;
use chat_sansio::Status;
use clap::{Parser, Subcommand};
use transport_h2::{CallOptions, Channel};

/// Run a seed's client flow.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    service: Service,
    /// Server address (default: the seed's port on 127.0.0.1).
    #[arg(long, global = true)]
    addr: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Service {
    /// Seed 002: send three messages, complete, print every answer.
    Chat,
    /// Seed 003: send 1..10 under a one-second deadline, print the sums.
    Numbers,
    /// Seed 004: send six notes, print every note received.
    Routeguide,
    /// gRPC's interop test client (doc/interop-test-descriptions.md in
    /// grpc/grpc), against a `grpc.testing.TestService` server.
    Interop {
        /// The case to run, by its name in the descriptions, or `all`.
        #[arg(long = "test_case")]
        test_case: String,
        /// The server's host.
        #[arg(long = "server_host", default_value = "127.0.0.1")]
        server_host: String,
        /// The server's port.
        #[arg(long = "server_port", default_value_t = 10000)]
        server_port: u16,
    },
}

/// Runs one interop case, or every one for `all`, printing each verdict.
async fn interop(channel: Channel, case: &str) -> Result<(), String> {
    let cases: Vec<&str> = if case == "all" {
        chat_bins::interop::CASES.to_vec()
    } else {
        vec![case]
    };
    for case in cases {
        chat_bins::interop::run(&channel, case)
            .await
            .map_err(|e| format!("{case} failed: {e}"))?;
        say(format_args!("{case}: passed"));
    }
    Ok(())
}

async fn chat(channel: Channel) -> Result<(), Status> {
    let (mut tx, mut rx) = channel
        .call(chat_proto::paths::BIDI_CHAT, CallOptions::default())
        .await?
        .split();
    let reader = smol::spawn(async move {
        while let Some(line) = rx.message::<String>().await? {
            say(format_args!("{line}"));
        }
        Ok::<(), Status>(())
    });
    for (name, message) in [("Sam", "Hi"), ("Ann", "Hey"), ("John", "Hello")] {
        tx.send(&BidiChatMessage {
            name: name.into(),
            message: message.into(),
        })
        .await?;
    }
    tx.close()?;
    reader.await
}

async fn numbers(channel: Channel) -> Result<(), Status> {
    let options = CallOptions::default().timeout(Duration::from_secs(1));
    let (mut tx, mut rx) = channel.call(ACCUMULATE_NUMBERS, options).await?.split();
    let sender = smol::spawn(async move {
        for num in 1..=10 {
            tx.send(&NumberRequest { num }).await?;
        }
        tx.close()
    });
    while let Some(res) = rx.message::<NumberResponse>().await? {
        say(format_args!("Sum: {}", res.sum));
    }
    sender.await
}

async fn routeguide(channel: Channel) -> Result<(), Status> {
    let (mut tx, mut rx) = channel
        .call(paths::ROUTE_CHAT, CallOptions::default())
        .await?
        .split();
    let reader = smol::spawn(async move {
        while let Some(n) = rx.message::<RouteNote>().await? {
            let p = n.location.unwrap_or_default();
            say(format_args!(
                "Got message {} at point({}, {})",
                n.message, p.latitude, p.longitude
            ));
        }
        Ok::<(), Status>(())
    });
    let notes = [
        (1, "First message"),
        (2, "Second message"),
        (3, "Third message"),
        (1, "Fourth message"),
        (2, "Fifth message"),
        (3, "Sixth message"),
    ];
    for (longitude, message) in notes {
        let note = RouteNote {
            location: Some(Point {
                latitude: 0,
                longitude,
            }),
            message: message.into(),
        };
        tx.send(&note).await?;
    }
    tx.close()?;
    reader.await
}

fn main() {
    chat_bins::init_runtime();
    let args = Args::parse();
    let (default_addr, name) = match &args.service {
        Service::Chat => ("127.0.0.1:9090".to_owned(), "chat"),
        Service::Numbers => ("127.0.0.1:50051".to_owned(), "numbers"),
        Service::Routeguide => ("127.0.0.1:10000".to_owned(), "routeguide"),
        Service::Interop {
            server_host,
            server_port,
            ..
        } => (format!("{server_host}:{server_port}"), "interop"),
    };
    let addr = args.addr.unwrap_or(default_addr);
    let result = smol::block_on(async {
        let channel = Channel::connect(&addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let status = match args.service {
            Service::Chat => chat(channel).await,
            Service::Numbers => numbers(channel).await,
            Service::Routeguide => routeguide(channel).await,
            Service::Interop { test_case, .. } => return interop(channel, &test_case).await,
        };
        status.map_err(|s| s.to_string())
    });
    if let Err(e) = result {
        eprintln!("seed-client {name}: {e}");
        std::process::exit(1);
    }
}
