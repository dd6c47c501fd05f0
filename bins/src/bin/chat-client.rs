//! The interactive chat client: join, print the room and its history, then
//! send typed lines while printing messages from others as they arrive.

use std::io::{BufRead, Write};

use chat_bins::say;
use chat_proto::{paths, ChatMessage, ChatRoom, User};
use chat_sansio::Status;
use clap::Parser;
use futures_lite::{AsyncBufReadExt, StreamExt};
use transport_h2::{CallOptions, Channel};

/// Chat from the terminal.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Your user id (asked for if not given).
    #[arg(long)]
    user_id: Option<String>,
    /// Your user name (asked for if not given).
    #[arg(long)]
    username: Option<String>,
}

fn ask(prompt: &str) -> String {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let user = User {
        user_id: args.user_id.unwrap_or_else(|| ask("Enter your user ID: ")),
        username: args
            .username
            .unwrap_or_else(|| ask("Enter your username: ")),
    };
    let channel = Channel::connect(&args.addr).await?;

    let mut join = channel
        .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
        .await?;
    join.sender.send(&user).await?;
    let room: ChatRoom = join
        .receiver
        .message()
        .await?
        .ok_or_else(|| Status::new(chat_sansio::Code::Internal, "no ChatRoom in reply"))?;
    join.sender.close()?;
    while join.receiver.message::<ChatRoom>().await?.is_some() {}
    say(format_args!("Joined chat room {}", room.room_id));
    let names: Vec<_> = room.users.iter().map(|u| u.username.as_str()).collect();
    say(format_args!("Present: {}", names.join(", ")));
    for m in &room.history {
        let name = m.user.as_ref().map_or("?", |u| u.username.as_str());
        say(format_args!("{name}: {}", m.message));
    }

    let (mut tx, mut rx) = channel
        .call(paths::JOIN_CHAT, CallOptions::default())
        .await?
        .split();
    let me = user.user_id.clone();
    let printer = smol::spawn(async move {
        loop {
            match rx.message::<ChatMessage>().await {
                Ok(Some(m)) => {
                    let from = m.user.unwrap_or_default();
                    if from.user_id != me {
                        say(format_args!("{}: {}", from.username, m.message));
                    }
                }
                Ok(None) => return Ok(()),
                Err(status) => return Err(status),
            }
        }
    });
    let mut lines = smol::io::BufReader::new(smol::Unblock::new(std::io::stdin())).lines();
    while let Some(line) = lines.next().await {
        let text = line?;
        if text.trim().is_empty() {
            continue;
        }
        let msg = ChatMessage {
            user: Some(user.clone()),
            message: text,
        };
        tx.send(&msg).await?;
    }
    tx.close()?;
    printer.await?;
    Ok(())
}

fn main() {
    chat_bins::init_runtime();
    let args = Args::parse();
    if let Err(e) = smol::block_on(run(args)) {
        eprintln!("chat-client: {e}");
        std::process::exit(1);
    }
}
