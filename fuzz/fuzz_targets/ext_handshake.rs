//! The BEP 10 extension handshake decoder must never panic, and whatever
//! it accepts must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torrent::ext::{self, ExtHandshake, ExtMessage, LOCAL_IDS};

fuzz_target!(|data: &[u8]| {
    if let Ok(hs) = ExtHandshake::decode(data) {
        let mut out = Vec::new();
        hs.encode(&mut out);
        assert_eq!(ExtHandshake::decode(&out).as_ref(), Ok(&hs));
    }
    // The router, with the first byte as the extended id.
    if let Some((&id, payload)) = data.split_first()
        && let Ok(ExtMessage::Unknown { id: got }) = ext::decode_extended(id, payload, &LOCAL_IDS)
    {
        assert_eq!(got, id);
        assert!(LOCAL_IDS.which(id).is_none());
    }
});
