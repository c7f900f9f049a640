//! The pieces root of an object, recorded on the object itself as the
//! extended attribute `user.swarmsync.root` (64 lowercase hex characters).
//!
//! Why: the LAN HTTP server serves snapshot paths, which are hard links to
//! objects, and wants a strong ETag that is the same on every node serving
//! the same content (clients behind DNS round-robin between two mirrors
//! must not re-download, and `If-Range` must hold across them). The root is
//! that tag, but from an open snapshot file the server cannot see the
//! object's name; one `fgetxattr` on the descriptor it already holds can.
//!
//! The attribute is an optimisation, never a requirement: a filesystem
//! without user xattrs (old tmpfs, some FUSE mounts) refuses it, and the
//! server then falls back to its inode-size-mtime tag. So setting it never
//! fails a store operation; a refusal is logged at debug level. It is not a
//! [`crate::disk::Disk`] mutation for the same reason: losing it in a crash
//! breaks no invariant, only the ETag optimisation of that one object.
//! `verify` checks that an attribute present matches the object's name.

use std::path::Path;

use rustix::fs::XattrFlags;
use torrent::hash::{Sha256, to_hex};

/// Name of the extended attribute holding an object's pieces root.
pub const ROOT_XATTR: &str = "user.swarmsync.root";

/// Records `root` on the file at `path` (the store does it for every
/// object it completes; public for tools and tests that build trees of
/// their own). For an object it must run while the file is still writable
/// by its owner (user xattrs need write permission) and before it is
/// fsynced and renamed into `objects/`, so it is durable with the file.
/// Returns whether the filesystem took it; a refusal is only logged.
pub fn record_root(path: &Path, root: &Sha256) -> bool {
    let hex = to_hex(root);
    match rustix::fs::setxattr(path, ROOT_XATTR, hex.as_bytes(), XattrFlags::empty()) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(
                "store: cannot record {ROOT_XATTR} on {}: {e} (ETag falls back to inode-size-mtime)",
                path.display()
            );
            false
        }
    }
}

/// The root recorded on the file at `path`, if it is well-formed.
pub fn recorded_root(path: &Path) -> Option<Sha256> {
    match read_root(path) {
        Recorded::Root(root) => Some(root),
        Recorded::Absent | Recorded::Malformed => None,
    }
}

/// What an object's attribute says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// No attribute, or a filesystem without user xattrs.
    Absent,
    /// A well-formed root.
    Root(Sha256),
    /// Something that is not 64 hex characters.
    Malformed,
}

/// Reads the attribute of the file at `path` (one `getxattr`, bounded to 64
/// bytes; a longer value is malformed).
pub(crate) fn read_root(path: &Path) -> Recorded {
    let mut buf = [0u8; 64];
    match rustix::fs::getxattr(path, ROOT_XATTR, &mut buf) {
        Ok(n) => parse_root(&buf[..n]).map_or(Recorded::Malformed, Recorded::Root),
        Err(rustix::io::Errno::RANGE) => Recorded::Malformed,
        Err(_) => Recorded::Absent,
    }
}

/// Exactly 64 hex digits (either case) as a root.
fn parse_root(value: &[u8]) -> Option<Sha256> {
    if value.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(value.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        let (hi, lo) = (digit(pair[0])?, digit(pair[1])?);
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_64_hex_digits() {
        let root = [0xabu8; 32];
        assert_eq!(parse_root(to_hex(&root).as_bytes()), Some(root));
        assert_eq!(
            parse_root(to_hex(&root).to_uppercase().as_bytes()),
            Some(root)
        );
        assert_eq!(parse_root(&[b'a'; 63]), None);
        assert_eq!(parse_root(&[b'a'; 65]), None);
        assert_eq!(parse_root(&[b'g'; 64]), None);
        assert_eq!(parse_root(b""), None);
    }

    #[test]
    fn round_trip_or_skip() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"x")?;
        assert_eq!(read_root(&path), Recorded::Absent);
        let root = [7u8; 32];
        if !record_root(&path, &root) {
            eprintln!("skipped: {} refuses user xattrs", dir.path().display());
            return Ok(());
        }
        assert_eq!(read_root(&path), Recorded::Root(root));
        assert_eq!(recorded_root(&path), Some(root));
        rustix::fs::setxattr(&path, ROOT_XATTR, b"nonsense", XattrFlags::empty())?;
        assert_eq!(read_root(&path), Recorded::Malformed);
        rustix::fs::setxattr(&path, ROOT_XATTR, &[b'a'; 100], XattrFlags::empty())?;
        assert_eq!(read_root(&path), Recorded::Malformed);
        Ok(())
    }

    /// A file downloaded into a store, completed: returns its root.
    fn complete_one(store: &mut crate::Store, data: &[u8]) -> Sha256 {
        let piece_len = 16 * 1024;
        let h = torrent::merkle::hash_bytes(data, piece_len);
        let root = h.root.expect("non-empty");
        let spec = crate::FileSpec {
            root,
            length: data.len() as u64,
            piece_len,
            piece_layer: h.piece_layer,
        };
        store.begin_file(spec).expect("begin");
        for (i, piece) in (0u32..).zip(data.chunks(piece_len as usize)) {
            store.write_piece(&root, i, piece).expect("piece");
        }
        store.complete_file(&root).expect("complete");
        root
    }

    #[test]
    fn completed_objects_carry_their_root_and_verify_checks_it() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"")?;
        if !record_root(&probe, &[0u8; 32]) {
            eprintln!("skipped: {} refuses user xattrs", dir.path().display());
            return Ok(());
        }
        let mut store = crate::Store::open(dir.path().join("data")).expect("open");
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let root = complete_one(&mut store, &data);
        let object = store.object_path(&root);
        assert_eq!(read_root(&object), Recorded::Root(root));
        // Read-only, like every object.
        assert!(std::fs::metadata(&object)?.permissions().readonly());
        assert!(store.verify().expect("verify").is_clean());

        // An attribute naming another root, or garbage: a fault each.
        let other = to_hex(&[0x11u8; 32]);
        rustix::fs::setxattr(&object, ROOT_XATTR, other.as_bytes(), XattrFlags::empty())?;
        let report = store.verify().expect("verify");
        assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
        assert!(
            report.faults[0].problem.contains(&other),
            "{:?}",
            report.faults
        );
        rustix::fs::setxattr(&object, ROOT_XATTR, b"zz", XattrFlags::empty())?;
        let report = store.verify().expect("verify");
        assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
        // No attribute (a store from before, or a filesystem without
        // xattrs) is no fault.
        rustix::fs::removexattr(&object, ROOT_XATTR)?;
        assert!(store.verify().expect("verify").is_clean());
        Ok(())
    }
}
