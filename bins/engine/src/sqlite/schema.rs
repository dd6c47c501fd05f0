//! The tables, the columns added since the first schema, and the
//! database's epoch.

use rusqlite::{params, Connection};

/// Every table and index, made if missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    epoch    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room          TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    ts_us         INTEGER NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (
    room          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    ts_us         INTEGER NOT NULL,
    PRIMARY KEY (room, user_id, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_by_time ON dedupe (ts_us);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (ts_us);
CREATE TABLE IF NOT EXISTS logins (
    id      INTEGER PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    peer    TEXT,
    outcome TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_by_time ON logins (ts_us);
CREATE TABLE IF NOT EXISTS refused_logins (
    id      INTEGER PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    peer    TEXT,
    outcome TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS refused_logins_by_time ON refused_logins (ts_us);
CREATE TABLE IF NOT EXISTS admin_actions (
    id      INTEGER PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    by_user TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    reason  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS bans (
    user_id TEXT    PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    by_user TEXT    NOT NULL
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS login_attempts AS
    SELECT ts_us, user_id, room, peer, outcome FROM logins
    UNION ALL
    SELECT ts_us, user_id, room, peer, outcome FROM refused_logins;
";

/// Refused attempts recorded in `logins` before they had a table of their
/// own (so a flood of them cannot push out the successful ones) move there.
const MOVE_REFUSED: &str = "
INSERT INTO refused_logins (ts_us, user_id, room, peer, outcome)
    SELECT ts_us, user_id, room, peer, outcome FROM logins WHERE outcome != 'ok' ORDER BY id;
DELETE FROM logins WHERE outcome != 'ok';
";

/// Columns added since the first schema, for databases made before them:
/// (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("rooms", "epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "client_msg_id", "TEXT NOT NULL DEFAULT ''"),
    ("messages", "deleted", "INTEGER NOT NULL DEFAULT 0"),
];

/// Makes the tables (and the columns added since), and returns the
/// database's epoch, set the first time.
pub(super) fn set_up(db: &Connection) -> rusqlite::Result<u64> {
    db.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let mut has = false;
        let mut stmt = db.prepare(&format!("PRAGMA table_info({table})"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if row.get::<_, String>(1)? == *column {
                has = true;
            }
        }
        if !has {
            db.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    // Once per database: the first start with `refused_logins` moves
    // what `logins` held of them.
    let first = db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('refused_logins', 1)",
        [],
    )?;
    if first == 1 {
        db.execute_batch(MOVE_REFUSED)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as i64);
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
        params![now],
    )?;
    db.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|e| e as u64)
}
