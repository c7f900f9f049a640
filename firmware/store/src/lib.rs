//! The crash-safe, content-addressed store of a swarmsync node.
//!
//! A node must survive the power being pulled at any instant (appliances on
//! a shelf, SD cards, no UPS) and resume without rehashing gigabytes. So the
//! store keeps one rule above all: **the index never claims more than the
//! disk holds.** Every piece, object and snapshot becomes durable on disk
//! first and is recorded in `index.redb` second; a crash in between leaves
//! an unrecorded leftover, which [`Store::open`] removes or adopts.
//!
//! # Layout
//!
//! ```text
//! <data>/objects/ab/cdef…        complete, verified files, named by v2 pieces root (hex)
//! <data>/partial/<root>.part     files being downloaded; verified pieces recorded in the index
//! <data>/snapshots/<seq>/…       the tree, as hard links into objects/
//! <data>/current -> snapshots/<seq>   switched by rename(2) of a temporary symlink
//! <data>/index.redb              partials, piece layers, verified pieces, snapshots, refs
//! ```
//!
//! Each object also carries its root as the extended attribute
//! [`ROOT_XATTR`] where the filesystem allows, so the HTTP server can tag a
//! snapshot file with its content hash from the open descriptor alone.
//!
//! # Driving it
//!
//! The swarm engine calls, per file: [`Store::begin_file`], then
//! [`Store::write_piece`] for each piece as it arrives (any order),
//! [`Store::flush`] now and then (that is what makes pieces survive a crash),
//! and [`Store::complete_file`]. Per release: [`Store::build_snapshot`],
//! [`Store::switch_current`], [`Store::gc`]. [`Store::verify`] re-checks
//! everything from scratch (`swarmsync verify`).
//!
//! # On-disk states and crash invariants
//!
//! Every state a crash can leave, what [`Store::open`] does with it, and the
//! ordering that makes it safe. The orderings are kept in `partial.rs`,
//! `snapshot.rs` and `gc.rs`; the recovery column is [`Store::open`] below.
//!
//! | state found on disk | how a crash leaves it | recovery on open | why it is safe |
//! |---|---|---|---|
//! | `.part` + partial row + `verified` rows | download in progress | kept; download resumes | a piece's row is committed only after its bytes were written and the `.part` was fdatasync'ed (`flush`) |
//! | partial row, `.part` missing or of the wrong length, no `verified` rows | crash between the row's commit and the file's creation or sizing (`begin_file`) | kept; `begin_file` recreates the file | no data was ever recorded for it |
//! | `.part` + partial row, pieces written but not recorded | crash before `flush` committed | kept; those pieces count as missing | the index never claimed them |
//! | `.part` without partial row | not produced by the store (leftover) | removed | nothing refers to it |
//! | partial row and `objects/…` both present | crash between the rename into `objects/` and the commit that drops the row (`complete_file`) | bookkeeping finished: row dropped, object row added | the object was fsynced (as a `.part`) and its directory fsynced before the rename counted |
//! | object file with neither object row nor partial row | not produced by the store (the completing commit swaps one row for the other) | kept; `gc` treats it as old garbage unless a snapshot refers to it | `verify` still checks its content against its name |
//! | object row without file | crash in `gc` between unlink and row deletion | row dropped by the next `gc` | nothing reads object rows for data |
//! | `snapshots/<seq>.tmp/` | crash while building | removed | `current` never points at a `.tmp` |
//! | `snapshots/<seq>/` without snapshot row | crash between the rename and the commit (`build_snapshot`), or between `gc`'s commit and its `rm -r` | removed | `switch_current` requires the row, so `current` never points at it |
//! | snapshot row without directory, `verified` row over bad bytes, snapshot entry not linked to its object | never produced (rows are committed after what they describe is durable, and deleted before it is removed) | none; `verify` reports it | a fault means the medium lied or something else wrote here |
//! | layout directories missing, `index.redb` present | first start cut before its directories were fsynced | recreated | nothing can be recorded in a directory before it is durable |
//! | `current.tmp` | crash during `switch_current` | removed | `rename(2)` leaves `current` either old or new, both complete and fsynced |
//! | `current -> snapshots/<seq>` | normal | kept | the target had its row, its tree fsynced bottom-up and `snapshots/` fsynced before the link was made |
//!
//! [`Store::open_inspect`] opens a store without this recovery, to look at
//! it exactly as a crash left it; [`Store::verify`] does not count the
//! leftovers above as faults, only states the table calls impossible and
//! bytes that do not hash right.
//!
//! Further invariants: `gc` never removes the snapshot `current` points to,
//! nor objects referenced by a retained snapshot or still being downloaded,
//! nor objects completed since the last snapshot was built (they are waiting
//! for the snapshot being assembled).
//!
//! # Memory
//!
//! Bounded independently of the number and size of files: file lists and
//! piece layers live in redb (4 MiB page cache), the write buffer is capped
//! at 4 MiB, unsynced pieces are flushed after 64 MiB, and directory walks
//! stream.
#![forbid(unsafe_code)]

mod disk;
mod error;
mod gc;
mod index;
mod layout;
mod partial;
mod snapshot;
mod verify;
mod writebuf;
mod xattr;

#[cfg(test)]
mod crash_disk;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use redb::ReadableTable;
use torrent::hash::Sha256;

use crate::disk::{Disk, FsDisk};
use crate::error::io_err;
use crate::index::{Index, LAYER, OBJECTS, PARTIALS, VERIFIED, piece_key};
use crate::layout::{Layout, TMP_SUFFIX, partial_root};
use crate::writebuf::WriteBuffer;

pub use crate::error::{Error, Result};
pub use crate::gc::GcReport;
pub use crate::partial::{Begin, FileSpec, PieceOutcome};
pub use crate::snapshot::Entry;
pub use crate::verify::{Fault, VerifyReport};
pub use crate::xattr::{ROOT_XATTR, record_root, recorded_root};

/// The store under one data directory. See the crate doc for the rules.
///
/// Mutating methods take `&mut self`: one writer, no locks to get wrong.
pub struct Store {
    layout: Layout,
    index: Index,
    disk: Box<dyn Disk>,
    /// Verified pieces not yet written to their `.part`.
    buffer: WriteBuffer,
    /// Pieces written but not yet fsynced and recorded.
    unsynced: BTreeSet<(Sha256, u32)>,
    unsynced_bytes: u64,
    /// Opened by [`Store::open_inspect`]: no mutation allowed.
    inspect_only: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.layout.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `dir`, creating the layout and the index if
    /// needed, and recovers from whatever a crash left (see the table in
    /// the crate doc). Fails with [`Error::Locked`] if another process has
    /// it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir.as_ref(), Box::new(FsDisk))
    }

    /// Opens an existing store to look at it exactly as a crash left it:
    /// nothing is created, recovered or removed (redb may still repair its
    /// own file). For `verify` and tests; every mutating method then fails
    /// with [`Error::InspectOnly`]. Leftovers that `open` would clean up are
    /// not faults.
    pub fn open_inspect(dir: impl AsRef<Path>) -> Result<Self> {
        let layout = Layout {
            dir: dir.as_ref().to_path_buf(),
        };
        let index = Index::open(&layout.index(), false)?;
        Ok(Self {
            layout,
            index,
            disk: Box::new(FsDisk),
            buffer: WriteBuffer::default(),
            unsynced: BTreeSet::new(),
            unsynced_bytes: 0,
            inspect_only: true,
        })
    }

    pub(crate) fn open_with(dir: &Path, disk: Box<dyn Disk>) -> Result<Self> {
        let layout = Layout {
            dir: dir.to_path_buf(),
        };
        let dirs = [layout.objects(), layout.partial_dir(), layout.snapshots()];
        let fresh = !layout.index().is_file() || dirs.iter().any(|d| !d.is_dir());
        for d in &dirs {
            disk.create_dir_all(d).map_err(io_err("create", d))?;
        }
        let index = Index::open(&layout.index(), true)?;
        if fresh {
            // New names in the data directory (and maybe the directory
            // itself) must be durable before anything is recorded in them.
            let parent = layout.dir.parent().filter(|p| p.is_dir());
            for d in parent.into_iter().chain([layout.dir.as_path()]) {
                disk.sync_dir(d).map_err(io_err("fsync", d))?;
            }
        }
        let mut store = Self {
            layout,
            index,
            disk,
            buffer: WriteBuffer::default(),
            unsynced: BTreeSet::new(),
            unsynced_bytes: 0,
            inspect_only: false,
        };
        store.recover()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Where the complete file with this pieces root lives (or would).
    pub fn object_path(&self, root: &Sha256) -> PathBuf {
        self.layout.object(root)
    }

    /// Where the file with this pieces root is downloaded to
    /// (`partial/<root>.part`) until it is complete.
    pub fn partial_path(&self, root: &Sha256) -> PathBuf {
        self.layout.partial(root)
    }

    /// [`Store::object_path`] of the store in `dir`, without opening it
    /// (it may be open in another process; reading an object is safe).
    pub fn object_path_in(dir: &Path, root: &Sha256) -> PathBuf {
        Layout {
            dir: dir.to_path_buf(),
        }
        .object(root)
    }

    /// Whether the complete file with this root is in `objects/`.
    pub fn has_object(&self, root: &Sha256) -> bool {
        fs::symlink_metadata(self.layout.object(root)).is_ok_and(|m| m.is_file())
    }

    /// Roots of the files being downloaded.
    pub fn partials(&self) -> Result<Vec<Sha256>> {
        self.index.partials()
    }

    /// Refuses mutations on a store opened for inspection.
    fn writable(&self) -> Result<()> {
        if self.inspect_only {
            return Err(Error::InspectOnly {
                path: self.layout.dir.clone(),
            });
        }
        Ok(())
    }

    /// Recovery on open: the "recovery" column of the crate doc's table.
    fn recover(&mut self) -> Result<()> {
        let l = self.layout.clone();
        remove_if_present(&*self.disk, &l.current_tmp())?;
        // Snapshots being built, and built but never recorded.
        for entry in read_dir(&l.snapshots())? {
            let entry = entry.map_err(io_err("list", &l.snapshots()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let recorded = match name.parse::<u64>() {
                Ok(seq) if seq.to_string() == name => self.index.has_snapshot(seq)?,
                _ => false,
            };
            if !recorded && (name.ends_with(TMP_SUFFIX) || name.parse::<u64>().is_ok()) {
                let p = entry.path();
                self.disk.remove_dir_all(&p).map_err(io_err("remove", &p))?;
            }
        }
        // Completions interrupted after the rename into objects/.
        for root in self.index.partials()? {
            if self.has_object(&root) {
                let part = l.partial(&root);
                remove_if_present(&*self.disk, &part)?;
                self.finish_completion(&root)?;
            }
        }
        // Partial files nobody records.
        for entry in read_dir(&l.partial_dir())? {
            let entry = entry.map_err(io_err("list", &l.partial_dir()))?;
            let name = entry.file_name();
            let keep = match partial_root(&name.to_string_lossy()) {
                Some(root) => self.index.partial(&root)?.is_some(),
                None => false,
            };
            if !keep {
                let p = entry.path();
                self.disk.remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
        Ok(())
    }

    /// The index half of completing a file: drop the partial's rows, add the
    /// object row. Only called once the object is durable under its name.
    fn finish_completion(&mut self, root: &Sha256) -> Result<()> {
        let ix = &self.index;
        let builds = ix.meta("builds")?;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        let tx = ix.db.begin_write().map_err(ix.err())?;
        {
            let (lo, hi) = (piece_key(root, 0), piece_key(root, u32::MAX));
            tx.open_table(PARTIALS)
                .map_err(ix.err())?
                .remove(root)
                .map_err(ix.err())?;
            tx.open_table(LAYER)
                .map_err(ix.err())?
                .retain_in::<&[u8; 36], _>(&lo..=&hi, |_, _| false)
                .map_err(ix.err())?;
            tx.open_table(VERIFIED)
                .map_err(ix.err())?
                .retain_in::<&[u8; 36], _>(&lo..=&hi, |_, _| false)
                .map_err(ix.err())?;
            let mut objects = tx.open_table(OBJECTS).map_err(ix.err())?;
            if objects.get(root).map_err(ix.err())?.is_none() {
                objects.insert(root, builds).map_err(ix.err())?;
            }
        }
        tx.commit().map_err(ix.err())?;
        Ok(())
    }
}

/// `read_dir` with the store's error.
pub(crate) fn read_dir(dir: &Path) -> Result<fs::ReadDir> {
    fs::read_dir(dir).map_err(io_err("list", dir))
}

/// Removes a file or symlink if it exists.
pub(crate) fn remove_if_present(disk: &dyn Disk, path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => disk.remove_file(path).map_err(io_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}
