//! Fetch-on-miss: a file of the snapshot that is not on disk yet.
//!
//! A node keeps only its subset ahead of time; a client asking for
//! something else of the same snapshot should get it, late, rather than a
//! 404 that apt reports as a broken mirror. The server does not know what
//! a snapshot holds or how to fetch: it asks the [`Miss`] handler the node
//! gives it, waits, and serves the complete, verified file the handler
//! names. Nothing is sent before that, so only verified bytes reach a
//! client.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// Why a missing file is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissError {
    /// Not in the snapshot either: a plain 404.
    NotFound,
    /// In the snapshot, but nobody could deliver it (502 Bad Gateway).
    Unavailable(String),
    /// Still not complete when the wait ended (504 Gateway Timeout).
    TimedOut,
    /// The node cannot fetch right now, e.g. mid-switch (503, retry).
    Busy,
}

/// The answer of a [`Miss`] handler.
pub type MissFuture = Pin<Box<dyn Future<Output = Result<PathBuf, MissError>> + Send>>;

/// Fetches files of a mount's snapshot that are not on disk.
pub trait Miss: Send + Sync + 'static {
    /// `rest` (decoded path segments below the mount `prefix`, e.g.
    /// `/debian`) was not found in the client's snapshot. Resolves to the
    /// absolute path of a complete, verified copy to serve. Called only for
    /// GET and HEAD of a file (no trailing slash) by clients not pinned to
    /// an older snapshot.
    fn fetch(&self, prefix: &str, rest: &[String]) -> MissFuture;
}
