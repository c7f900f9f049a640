//! End-to-end tests: one test binary, one module per area.
mod common;
mod demo;
mod dht_release;
mod etag;
mod keygen;
mod leds;
mod libtorrent;
mod node;
mod status;
mod store_crash;
mod swarm;
mod sync_apt;
mod sync_attacks;
mod sync_crash;
mod sync_rpm;
mod v2_hashes;
