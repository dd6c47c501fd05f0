//! The chat server: `ChatService` on gRPC over HTTP/2. With no flags it
//! listens on 127.0.0.1:50051 with the built-in policy (every room open to
//! everyone) and keeps its records in `./chat-data`.

use std::path::PathBuf;

use chat_bins::records::Recorder;
use chat_bins::{config, init_logging, init_runtime, say};
use chat_sansio::chat::policy::{hash_token, Policy};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent};
use chat_sansio::server::{Server as Core, ServerConfig as CoreConfig};
use clap::{Parser, Subcommand};
use transport_h2::{Server, ServerConfig};

/// Serve the chat.
#[derive(Parser, Debug)]
#[command(version, about)]
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
    /// Where login and message records are kept.
    #[arg(long, default_value = "chat-data")]
    data_dir: PathBuf,
    /// Messages each room keeps in memory.
    #[arg(long, default_value_t = chat_sansio::limits::DEFAULT_HISTORY_CAPACITY)]
    history: usize,
    /// Recent messages sent to a user who joins a room.
    #[arg(long, default_value_t = chat_sansio::limits::DEFAULT_HISTORY_ON_JOIN)]
    history_on_join: usize,
    /// Largest request message accepted, in bytes.
    #[arg(long, default_value_t = chat_sansio::limits::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SHA-256 of a token, for the config file's token_sha256.
    HashToken {
        /// The token.
        token: String,
    },
}

fn on_event(records: &Recorder, event: ChatEvent) {
    match &event {
        ChatEvent::Message { user_id, text, .. } => {
            say(format_args!("Received message from {user_id}: {text}"));
        }
        ChatEvent::Login {
            user_id,
            room,
            outcome: Ok(()),
            ..
        } => say(format_args!("User {user_id} joined the chat room {room}.")),
        ChatEvent::Login {
            user_id,
            room,
            outcome: Err(status),
            peer,
            ..
        } => say(format_args!(
            "Login refused: user {user_id:?}, room {room:?}, peer {}: {status}",
            peer.as_deref().unwrap_or("-")
        )),
    }
    records.record(&event);
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
    init_runtime();
    init_logging();
    let policy = match &args.config {
        Some(path) => config::load(path).unwrap_or_else(|e| fail(e)),
        None => Policy::default(),
    };
    let records = Recorder::start(&args.data_dir)
        .unwrap_or_else(|e| fail(format!("data directory {}: {e}", args.data_dir.display())));
    let chat = Chat::new(ChatConfig {
        history_capacity: args.history,
        history_on_join: args.history_on_join,
        policy,
    });
    let core = Core::with_config(
        CoreConfig {
            max_message_size: args.max_message_size,
        },
        chat,
    );
    let result = smol::block_on(async {
        let listener = smol::net::TcpListener::bind(args.addr.as_str()).await?;
        let server = Server::start(core, ServerConfig::default(), move |e| {
            on_event(&records, e)
        });
        say(format_args!(
            "chat-server listening on {}",
            listener.local_addr()?
        ));
        server.serve(listener).await
    });
    if let Err(e) = result {
        fail(e);
    }
}
