//! Coalescing of verified pieces into large sequential writes.
//!
//! Why: small random writes on eMMC and SD cards are 10–50× slower than
//! sequential ones, and peers deliver pieces in any order. Verified pieces
//! wait here until a contiguous run of one file reaches [`COALESCE_BYTES`],
//! the whole buffer exceeds [`BUFFER_CAP`], or the store flushes. Nothing
//! here is durable or recorded: losing the buffer in a crash only means
//! downloading those pieces again.
//!
//! Memory is bounded by [`BUFFER_CAP`] plus one piece, whatever the number
//! or size of files.

use std::collections::BTreeMap;

use torrent::hash::Sha256;

/// A contiguous run at least this long is written out at once.
pub(crate) const COALESCE_BYTES: usize = 256 * 1024;
/// When more than this is buffered, everything is written out. Eight
/// coalesced runs: more buys no longer writes, only memory (the node's
/// budget is 32 MiB for everything).
pub(crate) const BUFFER_CAP: usize = 2 * 1024 * 1024;

/// A contiguous range of one file, ready for one `pwrite`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub root: Sha256,
    pub offset: u64,
    pub data: Vec<u8>,
    /// The pieces the run covers, ascending.
    pub pieces: Vec<u32>,
}

struct Piece {
    piece_len: u64,
    data: Vec<u8>,
}

/// Verified pieces waiting to be written.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    pieces: BTreeMap<(Sha256, u32), Piece>,
    bytes: usize,
}

impl WriteBuffer {
    pub fn contains(&self, root: &Sha256, index: u32) -> bool {
        self.pieces.contains_key(&(*root, index))
    }

    pub fn has_file(&self, root: &Sha256) -> bool {
        self.pieces
            .range((*root, 0)..=(*root, u32::MAX))
            .next()
            .is_some()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a piece; returns the runs that should be written now.
    pub fn insert(&mut self, root: Sha256, index: u32, piece_len: u64, data: Vec<u8>) -> Vec<Run> {
        self.bytes += data.len();
        self.pieces.insert((root, index), Piece { piece_len, data });
        if self.bytes > BUFFER_CAP {
            return self.drain();
        }
        let (first, last, len) = self.run_around(&root, index);
        if len >= COALESCE_BYTES {
            return vec![self.take_run(&root, first, last)];
        }
        Vec::new()
    }

    /// Everything buffered, as maximal runs in file order.
    pub fn drain(&mut self) -> Vec<Run> {
        let mut runs = Vec::new();
        while let Some((&(root, first), _)) = self.pieces.first_key_value() {
            let (_, last, _) = self.run_around(&root, first);
            runs.push(self.take_run(&root, first, last));
        }
        runs
    }

    /// Everything buffered of one file, as maximal runs in file order.
    pub fn drain_file(&mut self, root: &Sha256) -> Vec<Run> {
        let mut runs = Vec::new();
        while let Some((&(_, first), _)) = self.pieces.range((*root, 0)..=(*root, u32::MAX)).next()
        {
            let (_, last, _) = self.run_around(root, first);
            runs.push(self.take_run(root, first, last));
        }
        runs
    }

    /// First index, last index and byte length of the buffered run holding
    /// `index`.
    fn run_around(&self, root: &Sha256, index: u32) -> (u32, u32, usize) {
        let mut len = self.pieces.get(&(*root, index)).map_or(0, |p| p.data.len());
        let mut first = index;
        while let Some(prev) = first.checked_sub(1) {
            match self.pieces.get(&(*root, prev)) {
                Some(p) => {
                    len += p.data.len();
                    first = prev;
                }
                None => break,
            }
        }
        let mut last = index;
        while let Some(next) = last.checked_add(1) {
            match self.pieces.get(&(*root, next)) {
                Some(p) => {
                    len += p.data.len();
                    last = next;
                }
                None => break,
            }
        }
        (first, last, len)
    }

    fn take_run(&mut self, root: &Sha256, first: u32, last: u32) -> Run {
        let mut run = Run {
            root: *root,
            offset: 0,
            data: Vec::new(),
            pieces: Vec::new(),
        };
        for index in first..=last {
            if let Some(p) = self.pieces.remove(&(*root, index)) {
                self.bytes -= p.data.len().min(self.bytes);
                if run.pieces.is_empty() {
                    run.offset = u64::from(index) * p.piece_len;
                    run.data = p.data;
                } else {
                    run.data.extend_from_slice(&p.data);
                }
                run.pieces.push(index);
            }
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 16 * 1024;

    fn piece(i: u32) -> Vec<u8> {
        vec![i as u8; P as usize]
    }

    #[test]
    fn small_pieces_wait_until_a_run_is_long_enough() {
        let mut b = WriteBuffer::default();
        let root = [1; 32];
        // 16 pieces of 16 KiB = 256 KiB; deliver them out of order.
        let order = [3u32, 0, 15, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13];
        for i in order {
            assert!(b.insert(root, i, P, piece(i)).is_empty(), "piece {i}");
        }
        let runs = b.insert(root, 14, P, piece(14));
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].offset, 0);
        assert_eq!(runs[0].pieces, (0..16).collect::<Vec<_>>());
        assert_eq!(runs[0].data.len(), 16 * P as usize);
        assert_eq!(runs[0].data[5 * P as usize], 5);
        assert_eq!(b.bytes(), 0);
        assert!(!b.has_file(&root));
    }

    #[test]
    fn drain_splits_at_gaps_and_files() {
        let mut b = WriteBuffer::default();
        let (r1, r2) = ([1; 32], [2; 32]);
        for i in [0, 1, 5] {
            b.insert(r1, i, P, piece(i));
        }
        b.insert(r2, 9, P, piece(9));
        assert!(b.contains(&r1, 5) && !b.contains(&r1, 2));
        let runs = b.drain();
        let shape: Vec<_> = runs
            .iter()
            .map(|r| (r.root, r.offset, r.pieces.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (r1, 0, vec![0, 1]),
                (r1, 5 * P, vec![5]),
                (r2, 9 * P, vec![9])
            ]
        );
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn drain_file_takes_one_file_only() {
        let mut b = WriteBuffer::default();
        let (x, y) = ([1u8; 32], [2u8; 32]);
        assert!(b.insert(x, 0, P, piece(0)).is_empty());
        assert!(b.insert(x, 2, P, piece(2)).is_empty());
        assert!(b.insert(y, 0, P, piece(0)).is_empty());
        let runs = b.drain_file(&x);
        let pieces: Vec<Vec<u32>> = runs.iter().map(|r| r.pieces.clone()).collect();
        assert_eq!(pieces, vec![vec![0], vec![2]]);
        assert!(runs.iter().all(|r| r.root == x));
        assert!(b.contains(&y, 0) && !b.has_file(&x));
        assert_eq!(b.bytes(), P as usize);
    }

    #[test]
    fn the_cap_bounds_memory() {
        let mut b = WriteBuffer::default();
        let mut written = 0;
        // Every other piece: no run ever reaches 256 KiB.
        for i in (0..1000u32).map(|i| i * 2) {
            written += b.insert([3; 32], i, P, piece(i)).len();
            assert!(b.bytes() <= BUFFER_CAP);
        }
        assert!(written > 0);
    }

    #[test]
    fn a_large_piece_is_written_at_once() {
        let mut b = WriteBuffer::default();
        let big = 512 * 1024u64;
        let runs = b.insert([4; 32], 3, big, vec![0; big as usize]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].offset, 3 * big);
    }
}
