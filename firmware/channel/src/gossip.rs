//! Release gossip between peers: the payload of a BEP 10 extension message.
//!
//! Peers that advertise [`EXTENSION`] in their extension handshake send each
//! other the newest signed release they hold, on connect and whenever they
//! accept a newer one, so LAN nodes learn a release from each other instead
//! of each polling the WAN feed. The payload is a bencoded dictionary
//! `{"release": <signed release bytes>}`; other keys are ignored so the
//! message can grow. Decoding only unwraps and bounds: the bytes inside are
//! as untrusted as before and go to [`crate::accept`].

use torrent::bencode::{Limits, top_level_span, validate};

use crate::{Error, MAX_SIGNED};

/// The BEP 10 extension name in the `m` dictionary of the handshake: the
/// name firmware/torrent's extension codec announces and routes
/// (`torrent::ext::Extension::Release`); a test keeps the two equal.
pub const EXTENSION: &str = "swarmsync_release";

/// Largest payload: one signed release plus room for the wrapper and a few
/// future fields.
pub const MAX_PAYLOAD: usize = MAX_SIGNED + 1024;

const LIMITS: Limits = Limits {
    max_size: MAX_PAYLOAD,
    max_depth: 8,
    max_items: 1024,
};

/// The extension message payload carrying `signed`.
pub fn encode(signed: &[u8]) -> Vec<u8> {
    let len = signed.len().to_string();
    let mut out = Vec::with_capacity(signed.len() + len.len() + 12);
    out.extend_from_slice(b"d7:release");
    out.extend_from_slice(len.as_bytes());
    out.push(b':');
    out.extend_from_slice(signed);
    out.push(b'e');
    out
}

/// The signed release bytes inside a payload (not yet verified).
pub fn decode(payload: &[u8]) -> Result<&[u8], Error> {
    let bad = |problem: String| Error::Gossip { problem };
    if payload.len() > MAX_PAYLOAD {
        return Err(bad(format!(
            "{} bytes, over the limit of {MAX_PAYLOAD}",
            payload.len()
        )));
    }
    validate(payload, &LIMITS).map_err(|e| bad(e.to_string()))?;
    if payload.first() != Some(&b'd') {
        return Err(bad("not a dictionary".into()));
    }
    let span = top_level_span(payload, b"release", &LIMITS)
        .ok_or_else(|| bad("no \"release\" field".into()))?;
    let value = payload
        .get(span)
        .ok_or_else(|| bad("\"release\" out of range".into()))?;
    // A byte string is "<len>:<bytes>"; anything else is not a release.
    let colon = value
        .iter()
        .position(|b| *b == b':')
        .filter(|_| value.first().is_some_and(u8::is_ascii_digit))
        .ok_or_else(|| bad("\"release\" is not a byte string".into()))?;
    let inner = &value[colon + 1..];
    if inner.len() > MAX_SIGNED {
        return Err(bad(format!(
            "release is {} bytes, over the limit of {MAX_SIGNED}",
            inner.len()
        )));
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_one_the_wire_codec_announces() {
        assert_eq!(EXTENSION, torrent::ext::Extension::Release.name());
    }

    #[test]
    fn round_trip() {
        let signed = b"d3:keyi1ee".to_vec();
        let payload = encode(&signed);
        assert_eq!(decode(&payload).expect("decode"), &signed[..]);
        // Unknown keys are ignored, before or after.
        assert_eq!(
            decode(b"d1:ai1e7:release2:xy1:zi2ee").expect("decode"),
            b"xy"
        );
        assert_eq!(decode(&encode(b"")).expect("decode"), b"");
    }

    #[test]
    fn refusals() {
        for bad in [
            &b""[..],
            b"le",
            b"de",
            b"d7:releasei1ee",
            b"d7:releaseli1eee",
            b"d7:release5:abce",
            b"d7:release2:ab",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let big = encode(&vec![b'x'; MAX_SIGNED + 1]);
        let err = decode(&big).expect_err("too big").to_string();
        assert!(err.contains("limit"), "{err}");
        assert!(decode(&vec![b'd'; MAX_PAYLOAD + 1]).is_err());
    }
}
