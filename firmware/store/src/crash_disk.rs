//! A [`Disk`] that cuts the power after N mutations (tests only).
//!
//! Why: the crash rules are about ordering, and real SIGKILLs (the e2e
//! test) land where the scheduler puts them. This double lets a test cut
//! at *every* mutation of a workload in turn. At the cut it also does what
//! a power loss does to data that was written but not fsynced: it
//! overwrites those ranges with garbage. So a store that recorded a piece
//! before fsyncing it fails the next `verify`. (It does not model lost
//! directory entries; the e2e test and the ordering in the code cover
//! those.) The index commit counts as a mutation through `commit_point`.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk::{Disk, FsDisk};

#[derive(Default)]
struct State {
    /// Mutations allowed before the cut.
    budget: u64,
    /// Mutations done so far.
    ops: u64,
    dead: bool,
    /// Written but not fsynced: path → (offset, len).
    unsynced: HashMap<PathBuf, Vec<(u64, usize)>>,
}

/// See the module doc. Clones share one power supply.
#[derive(Clone)]
pub(crate) struct CrashDisk {
    state: Arc<Mutex<State>>,
}

impl CrashDisk {
    /// A disk that allows `budget` mutations, then dies.
    pub fn new(budget: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                budget,
                ..State::default()
            })),
        }
    }

    /// Mutations done so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the power was cut.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one mutation; cuts the power when the budget is spent.
    fn tick(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.lock();
        if !s.dead && s.ops >= s.budget {
            s.dead = true;
            for (path, ranges) in s.unsynced.drain() {
                if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                    for (off, len) in ranges {
                        // Whatever the disk had: the write never reached it.
                        let _ = f.write_all_at(&vec![0xEE; len], off);
                    }
                }
            }
        }
        if s.dead {
            return Err(io::Error::other("power cut (test)"));
        }
        s.ops += 1;
        Ok(s)
    }
}

impl Disk for CrashDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.create_dir_all(path)
    }

    fn create_sized(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.create_sized(path, len)?;
        s.unsynced.remove(path);
        Ok(())
    }

    fn create_empty(&self, path: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.create_empty(path)
    }

    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.write_at(path, offset, data)?;
        s.unsynced
            .entry(path.to_path_buf())
            .or_default()
            .push((offset, data.len()));
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.sync_file(path)?;
        s.unsynced.remove(path);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.sync_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.rename(from, to)?;
        if let Some(r) = s.unsynced.remove(from) {
            s.unsynced.insert(to.to_path_buf(), r);
        }
        Ok(())
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.hard_link(original, link)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.symlink(target, link)
    }

    fn set_readonly(&self, path: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.set_readonly(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.remove_file(path)?;
        s.unsynced.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let _s = self.tick()?;
        FsDisk.remove_dir_all(path)
    }

    fn commit_point(&self) -> io::Result<()> {
        let _s = self.tick()?;
        Ok(())
    }
}
