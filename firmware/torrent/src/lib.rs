//! The sans-IO core of swarmsync's BitTorrent engine.
//!
//! No sockets, no clock, no async runtime: this crate turns bytes into
//! validated values (bencode, metainfo, magnets) and hashes into merkle trees.
//! Keeping IO out is what lets it be unit-tested exhaustively and fuzzed;
//! the drivers in other crates only move bytes.
#![forbid(unsafe_code)]

pub mod hash;
pub mod merkle;
