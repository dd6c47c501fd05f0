//! Answering the chat's engine requests from a [`Backend`]: inline, for a
//! backend as fast as memory ([`Engine`]), or through the writer thread
//! (`crate::writer`), which uses the same answers.

use std::error::Error;

use chat_sansio::chat::{ChatEvent, ChatInput, ReadToken};
use chat_sansio::Time;

use crate::backend::{AdminRecord, Appended, Backend, Login};

/// An engine that answers each request at once, on the caller's thread:
/// the driver hands it every chat event and feeds the answer straight back
/// to the core, in the same turn. For [`crate::memory::MemoryLog`].
pub struct Engine<B> {
    backend: B,
    last_prune: Option<Time>,
}

/// What [`Engine::serve`] made of an event.
#[derive(Debug)]
pub enum Served {
    /// An engine request: hand this answer to the core.
    Answer(ChatInput),
    /// Not a request (a log line, a record): here it is back, for the
    /// console.
    Event(ChatEvent),
}

/// How often retention runs at most, by the chat's clock (microseconds).
const PRUNE_EVERY_US: u64 = 10_000_000;

impl<B: Backend> Engine<B> {
    /// An engine over `backend`.
    pub fn new(backend: B) -> Engine<B> {
        Engine {
            backend,
            last_prune: None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Serves one chat event (see [`Served`]).
    pub fn serve(&mut self, event: ChatEvent) -> Served {
        match event {
            ChatEvent::OpenRoom { room } => Served::Answer(open(&mut self.backend, room)),
            ChatEvent::Append(request) => {
                let now = request.at;
                let result = self
                    .backend
                    .append(std::slice::from_ref(&request), &[], now);
                self.prune(now);
                Served::Answer(match result {
                    Ok(mut appended) if !appended.is_empty() => {
                        let Appended { entry, duplicate } = appended.swap_remove(0);
                        ChatInput::Committed {
                            id: request.id,
                            entry,
                            duplicate,
                        }
                    }
                    Ok(_) => ChatInput::AppendFailed {
                        id: request.id,
                        reason: "the engine stored nothing".into(),
                    },
                    Err(e) => ChatInput::AppendFailed {
                        id: request.id,
                        reason: cause(&e),
                    },
                })
            }
            ChatEvent::ReadRange {
                token,
                room,
                after,
                up_to,
                limit,
            } => Served::Answer(range(&mut self.backend, token, &room, after, up_to, limit)),
            ChatEvent::ReadHistory {
                token,
                room,
                before_seq,
                limit,
            } => Served::Answer(page(&mut self.backend, token, &room, before_seq, limit)),
            ChatEvent::Delete { id, room, seq } => {
                Served::Answer(delete(&mut self.backend, id, &room, seq))
            }
            ChatEvent::Presence {
                room,
                user,
                present,
            } => Served::Answer(ChatInput::Presence {
                room,
                user,
                present,
            }),
            other => {
                if let Some(record) = AdminRecord::from_event(&other) {
                    if let Err(e) = self.backend.record_admin(&record) {
                        tracing::warn!("{e}");
                    }
                }
                if let Some(login) = Login::from_event(&other) {
                    let at = login.at;
                    // Recorded with the next append's transaction where the
                    // backend keeps records at all.
                    let _ = self.backend.append(&[], &[login], at);
                }
                Served::Event(other)
            }
        }
    }

    fn prune(&mut self, now: Time) {
        let due = self
            .last_prune
            .is_none_or(|t| now.saturating_since(t).as_micros() >= u128::from(PRUNE_EVERY_US));
        if due {
            self.last_prune = Some(now);
            if let Err(e) = self.backend.prune(now) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// The answer to an `OpenRoom`.
pub(crate) fn open<B: Backend>(backend: &mut B, room: String) -> ChatInput {
    match backend.open_room(&room) {
        Ok(state) => ChatInput::RoomOpened {
            room,
            epoch: state.epoch,
            last_seq: state.last_seq,
            first_seq: state.first_seq,
        },
        Err(e) => ChatInput::OpenFailed {
            room,
            reason: cause(&e),
        },
    }
}

/// The answer to a `ReadRange`.
pub(crate) fn range<B: Backend>(
    backend: &mut B,
    token: ReadToken,
    room: &str,
    after: u64,
    up_to: u64,
    limit: u32,
) -> ChatInput {
    match backend.range(room, after, up_to, limit) {
        Ok((entries, first_seq)) => ChatInput::Range {
            token,
            entries: Ok(entries),
            first_seq,
        },
        Err(e) => ChatInput::Range {
            token,
            entries: Err(cause(&e)),
            first_seq: 0,
        },
    }
}

/// The answer to a `ReadHistory`.
pub(crate) fn page<B: Backend>(
    backend: &mut B,
    token: ReadToken,
    room: &str,
    before: u64,
    limit: u32,
) -> ChatInput {
    ChatInput::HistoryPage {
        token,
        page: backend.page(room, before, limit).map_err(|e| cause(&e)),
    }
}

/// The answer to a `Delete`.
pub(crate) fn delete<B: Backend>(backend: &mut B, id: u64, room: &str, seq: u64) -> ChatInput {
    ChatInput::Deleted {
        id,
        result: backend.delete(room, seq).map_err(|e| cause(&e)),
    }
}

/// What clients are told about a failure: the bare cause, without the
/// operator's context (the file), as [`Backend`] asks of its errors.
pub(crate) fn cause(e: &dyn Error) -> String {
    match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}
