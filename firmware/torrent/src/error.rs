//! The one error type of this crate.

use crate::bencode::BencodeError;
use crate::tracker::TrackerError;
use crate::wire::WireError;

/// Why input was refused. Messages name the field (`info.files[3].path`) so
/// a user can find the problem in the torrent, release or message at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed or over-limit bencode.
    #[error(transparent)]
    Bencode(#[from] BencodeError),
    /// A peer's bytes broke the wire protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A tracker's or an LSD neighbour's answer was refused.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// Well-formed bencode of the wrong shape.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// A required field is absent.
    #[error("missing field {field}")]
    Missing { field: String },
    /// A field has the wrong type or an impossible value.
    #[error("bad field {field}: {reason}")]
    Field { field: String, reason: String },
    /// A path component that could escape or break the download directory.
    #[error("unsafe path in {field}: {reason}")]
    Path { field: String, reason: String },
    /// A count over one of [`crate::metainfo::Limits`].
    #[error("{what} is {value}, over the limit of {limit}")]
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// Parts of the torrent that disagree with each other (v1 file list vs
    /// v2 file tree, piece layer vs pieces root).
    #[error("inconsistent torrent: {0}")]
    Inconsistent(String),
    /// A malformed magnet link.
    #[error("bad magnet link: {0}")]
    Magnet(String),
    /// BEP 9 metadata that, once complete, did not hash to the magnet's
    /// infohash. Any of the peers that sent pieces may have lied, so the
    /// message names none of them.
    #[error("metadata from peer did not match the infohash")]
    MetadataMismatch,
    /// A BEP 52 hashes message that does not prove what it claims (wrong
    /// size, bad padding, or hashes that do not lead to the pieces root).
    #[error("bad hashes from peer: {0}")]
    Hashes(String),
    /// Reading a file while creating or verifying a torrent failed.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn missing(field: impl Into<String>) -> Error {
    Error::Missing {
        field: field.into(),
    }
}
