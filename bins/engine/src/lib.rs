//! The chat's durable storage, for any driver of the core.
//!
//! In durable mode `chat_sansio::chat::Chat` asks for storage through its
//! events ([`ChatEvent::Persist`], [`ChatEvent::ReadHistory`],
//! [`ChatEvent::Login`]) and waits for answers as inputs
//! ([`ChatInput::Durable`], [`ChatInput::StoreFailed`],
//! [`ChatInput::HistoryPage`]). This crate answers them, in two halves:
//!
//! - [`writer`]: what any storage needs. A thread of its own takes the
//!   requests a [`Writer`] queues, writes everything that arrived during the
//!   previous write in one commit (group commit), tells the core what is
//!   durable or what failed (epochs), and answers history reads.
//! - [`Backend`]: where the data lives: [`sqlite::SqliteStore`] today.
//!
//! The answers go back through [`Deliver`], the driver's own way of feeding
//! the core (a channel of its runtime, typically), so nothing here names a
//! transport or an async runtime.
//!
//! ```no_run
//! use chat_engine::sqlite::SqliteStore;
//! use chat_engine::{start_writer, Backend, Retention, Writer};
//! use chat_sansio::chat::{Chat, ChatConfig, ChatInput};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut chat = Chat::new(ChatConfig { durable: true, ..ChatConfig::default() });
//! let mut store = SqliteStore::open("chat-data".as_ref(), Retention::default())?;
//! store.restore_into(&mut chat, 1000)?;
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
//! [`ChatEvent::Persist`]: chat_sansio::chat::ChatEvent::Persist
//! [`ChatEvent::ReadHistory`]: chat_sansio::chat::ChatEvent::ReadHistory
//! [`ChatEvent::Login`]: chat_sansio::chat::ChatEvent::Login
//! [`ChatInput::Durable`]: chat_sansio::chat::ChatInput::Durable
//! [`ChatInput::StoreFailed`]: chat_sansio::chat::ChatInput::StoreFailed
//! [`ChatInput::HistoryPage`]: chat_sansio::chat::ChatInput::HistoryPage

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod sqlite;
pub mod writer;

pub use backend::{Backend, Login, Retention};
pub use writer::{start_writer, Deliver, Requests, Writer};
