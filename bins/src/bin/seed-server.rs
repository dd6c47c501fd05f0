//! The seeds' other services on our transport, one per run:
//! `seed-server chat` (seed 002, port 9090), `seed-server numbers` (seed
//! 003, port 50051), `seed-server routeguide` (seed 004, port 10000), and
//! `seed-server interop` (gRPC's interop `grpc.testing.TestService`, port
//! 10000 as in grpc/grpc's interop server).

use std::path::PathBuf;

use std::time::Duration;

use chat_bins::{init_logging, init_runtime, say, stop_on_signal, stop_signals};
use chat_sansio::server::{Handler, Server as Core};
use chat_sansio::services::{BidiChat, Interop, Numbers, RouteGuide, RouteGuideConfig};
use clap::{Parser, Subcommand};
use futures_lite::future;
use transport_h2::{Server, ServerConfig};

/// How long open calls may go on after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serve one of the seeds' streaming services.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    service: Service,
    /// Address to listen on (default: the seed's port on 127.0.0.1).
    #[arg(long, global = true)]
    addr: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Service {
    /// Seed 002: `Chat.chat`, answering each message with "name: message".
    Chat,
    /// Seed 003: `tutorial.NumberService.AccumulateNumbers`, running sums.
    Numbers,
    /// Seed 004: `routeguide.RouteGuide` (RouteChat and the other three methods).
    Routeguide {
        /// Features as JSON, in the format of the gRPC examples'
        /// route_guide_db.json (default: a few built in).
        #[arg(long)]
        features: Option<PathBuf>,
    },
    /// gRPC's interop test server: `grpc.testing.TestService`
    /// (doc/interop-test-descriptions.md in grpc/grpc).
    Interop,
}

fn serve<H>(name: &str, addr: &str, handler: H) -> std::io::Result<()>
where
    H: Handler<Event = std::convert::Infallible> + Send + 'static,
    H::Input: Send + 'static,
{
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind(addr).await?;
        let server = Server::start(Core::new(handler), ServerConfig::default(), |e| match e {});
        let signals = stop_signals()?;
        say(format_args!(
            "seed-server {name} listening on {}",
            listener.local_addr()?
        ));
        let stop = stop_on_signal("seed-server", &server, signals, SHUTDOWN_GRACE);
        future::try_zip(server.serve(listener), stop).await?;
        Ok(())
    })
}

fn load_features(path: &PathBuf) -> Result<RouteGuideConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let features = serde_json::from_str::<Vec<serde_json::Value>>(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .map(|f| {
            let num = |v: &serde_json::Value, k: &str| {
                v.get(k).and_then(|x| x.as_i64()).unwrap_or(0) as i32
            };
            let loc = f.get("location").cloned().unwrap_or_default();
            chat_proto::routeguide::Feature {
                name: f
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_owned(),
                location: Some(chat_proto::routeguide::Point {
                    latitude: num(&loc, "latitude"),
                    longitude: num(&loc, "longitude"),
                }),
            }
        })
        .collect();
    Ok(RouteGuideConfig { features })
}

fn main() {
    let args = Args::parse();
    init_runtime();
    init_logging();
    let result = match args.service {
        Service::Chat => serve(
            "chat",
            args.addr.as_deref().unwrap_or("127.0.0.1:9090"),
            BidiChat::default(),
        ),
        Service::Numbers => serve(
            "numbers",
            args.addr.as_deref().unwrap_or("127.0.0.1:50051"),
            Numbers::default(),
        ),
        Service::Routeguide { features } => {
            let config = match &features {
                Some(path) => load_features(path).unwrap_or_else(|e| {
                    eprintln!("seed-server: {e}");
                    std::process::exit(1)
                }),
                None => RouteGuideConfig::default(),
            };
            let addr = args.addr.as_deref().unwrap_or("127.0.0.1:10000");
            serve("routeguide", addr, RouteGuide::new(config))
        }
        Service::Interop => {
            let addr = args.addr.as_deref().unwrap_or("127.0.0.1:10000");
            // pick_first_unary's server_id: the one address this server
            // listens on, with its process id to tell restarts apart.
            let id = format!("seed-server@{addr}#{}", std::process::id());
            serve("interop", addr, Interop::with_server_id(id))
        }
    };
    if let Err(e) = result {
        eprintln!("seed-server: {e}");
        std::process::exit(1);
    }
}
