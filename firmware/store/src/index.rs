//! The redb index: what is verified, what snapshots hold, what refers to what.
//!
//! Why redb, with a 4 MiB cache: it is ACID (a commit is durable and atomic
//! after `commit()` returns, which is what the crash rules build on) and its
//! cache setting really bounds memory; see design.md for the measurements
//! against sled. Why one row per piece rather than one bitmap value per
//! file: updating a verified bit then touches one small key, and nothing
//! ever loads a whole file's piece layer into RAM.
//!
//! Keys are fixed-width big-endian byte strings, so a file's rows are one
//! contiguous range (`root ++ 0` ..= `root ++ u32::MAX`).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use torrent::hash::Sha256;

use crate::error::{Error, Result};

/// Partial downloads: root → (file length, piece length).
pub(crate) const PARTIALS: TableDefinition<&[u8; 32], (u64, u64)> =
    TableDefinition::new("partials");
/// Piece layers of partials: root ++ index → piece hash.
pub(crate) const LAYER: TableDefinition<&[u8; 36], &[u8; 32]> = TableDefinition::new("layer");
/// Pieces of partials that are fsynced and verified: root ++ index → ().
pub(crate) const VERIFIED: TableDefinition<&[u8; 36], ()> = TableDefinition::new("verified");
/// Complete objects: root → value of `builds` when it completed.
pub(crate) const OBJECTS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("objects");
/// Built snapshots: seq → number of entries.
pub(crate) const SNAPSHOTS: TableDefinition<u64, u64> = TableDefinition::new("snapshots");
/// Snapshot trees: (seq, path) → encoded [`crate::Entry`].
pub(crate) const ENTRIES: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("entries");
/// Which snapshots refer to an object: root ++ seq → ().
pub(crate) const REFS: TableDefinition<&[u8; 40], ()> = TableDefinition::new("refs");
/// Counters: "format", "builds".
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Version of the table layout above.
pub(crate) const FORMAT: u64 = 1;
/// Page cache of the index. 1 MiB: it holds the B-tree's upper levels and
/// the pages a sync is writing; the rest is read back from the kernel's
/// page cache. With 4 MiB (design.md's benchmark figure) the cache of a
/// node that had synced 20,000 files stayed full, 4 MiB of a 32 MiB
/// budget, for the node's life (docs/benchmarks.md, node memory).
pub(crate) const CACHE_BYTES: usize = 1024 * 1024;

/// `root ++ index`.
pub(crate) fn piece_key(root: &Sha256, index: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(root);
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The index half of a [`piece_key`].
pub(crate) fn piece_of(key: &[u8; 36]) -> u32 {
    u32::from_be_bytes([key[32], key[33], key[34], key[35]])
}

/// `root ++ seq`.
pub(crate) fn ref_key(root: &Sha256, seq: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(root);
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// What the index knows about one piece of a partial.
pub(crate) struct PieceRow {
    pub length: u64,
    pub piece_len: u64,
    pub verified: bool,
    pub hash: Option<Sha256>,
}

/// The redb database and its path (for error messages).
pub(crate) struct Index {
    pub db: Database,
    pub path: PathBuf,
}

impl Index {
    /// Opens the index (creating it if `create`), running redb's crash
    /// repair if the last writer died, and makes sure every table exists.
    pub fn open(path: &Path, create: bool) -> Result<Self> {
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        let db = if create {
            builder.create(path)
        } else {
            builder.open(path)
        };
        let db = db.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                path: path.to_path_buf(),
            },
            e => Error::Index {
                path: path.to_path_buf(),
                source: Box::new(e.into()),
            },
        })?;
        let ix = Self {
            db,
            path: path.to_path_buf(),
        };
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            tx.open_table(PARTIALS).map_err(ix.err())?;
            tx.open_table(LAYER).map_err(ix.err())?;
            tx.open_table(VERIFIED).map_err(ix.err())?;
            tx.open_table(OBJECTS).map_err(ix.err())?;
            tx.open_table(SNAPSHOTS).map_err(ix.err())?;
            tx.open_table(ENTRIES).map_err(ix.err())?;
            tx.open_table(REFS).map_err(ix.err())?;
            let mut meta = tx.open_table(META).map_err(ix.err())?;
            let format = meta.get("format").map_err(ix.err())?.map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(ix.err())?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(ix.corrupt(format!("format {other} (this build reads {FORMAT})")));
                }
            }
        }
        tx.commit().map_err(ix.err())?;
        Ok(ix)
    }

    /// Maps any redb error to [`Error::Index`] naming this index.
    pub fn err<E: Into<redb::Error>>(&self) -> impl Fn(E) -> Error + '_ {
        move |e| Error::Index {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    pub fn corrupt(&self, what: String) -> Error {
        Error::CorruptIndex {
            path: self.path.clone(),
            what,
        }
    }

    /// (length, piece length) of a partial, if one is recorded.
    pub fn partial(&self, root: &Sha256) -> Result<Option<(u64, u64)>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(PARTIALS).map_err(self.err())?;
        Ok(t.get(root).map_err(self.err())?.map(|v| v.value()))
    }

    /// Everything `write_piece` needs to know, in one read transaction:
    /// the partial's (length, piece length), whether the piece is recorded
    /// verified, and its hash in the piece layer (none for one-piece files).
    pub fn piece(&self, root: &Sha256, index: u32) -> Result<Option<PieceRow>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let partials = tx.open_table(PARTIALS).map_err(self.err())?;
        let Some((length, piece_len)) = partials.get(root).map_err(self.err())?.map(|v| v.value())
        else {
            return Ok(None);
        };
        let key = piece_key(root, index);
        let verified = tx.open_table(VERIFIED).map_err(self.err())?;
        let layer = tx.open_table(LAYER).map_err(self.err())?;
        Ok(Some(PieceRow {
            length,
            piece_len,
            verified: verified.get(&key).map_err(self.err())?.is_some(),
            hash: layer.get(&key).map_err(self.err())?.map(|v| *v.value()),
        }))
    }

    /// Indices of the verified pieces of `root`, ascending.
    pub fn verified(&self, root: &Sha256) -> Result<Vec<u32>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(VERIFIED).map_err(self.err())?;
        let (lo, hi) = (piece_key(root, 0), piece_key(root, u32::MAX));
        let mut out = Vec::new();
        for row in t.range::<&[u8; 36]>(&lo..=&hi).map_err(self.err())? {
            let (k, _) = row.map_err(self.err())?;
            out.push(piece_of(k.value()));
        }
        Ok(out)
    }

    /// A counter from the meta table (0 when unset).
    pub fn meta(&self, key: &str) -> Result<u64> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(META).map_err(self.err())?;
        Ok(t.get(key).map_err(self.err())?.map_or(0, |v| v.value()))
    }

    /// Whether snapshot `seq` is recorded.
    pub fn has_snapshot(&self, seq: u64) -> Result<bool> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(SNAPSHOTS).map_err(self.err())?;
        Ok(t.get(seq).map_err(self.err())?.is_some())
    }

    /// All recorded snapshots, ascending (a handful: GC keeps few).
    pub fn snapshots(&self) -> Result<Vec<u64>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(SNAPSHOTS).map_err(self.err())?;
        let mut out = Vec::new();
        for row in t.iter().map_err(self.err())? {
            let (k, _) = row.map_err(self.err())?;
            out.push(k.value());
        }
        Ok(out)
    }

    /// All recorded partials (files in flight: bounded by what the engine
    /// downloads at once, not by the size of the tree).
    pub fn partials(&self) -> Result<Vec<Sha256>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(PARTIALS).map_err(self.err())?;
        let mut out = Vec::new();
        for row in t.iter().map_err(self.err())? {
            let (k, _) = row.map_err(self.err())?;
            out.push(*k.value());
        }
        Ok(out)
    }

    /// Whether any recorded snapshot refers to `root`.
    pub fn is_referenced(&self, root: &Sha256) -> Result<bool> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(REFS).map_err(self.err())?;
        let (lo, hi) = (ref_key(root, 0), ref_key(root, u64::MAX));
        let mut range = t.range::<&[u8; 40]>(&lo..=&hi).map_err(self.err())?;
        Ok(range.next().transpose().map_err(self.err())?.is_some())
    }

    /// The completion generation of an object, if it has a row.
    pub fn object_birth(&self, root: &Sha256) -> Result<Option<u64>> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(OBJECTS).map_err(self.err())?;
        Ok(t.get(root).map_err(self.err())?.map(|v| v.value()))
    }
}
