//! The chat server: `ChatService` on gRPC over HTTP/2. With no flags it
//! listens on 127.0.0.1:50051 with the built-in policy (every room open to
//! everyone) and keeps its history and login records durably in
//! `./chat-data/chat.db`.

use std::path::PathBuf;
use std::time::Duration;

use chat_bins::console::Console;
use chat_bins::engines::Log;
use chat_bins::metrics::{self, ChatCounters, Sources};
use chat_bins::{
    config, init_logging, init_runtime, raise_descriptor_limit, reload, say, stop_on_signal,
    stop_signals,
};
use chat_engine::memory::MemoryLog;
use chat_engine::redis::{Redis, RedisConfig};
use chat_engine::sqlite::{self, NewDatabase, SqliteStore};
use chat_engine::{start_writer, Backend, Engine, Retention, Writer};
use chat_sansio::chat::policy::{hash_token, Policy};
use chat_sansio::chat::{Chat, ChatConfig};
use chat_sansio::server::{Server as Core, ServerConfig as CoreConfig};
use clap::{Parser, Subcommand};
use futures_lite::future;
use std::sync::Arc;
use transport_h2::{Server, ServerConfig};

/// Serve the chat.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Users and room permissions (TOML; see bins/chat.example.toml).
    /// Without it every room is open to everyone, guests included.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the database (chat.db: history and login records) is kept.
    #[arg(long, default_value = "chat-data", global = true)]
    data_dir: PathBuf,
    /// Make a new, empty chat.db even where files show one was (its -wal,
    /// -shm or chat.db.epoch): every room's numbering starts again in a new
    /// epoch. Without it a missing or empty chat.db there stops the server.
    #[arg(long)]
    allow_new_database: bool,
    /// Keep nothing on disk: history lives in memory only (at most 64 MiB,
    /// and 1 MiB per room) and is lost on restart, messages are delivered
    /// without waiting for a disk, and login attempts are only printed.
    #[arg(long)]
    memory: bool,
    /// Share rooms, history and presence with the other nodes on this Redis
    /// (`redis://HOST:PORT[/DB]`; also `redis = "..."` in the config file).
    /// History then lives in Redis, not in --data-dir. README, "Several
    /// nodes".
    #[arg(long, conflicts_with = "memory")]
    redis: Option<String>,
    /// This node's name among the others on Redis (default: made of the
    /// process id and the start time). Names must be unique.
    #[arg(long, requires = "redis")]
    node_name: Option<String>,
    /// Messages kept per room (the newest).
    #[arg(long, default_value_t = Retention::default().messages_per_room)]
    retain_messages: u64,
    /// Days the store keeps messages and login records (0: forever).
    #[arg(long, default_value_t = 365)]
    retain_days: u64,
    /// Successful login records the store keeps (the newest).
    #[arg(long, default_value_t = Retention::default().logins)]
    retain_logins: u64,
    /// Refused login attempts the store keeps (the newest), apart from the
    /// successful ones: a flood of refusals never pushes those out.
    #[arg(long, default_value_t = Retention::default().refused_logins)]
    retain_refused_logins: u64,
    /// Messages a second each user and each connection may post (0: no
    /// limit; default 20, or `[limits]` of the config file); over it a post
    /// is refused in band and the stream stays open. README, "Rate limits".
    #[arg(long)]
    messages_per_second: Option<u32>,
    /// Messages that may come at once beyond --messages-per-second
    /// (default 40).
    #[arg(long)]
    message_burst: Option<u32>,
    /// JoinChatRoom requests a second each connection may make (0: no
    /// limit; default 5); over it the call ends with RESOURCE_EXHAUSTED and a
    /// hint.
    #[arg(long)]
    joins_per_second: Option<u32>,
    /// Joins that may come at once beyond --joins-per-second (default 20).
    #[arg(long)]
    join_burst: Option<u32>,
    /// Recent messages sent to a user who joins a room.
    #[arg(long, default_value_t = chat_sansio::limits::DEFAULT_HISTORY_ON_JOIN)]
    history_on_join: usize,
    /// The longest a busy connection waits between two writes
    /// (microseconds). The wait is zero while the server has time to spare
    /// and grows only while it is busier than --pace-target, so that each
    /// write carries more messages; this caps it. README, "Benchmarks".
    #[arg(long, default_value_t = 40_000)]
    flush_us: u64,
    /// The share of its time (0 to 1) a shard thread may be busy before
    /// busy connections' writes wait for one another (see --flush-us).
    #[arg(long, default_value_t = transport_h2::ServerConfig::default().pace_target)]
    pace_target: f64,
    /// Threads that run connections (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// On SIGTERM or SIGINT, how long open calls may go on (milliseconds)
    /// before they are ended with UNAVAILABLE; a second signal stops at once.
    #[arg(long, default_value_t = 5_000)]
    shutdown_grace_ms: u64,
    /// A connection that has sent nothing for this long (milliseconds) gets
    /// a PING; one that does not answer within --keepalive-timeout-ms is
    /// closed, so a client whose network vanished leaves its rooms (0: no
    /// pings).
    #[arg(long, default_value_t = 60_000)]
    keepalive_ms: u64,
    /// How long a pinged client has to answer (milliseconds).
    #[arg(long, default_value_t = 20_000)]
    keepalive_timeout_ms: u64,
    /// Serve TLS (ALPN h2) with this PEM certificate chain, the server's
    /// certificate first; needs --tls-key. Without it: plaintext HTTP/2.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Most memory, in MiB, that peers can make the server hold for them:
    /// output waiting for clients, requests waiting for the core, partial
    /// requests. While it is spent, new calls get RESOURCE_EXHAUSTED and the
    /// calls furthest behind are cut. See the README's "Reliability".
    #[arg(long, default_value_t = 256)]
    memory_budget_mb: usize,
    /// Most connections open at once from one IP address (0: no limit).
    #[arg(long, default_value_t = 1024)]
    max_conns_per_peer: usize,
    /// Largest request message accepted, in bytes.
    #[arg(long, default_value_t = chat_sansio::limits::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: usize,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (README,
    /// "Metrics"). Without it: no metrics endpoint.
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Compress response messages of at least this many bytes (gzip, or
    /// deflate), for clients that list one in grpc-accept-encoding. Unset:
    /// never. Broadcast chat messages are never compressed (one frame is
    /// shared by every listener); JoinChatRoom answers, History pages and
    /// other replies to one call may be. README, "gRPC details".
    #[arg(long)]
    compress_min_bytes: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SHA-256 of a token, for the config file's token_sha256.
    HashToken {
        /// The token.
        token: String,
    },
    /// Copy the database (--data-dir) to DEST, a new file, as of one
    /// moment, while the server runs; start a server on a directory holding
    /// the copy as chat.db to restore it. A copy of chat.db alone (cp) may
    /// lack the commits still in chat.db-wal.
    Backup {
        /// The new file.
        dest: PathBuf,
    },
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("chat-server: {msg}");
    std::process::exit(1);
}

fn main() {
    let args = Args::parse();
    if let Some(Command::HashToken { token }) = &args.command {
        println!("{}", hash_token(token));
        return;
    }
    if let Some(Command::Backup { dest }) = &args.command {
        let bytes = sqlite::backup(&args.data_dir, dest).unwrap_or_else(|e| fail(e));
        println!(
            "backed up {} to {} ({bytes} bytes)",
            args.data_dir.join("chat.db").display(),
            dest.display()
        );
        return;
    }
    init_runtime();
    init_logging();
    raise_descriptor_limit();
    let policy = match &args.config {
        Some(path) => config::load(path).unwrap_or_else(|e| fail(e)),
        None => Policy::default(),
    };
    let redis_url = match (&args.redis, &args.config) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(path)) => config::redis_url(path).unwrap_or_else(|e| fail(e)),
        (None, None) => None,
    };
    let shared_presence = redis_url.is_some();
    // Rate limits: a flag, else the config file's [limits], else the
    // defaults (again on each SIGHUP).
    let limit_flags = config::LimitFlags {
        messages_per_second: args.messages_per_second,
        message_burst: args.message_burst,
        joins_per_second: args.joins_per_second,
        join_burst: args.join_burst,
    };
    let limits = limit_flags
        .resolve(args.config.as_deref())
        .unwrap_or_else(|e| fail(e));
    let retention = Retention {
        messages_per_room: args.retain_messages.max(1),
        max_age: (args.retain_days > 0).then(|| Duration::from_secs(args.retain_days * 24 * 3600)),
        logins: args.retain_logins,
        refused_logins: args.retain_refused_logins,
        ..Retention::default()
    };
    // The address first: a server that cannot listen creates nothing.
    let listener = std::net::TcpListener::bind(args.addr.as_str())
        .unwrap_or_else(|e| fail(format!("cannot listen on {}: {e}", args.addr)));
    let (writer, requests) = Writer::new();
    let mut redis_threads = None;
    let mut banned = Vec::new();
    let mut commit_stats = None;
    let mut redis_stats = None;
    let (log, store) = if let Some(url) = redis_url {
        let config = RedisConfig {
            url: url.clone(),
            retention,
            node: args.node_name.clone(),
        };
        let (redis, threads) = Redis::connect(&config)
            .unwrap_or_else(|e| fail(format!("cannot use Redis at {url}: {e}")));
        say(format_args!(
            "history: in Redis at {url}, shared with the other nodes (this one is {})",
            redis.node()
        ));
        redis_threads = Some(threads);
        banned = redis.bans().to_vec();
        commit_stats = Some(redis.commit_stats());
        redis_stats = Some(redis.stats());
        (Log::Redis(Box::new(redis)), None)
    } else if args.memory {
        let per_room = usize::try_from(retention.messages_per_room).unwrap_or(usize::MAX);
        let log = MemoryLog::new(per_room, retention);
        say(format_args!(
            "history: in memory only (--memory); nothing survives a restart"
        ));
        (Log::Memory(Box::new(Engine::new(log))), None)
    } else {
        let new = if args.allow_new_database {
            NewDatabase::Allowed
        } else {
            NewDatabase::WhereNoneWas
        };
        let mut store =
            SqliteStore::open_with(&args.data_dir, retention, new).unwrap_or_else(|e| fail(e));
        say(format_args!("history: {}", store.path().display()));
        banned = store.bans().unwrap_or_else(|e| fail(e));
        commit_stats = Some(writer.stats());
        (Log::Durable(writer), Some(store))
    };
    if !banned.is_empty() {
        say(format_args!("{} user(s) banned", banned.len()));
    }
    let chat = Chat::new(ChatConfig {
        history_on_join: args.history_on_join,
        policy,
        shared_presence,
        banned,
        limits,
    });
    let core = Core::with_config(
        CoreConfig {
            max_message_size: args.max_message_size,
            // Partial requests are part of what peers make us hold: at most
            // half the budget, and two of the largest per connection.
            max_decoding: args.memory_budget_mb.saturating_mul(1024 * 1024) / 2,
            max_decoding_per_conn: args.max_message_size.saturating_mul(2),
            compress_min_bytes: args.compress_min_bytes,
            ..CoreConfig::default()
        },
        chat,
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match transport_h2::tls::server_config_from_pem(cert, key) {
            Ok(tls) => Some(tls),
            Err(e) => fail(format!("TLS: {e}")),
        },
        _ => None,
    };
    let result = smol::block_on(async {
        let listener = smol::net::TcpListener::try_from(listener)?;
        let config = ServerConfig {
            flush_interval: Duration::from_micros(args.flush_us),
            pace_target: args.pace_target,
            threads: args.threads,
            keepalive_time: (args.keepalive_ms > 0)
                .then(|| Duration::from_millis(args.keepalive_ms)),
            keepalive_timeout: Duration::from_millis(args.keepalive_timeout_ms),
            memory_budget: args.memory_budget_mb.saturating_mul(1024 * 1024),
            max_connections_per_peer: args.max_conns_per_peer,
            ..ServerConfig::default()
        };
        let counters = Arc::new(ChatCounters::default());
        let server = Server::start(core, config, {
            let (mut console, mut log, counters) = (Console::new(), log, counters.clone());
            move |e| {
                counters.count(&e);
                log.on_event(&mut console, e)
            }
        });
        if let Some(addr) = &args.metrics_addr {
            let sources = Sources {
                server: server.stats(),
                chat: counters,
                commits: commit_stats,
                redis: redis_stats,
            };
            let bound = metrics::serve(addr, sources)
                .unwrap_or_else(|e| fail(format!("metrics: cannot listen on {addr}: {e}")));
            say(format_args!("metrics at http://{bound}/metrics"));
        }
        if let Some(store) = store {
            let inputs = server.inputs();
            start_writer(store, requests, move |input| inputs.send_blocking(input))?;
        }
        if let Some(threads) = redis_threads {
            let inputs = server.inputs();
            threads.start(move |input| inputs.send_blocking(input))?;
        }
        let signals = stop_signals()?;
        let hangups = reload::hangup_signals()?;
        smol::spawn(reload::reload_on_hangup(
            "chat-server",
            args.config.clone(),
            limit_flags,
            hangups,
            server.inputs(),
        ))
        .detach();
        say(format_args!(
            "chat-server listening on {}{}",
            listener.local_addr()?,
            if tls.is_some() { " (TLS)" } else { "" }
        ));
        let grace = Duration::from_millis(args.shutdown_grace_ms);
        let stop = stop_on_signal("chat-server", &server, signals, grace);
        let serve = async {
            match tls {
                Some(tls) => server.serve_tls(listener, tls).await,
                None => server.serve(listener).await,
            }
        };
        future::try_zip(serve, stop).await?;
        Ok::<_, std::io::Error>(())
    });
    // The console's last lines (the store may have printed after the
    // server stopped).
    chat_bins::stdout::flush();
    if let Err(e) = result {
        fail(e);
    }
}
