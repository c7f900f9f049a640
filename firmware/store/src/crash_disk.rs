//! A [`Disk`] that cuts the power after N mutations (tests only).
//!
//! Why: the crash rules are about ordering, and real SIGKILLs (the e2e
//! test) land where the scheduler puts them. This double lets a test cut
//! at *every* mutation of a workload in turn, and at the cut it does what a
//! power loss may do under POSIX rules (stricter than ext4's journal):
//!
//! - data written but not fsynced is lost: those ranges become garbage;
//! - a new directory entry (created file, link, symlink, directory, rename
//!   target) whose directory was not fsynced afterwards is lost: the
//!   operation is undone, newest first (a rename moves back, a replaced
//!   symlink comes back).
//!
//! Deletions are never undone (a resurrected file is a leftover the store
//! must tolerate anyway, and it is cheaper not to keep copies). The index
//! commit counts as a mutation through `commit_point`, so a cut can land
//! between the filesystem work and the commit that records it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk::{Disk, FsDisk};

/// How to take back one directory operation.
enum Undo {
    /// Remove a name that was created.
    Remove(PathBuf),
    /// Remove a directory that was created (if it is empty by then).
    RemoveDir(PathBuf),
    /// Move `to` back to `from`; restore the symlink `to` replaced, if any.
    Rename {
        from: PathBuf,
        to: PathBuf,
        replaced_link: Option<PathBuf>,
    },
}

#[derive(Default)]
struct State {
    /// Mutations allowed before the cut.
    budget: u64,
    /// Mutations done so far.
    ops: u64,
    dead: bool,
    /// Written but not fsynced: path → (offset, len).
    unsynced: HashMap<PathBuf, Vec<(u64, usize)>>,
    /// Directory operations not yet made durable: (directory, undo), oldest
    /// first.
    dir_ops: Vec<(PathBuf, Undo)>,
}

impl State {
    fn log(&mut self, name: &Path, undo: Undo) {
        let dir = name.parent().map(Path::to_path_buf).unwrap_or_default();
        self.dir_ops.push((dir, undo));
    }

    /// What a power loss does to everything not yet durable.
    fn lose_volatile_state(&mut self) {
        for (path, ranges) in self.unsynced.drain() {
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                for (off, len) in ranges {
                    // Whatever the disk had: the write never reached it.
                    let _ = f.write_all_at(&vec![0xEE; len], off);
                }
            }
        }
        while let Some((_, undo)) = self.dir_ops.pop() {
            // Best effort: a later deletion may have made an undo moot.
            match undo {
                Undo::Remove(p) => {
                    let _ = fs::remove_file(&p);
                }
                Undo::RemoveDir(p) => {
                    let _ = fs::remove_dir(&p);
                }
                Undo::Rename {
                    from,
                    to,
                    replaced_link,
                } => {
                    if let (Ok(()), Some(target)) = (fs::rename(&to, &from), replaced_link) {
                        let _ = std::os::unix::fs::symlink(target, &to);
                    }
                }
            }
        }
    }
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
            s.lose_volatile_state();
        }
        if s.dead {
            return Err(io::Error::other("power cut (test)"));
        }
        s.ops += 1;
        Ok(s)
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

impl Disk for CrashDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        let missing: Vec<PathBuf> = path
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !exists(a))
            .map(Path::to_path_buf)
            .collect();
        FsDisk.create_dir_all(path)?;
        // Outermost first, so undoing (newest first) removes innermost first.
        for d in missing.into_iter().rev() {
            s.log(&d.clone(), Undo::RemoveDir(d));
        }
        Ok(())
    }

    fn create_sized(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.tick()?;
        let new = !exists(path);
        FsDisk.create_sized(path, len)?;
        s.unsynced.remove(path);
        if new {
            s.log(path, Undo::Remove(path.to_path_buf()));
        }
        Ok(())
    }

    fn create_empty(&self, path: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.create_empty(path)?;
        s.log(path, Undo::Remove(path.to_path_buf()));
        Ok(())
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
        let mut s = self.tick()?;
        FsDisk.sync_dir(path)?;
        s.dir_ops.retain(|(dir, _)| dir != path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        let replaced_link = fs::read_link(to).ok();
        FsDisk.rename(from, to)?;
        if let Some(r) = s.unsynced.remove(from) {
            s.unsynced.insert(to.to_path_buf(), r);
        }
        s.log(
            to,
            Undo::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                replaced_link,
            },
        );
        Ok(())
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.hard_link(original, link)?;
        s.log(link, Undo::Remove(link.to_path_buf()));
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let mut s = self.tick()?;
        FsDisk.symlink(target, link)?;
        s.log(link, Undo::Remove(link.to_path_buf()));
        Ok(())
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
