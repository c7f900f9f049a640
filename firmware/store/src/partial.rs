//! Downloads in progress: `partial/<root>.part` plus rows in the index.
//!
//! The crash rule kept here: **a piece is recorded as verified only after
//! its bytes were written and the `.part` was fdatasync'ed.** `write_piece`
//! hashes and buffers, `flush` writes, syncs and *then* commits the rows of
//! every piece it synced in one redb transaction. A crash anywhere before
//! that commit loses only unrecorded pieces, which are downloaded again; a
//! crash after it loses nothing.
//!
//! `complete_file` keeps the second rule: the file is durable under its
//! object name (rename, both directories fsynced) before the index forgets
//! the partial.

use std::fs;
use std::os::unix::fs::MetadataExt;

use torrent::hash::{Sha256, to_hex};
use torrent::merkle::{BLOCK_SIZE, pad_hash, piece_hash, piece_width, root_of};

use crate::error::{Error, Result, io_err};
use crate::index::{LAYER, PARTIALS, VERIFIED, piece_key};
use crate::writebuf::Run;
use crate::{Store, remove_if_present};

/// Written-but-unsynced data beyond which `write_piece` flushes by itself,
/// so the set of unsynced pieces stays bounded.
pub(crate) const AUTO_FLUSH_BYTES: u64 = 64 * 1024 * 1024;

/// What the store needs to know about a file before taking its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// BEP 52 pieces root: the file's name in `objects/`.
    pub root: Sha256,
    /// File length in bytes (at least 1: empty files are [`crate::Entry::Empty`]).
    pub length: u64,
    /// Piece length of the torrent: a power of two, at least 16 KiB.
    pub piece_len: u64,
    /// BEP 52 piece layer: one hash per piece for files longer than one
    /// piece, empty otherwise (the root is then the only piece hash).
    pub piece_layer: Vec<Sha256>,
}

/// What [`Store::begin_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begin {
    /// A new partial was recorded and created.
    Started,
    /// The file was already being downloaded; `verified` pieces survive.
    Resumed {
        /// Pieces already recorded as verified.
        verified: u64,
    },
    /// The object is already complete; nothing to download.
    AlreadyComplete,
}

/// What [`Store::write_piece`] did with a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PieceOutcome {
    /// It hashed right and is buffered; durable after the next flush.
    Verified,
    /// The store already has this piece (buffered, recorded, or the whole
    /// file is complete); the data was ignored.
    AlreadyHave,
    /// The data does not hash to the expected piece hash (or has the wrong
    /// length); nothing was stored. Blame the peer.
    HashMismatch,
}

/// Number of pieces of a file.
pub(crate) fn piece_count(length: u64, piece_len: u64) -> u64 {
    length.div_ceil(piece_len)
}

/// Length of piece `index` (the last one may be short).
pub(crate) fn piece_size(length: u64, piece_len: u64, index: u32) -> u64 {
    let start = u64::from(index) * piece_len;
    piece_len.min(length.saturating_sub(start))
}

impl Store {
    /// Records a file to download and creates its `.part`. Idempotent: on a
    /// file already begun it resumes (re-creating a lost `.part`), on a
    /// complete object it does nothing.
    pub fn begin_file(&mut self, spec: FileSpec) -> Result<Begin> {
        self.writable()?;
        let root = spec.root;
        let hex = to_hex(&root);
        let invalid = |reason: String| Error::InvalidSpec {
            root: hex.clone(),
            reason,
        };
        check_spec(&spec).map_err(invalid)?;
        if self.has_object(&root) {
            return Ok(Begin::AlreadyComplete);
        }
        let part = self.layout.partial(&root);
        if let Some((length, piece_len)) = self.index.partial(&root)? {
            if (length, piece_len) != (spec.length, spec.piece_len) {
                return Err(invalid(format!(
                    "length {} / piece length {} differ from the recorded {length} / {piece_len}",
                    spec.length, spec.piece_len
                )));
            }
            let size = fs::metadata(&part).map(|m| m.size()).ok();
            if size != Some(length) {
                // The .part is gone or was cut: nothing in it can be trusted.
                self.drop_verified(&root)?;
                self.create_part(&root, length)?;
                return Ok(Begin::Resumed { verified: 0 });
            }
            let verified = self.index.verified(&root)?.len() as u64;
            return Ok(Begin::Resumed { verified });
        }
        // Record first, create second: a row without a file is resumable,
        // a file without a row is a leftover that open() removes.
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            tx.open_table(PARTIALS)
                .map_err(ix.err())?
                .insert(&root, (spec.length, spec.piece_len))
                .map_err(ix.err())?;
            let mut layer = tx.open_table(LAYER).map_err(ix.err())?;
            for (i, h) in (0u32..).zip(&spec.piece_layer) {
                layer.insert(&piece_key(&root, i), h).map_err(ix.err())?;
            }
        }
        tx.commit().map_err(ix.err())?;
        self.create_part(&root, spec.length)?;
        Ok(Begin::Started)
    }

    fn create_part(&mut self, root: &Sha256, length: u64) -> Result<()> {
        let part = self.layout.partial(root);
        self.disk
            .create_sized(&part, length)
            .map_err(io_err("create", &part))?;
        let dir = self.layout.partial_dir();
        self.disk.sync_dir(&dir).map_err(io_err("fsync", &dir))
    }

    fn drop_verified(&mut self, root: &Sha256) -> Result<()> {
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            let (lo, hi) = (piece_key(root, 0), piece_key(root, u32::MAX));
            tx.open_table(VERIFIED)
                .map_err(ix.err())?
                .retain_in::<&[u8; 36], _>(&lo..=&hi, |_, _| false)
                .map_err(ix.err())?;
        }
        tx.commit().map_err(ix.err())?;
        Ok(())
    }

    /// Verifies one piece against the piece layer (or the root, for a file
    /// of one piece) and buffers it for a coalesced write. It becomes
    /// durable, and shows in [`Store::verified_pieces`], after the next
    /// [`Store::flush`].
    pub fn write_piece(&mut self, root: &Sha256, index: u32, data: &[u8]) -> Result<PieceOutcome> {
        self.writable()?;
        let Some(row) = self.index.piece(root, index)? else {
            if self.has_object(root) {
                return Ok(PieceOutcome::AlreadyHave);
            }
            return Err(Error::UnknownPartial { root: to_hex(root) });
        };
        let (length, piece_len) = (row.length, row.piece_len);
        let pieces = piece_count(length, piece_len);
        if u64::from(index) >= pieces {
            return Err(Error::PieceOutOfRange {
                root: to_hex(root),
                index,
                pieces: u32::try_from(pieces).unwrap_or(u32::MAX),
            });
        }
        if row.verified
            || self.buffer.contains(root, index)
            || self.unsynced.contains(&(*root, index))
        {
            return Ok(PieceOutcome::AlreadyHave);
        }
        if data.len() as u64 != piece_size(length, piece_len, index) {
            return Ok(PieceOutcome::HashMismatch);
        }
        let expected = match (pieces, row.hash) {
            (1, _) => *root,
            (_, Some(hash)) => hash,
            (_, None) => {
                return Err(self
                    .index
                    .corrupt(format!("piece layer of {}", to_hex(root))));
            }
        };
        let width = piece_width(length, piece_len);
        if piece_hash(data, width) != Some(expected) {
            return Ok(PieceOutcome::HashMismatch);
        }
        let runs = self.buffer.insert(*root, index, piece_len, data.to_vec());
        self.write_runs(runs)?;
        if self.unsynced_bytes >= AUTO_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(PieceOutcome::Verified)
    }

    /// Writes runs to their `.part` files (no fsync) and remembers their
    /// pieces as unsynced. A failed run is forgotten: its pieces will be
    /// downloaded again.
    fn write_runs(&mut self, runs: Vec<Run>) -> Result<()> {
        let mut first_err = None;
        for run in runs {
            let part = self.layout.partial(&run.root);
            match self.disk.write_at(&part, run.offset, &run.data) {
                Ok(()) => {
                    self.unsynced_bytes += run.data.len() as u64;
                    self.unsynced
                        .extend(run.pieces.iter().map(|&i| (run.root, i)));
                }
                Err(e) => {
                    first_err.get_or_insert(io_err("write", &part)(e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes the verified pieces of `root` still held in memory to its
    /// `.part` (no fsync, nothing recorded), so that they can be read from
    /// the file: fetch-on-miss streams a file to a client while it is being
    /// downloaded. Durability is still [`Store::flush`]'s.
    pub fn write_out(&mut self, root: &Sha256) -> Result<()> {
        self.writable()?;
        let runs = self.buffer.drain_file(root);
        self.write_runs(runs)
    }

    /// Makes every verified piece durable: writes the buffer out, fdatasyncs
    /// each `.part` written to, then records all their pieces as verified in
    /// one index commit. After it returns, a crash loses none of them.
    pub fn flush(&mut self) -> Result<()> {
        self.writable()?;
        let runs = self.buffer.drain();
        self.write_runs(runs)?;
        if self.unsynced.is_empty() {
            return Ok(());
        }
        let mut last: Option<Sha256> = None;
        let roots: Vec<Sha256> = self
            .unsynced
            .iter()
            .filter_map(|(r, _)| {
                let new = last != Some(*r);
                last = Some(*r);
                new.then_some(*r)
            })
            .collect();
        for root in roots {
            let part = self.layout.partial(&root);
            if let Err(e) = self.disk.sync_file(&part) {
                // After a failed fsync the page cache may have dropped the
                // data (Linux marks it clean): these pieces are not on disk.
                let (lo, hi) = ((root, 0), (root, u32::MAX));
                let lost: Vec<_> = self.unsynced.range(lo..=hi).copied().collect();
                for k in lost {
                    self.unsynced.remove(&k);
                }
                return Err(io_err("fsync", &part)(e));
            }
        }
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            let mut verified = tx.open_table(VERIFIED).map_err(ix.err())?;
            for (root, index) in &self.unsynced {
                verified
                    .insert(&piece_key(root, *index), ())
                    .map_err(ix.err())?;
            }
        }
        tx.commit().map_err(ix.err())?;
        self.unsynced.clear();
        self.unsynced_bytes = 0;
        Ok(())
    }

    /// Pieces of a partial recorded as verified (durable), ascending.
    pub fn verified_pieces(&self, root: &Sha256) -> Result<Vec<u32>> {
        if self.index.partial(root)?.is_none() {
            return Err(Error::UnknownPartial { root: to_hex(root) });
        }
        self.index.verified(root)
    }

    /// Pieces of a partial the store neither has recorded nor holds in
    /// memory: what still has to be downloaded, ascending.
    pub fn missing_pieces(&self, root: &Sha256) -> Result<Vec<u32>> {
        let Some((length, piece_len)) = self.index.partial(root)? else {
            return Err(Error::UnknownPartial { root: to_hex(root) });
        };
        let pieces = u32::try_from(piece_count(length, piece_len)).unwrap_or(u32::MAX);
        let verified = self.index.verified(root)?;
        let mut have = verified.iter().peekable();
        let mut out = Vec::new();
        for i in 0..pieces {
            if have.peek() == Some(&&i) {
                have.next();
                continue;
            }
            if !self.buffer.contains(root, i) && !self.unsynced.contains(&(*root, i)) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Moves a fully verified partial into `objects/`. Flushes first if
    /// some of its pieces are still pending. Idempotent once complete.
    pub fn complete_file(&mut self, root: &Sha256) -> Result<()> {
        self.writable()?;
        let Some((length, piece_len)) = self.index.partial(root)? else {
            if self.has_object(root) {
                return Ok(());
            }
            return Err(Error::UnknownPartial { root: to_hex(root) });
        };
        let pending = self.buffer.has_file(root)
            || self
                .unsynced
                .range((*root, 0)..=(*root, u32::MAX))
                .next()
                .is_some();
        if pending {
            self.flush()?;
        }
        let pieces = piece_count(length, piece_len);
        let verified = self.index.verified(root)?.len() as u64;
        if verified < pieces {
            return Err(Error::Incomplete {
                root: to_hex(root),
                missing: pieces - verified,
            });
        }
        let part = self.layout.partial(root);
        let object = self.layout.object(root);
        let bucket = self.layout.object_bucket(root);
        if !self.has_object(root) {
            // The root as an xattr (the server's strong ETag): while the
            // file is still writable, and before the fsync and rename so it
            // is durable with the object. Best effort: see `xattr`.
            crate::xattr::record_root(&part, root);
            self.disk
                .set_readonly(&part)
                .map_err(io_err("make read-only", &part))?;
            self.disk.sync_file(&part).map_err(io_err("fsync", &part))?;
            if !bucket.is_dir() {
                self.disk
                    .create_dir_all(&bucket)
                    .map_err(io_err("create", &bucket))?;
                let objects = self.layout.objects();
                self.disk
                    .sync_dir(&objects)
                    .map_err(io_err("fsync", &objects))?;
            }
            self.disk
                .rename(&part, &object)
                .map_err(io_err("rename", &part))?;
            self.disk
                .sync_dir(&bucket)
                .map_err(io_err("fsync", &bucket))?;
        } else {
            remove_if_present(&*self.disk, &part)?;
        }
        let pdir = self.layout.partial_dir();
        self.disk.sync_dir(&pdir).map_err(io_err("fsync", &pdir))?;
        self.finish_completion(root)
    }
}

/// Checks a spec's fields against each other and its layer against its root.
fn check_spec(spec: &FileSpec) -> Result<(), String> {
    if spec.piece_len < BLOCK_SIZE as u64 || !spec.piece_len.is_power_of_two() {
        return Err(format!(
            "piece length {} is not a power of two of at least 16 KiB",
            spec.piece_len
        ));
    }
    if spec.length == 0 {
        return Err("length 0: empty files are snapshot entries, not objects".into());
    }
    let pieces = piece_count(spec.length, spec.piece_len);
    if pieces > u64::from(u32::MAX) {
        return Err(format!("length {} has too many pieces", spec.length));
    }
    if pieces == 1 {
        if !spec.piece_layer.is_empty() {
            return Err("piece layer given for a file of one piece".into());
        }
        return Ok(());
    }
    if spec.piece_layer.len() as u64 != pieces {
        return Err(format!(
            "piece layer has {} hashes, length {} needs {pieces}",
            spec.piece_layer.len(),
            spec.length
        ));
    }
    let leaves = spec.piece_len / BLOCK_SIZE as u64;
    let pad = pad_hash(leaves.trailing_zeros());
    let width = spec.piece_layer.len().next_power_of_two();
    if root_of(&spec.piece_layer, width, pad) != Some(spec.root) {
        return Err("piece layer does not hash to the root".into());
    }
    Ok(())
}
