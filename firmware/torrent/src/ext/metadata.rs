//! BEP 9 metadata exchange (`ut_metadata`): fetching the info dictionary
//! from peers when all we have is a magnet link, and serving it to others.
//!
//! The info dictionary travels in 16 KiB pieces. A data message is a
//! bencoded dictionary *followed by* raw bytes, so the decoder finds where
//! the dictionary ends with the bounded bencode scanner and takes the rest
//! as the piece.
//!
//! Why the assembler trusts nothing until the end: any peer can send any
//! piece, and a single piece cannot be checked on its own (the infohash
//! covers the whole dictionary). So [`MetadataAssembler`] keeps pieces from
//! whoever sends them, hashes the whole buffer once it is full and, on a
//! mismatch, throws everything away and starts over. It cannot say which
//! peer lied, so its error says only that the metadata did not match. Size
//! is bounded before the buffer is allocated ([`MAX_METADATA_SIZE`]), and
//! the verified bytes still go through [`Info::from_bytes`] with its limits:
//! a matching hash proves the bytes are the ones the magnet named, not that
//! they are safe.

use std::time::{Duration, Instant};

use super::{int_field, leading_dict, put_key_int, ranged};
use crate::bencode::BencodeError;
use crate::error::{Error, field, missing};
use crate::hash::{Sha1, Sha256, sha1, sha256};
use crate::magnet::Magnet;
use crate::metainfo::{Info, Limits};

/// Bytes per metadata piece (all but the last are this long).
pub const METADATA_PIECE_LEN: usize = 16 * 1024;
/// Largest info dictionary fetched or served. A 20,000-file snapshot's is
/// around 2 MiB; libtorrent has a similar setting (`max_metadata_size`).
pub const MAX_METADATA_SIZE: u32 = 16 << 20;
/// After this long without an answer, a requested piece may be asked of
/// another peer.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack for the dictionary in front of a piece: three small integers and
/// a few keys we ignore, not a second piece's worth.
const MAX_DICT_LEN: usize = 512;
const MAX_MESSAGE_LEN: usize = MAX_DICT_LEN + METADATA_PIECE_LEN;
const WHAT: &str = "ut_metadata";

/// Number of pieces of metadata of `size` bytes.
pub fn metadata_piece_count(size: u32) -> u32 {
    size.div_ceil(METADATA_PIECE_LEN as u32)
}

/// The byte range of `piece` in metadata of `size` bytes, if it exists.
fn piece_range(size: u32, piece: u32) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(piece)
        .ok()?
        .checked_mul(METADATA_PIECE_LEN)?;
    let size = usize::try_from(size).ok()?;
    (start < size).then(|| start..size.min(start + METADATA_PIECE_LEN))
}

/// One `ut_metadata` message; data borrows the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    /// `msg_type` 0: send me piece `piece`.
    Request { piece: u32 },
    /// `msg_type` 1: piece `piece` of metadata of `total_size` bytes.
    Data {
        piece: u32,
        total_size: u32,
        data: &'a [u8],
    },
    /// `msg_type` 2: I will not send piece `piece`.
    Reject { piece: u32 },
    /// Any other `msg_type`: ignored, as BEP 9 asks ("an unrecognized
    /// message ID MUST be ignored"), so a newer peer is not cut off.
    Unknown { msg_type: i64 },
}

impl<'a> MetadataMessage<'a> {
    /// Decodes a `ut_metadata` payload. A data message's length must be
    /// exactly what `piece` and `total_size` imply.
    pub fn decode(payload: &'a [u8]) -> Result<MetadataMessage<'a>, Error> {
        let (d, rest) = leading_dict(payload, WHAT, MAX_MESSAGE_LEN)?;
        let msg_type =
            int_field(&d, "msg_type", WHAT)?.ok_or_else(|| missing("ut_metadata msg_type"))?;
        if !(0..=2).contains(&msg_type) {
            return Ok(MetadataMessage::Unknown { msg_type });
        }
        let piece = int_field(&d, "piece", WHAT)?.ok_or_else(|| missing("ut_metadata piece"))?;
        // Any u32: a request past our metadata is answered with a reject
        // (serve_metadata), not a disconnect; a data message's piece is
        // checked against its total_size below.
        let piece = ranged(piece, 0, i64::from(u32::MAX), "piece", WHAT)?;
        let piece = u32::try_from(piece).map_err(|_| field("ut_metadata piece", "out of range"))?;
        let no_trailing = || {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(Error::from(BencodeError::TrailingData {
                    at: payload.len() - rest.len(),
                }))
            }
        };
        match msg_type {
            0 => no_trailing().map(|_| MetadataMessage::Request { piece }),
            2 => no_trailing().map(|_| MetadataMessage::Reject { piece }),
            1 => {
                let total = int_field(&d, "total_size", WHAT)?
                    .ok_or_else(|| missing("ut_metadata total_size"))?;
                if total > i64::from(MAX_METADATA_SIZE) {
                    return Err(Error::Limit {
                        what: "ut_metadata total_size",
                        value: total.unsigned_abs(),
                        limit: u64::from(MAX_METADATA_SIZE),
                    });
                }
                let total = ranged(total, 1, i64::from(MAX_METADATA_SIZE), "total_size", WHAT)?;
                let total_size = u32::try_from(total)
                    .map_err(|_| field("ut_metadata total_size", "out of range"))?;
                let range = piece_range(total_size, piece).ok_or_else(|| {
                    field(
                        "ut_metadata piece",
                        format!("piece {piece} is past the end of {total_size} bytes"),
                    )
                })?;
                if rest.len() != range.len() {
                    return Err(field(
                        "ut_metadata data",
                        format!(
                            "{} bytes where piece {piece} of {total_size} has {}",
                            rest.len(),
                            range.len()
                        ),
                    ));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
            // Other types returned early.
            msg_type => Ok(MetadataMessage::Unknown { msg_type }),
        }
    }

    /// Appends the payload (dictionary, then data for a data message).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (msg_type, piece) = match *self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
            MetadataMessage::Unknown { msg_type } => {
                out.push(b'd');
                put_key_int(out, "msg_type", msg_type);
                out.push(b'e');
                return;
            }
        };
        out.push(b'd');
        put_key_int(out, "msg_type", msg_type);
        put_key_int(out, "piece", i64::from(piece));
        if let MetadataMessage::Data {
            total_size, data, ..
        } = *self
        {
            put_key_int(out, "total_size", i64::from(total_size));
            out.push(b'e');
            out.extend_from_slice(data);
        } else {
            out.push(b'e');
        }
    }
}

/// The answer to a peer's request for `piece` of our `info` bytes: the
/// piece, or a reject when it does not exist (or the info is over
/// [`MAX_METADATA_SIZE`], which no peer could accept).
pub fn serve_metadata(info: &[u8], piece: u32) -> MetadataMessage<'_> {
    match metadata_piece(info.len() as u64, piece) {
        Some((total_size, range)) => MetadataMessage::Data {
            piece,
            total_size,
            data: &info[range],
        },
        None => MetadataMessage::Reject { piece },
    }
}

/// What [`serve_metadata`] sends of an info dictionary of `len` bytes for
/// `piece`: the dictionary's size and the piece's byte range, or `None`
/// for a reject (empty or oversized dictionary, piece out of range). For
/// callers that read the dictionary from a file instead of holding it.
pub fn metadata_piece(len: u64, piece: u32) -> Option<(u32, std::ops::Range<usize>)> {
    let size = u32::try_from(len)
        .ok()
        .filter(|s| *s != 0 && *s <= MAX_METADATA_SIZE)?;
    Some((size, piece_range(size, piece)?))
}

/// The infohashes a magnet names; at least one must be present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InfoHashes {
    /// BEP 9 `btih`: SHA-1 of the info dictionary.
    pub v1: Option<Sha1>,
    /// BEP 52 `btmh`: SHA-256 of the info dictionary.
    pub v2: Option<Sha256>,
}

impl From<&Magnet> for InfoHashes {
    fn from(m: &Magnet) -> InfoHashes {
        InfoHashes { v1: m.v1, v2: m.v2 }
    }
}

impl InfoHashes {
    /// Whether `raw` hashes to every infohash present.
    pub fn matches(&self, raw: &[u8]) -> bool {
        self.v1.is_none_or(|h| sha1(raw) == h) && self.v2.is_none_or(|h| sha256(raw) == h)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Requested(Instant),
    Have,
}

/// Collects the metadata of one torrent from any number of peers.
///
/// A driver calls, per torrent: [`MetadataAssembler::new`] once a peer's
/// handshake gives `metadata_size`; [`next_request`](Self::next_request)
/// whenever a peer that supports `ut_metadata` can take a request;
/// [`on_data`](Self::on_data) / [`on_reject`](Self::on_reject) for what
/// comes back. `on_data` returns the parsed [`Info`] once, when the last
/// piece arrives and the whole verifies.
#[derive(Debug, Clone)]
pub struct MetadataAssembler {
    expected: InfoHashes,
    size: u32,
    limits: Limits,
    buf: Vec<u8>,
    slots: Vec<Slot>,
    received: u32,
    failures: u32,
    finished: bool,
}

impl MetadataAssembler {
    /// Starts collecting `metadata_size` bytes that must hash to
    /// `expected`. `limits` bound the parsed [`Info`].
    ///
    /// `metadata_size` comes from one peer's handshake and is as untrusted
    /// as the pieces: ask only peers whose handshake gives the same
    /// [`size`](Self::size), and if [`failures`](Self::failures) keeps
    /// growing, start over with the size other peers report (a wrong size
    /// can never verify, it only wastes requests).
    pub fn new(
        expected: InfoHashes,
        metadata_size: u32,
        limits: Limits,
    ) -> Result<MetadataAssembler, Error> {
        if expected.v1.is_none() && expected.v2.is_none() {
            return Err(missing("infohash (btih or btmh)"));
        }
        if metadata_size == 0 || metadata_size > MAX_METADATA_SIZE {
            return Err(Error::Limit {
                what: "metadata_size",
                value: u64::from(metadata_size),
                limit: u64::from(MAX_METADATA_SIZE),
            });
        }
        let count = metadata_piece_count(metadata_size) as usize;
        Ok(MetadataAssembler {
            expected,
            size: metadata_size,
            limits,
            buf: vec![0; metadata_size as usize],
            slots: vec![Slot::Missing; count],
            received: 0,
            failures: 0,
            finished: false,
        })
    }

    /// The metadata size being collected: a peer whose handshake says
    /// otherwise cannot help (and may be asked for nothing).
    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn piece_count(&self) -> u32 {
        metadata_piece_count(self.size)
    }

    /// Pieces held and not yet verified.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// How many times the complete metadata failed to verify (and was
    /// dropped).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the metadata was verified (or verified and refused by
    /// [`Info::from_bytes`]); nothing more is requested then.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next piece to request, marked as requested at `now`: a piece
    /// nobody was asked for, else one whose request is older than
    /// [`METADATA_REQUEST_TIMEOUT`]. `None` when every piece is held or
    /// recently requested.
    pub fn next_request(&mut self, now: Instant) -> Option<u32> {
        if self.finished {
            return None;
        }
        let pos = self
            .slots
            .iter()
            .position(|s| *s == Slot::Missing)
            .or_else(|| {
                self.slots.iter().position(|s| match s {
                    Slot::Requested(at) => {
                        now.saturating_duration_since(*at) >= METADATA_REQUEST_TIMEOUT
                    }
                    _ => false,
                })
            })?;
        self.slots[pos] = Slot::Requested(now);
        u32::try_from(pos).ok()
    }

    /// A peer rejected `piece` (or went away with it outstanding): it may
    /// be requested again at once.
    pub fn on_reject(&mut self, piece: u32) {
        if let Some(slot) = self.slots.get_mut(piece as usize)
            && matches!(slot, Slot::Requested(_))
        {
            *slot = Slot::Missing;
        }
    }

    /// Stores a data message. Returns the [`Info`] when this was the last
    /// piece and everything verified; [`Error::MetadataMismatch`] (after
    /// dropping every piece) when it did not; an error naming the field
    /// for a piece that does not fit this metadata. Duplicates and pieces
    /// arriving after the end are ignored.
    pub fn on_data(
        &mut self,
        piece: u32,
        total_size: u32,
        data: &[u8],
    ) -> Result<Option<Info>, Error> {
        if self.finished {
            return Ok(None);
        }
        if total_size != self.size {
            return Err(field(
                "ut_metadata total_size",
                format!("{total_size}, but the metadata is {} bytes", self.size),
            ));
        }
        let range = piece_range(self.size, piece).ok_or_else(|| {
            field(
                "ut_metadata piece",
                format!("piece {piece} is past the end of {} bytes", self.size),
            )
        })?;
        if data.len() != range.len() {
            return Err(field(
                "ut_metadata data",
                format!(
                    "{} bytes where piece {piece} has {}",
                    data.len(),
                    range.len()
                ),
            ));
        }
        let idx = piece as usize;
        if self.slots.get(idx) == Some(&Slot::Have) {
            return Ok(None);
        }
        self.buf[range].copy_from_slice(data);
        self.slots[idx] = Slot::Have;
        self.received += 1;
        if self.received < self.piece_count() {
            return Ok(None);
        }
        if !self.expected.matches(&self.buf) {
            self.reset();
            self.failures += 1;
            return Err(Error::MetadataMismatch);
        }
        self.finished = true;
        let raw = std::mem::take(&mut self.buf);
        let info = Info::from_bytes(&raw, &self.limits)?;
        // The hash matched, so the only way these differ is metadata of the
        // wrong version for the magnet (v1-only bytes named by a btmh).
        if self.expected.v1.is_some() && info.v1_infohash != self.expected.v1
            || self.expected.v2.is_some() && info.v2_infohash != self.expected.v2
        {
            return Err(Error::Inconsistent(
                "the metadata lacks the version (v1 or v2) its magnet infohash names".into(),
            ));
        }
        Ok(Some(info))
    }

    /// [`on_data`](Self::on_data) or [`on_reject`](Self::on_reject) by
    /// message type; requests (the serving side) are ignored here.
    pub fn on_message(&mut self, msg: &MetadataMessage<'_>) -> Result<Option<Info>, Error> {
        match *msg {
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_data(piece, total_size, data),
            MetadataMessage::Reject { piece } => {
                self.on_reject(piece);
                Ok(None)
            }
            MetadataMessage::Request { .. } | MetadataMessage::Unknown { .. } => Ok(None),
        }
    }

    fn reset(&mut self) {
        self.slots.fill(Slot::Missing);
        self.buf.fill(0);
        self.received = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Version;

    /// A v1 info dictionary of 2,000 pieces: 40,113 bytes, three metadata
    /// pieces, the last one short.
    fn big_v1_info() -> Vec<u8> {
        let pieces = 2000;
        let mut raw = format!(
            "d6:lengthi{}e4:name4:repo12:piece lengthi16384e6:pieces{}:",
            pieces * 16384,
            pieces * 20
        )
        .into_bytes();
        for i in 0..pieces {
            raw.extend_from_slice(&sha1(&(i as u32).to_be_bytes()));
        }
        raw.push(b'e');
        raw
    }

    fn small_v2_info() -> Vec<u8> {
        let mut raw = b"d9:file treed4:datad0:d6:lengthi3e11:pieces root32:".to_vec();
        raw.extend_from_slice(&[7; 32]);
        raw.extend_from_slice(b"eee12:meta versioni2e4:name4:repo12:piece lengthi16384ee");
        raw
    }

    fn hashes(raw: &[u8]) -> InfoHashes {
        InfoHashes {
            v1: Some(sha1(raw)),
            v2: None,
        }
    }

    fn enc(m: &MetadataMessage<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        out
    }

    #[test]
    fn messages_round_trip() {
        let info = big_v1_info();
        let mut msgs = vec![
            MetadataMessage::Request { piece: 0 },
            MetadataMessage::Request { piece: u32::MAX },
            MetadataMessage::Reject { piece: 5 },
        ];
        for p in 0..4 {
            msgs.push(serve_metadata(&info, p));
        }
        assert_eq!(msgs[6], MetadataMessage::Reject { piece: 3 });
        for m in msgs {
            let bytes = enc(&m);
            assert_eq!(MetadataMessage::decode(&bytes), Ok(m));
        }
        assert_eq!(
            enc(&MetadataMessage::Request { piece: 1 }),
            b"d8:msg_typei0e5:piecei1ee"
        );
    }

    #[test]
    fn reads_libtorrent_requests_and_rejects_that_carry_total_size() {
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei2e5:piecei7e10:total_sizei5120ee"),
            Ok(MetadataMessage::Reject { piece: 7 })
        );
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei0e5:piecei0e10:total_sizei5120ee"),
            Ok(MetadataMessage::Request { piece: 0 })
        );
    }

    #[test]
    fn reads_data_with_extra_keys_and_splits_at_the_dictionary_end() {
        // The raw piece itself looks like bencode: only the first value is
        // the dictionary.
        let bytes = b"d8:msg_typei1e5:piecei0e10:total_sizei4e4:zzzzi9eed2:e";
        assert_eq!(
            MetadataMessage::decode(bytes),
            Ok(MetadataMessage::Data {
                piece: 0,
                total_size: 4,
                data: b"d2:e"
            })
        );
    }

    #[test]
    fn unknown_message_types_are_passed_over() {
        for (bytes, msg_type) in [
            (&b"d8:msg_typei3e5:piecei0ee"[..], 3),
            (b"d8:msg_typei-1ee", -1),
            (b"d8:msg_typei99e5:piece3:anyexx", 99),
        ] {
            let m = MetadataMessage::decode(bytes).expect("ignored, not refused");
            assert_eq!(m, MetadataMessage::Unknown { msg_type });
            assert_eq!(MetadataMessage::decode(&enc(&m)), Ok(m));
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let info = big_v1_info();
        for m in [
            MetadataMessage::Request { piece: 1 },
            serve_metadata(&info, 0),
            serve_metadata(&info, 2),
        ] {
            let bytes = enc(&m);
            for cut in 0..bytes.len() {
                assert!(MetadataMessage::decode(&bytes[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    fn refusal(bytes: &[u8]) -> String {
        match MetadataMessage::decode(bytes) {
            Ok(m) => panic!("accepted {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn hostile_messages_are_refused_by_name() {
        for (bytes, name) in [
            (&b"d5:piecei0ee"[..], "msg_type"),
            (b"d8:msg_typei0ee", "piece"),
            (b"d8:msg_typei0e5:piecei-1ee", "piece"),
            (b"d8:msg_typei0e5:piecei4294967296ee", "piece"),
            (
                b"d8:msg_typei1e5:piecei1024e10:total_sizei16777216eexx",
                "piece",
            ),
            (b"d8:msg_type1:05:piecei0ee", "msg_type"),
            (b"d8:msg_typei1e5:piecei0ee", "total_size"),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei0eexx", "total_size"),
            (
                b"d8:msg_typei1e5:piecei0e10:total_sizei16777217eexx",
                "total_size",
            ),
            (b"d8:msg_typei1e5:piecei1e10:total_sizei5eexx", "piece"),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei5eexx", "data"),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei1eexx", "data"),
            (b"d8:msg_typei0e5:piecei0eexx", "trailing"),
            (b"li1ee", "ut_metadata"),
        ] {
            let e = refusal(bytes);
            assert!(e.contains(name), "{e:?} should name {name:?}");
        }
        let huge = [
            &b"d8:msg_typei1e5:piecei0e10:total_sizei16384ee"[..],
            &vec![0; METADATA_PIECE_LEN + MAX_DICT_LEN],
        ]
        .concat();
        assert!(refusal(&huge).contains("over the limit"));
    }

    #[test]
    fn serving_rejects_what_does_not_exist() {
        assert_eq!(serve_metadata(b"", 0), MetadataMessage::Reject { piece: 0 });
        assert_eq!(
            serve_metadata(b"de", 1),
            MetadataMessage::Reject { piece: 1 }
        );
        assert_eq!(
            serve_metadata(b"de", u32::MAX),
            MetadataMessage::Reject { piece: u32::MAX }
        );
        let exact = vec![b'x'; METADATA_PIECE_LEN];
        assert!(matches!(
            serve_metadata(&exact, 0),
            MetadataMessage::Data { data, .. } if data.len() == METADATA_PIECE_LEN
        ));
        assert_eq!(
            serve_metadata(&exact, 1),
            MetadataMessage::Reject { piece: 1 }
        );
    }

    fn fetch_all(
        asm: &mut MetadataAssembler,
        info: &[u8],
        now: Instant,
        corrupt: Option<u32>,
    ) -> Result<Option<Info>, Error> {
        let mut asked = Vec::new();
        while let Some(p) = asm.next_request(now) {
            asked.push(p);
        }
        // Answer in reverse order, through the wire encoding.
        let mut last = Ok(None);
        for p in asked.into_iter().rev() {
            let mut bytes = enc(&serve_metadata(info, p));
            if corrupt == Some(p) {
                let end = bytes.len() - 1;
                bytes[end] ^= 1;
            }
            let msg = MetadataMessage::decode(&bytes)?;
            last = asm.on_message(&msg);
            if last.is_err() {
                break;
            }
        }
        last
    }

    #[test]
    fn wrong_metadata_is_dropped_then_right_metadata_accepted() {
        let info = big_v1_info();
        let t0 = Instant::now();
        let mut asm = MetadataAssembler::new(hashes(&info), info.len() as u32, Limits::default())
            .expect("assembler");
        assert_eq!(asm.piece_count(), 3);
        let e = fetch_all(&mut asm, &info, t0, Some(1)).expect_err("corrupt piece 1");
        assert_eq!(e, Error::MetadataMismatch);
        assert_eq!(
            e.to_string(),
            "metadata from peer did not match the infohash"
        );
        assert_eq!(asm.received(), 0);
        assert_eq!(asm.failures(), 1);
        assert!(!asm.is_finished());
        let got = fetch_all(&mut asm, &info, t0, None)
            .expect("verifies")
            .expect("complete");
        assert_eq!(got.raw, info);
        assert_eq!(got.v1_infohash, Some(sha1(&info)));
        assert!(asm.is_finished());
        assert_eq!(asm.next_request(t0), None);
        assert_eq!(
            asm.on_data(0, info.len() as u32, &info[..METADATA_PIECE_LEN]),
            Ok(None)
        );
    }

    #[test]
    fn v2_and_hybrid_magnets_verify_with_sha256() {
        let info = small_v2_info();
        let expected = InfoHashes {
            v1: None,
            v2: Some(sha256(&info)),
        };
        let mut asm = MetadataAssembler::new(expected, info.len() as u32, Limits::default())
            .expect("assembler");
        let got = fetch_all(&mut asm, &info, Instant::now(), None)
            .expect("verifies")
            .expect("complete");
        assert_eq!(got.version, Version::V2);
        assert_eq!(got.v2_infohash, expected.v2);

        // A magnet naming both hashes needs both to match.
        let wrong_v1 = InfoHashes {
            v1: Some([0; 20]),
            v2: Some(sha256(&info)),
        };
        let mut asm = MetadataAssembler::new(wrong_v1, info.len() as u32, Limits::default())
            .expect("assembler");
        assert_eq!(
            fetch_all(&mut asm, &info, Instant::now(), None),
            Err(Error::MetadataMismatch)
        );

        // v1-only bytes named by a btmh: the hash matches, the version not.
        let v1 = big_v1_info();
        let by_v2 = InfoHashes {
            v1: None,
            v2: Some(sha256(&v1)),
        };
        let mut asm =
            MetadataAssembler::new(by_v2, v1.len() as u32, Limits::default()).expect("assembler");
        assert!(matches!(
            fetch_all(&mut asm, &v1, Instant::now(), None),
            Err(Error::Inconsistent(_))
        ));
    }

    #[test]
    fn verified_but_invalid_info_is_an_error_not_a_retry() {
        let raw = b"d4:name2:..12:piece lengthi16384e6:lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let mut asm = MetadataAssembler::new(hashes(raw), raw.len() as u32, Limits::default())
            .expect("assembler");
        let e = fetch_all(&mut asm, raw, Instant::now(), None).expect_err("unsafe name");
        assert!(e.to_string().contains("info.name"), "{e}");
        assert!(asm.is_finished());
    }

    #[test]
    fn requests_time_out_and_rejects_free_the_piece() {
        let info = big_v1_info();
        let t0 = Instant::now();
        let mut asm = MetadataAssembler::new(hashes(&info), info.len() as u32, Limits::default())
            .expect("assembler");
        assert_eq!(asm.next_request(t0), Some(0));
        assert_eq!(asm.next_request(t0), Some(1));
        assert_eq!(asm.next_request(t0), Some(2));
        assert_eq!(asm.next_request(t0), None);
        asm.on_reject(1);
        asm.on_reject(99);
        assert_eq!(asm.next_request(t0), Some(1));
        assert_eq!(asm.next_request(t0 + Duration::from_secs(1)), None);
        let later = t0 + METADATA_REQUEST_TIMEOUT;
        assert_eq!(asm.next_request(later), Some(0));
        let size = info.len() as u32;
        assert_eq!(
            asm.on_data(2, size, &info[2 * METADATA_PIECE_LEN..]),
            Ok(None)
        );
        // A held piece is never asked again, even after the timeout.
        let much_later = later + METADATA_REQUEST_TIMEOUT;
        assert_eq!(asm.next_request(much_later), Some(0));
        assert_eq!(asm.next_request(much_later), Some(1));
        assert_eq!(asm.next_request(much_later), None);
    }

    #[test]
    fn hostile_sizes_and_pieces_are_refused() {
        let h = InfoHashes {
            v1: Some([1; 20]),
            v2: None,
        };
        assert!(MetadataAssembler::new(InfoHashes::default(), 10, Limits::default()).is_err());
        assert!(MetadataAssembler::new(h, 0, Limits::default()).is_err());
        assert!(MetadataAssembler::new(h, MAX_METADATA_SIZE + 1, Limits::default()).is_err());
        assert!(MetadataAssembler::new(h, u32::MAX, Limits::default()).is_err());
        let mut asm = MetadataAssembler::new(h, 20_000, Limits::default()).expect("assembler");
        let e = |r: Result<Option<Info>, Error>| r.expect_err("refused").to_string();
        assert!(e(asm.on_data(0, 20_001, &[0; METADATA_PIECE_LEN])).contains("total_size"));
        assert!(e(asm.on_data(2, 20_000, &[0; 10])).contains("piece"));
        assert!(e(asm.on_data(u32::MAX, 20_000, &[0; 10])).contains("piece"));
        assert!(e(asm.on_data(1, 20_000, &[0; 10])).contains("data"));
        assert!(e(asm.on_data(0, 20_000, &[0; 10])).contains("data"));
        assert_eq!(asm.received(), 0);
    }
}
