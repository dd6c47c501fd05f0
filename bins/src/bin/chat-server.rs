//! The chat server: `ChatService` on gRPC over HTTP/2, with embedded
//! defaults (127.0.0.1:50051, room `room1` open to everyone).

use chat_bins::{init_logging, init_runtime, say};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent};
use chat_sansio::server::{Server as Core, ServerConfig as CoreConfig};
use clap::Parser;
use transport_h2::{Server, ServerConfig};

/// Serve the chat.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
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

fn on_event(event: ChatEvent) {
    match event {
        ChatEvent::Message { user_id, text, .. } => {
            say(format_args!("Received message from {user_id}: {text}"));
        }
        ChatEvent::Joined { user_id, room, .. } => {
            say(format_args!("User {user_id} joined the chat room {room}."));
        }
    }
}

fn main() {
    let args = Args::parse();
    init_runtime();
    init_logging();
    let chat = Chat::new(ChatConfig {
        history_capacity: args.history,
        history_on_join: args.history_on_join,
    });
    let core = Core::with_config(
        CoreConfig {
            max_message_size: args.max_message_size,
        },
        chat,
    );
    let result = smol::block_on(async {
        let listener = smol::net::TcpListener::bind(args.addr.as_str()).await?;
        let server = Server::start(core, ServerConfig::default(), on_event);
        say(format_args!(
            "chat-server listening on {}",
            listener.local_addr()?
        ));
        server.serve(listener).await
    });
    if let Err(e) = result {
        eprintln!("chat-server: {e}");
        std::process::exit(1);
    }
}
