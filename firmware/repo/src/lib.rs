//! apt and rpm repository metadata readers, and the subset selection built on
//! them.
//!
//! A node rarely wants a whole mirror: a BeagleBone with 2 GB of eMMC serving
//! one armhf LAN wants one architecture of one or two suites. Selecting by path
//! alone cannot express that (a package's `.deb` lives in `pool/`, named only
//! by the `Packages` index), so the selection is made in two steps, which is
//! the order the node can fetch things in:
//!
//! 1. [`metadata_paths`]: from the snapshot's file list alone, the repository
//!    metadata this subset must read before it can choose packages (Release
//!    files and `Packages` indexes; `repomd.xml` and the primary it names).
//! 2. [`plan`]: with those files readable, the full [`Plan`]: the metadata
//!    apt-get or dnf will ask for, and the package files the globs select.
//!
//! Metadata files are selected whole and never rewritten, so the upstream
//! signatures (InRelease, repomd.xml.asc) stay valid on the node; the subset
//! only decides what is fetched ahead of time (anything else is fetched on a
//! client's first request). Nothing here verifies signatures either: apt and
//! dnf do that against their own keys.
//!
//! Everything read here comes from the network, so every reader is bounded:
//! decompressed sizes, line and field lengths, entry counts (see
//! [`limits`]); bad input is an [`Error`] naming the file and the line or
//! field, never a panic.
#![forbid(unsafe_code)]

mod apt;
mod decompress;
mod glob;
pub mod limits;
mod plan;
mod rpm;
mod subset;

pub use apt::{Packages, Paragraph, Release, ReleaseEntry};
pub use plan::{Plan, TreeFile, metadata_paths, plan};
pub use rpm::{PrimaryPackage, Repomd, RepomdData, parse_primary, parse_repomd};
pub use subset::Subset;

/// Everything that can go wrong reading repository metadata or choosing a
/// subset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The subset itself is unusable (empty list, a pattern that does not
    /// compile, a suite or architecture the repository does not have).
    #[error("subset: {0}")]
    Subset(String),
    /// A file the plan needs could not be read; returned by the caller's
    /// `read` function ([`Error::read`] builds it).
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The snapshot path that was asked for.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A compressed file is corrupt, truncated or in an unsupported format.
    #[error("{path}: {reason}")]
    Decompress {
        /// The file.
        path: String,
        /// What the decompressor reported.
        reason: String,
    },
    /// A file decompresses to more than the limit allows.
    #[error("{path}: larger than {limit} bytes once decompressed")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A syntax or content error at a line of a text (deb822) file.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number (of the decompressed text).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A syntax or content error in an XML file.
    #[error("{path}: at byte {offset}: {reason}")]
    Xml {
        /// The file.
        path: String,
        /// Byte offset in the decompressed document.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file has more entries (packages, lines, checksums) than the limit.
    #[error("{path}: more than {limit} {what}")]
    TooMany {
        /// The file.
        path: String,
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The repository's metadata is inconsistent with the snapshot (a
    /// Release without the index it must have, a repomd.xml without primary).
    #[error("{path}: {reason}")]
    Repository {
        /// The file that says so.
        path: String,
        /// What is missing or wrong.
        reason: String,
    },
}

impl Error {
    /// The error a `read` function passed to [`plan`] returns when it cannot
    /// give the bytes of `path`.
    pub fn read(path: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Read {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
