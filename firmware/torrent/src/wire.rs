//! The peer wire protocol framing: BEP 3 messages, the BEP 6 fast
//! extension, the BEP 10 extension envelope and the BEP 52 hash messages.
//!
//! Framing is split from meaning, as in mini-redis: [`decode`] answers
//! "is a whole message here?" (returning `Ok(None)` until it is) and only
//! then parses it, borrowing block data from the receive buffer so a 16 KiB
//! block is never copied before it is verified. Every length is checked
//! against a caller-chosen bound before anything is allocated: a peer
//! announcing a 4 GiB message is refused on the first four bytes.

use crate::hash::Sha256;

/// The 19-byte protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Handshake length: pstrlen, pstr, reserved, infohash, peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// Largest block a request may ask for (every modern client uses 16 KiB).
pub const MAX_BLOCK: u32 = 16 * 1024;

/// Why bytes from a peer were refused. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The handshake does not start with the BitTorrent protocol string.
    #[error("peer handshake is not BitTorrent")]
    NotBitTorrent,
    /// A length prefix over the bound the connection allows.
    #[error("peer message of {len} bytes is over the limit of {limit}")]
    TooLong { len: u32, limit: u32 },
    /// A message whose length does not fit its type.
    #[error("peer message id {id} has a bad length of {len} bytes")]
    BadLength { id: u8, len: u32 },
    /// A request for more than [`MAX_BLOCK`] bytes, or none.
    #[error("peer requested a block of {len} bytes")]
    BadRequest { len: u32 },
}

/// Capabilities announced in the handshake's reserved bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub extension_protocol: bool,
    pub fast: bool,
    pub dht: bool,
    pub v2: bool,
}

impl Reserved {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut r = [0u8; 8];
        if self.extension_protocol {
            r[5] |= 0x10;
        }
        if self.v2 {
            r[7] |= 0x10;
        }
        if self.fast {
            r[7] |= 0x04;
        }
        if self.dht {
            r[7] |= 0x01;
        }
        r
    }

    pub fn from_bytes(r: &[u8; 8]) -> Reserved {
        Reserved {
            extension_protocol: r[5] & 0x10 != 0,
            v2: r[7] & 0x10 != 0,
            fast: r[7] & 0x04 != 0,
            dht: r[7] & 0x01 != 0,
        }
    }
}

/// The 20 bytes a v2 infohash becomes in handshakes, trackers and LSD:
/// its first 20 bytes (BEP 52).
pub fn truncated_v2(h: &crate::hash::Sha256) -> [u8; 20] {
    let mut t = [0u8; 20];
    t.copy_from_slice(&h[..20]);
    t
}

/// A handshake. v2 peers send the truncated (first 20 bytes) v2 infohash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: Reserved,
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.to_bytes());
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// `Ok(None)` until 68 bytes are there.
    pub fn decode(buf: &[u8]) -> Result<Option<Handshake>, WireError> {
        // Refuse early on the prefix, so a non-BitTorrent client is cut off
        // without waiting for 68 bytes.
        let have = buf.len().min(20);
        if have > 0 && buf[0] != 19 {
            return Err(WireError::NotBitTorrent);
        }
        if have > 1 && buf[1..have] != PROTOCOL[..have - 1] {
            return Err(WireError::NotBitTorrent);
        }
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&buf[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&buf[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&buf[48..68]);
        Ok(Some(Handshake {
            reserved: Reserved::from_bytes(&reserved),
            info_hash,
            peer_id,
        }))
    }
}

/// The header shared by BEP 52 hash request, hashes and hash reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRequest {
    pub pieces_root: Sha256,
    pub base_layer: u32,
    pub index: u32,
    pub length: u32,
    pub proof_layers: u32,
}

/// One peer message; block and payload bytes borrow the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(&'a [u8]),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        data: &'a [u8],
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    Port(u16),
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject {
        index: u32,
        begin: u32,
        length: u32,
    },
    AllowedFast(u32),
    /// BEP 10: extended message id (0 is the extension handshake) and payload.
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    HashRequest(HashRequest),
    /// The hashes (proof included) as raw 32-byte nodes.
    Hashes {
        req: HashRequest,
        hashes: &'a [u8],
    },
    HashReject(HashRequest),
    /// An id this implementation does not know; ignored, as BEP 3 asks.
    Unknown {
        id: u8,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes one length-prefixed message from the front of `buf`.
///
/// Returns the message and the bytes it used, `Ok(None)` when more bytes
/// are needed, or an error for a frame over `max_len` or malformed.
pub fn decode(buf: &[u8], max_len: u32) -> Result<Option<(Message<'_>, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be32(buf);
    if len > max_len {
        return Err(WireError::TooLong {
            len,
            limit: max_len,
        });
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    if len == 0 {
        return Ok(Some((Message::KeepAlive, 4)));
    }
    let id = buf[4];
    let body = &buf[5..total];
    let bad = || WireError::BadLength { id, len };
    let fixed = |n: usize| if body.len() == n { Ok(()) } else { Err(bad()) };
    let triple = |body: &[u8]| (be32(body), be32(&body[4..]), be32(&body[8..]));
    let msg = match id {
        0 => fixed(0).map(|_| Message::Choke)?,
        1 => fixed(0).map(|_| Message::Unchoke)?,
        2 => fixed(0).map(|_| Message::Interested)?,
        3 => fixed(0).map(|_| Message::NotInterested)?,
        4 => fixed(4).map(|_| Message::Have(be32(body)))?,
        5 => Message::Bitfield(body),
        6 | 8 | 16 => {
            fixed(12)?;
            let (index, begin, length) = triple(body);
            if id != 16 && (length == 0 || length > MAX_BLOCK) {
                return Err(WireError::BadRequest { len: length });
            }
            match id {
                6 => Message::Request {
                    index,
                    begin,
                    length,
                },
                8 => Message::Cancel {
                    index,
                    begin,
                    length,
                },
                _ => Message::Reject {
                    index,
                    begin,
                    length,
                },
            }
        }
        7 => {
            if body.len() < 8 || body.len() - 8 > MAX_BLOCK as usize {
                return Err(bad());
            }
            Message::Piece {
                index: be32(body),
                begin: be32(&body[4..]),
                data: &body[8..],
            }
        }
        9 => {
            fixed(2)?;
            Message::Port(u16::from_be_bytes([body[0], body[1]]))
        }
        13 => fixed(4).map(|_| Message::Suggest(be32(body)))?,
        14 => fixed(0).map(|_| Message::HaveAll)?,
        15 => fixed(0).map(|_| Message::HaveNone)?,
        17 => fixed(4).map(|_| Message::AllowedFast(be32(body)))?,
        20 => {
            let (&ext, payload) = body.split_first().ok_or_else(bad)?;
            Message::Extended { id: ext, payload }
        }
        21..=23 => {
            if body.len() < 48 {
                return Err(bad());
            }
            let mut pieces_root = [0u8; 32];
            pieces_root.copy_from_slice(&body[..32]);
            let req = HashRequest {
                pieces_root,
                base_layer: be32(&body[32..]),
                index: be32(&body[36..]),
                length: be32(&body[40..]),
                proof_layers: be32(&body[44..]),
            };
            let rest = &body[48..];
            match id {
                21 if rest.is_empty() => Message::HashRequest(req),
                23 if rest.is_empty() => Message::HashReject(req),
                22 if rest.len().is_multiple_of(32) => Message::Hashes { req, hashes: rest },
                _ => return Err(bad()),
            }
        }
        _ => Message::Unknown { id },
    };
    Ok(Some((msg, total)))
}

fn put_header(out: &mut Vec<u8>, len: usize, id: u8) {
    out.extend_from_slice(&((len + 1) as u32).to_be_bytes());
    out.push(id);
}

fn put_hash_req(out: &mut Vec<u8>, r: &HashRequest) {
    out.extend_from_slice(&r.pieces_root);
    for v in [r.base_layer, r.index, r.length, r.proof_layers] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends the encoding of `msg` to `out`.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, id: u8| put_header(out, 0, id);
    let with_u32 = |out: &mut Vec<u8>, id: u8, v: u32| {
        put_header(out, 4, id);
        out.extend_from_slice(&v.to_be_bytes());
    };
    let with_triple = |out: &mut Vec<u8>, id: u8, a: u32, b: u32, c: u32| {
        put_header(out, 12, id);
        for v in [a, b, c] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    };
    match *msg {
        Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
        Message::Choke => simple(out, 0),
        Message::Unchoke => simple(out, 1),
        Message::Interested => simple(out, 2),
        Message::NotInterested => simple(out, 3),
        Message::Have(i) => with_u32(out, 4, i),
        Message::Bitfield(b) => {
            put_header(out, b.len(), 5);
            out.extend_from_slice(b);
        }
        Message::Request {
            index,
            begin,
            length,
        } => with_triple(out, 6, index, begin, length),
        Message::Piece { index, begin, data } => {
            put_header(out, 8 + data.len(), 7);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&begin.to_be_bytes());
            out.extend_from_slice(data);
        }
        Message::Cancel {
            index,
            begin,
            length,
        } => with_triple(out, 8, index, begin, length),
        Message::Port(p) => {
            put_header(out, 2, 9);
            out.extend_from_slice(&p.to_be_bytes());
        }
        Message::Suggest(i) => with_u32(out, 13, i),
        Message::HaveAll => simple(out, 14),
        Message::HaveNone => simple(out, 15),
        Message::Reject {
            index,
            begin,
            length,
        } => with_triple(out, 16, index, begin, length),
        Message::AllowedFast(i) => with_u32(out, 17, i),
        Message::Extended { id, payload } => {
            put_header(out, 1 + payload.len(), 20);
            out.push(id);
            out.extend_from_slice(payload);
        }
        Message::HashRequest(ref r) => {
            put_header(out, 48, 21);
            put_hash_req(out, r);
        }
        Message::Hashes { ref req, hashes } => {
            put_header(out, 48 + hashes.len(), 22);
            put_hash_req(out, req);
            out.extend_from_slice(hashes);
        }
        Message::HashReject(ref r) => {
            put_header(out, 48, 23);
            put_hash_req(out, r);
        }
        Message::Unknown { id } => simple(out, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message<'static>> {
        let req = HashRequest {
            pieces_root: [7; 32],
            base_layer: 0,
            index: 512,
            length: 512,
            proof_layers: 3,
        };
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(42),
            Message::Bitfield(&[0xff, 0x80]),
            Message::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Piece {
                index: 1,
                begin: 0,
                data: b"hello",
            },
            Message::Cancel {
                index: 1,
                begin: 0,
                length: 5,
            },
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject {
                index: 1,
                begin: 0,
                length: 5,
            },
            Message::AllowedFast(9),
            Message::Extended {
                id: 0,
                payload: b"d1:md11:ut_metadatai1eee",
            },
            Message::HashRequest(req),
            Message::Hashes {
                req,
                hashes: &[1; 64],
            },
            Message::HashReject(req),
        ]
    }

    #[test]
    fn every_message_round_trips_and_waits_for_all_its_bytes() {
        for m in samples() {
            let mut buf = Vec::new();
            encode(&m, &mut buf);
            for cut in 0..buf.len() {
                assert_eq!(decode(&buf[..cut], 1 << 20), Ok(None), "{m:?} cut {cut}");
            }
            buf.extend_from_slice(b"next");
            let (got, used) = decode(&buf, 1 << 20).ok().flatten().expect("whole");
            assert_eq!(got, m);
            assert_eq!(&buf[used..], b"next");
        }
    }

    #[test]
    fn hostile_frames_are_refused_before_allocation() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], 1 << 20),
            Err(WireError::TooLong {
                len: u32::MAX,
                limit: 1 << 20
            })
        );
        // Have with 3 bytes of body.
        assert!(matches!(
            decode(&[0, 0, 0, 4, 4, 0, 0, 0], 100),
            Err(WireError::BadLength { id: 4, .. })
        ));
        // Request for 1 MiB.
        let mut buf = Vec::new();
        encode(
            &Message::Request {
                index: 0,
                begin: 0,
                length: 1 << 20,
            },
            &mut buf,
        );
        assert!(matches!(
            decode(&buf, 100),
            Err(WireError::BadRequest { .. })
        ));
        // Hashes whose size is not a multiple of 32.
        let mut buf = vec![0, 0, 0, 50, 22];
        buf.extend_from_slice(&[0; 49]);
        assert!(matches!(
            decode(&buf, 100),
            Err(WireError::BadLength { .. })
        ));
    }

    #[test]
    fn unknown_ids_are_skipped() {
        let buf = [0, 0, 0, 3, 99, 1, 2];
        assert_eq!(
            decode(&buf, 100),
            Ok(Some((Message::Unknown { id: 99 }, 7)))
        );
    }

    #[test]
    fn handshake_round_trip_and_early_refusal() {
        let h = Handshake {
            reserved: Reserved {
                extension_protocol: true,
                fast: true,
                dht: false,
                v2: true,
            },
            info_hash: [1; 20],
            peer_id: *b"-SS0001-abcdefghijkl",
        };
        let bytes = h.encode();
        assert_eq!(Handshake::decode(&bytes[..30]), Ok(None));
        assert_eq!(Handshake::decode(&bytes), Ok(Some(h)));
        assert_eq!(
            Handshake::decode(b"GET / HTTP/1.1\r\n"),
            Err(WireError::NotBitTorrent)
        );
        assert_eq!(
            Handshake::decode(&[19, b'X']),
            Err(WireError::NotBitTorrent)
        );
    }
}
