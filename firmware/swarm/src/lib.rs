//! The tokio driver of swarmsync's BitTorrent engine.
//!
//! Protocol decisions live in the sans-IO `torrent` crate; this crate only
//! moves bytes between sockets, files and those state machines, and keeps
//! the timers. Modules: peer connections and the download/seed session,
//! trackers (HTTP, UDP), local service discovery, the DHT, web seeds.
#![forbid(unsafe_code)]

pub mod announcer;
pub mod conn;
pub mod dht;
mod disk;
pub mod engine;
pub mod error;
pub mod lsd;
pub mod metadata;
pub mod rate;
pub mod storage;
mod store_target;
pub mod tracker;
pub mod webseed;

pub use error::Error;
