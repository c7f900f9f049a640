//! The BEP 10 extension protocol and the extensions swarmsync speaks over
//! it: BEP 9 metadata exchange (`ut_metadata`), BEP 11 peer exchange
//! (`ut_pex`) and our own release gossip (`swarmsync_release`).
//!
//! These are codecs, not connections: each type turns the payload of a
//! [`crate::wire::Message::Extended`] into a value and back, and the one
//! piece of state, [`MetadataAssembler`], takes time as a parameter. Nothing
//! here reads a socket or a clock, so every byte path is unit-tested and
//! fuzzed (fuzz/fuzz_targets/ext_*.rs).
//!
//! Why bounds everywhere: an extension payload is a bencoded dictionary
//! chosen by a stranger on the Internet, sized only by the wire frame limit.
//! Each decoder first refuses a payload over its own size bound, then runs
//! the bounded [`crate::bencode`] scan (depth and value count) before the
//! typed decoder sees it, then checks every field it uses against a
//! constant below. A field we do not use is ignored whatever it holds, as
//! BEP 10 asks, so a newer client is not disconnected for saying more.
//!
//! # Extension ids, in one paragraph
//!
//! Each side picks its own numbers for the extensions it supports and
//! announces them in the `m` dictionary of its extension handshake. A
//! message is sent with the *receiver's* number, so incoming messages carry
//! the ids from [`LOCAL_IDS`] (map them with [`decode_extended`]) and
//! outgoing messages use the ids from the peer's [`ExtHandshake::ids`]. Id 0
//! is the handshake itself; an `m` entry of 0 in a later handshake turns
//! an extension off.

mod handshake;
mod metadata;
mod pex;

use std::collections::BTreeMap;

use bt_bencode::value::Number;
use bt_bencode::{ByteString, Value};

use crate::bencode::{self, BencodeError};
use crate::error::{Error, field};

pub use handshake::{
    CLIENT, ExtHandshake, MAX_CLIENT_LEN, MAX_EXTENSIONS, MAX_HANDSHAKE_LEN, MAX_NAME_LEN,
};
pub use metadata::{
    InfoHashes, MAX_METADATA_SIZE, METADATA_PIECE_LEN, METADATA_REQUEST_TIMEOUT, MetadataAssembler,
    MetadataMessage, metadata_piece, metadata_piece_count, serve_metadata,
};
pub use pex::{MAX_PEX_LEN, MAX_PEX_PEERS, Pex, PexFlags, PexPeer, SEND_PEX_PEERS};

/// The extended message id of the extension handshake (BEP 10).
pub const HANDSHAKE_ID: u8 = 0;

/// The extensions this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// BEP 9 metadata exchange.
    Metadata,
    /// BEP 11 peer exchange.
    Pex,
    /// swarmsync's signed release gossip (the payload is the channel
    /// crate's business; this crate only routes it).
    Release,
}

impl Extension {
    /// Every extension, in the order of the `m` dictionary.
    pub const ALL: [Extension; 3] = [Extension::Release, Extension::Metadata, Extension::Pex];

    /// The name in the `m` dictionary.
    pub fn name(self) -> &'static str {
        match self {
            Extension::Metadata => "ut_metadata",
            Extension::Pex => "ut_pex",
            Extension::Release => "swarmsync_release",
        }
    }
}

/// The extended message ids one side assigned to the extensions.
///
/// `None`: the handshake did not mention it. `Some(0)`: the handshake
/// turned it off. `Some(n)`: send it with extended id `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionIds {
    pub ut_metadata: Option<u8>,
    pub ut_pex: Option<u8>,
    pub swarmsync_release: Option<u8>,
}

/// The ids swarmsync announces: what a peer puts in messages it sends us.
pub const LOCAL_IDS: ExtensionIds = ExtensionIds {
    ut_metadata: Some(1),
    ut_pex: Some(2),
    swarmsync_release: Some(3),
};

impl ExtensionIds {
    fn slot(&mut self, ext: Extension) -> &mut Option<u8> {
        match ext {
            Extension::Metadata => &mut self.ut_metadata,
            Extension::Pex => &mut self.ut_pex,
            Extension::Release => &mut self.swarmsync_release,
        }
    }

    /// The raw entry for `ext` (see the type's doc for `None` vs `Some(0)`).
    pub fn entry(&self, ext: Extension) -> Option<u8> {
        match ext {
            Extension::Metadata => self.ut_metadata,
            Extension::Pex => self.ut_pex,
            Extension::Release => self.swarmsync_release,
        }
    }

    /// The id to send `ext` with, or `None` when it is not (or no longer)
    /// supported.
    pub fn id(&self, ext: Extension) -> Option<u8> {
        self.entry(ext).filter(|id| *id != 0)
    }

    /// Which extension an incoming extended id names, when these are our
    /// own ids. Id 0 is the handshake, never an extension.
    pub fn which(&self, id: u8) -> Option<Extension> {
        if id == HANDSHAKE_ID {
            return None;
        }
        Extension::ALL.into_iter().find(|e| self.id(*e) == Some(id))
    }

    /// Applies the `m` dictionary of a later handshake: entries it names
    /// replace ours (0 turns one off), entries it leaves out are kept.
    pub fn update(&mut self, later: &ExtensionIds) {
        for ext in Extension::ALL {
            if let Some(id) = later.entry(ext) {
                *self.slot(ext) = Some(id);
            }
        }
    }
}

/// One decoded extended message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtMessage<'a> {
    Handshake(ExtHandshake),
    Metadata(MetadataMessage<'a>),
    Pex(Pex),
    /// A `swarmsync_release` payload, undecoded: the channel crate checks
    /// its signature and bounds.
    Release(&'a [u8]),
    /// An id we never assigned (or turned off): ignored, as BEP 10 asks.
    Unknown {
        id: u8,
    },
}

/// Decodes the payload of an incoming [`crate::wire::Message::Extended`],
/// routing on `id` through `local`, the ids we announced (normally
/// [`LOCAL_IDS`]).
pub fn decode_extended<'a>(
    id: u8,
    payload: &'a [u8],
    local: &ExtensionIds,
) -> Result<ExtMessage<'a>, Error> {
    if id == HANDSHAKE_ID {
        return ExtHandshake::decode(payload).map(ExtMessage::Handshake);
    }
    Ok(match local.which(id) {
        Some(Extension::Metadata) => ExtMessage::Metadata(MetadataMessage::decode(payload)?),
        Some(Extension::Pex) => ExtMessage::Pex(Pex::decode(payload)?),
        Some(Extension::Release) => ExtMessage::Release(payload),
        None => ExtMessage::Unknown { id },
    })
}

/// A decoded bencoded dictionary.
type Dict = BTreeMap<ByteString, Value>;

/// Bencode bounds for extension dictionaries: a few levels (BEP 10's `m`
/// is the deepest we read; room is left for fields we ignore) and a few
/// hundred values.
fn dict_limits(max_len: usize) -> bencode::Limits {
    bencode::Limits {
        max_size: max_len,
        max_depth: 8,
        max_items: 1024,
    }
}

/// Decodes the bencoded dictionary at the start of `payload` after the
/// size and shape checks; returns it and the bytes after it.
fn leading_dict<'a>(
    payload: &'a [u8],
    what: &'static str,
    max_len: usize,
) -> Result<(Dict, &'a [u8]), Error> {
    if payload.len() > max_len {
        return Err(Error::Limit {
            what,
            value: payload.len() as u64,
            limit: max_len as u64,
        });
    }
    if payload.first() != Some(&b'd') {
        return Err(field(what, "not a bencoded dictionary"));
    }
    let end = bencode::first_value_end(payload, &dict_limits(max_len))?;
    let (head, rest) = payload.split_at(end);
    let value: Value = bt_bencode::from_slice(head).map_err(|e| Error::Decode {
        what,
        reason: e.to_string(),
    })?;
    match value {
        Value::Dict(d) => Ok((d, rest)),
        _ => Err(field(what, "not a bencoded dictionary")),
    }
}

/// [`leading_dict`] for payloads that are the dictionary and nothing else.
fn whole_dict(payload: &[u8], what: &'static str, max_len: usize) -> Result<Dict, Error> {
    let (d, rest) = leading_dict(payload, what, max_len)?;
    if !rest.is_empty() {
        return Err(BencodeError::TrailingData {
            at: payload.len() - rest.len(),
        }
        .into());
    }
    Ok(d)
}

/// An optional integer field; present with another type is an error.
fn int_field(d: &Dict, key: &str, what: &str) -> Result<Option<i64>, Error> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => match v.as_number() {
            Some(Number::Signed(n)) => Ok(Some(*n)),
            Some(Number::Unsigned(n)) => i64::try_from(*n)
                .map(Some)
                .map_err(|_| field(format!("{what} {key}"), format!("{n} is out of range"))),
            None => Err(field(format!("{what} {key}"), "not an integer")),
        },
    }
}

/// An optional byte-string field; present with another type is an error.
fn bytes_field<'d>(d: &'d Dict, key: &str, what: &str) -> Result<Option<&'d [u8]>, Error> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v
            .as_byte_str()
            .map(|b| Some(&b[..]))
            .ok_or_else(|| field(format!("{what} {key}"), "not a byte string")),
    }
}

/// An integer field that must lie in `lo..=hi`.
fn ranged(v: i64, lo: i64, hi: i64, key: &str, what: &str) -> Result<i64, Error> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(field(
            format!("{what} {key}"),
            format!("{v} is not in {lo}..={hi}"),
        ))
    }
}

// The encoders write bencode by hand: every message here is a flat
// dictionary of a few known keys, written in sorted key order (each
// encoder lists its keys sorted; the tests check the output is canonical).

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

fn put_int(out: &mut Vec<u8>, v: i64) {
    out.push(b'i');
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'e');
}

fn put_key_int(out: &mut Vec<u8>, key: &str, v: i64) {
    put_bytes(out, key.as_bytes());
    put_int(out, v);
}

fn put_key_bytes(out: &mut Vec<u8>, key: &str, v: &[u8]) {
    put_bytes(out, key.as_bytes());
    put_bytes(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_route_and_update() {
        assert_eq!(LOCAL_IDS.which(0), None);
        assert_eq!(LOCAL_IDS.which(1), Some(Extension::Metadata));
        assert_eq!(LOCAL_IDS.which(2), Some(Extension::Pex));
        assert_eq!(LOCAL_IDS.which(3), Some(Extension::Release));
        assert_eq!(LOCAL_IDS.which(4), None);

        let mut peer = ExtensionIds {
            ut_metadata: Some(3),
            ut_pex: Some(1),
            swarmsync_release: None,
        };
        assert_eq!(peer.id(Extension::Release), None);
        peer.update(&ExtensionIds {
            ut_pex: Some(0),
            swarmsync_release: Some(9),
            ..ExtensionIds::default()
        });
        assert_eq!(peer.id(Extension::Metadata), Some(3));
        assert_eq!(peer.id(Extension::Pex), None);
        assert_eq!(peer.entry(Extension::Pex), Some(0));
        assert_eq!(peer.id(Extension::Release), Some(9));
    }

    #[test]
    fn decode_extended_routes_by_our_ids() {
        let mut hs = Vec::new();
        ExtHandshake::default().encode(&mut hs);
        assert!(matches!(
            decode_extended(0, &hs, &LOCAL_IDS),
            Ok(ExtMessage::Handshake(_))
        ));
        let mut req = Vec::new();
        MetadataMessage::Request { piece: 2 }.encode(&mut req);
        assert_eq!(
            decode_extended(1, &req, &LOCAL_IDS),
            Ok(ExtMessage::Metadata(MetadataMessage::Request { piece: 2 }))
        );
        let mut pex = Vec::new();
        Pex::default().encode(&mut pex).expect("empty pex");
        assert_eq!(
            decode_extended(2, &pex, &LOCAL_IDS),
            Ok(ExtMessage::Pex(Pex::default()))
        );
        assert_eq!(
            decode_extended(3, b"opaque", &LOCAL_IDS),
            Ok(ExtMessage::Release(&b"opaque"[..]))
        );
        assert_eq!(
            decode_extended(77, b"whatever", &LOCAL_IDS),
            Ok(ExtMessage::Unknown { id: 77 })
        );
        // A known id with a broken payload is an error, not Unknown.
        assert!(decode_extended(1, b"d", &LOCAL_IDS).is_err());
    }

    /// One side of a connection, as a driver would hold it.
    struct Side {
        local: ExtensionIds,
        remote: ExtensionIds,
        inbox: Vec<u8>,
    }

    /// Frames `payload` for the peer with the id the peer chose for `ext`.
    fn send(from: &Side, to: &mut Side, ext: Option<Extension>, payload: &[u8]) {
        let id = match ext {
            None => HANDSHAKE_ID,
            Some(e) => from.remote.id(e).expect("peer supports it"),
        };
        crate::wire::encode(
            &crate::wire::Message::Extended { id, payload },
            &mut to.inbox,
        );
    }

    /// Takes every whole frame out of `side.inbox`, owned.
    fn receive(side: &mut Side) -> Vec<(u8, Vec<u8>)> {
        let mut got = Vec::new();
        let mut used = 0;
        while let Some((msg, n)) =
            crate::wire::decode(&side.inbox[used..], 1 << 20).expect("well-formed frames")
        {
            if let crate::wire::Message::Extended { id, payload } = msg {
                got.push((id, payload.to_vec()));
            }
            used += n;
        }
        side.inbox.drain(..used);
        got
    }

    #[test]
    fn magnet_peer_fetches_metadata_from_a_seed_through_wire_frames() {
        use crate::hash::sha1;
        use std::time::Instant;

        let info = b"d6:lengthi3e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        // The seed numbers extensions like libtorrent; the magnet peer is us.
        let seed_ids = ExtensionIds {
            ut_metadata: Some(2),
            ut_pex: Some(1),
            swarmsync_release: None,
        };
        let mut seed = Side {
            local: seed_ids,
            remote: ExtensionIds::default(),
            inbox: Vec::new(),
        };
        let mut magnet = Side {
            local: LOCAL_IDS,
            remote: ExtensionIds::default(),
            inbox: Vec::new(),
        };
        let mut hs = Vec::new();
        ExtHandshake {
            ids: seed_ids,
            metadata_size: Some(info.len() as u32),
            ..ExtHandshake::default()
        }
        .encode(&mut hs);
        send(&seed, &mut magnet, None, &hs);
        hs.clear();
        ExtHandshake::ours().encode(&mut hs);
        send(&magnet, &mut seed, None, &hs);

        // Each side learns the other's ids from the handshake.
        let mut size = None;
        for (id, payload) in receive(&mut magnet) {
            match decode_extended(id, &payload, &magnet.local) {
                Ok(ExtMessage::Handshake(h)) => {
                    magnet.remote.update(&h.ids);
                    size = h.metadata_size;
                }
                other => panic!("{other:?}"),
            }
        }
        for (id, payload) in receive(&mut seed) {
            match decode_extended(id, &payload, &seed.local) {
                Ok(ExtMessage::Handshake(h)) => seed.remote.update(&h.ids),
                other => panic!("{other:?}"),
            }
        }
        let expected = InfoHashes {
            v1: Some(sha1(info)),
            v2: None,
        };
        let mut asm = MetadataAssembler::new(
            expected,
            size.expect("seed sent metadata_size"),
            crate::metainfo::Limits::default(),
        )
        .expect("assembler");
        let mut out = Vec::new();
        let piece = asm.next_request(Instant::now()).expect("a piece to ask");
        MetadataMessage::Request { piece }.encode(&mut out);
        send(&magnet, &mut seed, Some(Extension::Metadata), &out);

        for (id, payload) in receive(&mut seed) {
            let Ok(ExtMessage::Metadata(MetadataMessage::Request { piece })) =
                decode_extended(id, &payload, &seed.local)
            else {
                panic!("seed expected a request on id {id}");
            };
            out.clear();
            serve_metadata(info, piece).encode(&mut out);
            send(&seed, &mut magnet, Some(Extension::Metadata), &out);
        }
        let mut done = None;
        for (id, payload) in receive(&mut magnet) {
            let Ok(ExtMessage::Metadata(m)) = decode_extended(id, &payload, &magnet.local) else {
                panic!("magnet peer expected metadata on id {id}");
            };
            done = asm.on_message(&m).expect("verifies");
        }
        assert_eq!(done.expect("complete").raw, info);
    }

    #[test]
    fn leading_dict_refuses_non_dicts_and_trailing_bytes() {
        assert!(whole_dict(b"li1ee", "x", 100).is_err());
        assert!(whole_dict(b"", "x", 100).is_err());
        assert!(whole_dict(b"de", "x", 1).is_err());
        assert!(matches!(
            whole_dict(b"dexx", "x", 100),
            Err(Error::Bencode(BencodeError::TrailingData { at: 2 }))
        ));
        let (d, rest) = leading_dict(b"d1:ai1eexx", "x", 100).expect("dict");
        assert_eq!(d.len(), 1);
        assert_eq!(rest, b"xx");
    }
}
