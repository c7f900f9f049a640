//! Signed update channels: keys, releases, acceptance rules, feeds.
//!
//! A channel is an ed25519 public key plus a name. Every publication is a
//! [`Release`]: a small bencoded manifest that names the snapshot torrent by
//! its infohashes and says where to find it. An origin signs it with
//! [`Signer::sign`]; a node feeds whatever bytes it received (from the HTTP
//! feed, a peer's gossip message or the DHT) to [`accept`], which applies
//! every rule in one place and either returns the release or a
//! [`Rejection`] with a stable [`Rejection::code`] for status pages.
//!
//! Why one function for every rule: the transports are many and untrusted,
//! the rules are few and security-relevant. Keeping the rules out of the
//! transports means a new transport cannot forget one, and the rules are
//! tested (and fuzzed) without sockets. The function takes the installed
//! `seq` and the time as arguments and reads no clock and no disk.
//!
//! Why raw spans instead of re-encoding: the signature covers the exact
//! bytes of the `release` value as they arrived, so a verifier never has to
//! reproduce the signer's encoder, and a newer origin may add fields that
//! older nodes ignore but still verify. The release must nonetheless be
//! canonical bencode (sorted, unique keys), so one signed blob has exactly
//! one meaning.
//!
//! Why a delegation: the root key, the one nodes are configured with, can
//! stay offline. It signs a [`Delegation`] to an online signing key with an
//! expiry, and the origin ships that delegation inside every release; when
//! the online key leaks or expires, the root signs a new one and nodes
//! change nothing.
//!
//! The wire format is described for users in docs/channels.md.
#![forbid(unsafe_code)]

mod accept;
pub mod dht;
pub mod feed;
pub mod gossip;
mod hex;
mod key;
mod release;

use std::path::PathBuf;

pub use accept::{BUILD_TIME, Policy, Rejection, accept, time_floor};
pub use key::{Delegation, PublicKey, SecretKey, Signer, delegation_path};
pub use release::{
    MAX_CHANNEL_LEN, MAX_LIST, MAX_SIGNED, MAX_STRING, Release, parse_unverified,
    valid_channel_name,
};

/// Everything in this crate that can fail, except the acceptance of a
/// release (that is a [`Rejection`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or synced.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read key file", ...).
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key file exists and would be overwritten.
    #[error(
        "{path} already exists\nrefusing to overwrite a key; choose another --out or remove it first"
    )]
    Exists { path: PathBuf },
    /// A public key in text form is not 64 hex digits of a valid key.
    #[error("public key {text:?}: {problem}")]
    PublicKey { text: String, problem: &'static str },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed; cannot generate a key")]
    Random,
    /// A key file is not in the expected format.
    #[error("key file {path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    /// A delegation file is malformed, not for this key, or invalid.
    #[error("delegation {path}: {problem}")]
    Delegation { path: PathBuf, problem: String },
    /// A release could not be signed because it breaks a rule every node
    /// would enforce (see [`Signer::sign_checked`]).
    #[error("release would be refused by nodes: {0}")]
    Release(Rejection),
    /// A feed URL is not a usable `http://` or `https://` URL.
    #[error("feed {url}: {problem}")]
    FeedUrl { url: String, problem: String },
    /// A feed could not be fetched: connection, TLS, HTTP status,
    /// redirects, size or time limit.
    #[error("feed {url}: {problem}")]
    Feed { url: String, problem: String },
    /// A feed answered in a way that is an attack rather than an outage:
    /// over the size limit (`code` "too_large") or never complete within
    /// the deadline ("timeout", a server trickling bytes). Nodes record
    /// these like refused releases.
    #[error("feed {url}: {problem}")]
    FeedRefused {
        url: String,
        code: &'static str,
        problem: String,
    },
    /// A gossip message is not a release message.
    #[error("gossip message {EXTENSION}: {problem}", EXTENSION = gossip::EXTENSION)]
    Gossip { problem: String },
}
