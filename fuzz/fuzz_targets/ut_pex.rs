//! The BEP 11 PEX decoder must never panic, must stay within its peer
//! bounds and must round-trip what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torrent::ext::{MAX_PEX_PEERS, Pex};

fuzz_target!(|data: &[u8]| {
    if let Ok(pex) = Pex::decode(data) {
        assert!(pex.added.len() <= MAX_PEX_PEERS && pex.dropped.len() <= MAX_PEX_PEERS);
        let mut out = Vec::new();
        pex.encode(&mut out).expect("a decoded message re-encodes");
        assert_eq!(Pex::decode(&out).as_ref(), Ok(&pex));
    }
});
