//! The interactive chat client: join a room, print who is there and its
//! history, then send typed lines while printing messages as they arrive.
//! It reconnects by itself, resumes the room where it stopped, and sends
//! each line until the server has it, exactly once. Commands: `/join ROOM`,
//! `/who`, `/history [N]`, `/help`, `/quit`. See the README, "The client".

mod client;
mod history;
mod link;
mod log;
mod retry;
mod rooms;
mod show;
mod streams;

use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_proto::User;
use chat_sansio::compression::Encoding;
use clap::Parser;
use futures_lite::future;
use smol::channel::{Receiver, Sender};
use transport_h2::{CallOptions, ChannelOptions};

use client::Client;
use link::{Event, Target};

/// Chat from the terminal.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Your user id (asked for if not given and you have no token).
    #[arg(long)]
    user_id: Option<String>,
    /// Your user name (asked for if not given and you have no token).
    #[arg(long)]
    username: Option<String>,
    /// Your token, sent as `authorization: Bearer <token>`; without one you
    /// are a guest.
    #[arg(long, env = "CHAT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The room to join first.
    #[arg(long, default_value = "room1")]
    room: String,
    /// Connect with TLS, trusting the certificates in this PEM file (the
    /// server's own, or the authority that signed it).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must hold (default: the host of
    /// --addr).
    #[arg(long, requires = "tls_ca")]
    tls_name: Option<String>,
    /// Compress what you send with this encoding (the server inflates it;
    /// its replies are inflated whatever this says).
    #[arg(long, value_parser = ["gzip", "deflate"])]
    compress: Option<String>,
    /// After this many milliseconds without hearing from the server, send
    /// it a PING; with no answer within --keepalive-timeout-ms the
    /// connection is taken for dead and made again (a cut network is
    /// otherwise found out only when you next type). 0: never (for servers
    /// that refuse frequent pings, as grpc-go's do below 5 minutes).
    #[arg(long, default_value_t = 60_000)]
    keepalive_ms: u64,
    /// How long a PING may go unanswered, with nothing heard meanwhile.
    #[arg(long, default_value_t = 20_000)]
    keepalive_timeout_ms: u64,
}

fn ask(prompt: &str) -> String {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

/// Where to connect, from the arguments.
fn target(args: &Args) -> Result<Target, String> {
    let mut options = CallOptions::default();
    if let Some(token) = &args.token {
        options = options.metadata("authorization", &format!("Bearer {token}"));
    }
    if let Some(name) = &args.compress {
        if let Ok(Some(enc)) = Encoding::parse(name.as_bytes()) {
            options = options.compression(enc);
        }
    }
    let tls = match &args.tls_ca {
        Some(ca) => {
            let config =
                transport_h2::tls::client_config_from_pem(ca).map_err(|e| e.to_string())?;
            let host = args
                .addr
                .rsplit_once(':')
                .map_or(args.addr.as_str(), |(h, _)| h);
            let name = args.tls_name.as_deref().unwrap_or(host);
            Some((config, name.trim_matches(['[', ']']).to_owned()))
        }
        None => None,
    };
    let connection = ChannelOptions {
        keepalive_time: (args.keepalive_ms > 0).then(|| Duration::from_millis(args.keepalive_ms)),
        keepalive_timeout: Duration::from_millis(args.keepalive_timeout_ms.max(1)),
    };
    Ok(Target {
        addr: args.addr.clone(),
        tls,
        options,
        connection,
    })
}

/// Reads standard input on a thread of its own (a blocking read ends at
/// the first end of file), each line an event.
fn read_stdin(events: Sender<Event>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match stdin.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw).into_owned();
                    if events.send_blocking(Event::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = events.send_blocking(Event::Eof);
    });
}

/// 64 random bits: the standard library's random hash keys (drawn from
/// the system's random source), over the time and the process id.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

/// Runs the client until it is done; its exit code.
async fn run(mut client: Client, events: Receiver<Event>) -> i32 {
    loop {
        if let Some(code) = client.done() {
            return code;
        }
        let next = async { events.recv().await.ok() };
        let event = match client.wake_at() {
            Some(at) => {
                let timer = async {
                    async_io::Timer::at(at).await;
                    Some(Event::Timer)
                };
                future::or(next, timer).await
            }
            None => next.await,
        };
        match event {
            Some(event) => client.handle(event).await,
            None => return 0,
        }
    }
}

fn main() {
    chat_bins::init_runtime();
    let args = Args::parse();
    let guest = args.token.is_none();
    let user_id = match &args.user_id {
        Some(id) => id.clone(),
        None if guest => ask("Enter your user ID: "),
        None => String::new(),
    };
    let username = match &args.username {
        Some(n) => n.clone(),
        None if guest => ask("Enter your username: "),
        None => String::new(),
    };
    let target = match target(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chat-client: {e}");
            std::process::exit(1);
        }
    };
    // Bounded: a flood from the server waits in its stream, not here.
    let (tx, rx) = smol::channel::bounded(256);
    read_stdin(tx.clone());
    let user = User {
        user_id,
        username,
        room_id: String::new(),
    };
    let client = Client::new(target, tx, user, args.room, random_seed());
    let code = smol::block_on(run(client, rx));
    std::process::exit(code);
}
