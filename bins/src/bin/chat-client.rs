//! The interactive chat client: join a room, print who is there and its
//! history, then send typed lines while printing messages as they arrive.
//! Commands: `/join ROOM`, `/who`, `/quit`, `/help`.

use std::io::{BufRead, Write};

use chat_bins::say;
use chat_proto::{paths, ChatMessage, ChatRoom, Presence, User};
use chat_sansio::{Code, Status};
use clap::Parser;
use futures_lite::{AsyncBufReadExt, StreamExt};
use smol::Task;
use transport_h2::{Call, CallOptions, CallSender, Channel};

/// Chat from the terminal.
#[derive(Parser, Debug)]
#[command(version, about)]
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
}

const HELP: &str =
    "commands: /join ROOM (switch rooms), /who (who is here), /quit; anything else is sent";

fn ask(prompt: &str) -> String {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

fn name(user: Option<&User>) -> &str {
    match user {
        Some(u) if !u.username.is_empty() => &u.username,
        Some(u) => &u.user_id,
        None => "?",
    }
}

struct Session {
    channel: Channel,
    options: CallOptions,
    user: User,
    room: String,
    rooms: Option<Call>,
    chat: Option<(CallSender, Task<Status>)>,
}

impl Session {
    /// Joins (or switches to) `room` and prints the room; on refusal the
    /// previous room stays.
    async fn join(&mut self, room: &str, show_history: bool) -> Result<ChatRoom, Status> {
        if self.rooms.is_none() {
            let call = self
                .channel
                .call(paths::JOIN_CHAT_ROOM, self.options.clone())
                .await?;
            self.rooms = Some(call);
        }
        let call = self.rooms.as_mut().expect("opened above");
        let request = User {
            room_id: room.to_owned(),
            ..self.user.clone()
        };
        let reply = async {
            call.sender.send(&request).await?;
            call.receiver
                .message::<ChatRoom>()
                .await?
                .ok_or_else(|| Status::new(Code::Internal, "the server sent no ChatRoom"))
        };
        let result = reply.await;
        let room = match result {
            Ok(room) => room,
            Err(status) => {
                // The call has ended; the next join opens a new one.
                self.rooms = None;
                return Err(status);
            }
        };
        self.room.clone_from(&room.room_id);
        if show_history {
            say(format_args!("Joined chat room {}", room.room_id));
            print_users(&room);
            for m in &room.history {
                say(format_args!("{}: {}", name(m.user.as_ref()), m.message));
            }
        }
        Ok(room)
    }

    /// Opens the JoinChat stream (it follows this connection's room) and a
    /// task printing what arrives on it.
    async fn open_chat(&mut self) -> Result<(), Status> {
        let (tx, mut rx) = self
            .channel
            .call(paths::JOIN_CHAT, self.options.clone())
            .await?
            .split();
        let me = self.user.user_id.clone();
        let printer = smol::spawn(async move {
            loop {
                match rx.message::<ChatMessage>().await {
                    Ok(Some(m)) if m.presence != Presence::None as i32 => {
                        say(format_args!("* {}", m.message));
                    }
                    Ok(Some(m)) => {
                        let from = m.user.as_ref().map_or("", |u| u.user_id.as_str());
                        if from != me || me.is_empty() {
                            say(format_args!(
                                "[{}] {}: {}",
                                m.room_id,
                                name(m.user.as_ref()),
                                m.message
                            ));
                        }
                    }
                    Ok(None) => return Status::ok(),
                    Err(status) => return status,
                }
            }
        });
        self.chat = Some((tx, printer));
        Ok(())
    }

    async fn send(&mut self, text: String) -> Result<(), Status> {
        if self
            .chat
            .as_ref()
            .is_none_or(|(_, printer)| printer.is_finished())
        {
            if let Some((_, printer)) = self.chat.take() {
                let status = printer.await;
                if !status.is_ok() {
                    say(format_args!("(chat stream ended: {status})"));
                }
            }
            self.open_chat().await?;
        }
        let (tx, _) = self.chat.as_mut().expect("opened above");
        let msg = ChatMessage {
            user: Some(self.user.clone()),
            message: text,
            ..Default::default()
        };
        tx.send(&msg).await
    }
}

fn print_users(room: &ChatRoom) {
    let names: Vec<&str> = room.users.iter().map(|u| name(Some(u))).collect();
    say(format_args!(
        "Present in {}: {}",
        room.room_id,
        names.join(", ")
    ));
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let guest = args.token.is_none();
    let user_id = match args.user_id {
        Some(id) => id,
        None if guest => ask("Enter your user ID: "),
        None => String::new(),
    };
    let username = match args.username {
        Some(n) => n,
        None if guest => ask("Enter your username: "),
        None => String::new(),
    };
    let mut options = CallOptions::default();
    if let Some(token) = &args.token {
        options = options.metadata("authorization", &format!("Bearer {token}"));
    }
    let channel = match &args.tls_ca {
        Some(ca) => {
            let tls = transport_h2::tls::client_config_from_pem(ca)?;
            let host = args
                .addr
                .rsplit_once(':')
                .map_or(args.addr.as_str(), |(h, _)| h);
            let name = args.tls_name.as_deref().unwrap_or(host);
            Channel::connect_tls(&args.addr, name.trim_matches(['[', ']']), tls).await?
        }
        None => Channel::connect(&args.addr).await?,
    };
    let mut session = Session {
        channel,
        options,
        user: User {
            user_id,
            username,
            room_id: String::new(),
        },
        room: String::new(),
        rooms: None,
        chat: None,
    };
    session.join(&args.room, true).await?;
    session.open_chat().await?;
    say(format_args!("{HELP}"));

    let mut lines = smol::io::BufReader::new(smol::Unblock::new(std::io::stdin())).lines();
    while let Some(line) = lines.next().await {
        let line = line?;
        let line = line.trim();
        let result = match line.split_once(' ').unwrap_or((line, "")) {
            ("", _) => Ok(()),
            ("/quit", _) => break,
            ("/help", _) => {
                say(format_args!("{HELP}"));
                Ok(())
            }
            ("/who", _) => {
                let room = session.room.clone();
                session.join(&room, false).await.map(|r| print_users(&r))
            }
            ("/join", room) if !room.trim().is_empty() => {
                session.join(room.trim(), true).await.map(|_| ())
            }
            (cmd, _) if cmd.starts_with('/') => {
                say(format_args!("unknown command; {HELP}"));
                Ok(())
            }
            _ => session.send(line.to_owned()).await,
        };
        if let Err(status) = result {
            say(format_args!("error: {status}"));
        }
    }
    if let Some((mut tx, printer)) = session.chat.take() {
        let _ = tx.close();
        let _ = printer.await;
    }
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
