//! What can go wrong with the SQLite store, and where.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the SQLite store cannot be opened, read or written. Each names the
/// file (or the directory) and carries SQLite's or the system's error; the
/// one-line `Display` is what operators see, so it includes the source's
/// message too.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    CreateDir {
        /// The data directory.
        dir: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The database file could not be opened or created.
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, or not one SQLite can use.
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite's integrity check could not run.
    IntegrityCheck {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite's integrity check found damage.
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What `quick_check` reported, one line per problem.
        report: String,
    },
    /// The tables could not be created.
    Schema {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database cannot be written (a read-only file or directory, a
    /// full disk, a lock held elsewhere).
    NotWritable {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Rooms or messages could not be read.
    Read {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A batch could not be committed; none of it is stored.
    Write {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The retention rules could not be applied.
    Prune {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// The file (or, for [`StoreError::CreateDir`], the directory) concerned.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::CreateDir { dir, .. } => dir,
            StoreError::Open { path, .. }
            | StoreError::NotADatabase { path, .. }
            | StoreError::IntegrityCheck { path, .. }
            | StoreError::Damaged { path, .. }
            | StoreError::Schema { path, .. }
            | StoreError::NotWritable { path, .. }
            | StoreError::Read { path, .. }
            | StoreError::Write { path, .. }
            | StoreError::Prune { path, .. } => path,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Start-up errors read "<data dir>: <file> ...", as operators name
        // the directory on the command line.
        let path = self.path();
        let dir = path.parent().unwrap_or(Path::new("")).display();
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        match self {
            StoreError::CreateDir { source, .. } => write!(
                f,
                "{}: cannot create the data directory: {source}",
                path.display()
            ),
            StoreError::Open { source, .. } => write!(f, "{dir}: cannot open {file}: {source}"),
            StoreError::NotADatabase { source, .. } => {
                write!(f, "{dir}: {file} is not a usable SQLite database: {source}")
            }
            StoreError::IntegrityCheck { source, .. } => {
                write!(f, "{dir}: {file} failed its integrity check: {source}")
            }
            StoreError::Damaged { report, .. } => write!(
                f,
                "{dir}: {file} failed its integrity check: {} \
                 (restore it from a backup, or move it aside to start afresh)",
                report.replace('\n', "; ")
            ),
            StoreError::Schema { source, .. } => write!(f, "{dir}: cannot set up {file}: {source}"),
            StoreError::NotWritable { source, .. } => {
                write!(f, "{dir}: {file} cannot be written: {source}")
            }
            StoreError::Read { source, .. } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            StoreError::Write { source, .. } => {
                write!(f, "cannot write to {}: {source}", path.display())
            }
            StoreError::Prune { source, .. } => write!(f, "retention failed: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::CreateDir { source, .. } => Some(source),
            StoreError::Open { source, .. }
            | StoreError::NotADatabase { source, .. }
            | StoreError::IntegrityCheck { source, .. }
            | StoreError::Schema { source, .. }
            | StoreError::NotWritable { source, .. }
            | StoreError::Read { source, .. }
            | StoreError::Write { source, .. }
            | StoreError::Prune { source, .. } => Some(source),
            StoreError::Damaged { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines operators saw before the errors were typed, word for word.
    #[test]
    fn the_messages_operators_see() {
        let path = PathBuf::from("/data/chat.db");
        let e = || rusqlite::Error::QueryReturnedNoRows;
        let cases = [
            (
                StoreError::CreateDir {
                    dir: "/data".into(),
                    source: std::io::Error::other("in the way"),
                },
                "/data: cannot create the data directory: in the way",
            ),
            (
                StoreError::Open {
                    path: path.clone(),
                    source: e(),
                },
                "/data: cannot open chat.db: Query returned no rows",
            ),
            (
                StoreError::NotADatabase {
                    path: path.clone(),
                    source: e(),
                },
                "/data: chat.db is not a usable SQLite database: Query returned no rows",
            ),
            (
                StoreError::Damaged {
                    path: path.clone(),
                    report: "page 3: bad\npage 4: bad".into(),
                },
                "/data: chat.db failed its integrity check: page 3: bad; page 4: bad \
                 (restore it from a backup, or move it aside to start afresh)",
            ),
            (
                StoreError::Schema {
                    path: path.clone(),
                    source: e(),
                },
                "/data: cannot set up chat.db: Query returned no rows",
            ),
            (
                StoreError::NotWritable {
                    path: path.clone(),
                    source: e(),
                },
                "/data: chat.db cannot be written: Query returned no rows",
            ),
            (
                StoreError::Read {
                    path: path.clone(),
                    source: e(),
                },
                "/data/chat.db: cannot read: Query returned no rows",
            ),
            (
                StoreError::Write {
                    path: path.clone(),
                    source: e(),
                },
                "cannot write to /data/chat.db: Query returned no rows",
            ),
        ];
        for (err, line) in cases {
            assert_eq!(err.to_string(), line);
        }
    }
}
