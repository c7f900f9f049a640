//! Magnet links (BEP 9 `xt=urn:btih:`, BEP 52 `xt=urn:btmh:1220…`).
//!
//! A magnet is untrusted text from a user or a web page: every field is
//! bounded, and unknown parameters are kept out of the way rather than
//! refused, as other clients do.

use data_encoding::BASE32;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::Error;
use crate::hash::{Sha1, Sha256, from_hex, to_hex};

/// Longest magnet accepted.
pub const MAX_LEN: usize = 8192;
/// Most trackers or peers kept from one magnet.
pub const MAX_ENTRIES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Magnet {
    pub v1: Option<Sha1>,
    pub v2: Option<Sha256>,
    pub name: Option<String>,
    pub trackers: Vec<String>,
    /// `x.pe` peer addresses (`host:port`).
    pub peers: Vec<String>,
    pub web_seeds: Vec<String>,
}

impl Magnet {
    pub fn parse(s: &str) -> Result<Magnet, Error> {
        let bad = |m: &str| Error::Magnet(m.to_owned());
        if s.len() > MAX_LEN {
            return Err(bad(&format!("longer than {MAX_LEN} bytes")));
        }
        let query = s
            .strip_prefix("magnet:?")
            .ok_or_else(|| bad("does not start with magnet:?"))?;
        let mut m = Magnet::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| bad(&format!("parameter {k} is not UTF-8")))?
                .into_owned();
            match k {
                "xt" => {
                    if let Some(h) = v.strip_prefix("urn:btih:") {
                        m.v1 = Some(parse_btih(h).ok_or_else(|| {
                            bad("xt urn:btih is not 40 hex or 32 base32 characters")
                        })?);
                    } else if let Some(h) = v.strip_prefix("urn:btmh:") {
                        // Multihash: 0x12 (sha2-256), 0x20 (32 bytes), digest.
                        let h = h
                            .strip_prefix("1220")
                            .ok_or_else(|| bad("xt urn:btmh is not a sha2-256 multihash"))?;
                        m.v2 =
                            Some(from_hex::<32>(h).ok_or_else(|| {
                                bad("xt urn:btmh digest is not 64 hex characters")
                            })?);
                    }
                }
                "dn" => m.name = Some(v),
                "tr" => push_bounded(&mut m.trackers, v),
                "x.pe" => push_bounded(&mut m.peers, v),
                "ws" => push_bounded(&mut m.web_seeds, v),
                _ => {}
            }
        }
        if m.v1.is_none() && m.v2.is_none() {
            return Err(bad("no xt=urn:btih or xt=urn:btmh infohash"));
        }
        Ok(m)
    }

    /// The 20-byte hash peers and trackers know the torrent by: the v1
    /// infohash, else the truncated v2 one.
    pub fn swarm_hash(&self) -> Option<Sha1> {
        self.v1
            .or_else(|| self.v2.as_ref().map(crate::wire::truncated_v2))
    }

    /// Renders the link (v2 first, as libtorrent does).
    pub fn to_uri(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v1) = &self.v1 {
            parts.push(format!("xt=urn:btih:{}", to_hex(v1)));
        }
        if let Some(v2) = &self.v2 {
            parts.push(format!("xt=urn:btmh:1220{}", to_hex(v2)));
        }
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        if let Some(n) = &self.name {
            parts.push(format!("dn={}", enc(n)));
        }
        for t in &self.trackers {
            parts.push(format!("tr={}", enc(t)));
        }
        for w in &self.web_seeds {
            parts.push(format!("ws={}", enc(w)));
        }
        for p in &self.peers {
            parts.push(format!("x.pe={}", enc(p)));
        }
        format!("magnet:?{}", parts.join("&"))
    }
}

fn push_bounded(list: &mut Vec<String>, v: String) {
    if list.len() < MAX_ENTRIES && !list.contains(&v) {
        list.push(v);
    }
}

fn parse_btih(h: &str) -> Option<Sha1> {
    match h.len() {
        40 => from_hex::<20>(h),
        32 => {
            let bytes = BASE32.decode(h.to_ascii_uppercase().as_bytes()).ok()?;
            bytes.try_into().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_v2_and_extras() {
        let v1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
        let v2 = "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
        let uri = format!(
            "magnet:?xt=urn:btih:{v1}&xt=urn:btmh:1220{v2}&dn=a%20b&tr=http%3A%2F%2Ft%2Fa&x.pe=127.0.0.1:6881"
        );
        let m = Magnet::parse(&uri).expect("parse");
        assert_eq!(m.v1.map(|h| to_hex(&h)).as_deref(), Some(v1));
        assert_eq!(m.v2.map(|h| to_hex(&h)).as_deref(), Some(v2));
        assert_eq!(m.name.as_deref(), Some("a b"));
        assert_eq!(m.trackers, ["http://t/a"]);
        assert_eq!(m.peers, ["127.0.0.1:6881"]);
        assert_eq!(Magnet::parse(&m.to_uri()), Ok(m));
    }

    #[test]
    fn base32_btih() {
        let m = Magnet::parse("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").expect("b32");
        assert_eq!(
            m.v1.map(|h| to_hex(&h)).as_deref(),
            Some("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "http://x",
            "magnet:?dn=x",
            "magnet:?xt=urn:btih:zz",
            "magnet:?xt=urn:btmh:1114abcd",
            "magnet:?xt=urn:btih:%ff%fe",
        ] {
            assert!(Magnet::parse(bad).is_err(), "{bad}");
        }
        assert!(Magnet::parse(&format!("magnet:?{}", "a".repeat(MAX_LEN))).is_err());
    }
}
