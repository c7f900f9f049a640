//! Small files of a snapshot kept in memory, so the common apt/dnf request
//! (an index, a signature, a small package) skips the blocking pool.
//!
//! Why: with a single reactor thread, every request that touches the disk
//! makes one hop to tokio's blocking pool and back; for a 1 KiB file that
//! hop (two thread wake-ups) costs more than the path resolution, the read
//! and HTTP together. Snapshots are immutable and a snapshot directory name
//! (`snapshots/<seq>`) is never reused, so a small file read once from a
//! snapshot can be served from memory for as long as the mount's `current`
//! link names that snapshot, with no staleness to manage.
//!
//! Only mounts made with [`crate::Mount::with_snapshots`] (whose root is
//! the store's `current` link) use it. Per request the reactor thread makes
//! one `readlink` of that link (a dentry-cache lookup, no disk I/O once the
//! link has been read) and one hash-map lookup. The entry is keyed by the
//! link's target and the request's decoded segments, and is filled from the
//! blocking lookup only when the link named the same target before and
//! after that lookup resolved the file, so it always holds the content of
//! that snapshot. Clients pinned to an older snapshot and by-hash files
//! found in another snapshot bypass it. Bounded in bytes; when full, or
//! when the link moves to another snapshot, it is emptied (snapshots switch
//! rarely and the working set refills in one pass).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::cond::Validators;

/// One cached file: its whole content and validators.
#[derive(Debug)]
pub struct Entry {
    pub body: Bytes,
    /// Exactly those the lookup that read the body made (the content-root
    /// ETag included), so a response from memory and one from disk agree.
    pub validators: Validators,
    /// The canonical snapshot root it came from (for sticky pins).
    pub root: PathBuf,
}

#[derive(Debug, Default)]
struct Table {
    /// The link target the entries belong to.
    target: Option<OsString>,
    files: HashMap<Vec<String>, Arc<Entry>>,
    bytes: usize,
}

/// The small-file cache of one mount.
#[derive(Debug)]
pub struct SmallFiles {
    max_bytes: usize,
    table: Mutex<Table>,
}

/// Rough per-entry overhead counted against the budget besides the body.
const ENTRY_OVERHEAD: usize = 256;

impl SmallFiles {
    /// A cache of at most `max_bytes` (0: off).
    pub fn new(max_bytes: usize) -> Self {
        SmallFiles {
            max_bytes,
            table: Mutex::new(Table::default()),
        }
    }

    /// Where `link` points now; `None` when it is not a symlink (or the
    /// cache is off).
    pub fn target(&self, link: &Path) -> Option<OsString> {
        if self.max_bytes == 0 {
            return None;
        }
        std::fs::read_link(link).ok().map(PathBuf::into_os_string)
    }

    /// The entry for `rest` under the snapshot `target` names.
    pub fn get(&self, target: &OsString, rest: &[String]) -> Option<Arc<Entry>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.target.as_ref() != Some(target) {
            return None;
        }
        table.files.get(rest).cloned()
    }

    /// Stores a file read while `link` pointed at `target` throughout.
    pub fn put(&self, target: OsString, rest: Vec<String>, entry: Entry) {
        let cost = entry.body.len() + ENTRY_OVERHEAD + rest.iter().map(String::len).sum::<usize>();
        if cost > self.max_bytes {
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.target.as_ref() != Some(&target) || table.bytes + cost > self.max_bytes {
            table.files.clear();
            table.bytes = 0;
            table.target = Some(target);
        }
        if let Some(old) = table.files.insert(rest, Arc::new(entry)) {
            table.bytes = table.bytes.saturating_sub(old.body.len() + ENTRY_OVERHEAD);
        }
        table.bytes += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            body: Bytes::from(vec![b'x'; n]),
            validators: Validators {
                etag: "\"e\"".into(),
                modified: std::time::UNIX_EPOCH,
            },
            root: PathBuf::from("/s/1"),
        }
    }

    fn seg(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn keyed_by_target_and_bounded() {
        let c = SmallFiles::new(4 * (1000 + ENTRY_OVERHEAD + 1));
        let one = OsString::from("snapshots/1");
        let two = OsString::from("snapshots/2");
        c.put(one.clone(), seg("a"), entry(1000));
        assert!(c.get(&one, &seg("a")).is_some());
        assert!(c.get(&two, &seg("a")).is_none(), "another snapshot");
        assert!(c.get(&one, &seg("b")).is_none());
        // The link moved: the old snapshot's entries go.
        c.put(two.clone(), seg("b"), entry(1000));
        assert!(c.get(&one, &seg("a")).is_none());
        assert!(c.get(&two, &seg("b")).is_some());
        // Full: emptied, then refilled.
        for name in ["c", "d", "e", "f"] {
            c.put(two.clone(), seg(name), entry(1000));
        }
        let table = c
            .table
            .lock()
            .map(|t| (t.files.len(), t.bytes))
            .unwrap_or((0, 0));
        assert!(table.0 <= 4 && table.1 <= c.max_bytes, "{table:?}");
        assert!(c.get(&two, &seg("f")).is_some());
        // Larger than the whole budget: not stored.
        c.put(two.clone(), seg("big"), entry(1 << 20));
        assert!(c.get(&two, &seg("big")).is_none());
        // Off.
        let off = SmallFiles::new(0);
        assert!(off.target(Path::new("/")).is_none());
    }

    #[test]
    fn target_reads_the_link() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("1"))?;
        std::os::unix::fs::symlink("1", dir.path().join("current"))?;
        let c = SmallFiles::new(1 << 20);
        assert_eq!(
            c.target(&dir.path().join("current")),
            Some(OsString::from("1"))
        );
        assert_eq!(c.target(&dir.path().join("1")), None, "not a link");
        Ok(())
    }
}
