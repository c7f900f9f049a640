//! Parsing a magnet link must never panic on any UTF-8 string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = torrent::magnet::Magnet::parse(s);
    }
});
