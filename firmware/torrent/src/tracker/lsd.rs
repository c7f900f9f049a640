//! Local service discovery (BEP 14): `BT-SEARCH` announces multicast on
//! the LAN.
//!
//! LSD is how nodes on one LAN find each other without any tracker or the
//! WAN, which is the common case for swarmsync appliances. Anyone on the LAN
//! can send these datagrams, so [`parse`] is strict about the shape, bounded
//! in size ([`MAX_MESSAGE`]) and infohash count ([`MAX_INFOHASHES`]), and
//! only returns what a driver needs: the port and the infohashes (the peer's
//! IP address is the datagram's source, never a header). The `cookie`
//! lets a client recognise and drop its own announces, which multicast
//! loopback delivers back to it.
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: 5f3a…\r\n
//! \r\n
//! \r\n
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{TrackerError, malformed};
use crate::hash::{Sha1, from_hex, to_hex};

/// The UDP port of both multicast groups.
pub const PORT: u16 = 6771;
/// The IPv4 multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 multicast group (site-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// Largest message sent or accepted: one datagram within an Ethernet MTU.
pub const MAX_MESSAGE: usize = 1400;
/// Most infohashes in one message, sent or accepted. [`build`] splits longer
/// lists over several messages.
pub const MAX_INFOHASHES: usize = 16;
/// Longest cookie sent or accepted.
pub const MAX_COOKIE: usize = 64;

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";
const WHAT: &str = "LSD message";

/// What an LSD message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The port the sender accepts peer connections on.
    pub port: u16,
    pub infohashes: Vec<Sha1>,
    pub cookie: Option<String>,
}

fn valid_cookie(c: &str) -> bool {
    !c.is_empty() && c.len() <= MAX_COOKIE && c.bytes().all(|b| b.is_ascii_graphic())
}

/// Builds the messages announcing `infohashes` on the IPv4 or IPv6 group,
/// [`MAX_INFOHASHES`] per message. A cookie must be 1 to [`MAX_COOKIE`]
/// printable ASCII characters without spaces.
pub fn build(
    ipv6: bool,
    port: u16,
    cookie: Option<&str>,
    infohashes: &[Sha1],
) -> Result<Vec<Vec<u8>>, TrackerError> {
    if let Some(c) = cookie
        && !valid_cookie(c)
    {
        return Err(malformed(
            "LSD cookie",
            "not 1 to 64 printable ASCII characters",
        ));
    }
    if port == 0 {
        return Err(malformed("LSD port", "0"));
    }
    let host = if ipv6 {
        format!("[{GROUP_V6}]:{PORT}")
    } else {
        format!("{GROUP_V4}:{PORT}")
    };
    Ok(infohashes
        .chunks(MAX_INFOHASHES)
        .map(|chunk| {
            let mut m = format!("{REQUEST_LINE}\r\nHost: {host}\r\nPort: {port}\r\n");
            for ih in chunk {
                m.push_str("Infohash: ");
                m.push_str(&to_hex(ih));
                m.push_str("\r\n");
            }
            if let Some(c) = cookie {
                m.push_str("cookie: ");
                m.push_str(c);
                m.push_str("\r\n");
            }
            m.push_str("\r\n\r\n");
            m.into_bytes()
        })
        .collect())
}

/// Parses a received LSD datagram.
pub fn parse(buf: &[u8]) -> Result<Announce, TrackerError> {
    if buf.len() > MAX_MESSAGE {
        return Err(TrackerError::TooLarge {
            what: WHAT,
            size: buf.len(),
            limit: MAX_MESSAGE,
        });
    }
    let text = std::str::from_utf8(buf).map_err(|_| malformed(WHAT, "not UTF-8"))?;
    // BEP 14 says CRLF; accept bare LF as other clients do.
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some(REQUEST_LINE) {
        return Err(malformed(WHAT, "not a BT-SEARCH request"));
    }
    let mut port = None;
    let mut infohashes = Vec::new();
    let mut cookie = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(WHAT, "a header line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("port") {
            if port.is_some() {
                return Err(malformed("LSD Port", "given twice"));
            }
            let p = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && !value.starts_with('+'))
                .ok_or_else(|| malformed("LSD Port", "not a port from 1 to 65535"))?;
            port = Some(p);
        } else if name.eq_ignore_ascii_case("infohash") {
            if infohashes.len() == MAX_INFOHASHES {
                return Err(TrackerError::TooLarge {
                    what: "LSD infohash list",
                    size: MAX_INFOHASHES + 1,
                    limit: MAX_INFOHASHES,
                });
            }
            let ih = from_hex::<20>(value)
                .ok_or_else(|| malformed("LSD Infohash", "not 40 hex characters"))?;
            if !infohashes.contains(&ih) {
                infohashes.push(ih);
            }
        } else if name.eq_ignore_ascii_case("cookie") {
            if !valid_cookie(value) {
                return Err(malformed(
                    "LSD cookie",
                    "not 1 to 64 printable ASCII characters",
                ));
            }
            cookie = Some(value.to_owned());
        }
        // Host and unknown headers are ignored.
    }
    let port = port.ok_or(TrackerError::Missing {
        what: WHAT,
        field: "Port",
    })?;
    if infohashes.is_empty() {
        return Err(TrackerError::Missing {
            what: WHAT,
            field: "Infohash",
        });
    }
    Ok(Announce {
        port,
        infohashes,
        cookie,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ih = [[0xab; 20], [0x01; 20]];
        let msgs = build(false, 6881, Some("c00kie"), &ih).unwrap();
        assert_eq!(msgs.len(), 1);
        let text = String::from_utf8(msgs[0].clone()).unwrap();
        assert_eq!(
            text,
            "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
             Infohash: abababababababababababababababababababab\r\n\
             Infohash: 0101010101010101010101010101010101010101\r\n\
             cookie: c00kie\r\n\r\n\r\n"
        );
        assert_eq!(
            parse(&msgs[0]).unwrap(),
            Announce {
                port: 6881,
                infohashes: ih.to_vec(),
                cookie: Some("c00kie".into())
            }
        );
        let v6 = build(true, 1, None, &ih[..1]).unwrap();
        assert!(v6[0].starts_with(b"BT-SEARCH * HTTP/1.1\r\nHost: [ff15::efc0:988f]:6771\r\n"));
        assert_eq!(parse(&v6[0]).unwrap().cookie, None);
    }

    #[test]
    fn long_lists_are_split_and_fit_a_datagram() {
        let ih: Vec<Sha1> = (0..40u8).map(|i| [i; 20]).collect();
        let cookie = "x".repeat(MAX_COOKIE);
        let msgs = build(true, 65535, Some(&cookie), &ih).unwrap();
        assert_eq!(msgs.len(), 3);
        let mut all = Vec::new();
        for m in &msgs {
            assert!(m.len() <= MAX_MESSAGE, "{}", m.len());
            all.extend(parse(m).unwrap().infohashes);
        }
        assert_eq!(all, ih);
        assert!(build(false, 1, None, &[]).unwrap().is_empty());
        assert!(build(false, 1, Some("a b"), &ih).is_err());
        assert!(build(false, 1, Some(""), &ih).is_err());
        assert!(build(false, 0, None, &ih).is_err());
    }

    #[test]
    fn lenient_where_clients_differ() {
        let m = b"BT-SEARCH * HTTP/1.1\nhost: x\nPORT: 7000\ninfohash: ABABABABABABABABABABABABABABABABABABABAB\nX-Other: 1\n\n";
        let a = parse(m).unwrap();
        assert_eq!(a.port, 7000);
        assert_eq!(a.infohashes, vec![[0xab; 20]]);
        // Headers after the blank line are not read.
        let m = b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: 0101010101010101010101010101010101010101\r\n\r\ncookie: a b\r\n";
        assert_eq!(parse(m).unwrap().cookie, None);
    }

    #[test]
    fn refusals() {
        let ih = "Infohash: 0101010101010101010101010101010101010101\r\n";
        let cases: Vec<(String, &str)> = vec![
            ("GET / HTTP/1.1\r\nPort: 1\r\n".into(), WHAT),
            (format!("{REQUEST_LINE}\r\n{ih}\r\n"), "Port"),
            (format!("{REQUEST_LINE}\r\nPort: 1\r\n\r\n"), "Infohash"),
            (format!("{REQUEST_LINE}\r\nPort: 0\r\n{ih}"), "LSD Port"),
            (format!("{REQUEST_LINE}\r\nPort: +1\r\n{ih}"), "LSD Port"),
            (format!("{REQUEST_LINE}\r\nPort: 70000\r\n{ih}"), "LSD Port"),
            (
                format!("{REQUEST_LINE}\r\nPort: 1\r\nPort: 2\r\n{ih}"),
                "LSD Port",
            ),
            (
                format!("{REQUEST_LINE}\r\nPort: 1\r\nInfohash: 0101\r\n"),
                "LSD Infohash",
            ),
            (
                format!("{REQUEST_LINE}\r\nPort: 1\r\n{ih}cookie: \r\n"),
                "LSD cookie",
            ),
            (format!("{REQUEST_LINE}\r\nPort 1\r\n{ih}"), WHAT),
        ];
        for (m, what) in cases {
            let e = parse(m.as_bytes()).unwrap_err();
            let ok = match &e {
                TrackerError::Malformed { what: w, .. } => *w == what,
                TrackerError::Missing { field, .. } => *field == what,
                _ => false,
            };
            assert!(ok, "{m:?}: {e:?}");
        }
        assert!(parse(b"BT-SEARCH * HTTP/1.1\r\n\xff\r\n").is_err());
        let mut many = format!("{REQUEST_LINE}\r\nPort: 1\r\n");
        for i in 0..=MAX_INFOHASHES {
            many.push_str(&format!("Infohash: {}\r\n", to_hex(&[i as u8; 20])));
        }
        assert!(matches!(
            parse(many.as_bytes()),
            Err(TrackerError::TooLarge { .. })
        ));
        assert!(matches!(
            parse(&[b'x'; MAX_MESSAGE + 1]),
            Err(TrackerError::TooLarge { .. })
        ));
    }
}
