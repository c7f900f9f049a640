//! Parsing a .torrent (v1, v2 or hybrid) must never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torrent::metainfo::Metainfo::from_bytes(data);
});
