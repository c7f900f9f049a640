//! BEP 52 hash request / hashes / hash reject: serving a file's merkle
//! hashes and checking the ones a peer sends.
//!
//! A v2 magnet link names files by their pieces roots only. To check a
//! piece of a file longer than one piece, a downloader needs the file's
//! *piece layer*, which it asks peers for in chunks of at most 512 hashes,
//! each with the *uncle* hashes that lead from the chunk up to the root it
//! already trusts. This module is both sides of that exchange, as pure
//! functions over hashes:
//!
//! - [`PieceTree`] answers a request from a piece layer the seeder holds
//!   (from the .torrent's `piece layers`, or fetched and verified earlier);
//! - [`piece_layer_requests`] says what to ask for, and [`verify`] checks an
//!   answer against the pieces root and returns the hashes it proved.
//!
//! Layers are numbered as on the wire: 0 is the 16 KiB leaf layer, the piece
//! layer is `log2(piece_len / 16 KiB)`, the root is `log2` of the padded leaf
//! count. A layer is padded on the right to a power of two with the hash of
//! an all-zero subtree of its height ([`merkle::pad_hash`]).
//!
//! The answer's layout, from BEP 52 and as libtorrent 2.0 reads it: the
//! `length` base hashes (padding included), then one uncle per proof layer,
//! lowest first, never the root. `proof layers` counts layers above the
//! base; the first `log2(length) - 1` of them need no uncle (the base hashes
//! cover them), so an answer carries `proof_layers + 1 - log2(length)` uncles
//! when that is positive.
//!
//! What a peer controls here is bounded before anything is allocated:
//! `length` is at most 512, uncles at most one per layer of a tree that is
//! at most 64 layers high, and a message's size must match them exactly.
//!
//! We serve the piece layer and the layers above it. Requests for lower
//! layers (block hashes, which libtorrent asks for after a piece fails its
//! check) are rejected: we keep no leaf hashes.

use crate::Error;
use crate::hash::{Sha256, sha256_pair};
use crate::merkle::{self, BLOCK_SIZE};
use crate::wire::HashRequest;

/// Most base hashes in one request (BEP 52: "SHOULD NOT be greater than 512").
pub const MAX_LENGTH: u32 = 512;

/// The layer number of the piece layer for `piece_len`-byte pieces: `None`
/// unless `piece_len` is a power of two of at least 16 KiB.
pub fn piece_layer_of(piece_len: u64) -> Option<u32> {
    if piece_len < BLOCK_SIZE as u64 || !piece_len.is_power_of_two() {
        return None;
    }
    Some((piece_len / BLOCK_SIZE as u64).trailing_zeros())
}

/// The shape of a valid request against a layer `width_log2` wide.
#[derive(Debug, Clone, Copy)]
struct Shape {
    length_log2: u32,
    uncles: u32,
}

/// Checks `length`, `index` and `proof_layers` against a layer of
/// `2^width_log2` nodes; `None` when the request is malformed or asks for
/// hashes above the root.
fn shape(req: &HashRequest, width_log2: u32) -> Option<Shape> {
    let length = req.length;
    if !(2..=MAX_LENGTH).contains(&length) || !length.is_power_of_two() {
        return None;
    }
    let length_log2 = length.trailing_zeros();
    if length_log2 > width_log2 || !req.index.is_multiple_of(length) {
        return None;
    }
    // width_log2 can be up to 64; the index must lie inside the layer.
    let width = 1u128 << width_log2;
    if u128::from(req.index) + u128::from(length) > width {
        return None;
    }
    let uncles = (i64::from(req.proof_layers) + 1 - i64::from(length_log2)).max(0);
    if uncles > i64::from(width_log2 - length_log2) {
        return None;
    }
    Some(Shape {
        length_log2,
        uncles: uncles as u32,
    })
}

/// A file's merkle tree from its piece layer up to its root, to answer hash
/// requests without rehashing anything.
///
/// Holds every node at or above the piece layer except padding: about two
/// hashes (64 bytes) per piece.
#[derive(Debug, Clone)]
pub struct PieceTree {
    /// Layer number of `layers[0]` (the piece layer).
    base: u32,
    /// `layers[0]` is the piece layer without padding, each next one its
    /// parents, the last one `[root]`.
    layers: Vec<Vec<Sha256>>,
    /// `pads[i]`: the padding hash of `layers[i]`.
    pads: Vec<Sha256>,
}

impl PieceTree {
    /// Builds the tree above `piece_layer`. `None` for an empty layer or a
    /// piece length that is not a power of two of at least 16 KiB.
    pub fn new(piece_layer: &[Sha256], piece_len: u64) -> Option<PieceTree> {
        let base = piece_layer_of(piece_len)?;
        if piece_layer.is_empty() {
            return None;
        }
        let height = piece_layer.len().next_power_of_two().trailing_zeros();
        let mut pad = merkle::pad_hash(base);
        let mut layers = vec![piece_layer.to_vec()];
        let mut pads = vec![pad];
        for _ in 0..height {
            let below = layers.last()?;
            let up: Vec<Sha256> = below
                .chunks(2)
                .map(|pair| sha256_pair(&pair[0], pair.get(1).unwrap_or(&pad)))
                .collect();
            pad = sha256_pair(&pad, &pad);
            layers.push(up);
            pads.push(pad);
        }
        Some(PieceTree { base, layers, pads })
    }

    /// The file's pieces root.
    pub fn root(&self) -> Sha256 {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The node at `level` layers above the piece layer, padding included.
    fn node(&self, level: usize, index: u64) -> Sha256 {
        let layer = &self.layers[level];
        usize::try_from(index)
            .ok()
            .and_then(|i| layer.get(i))
            .copied()
            .unwrap_or(self.pads[level])
    }

    /// The answer to `req` (base hashes, then uncles), or `None` for a hash
    /// reject: another root, a layer below the piece layer, a bad index or
    /// length, or proof layers above the root.
    pub fn serve(&self, req: &HashRequest) -> Option<Vec<Sha256>> {
        if req.pieces_root != self.root() || req.base_layer < self.base {
            return None;
        }
        let level = req.base_layer - self.base;
        let height = (self.layers.len() - 1) as u32;
        if level > height {
            return None;
        }
        let s = shape(req, height - level)?;
        let mut out = Vec::with_capacity(req.length as usize + s.uncles as usize);
        let start = u64::from(req.index);
        out.extend((start..start + u64::from(req.length)).map(|i| self.node(level as usize, i)));
        let first = level + s.length_log2;
        let mut idx = start >> s.length_log2;
        for at in first..first + s.uncles {
            out.push(self.node(at as usize, idx ^ 1));
            idx >>= 1;
        }
        Some(out)
    }
}

/// Answers `req` from one file's piece layer (builds a [`PieceTree`]; keep
/// one per file to answer many requests).
pub fn serve(piece_layer: &[Sha256], piece_len: u64, req: &HashRequest) -> Option<Vec<Sha256>> {
    PieceTree::new(piece_layer, piece_len)?.serve(req)
}

/// Number of leaves (log2) of the padded tree of a `file_len`-byte file.
fn leaves_log2(file_len: u64) -> u32 {
    let blocks = file_len.div_ceil(BLOCK_SIZE as u64).max(1);
    blocks.next_power_of_two().trailing_zeros()
}

/// The requests that fetch the whole piece layer of a file of `file_len`
/// bytes whose root is `root`: chunks of at most 512 hashes, each asking for
/// exactly the uncles that reach the root. Empty for a file of at most one
/// piece (its root is its only piece hash) or a bad piece length.
pub fn piece_layer_requests(root: Sha256, file_len: u64, piece_len: u64) -> Vec<HashRequest> {
    let Some(base) = piece_layer_of(piece_len) else {
        return Vec::new();
    };
    if file_len <= piece_len {
        return Vec::new();
    }
    let pieces = file_len.div_ceil(piece_len);
    let width_log2 = leaves_log2(file_len) - base;
    let length = (1u64 << width_log2).min(u64::from(MAX_LENGTH));
    // All layers below the root, counted from the base (BEP 52 semantics:
    // the ones the base hashes cover are counted but carry no uncle).
    let proof_layers = width_log2 - 1;
    (0..pieces)
        .step_by(length as usize)
        .filter_map(|index| {
            Some(HashRequest {
                pieces_root: root,
                base_layer: base,
                index: u32::try_from(index).ok()?,
                length: length as u32,
                proof_layers,
            })
        })
        .collect()
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Hashes(reason.into())
}

/// Checks a hashes message answering `req` for a file of `file_len` bytes
/// whose pieces root is `root`, and returns the base hashes it proves,
/// without the padding past the end of the file.
///
/// The proof must reach the root: `req` must ask for every uncle (as
/// [`piece_layer_requests`] does). `hashes` is the message's hash bytes.
pub fn verify(
    root: &Sha256,
    file_len: u64,
    req: &HashRequest,
    hashes: &[u8],
) -> Result<Vec<Sha256>, Error> {
    if req.pieces_root != *root {
        return Err(bad("hashes for another file"));
    }
    if file_len == 0 {
        return Err(bad("hashes for an empty file"));
    }
    let leaves = leaves_log2(file_len);
    if req.base_layer > leaves {
        return Err(bad(format!("base layer {} above the root", req.base_layer)));
    }
    let width_log2 = leaves - req.base_layer;
    let s = shape(req, width_log2).ok_or_else(|| {
        bad(format!(
            "bad range: index {} length {} proof layers {}",
            req.index, req.length, req.proof_layers
        ))
    })?;
    if s.length_log2 + s.uncles != width_log2 {
        return Err(bad("the proof does not reach the root"));
    }
    let count = req.length as usize + s.uncles as usize;
    if hashes.len() != count * 32 {
        return Err(bad(format!(
            "{} bytes of hashes, expected {}",
            hashes.len(),
            count * 32
        )));
    }
    let nodes: Vec<Sha256> = hashes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    let (base, uncles) = nodes.split_at(req.length as usize);
    // Nodes of this layer that cover file data; the rest must be padding.
    let blocks = file_len.div_ceil(BLOCK_SIZE as u64);
    let real = ((blocks - 1) >> req.base_layer) + 1;
    let real_here = real
        .saturating_sub(u64::from(req.index))
        .min(u64::from(req.length)) as usize;
    let pad = merkle::pad_hash(req.base_layer);
    if base[real_here..].iter().any(|h| *h != pad) {
        return Err(bad("padding past the end of the file is not zero"));
    }
    let mut node = merkle::root_of(base, base.len(), pad).ok_or_else(|| bad("bad length"))?;
    let mut idx = u64::from(req.index) >> s.length_log2;
    for u in uncles {
        node = if idx & 1 == 0 {
            sha256_pair(&node, u)
        } else {
            sha256_pair(u, &node)
        };
        idx >>= 1;
    }
    if node != *root {
        return Err(bad("hashes do not lead to the pieces root"));
    }
    Ok(base[..real_here].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;

    /// A fake piece layer of `pieces` distinct hashes.
    fn layer(pieces: usize, seed: u8) -> Vec<Sha256> {
        (0..pieces)
            .map(|i| sha256(&[seed, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
            .collect()
    }

    fn root_of_layer(l: &[Sha256], piece_len: u64) -> Sha256 {
        let pad = merkle::pad_hash(piece_layer_of(piece_len).expect("piece len"));
        merkle::root_of(l, l.len().next_power_of_two(), pad).expect("root")
    }

    /// Fetches a whole layer through requests, serve and verify.
    fn round_trip(file_len: u64, piece_len: u64) {
        let pieces = file_len.div_ceil(piece_len) as usize;
        let l = layer(pieces, (file_len % 251) as u8);
        let tree = PieceTree::new(&l, piece_len).expect("tree");
        let root = root_of_layer(&l, piece_len);
        assert_eq!(tree.root(), root);
        let reqs = piece_layer_requests(root, file_len, piece_len);
        assert_eq!(reqs.len(), pieces.div_ceil(512));
        let mut got = Vec::new();
        for r in &reqs {
            let ans = tree.serve(r).expect("served");
            let bytes: Vec<u8> = ans.concat();
            let ok = verify(&root, file_len, r, &bytes).expect("verified");
            got.extend(ok);
        }
        assert_eq!(got, l, "file {file_len} piece {piece_len}");
    }

    #[test]
    fn round_trip_many_sizes() {
        for piece_len in [16 * 1024u64, 32 * 1024, 256 * 1024, 4 << 20] {
            for pieces in [
                2u64, 3, 4, 5, 7, 8, 9, 100, 511, 512, 513, 1000, 1024, 1025, 3000,
            ] {
                for tail in [0u64, 1, piece_len / 2] {
                    let len = (pieces - 1) * piece_len + if tail == 0 { piece_len } else { tail };
                    round_trip(len, piece_len);
                }
            }
        }
    }

    #[test]
    fn real_file_round_trip() {
        let piece_len = 32 * 1024;
        let data: Vec<u8> = (0..700_001u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let fh = merkle::hash_bytes(&data, piece_len);
        let root = fh.root.expect("root");
        let tree = PieceTree::new(&fh.piece_layer, piece_len).expect("tree");
        assert_eq!(tree.root(), root);
        for r in piece_layer_requests(root, data.len() as u64, piece_len) {
            let ans = tree.serve(&r).expect("served").concat();
            let got = verify(&root, data.len() as u64, &r, &ans).expect("ok");
            assert_eq!(got, fh.piece_layer);
        }
    }

    #[test]
    fn sub_ranges_and_higher_layers_verify() {
        let piece_len = 16 * 1024;
        let pieces = 3000usize;
        let file_len = pieces as u64 * piece_len - 5;
        let l = layer(pieces, 9);
        let tree = PieceTree::new(&l, piece_len).expect("tree");
        let root = tree.root();
        // Layer 0 is the piece layer here; 4096 wide (log2 12).
        for base in 0..12u32 {
            let width = 1u32 << (12 - base);
            let mut length = 2;
            while length <= width.min(512) {
                for index in [0, length, width - length] {
                    if index + length > width {
                        continue;
                    }
                    let proof_layers = 12 - base - 1;
                    let r = HashRequest {
                        pieces_root: root,
                        base_layer: base,
                        index,
                        length,
                        proof_layers,
                    };
                    let ans = tree.serve(&r).expect("served").concat();
                    verify(&root, file_len, &r, &ans).expect("verified");
                }
                length *= 2;
            }
        }
    }

    #[test]
    fn short_proofs_are_served_but_cannot_verify() {
        let piece_len = 16 * 1024;
        let l = layer(2000, 1);
        let tree = PieceTree::new(&l, piece_len).expect("tree");
        let root = tree.root();
        let r = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 512,
            length: 512,
            proof_layers: 9,
        };
        // log2(512) = 9: proof layer 9 is the first with an uncle.
        assert_eq!(tree.serve(&r).expect("served").len(), 513);
        let r0 = HashRequest {
            proof_layers: 0,
            ..r
        };
        let ans = tree.serve(&r0).expect("served");
        assert_eq!(ans.len(), 512);
        assert!(verify(&root, 2000 * piece_len, &r0, &ans.concat()).is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let piece_len = 64 * 1024;
        let file_len = 1300 * piece_len + 77;
        let l = layer(1301, 3);
        let tree = PieceTree::new(&l, piece_len).expect("tree");
        let root = tree.root();
        for r in piece_layer_requests(root, file_len, piece_len) {
            let good = tree.serve(&r).expect("served").concat();
            assert!(verify(&root, file_len, &r, &good).is_ok());
            // Every hash matters: a base hash, padding, or an uncle.
            for i in 0..good.len() / 32 {
                let mut bad = good.clone();
                bad[i * 32 + 5] ^= 1;
                assert!(verify(&root, file_len, &r, &bad).is_err(), "hash {i}");
            }
            // Truncated, extended, another root.
            assert!(verify(&root, file_len, &r, &good[..good.len() - 32]).is_err());
            let mut longer = good.clone();
            longer.extend_from_slice(&[0; 32]);
            assert!(verify(&root, file_len, &r, &longer).is_err());
            assert!(verify(&[7; 32], file_len, &r, &good).is_err());
            // Same hashes claimed for another index.
            let moved = HashRequest {
                index: r.index ^ 512,
                ..r
            };
            assert!(verify(&root, file_len, &moved, &good).is_err());
        }
    }

    #[test]
    fn bad_requests_are_rejected() {
        let piece_len = 16 * 1024;
        let l = layer(100, 4); // width 128, height 7
        let tree = PieceTree::new(&l, piece_len).expect("tree");
        let ok = HashRequest {
            pieces_root: tree.root(),
            base_layer: 0,
            index: 0,
            length: 128,
            proof_layers: 6,
        };
        assert_eq!(tree.serve(&ok).map(|v| v.len()), Some(128));
        let bad = [
            HashRequest {
                pieces_root: [1; 32],
                ..ok
            },
            HashRequest { length: 0, ..ok },
            HashRequest { length: 1, ..ok },
            HashRequest { length: 3, ..ok },
            HashRequest { length: 256, ..ok },
            HashRequest { length: 1024, ..ok },
            HashRequest {
                index: 2,
                length: 4,
                proof_layers: 2,
                ..ok
            },
            HashRequest {
                index: 128,
                length: 2,
                ..ok
            },
            HashRequest {
                index: u32::MAX - 1,
                length: 2,
                ..ok
            },
            HashRequest {
                proof_layers: 7,
                ..ok
            },
            HashRequest {
                proof_layers: u32::MAX,
                ..ok
            },
            HashRequest {
                base_layer: 8,
                length: 2,
                ..ok
            },
            HashRequest {
                base_layer: u32::MAX,
                ..ok
            },
        ];
        for r in bad {
            assert_eq!(tree.serve(&r), None, "{r:?}");
        }
        // Layers below the piece layer are never served.
        let tree = PieceTree::new(&l, 64 * 1024).expect("tree");
        let below = HashRequest {
            pieces_root: tree.root(),
            base_layer: 1,
            index: 0,
            length: 2,
            proof_layers: 0,
        };
        assert_eq!(tree.serve(&below), None);
        assert!(
            tree.serve(&HashRequest {
                base_layer: 2,
                proof_layers: 6,
                ..below
            })
            .is_some()
        );
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let root = [9; 32];
        // A huge claimed length, base layer or proof: refused before any
        // allocation that depends on them.
        for (base, index, length, proof) in [
            (0, 0, u32::MAX, 0),
            (0, 0, 1 << 31, 0),
            (u32::MAX, 0, 2, 0),
            (0, 0, 2, u32::MAX),
            (63, 0, 2, 0),
        ] {
            let r = HashRequest {
                pieces_root: root,
                base_layer: base,
                index,
                length,
                proof_layers: proof,
            };
            assert!(verify(&root, u64::MAX, &r, &[0; 64]).is_err());
            assert!(verify(&root, 1 << 40, &r, &[]).is_err());
        }
        // The largest file: the tree is 50 layers high; a valid-looking
        // request still needs exactly 512 + 41 hashes.
        let r = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 0,
            length: 512,
            proof_layers: 49,
        };
        assert!(verify(&root, u64::MAX, &r, &[0; 32 * 10]).is_err());
        assert!(piece_layer_requests(root, 1 << 20, 3 << 14).is_empty());
        assert!(PieceTree::new(&[], 16384).is_none());
    }

    #[test]
    fn no_requests_for_small_files() {
        assert!(piece_layer_requests([0; 32], 16384, 16384).is_empty());
        assert!(piece_layer_requests([0; 32], 100, 65536).is_empty());
        assert_eq!(piece_layer_requests([0; 32], 16385, 16384).len(), 1);
    }
}
