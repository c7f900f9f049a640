//! The store's one error type.
//!
//! Why one enum: callers (the swarm engine, the CLI) match on a handful of
//! cases (a caller bug, a corrupt store, a disk failure) and print the rest.
//! Every message names the file or field it is about, lowercase, context
//! first, so `swarmsync: {err:#}` reads as one line.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation on a file or directory of the store failed.
    #[error("failed to {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "fsync", "rename", …).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The index database (`index.redb`) failed or could not be opened.
    #[error("index {}: {source}", path.display())]
    Index {
        /// Path of `index.redb`.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Box<redb::Error>,
    },
    /// Another process holds the index open.
    #[error("index {} is open in another process\nis `swarmsync run` using this data dir?", path.display())]
    Locked {
        /// Path of `index.redb`.
        path: PathBuf,
    },
    /// The index holds a value this version cannot read.
    #[error("index {}: corrupt {what}", path.display())]
    CorruptIndex {
        /// Path of `index.redb`.
        path: PathBuf,
        /// Which table or field is malformed.
        what: String,
    },
    /// A [`crate::FileSpec`] is inconsistent (bad piece length, a piece
    /// layer that does not hash to the root, a length that changed).
    #[error("file {root}: invalid spec: {reason}")]
    InvalidSpec {
        /// Hex pieces root of the file.
        root: String,
        /// Which field is wrong and why.
        reason: String,
    },
    /// No partial file is recorded for this root (never begun, or already
    /// complete).
    #[error(
        "file {root}: no partial download recorded\ncall begin_file first (or check has_object)"
    )]
    UnknownPartial {
        /// Hex pieces root of the file.
        root: String,
    },
    /// A piece index past the end of the file.
    #[error("file {root}: piece {index} out of range (file has {pieces} pieces)")]
    PieceOutOfRange {
        /// Hex pieces root of the file.
        root: String,
        /// The index asked for.
        index: u32,
        /// How many pieces the file has.
        pieces: u32,
    },
    /// `complete_file` on a file that still misses pieces.
    #[error("file {root}: cannot complete, {missing} pieces missing")]
    Incomplete {
        /// Hex pieces root of the file.
        root: String,
        /// Pieces not yet verified.
        missing: u64,
    },
    /// A snapshot sequence number that the index does not know.
    #[error("snapshot {seq}: not in the store")]
    UnknownSnapshot {
        /// The sequence number asked for.
        seq: u64,
    },
    /// A snapshot entry's path or symlink target is unsafe or malformed.
    #[error("snapshot {seq}: entry {path:?}: {reason}")]
    InvalidEntry {
        /// Snapshot sequence number.
        seq: u64,
        /// The entry's relative path, components joined by `/`.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A snapshot entry refers to an object that is not in `objects/`.
    #[error("snapshot {seq}: entry {path:?}: object {root} is not in the store")]
    MissingObject {
        /// Snapshot sequence number.
        seq: u64,
        /// The entry's relative path.
        path: String,
        /// Hex pieces root the entry refers to.
        root: String,
    },
    /// A mutating method was called on a store opened with
    /// [`crate::Store::open_inspect`].
    #[error("store {}: opened for inspection only, not for writing", path.display())]
    InspectOnly {
        /// The data directory.
        path: PathBuf,
    },
    /// `<data>/current` is not a symlink to `snapshots/<seq>`.
    #[error("{}: not a link to snapshots/<seq> (found {found:?})", path.display())]
    BadCurrent {
        /// Path of the `current` link.
        path: PathBuf,
        /// What it points to.
        found: String,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an `io::Error` with the operation and path it came from.
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
