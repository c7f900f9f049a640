//! BEP 52 merkle trees: 16 KiB leaves, SHA-256 nodes, zero padding.
//!
//! One rule covers every file size: the tree of a file has
//! `next_power_of_two(ceil(len / 16 KiB))` leaves, the missing leaves are 32
//! zero bytes, and a missing subtree hashes like a subtree of zero leaves. A
//! file longer than one piece also publishes its *piece layer*: the nodes
//! whose subtrees cover exactly one piece (the last one padded). A file of at
//! most one piece has no piece layer; its root is the only hash there is, so
//! [`piece_width`] gives such a "piece" the width of the whole (smaller) tree.
//!
//! Nothing here holds a file: [`FileHasher`] keeps one partial block and one
//! piece worth of leaf hashes (at most 256 for 4 MiB pieces), plus the piece
//! layer it must return anyway (32 bytes per piece).

use crate::hash::{Sha256, Sha256Hasher, sha256, sha256_pair};

/// Size of a merkle leaf.
pub const BLOCK_SIZE: usize = 16 * 1024;

/// The hash of a subtree of `height` levels above zero leaves (height 0 is the
/// zero leaf itself).
pub fn pad_hash(height: u32) -> Sha256 {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = sha256_pair(&h, &h);
    }
    h
}

/// Root of a tree `width` nodes wide (a power of two) whose first
/// `nodes.len()` nodes are given and whose other nodes equal `pad`.
///
/// Returns `None` when `width` is not a power of two or is narrower than
/// `nodes` (a caller bug or hostile sizes, never a panic).
pub fn root_of(nodes: &[Sha256], width: usize, pad: Sha256) -> Option<Sha256> {
    if !width.is_power_of_two() || nodes.len() > width {
        return None;
    }
    let mut layer: Vec<Sha256> = nodes.to_vec();
    let mut pad = pad;
    let mut width = width;
    while width > 1 {
        let mut next = Vec::with_capacity(layer.len().div_ceil(2));
        for pair in layer.chunks(2) {
            let right = pair.get(1).unwrap_or(&pad);
            next.push(sha256_pair(&pair[0], right));
        }
        layer = next;
        pad = sha256_pair(&pad, &pad);
        width /= 2;
    }
    Some(layer.first().copied().unwrap_or(pad))
}

/// Number of leaves of the subtree that one piece hash covers, for a file of
/// `file_len` bytes in a torrent with `piece_len`-byte pieces.
pub fn piece_width(file_len: u64, piece_len: u64) -> usize {
    let piece_leaves = (piece_len / BLOCK_SIZE as u64).max(1);
    if file_len > piece_len {
        piece_leaves as usize
    } else {
        let blocks = file_len.div_ceil(BLOCK_SIZE as u64).max(1);
        blocks.next_power_of_two() as usize
    }
}

/// The hash of one piece's data: leaves of `data` padded to `width` leaves.
///
/// For a file of at most one piece this is the file's pieces root.
pub fn piece_hash(data: &[u8], width: usize) -> Option<Sha256> {
    let leaves: Vec<Sha256> = data.chunks(BLOCK_SIZE).map(sha256).collect();
    root_of(&leaves, width, [0u8; 32])
}

/// What a whole file hashes to under BEP 52.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHashes {
    /// The pieces root; `None` for an empty file, which BEP 52 gives none.
    pub root: Option<Sha256>,
    /// One hash per piece, only for files longer than one piece.
    pub piece_layer: Vec<Sha256>,
}

/// Streaming BEP 52 hasher for one file of a known length.
pub struct FileHasher {
    piece_len: u64,
    file_len: u64,
    fed: u64,
    block: Vec<u8>,
    leaves: Vec<Sha256>,
    piece_layer: Vec<Sha256>,
    piece_leaves: usize,
}

impl FileHasher {
    /// `piece_len` must be a power of two of at least 16 KiB (checked by
    /// the metainfo layer before any hashing starts).
    pub fn new(file_len: u64, piece_len: u64) -> Self {
        let piece_leaves = (piece_len / BLOCK_SIZE as u64).max(1) as usize;
        Self {
            piece_len,
            file_len,
            fed: 0,
            block: Vec::new(),
            leaves: Vec::with_capacity(piece_leaves),
            piece_layer: Vec::new(),
            piece_leaves,
        }
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.fed += data.len() as u64;
        if !self.block.is_empty() {
            let take = (BLOCK_SIZE - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK_SIZE {
                let leaf = sha256(&self.block);
                self.block.clear();
                self.push_leaf(leaf);
            }
        }
        let mut chunks = data.chunks_exact(BLOCK_SIZE);
        for block in &mut chunks {
            let leaf = sha256(block);
            self.push_leaf(leaf);
        }
        self.block.extend_from_slice(chunks.remainder());
    }

    fn push_leaf(&mut self, leaf: Sha256) {
        self.leaves.push(leaf);
        if self.leaves.len() == self.piece_leaves && self.file_len > self.piece_len {
            self.flush_piece();
        }
    }

    fn flush_piece(&mut self) {
        let node = root_of(&self.leaves, self.piece_leaves, [0u8; 32]).unwrap_or_default();
        self.piece_layer.push(node);
        self.leaves.clear();
    }

    /// Finishes the file. Returns `None` when the bytes fed differ from the
    /// length announced in [`FileHasher::new`] (the file changed under us).
    pub fn finish(mut self) -> Option<FileHashes> {
        if self.fed != self.file_len {
            return None;
        }
        if !self.block.is_empty() {
            let mut h = Sha256Hasher::default();
            h.update(&self.block);
            let leaf = h.finish();
            self.block.clear();
            self.push_leaf(leaf);
        }
        if self.file_len == 0 {
            return Some(FileHashes {
                root: None,
                piece_layer: Vec::new(),
            });
        }
        if self.file_len <= self.piece_len {
            let width = piece_width(self.file_len, self.piece_len);
            let root = root_of(&self.leaves, width, [0u8; 32])?;
            return Some(FileHashes {
                root: Some(root),
                piece_layer: Vec::new(),
            });
        }
        if !self.leaves.is_empty() {
            self.flush_piece();
        }
        let width = self.piece_layer.len().next_power_of_two();
        let pad = pad_hash(self.piece_leaves.trailing_zeros());
        let root = root_of(&self.piece_layer, width, pad)?;
        Some(FileHashes {
            root: Some(root),
            piece_layer: self.piece_layer,
        })
    }
}

/// Hashes a whole in-memory buffer (tests and small files).
pub fn hash_bytes(data: &[u8], piece_len: u64) -> FileHashes {
    let mut h = FileHasher::new(data.len() as u64, piece_len);
    h.update(data);
    h.finish().unwrap_or(FileHashes {
        root: None,
        piece_layer: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: all leaves, padded to the power of two.
    fn reference_root(data: &[u8]) -> Sha256 {
        let leaves: Vec<Sha256> = data.chunks(BLOCK_SIZE).map(sha256).collect();
        let width = leaves.len().next_power_of_two();
        root_of(&leaves, width, [0u8; 32]).unwrap_or_default()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 991) as u8).collect()
    }

    #[test]
    fn roots_match_reference_for_awkward_sizes() {
        let piece = 64 * 1024u64;
        for len in [
            1usize,
            16383,
            16384,
            16385,
            65535,
            65536,
            65537,
            3 * 65536,
            5 * 65536 + 3,
        ] {
            let d = data(len);
            let hashes = hash_bytes(&d, piece);
            assert_eq!(hashes.root, Some(reference_root(&d)), "len {len}");
            if len as u64 > piece {
                assert_eq!(hashes.piece_layer.len(), len.div_ceil(piece as usize));
                for (i, chunk) in d.chunks(piece as usize).enumerate() {
                    let w = piece_width(len as u64, piece);
                    assert_eq!(piece_hash(chunk, w), Some(hashes.piece_layer[i]));
                }
            } else {
                assert!(hashes.piece_layer.is_empty());
                let w = piece_width(len as u64, piece);
                assert_eq!(piece_hash(&d, w), hashes.root);
            }
        }
    }

    #[test]
    fn streaming_in_odd_slices_equals_one_shot() {
        let d = data(300_001);
        let mut h = FileHasher::new(d.len() as u64, 32 * 1024);
        for chunk in d.chunks(777) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), Some(hash_bytes(&d, 32 * 1024)));
    }

    #[test]
    fn wrong_length_is_detected() {
        let mut h = FileHasher::new(10, 16384);
        h.update(b"short");
        assert_eq!(h.finish(), None);
    }

    #[test]
    fn empty_file_has_no_root() {
        assert_eq!(hash_bytes(b"", 16384).root, None);
    }

    #[test]
    fn bad_width_is_an_error_not_a_panic() {
        assert_eq!(root_of(&[[0; 32]; 3], 2, [0; 32]), None);
        assert_eq!(root_of(&[], 3, [0; 32]), None);
    }
}
