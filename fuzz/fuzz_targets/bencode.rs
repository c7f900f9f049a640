//! Bencode validation with the default limits must never panic, loop or
//! allocate without bound, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torrent::bencode::validate(data, &torrent::bencode::Limits::default());
});
