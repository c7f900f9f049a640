//! Full re-verification of the store, from the bytes up (`swarmsync verify`).
//!
//! Why re-hash everything instead of trusting the index: this is the tool
//! for "is my SD card lying?". It checks that each object hashes to its
//! name (and that its `user.swarmsync.root` attribute, which becomes the
//! HTTP ETag, agrees when present), each piece the index calls verified hashes right in its `.part`,
//! each snapshot entry exists and is a link to a present object, and
//! `current` names a recorded, present snapshot.
//!
//! Memory stays flat: files are streamed through [`FileHasher`] with a
//! 64 KiB buffer, a partial's pieces are read one at a time, and index rows
//! are iterated, never collected. Only faults are collected (capped).

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};
use torrent::hash::{Sha256, to_hex};
use torrent::merkle::{BLOCK_SIZE, FileHasher, piece_hash, piece_width};

use crate::error::{Error, Result, io_err};
use crate::index::{ENTRIES, LAYER, PARTIALS, SNAPSHOTS, VERIFIED, piece_key, piece_of};
use crate::layout::object_root;
use crate::partial::{piece_count, piece_size};
use crate::snapshot::Entry;
use crate::xattr::{self, ROOT_XATTR};
use crate::{Store, read_dir};

/// Faults kept in a report; more are only counted.
const MAX_FAULTS: usize = 1000;
/// Read size when hashing objects.
const READ_BUF: usize = 64 * 1024;

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// What [`Store::verify`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Objects hashed.
    pub objects: u64,
    /// Bytes of objects hashed.
    pub object_bytes: u64,
    /// Partial downloads checked.
    pub partials: u64,
    /// Verified pieces of partials re-hashed.
    pub partial_pieces: u64,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Snapshot entries checked.
    pub entries: u64,
    /// The snapshot `current` points to.
    pub current: Option<u64>,
    /// Faults found, in the order found (at most 1000).
    pub faults: Vec<Fault>,
    /// Faults found beyond those listed.
    pub faults_omitted: u64,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.faults.is_empty()
    }

    fn fault(&mut self, path: &Path, problem: impl Into<String>) {
        if self.faults.len() < MAX_FAULTS {
            self.faults.push(Fault {
                path: path.to_path_buf(),
                problem: problem.into(),
            });
        } else {
            self.faults_omitted += 1;
        }
    }
}

/// A piece length for hashing a file of `len` bytes that keeps both the
/// leaves of one piece and the piece layer near sqrt(blocks): the root does
/// not depend on it (BEP 52 pads with zero subtrees either way).
fn hashing_piece_len(len: u64) -> u64 {
    let blocks = len.div_ceil(BLOCK_SIZE as u64).max(1);
    let leaves = (blocks.isqrt().max(1)).next_power_of_two();
    leaves * BLOCK_SIZE as u64
}

/// The BEP 52 root of a file, streamed. `None` for an empty file or one
/// that changed length while being read.
fn file_root(path: &Path, len: u64) -> std::io::Result<Option<Sha256>> {
    let mut file = File::open(path)?;
    let mut hasher = FileHasher::new(len, hashing_piece_len(len));
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish().and_then(|h| h.root))
}

impl Store {
    /// Re-verifies everything; faults are reported, not returned as errors.
    /// Errors mean the check itself could not run (index unreadable, a
    /// directory of the layout missing).
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut r = VerifyReport::default();
        self.verify_objects(&mut r)?;
        self.verify_partials(&mut r)?;
        self.verify_snapshots(&mut r)?;
        self.verify_current(&mut r)?;
        Ok(r)
    }

    fn verify_objects(&self, r: &mut VerifyReport) -> Result<()> {
        let objects = self.layout.objects();
        if !objects.exists() {
            // A first start cut short; anything that needs an object
            // reports its absence below.
            return Ok(());
        }
        for bucket in read_dir(&objects)? {
            let bucket = bucket.map_err(io_err("list", &objects))?;
            let bpath = bucket.path();
            if !bpath.is_dir() {
                r.fault(&bpath, "unexpected file in objects/");
                continue;
            }
            let bname = bucket.file_name().to_string_lossy().into_owned();
            for file in read_dir(&bpath)? {
                let file = file.map_err(io_err("list", &bpath))?;
                let path = file.path();
                let Some(root) = object_root(&bname, &file.file_name().to_string_lossy()) else {
                    r.fault(&path, "not named by a pieces root");
                    continue;
                };
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => {
                        r.fault(&path, "object is not a regular file");
                        continue;
                    }
                    Err(e) => {
                        r.fault(&path, format!("cannot inspect object: {e}"));
                        continue;
                    }
                };
                r.objects += 1;
                r.object_bytes += meta.size();
                match file_root(&path, meta.size()) {
                    Ok(Some(got)) if got == root => {}
                    Ok(Some(got)) => r.fault(
                        &path,
                        format!("content hashes to {}, not to its name", to_hex(&got)),
                    ),
                    Ok(None) => r.fault(&path, "object is empty or changed while read"),
                    Err(e) => r.fault(&path, format!("cannot read object: {e}")),
                }
                // The server's ETag comes from this attribute: one that
                // names another root would tag the content wrongly.
                match xattr::read_root(&path) {
                    xattr::Recorded::Absent => {}
                    xattr::Recorded::Root(got) if got == root => {}
                    xattr::Recorded::Root(got) => r.fault(
                        &path,
                        format!("{ROOT_XATTR} says {}, not its name", to_hex(&got)),
                    ),
                    xattr::Recorded::Malformed => {
                        r.fault(&path, format!("{ROOT_XATTR} is not 64 hex digits"))
                    }
                }
            }
        }
        Ok(())
    }

    fn verify_partials(&self, r: &mut VerifyReport) -> Result<()> {
        let ix = &self.index;
        let tx = ix.db.begin_read().map_err(ix.err())?;
        let partials = tx.open_table(PARTIALS).map_err(ix.err())?;
        let verified = tx.open_table(VERIFIED).map_err(ix.err())?;
        let layer = tx.open_table(LAYER).map_err(ix.err())?;
        let mut buf = Vec::new();
        for row in partials.iter().map_err(ix.err())? {
            let (k, v) = row.map_err(ix.err())?;
            let root = *k.value();
            let (length, piece_len) = v.value();
            r.partials += 1;
            let path = self.layout.partial(&root);
            if self.has_object(&root) {
                // Completion interrupted after the rename: the object is
                // checked above, `open` finishes the bookkeeping.
                continue;
            }
            let (lo, hi) = (piece_key(&root, 0), piece_key(&root, u32::MAX));
            let mut pieces = verified
                .range::<&[u8; 36]>(&lo..=&hi)
                .map_err(ix.err())?
                .peekable();
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    if pieces.peek().is_some() {
                        r.fault(
                            &path,
                            format!("has verified pieces but cannot be opened: {e}"),
                        );
                    }
                    continue;
                }
            };
            let size = file.metadata().map_err(io_err("inspect", &path))?.size();
            if size != length {
                // Without verified pieces this is a creation cut short,
                // which `begin_file` redoes.
                if pieces.peek().is_some() {
                    r.fault(&path, format!("length {size}, index says {length}"));
                }
                continue;
            }
            let count = piece_count(length, piece_len);
            let width = piece_width(length, piece_len);
            for p in pieces {
                let (pk, _) = p.map_err(ix.err())?;
                let index = piece_of(pk.value());
                r.partial_pieces += 1;
                if u64::from(index) >= count {
                    r.fault(
                        &path,
                        format!("index marks piece {index} of {count} verified"),
                    );
                    continue;
                }
                let expected = if count == 1 {
                    Some(root)
                } else {
                    layer
                        .get(&piece_key(&root, index))
                        .map_err(ix.err())?
                        .map(|h| *h.value())
                };
                let Some(expected) = expected else {
                    r.fault(&path, format!("piece {index} has no hash in the index"));
                    continue;
                };
                let size = piece_size(length, piece_len, index) as usize;
                buf.resize(size, 0);
                let offset = u64::from(index) * piece_len;
                if let Err(e) = file.read_exact_at(&mut buf, offset) {
                    r.fault(&path, format!("cannot read verified piece {index}: {e}"));
                    continue;
                }
                if piece_hash(&buf, width) != Some(expected) {
                    r.fault(
                        &path,
                        format!("verified piece {index} does not match its hash"),
                    );
                }
            }
        }
        Ok(())
    }

    fn verify_snapshots(&self, r: &mut VerifyReport) -> Result<()> {
        let ix = &self.index;
        let tx = ix.db.begin_read().map_err(ix.err())?;
        let snapshots = tx.open_table(SNAPSHOTS).map_err(ix.err())?;
        let entries = tx.open_table(ENTRIES).map_err(ix.err())?;
        for row in snapshots.iter().map_err(ix.err())? {
            let (k, v) = row.map_err(ix.err())?;
            let (seq, recorded) = (k.value(), v.value());
            r.snapshots += 1;
            let dir = self.layout.snapshot(seq);
            if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                r.fault(&dir, "recorded snapshot directory is missing");
                continue;
            }
            let mut seen = 0u64;
            for e in entries.range((seq, "")..(seq + 1, "")).map_err(ix.err())? {
                let (ek, ev) = e.map_err(ix.err())?;
                seen += 1;
                r.entries += 1;
                let path = ek.value().1.split('/').fold(dir.clone(), |p, c| p.join(c));
                match Entry::decode(ev.value()) {
                    Some(entry) => self.check_entry(r, &path, &entry),
                    None => r.fault(&path, "index entry cannot be decoded"),
                }
            }
            if seen != recorded {
                r.fault(
                    &dir,
                    format!("{seen} entries in the index, {recorded} recorded"),
                );
            }
        }
        Ok(())
    }

    fn check_entry(&self, r: &mut VerifyReport, path: &Path, entry: &Entry) {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => return r.fault(path, format!("snapshot entry is missing: {e}")),
        };
        match entry {
            Entry::File(root) => {
                let object = self.layout.object(root);
                match fs::symlink_metadata(&object) {
                    Ok(o) if meta.is_file() && (o.dev(), o.ino()) == (meta.dev(), meta.ino()) => {}
                    Ok(_) => r.fault(path, format!("is not a link to object {}", to_hex(root))),
                    Err(_) => r.fault(path, format!("object {} is missing", to_hex(root))),
                }
            }
            Entry::Empty => {
                if !meta.is_file() || meta.size() != 0 {
                    r.fault(path, "should be an empty file");
                }
            }
            Entry::Symlink(target) => match fs::read_link(path) {
                Ok(t) if t == Path::new(target) => {}
                _ => r.fault(path, format!("should be a symlink to {target}")),
            },
        }
    }

    fn verify_current(&self, r: &mut VerifyReport) -> Result<()> {
        let link = self.layout.current();
        match self.current() {
            Ok(None) => {}
            Ok(Some(seq)) => {
                r.current = Some(seq);
                if !self.index.has_snapshot(seq)? {
                    r.fault(
                        &link,
                        format!("points to snapshot {seq}, which is not recorded"),
                    );
                } else if !self.layout.snapshot(seq).is_dir() {
                    r.fault(&link, format!("points to snapshot {seq}, which is missing"));
                }
            }
            Err(e @ Error::BadCurrent { .. }) => r.fault(&link, e.to_string()),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_piece_len_is_a_valid_piece_length() {
        for len in [1, 16384, 16385, 10 << 20, 2 << 30] {
            let p = hashing_piece_len(len);
            assert!(p.is_power_of_two() && p >= BLOCK_SIZE as u64, "{len}: {p}");
        }
        assert_eq!(hashing_piece_len(2 << 30), 512 * 16384);
    }
}
