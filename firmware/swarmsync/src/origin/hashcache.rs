//! The origin's memory of what it hashed last time.
//!
//! ftpsync and reposync touch a few files of a multi-gigabyte tree per run;
//! re-reading the rest on every publication would make the origin's disk,
//! not its uplink, the bottleneck. A file whose path, size, mtime (to the
//! nanosecond) and inode are unchanged is taken as unchanged, which is the
//! same trust rsync's quick check puts in them.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, TableDefinition};
use torrent::create::FileHashes;

/// path → encoded [`Entry`].
const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }
}

pub struct HashCache {
    db: Database,
}

impl HashCache {
    pub fn open(path: &Path) -> Result<HashCache> {
        let db = Database::builder()
            .set_cache_size(4 << 20)
            .create(path)
            .with_context(|| format!("cannot open hash cache {}", path.display()))?;
        Ok(HashCache { db })
    }

    /// The cached hashes of `path` if they were made from this very file.
    pub fn get(&self, path: &str, stamp: Stamp) -> Result<Option<FileHashes>> {
        let tx = self.db.begin_read()?;
        let table = match tx.open_table(FILES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(v) = table.get(path)? else {
            return Ok(None);
        };
        Ok(decode(v.value()).and_then(|(s, h)| (s == stamp).then_some(h)))
    }

    /// Replaces the whole cache with `entries` (files no longer in the
    /// tree are forgotten).
    pub fn replace_all<'a>(
        &self,
        entries: impl Iterator<Item = (&'a str, Stamp, &'a FileHashes)>,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.delete_table(FILES)?;
        {
            let mut table = tx.open_table(FILES)?;
            for (path, stamp, h) in entries {
                table.insert(path, encode(stamp, h).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn encode(s: Stamp, h: &FileHashes) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + h.v2.len() * 32 + h.v1.len() * 20);
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.mtime_ns.to_le_bytes());
    out.extend_from_slice(&s.ino.to_le_bytes());
    out.extend_from_slice(&h.piece_length.to_le_bytes());
    out.extend_from_slice(&(h.v2.len() as u32).to_le_bytes());
    out.extend_from_slice(&(h.v1.len() as u32).to_le_bytes());
    for x in &h.v2 {
        out.extend_from_slice(x);
    }
    for x in &h.v1 {
        out.extend_from_slice(x);
    }
    out
}

fn decode(b: &[u8]) -> Option<(Stamp, FileHashes)> {
    let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let stamp = Stamp {
        size: u64_at(0)?,
        mtime_ns: i128::from_le_bytes(b.get(8..24)?.try_into().ok()?),
        ino: u64_at(24)?,
    };
    let piece_length = u64_at(32)?;
    let n2 = u32_at(40)? as usize;
    let n1 = u32_at(44)? as usize;
    let body = b.get(48..)?;
    if body.len() != n2.checked_mul(32)?.checked_add(n1.checked_mul(20)?)? {
        return None;
    }
    let (v2b, v1b) = body.split_at(n2 * 32);
    let v2 = v2b
        .chunks_exact(32)
        .map(|c| c.try_into().ok())
        .collect::<Option<Vec<_>>>()?;
    let v1 = v1b
        .chunks_exact(20)
        .map(|c| c.try_into().ok())
        .collect::<Option<Vec<_>>>()?;
    Some((
        stamp,
        FileHashes {
            piece_length,
            v2,
            v1,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_stamp() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = HashCache::open(&dir.path().join("c.redb")).expect("open");
        let s = Stamp {
            size: 5,
            mtime_ns: -3,
            ino: 9,
        };
        let h = FileHashes {
            piece_length: 16384,
            v2: vec![[1; 32], [2; 32]],
            v1: vec![[3; 20], [4; 20]],
        };
        assert_eq!(c.get("a", s).expect("get"), None);
        c.replace_all([("a", s, &h)].into_iter()).expect("put");
        assert_eq!(c.get("a", s).expect("get"), Some(h.clone()));
        assert_eq!(c.get("a", Stamp { ino: 8, ..s }).expect("get"), None);
        c.replace_all(std::iter::empty()).expect("clear");
        assert_eq!(c.get("a", s).expect("get"), None);
        assert!(decode(&[0; 10]).is_none());
    }
}
