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
}
