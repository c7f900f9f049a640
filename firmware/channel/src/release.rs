//! The release manifest and the signed envelope around it: encoding and
//! bounded parsing.
//!
//! Parsing runs in two steps on untrusted bytes: `torrent::bencode::validate`
//! first (size, depth and item count bounded, no recursion), then
//! `bt_bencode` into a value tree that is re-encoded and compared with the
//! input. That comparison is what makes the format canonical: unsorted or
//! duplicated keys, which could make two parsers read one signed blob two
//! ways, are refused instead of silently resolved.
//!
//! Every field is then checked on its own and a failure names it
//! (`release.seq`, `delegation.expires`, ...). Unknown fields are ignored,
//! so a newer origin can add fields without breaking older nodes.

use std::collections::BTreeMap;

use bt_bencode::value::Number;
use bt_bencode::{ByteString, Value};
use torrent::bencode::{Limits, top_level_span, validate};

use crate::key::{Delegation, PublicKey};
use crate::{Rejection, hex};

/// Largest signed release, envelope and delegation included.
pub const MAX_SIGNED: usize = 64 * 1024;
/// Most entries in each URL or peer list of a release.
pub const MAX_LIST: usize = 64;
/// Longest URL or `host:port` string.
pub const MAX_STRING: usize = 2048;
/// Longest channel name.
pub const MAX_CHANNEL_LEN: usize = 64;

/// What the release signature covers, before the raw `release` bytes.
pub(crate) const RELEASE_DOMAIN: &[u8] = b"swarmsync release v1\0";

/// Bounds for the first pass over untrusted envelopes: a release is a few
/// lists of short strings, so a flat and small structure. The item bound
/// leaves room for fields a newer origin may add; decoded, 8,192 values of
/// at most 64 KiB in total stay well under a MiB.
const LIMITS: Limits = Limits {
    max_size: MAX_SIGNED,
    max_depth: 8,
    max_items: 8192,
};

/// One publication of a channel: which snapshot, for how long, and where to
/// find it. Built by the origin, returned by [`crate::accept`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Release {
    /// The channel name (see [`valid_channel_name`]).
    pub channel: String,
    /// Strictly increasing per channel; a node never goes back.
    pub seq: u64,
    /// When the origin made it, Unix seconds.
    pub created: u64,
    /// After this (Unix seconds) nodes refuse it: a frozen feed cannot pin
    /// nodes to an old snapshot forever. Must be after `created`.
    pub expires: u64,
    /// The snapshot's v2 infohash (full SHA-256).
    pub v2: [u8; 32],
    /// The snapshot's v1 infohash, for hybrid torrents.
    pub v1: Option<[u8; 20]>,
    /// Bytes in the snapshot.
    pub size: u64,
    /// Files in the snapshot.
    pub files: u64,
    /// URLs of the snapshot's .torrent file.
    pub torrents: Vec<String>,
    /// URLs of release feeds (`/-/releases/<channel>`).
    pub feeds: Vec<String>,
    /// Web seed URLs (BEP 19).
    pub web_seeds: Vec<String>,
    /// Peer hints, `host:port`.
    pub peers: Vec<String>,
    /// Tracker URLs.
    pub trackers: Vec<String>,
}

/// Whether `name` can name a channel: 1 to [`MAX_CHANNEL_LEN`] ASCII
/// letters, digits, `-`, `_` or `.`, not starting with `.`. Channel names
/// appear in URLs (`/-/releases/<channel>`) and paths, hence the narrow set.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Release {
    /// The canonical bencoding of the release dictionary (sorted keys; empty
    /// lists and an absent v1 left out).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.push(b'd');
        put_str(&mut out, "channel", self.channel.as_bytes());
        put_int(&mut out, "created", self.created);
        put_int(&mut out, "expires", self.expires);
        put_list(&mut out, "feeds", &self.feeds);
        put_int(&mut out, "files", self.files);
        put_list(&mut out, "peers", &self.peers);
        put_int(&mut out, "seq", self.seq);
        put_int(&mut out, "size", self.size);
        put_list(&mut out, "torrents", &self.torrents);
        put_list(&mut out, "trackers", &self.trackers);
        if let Some(v1) = &self.v1 {
            put_str(&mut out, "v1", v1);
        }
        put_str(&mut out, "v2", &self.v2);
        put_list(&mut out, "web_seeds", &self.web_seeds);
        out.push(b'e');
        out
    }

    /// The v2 infohash in lowercase hex.
    pub fn v2_hex(&self) -> String {
        hex::encode(&self.v2)
    }

    /// The v1 infohash in lowercase hex, if any.
    pub fn v1_hex(&self) -> Option<String> {
        self.v1.map(|v1| hex::encode(&v1))
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

pub(crate) fn put_str(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    put_bytes(out, key.as_bytes());
    put_bytes(out, value);
}

pub(crate) fn put_int(out: &mut Vec<u8>, key: &str, value: u64) {
    put_bytes(out, key.as_bytes());
    // Bencode integers are i64 on every reader; clamp instead of writing a
    // value nobody can parse back (no real time or size comes close).
    let value = value.min(i64::MAX as u64);
    out.push(b'i');
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'e');
}

fn put_list(out: &mut Vec<u8>, key: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    put_bytes(out, key.as_bytes());
    out.push(b'l');
    for v in values {
        put_bytes(out, v.as_bytes());
    }
    out.push(b'e');
}

/// The parts of a signed release, borrowed from the received bytes.
pub(crate) struct Envelope<'a> {
    /// The exact bytes of the `release` value: what `sig` signs.
    pub release_raw: &'a [u8],
    /// The decoded `release` value (fields not yet checked).
    pub release: Value,
    /// The key that made `sig`: the root, or the delegated key.
    pub key: PublicKey,
    pub sig: [u8; 64],
    pub delegation: Option<Delegation>,
}

pub(crate) fn malformed(field: impl Into<String>, problem: impl Into<String>) -> Rejection {
    Rejection::Malformed {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Splits a signed release into its parts. Checks structure only: sizes,
/// canonical form, types of the envelope fields. No signature is checked.
pub(crate) fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Rejection> {
    if bytes.len() > MAX_SIGNED {
        return Err(Rejection::TooLarge {
            size: bytes.len(),
            limit: MAX_SIGNED,
        });
    }
    validate(bytes, &LIMITS).map_err(|e| malformed("signed release", e.to_string()))?;
    let value: Value = bt_bencode::from_slice(bytes)
        .map_err(|e| malformed("signed release", format!("not bencode: {e}")))?;
    let canonical = bt_bencode::to_vec(&value).is_ok_and(|again| again == bytes);
    if !canonical {
        return Err(malformed(
            "signed release",
            "not canonical bencode (dictionary keys unsorted or repeated)",
        ));
    }
    let Value::Dict(top) = value else {
        return Err(malformed("signed release", "not a dictionary"));
    };
    let fields = Fields::new(&top, "");
    let key = PublicKey(fields.bytes::<32>("key")?);
    let sig = fields.bytes::<64>("sig")?;
    let delegation = match top.get(b"delegation".as_slice()) {
        None => None,
        Some(Value::Dict(d)) => Some(Delegation::from_dict(d)?),
        Some(_) => return Err(malformed("delegation", "not a dictionary")),
    };
    let release = match top.get(b"release".as_slice()) {
        Some(v @ Value::Dict(_)) => v.clone(),
        Some(_) => return Err(malformed("release", "not a dictionary")),
        None => return Err(malformed("release", "missing")),
    };
    let span = top_level_span(bytes, b"release", &LIMITS)
        .ok_or_else(|| malformed("release", "missing"))?;
    let release_raw = bytes
        .get(span)
        .ok_or_else(|| malformed("release", "span out of range"))?;
    Ok(Envelope {
        release_raw,
        release,
        key,
        sig,
        delegation,
    })
}

/// Checks every field of a decoded `release` dictionary.
pub(crate) fn parse_release(value: &Value) -> Result<Release, Rejection> {
    let Value::Dict(dict) = value else {
        return Err(malformed("release", "not a dictionary"));
    };
    let f = Fields::new(dict, "release.");
    let channel = f.string("channel", MAX_CHANNEL_LEN)?;
    if !valid_channel_name(&channel) {
        return Err(f.bad(
            "channel",
            "not a channel name (letters, digits, '-', '_', '.'; not starting with '.')",
        ));
    }
    let created = f.u64("created")?;
    let expires = f.u64("expires")?;
    if expires <= created {
        return Err(f.bad(
            "expires",
            format!("{expires} is not after created {created}"),
        ));
    }
    Ok(Release {
        channel,
        seq: f.u64("seq")?,
        created,
        expires,
        v2: f.bytes::<32>("v2")?,
        v1: f.opt_bytes::<20>("v1")?,
        size: f.u64("size")?,
        files: f.u64("files")?,
        torrents: f.strings("torrents", check_http_url)?,
        feeds: f.strings("feeds", check_http_url)?,
        web_seeds: f.strings("web_seeds", check_http_url)?,
        peers: f.strings("peers", check_peer)?,
        trackers: f.strings("trackers", check_tracker_url)?,
    })
}

/// The release in `bytes` without checking any signature, key, channel,
/// sequence or time: for reading back what this origin published itself
/// (its last `seq`), never for deciding what to install.
pub fn parse_unverified(bytes: &[u8]) -> Result<Release, Rejection> {
    let envelope = parse_envelope(bytes)?;
    parse_release(&envelope.release)
}

fn check_text(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty entry");
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or control characters");
    }
    Ok(())
}

fn check_http_url(s: &str) -> Result<(), &'static str> {
    check_text(s)?;
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("not an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("URL has no host");
    }
    Ok(())
}

fn check_tracker_url(s: &str) -> Result<(), &'static str> {
    if let Some(rest) = s.strip_prefix("udp://") {
        check_text(s)?;
        return if rest.is_empty() {
            Err("URL has no host")
        } else {
            Ok(())
        };
    }
    check_http_url(s).map_err(|_| "not an http://, https:// or udp:// URL")
}

fn check_peer(s: &str) -> Result<(), &'static str> {
    check_text(s)?;
    let (host, port) = s.rsplit_once(':').ok_or("not host:port")?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("not host:port (no host)");
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err("not host:port (bad port)"),
    }
}

type Dict = BTreeMap<ByteString, Value>;

/// Typed access to one dictionary's fields, with errors naming
/// `prefix` + field.
pub(crate) struct Fields<'a> {
    dict: &'a Dict,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(dict: &'a Dict, prefix: &'static str) -> Self {
        Fields { dict, prefix }
    }

    pub(crate) fn bad(&self, name: &str, problem: impl Into<String>) -> Rejection {
        malformed(format!("{}{name}", self.prefix), problem)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.dict.get(name.as_bytes())
    }

    pub(crate) fn u64(&self, name: &str) -> Result<u64, Rejection> {
        match self.get(name) {
            None => Err(self.bad(name, "missing")),
            Some(Value::Int(Number::Unsigned(n))) => Ok(*n),
            Some(Value::Int(Number::Signed(n))) => {
                u64::try_from(*n).map_err(|_| self.bad(name, format!("{n} is negative")))
            }
            Some(_) => Err(self.bad(name, "not an integer")),
        }
    }

    pub(crate) fn bytes<const N: usize>(&self, name: &str) -> Result<[u8; N], Rejection> {
        self.opt_bytes(name)?
            .ok_or_else(|| self.bad(name, "missing"))
    }

    pub(crate) fn opt_bytes<const N: usize>(
        &self,
        name: &str,
    ) -> Result<Option<[u8; N]>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::ByteStr(b)) => <[u8; N]>::try_from(b.as_slice())
                .map(Some)
                .map_err(|_| self.bad(name, format!("{} bytes, expected {N}", b.len()))),
            Some(_) => Err(self.bad(name, "not a byte string")),
        }
    }

    pub(crate) fn string(&self, name: &str, max: usize) -> Result<String, Rejection> {
        match self.get(name) {
            None => Err(self.bad(name, "missing")),
            Some(v) => self.text(name, v, max),
        }
    }

    fn text(&self, name: &str, v: &Value, max: usize) -> Result<String, Rejection> {
        let Value::ByteStr(b) = v else {
            return Err(self.bad(name, "not a string"));
        };
        if b.len() > max {
            return Err(self.bad(name, format!("{} bytes, over the limit of {max}", b.len())));
        }
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| self.bad(name, "not UTF-8"))
    }

    /// An optional list of strings (missing = empty), each checked.
    fn strings(
        &self,
        name: &str,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Result<Vec<String>, Rejection> {
        let list = match self.get(name) {
            None => return Ok(Vec::new()),
            Some(Value::List(list)) => list,
            Some(_) => return Err(self.bad(name, "not a list")),
        };
        if list.len() > MAX_LIST {
            return Err(self.bad(
                name,
                format!("{} entries, over the limit of {MAX_LIST}", list.len()),
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                let s = self.text(name, v, MAX_STRING)?;
                check(&s).map_err(|why| self.bad(name, format!("entry {i} {s:?}: {why}")))?;
                Ok(s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Release {
        Release {
            channel: "debian-bookworm".into(),
            seq: 7,
            created: 1_800_000_000,
            expires: 1_800_000_000 + 86_400,
            v2: [0x22; 32],
            v1: Some([0x11; 20]),
            size: 123_456,
            files: 42,
            torrents: vec!["https://mirror.example.org/-/torrents/7.torrent".into()],
            feeds: vec!["https://mirror.example.org/-/releases/debian-bookworm".into()],
            web_seeds: vec!["https://mirror.example.org/debian-bookworm/".into()],
            peers: vec!["192.0.2.1:6881".into(), "[2001:db8::1]:6881".into()],
            trackers: vec!["udp://tracker.example.org:6969".into()],
        }
    }

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let r = sample();
        let raw = r.encode();
        let value: Value = bt_bencode::from_slice(&raw).expect("decode");
        assert_eq!(
            bt_bencode::to_vec(&value).expect("encode"),
            raw,
            "sorted keys"
        );
        assert_eq!(parse_release(&value), Ok(r));
        let minimal = Release {
            v1: None,
            torrents: vec![],
            feeds: vec![],
            web_seeds: vec![],
            peers: vec![],
            trackers: vec![],
            ..sample()
        };
        let raw = minimal.encode();
        let value: Value = bt_bencode::from_slice(&raw).expect("decode");
        assert_eq!(bt_bencode::to_vec(&value).expect("encode"), raw);
        assert_eq!(parse_release(&value), Ok(minimal));
    }

    #[test]
    fn channel_names() {
        for ok in ["a", "debian-bookworm", "el9_x86.64", &"x".repeat(64)] {
            assert!(valid_channel_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "*", "é", &"x".repeat(65)] {
            assert!(!valid_channel_name(bad), "{bad}");
        }
    }

    #[test]
    fn list_entries_are_checked() {
        assert!(check_http_url("http://h/x").is_ok());
        assert!(check_http_url("ftp://h/x").is_err());
        assert!(check_http_url("https:///x").is_err());
        assert!(check_http_url("http://h/a b").is_err());
        assert!(check_tracker_url("udp://h:1").is_ok());
        assert!(check_tracker_url("udp://").is_err());
        assert!(check_peer("h:1").is_ok());
        assert!(check_peer("[::1]:6881").is_ok());
        assert!(check_peer("h").is_err());
        assert!(check_peer(":1").is_err());
        assert!(check_peer("h:0").is_err());
        assert!(check_peer("h:70000").is_err());
    }
}
