//! by-hash files across snapshots (design.md, "Consistency for clients").
//!
//! apt with `Acquire-By-Hash` asks for an index by its hash
//! (`…/binary-armhf/by-hash/SHA256/<hex>`) after reading InRelease. If the
//! node switches snapshots between those two requests, the client's
//! snapshot may no longer be the one that has the file, or the new InRelease
//! may name a file only the new snapshot has while the client is pinned to
//! the old one. Either way the file exists in some retained snapshot, and
//! since its name is its hash, any snapshot's copy is the right content.
//! So a by-hash file missing from the snapshot that served the request is
//! looked up in the other snapshots of the mount's snapshots directory,
//! newest first, each resolved with the same rules as any request (a
//! snapshot is a root; nothing outside it can be reached).

use std::path::{Path, PathBuf};

/// Hash directories apt uses under `by-hash/`.
const ALGORITHMS: [&str; 4] = ["SHA256", "SHA512", "MD5Sum", "SHA1"];

/// Most snapshots looked at for one request: a store keeps a few, and a
/// by-hash 404 (any client can ask for random digests) costs one walk per
/// snapshot looked at.
pub const MAX_SNAPSHOTS: usize = 16;

/// True when `rest` ends in `by-hash/<ALGO>/<hex digest>`.
pub fn is_by_hash(rest: &[String]) -> bool {
    let [.., by_hash, algo, digest] = rest else {
        return false;
    };
    by_hash == "by-hash"
        && ALGORITHMS.contains(&algo.as_str())
        && matches!(digest.len(), 32 | 40 | 64 | 128)
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot directories under `snapshots`, newest first: numeric names
/// (the store's `<seq>`) by descending number, then other names by
/// descending name; symlinks, files, hidden names and `*.tmp` (a snapshot
/// the store is still building) are skipped. At most [`MAX_SNAPSHOTS`].
/// Blocking.
pub fn newest_first(snapshots: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<(Option<u64>, String)> = Vec::new();
    for entry in std::fs::read_dir(snapshots)? {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        found.push((name.parse().ok(), name));
        // Bounded work per request, whatever is in the directory.
        if found.len() > 16 * MAX_SNAPSHOTS {
            break;
        }
    }
    // `Some` sorts after `None`, so reversing puts numbers first.
    found.sort();
    Ok(found
        .into_iter()
        .rev()
        .take(MAX_SNAPSHOTS)
        .map(|(_, name)| snapshots.join(name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn by_hash_paths() {
        let h64 = "a".repeat(64);
        assert!(is_by_hash(&seg(&format!(
            "dists/x/main/by-hash/SHA256/{h64}"
        ))));
        assert!(is_by_hash(&seg(&format!(
            "by-hash/MD5Sum/{}",
            "0f".repeat(16)
        ))));
        assert!(is_by_hash(&seg(&format!(
            "by-hash/SHA512/{}",
            "E".repeat(128)
        ))));
        assert!(!is_by_hash(&seg(&format!("by-hash/SHA256/{h64}/x"))));
        assert!(!is_by_hash(&seg(&format!("by-hash/sha256/{h64}"))));
        assert!(!is_by_hash(&seg(&format!(
            "by-hash/SHA256/{}",
            "g".repeat(64)
        ))));
        assert!(!is_by_hash(&seg("by-hash/SHA256/abc")));
        assert!(!is_by_hash(&seg(&format!("hash/SHA256/{h64}"))));
        assert!(!is_by_hash(&seg(&format!("SHA256/{h64}"))));
        assert!(!is_by_hash(&[]));
    }

    #[test]
    fn order() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for d in ["9", "10", "2", "old", "tmp.x", "11.tmp", ".hidden"] {
            std::fs::create_dir(dir.path().join(d))?;
        }
        std::fs::write(dir.path().join("11"), b"a file")?;
        std::os::unix::fs::symlink("10", dir.path().join("12"))?;
        let names: Vec<String> = newest_first(dir.path())?
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect();
        assert_eq!(names, ["10", "9", "2", "tmp.x", "old"]);
        assert!(newest_first(&dir.path().join("missing")).is_err());
        Ok(())
    }
}
