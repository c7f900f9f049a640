//! Piece geometry: which bytes of which file a piece holds, which blocks
//! must be fetched, and which are padding.
//!
//! v2 and hybrid torrents start every file on a piece boundary, so the tail
//! of a file's last piece is padding (a pad file in hybrids, implicit in v2).
//! Padding is zeros by definition, so it is never requested: blocks wholly
//! inside it are skipped, and the block that straddles the end of a file is
//! requested only up to that end (a short request, like the last block of a
//! v1 torrent). A tree of small files would otherwise cost up to twice its
//! size on a metered link: a 2 KiB file in a 16 KiB block. Requests from
//! peers may still cover padding (libtorrent asks for whole blocks), and
//! are answered with zeros there.

use crate::metainfo::Info;

/// Size of a request block.
pub const BLOCK: u32 = 16 * 1024;

/// A run of file bytes inside a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`Info::files`].
    pub file: usize,
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset in the piece.
    pub piece_offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub piece_length: u64,
    pub piece_count: u32,
    /// End of piece space.
    pub end: u64,
    /// (offset, length, index into Info::files) of files with data, by
    /// offset. Shared: the session, the disk thread and each web seed
    /// worker hold a layout, and for 20,000 files this is half a MiB.
    files: std::sync::Arc<[(u64, u64, usize)]>,
}

impl Layout {
    pub fn new(info: &Info) -> Layout {
        let files: Vec<(u64, u64, usize)> = info
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.attr.pad && f.symlink_target.is_none() && f.length > 0)
            .map(|(i, f)| (f.offset, f.length, i))
            .collect();
        let data_end = info
            .files
            .iter()
            .map(|f| f.offset + f.length)
            .max()
            .unwrap_or(0);
        // v2 piece space pads every file to a piece boundary, the last one
        // included (libtorrent requests and serves whole last pieces).
        let end = if info.version == crate::metainfo::Version::V2 {
            data_end.next_multiple_of(info.piece_length)
        } else {
            data_end
        };
        Layout {
            piece_length: info.piece_length,
            piece_count: u32::try_from(info.piece_count()).unwrap_or(u32::MAX),
            end,
            files: files.into(),
        }
    }

    /// Bytes in piece `i` on the wire.
    pub fn piece_size(&self, i: u32) -> u32 {
        let start = u64::from(i) * self.piece_length;
        (self.end.saturating_sub(start)).min(self.piece_length) as u32
    }

    /// Bytes of piece `i` up to its last byte of file data: blocks past
    /// this are padding and are not fetched.
    pub fn data_len(&self, i: u32) -> u32 {
        let start = u64::from(i) * self.piece_length;
        let end = start + u64::from(self.piece_size(i));
        let k = self.files.partition_point(|(off, _, _)| *off < end);
        match k.checked_sub(1).map(|k| self.files[k]) {
            Some((off, len, _)) if off + len > start => ((off + len).min(end) - start) as u32,
            _ => 0,
        }
    }

    /// Blocks of piece `i` that must be fetched.
    pub fn blocks(&self, i: u32) -> u32 {
        self.data_len(i).div_ceil(BLOCK)
    }

    /// Length of our request for block `b` of piece `i`: it stops where
    /// the piece's file data stops.
    pub fn block_len(&self, i: u32, b: u32) -> u32 {
        self.data_len(i).saturating_sub(b * BLOCK).min(BLOCK)
    }

    /// The file bytes inside `len` bytes of piece `i` starting at `begin`.
    pub fn spans(&self, i: u32, begin: u32, len: u32) -> Vec<Span> {
        let start = u64::from(i) * self.piece_length + u64::from(begin);
        let end = start + u64::from(len);
        let first = self
            .files
            .partition_point(|(off, flen, _)| off + flen <= start);
        let mut out = Vec::new();
        for &(off, flen, idx) in &self.files[first..] {
            if off >= end {
                break;
            }
            let s = start.max(off);
            let e = end.min(off + flen);
            if s < e {
                out.push(Span {
                    file: idx,
                    file_offset: s - off,
                    piece_offset: (s - u64::from(i) * self.piece_length) as u32,
                    len: (e - s) as u32,
                });
            }
        }
        out
    }

    /// Whether a request is inside the torrent.
    pub fn valid_request(&self, i: u32, begin: u32, len: u32) -> bool {
        i < self.piece_count
            && len > 0
            && len <= BLOCK
            && u64::from(begin) + u64::from(len) <= u64::from(self.piece_size(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{InputFile, MemSource, Options, Plan, create};
    use crate::metainfo::Version;
    use std::collections::BTreeMap;

    fn info(version: Version, sizes: &[usize]) -> Info {
        let mut mem = BTreeMap::new();
        let mut files = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let p = vec![format!("f{i}")];
            mem.insert(p.clone(), vec![1u8; *s]);
            files.push(InputFile {
                path: p,
                length: *s as u64,
                executable: false,
                symlink_target: None,
            });
        }
        let opts = Options {
            version,
            piece_length: Some(32768),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        create(&plan, &opts, &MemSource(mem), 1, &|_| {})
            .expect("create")
            .1
            .info
    }

    #[test]
    fn hybrid_padding_is_not_fetched() {
        let l = Layout::new(&info(Version::Hybrid, &[40000, 5]));
        assert_eq!(l.piece_count, 3);
        assert_eq!(l.piece_size(1), 32768);
        assert_eq!(l.data_len(1), 40000 - 32768);
        assert_eq!(l.blocks(1), 1);
        // The pad after the first file is not asked for, not even the part
        // in a block with data.
        assert_eq!(l.block_len(1, 0), 40000 - 32768);
        assert_eq!(l.data_len(2), 5);
        assert_eq!(l.block_len(2, 0), 5);
        assert_eq!(l.block_len(0, 1), BLOCK);
        // Peers may still ask for whole blocks.
        assert!(l.valid_request(2, 0, BLOCK));
        let spans = l.spans(1, 0, 16384);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].file_offset, 32768);
        assert_eq!(spans[0].len, 40000 - 32768);
    }

    #[test]
    fn v1_spans_cross_files() {
        let l = Layout::new(&info(Version::V1, &[40000, 5]));
        assert_eq!(l.piece_count, 2);
        assert_eq!(l.piece_size(1), 40005 - 32768);
        let spans = l.spans(1, 0, l.piece_size(1));
        assert_eq!(spans.len(), 2);
        assert!(l.valid_request(1, 0, 7237));
        assert!(!l.valid_request(1, 0, 7238));
        assert!(!l.valid_request(2, 0, 1));
    }

    #[test]
    fn v2_last_piece_is_padded_like_the_others() {
        let l = Layout::new(&info(Version::V2, &[40000, 5]));
        assert_eq!(l.piece_count, 3);
        assert_eq!(l.piece_size(2), 32768);
        assert_eq!(l.data_len(2), 5);
        assert_eq!(l.blocks(2), 1);
        assert_eq!(l.block_len(2, 0), 5);
        assert_eq!(l.piece_size(1), 32768);
        assert_eq!(l.blocks(1), 1);
    }
}
