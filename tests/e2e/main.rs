//! End-to-end tests: one test binary, one module per area.
mod common;
mod keygen;
mod libtorrent;
mod status;
mod store_crash;
mod swarm;
mod v2_hashes;
