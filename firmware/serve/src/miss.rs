//! Fetch-on-miss: a file of the snapshot that is not on disk yet.
//!
//! A node keeps only its subset ahead of time; a client asking for
//! something else of the same snapshot should get it, late, rather than a
//! 404 that apt reports as a broken mirror. The server does not know what
//! a snapshot holds or how to fetch: it asks the [`Miss`] handler the node
//! gives it and waits. The handler names either a complete, verified file,
//! or a file being downloaded with a running count of its verified bytes
//! from the start: then the client is streamed those bytes as they verify
//! (a 40 MB package arrives at swarm speed instead of after a silent
//! minute that times clients out), and only verified bytes ever reach it.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

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

/// What a [`Miss`] handler found.
pub enum Found {
    /// A complete, verified copy at this absolute path.
    Complete(PathBuf),
    /// A file being downloaded, served as its bytes verify.
    Growing(Growing),
}

/// A file still being downloaded.
pub struct Growing {
    /// The whole file's length (the response's Content-Length).
    pub length: u64,
    /// How many bytes from the start are verified and readable through
    /// `open`; reaches `length` when the file is complete. A sender dropped
    /// before that means the fetch failed: the response is cut off, so the
    /// client sees a short body, never wrong bytes.
    pub ready: watch::Receiver<u64>,
    /// Opens the file holding the verified bytes (called on the blocking
    /// pool once `ready` is above 0; a handle stays valid when the file is
    /// renamed into place on completion).
    pub open: Arc<dyn Fn() -> std::io::Result<File> + Send + Sync>,
    /// Longest wait for more verified bytes before the response is cut off.
    pub stall: Duration,
    /// The complete file's strong ETag (quotes included), when the handler
    /// knows it already: the content hash names the bytes before they are
    /// all there, so an interrupted download can resume with If-Range.
    pub etag: Option<String>,
}

/// The answer of a [`Miss`] handler.
pub type MissFuture = Pin<Box<dyn Future<Output = Result<Found, MissError>> + Send>>;

/// Fetches files of a mount's snapshot that are not on disk.
pub trait Miss: Send + Sync + 'static {
    /// `rest` (decoded path segments below the mount `prefix`, e.g.
    /// `/debian`) was not found in the client's snapshot. Resolves to a
    /// complete, verified copy to serve, or to a download in progress to
    /// stream (best answered once its first bytes verified, so that a
    /// file nobody can deliver is a clear 504, not a stalled 200). Called only for
    /// GET and HEAD of a file (no trailing slash) by clients not pinned to
    /// an older snapshot.
    fn fetch(&self, prefix: &str, rest: &[String]) -> MissFuture;
}
