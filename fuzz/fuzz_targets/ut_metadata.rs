//! The BEP 9 message decoder must never panic and must round-trip what it
//! accepts; a data message fed to a MetadataAssembler must never panic
//! either (small sizes only, so each run stays fast).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use torrent::ext::{InfoHashes, MetadataAssembler, MetadataMessage};
use torrent::metainfo::Limits;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = MetadataMessage::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    msg.encode(&mut out);
    assert_eq!(MetadataMessage::decode(&out).as_ref(), Ok(&msg));
    if let MetadataMessage::Data { total_size, .. } = msg
        && total_size <= 64 * 1024
    {
        let expected = InfoHashes {
            v1: Some(torrent::hash::sha1(&data[..data.len().min(8)])),
            v2: None,
        };
        let Ok(mut asm) = MetadataAssembler::new(expected, total_size, Limits::default()) else {
            return;
        };
        let _ = asm.next_request(Instant::now());
        let _ = asm.on_message(&msg);
        let _ = asm.on_message(&msg);
    }
});
