//! The sans-IO core of swarmsync's BitTorrent engine.
//!
//! No sockets, no clock, no async runtime: this crate turns bytes into
//! validated values (bencode, metainfo, magnets) and hashes into merkle trees.
//! Keeping IO out is what lets it be unit-tested exhaustively and fuzzed;
//! the drivers in other crates only move bytes. The one exception is
//! [`create`], which reads files through a caller-supplied [`create::Source`]
//! so that hashing can use every core.
#![forbid(unsafe_code)]

pub mod bencode;
pub mod bitfield;
pub mod create;
mod error;
pub mod ext;
pub mod hash;
pub mod hashes;
pub mod layout;
pub mod magnet;
pub mod merkle;
pub mod metainfo;
pub mod picker;
pub mod session;
pub mod tracker;
pub mod verify;
pub mod wire;

pub use error::Error;
pub use metainfo::{Info, Metainfo, Version};
