//! The Redis engine: several nodes share rooms, history and presence
//! through one Redis server (7 or later; not Redis Cluster, as the scripts
//! reach keys they compute).
//!
//! - **The log.** Each room's entries live in a stream whose entry id is
//!   the seq; one script per append checks the node's epoch, dedupes the
//!   (sender, client message id), numbers the entry after the room's last,
//!   trims the stream and publishes the entry on the room's channel, all
//!   atomically (key layout in `wire`). The writer thread
//!   ([`crate::writer`]) sends every append that queued during the previous
//!   batch in one pipeline, and reads go over a second connection.
//! - **Fan-out.** Each node subscribes to the channels of the rooms the
//!   chat has open there (a thread of its own, `feed`). The chat delivers
//!   seq = last + 1, drops what it has, and fills a gap from the log; a
//!   control thread (`nodes`) catches up after a reconnect and checks every
//!   room followed against its log each second, so that a quiet room does
//!   not hide a lost last message.
//! - **Presence** is shared ([`ChatConfig::shared_presence`] must be on):
//!   each arrival and departure here runs a script that announces it only
//!   if it changes whether the user is in the room anywhere; a node that
//!   dies is reaped by the others (`nodes` says how soon).
//! - **Failures.** A node that cannot reach Redis answers posts with
//!   UNAVAILABLE (outcome unknown: a retry with the same client message id
//!   is safe) and keeps its streams open; when Redis answers again it goes
//!   on, and the catch-up fills what its streams missed.
//!
//! [`ChatConfig::shared_presence`]: chat_sansio::chat::ChatConfig::shared_presence

mod feed;
mod link;
mod messages;
mod nodes;
mod scripts;
mod stats;
mod store;
pub mod wire;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use chat_sansio::chat::ChatEvent;

use crate::backend::Retention;
use crate::writer::{start_writer, Deliver, Requests, Writer};
pub use link::{RedisError, CONNECT_TIMEOUT, IO_TIMEOUT};
use messages::{Control, Sub};
use nodes::Nodes;
pub use nodes::{CHECK_EVERY, HEARTBEAT, NODE_TTL, REAP_EVERY};
pub use stats::RedisStats;
pub use store::RedisLog;

/// How a node reaches Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// What is kept: `messages_per_room` (about: streams are trimmed in
    /// whole blocks) and `logins` (one capped stream for successful and
    /// refused attempts), and the dedupe window. Age limits do not apply
    /// in Redis.
    pub retention: Retention,
    /// This node's name among the others (unique; default: made up of the
    /// process id and the start time).
    pub node: Option<String>,
}

/// The driver's side of the engine: hand it every chat event
/// ([`Redis::take`]).
pub struct Redis {
    writer: Writer,
    control: Sender<Control>,
    node: String,
    bans: Vec<String>,
    stats: Arc<RedisStats>,
}

/// The threads of the engine, to start once the driver can be answered.
pub struct RedisThreads {
    client: redis::Client,
    retention: Retention,
    requests: Requests,
    node: String,
    stats: Arc<RedisStats>,
    control: Receiver<Control>,
    /// For the subscriber, to tell the control thread what it follows.
    control_tx: Sender<Control>,
}

impl Redis {
    /// Checks that Redis answers at `config.url` (a node that cannot reach
    /// it at start is misconfigured more often than unlucky), and makes the
    /// engine; its threads start with [`RedisThreads::start`].
    pub fn connect(config: &RedisConfig) -> Result<(Redis, RedisThreads), RedisError> {
        let client =
            redis::Client::open(config.url.as_str()).map_err(|e| RedisError::new("url", e))?;
        let mut con = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| RedisError::new("connect", e))?;
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| RedisError::new("ping", e))?;
        let bans: Vec<String> = redis::cmd("SMEMBERS")
            .arg(wire::BANS)
            .query(&mut con)
            .map_err(|e| RedisError::new("bans", e))?;
        let node = config
            .node
            .clone()
            .unwrap_or_else(|| format!("{}-{:x}", std::process::id(), link::fresh_epoch()));
        let (writer, requests) = Writer::new();
        let (control_tx, control) = mpsc::channel();
        let stats = Arc::new(RedisStats::default());
        Ok((
            Redis {
                writer,
                control: control_tx.clone(),
                node: node.clone(),
                bans,
                stats: Arc::clone(&stats),
            },
            RedisThreads {
                client,
                retention: config.retention,
                requests,
                node,
                stats,
                control,
                control_tx: control_tx.clone(),
            },
        ))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The engine's counters (for metrics).
    pub fn stats(&self) -> Arc<RedisStats> {
        Arc::clone(&self.stats)
    }

    /// The writer's commits (pipelines of appends), for metrics.
    pub fn commit_stats(&self) -> Arc<crate::writer::CommitStats> {
        self.writer.stats()
    }

    /// The users banned when the node started (for `ChatConfig::banned`;
    /// later bans reach the chat as `ChatInput::Banned`).
    pub fn bans(&self) -> &[String] {
        &self.bans
    }

    /// Takes the engine's requests and notices (answered later, through the
    /// deliverer given to [`RedisThreads::start`]); returns the rest, for
    /// the console.
    pub fn take(&self, event: ChatEvent) -> Option<ChatEvent> {
        match event {
            ChatEvent::OpenRoom { room } => {
                // Subscribed first: what is published after the open is
                // then not missed (and what comes between, the checks find).
                let _ = self.control.send(Control::Open(room.clone()));
                self.writer.take(ChatEvent::OpenRoom { room })
            }
            ChatEvent::CloseRoom { room } => {
                let _ = self.control.send(Control::Close(room));
                None
            }
            ChatEvent::Presence {
                room,
                user,
                present,
            } => {
                // Kept by the control thread (to set Redis in line again),
                // made by the reader thread (in order with the reads).
                let _ = self
                    .control
                    .send(Control::Presence(room.clone(), user.clone(), present));
                self.writer.take(ChatEvent::Presence {
                    room,
                    user,
                    present,
                })
            }
            other => self.writer.take(other),
        }
    }
}

impl RedisThreads {
    /// Starts the writer, reader, subscriber and control threads; answers
    /// and what other nodes did go to the core through `deliver`. They end
    /// when the [`Redis`] is dropped or the core is gone.
    pub fn start<D>(self, deliver: D) -> std::io::Result<()>
    where
        D: Deliver + Clone + Send + 'static,
    {
        let RedisThreads {
            client,
            retention,
            requests,
            node,
            stats,
            control,
            control_tx,
        } = self;
        let presence_failed = Arc::new(AtomicBool::new(false));
        start_writer(
            RedisLog::new(client.clone(), retention, &node)
                .with_presence_flag(Arc::clone(&presence_failed)),
            requests,
            deliver.clone(),
        )?;
        let (subs_tx, subs) = mpsc::channel::<Sub>();
        let seen = Arc::new(Mutex::new(Default::default()));
        let feed_node = node.clone();
        let nodes = Nodes::new(
            node,
            link::Link::new(client.clone()),
            deliver.clone(),
            subs_tx,
            Arc::clone(&seen),
            presence_failed,
            Arc::clone(&stats),
        );
        std::thread::Builder::new()
            .name("redis-feed".into())
            .spawn(move || feed::run(&feed_node, client, subs, control_tx, seen, stats, deliver))?;
        std::thread::Builder::new()
            .name("redis-nodes".into())
            .spawn(move || nodes.run(control))?;
        Ok(())
    }
}
