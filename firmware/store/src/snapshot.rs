//! Snapshots: trees of hard links into `objects/`, and the `current` link.
//!
//! The crash rule kept here: **`current` only ever points at a snapshot that
//! is complete on disk and recorded in the index.** A snapshot is assembled
//! in `snapshots/<seq>.tmp`, its directories fsynced bottom-up, renamed to
//! `snapshots/<seq>`, `snapshots/` fsynced, and only then recorded (with its
//! file list and a reference row per object, so GC needs no file list in
//! RAM). `switch_current` requires the record, makes `current.tmp`, renames
//! it over `current` and fsyncs the data directory.
//!
//! Why hard links: a file unchanged between releases costs one directory
//! entry, and a snapshot can be served with plain `open()` while GC deletes
//! objects: an open file outlives its last name.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use redb::ReadableTable;
use torrent::hash::{Sha256, to_hex};

use crate::error::{Error, Result, io_err};
use crate::index::{ENTRIES, META, REFS, SNAPSHOTS, ref_key};
use crate::layout::{Layout, parse_current_target};
use crate::{Store, read_dir, remove_if_present};

/// One file of a snapshot tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: a hard link to the object with this pieces root.
    File(Sha256),
    /// An empty regular file (BEP 52 gives empty files no root).
    Empty,
    /// A symbolic link with this target, which must stay inside the tree.
    Symlink(String),
}

impl Entry {
    /// Encoding in the `entries` table: a tag byte, then the root or target.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Entry::File(root) => [&[b'f'][..], root].concat(),
            Entry::Empty => vec![b'e'],
            Entry::Symlink(t) => [&[b'l'][..], t.as_bytes()].concat(),
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            b'f' => Some(Entry::File(rest.try_into().ok()?)),
            b'e' if rest.is_empty() => Some(Entry::Empty),
            b'l' => Some(Entry::Symlink(String::from_utf8(rest.to_vec()).ok()?)),
            _ => None,
        }
    }
}

/// Checks one path component of an entry.
fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() || c == "." || c == ".." {
        return Err("empty, `.` or `..` path component");
    }
    if c.contains('/') || c.contains('\0') {
        return Err("path component contains `/` or NUL");
    }
    Ok(())
}

/// Checks that a symlink at `depth` directories below the snapshot root
/// resolves inside the snapshot.
fn check_link_target(target: &str, depth: usize) -> Result<(), &'static str> {
    if target.is_empty() || target.contains('\0') {
        return Err("symlink target is empty or contains NUL");
    }
    let mut level = depth as i64;
    for c in Path::new(target).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("symlink target is absolute");
            }
            Component::ParentDir => level -= 1,
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
        }
        if level < 0 {
            return Err("symlink target leaves the snapshot");
        }
    }
    Ok(())
}

impl Store {
    /// Builds `snapshots/<seq>` from `entries` (relative path components and
    /// what is there) and records it. Every [`Entry::File`] must already be
    /// a complete object. A `seq` already recorded is left as it is.
    pub fn build_snapshot<I>(&mut self, seq: u64, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (Vec<String>, Entry)>,
    {
        self.writable()?;
        if self.index.has_snapshot(seq)? {
            return Ok(());
        }
        let tmp = self.layout.snapshot_tmp(seq);
        let dest = self.layout.snapshot(seq);
        for stale in [&tmp, &dest] {
            if fs::symlink_metadata(stale).is_ok() {
                self.disk
                    .remove_dir_all(stale)
                    .map_err(io_err("remove", stale))?;
            }
        }
        self.disk
            .create_dir_all(&tmp)
            .map_err(io_err("create", &tmp))?;
        let ix = &self.index;
        // The transaction stays open while the tree is built; nothing is
        // committed unless the tree is complete and durable.
        let tx = ix.db.begin_write().map_err(ix.err())?;
        let mut count = 0u64;
        // Directories made so far: one create_dir_all per directory, not
        // one per entry (a 20,000-file snapshot has a few hundred).
        let mut made: HashSet<PathBuf> = HashSet::new();
        {
            let mut table = tx.open_table(ENTRIES).map_err(ix.err())?;
            let mut refs = tx.open_table(REFS).map_err(ix.err())?;
            for (components, entry) in entries {
                let rel = components.join("/");
                let bad = |reason| Error::InvalidEntry {
                    seq,
                    path: rel.clone(),
                    reason,
                };
                if components.is_empty() {
                    return Err(bad("empty path"));
                }
                for c in &components {
                    check_component(c).map_err(bad)?;
                }
                let path: PathBuf = components.iter().fold(tmp.clone(), |p, c| p.join(c));
                if let Some(parent) = path.parent()
                    && !made.contains(parent)
                {
                    self.disk
                        .create_dir_all(parent)
                        .map_err(io_err("create", parent))?;
                    made.insert(parent.to_path_buf());
                }
                match &entry {
                    Entry::File(root) => {
                        let object = self.layout.object(root);
                        if !fs::symlink_metadata(&object).is_ok_and(|m| m.is_file()) {
                            return Err(Error::MissingObject {
                                seq,
                                path: rel,
                                root: to_hex(root),
                            });
                        }
                        self.disk
                            .hard_link(&object, &path)
                            .map_err(io_err("link", &path))?;
                        refs.insert(&ref_key(root, seq), ()).map_err(ix.err())?;
                    }
                    Entry::Empty => {
                        self.disk
                            .create_empty(&path)
                            .map_err(io_err("create", &path))?;
                    }
                    Entry::Symlink(target) => {
                        check_link_target(target, components.len() - 1).map_err(bad)?;
                        self.disk
                            .symlink(Path::new(target), &path)
                            .map_err(io_err("symlink", &path))?;
                    }
                }
                let encoded = entry.encode();
                if table
                    .insert((seq, rel.as_str()), encoded.as_slice())
                    .map_err(ix.err())?
                    .is_some()
                {
                    return Err(bad("path listed twice"));
                }
                count += 1;
            }
            tx.open_table(SNAPSHOTS)
                .map_err(ix.err())?
                .insert(seq, count)
                .map_err(ix.err())?;
            let mut meta = tx.open_table(META).map_err(ix.err())?;
            let builds = meta
                .get("builds")
                .map_err(ix.err())?
                .map_or(0, |v| v.value());
            meta.insert("builds", builds + 1).map_err(ix.err())?;
        }
        sync_tree(&*self.disk, &tmp)?;
        self.disk
            .rename(&tmp, &dest)
            .map_err(io_err("rename", &tmp))?;
        let snaps = self.layout.snapshots();
        self.disk
            .sync_dir(&snaps)
            .map_err(io_err("fsync", &snaps))?;
        self.disk
            .commit_point()
            .map_err(io_err("commit", &ix.path))?;
        tx.commit().map_err(ix.err())?;
        Ok(())
    }

    /// Points `current` at snapshot `seq`, atomically.
    pub fn switch_current(&mut self, seq: u64) -> Result<()> {
        self.writable()?;
        if !self.index.has_snapshot(seq)? || !self.layout.snapshot(seq).is_dir() {
            return Err(Error::UnknownSnapshot { seq });
        }
        let tmp = self.layout.current_tmp();
        remove_if_present(&*self.disk, &tmp)?;
        self.disk
            .symlink(&Layout::current_target(seq), &tmp)
            .map_err(io_err("symlink", &tmp))?;
        let current = self.layout.current();
        self.disk
            .rename(&tmp, &current)
            .map_err(io_err("rename", &tmp))?;
        let dir = self.layout.dir.clone();
        self.disk.sync_dir(&dir).map_err(io_err("fsync", &dir))
    }

    /// The snapshot `current` points to, if any.
    pub fn current(&self) -> Result<Option<u64>> {
        let link = self.layout.current();
        match fs::read_link(&link) {
            Ok(target) => match parse_current_target(&target) {
                Some(seq) => Ok(Some(seq)),
                None => Err(Error::BadCurrent {
                    path: link,
                    found: target.display().to_string(),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(Error::BadCurrent {
                path: link,
                found: "not a symlink".into(),
            }),
            Err(e) => Err(io_err("read link", &link)(e)),
        }
    }

    /// Recorded snapshots, ascending.
    pub fn snapshots(&self) -> Result<Vec<u64>> {
        self.index.snapshots()
    }

    /// Path of snapshot `seq`'s tree.
    pub fn snapshot_path(&self, seq: u64) -> PathBuf {
        self.layout.snapshot(seq)
    }
}

/// fsyncs every directory under `dir`, children before parents, so each
/// directory entry is durable before the entry naming its directory is.
/// Recursion depth is the tree's depth; nothing is collected.
fn sync_tree(disk: &dyn crate::disk::Disk, dir: &Path) -> Result<()> {
    for entry in read_dir(dir)? {
        let entry = entry.map_err(io_err("list", dir))?;
        let ty = entry
            .file_type()
            .map_err(io_err("inspect", &entry.path()))?;
        if ty.is_dir() {
            sync_tree(disk, &entry.path())?;
        }
    }
    disk.sync_dir(dir).map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for e in [
            Entry::File([7; 32]),
            Entry::Empty,
            Entry::Symlink("../a/b".into()),
        ] {
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
        assert_eq!(Entry::decode(b""), None);
        assert_eq!(Entry::decode(b"fshort"), None);
        assert_eq!(Entry::decode(b"x"), None);
    }

    #[test]
    fn link_targets_stay_inside() {
        assert!(check_link_target("b", 0).is_ok());
        assert!(check_link_target("../b", 1).is_ok());
        assert!(check_link_target("../b", 0).is_err());
        assert!(check_link_target("a/../../b", 0).is_err());
        assert!(check_link_target("/etc/passwd", 3).is_err());
        assert!(check_link_target("", 0).is_err());
    }

    #[test]
    fn components_are_plain_names() {
        assert!(check_component("pool").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(check_component(bad).is_err(), "{bad:?}");
        }
    }
}
