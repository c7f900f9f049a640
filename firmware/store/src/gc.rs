//! Garbage collection of snapshots and objects.
//!
//! The rule kept here: **an object goes only when no retained snapshot
//! refers to it, no download is writing it, and a snapshot was built since
//! it completed** (so files fetched for the release being assembled survive
//! a GC that runs before that release's snapshot is built).
//!
//! Order, for crash safety: a snapshot's rows are deleted (one commit)
//! before its directory is removed, so a crash leaves an unrecorded
//! directory that `open` removes, never a recorded snapshot with holes.
//! An object file is unlinked before its row is deleted; a row without a
//! file is harmless and dropped by the next GC. Deletions are not fsynced:
//! an unlink lost in a crash only resurrects garbage, which the next GC
//! removes again.
//!
//! Why it walks `objects/` instead of keeping a list: the directory is the
//! list, and walking it streams; reference checks are point lookups in the
//! `refs` table.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use torrent::hash::Sha256;

use crate::error::{Result, io_err};
use crate::index::{ENTRIES, OBJECTS, REFS, SNAPSHOTS, ref_key};
use crate::layout::object_root;
use crate::{Store, read_dir};

/// Objects removed per index commit (bounds the removal list in RAM).
const GC_BATCH: usize = 256;

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Snapshots removed, ascending.
    pub snapshots_removed: Vec<u64>,
    /// Objects removed.
    pub objects_removed: u64,
    /// Bytes those objects held (their last link may live on in an open file).
    pub bytes_freed: u64,
}

impl Store {
    /// Removes every snapshot not in `retain` (the one `current` points to
    /// is always kept), then every object no remaining snapshot refers to.
    pub fn gc(&mut self, retain: &[u64]) -> Result<GcReport> {
        self.writable()?;
        let mut report = GcReport::default();
        let mut keep: BTreeSet<u64> = retain.iter().copied().collect();
        if let Some(cur) = self.current()? {
            keep.insert(cur);
        }
        for seq in self.index.snapshots()? {
            if !keep.contains(&seq) {
                self.drop_snapshot(seq)?;
                report.snapshots_removed.push(seq);
            }
        }
        self.sweep_objects(&mut report)?;
        Ok(report)
    }

    /// Deletes a snapshot's rows, then its directory.
    fn drop_snapshot(&mut self, seq: u64) -> Result<()> {
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            let mut entries = tx.open_table(ENTRIES).map_err(ix.err())?;
            let mut refs = tx.open_table(REFS).map_err(ix.err())?;
            // Walk the snapshot's entries once, dropping each file's ref.
            let range = (seq, "")..(seq + 1, "");
            for row in entries
                .extract_from_if(range, |_, _| true)
                .map_err(ix.err())?
            {
                let (_, v) = row.map_err(ix.err())?;
                if let Some(crate::Entry::File(root)) = crate::Entry::decode(v.value()) {
                    refs.remove(&ref_key(&root, seq)).map_err(ix.err())?;
                }
            }
            tx.open_table(SNAPSHOTS)
                .map_err(ix.err())?
                .remove(seq)
                .map_err(ix.err())?;
        }
        tx.commit().map_err(ix.err())?;
        let dir = self.layout.snapshot(seq);
        if fs::symlink_metadata(&dir).is_ok() {
            self.disk
                .remove_dir_all(&dir)
                .map_err(io_err("remove", &dir))?;
        }
        Ok(())
    }

    /// Removes unreferenced objects, and object rows whose file is gone.
    fn sweep_objects(&mut self, report: &mut GcReport) -> Result<()> {
        let builds = self.index.meta("builds")?;
        let objects = self.layout.objects();
        let mut removed: Vec<Sha256> = Vec::new();
        for bucket in read_dir(&objects)? {
            let bucket = bucket.map_err(io_err("list", &objects))?;
            let bname = bucket.file_name().to_string_lossy().into_owned();
            let bpath = bucket.path();
            if !bpath.is_dir() {
                continue;
            }
            for file in read_dir(&bpath)? {
                let file = file.map_err(io_err("list", &bpath))?;
                let Some(root) = object_root(&bname, &file.file_name().to_string_lossy()) else {
                    continue;
                };
                if self.index.is_referenced(&root)? || self.index.partial(&root)?.is_some() {
                    continue;
                }
                // Completed since the newest snapshot was built: it is
                // waiting for the next one.
                if self.index.object_birth(&root)?.is_some_and(|b| b >= builds) {
                    continue;
                }
                let path = file.path();
                let size = fs::symlink_metadata(&path).map_or(0, |m| m.size());
                self.disk
                    .remove_file(&path)
                    .map_err(io_err("remove", &path))?;
                report.objects_removed += 1;
                report.bytes_freed += size;
                removed.push(root);
                if removed.len() >= GC_BATCH {
                    self.drop_object_rows(&removed)?;
                    removed.clear();
                }
            }
        }
        self.drop_object_rows(&removed)?;
        // Rows whose file is gone (a GC interrupted between unlink and
        // commit, or a file removed by hand).
        let layout = self.layout.clone();
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        tx.open_table(OBJECTS)
            .map_err(ix.err())?
            .retain(|root, _| layout.object(root).is_file())
            .map_err(ix.err())?;
        tx.commit().map_err(ix.err())?;
        Ok(())
    }

    fn drop_object_rows(&mut self, roots: &[Sha256]) -> Result<()> {
        if roots.is_empty() {
            return Ok(());
        }
        let ix = &self.index;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            let mut t = tx.open_table(OBJECTS).map_err(ix.err())?;
            for root in roots {
                t.remove(root).map_err(ix.err())?;
            }
        }
        tx.commit().map_err(ix.err())?;
        Ok(())
    }
}
