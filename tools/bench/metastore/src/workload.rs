//! The piece-index workload, as a deterministic stream.
//!
//! A node downloading a snapshot records every verified piece in its index so
//! that a restart resumes without rehashing. One record per verified piece:
//!
//! * key: v2 pieces root of the file (32 bytes) ++ piece index (u32, big
//!   endian) = 36 bytes, so all pieces of one file sort together;
//! * value: SHA-256 of the piece (32 bytes, its leaf in the piece layer, kept
//!   so a partial file can be re-checked without the torrent) ++ the time it
//!   was verified (u64, little endian) = 40 bytes.
//!
//! Alongside, every transaction also rewrites the per-file progress record
//! (pieces root -> piece count, verified count, bitmap) of each file it touched
//! and a small meta/counter record, so a batch touches three tables the way the
//! store's "channels, releases, piece bitmaps, counters" index will.
//!
//! The download order imitates a rarest-first downloader: a handful of files
//! are in flight at once, pieces of a file arrive in a scrambled order, and a
//! file is replaced by the next one when it completes. File sizes are
//! log-uniform between 1 and 4096 pieces (most repository files are small, a
//! few are huge). Everything is derived from a seed, so the writer, a checker in
//! another process and a later run all see the same records at the same stream
//! positions, and a record's value is a pure function of its key.

pub const KEY_LEN: usize = 36;
pub const VAL_LEN: usize = 40;
/// Files downloaded concurrently.
const IN_FLIGHT: usize = 8;

pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn mix(x: u64) -> u64 {
    let mut s = x;
    splitmix(&mut s)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Clone, Copy)]
pub struct Record {
    pub key: [u8; KEY_LEN],
    pub val: [u8; VAL_LEN],
    /// Piece count of the file the record belongs to.
    pub pieces: u32,
}

impl Record {
    pub fn root(&self) -> &[u8; 32] {
        self.key[..32].try_into().expect("36-byte key")
    }
    pub fn index(&self) -> u32 {
        u32::from_be_bytes(self.key[32..].try_into().expect("36-byte key"))
    }
}

/// The value stored for a key: a function of the key alone, so any reader can
/// tell an intact record from a damaged one.
pub fn value_for(key: &[u8; KEY_LEN]) -> [u8; VAL_LEN] {
    let mut s = 0u64;
    for chunk in key.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        s = mix(s ^ u64::from_le_bytes(b));
    }
    let mut v = [0u8; VAL_LEN];
    for i in 0..4 {
        v[i * 8..i * 8 + 8].copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    let verified_at = 1_760_000_000 + splitmix(&mut s) % 10_000_000;
    v[32..].copy_from_slice(&verified_at.to_le_bytes());
    v
}

#[derive(Clone, Copy)]
struct InFlight {
    root: [u8; 32],
    pieces: u64,
    stride: u64,
    offset: u64,
    done: u64,
}

impl InFlight {
    fn new(seed: u64, file_no: u64) -> Self {
        let mut s = seed ^ file_no.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut root = [0u8; 32];
        for i in 0..4 {
            root[i * 8..i * 8 + 8].copy_from_slice(&splitmix(&mut s).to_le_bytes());
        }
        let exp = splitmix(&mut s) % 13;
        let pieces = 1 + splitmix(&mut s) % (1u64 << exp);
        // Visit 0..pieces in a scrambled order: i -> offset + i*stride (mod pieces)
        // with gcd(stride, pieces) = 1 is a permutation.
        let mut stride = 1 + splitmix(&mut s) % pieces;
        while gcd(stride, pieces) != 1 {
            stride = stride % pieces + 1;
        }
        let offset = splitmix(&mut s) % pieces;
        InFlight {
            root,
            pieces,
            stride,
            offset,
            done: 0,
        }
    }
}

/// Endless stream of piece records in download order.
pub struct Workload {
    seed: u64,
    pick: u64,
    files: [InFlight; IN_FLIGHT],
    next_file: u64,
    pos: u64,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        let files = std::array::from_fn(|i| InFlight::new(seed, i as u64));
        Workload {
            seed,
            pick: seed ^ 0x5EED_0F91_C4A7_0001,
            files,
            next_file: IN_FLIGHT as u64,
            pos: 0,
        }
    }

    /// Stream position of the next record.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn skip(&mut self, n: u64) {
        for _ in 0..n {
            self.next_record();
        }
    }

    pub fn next_record(&mut self) -> Record {
        let slot = (splitmix(&mut self.pick) % IN_FLIGHT as u64) as usize;
        let f = &mut self.files[slot];
        let index = ((f.offset + f.done * f.stride) % f.pieces) as u32;
        let mut key = [0u8; KEY_LEN];
        key[..32].copy_from_slice(&f.root);
        key[32..].copy_from_slice(&index.to_be_bytes());
        let rec = Record {
            key,
            val: value_for(&key),
            pieces: f.pieces as u32,
        };
        f.done += 1;
        if f.done == f.pieces {
            *f = InFlight::new(self.seed, self.next_file);
            self.next_file += 1;
        }
        self.pos += 1;
        rec
    }
}

/// Per-file progress record: piece count (u32 LE), verified count (u32 LE), bitmap.
pub fn set_bit(progress: Option<&[u8]>, pieces: u32, index: u32) -> Vec<u8> {
    let mut p = match progress {
        Some(p) if p.len() >= 8 => p.to_vec(),
        _ => {
            let mut p = vec![0u8; 8 + (pieces as usize).div_ceil(8)];
            p[..4].copy_from_slice(&pieces.to_le_bytes());
            p
        }
    };
    let byte = 8 + (index / 8) as usize;
    let bit = 1u8 << (index % 8);
    if byte < p.len() && p[byte] & bit == 0 {
        p[byte] |= bit;
        let n = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes")) + 1;
        p[4..8].copy_from_slice(&n.to_le_bytes());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_yields_each_piece_once() {
        let mut w = Workload::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200_000 {
            let r = w.next_record();
            assert!(r.index() < r.pieces);
            assert!(seen.insert(r.key), "duplicate key");
            assert_eq!(r.val, value_for(&r.key));
        }
    }

    #[test]
    fn stream_is_deterministic() {
        let mut a = Workload::new(1);
        let mut b = Workload::new(1);
        b.skip(1000);
        a.skip(500);
        a.skip(500);
        assert_eq!(a.next_record().key, b.next_record().key);
    }
}
