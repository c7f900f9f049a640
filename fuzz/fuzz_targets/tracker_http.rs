//! Parsing an HTTP tracker's reply (status line, headers, chunked or plain
//! body, bencoded response) must never panic, loop or allocate without
//! bound, whatever the tracker sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = torrent::tracker::Limits::default();
    let _ = torrent::tracker::http::parse_reply(data, &limits);
    let _ = torrent::tracker::http::parse_response(data, &limits);
});
