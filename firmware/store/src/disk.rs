//! Every mutation the store makes to the filesystem, behind one trait.
//!
//! Why a trait: the crash rules (see the crate doc) are about the *order* of
//! writes, fsyncs, renames and index commits. Routing every mutation through
//! [`Disk`] lets a test double ([`crate::crash_disk`]) cut the power after
//! any N of them and then check that reopening the store finds it
//! consistent. Reads go straight to `std::fs`: they cannot break anything.
//!
//! Why paths and not open handles: the store writes a partial file in a few
//! large coalesced runs and fsyncs it once per flush, so reopening by path
//! costs nothing measurable and no handle table grows with the number of
//! files being downloaded. `fsync` through a fresh descriptor flushes the
//! inode's dirty pages all the same.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

/// Filesystem mutations, in the granularity the crash rules talk about.
pub(crate) trait Disk: Send {
    /// `mkdir -p`.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` if needed, sets its length to `len` (sparse) and
    /// fsyncs it, so its size survives a crash.
    fn create_sized(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Creates a new empty file and fsyncs it.
    fn create_empty(&self, path: &Path) -> io::Result<()>;
    /// Writes `data` at `offset` of an existing file (no fsync).
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()>;
    /// fdatasync of a file whose size is already durable.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory: makes creations, renames and links in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// rename(2): atomic replacement within one filesystem.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// link(2).
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;
    /// symlink(2).
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Makes a file read-only (objects are immutable; snapshot links share them).
    fn set_readonly(&self, path: &Path) -> io::Result<()>;
    /// unlink(2).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// `rm -r`.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Called right before every index commit, so a test double can cut the
    /// power between the filesystem work and the commit that records it.
    fn commit_point(&self) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FsDisk;

impl Disk for FsDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_sized(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn create_empty(&self, path: &Path) -> io::Result<()> {
        let f = OpenOptions::new().create_new(true).write(true).open(path)?;
        f.sync_all()
    }

    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.write_all_at(data, offset)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // A read-only descriptor is enough for fsync on Linux, and objects
        // are read-only by then.
        File::open(path)?.sync_data()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn set_readonly(&self, path: &Path) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(0o444))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn commit_point(&self) -> io::Result<()> {
        Ok(())
    }
}
