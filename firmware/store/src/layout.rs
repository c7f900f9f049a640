//! Where things live under the data directory.
//!
//! Why fan out objects by the first hex byte: a flat directory of 20,000
//! names makes every lookup and every directory fsync slower on ext4 without
//! dir_index and on FAT-like media; 256 buckets keep each one small.

use std::path::{Path, PathBuf};

use torrent::hash::{Sha256, from_hex, to_hex};

/// Suffix of anything being built that is not yet part of the store.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Suffix of a partial download.
pub(crate) const PART_SUFFIX: &str = ".part";

/// The fixed names under the data directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn objects(&self) -> PathBuf {
        self.dir.join("objects")
    }

    pub fn partial_dir(&self) -> PathBuf {
        self.dir.join("partial")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    pub fn index(&self) -> PathBuf {
        self.dir.join("index.redb")
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    pub fn current_tmp(&self) -> PathBuf {
        self.dir.join(format!("current{TMP_SUFFIX}"))
    }

    /// `objects/ab/`, the bucket of an object.
    pub fn object_bucket(&self, root: &Sha256) -> PathBuf {
        self.objects().join(to_hex(&root[..1]))
    }

    /// `objects/ab/cdef…`.
    pub fn object(&self, root: &Sha256) -> PathBuf {
        let hex = to_hex(root);
        self.objects().join(&hex[..2]).join(&hex[2..])
    }

    /// `partial/<hex root>.part`.
    pub fn partial(&self, root: &Sha256) -> PathBuf {
        self.partial_dir()
            .join(format!("{}{PART_SUFFIX}", to_hex(root)))
    }

    /// `snapshots/<seq>`.
    pub fn snapshot(&self, seq: u64) -> PathBuf {
        self.snapshots().join(seq.to_string())
    }

    /// `snapshots/<seq>.tmp`, where a snapshot is assembled.
    pub fn snapshot_tmp(&self, seq: u64) -> PathBuf {
        self.snapshots().join(format!("{seq}{TMP_SUFFIX}"))
    }

    /// What `current` points to for `seq` (relative, so the data directory
    /// can be moved or mounted elsewhere).
    pub fn current_target(seq: u64) -> PathBuf {
        Path::new("snapshots").join(seq.to_string())
    }
}

/// The root an object file stands for, from its bucket and file name.
pub(crate) fn object_root(bucket: &str, name: &str) -> Option<Sha256> {
    if bucket.len() != 2 {
        return None;
    }
    from_hex::<32>(&format!("{bucket}{name}"))
}

/// The root a partial file stands for, from its file name.
pub(crate) fn partial_root(name: &str) -> Option<Sha256> {
    from_hex::<32>(name.strip_suffix(PART_SUFFIX)?)
}

/// The seq a `current` link target names.
pub(crate) fn parse_current_target(target: &Path) -> Option<u64> {
    let rest = target.strip_prefix("snapshots").ok()?;
    let s = rest.to_str()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        let l = Layout { dir: "/d".into() };
        let root = [0xab; 32];
        let p = l.object(&root);
        let bucket = p
            .parent()
            .and_then(|b| b.file_name())
            .and_then(|b| b.to_str());
        let name = p.file_name().and_then(|n| n.to_str());
        assert_eq!(bucket, Some("ab"));
        assert_eq!(object_root("ab", name.unwrap_or_default()), Some(root));
        assert_eq!(l.object_bucket(&root), l.objects().join("ab"));
        let part = l.partial(&root);
        let pname = part
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(partial_root(pname), Some(root));
    }

    #[test]
    fn current_targets_parse_strictly() {
        assert_eq!(parse_current_target(&Layout::current_target(42)), Some(42));
        assert_eq!(parse_current_target(Path::new("snapshots/4x")), None);
        assert_eq!(parse_current_target(Path::new("/etc")), None);
        assert_eq!(parse_current_target(Path::new("snapshots/1.tmp")), None);
    }
}
