//! The errors of the swarm driver.
//!
//! One enum for the crate, so the binary can print one clear line for any
//! failure; each variant carries what a user needs to find the cause (the
//! URL, the peer, the file) rather than a bare library error.

/// An error of the swarm driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A web seed (BEP 19) request failed. `url` is the URL that was asked
    /// for (or the seed's base URL when no request was made).
    #[error("web seed {url}: {problem}")]
    WebSeed {
        url: String,
        problem: crate::webseed::Problem,
    },
    /// Reading or writing the torrent's files (or the resume record) failed.
    #[error("{path}: {reason}")]
    Storage { path: String, reason: String },
    /// An announce to a tracker failed. `url` is the announce URL.
    #[error("tracker {url}: {problem}")]
    Tracker {
        url: String,
        problem: crate::tracker::Problem,
    },
    /// Local service discovery could not set up or use its multicast
    /// sockets; `context` says which step and which group.
    #[error("local service discovery: {context}: {io}")]
    Lsd { context: String, io: std::io::Error },
    /// The peer port could not be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    /// No peer delivered a magnet link's metadata.
    #[error("cannot get metadata: {0}")]
    Metadata(String),
    /// A DHT operation failed; `context` says which (start, announce, put
    /// or get of a mutable item, with its key).
    #[error("DHT {context}: {problem}")]
    Dht {
        context: String,
        problem: crate::dht::Problem,
    },
}
