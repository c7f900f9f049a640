//! The peer wire decoder must never panic, never claim to use zero bytes
//! and re-encode every message it accepts to the exact bytes it read; the
//! handshake decoder must never panic and must round-trip what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torrent::wire::{self, Handshake, Message};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    if let Ok(Some(h)) = Handshake::decode(data) {
        assert_eq!(Handshake::decode(&h.encode()), Ok(Some(h)));
        rest = &data[wire::HANDSHAKE_LEN..];
    }
    for buf in [data, rest] {
        let mut buf = buf;
        while let Ok(Some((msg, used))) = wire::decode(buf, 1 << 20) {
            assert!(used >= 4 && used <= buf.len());
            // Unknown ids keep only the id, so only they may re-encode
            // differently.
            if !matches!(msg, Message::Unknown { .. }) {
                let mut again = Vec::new();
                wire::encode(&msg, &mut again);
                assert_eq!(again, &buf[..used], "{msg:?}");
            }
            buf = &buf[used..];
        }
    }
});
