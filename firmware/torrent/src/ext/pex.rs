//! BEP 11 peer exchange (`ut_pex`): peers tell each other which peers they
//! connected to (`added`, with one flag byte each) and lost (`dropped`),
//! IPv4 and IPv6 in separate compact lists.
//!
//! Why a count bound on receipt: a PEX message is the cheapest way for a
//! hostile peer to fill our peer list with addresses of its choosing (or of
//! a victim's). We keep at most [`MAX_PEX_PEERS`] added and as many dropped
//! peers from one message (IPv4 first) and ignore the rest, as libtorrent
//! stops at its `max_pex_peers` (200) rather than disconnecting: libtorrent
//! itself sends up to 100 added peers but every peer dropped in the last
//! minute, so a count over the bound is not proof of hostility. What is
//! refused is a malformed message or one over [`MAX_PEX_LEN`] bytes. We
//! send at most [`SEND_PEX_PEERS`] added peers, the 50 that clients agreed
//! on. The driver still rate-limits messages (BEP 11: at most one a
//! minute; libtorrent disconnects a peer that sends them faster) and
//! decides which addresses to dial; this module only decodes.
//!
//! BEP 27: a private torrent's peers come from its tracker only, so the
//! driver neither sends nor acts on PEX for one (nor announces `ut_pex`).
//!
//! Flags are kept only when `added.f` has exactly one byte per added peer;
//! otherwise they are read as 0 rather than guessed at, and the message is
//! still used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{bytes_field, put_bytes, whole_dict};
use crate::error::{Error, field};

/// Most added (IPv4 and IPv6 together), and separately most dropped,
/// peers kept from one message; the rest are ignored.
pub const MAX_PEX_PEERS: usize = 200;
/// Most added (and most dropped) peers to put in a message we send.
pub const SEND_PEX_PEERS: usize = 50;
/// Largest `ut_pex` payload accepted: room for a few thousand dropped
/// peers, far more than a well-behaved client sends in a minute.
pub const MAX_PEX_LEN: usize = 64 * 1024;

const WHAT: &str = "ut_pex";

/// BEP 11 flag byte of an added peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// Prefers encrypted connections.
    pub const ENCRYPTION: PexFlags = PexFlags(0x01);
    /// Is a seed (or upload-only).
    pub const SEED: PexFlags = PexFlags(0x02);
    /// Supports uTP.
    pub const UTP: PexFlags = PexFlags(0x04);
    /// Supports ut_holepunch.
    pub const HOLEPUNCH: PexFlags = PexFlags(0x08);
    /// The sender connected out to it, so it accepts connections.
    pub const REACHABLE: PexFlags = PexFlags(0x10);

    pub fn contains(self, other: PexFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for PexFlags {
    type Output = PexFlags;
    fn bitor(self, rhs: PexFlags) -> PexFlags {
        PexFlags(self.0 | rhs.0)
    }
}

/// An added peer and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    pub addr: SocketAddr,
    pub flags: PexFlags,
}

/// One `ut_pex` message. Decoding lists IPv4 peers before IPv6 peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pex {
    pub added: Vec<PexPeer>,
    pub dropped: Vec<SocketAddr>,
}

/// Splits a compact list into at most `max` addresses, refusing a ragged
/// length (whatever `max` is).
fn compact(bytes: &[u8], v6: bool, key: &str, max: usize) -> Result<Vec<SocketAddr>, Error> {
    let width = if v6 { 18 } else { 6 };
    if !bytes.len().is_multiple_of(width) {
        return Err(field(
            format!("{WHAT} {key}"),
            format!("{} bytes is not a multiple of {width}", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(width)
        .take(max)
        .map(|c| {
            let (ip, port) = c.split_at(width - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            let ip = if v6 {
                let mut b = [0u8; 16];
                b.copy_from_slice(ip);
                IpAddr::V6(Ipv6Addr::from(b))
            } else {
                IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
            };
            SocketAddr::new(ip, port)
        })
        .collect())
}

fn put_compact<'a>(out: &mut Vec<u8>, addrs: impl Iterator<Item = &'a SocketAddr>) {
    let mut list = Vec::new();
    for a in addrs {
        match a.ip() {
            IpAddr::V4(ip) => list.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => list.extend_from_slice(&ip.octets()),
        }
        list.extend_from_slice(&a.port().to_be_bytes());
    }
    put_bytes(out, &list);
}

fn over(what: &'static str, n: usize) -> Error {
    Error::Limit {
        what,
        value: n as u64,
        limit: MAX_PEX_PEERS as u64,
    }
}

impl Pex {
    /// Decodes a `ut_pex` payload. Absent lists are empty; peers past
    /// [`MAX_PEX_PEERS`] are ignored.
    pub fn decode(payload: &[u8]) -> Result<Pex, Error> {
        let d = whole_dict(payload, WHAT, MAX_PEX_LEN)?;
        let list = |key: &str| bytes_field(&d, key, WHAT).map(Option::unwrap_or_default);
        let mut added = Vec::new();
        for (key, flags_key, v6) in [("added", "added.f", false), ("added6", "added6.f", true)] {
            let bytes = list(key)?;
            let all = bytes.len() / if v6 { 18 } else { 6 };
            let addrs = compact(bytes, v6, key, MAX_PEX_PEERS - added.len())?;
            // Flags count only with one byte per listed peer.
            let flags = bytes_field(&d, flags_key, WHAT)?.filter(|f| f.len() == all);
            added.extend(addrs.into_iter().enumerate().map(|(i, addr)| PexPeer {
                addr,
                flags: PexFlags(flags.and_then(|f| f.get(i)).copied().unwrap_or(0)),
            }));
        }
        let mut dropped = compact(list("dropped")?, false, "dropped", MAX_PEX_PEERS)?;
        let room = MAX_PEX_PEERS - dropped.len();
        dropped.extend(compact(list("dropped6")?, true, "dropped6", room)?);
        Ok(Pex { added, dropped })
    }

    /// Appends the bencoded message. Every list is written, empty or not,
    /// as libtorrent does. Refuses more than [`MAX_PEX_PEERS`] added or
    /// dropped peers (a driver should send at most [`SEND_PEX_PEERS`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.added.len() > MAX_PEX_PEERS {
            return Err(over("ut_pex added peers", self.added.len()));
        }
        if self.dropped.len() > MAX_PEX_PEERS {
            return Err(over("ut_pex dropped peers", self.dropped.len()));
        }
        let v4 = |a: &&PexPeer| a.addr.is_ipv4();
        let v6 = |a: &&PexPeer| a.addr.is_ipv6();
        // Sorted keys: added, added.f, added6, added6.f, dropped, dropped6.
        out.push(b'd');
        put_bytes(out, b"added");
        put_compact(out, self.added.iter().filter(v4).map(|p| &p.addr));
        put_bytes(out, b"added.f");
        let f4: Vec<u8> = self.added.iter().filter(v4).map(|p| p.flags.0).collect();
        put_bytes(out, &f4);
        put_bytes(out, b"added6");
        put_compact(out, self.added.iter().filter(v6).map(|p| &p.addr));
        put_bytes(out, b"added6.f");
        let f6: Vec<u8> = self.added.iter().filter(v6).map(|p| p.flags.0).collect();
        put_bytes(out, &f6);
        put_bytes(out, b"dropped");
        put_compact(out, self.dropped.iter().filter(|a| a.is_ipv4()));
        put_bytes(out, b"dropped6");
        put_compact(out, self.dropped.iter().filter(|a| a.is_ipv6()));
        out.push(b'e');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::{Limits, validate};

    fn v4(a: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), port)
    }

    fn v6(a: u16, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, a)), port)
    }

    fn sample() -> Pex {
        Pex {
            added: vec![
                PexPeer {
                    addr: v4(1, 6881),
                    flags: PexFlags::SEED | PexFlags::REACHABLE,
                },
                PexPeer {
                    addr: v4(2, 51413),
                    flags: PexFlags::default(),
                },
                PexPeer {
                    addr: v6(3, 6882),
                    flags: PexFlags::UTP,
                },
            ],
            dropped: vec![v4(9, 1), v6(10, 2)],
        }
    }

    fn enc(p: &Pex) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(&mut out).expect("encode");
        out
    }

    #[test]
    fn round_trips_and_is_canonical() {
        for p in [sample(), Pex::default()] {
            let bytes = enc(&p);
            validate(&bytes, &Limits::default()).expect("valid");
            let value: bt_bencode::Value = bt_bencode::from_slice(&bytes).expect("decode");
            assert_eq!(bt_bencode::to_vec(&value).expect("encode"), bytes);
            assert_eq!(Pex::decode(&bytes), Ok(p));
        }
        assert!(sample().added[0].flags.contains(PexFlags::SEED));
        assert!(!sample().added[0].flags.contains(PexFlags::UTP));
    }

    #[test]
    fn reads_partial_messages_and_ignores_ragged_flags() {
        let p = Pex::decode(b"d5:added6:\x0a\x00\x00\x01\x1a\xe1e").expect("decode");
        assert_eq!(
            p.added,
            [PexPeer {
                addr: v4(1, 6881),
                flags: PexFlags(0)
            }]
        );
        assert!(p.dropped.is_empty());
        // Two flag bytes for one peer: flags dropped, peer kept.
        let p =
            Pex::decode(b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f2:\x02\x02e").expect("decode");
        assert_eq!(p.added[0].flags, PexFlags(0));
        let p = Pex::decode(b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x02e").expect("decode");
        assert_eq!(p.added[0].flags, PexFlags::SEED);
        assert_eq!(Pex::decode(b"de"), Ok(Pex::default()));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = enc(&sample());
        for cut in 0..bytes.len() {
            assert!(Pex::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn hostile_messages_are_refused_by_name() {
        for (bytes, name) in [
            (&b"d5:added5:12345e"[..], "ut_pex added"),
            (b"d6:added66:123456e", "ut_pex added6"),
            (b"d7:dropped1:xe", "ut_pex dropped"),
            (b"d8:dropped617:12345678901234567e", "ut_pex dropped6"),
            (b"d5:addedi1ee", "ut_pex added"),
            (b"d7:added.fi1ee", "ut_pex added.f"),
            (b"l5:addede", "ut_pex"),
        ] {
            let e = Pex::decode(bytes).expect_err("refused").to_string();
            assert!(e.contains(name), "{e:?} should name {name:?}");
        }
        let many = |key: &str, n: usize, w: usize| {
            let mut b = format!("d{}:{key}{}:", key.len(), n * w).into_bytes();
            b.extend((0..n * w).map(|i| (i / w) as u8));
            b.push(b'e');
            b
        };
        let p = Pex::decode(&many("added6", MAX_PEX_PEERS, 18)).expect("at the bound");
        assert_eq!(p.added.len(), MAX_PEX_PEERS);
        for (key, w) in [
            ("added", 6),
            ("added6", 18),
            ("dropped", 6),
            ("dropped6", 18),
        ] {
            let p = Pex::decode(&many(key, 1000, w)).expect(key);
            assert_eq!(p.added.len() + p.dropped.len(), MAX_PEX_PEERS, "{key}");
        }
        // 150 IPv4 and 80 IPv6 added peers, with flags: the first 50 IPv6
        // peers are kept, and keep their flags.
        let mut mixed = many("added", 150, 6);
        mixed.pop();
        mixed.extend_from_slice(b"6:added61440:");
        mixed.extend((0..80 * 18).map(|i| (i / 18) as u8));
        mixed.extend_from_slice(b"8:added6.f80:");
        mixed.extend(std::iter::repeat_n(PexFlags::SEED.0, 80));
        mixed.push(b'e');
        let p = Pex::decode(&mixed).expect("mixed");
        assert_eq!(p.added.len(), MAX_PEX_PEERS);
        assert!(p.added[..150].iter().all(|p| p.addr.is_ipv4()));
        assert!(
            p.added[150..]
                .iter()
                .all(|p| p.addr.is_ipv6() && p.flags == PexFlags::SEED)
        );
        assert!(matches!(
            Pex::decode(&vec![b'd'; MAX_PEX_LEN + 1]),
            Err(Error::Limit { .. })
        ));
    }

    #[test]
    fn encoding_refuses_too_many_peers() {
        let p = Pex {
            added: vec![
                PexPeer {
                    addr: v4(1, 1),
                    flags: PexFlags(0)
                };
                MAX_PEX_PEERS + 1
            ],
            dropped: Vec::new(),
        };
        assert!(p.encode(&mut Vec::new()).is_err());
        let p = Pex {
            added: Vec::new(),
            dropped: vec![v6(1, 1); MAX_PEX_PEERS + 1],
        };
        assert!(p.encode(&mut Vec::new()).is_err());
    }
}
