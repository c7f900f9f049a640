//! swarmsync's LAN HTTP server: serves snapshot trees to apt, dnf, curl and
//! browsers.
//!
//! The node's users never see BitTorrent; they see a plain HTTP mirror, so
//! this crate has to be as correct as the static file servers those clients
//! were tested against: percent-decoded paths, single byte ranges with
//! If-Range (apt and curl resume partial downloads with them), strong ETags,
//! Last-Modified, 304/412/416 and directory listings.
//!
//! It serves files from directories on disk ([`Mount`]), nothing more. The
//! node points each mount's root at `<data>/current` of a channel; because
//! `current` is a symlink switched atomically, each request resolves it
//! once and is served entirely from the snapshot it found, and a client
//! that fetched a release file keeps its snapshot for a grace window, so a
//! switch in the middle of `apt-get update` cannot mix two snapshots.
//!
//! Modules, in the order a request meets them:
//! - `server`: accept loop, connection cap, timeouts, graceful shutdown;
//! - `path`: request path → file, refusing every way out of the root;
//! - `cond`: preconditions and ranges, pure functions of headers;
//! - `sticky`: a client that fetched a release file keeps its snapshot;
//! - `service`: the handler that ties them to the file system;
//! - `byhash`: a by-hash file missing from the client's snapshot comes
//!   from another retained snapshot;
//! - `cache`: small files of the current snapshot served without a trip
//!   to the blocking pool;
//! - `listing`, `body`: directory pages and streamed file bodies;
//! - `special`: the `/-/…` hook; `status`: the status model and its pages.
//!
//! Trust boundary: everything in a request is attacker-controlled (any host
//! on the LAN can connect). What bounds it: header count and size, URI length,
//! a header-read timeout (slowloris) and an idle timeout, a cap on
//! connections, bodies streamed in fixed chunks that draw on one memory
//! budget, and path resolution that can only name files under a mount's
//! root. Read-only: only GET and HEAD. SECURITY.md has the details.
//!
//! The reserved `/-/…` namespace is answered by a [`Special`] the caller
//! passes in: the node's [`StatusBoard`] (status page, JSON, metrics), the
//! origin's release feed, or both through a [`Chain`].
//!
//! ```no_run
//! # async fn example(stop: impl std::future::Future) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:80").await?;
//! let mounts = vec![serve::Mount::with_snapshots(
//!     "/debian",
//!     "/data/debian/current",
//!     "/data/debian/snapshots",
//! )];
//! let board = serve::StatusBoard::new(); // the node keeps a clone and updates it
//! // Returns once `stop` completes and in-flight responses are done.
//! serve::Server::new(mounts, serve::Config::default())
//!     .status(board.clone())
//!     .run(listener, stop)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! `serve::run(listener, mounts, config, stop)` is the same without a
//! status board or special pages.
#![forbid(unsafe_code)]

mod body;
mod byhash;
mod cache;
mod cond;
mod error;
mod listing;
pub mod miss;
mod path;
mod server;
mod service;
mod special;
pub mod status;
mod sticky;

use std::path::PathBuf;
use std::time::Duration;

pub use bytes::Bytes;
pub use error::Error;
pub use miss::{Found, Growing, Miss, MissError, MissFuture};
pub use server::{Server, run};
pub use special::{Chain, Special, SpecialResponse};
pub use status::StatusBoard;

/// One URL prefix served from one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// URL path prefix, `/` followed by plain segments, no trailing slash
    /// (`/debian`); `/` alone mounts at the top. `/-` is reserved for the
    /// node's status page and metrics.
    pub prefix: String,
    /// Directory served under the prefix; must be absolute. It may be a
    /// symlink (`<data>/current`) and need not exist yet: until it does,
    /// requests under the prefix get 404.
    pub root: PathBuf,
    /// The store's snapshots directory (`<data>/snapshots`, one
    /// subdirectory per retained snapshot), when `root` points into it: a
    /// `by-hash/<ALGO>/<hex>` file missing from the client's snapshot is
    /// then served from the newest other snapshot that has it (its name is
    /// its hash, so any copy is the right one).
    pub snapshots: Option<PathBuf>,
}

impl Mount {
    /// A mount of `root` at `prefix`.
    pub fn new(prefix: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Mount {
            prefix: prefix.into(),
            root: root.into(),
            snapshots: None,
        }
    }

    /// A mount of `current` (a symlink into `snapshots`) at `prefix`, with
    /// by-hash files found across all snapshots in `snapshots`.
    pub fn with_snapshots(
        prefix: impl Into<String>,
        current: impl Into<PathBuf>,
        snapshots: impl Into<PathBuf>,
    ) -> Self {
        Mount {
            snapshots: Some(snapshots.into()),
            ..Mount::new(prefix, current)
        }
    }
}

/// Limits and timeouts. The defaults suit a 512 MiB board on a home LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Connections served at once. Past it, a new connection gets a
    /// one-line 503 and is closed, so existing clients keep their share.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, also between
    /// requests on a kept-alive connection (slowloris bound).
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving either way for this long is
    /// closed (a client that stopped reading a response).
    pub idle_timeout: Duration,
    /// Most request header fields (more: 431).
    pub max_headers: usize,
    /// Most bytes in a request head, request line included (more: 431).
    pub max_header_bytes: usize,
    /// Longest request target in bytes (longer: 414).
    pub max_uri_bytes: usize,
    /// Bytes read from a file per body chunk.
    pub chunk_size: usize,
    /// Bytes of file chunks held in memory at once over all connections;
    /// downloads past it wait for their turn.
    pub body_memory: usize,
    /// How long shutdown waits for in-flight responses before dropping them.
    pub shutdown_grace: Duration,
    /// How long a client that fetched `Release`, `InRelease` or
    /// `repomd.xml` keeps being served the snapshot that answered (keyed by
    /// client address and mount). Zero turns it off.
    pub sticky_grace: Duration,
    /// Most clients pinned at once.
    pub sticky_max_clients: usize,
    /// Bytes of small files (up to 16 KiB each) of the current snapshot
    /// kept in memory per mount made with [`Mount::with_snapshots`]; zero
    /// turns the cache off.
    pub small_file_cache: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            chunk_size: 512 * 1024,
            body_memory: 8 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
            sticky_grace: Duration::from_secs(600),
            sticky_max_clients: 4096,
            small_file_cache: 2 * 1024 * 1024,
        }
    }
}
