//! Reads: where a room stands, a range of entries, a page of history.

use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::PageBuilder;
use chat_sansio::limits::MAX_PAGE_BYTES;
use prost::Message as _;
use rusqlite::{params, OptionalExtension, Params};

use super::{SqliteStore, StoreError};
use crate::backend::RoomState;

/// Undecodable rows remembered (so logged once each); past this many, more
/// are left out without a log line.
const MAX_REPORTED: usize = 10_000;

impl SqliteStore {
    /// The oldest seq of `room` still stored, or `last_seq + 1`.
    fn first_seq(&self, room: &str, last_seq: u64) -> rusqlite::Result<u64> {
        let first: Option<i64> = self.db.query_row(
            "SELECT min(seq) FROM messages WHERE room = ?1",
            params![room],
            |r| r.get(0),
        )?;
        Ok(first.map_or(last_seq + 1, |f| f as u64))
    }

    pub(super) fn room_state(&self, room: &str) -> rusqlite::Result<RoomState> {
        let state: Option<(i64, i64)> = self
            .db
            .query_row(
                "SELECT last_seq, epoch FROM rooms WHERE room = ?1",
                params![room],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (last_seq, epoch) = match state {
            Some((last, epoch)) => (last as u64, epoch as u64),
            None => (0, self.epoch),
        };
        Ok(RoomState {
            epoch,
            last_seq,
            first_seq: self.first_seq(room, last_seq)?,
        })
    }

    pub(super) fn read_range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        let state = self.room_state(room).map_err(|e| self.read(e))?;
        let after = after.min(i64::MAX as u64) as i64;
        let up_to = up_to.min(i64::MAX as u64) as i64;
        let mut entries = Vec::new();
        let mut bytes = 0;
        // No LIMIT: rows are stepped one at a time, and a row left out
        // must not make the answer shorter than it could be.
        let read = self.each_entry(
            "SELECT seq, user_id, username, text, ts_us, client_msg_id, deleted FROM messages
             WHERE room = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
            params![room, after, up_to],
            room,
            state.epoch,
            |entry| {
                bytes += entry.encoded_len();
                let full_bytes = !entries.is_empty() && bytes > MAX_PAGE_BYTES;
                if entries.len() >= limit as usize || full_bytes {
                    return false;
                }
                entries.push(entry);
                true
            },
        );
        read.map_err(|e| self.read(e))?;
        Ok((entries, state.first_seq))
    }

    pub(super) fn read_page(
        &mut self,
        room: &str,
        before: u64,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let epoch = self.room_state(room).map_err(|e| self.read(e))?.epoch;
        // Rows come newest first and are read only as long as the page
        // has room (count and bytes): a page is all one call holds.
        let mut page = PageBuilder::new(limit as usize);
        let read = self.each_entry(
            "SELECT seq, user_id, username, text, ts_us, client_msg_id, deleted FROM messages
             WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC",
            params![room, before],
            room,
            epoch,
            |entry| page.push(entry),
        );
        read.map_err(|e| self.read(e))?;
        let (messages, more) = page.finish();
        Ok(HistoryPage {
            room_id: room.to_owned(),
            messages,
            more,
        })
    }

    /// Runs `sql` (its columns as [`row_message_at`] reads them) and offers
    /// each entry to `take` until it returns false. A row that cannot be
    /// decoded (damaged on disk: the same answer every time) is left out and
    /// logged once, rather than failing every read of its room.
    fn each_entry(
        &mut self,
        sql: &str,
        params: impl Params,
        room: &str,
        epoch: u64,
        mut take: impl FnMut(ChatMessage) -> bool,
    ) -> rusqlite::Result<()> {
        let SqliteStore {
            db, path, reported, ..
        } = self;
        let mut stmt = db.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            match row_message_at(row, room, seq, epoch) {
                Ok(entry) => {
                    if !take(entry) {
                        break;
                    }
                }
                Err(e) if undecodable(&e) => {
                    if reported.len() < MAX_REPORTED && reported.insert((room.to_owned(), seq)) {
                        tracing::error!(
                            "{}: room {room:?} seq {seq} cannot be decoded ({e}); \
                             it is left out of history and resumes",
                            path.display()
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An entry from a row of `seq, user_id, username, text, ts_us,
/// client_msg_id, deleted` (its stored seq in column 0, then as [`row_message`]).
fn row_message_at(
    row: &rusqlite::Row<'_>,
    room: &str,
    seq: u64,
    epoch: u64,
) -> rusqlite::Result<ChatMessage> {
    message_from(row, 1, room, seq, epoch)
}

/// An entry from a row of `user_id, username, text, ts_us, client_msg_id,
/// deleted`.
pub(super) fn row_message(
    row: &rusqlite::Row<'_>,
    room: &str,
    seq: u64,
    epoch: u64,
) -> rusqlite::Result<ChatMessage> {
    message_from(row, 0, room, seq, epoch)
}

/// An entry from `user_id, username, text, ts_us, client_msg_id, deleted` at
/// columns `first` onwards.
fn message_from(
    row: &rusqlite::Row<'_>,
    first: usize,
    room: &str,
    seq: u64,
    epoch: u64,
) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        user: Some(User {
            user_id: row.get(first)?,
            username: row.get(first + 1)?,
            room_id: String::new(),
        }),
        message: row.get(first + 2)?,
        room_id: room.to_owned(),
        seq,
        timestamp_us: row.get(first + 3)?,
        client_msg_id: row.get(first + 4)?,
        deleted: row.get::<_, i64>(first + 5)? != 0,
        epoch,
        ..ChatMessage::default()
    })
}

/// Whether `e` says a stored value is not what its column holds (invalid
/// UTF-8 in a text, a text where a number was): the row is damaged, and
/// reading it again gives the same error.
pub(super) fn undecodable(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::Utf8Error(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
    )
}
