//! Parsing a local service discovery datagram (BEP 14) from anyone on the
//! LAN must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torrent::tracker::lsd::parse(data);
});
