//! Finding peers: HTTP trackers (BEP 3, compact peer lists BEP 23), UDP
//! trackers (BEP 15) and local service discovery (BEP 14), without IO.
//!
//! Why here and not in the driver: everything a tracker or a LAN neighbour
//! sends is untrusted, and the parsers are where a hostile answer must be
//! stopped — an endless peer list, a huge body, a truncated packet. Keeping
//! them free of sockets and clocks lets them be unit-tested byte for byte and
//! fuzzed (`fuzz/fuzz_targets/tracker_*.rs`, `lsd.rs`). The UDP exchange, with
//! its retransmission timer and connection ids, is a small state machine
//! ([`udp::UdpAnnounce`]) fed datagrams and `now`, so its timing is tested with
//! virtual time. The driver (`swarm::tracker`, `swarm::lsd`) only moves the
//! bytes these functions produce and consume.
//!
//! Every parser is bounded by [`Limits`] (message size, peer count) or by the
//! fixed bounds of [`lsd`], and refuses with a [`TrackerError`] that names
//! the part at fault.
//!
//! - [`http`]: the announce query string and GET request, the HTTP/1.1 reply
//!   framing and the bencoded response.
//! - [`udp`]: BEP 15 packets and the announce state machine.
//! - [`lsd`]: BEP 14 `BT-SEARCH` messages.
//! - [`TrackerUrl`]: `http://`, `https://` and `udp://` announce URLs.

pub mod http;
pub mod lsd;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::hash::Sha1;

/// Why a tracker exchange or an LSD message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// The tracker refused the announce (`failure reason` of an HTTP tracker,
    /// or the message of a BEP 15 error packet).
    #[error("tracker refused the announce: {0}")]
    Failure(String),
    /// A message over a size bound.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// More peers than [`Limits::max_peers`].
    #[error("{what} lists {count} peers, over the limit of {limit}")]
    TooManyPeers {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    /// A malformed part of a message; `what` names it.
    #[error("bad {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A required part is absent.
    #[error("{what} has no {field}")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
    /// An HTTP tracker answered with a status other than 200 and no
    /// `failure reason`.
    #[error("tracker answered HTTP {status} {reason}")]
    HttpStatus { status: u16, reason: String },
    /// A tracker URL that cannot be announced to.
    #[error("bad tracker URL {url}: {reason}")]
    Url { url: String, reason: String },
    /// A UDP tracker did not answer any of the transmissions.
    #[error("no answer from the UDP tracker after {tries} tries")]
    Timeout { tries: u32 },
}

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> TrackerError {
    TrackerError::Malformed {
        what,
        reason: reason.into(),
    }
}

/// Bounds on what a tracker may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest HTTP response body or UDP packet accepted.
    pub max_message: usize,
    /// Most peers accepted from one response (IPv4 and IPv6 together).
    pub max_peers: usize,
}

impl Default for Limits {
    /// 256 KiB and 2,000 peers: a dictionary-model list of 2,000 peers is
    /// about 160 KiB; real trackers send 50–200.
    fn default() -> Self {
        Self {
            max_message: 256 << 10,
            max_peers: 2000,
        }
    }
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Event {
    /// A regular re-announce.
    #[default]
    None,
    /// The download finished (sent once).
    Completed,
    /// The first announce of a torrent.
    Started,
    /// The client is leaving the swarm.
    Stopped,
}

impl Event {
    /// The HTTP `event=` value; `None` for a regular announce.
    pub fn as_http(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Completed => Some("completed"),
            Event::Started => Some("started"),
            Event::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code.
    pub fn as_udp(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// What a client tells a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The v1 infohash, or the truncated v2 infohash (BEP 52).
    pub info_hash: Sha1,
    pub peer_id: [u8; 20],
    /// The port peers connect to.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// A random value that identifies the client across address changes.
    pub key: u32,
}

/// What a tracker answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// When to announce again.
    pub interval: Duration,
    /// Announcing sooner than this is refused by the tracker.
    pub min_interval: Option<Duration>,
    /// Peers with the whole torrent, if the tracker says.
    pub seeders: Option<u32>,
    /// Peers still downloading, if the tracker says.
    pub leechers: Option<u32>,
    /// Peers to try, IPv4 then IPv6; entries with port 0 are dropped.
    pub peers: Vec<SocketAddr>,
    /// An HTTP tracker's `warning message`.
    pub warning: Option<String>,
}

/// How much of a tracker's free text (failure reasons, warnings) is kept.
pub const MAX_TEXT: usize = 512;

/// Tracker text as a bounded, printable string: lossy UTF-8, control
/// characters replaced, cut at [`MAX_TEXT`] bytes.
pub(crate) fn tracker_text(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_TEXT)];
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Appends the peers of a compact list (BEP 23: 6 bytes each for IPv4,
/// 18 for IPv6) to `out`, refusing a length that is not a whole number of
/// entries or that would take `out` over `limit` entries.
pub(crate) fn compact_peers(
    bytes: &[u8],
    ipv6: bool,
    what: &'static str,
    limit: usize,
    out: &mut Vec<SocketAddr>,
) -> Result<(), TrackerError> {
    let size = if ipv6 { 18 } else { 6 };
    if !bytes.len().is_multiple_of(size) {
        return Err(malformed(
            what,
            format!(
                "compact list of {} bytes is not a multiple of {size}",
                bytes.len()
            ),
        ));
    }
    let count = bytes.len() / size;
    if out.len() + count > limit {
        return Err(TrackerError::TooManyPeers {
            what,
            count: out.len() + count,
            limit,
        });
    }
    out.reserve(count);
    for entry in bytes.chunks_exact(size) {
        let (ip, port) = entry.split_at(size - 2);
        let port = u16::from_be_bytes([port[0], port[1]]);
        let ip = if ipv6 {
            let mut a = [0u8; 16];
            a.copy_from_slice(ip);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
        };
        if port != 0 {
            out.push(SocketAddr::new(ip, port));
        }
    }
    Ok(())
}

/// Longest tracker URL accepted.
pub const MAX_URL: usize = 2048;

/// The scheme of a tracker URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    Udp,
}

/// A parsed announce URL. Only what a tracker client needs: no user info,
/// no percent-decoding of the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackerUrl {
    pub scheme: Scheme,
    /// A host name or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/` (`/announce?passkey=…`). For UDP
    /// trackers this is BEP 41's request string, which is not sent.
    pub path: String,
}

impl TrackerUrl {
    pub fn parse(url: &str) -> Result<TrackerUrl, TrackerError> {
        let bad = |reason: &str| TrackerError::Url {
            url: tracker_text(url.as_bytes()),
            reason: reason.to_owned(),
        };
        if url.len() > MAX_URL {
            return Err(bad(&format!("longer than {MAX_URL} bytes")));
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("contains spaces or control characters"));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Scheme::Http, Some(80)),
            "https" => (Scheme::Https, Some(443)),
            "udp" => (Scheme::Udp, None),
            _ => return Err(bad("scheme is not http, https or udp")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("bad IPv6 literal"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(bad("bad character in host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None => default_port.ok_or_else(|| bad("no port"))?,
        };
        let path = if path.is_empty() {
            "/".to_owned()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(TrackerUrl {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The host as written in a URL or a `Host:` header (IPv6 in brackets).
    pub fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = TrackerUrl::parse("http://tracker.example:6969/announce").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "tracker.example");
        assert_eq!(u.port, 6969);
        assert_eq!(u.path, "/announce");

        let u = TrackerUrl::parse("HTTPS://t.example/a?passkey=x#frag").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Https, 443));
        assert_eq!(u.path, "/a?passkey=x");

        let u = TrackerUrl::parse("udp://[::1]:80").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Udp, "::1", 80)
        );
        assert_eq!(u.path, "/");
        assert_eq!(u.host_for_url(), "[::1]");

        let u = TrackerUrl::parse("http://127.0.0.1?x=1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/?x=1"));

        for bad in [
            "tracker.example/announce",
            "ftp://x/",
            "udp://x/announce",
            "http://x:0/",
            "http://x:99999/",
            "http://user@x/",
            "http://[::1/",
            "http://[zz]/",
            "http:///a",
            "http://a b/",
            "http://x\n/",
            "http://x%41/",
        ] {
            assert!(
                matches!(TrackerUrl::parse(bad), Err(TrackerError::Url { .. })),
                "{bad}"
            );
        }
        let long = format!("http://x/{}", "a".repeat(MAX_URL));
        assert!(TrackerUrl::parse(&long).is_err());
    }

    #[test]
    fn compact_lists() {
        let mut out = Vec::new();
        compact_peers(
            &[1, 2, 3, 4, 0x1a, 0xe1, 5, 6, 7, 8, 0, 0],
            false,
            "peers",
            10,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec!["1.2.3.4:6881".parse().unwrap()]);
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[17] = 80;
        compact_peers(&v6, true, "peers6", 10, &mut out).unwrap();
        assert_eq!(out[1], "[::1]:80".parse().unwrap());
        assert!(matches!(
            compact_peers(&[0; 7], false, "peers", 10, &mut out),
            Err(TrackerError::Malformed { what: "peers", .. })
        ));
        assert!(matches!(
            compact_peers(&[1; 18], false, "peers", 4, &mut out),
            Err(TrackerError::TooManyPeers { count: 5, .. })
        ));
    }

    #[test]
    fn text_is_bounded_and_printable() {
        assert_eq!(tracker_text(b"a\nb\xff"), "a?b\u{fffd}");
        assert_eq!(tracker_text(&[b'x'; 2000]).len(), MAX_TEXT);
    }
}
