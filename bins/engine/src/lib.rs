//! The chat's engines: where each room's log lives, for any driver of the
//! core.
//!
//! `chat_sansio::chat::Chat` numbers nothing itself: it asks an engine, by
//! its events ([`ChatEvent::OpenRoom`], [`ChatEvent::Append`],
//! [`ChatEvent::ReadRange`], [`ChatEvent::ReadHistory`]), and the engine
//! answers with inputs (the contract is in `chat_sansio::chat`'s events).
//! This crate answers them:
//!
//! - [`Backend`]: where the data lives: [`memory::MemoryLog`] (bounded, for
//!   `--memory` and tests), [`sqlite::SqliteStore`] (durable: WAL,
//!   `synchronous=FULL`) and [`redis::RedisLog`] (several nodes sharing
//!   rooms; [`redis::Redis`] adds their fan-out and presence).
//! - [`Engine`]: answers each request at once, on the driver's thread (for
//!   the memory log: the answer goes back to the core in the same turn).
//! - [`writer`]: answers from a thread of its own, in batches: every append
//!   that arrived while the previous batch was being written goes into one
//!   transaction (group commit). The answers go back through [`Deliver`],
//!   the driver's own way of feeding the core, so nothing here names a
//!   transport or an async runtime.
//!
//! ```no_run
//! use chat_engine::sqlite::SqliteStore;
//! use chat_engine::{start_writer, Retention, Writer};
//! use chat_sansio::chat::ChatInput;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open("chat-data".as_ref(), Retention::default())?;
//! let (writer, requests) = Writer::new();
//! // The driver's queue into the core; here a plain channel.
//! let (inputs, _core_reads) = std::sync::mpsc::sync_channel::<ChatInput>(1024);
//! start_writer(store, requests, move |input| inputs.send(input).is_ok())?;
//! // Then, for each event the core emits: print what `take` hands back.
//! # let event = None;
//! if let Some(event) = event.and_then(|e| writer.take(e)) {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`ChatEvent::OpenRoom`]: chat_sansio::chat::ChatEvent::OpenRoom
//! [`ChatEvent::Append`]: chat_sansio::chat::ChatEvent::Append
//! [`ChatEvent::ReadRange`]: chat_sansio::chat::ChatEvent::ReadRange
//! [`ChatEvent::ReadHistory`]: chat_sansio::chat::ChatEvent::ReadHistory

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod engine;
pub mod memory;
pub mod redis;
pub mod sqlite;
pub mod writer;

pub use backend::{tombstone, AdminRecord, Appended, Backend, Login, Retention, RoomState};
pub use engine::{Engine, Served};
pub use writer::{start_writer, CommitStats, Deliver, Requests, Writer, COMMIT_BUCKETS_US};
