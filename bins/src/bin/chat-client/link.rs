//! The client's calls: connecting, the JoinChatRoom call, JoinChat streams,
//! and the tasks that read them. Everything they hear comes to the client
//! as an [`Event`] on one channel, so one loop decides everything.

use std::sync::Arc;
use std::time::Duration;

use chat_proto::{paths, ChatMessage, ChatRoom, HistoryPage, HistoryRequest};
use chat_sansio::chat::{RESUME_METADATA, ROOM_METADATA};
use chat_sansio::{Code, Status};
use futures_lite::future;
use smol::channel::Sender;
use smol::Task;
use transport_h2::tls::rustls;
use transport_h2::{Call, CallOptions, CallReceiver, CallSender, Channel, ChannelOptions};

/// The longest a connection attempt may take (a server that does not
/// answer at all, rather than refusing).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client's loop hears.
pub enum Event {
    /// A line typed.
    Line(String),
    /// Standard input has ended (Ctrl-D).
    Eof,
    /// A connection attempt has ended: the channel and the JoinChatRoom
    /// call opened on it, or why not.
    Connected {
        attempt: u64,
        result: Result<(Channel, Call), Status>,
    },
    /// An answer on the JoinChatRoom call of connection `attempt`.
    Answer { attempt: u64, room: ChatRoom },
    /// The JoinChatRoom call of connection `attempt` has ended.
    AnswersEnded { attempt: u64, status: Status },
    /// A message on JoinChat stream `stream`.
    Chat { stream: u64, msg: ChatMessage },
    /// JoinChat stream `stream` has ended.
    ChatEnded { stream: u64, status: Status },
    /// A `/history` call for `room` has ended: the page, or why not.
    History {
        room: String,
        result: Result<HistoryPage, Status>,
    },
    /// A wait has ended (reconnecting, quitting).
    Timer,
}

/// Where the server is and how to reach it.
#[derive(Clone)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    /// TLS: the client configuration (the roots to trust) and the name the
    /// server's certificate must hold.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Metadata sent on every call (the token).
    pub options: CallOptions,
    /// The connection's options (keepalive).
    pub connection: ChannelOptions,
}

impl Target {
    /// Connects and opens the JoinChatRoom call.
    pub async fn connect(&self) -> Result<(Channel, Call), Status> {
        let unavailable = |e: std::io::Error| Status::new(Code::Unavailable, e.to_string());
        let connect = async {
            match &self.tls {
                Some((tls, name)) => {
                    let options = self.connection.clone();
                    Channel::connect_tls_with(&self.addr, name, Arc::clone(tls), options)
                        .await
                        .map_err(unavailable)
                }
                None => Channel::connect_with(&self.addr, self.connection.clone())
                    .await
                    .map_err(unavailable),
            }
        };
        let timeout = async {
            async_io::Timer::after(CONNECT_TIMEOUT).await;
            Err(Status::new(Code::Unavailable, "connecting timed out"))
        };
        let channel = future::or(connect, timeout).await?;
        let call = channel
            .call(paths::JOIN_CHAT_ROOM, self.options.clone())
            .await?;
        Ok((channel, call))
    }

    /// Opens a JoinChat stream pinned to `room`, resuming after `resume`
    /// (epoch, seq) if given.
    pub async fn open_chat(
        &self,
        channel: &Channel,
        room: &str,
        resume: Option<(u64, u64)>,
    ) -> Result<Call, Status> {
        let mut options = self.options.clone().metadata(ROOM_METADATA, room);
        if let Some((epoch, seq)) = resume {
            options = options.metadata(RESUME_METADATA, &format!("{epoch}:{seq}"));
        }
        channel.call(paths::JOIN_CHAT, options).await
    }

    /// The page of `room`'s history before `before_seq` (`limit` entries
    /// at most), as a History call.
    pub async fn history(
        &self,
        channel: &Channel,
        room: &str,
        before_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage, Status> {
        let options = self.options.clone().timeout(HISTORY_TIMEOUT);
        let (mut tx, mut rx) = channel.call(paths::HISTORY, options).await?.split();
        let request = HistoryRequest {
            room_id: room.to_owned(),
            before_seq,
            limit,
        };
        // A send refused because the call has ended leaves its status on
        // the receiver.
        if tx.send(&request).await.is_ok() {
            let _ = tx.close();
        }
        match rx.message::<HistoryPage>().await? {
            Some(page) => Ok(page),
            None => Err(Status::new(Code::Internal, "History ended without a page")),
        }
    }
}

/// How long a `/history` call may take.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the JoinChatRoom call's answers until it ends.
pub fn read_answers(attempt: u64, mut rx: CallReceiver, events: Sender<Event>) -> Task<()> {
    smol::spawn(async move {
        loop {
            let event = match rx.message::<ChatRoom>().await {
                Ok(Some(room)) => Event::Answer { attempt, room },
                Ok(None) => Event::AnswersEnded {
                    attempt,
                    status: Status::ok(),
                },
                Err(status) => Event::AnswersEnded { attempt, status },
            };
            let ended = matches!(event, Event::AnswersEnded { .. });
            if events.send(event).await.is_err() || ended {
                return;
            }
        }
    })
}

/// Reads JoinChat stream `stream` until it ends.
pub fn read_chat(stream: u64, mut rx: CallReceiver, events: Sender<Event>) -> Task<()> {
    smol::spawn(async move {
        loop {
            let event = match rx.message::<ChatMessage>().await {
                Ok(Some(msg)) => Event::Chat { stream, msg },
                Ok(None) => Event::ChatEnded {
                    stream,
                    status: Status::ok(),
                },
                Err(status) => Event::ChatEnded { stream, status },
            };
            let ended = matches!(event, Event::ChatEnded { .. });
            if events.send(event).await.is_err() || ended {
                return;
            }
        }
    })
}

/// An open JoinChat stream.
pub struct ChatStream {
    /// The room it is pinned to.
    pub room: String,
    /// It shows the room (the one we are in); otherwise it only carries
    /// our lines in a room we have left, and shows their echoes.
    pub shows_room: bool,
    /// Presence notices are not shown (we are switching away).
    pub quiet: bool,
    /// The point it resumed after (epoch, seq), if it did.
    pub resumed_from: Option<(u64, u64)>,
    /// Its sending half.
    pub sender: CallSender,
    /// Its reader; dropping it stops the reading.
    pub _reader: Task<()>,
}
