//! The BEP 10 extension handshake (extended message id 0).
//!
//! The handshake is where a peer tells us its extension ids, its client
//! name, its listen port, how many requests it queues and how big the info
//! dictionary is (BEP 9). We read only those fields; each is type- and
//! range-checked because the driver acts on them (the port goes into the
//! peer list, `reqq` sizes a queue, `metadata_size` sizes a buffer, and
//! is checked again where that buffer is made).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Extension, ExtensionIds, bytes_field, int_field, put_bytes, put_key_bytes, put_key_int, ranged,
    whole_dict,
};
use crate::error::{Error, field};

/// Largest extension handshake accepted. Real ones are a few hundred bytes.
pub const MAX_HANDSHAKE_LEN: usize = 16 * 1024;
/// Most entries in the `m` dictionary.
pub const MAX_EXTENSIONS: usize = 64;
/// Longest extension name in `m`.
pub const MAX_NAME_LEN: usize = 64;
/// Longest client name (`v`).
pub const MAX_CLIENT_LEN: usize = 256;

const WHAT: &str = "extension handshake";

/// A BEP 10 extension handshake, ours or a peer's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The `m` dictionary, restricted to the extensions we know.
    pub ids: ExtensionIds,
    /// `v`: client name and version (lossily UTF-8).
    pub client: Option<String>,
    /// `p`: the sender's listen port.
    pub listen_port: Option<u16>,
    /// `reqq`: how many outstanding requests the sender queues.
    pub reqq: Option<u32>,
    /// `metadata_size`: bytes of the info dictionary (BEP 9); 0 is read as
    /// absent (a magnet-only peer does not have it yet). Not bounded by
    /// [`crate::ext::MAX_METADATA_SIZE`] here: a peer seeding a huge
    /// torrent is still a good peer, [`crate::ext::MetadataAssembler::new`]
    /// is where a size we will not fetch is refused.
    pub metadata_size: Option<u32>,
    /// `yourip`: our address as the sender sees it.
    pub yourip: Option<IpAddr>,
}

/// The client name we announce in `v`.
pub const CLIENT: &str = concat!("swarmsync ", env!("CARGO_PKG_VERSION"));

impl ExtHandshake {
    /// Our handshake: every extension at its [`crate::ext::LOCAL_IDS`] id
    /// and our client name. The driver fills in what it knows (listen port,
    /// request queue length, metadata size once it has the info, the
    /// peer's address as `yourip`).
    pub fn ours() -> ExtHandshake {
        ExtHandshake {
            ids: crate::ext::LOCAL_IDS,
            client: Some(CLIENT.to_owned()),
            ..ExtHandshake::default()
        }
    }

    /// Decodes a peer's handshake payload.
    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, Error> {
        let d = whole_dict(payload, WHAT, MAX_HANDSHAKE_LEN)?;
        let mut hs = ExtHandshake::default();
        if let Some(m) = d.get(&b"m"[..]) {
            let m = m
                .as_dict()
                .ok_or_else(|| field("extension handshake m", "not a dictionary"))?;
            if m.len() > MAX_EXTENSIONS {
                return Err(Error::Limit {
                    what: "extension handshake m entries",
                    value: m.len() as u64,
                    limit: MAX_EXTENSIONS as u64,
                });
            }
            if let Some(long) = m.keys().find(|k| k.len() > MAX_NAME_LEN) {
                return Err(field(
                    "extension handshake m",
                    format!(
                        "a name of {} bytes is longer than {MAX_NAME_LEN}",
                        long.len()
                    ),
                ));
            }
            for ext in Extension::ALL {
                let key = ext.name();
                let what = "extension handshake m";
                if let Some(id) = int_field(m, key, what)? {
                    let id = ranged(id, 0, 255, key, what)?;
                    *hs.ids.slot(ext) = u8::try_from(id).ok();
                }
            }
            // Names we do not know are ignored whatever their value.
        }
        if let Some(v) = bytes_field(&d, "v", WHAT)? {
            if v.len() > MAX_CLIENT_LEN {
                return Err(field(
                    "extension handshake v",
                    format!("{} bytes is longer than {MAX_CLIENT_LEN}", v.len()),
                ));
            }
            hs.client = Some(String::from_utf8_lossy(v).into_owned());
        }
        if let Some(p) = int_field(&d, "p", WHAT)? {
            let p = ranged(p, 0, 65535, "p", WHAT)?;
            hs.listen_port = u16::try_from(p).ok().filter(|p| *p != 0);
        }
        if let Some(q) = int_field(&d, "reqq", WHAT)? {
            let q = ranged(q, 0, i64::from(u32::MAX), "reqq", WHAT)?;
            hs.reqq = u32::try_from(q).ok();
        }
        if let Some(s) = int_field(&d, "metadata_size", WHAT)? {
            // Sizes over MAX_METADATA_SIZE are kept: the peer may still
            // serve pieces, only MetadataAssembler::new refuses to fetch it.
            let s = ranged(s, 0, i64::from(u32::MAX), "metadata_size", WHAT)?;
            hs.metadata_size = u32::try_from(s).ok().filter(|s| *s != 0);
        }
        if let Some(ip) = bytes_field(&d, "yourip", WHAT)? {
            hs.yourip = Some(match ip.len() {
                4 => IpAddr::V4(Ipv4Addr::from([ip[0], ip[1], ip[2], ip[3]])),
                16 => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(ip);
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                n => {
                    return Err(field(
                        "extension handshake yourip",
                        format!("{n} bytes is neither 4 (IPv4) nor 16 (IPv6)"),
                    ));
                }
            });
        }
        Ok(hs)
    }

    /// Appends the bencoded handshake to `out` (the payload of extended
    /// message 0). Absent fields are left out.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Keys in sorted order: m, metadata_size, p, reqq, v, yourip; and
        // inside m: swarmsync_release, ut_metadata, ut_pex.
        out.push(b'd');
        put_bytes(out, b"m");
        out.push(b'd');
        for ext in Extension::ALL {
            if let Some(id) = self.ids.entry(ext) {
                put_key_int(out, ext.name(), i64::from(id));
            }
        }
        out.push(b'e');
        if let Some(s) = self.metadata_size {
            put_key_int(out, "metadata_size", i64::from(s));
        }
        if let Some(p) = self.listen_port {
            put_key_int(out, "p", i64::from(p));
        }
        if let Some(q) = self.reqq {
            put_key_int(out, "reqq", i64::from(q));
        }
        if let Some(v) = &self.client {
            put_key_bytes(out, "v", v.as_bytes());
        }
        if let Some(ip) = self.yourip {
            put_bytes(out, b"yourip");
            match ip {
                IpAddr::V4(a) => put_bytes(out, &a.octets()),
                IpAddr::V6(a) => put_bytes(out, &a.octets()),
            }
        }
        out.push(b'e');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::{Limits, validate};
    use crate::ext::{LOCAL_IDS, MAX_METADATA_SIZE};

    fn ours() -> ExtHandshake {
        ExtHandshake {
            listen_port: Some(6881),
            reqq: Some(500),
            metadata_size: Some(31_337),
            yourip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            ..ExtHandshake::ours()
        }
    }

    fn enc(hs: &ExtHandshake) -> Vec<u8> {
        let mut out = Vec::new();
        hs.encode(&mut out);
        out
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let v6 = ExtHandshake {
            yourip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..ours()
        };
        assert_eq!(ours().ids, LOCAL_IDS);
        assert!(ours().client.is_some_and(|c| c.starts_with("swarmsync ")));
        for hs in [ours(), v6, ExtHandshake::default()] {
            let bytes = enc(&hs);
            // Canonical bencode: validate checks form; bt_bencode re-encodes
            // sorted, so equal bytes mean our keys were sorted.
            validate(&bytes, &Limits::default()).expect("valid bencode");
            let value: bt_bencode::Value = bt_bencode::from_slice(&bytes).expect("decode");
            assert_eq!(bt_bencode::to_vec(&value).expect("encode"), bytes);
            assert_eq!(ExtHandshake::decode(&bytes), Ok(hs));
        }
    }

    #[test]
    fn reads_a_libtorrent_style_handshake() {
        let bytes = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5120e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01e";
        let hs = ExtHandshake::decode(bytes).expect("decode");
        assert_eq!(hs.ids.id(Extension::Metadata), Some(2));
        assert_eq!(hs.ids.id(Extension::Pex), Some(1));
        assert_eq!(hs.ids.id(Extension::Release), None);
        assert_eq!(hs.client.as_deref(), Some("libtorrent/2.0.8.0"));
        assert_eq!(hs.metadata_size, Some(5120));
        assert_eq!(hs.reqq, Some(500));
        assert_eq!(hs.listen_port, None);
        assert_eq!(hs.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn zero_means_off_or_absent() {
        let hs =
            ExtHandshake::decode(b"d1:md6:ut_pexi0ee13:metadata_sizei0e1:pi0ee").expect("decode");
        assert_eq!(hs.ids.entry(Extension::Pex), Some(0));
        assert_eq!(hs.ids.id(Extension::Pex), None);
        assert_eq!(hs.metadata_size, None);
        assert_eq!(hs.listen_port, None);
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = enc(&ours());
        for cut in 0..bytes.len() {
            assert!(ExtHandshake::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    fn refused(bytes: &[u8]) -> Error {
        match ExtHandshake::decode(bytes) {
            Ok(hs) => panic!("accepted {:?}: {hs:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e,
        }
    }

    #[test]
    fn hostile_fields_are_refused_by_name() {
        let cases: [(&[u8], &str); 10] = [
            (b"d1:mi1ee", "extension handshake m"),
            (b"d1:md6:ut_pexi256eee", "extension handshake m ut_pex"),
            (b"d1:md11:ut_metadatai-1eee", "m ut_metadata"),
            (b"d1:md6:ut_pex1:xee", "m ut_pex"),
            (b"d1:pi65536ee", "extension handshake p"),
            (b"d4:reqqi-5ee", "extension handshake reqq"),
            (b"d4:reqqi4294967296ee", "extension handshake reqq"),
            (b"d13:metadata_sizei-1ee", "metadata_size"),
            (b"d6:yourip3:abce", "extension handshake yourip"),
            (b"d1:vi3ee", "extension handshake v"),
        ];
        for (bytes, name) in cases {
            let e = refused(bytes).to_string();
            assert!(e.contains(name), "{e:?} should name {name:?}");
        }
        let huge = ExtHandshake::decode(b"d13:metadata_sizei16777217ee").expect("kept");
        assert_eq!(huge.metadata_size, Some(MAX_METADATA_SIZE + 1));
        assert!(
            refused(b"d13:metadata_sizei4294967296ee")
                .to_string()
                .contains("metadata_size")
        );
        let long_v = format!(
            "d1:v{}:{}e",
            MAX_CLIENT_LEN + 1,
            "a".repeat(MAX_CLIENT_LEN + 1)
        );
        assert!(
            refused(long_v.as_bytes())
                .to_string()
                .contains("handshake v")
        );
        let long_name = format!(
            "d1:md{}:{}i1eee",
            MAX_NAME_LEN + 1,
            "n".repeat(MAX_NAME_LEN + 1)
        );
        assert!(
            refused(long_name.as_bytes())
                .to_string()
                .contains("handshake m")
        );
        let mut many = String::from("d1:md");
        for i in 0..=MAX_EXTENSIONS {
            let name = format!("x{i:03}");
            many.push_str(&format!("{}:{name}i1e", name.len()));
        }
        many.push_str("ee");
        assert!(matches!(refused(many.as_bytes()), Error::Limit { .. }));
        let big = vec![b'd'; MAX_HANDSHAKE_LEN + 1];
        assert!(matches!(refused(&big), Error::Limit { .. }));
        // Deep nesting in an ignored field is still bounded.
        let deep = [&b"d1:x"[..], &[b'l'; 100], &[b'e'; 100], b"e"].concat();
        assert!(matches!(refused(&deep), Error::Bencode(_)));
    }

    #[test]
    fn unsorted_keys_are_read() {
        // Not canonical bencode, but clients that build dictionaries by hand
        // send it, and libtorrent reads it.
        let hs = ExtHandshake::decode(b"d1:v1:x1:md6:ut_pexi1eee").expect("decode");
        assert_eq!(hs.ids.id(Extension::Pex), Some(1));
        assert_eq!(hs.client.as_deref(), Some("x"));
    }

    #[test]
    fn unknown_fields_and_names_are_ignored() {
        let hs = ExtHandshake::decode(b"d1:md3:fooi999e3:barlee3:zzzd1:ali1eeee").expect("decode");
        assert_eq!(hs, ExtHandshake::default());
    }
}
