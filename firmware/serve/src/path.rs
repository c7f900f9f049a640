//! From a request target to a file inside one mount's root, and never outside.
//!
//! Two stages, so the dangerous part stays small and testable without a
//! server:
//!
//! 1. [`decode`] is pure: it splits the raw (still percent-encoded) path on
//!    `/` *before* decoding, decodes each segment exactly once and rejects,
//!    rather than repairs, anything ambiguous: malformed escapes, an encoded
//!    `/` or `\`, `.` and `..`, NUL and other control bytes, invalid or
//!    overlong UTF-8 (Rust's UTF-8 check refuses overlong forms), and a
//!    segment that still holds an escape after decoding (`%252e` →
//!    `%2e`), because some other layer might decode it a second time.
//!    Splitting first means an encoded slash can never create a new
//!    segment, and refusing `..` means the joined path can only go down.
//! 2. [`resolve`] touches the disk: it canonicalizes the mount root once
//!    per request (the root may be `<data>/current`, a symlink that moves
//!    when a snapshot is switched, so the request is pinned to the snapshot
//!    it resolved), then walks the segments down from it with `lstat`; at a
//!    symlink it canonicalizes the path so far (following every link) and
//!    requires the result to still lie under the canonical root, then
//!    walks on from there. Symlinks inside the tree (Debian's
//!    `stable -> bookworm`) keep working; one that leads outside is
//!    reported as not found, so its existence does not leak.
//!
//! Snapshot trees are immutable once published, so the window between the
//! check and the `open` has nothing to race with in normal operation.

use std::path::{Path, PathBuf};

/// Why a request path was refused before touching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not an origin-form path (`*`, empty, no leading `/`).
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// An encoded `/` or a `\` (encoded or not) inside a segment.
    Separator,
    /// `.` or `..` as a segment (after decoding).
    DotSegment,
    /// NUL or another control byte.
    Control,
    /// The decoded bytes are not (shortest-form) UTF-8.
    NotUtf8,
    /// The decoded segment still contains a percent escape (double encoding).
    DoubleEncoded,
}

/// A decoded request path: non-empty segments, and whether it ended in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Segments, each a plain file name (no `/`, `\`, NUL, `.` or `..`).
    pub segments: Vec<String>,
    /// The raw path ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
}

/// Splits and percent-decodes a raw origin-form path (without the query).
pub fn decode(raw: &str) -> Result<Decoded, Reject> {
    let rest = raw.strip_prefix('/').ok_or(Reject::NotAbsolute)?;
    let mut segments = Vec::new();
    for raw_segment in rest.split('/') {
        // Empty segments (`//`) add nothing to a path; they are skipped
        // rather than rejected because some clients join URLs sloppily.
        if raw_segment.is_empty() {
            continue;
        }
        let bytes = percent_decode_strict(raw_segment.as_bytes())?;
        let segment = String::from_utf8(bytes).map_err(|_| Reject::NotUtf8)?;
        if segment == "." || segment == ".." {
            return Err(Reject::DotSegment);
        }
        if segment.contains(['/', '\\']) {
            return Err(Reject::Separator);
        }
        if segment.chars().any(char::is_control) {
            return Err(Reject::Control);
        }
        if has_escape(segment.as_bytes()) {
            return Err(Reject::DoubleEncoded);
        }
        segments.push(segment);
    }
    Ok(Decoded {
        segments,
        trailing_slash: raw.ends_with('/'),
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode_strict(input: &[u8]) -> Result<Vec<u8>, Reject> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex);
            let lo = input.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(Reject::BadEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

fn has_escape(s: &[u8]) -> bool {
    s.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

/// A path that resolved inside its root.
#[derive(Debug)]
pub struct Resolved {
    /// The canonical root this request is pinned to.
    pub root: PathBuf,
    /// The canonical target, under `root`.
    pub path: PathBuf,
    /// The target's metadata, when the walk already has it (its last
    /// segment was not a symlink), saving a `stat`.
    pub meta: Option<std::fs::Metadata>,
}

/// The canonical form of a mount root, remembered between requests.
///
/// `canonicalize` of `<data>/current` walks every component from `/` (one
/// `lstat` each, plus a `readlink` per symlink): most of the system calls of
/// a small request. The canonical root only changes when a symlink on the
/// way changes, and the one that does is the root itself (`current`,
/// switched by rename), so the memo is keyed by the root's link target:
/// one `readlink` per request, a full `canonicalize` only when the target
/// differs. Snapshot directory names are never reused, so an unchanged
/// target means an unchanged snapshot. (A symlink above the root that is
/// changed while the server runs is not seen; mount roots are set once.)
#[derive(Debug, Default)]
pub struct RootMemo(std::sync::Mutex<Option<(Option<std::ffi::OsString>, PathBuf)>>);

impl RootMemo {
    /// `root` canonicalized. Blocking.
    pub fn canonical(&self, root: &Path) -> std::io::Result<PathBuf> {
        use std::sync::PoisonError;
        let target = || std::fs::read_link(root).ok().map(PathBuf::into_os_string);
        let before = target();
        if let Some((t, canonical)) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && *t == before
        {
            return Ok(canonical.clone());
        }
        let canonical = std::fs::canonicalize(root)?;
        // Remembered only if the link did not move meanwhile.
        if target() == before {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((before, canonical.clone()));
        }
        Ok(canonical)
    }
}

/// Resolves `segments` under `root`, following symlinks only while they stay
/// inside it. `Ok(None)` means "not found" (including "leads outside").
/// Blocking: call from a blocking thread.
pub fn resolve(root: &Path, segments: &[String]) -> std::io::Result<Option<Resolved>> {
    resolve_in(std::fs::canonicalize(root)?, segments)
}

/// [`resolve`] under a root that is already canonical (a pinned snapshot).
pub fn resolve_in(root: PathBuf, segments: &[String]) -> std::io::Result<Option<Resolved>> {
    // One `lstat` per segment below the root, instead of a `realpath` of the
    // whole path (one `lstat` per component from `/`): the common case has
    // no symlinks at all. A symlink is followed by canonicalizing the path
    // so far, and the prefix check is repeated on the result.
    let mut path = root.clone();
    let mut last = None;
    for (i, segment) in segments.iter().enumerate() {
        path.push(segment);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        last = None;
        if meta.file_type().is_symlink() {
            path = match std::fs::canonicalize(&path) {
                Ok(path) => path,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            if !path.starts_with(&root) {
                return Ok(None);
            }
        } else if i + 1 < segments.len() && !meta.is_dir() {
            // A file used as a directory.
            return Ok(None);
        } else {
            last = Some(meta);
        }
    }
    Ok(Some(Resolved {
        root,
        path,
        meta: last,
    }))
}

/// True when `path` (a child of a directory under `root`) resolves inside
/// `root`; used to hide outward symlinks from directory listings.
pub fn stays_inside(root: &Path, path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(root))
}

fn is_not_found(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    // ENOTDIR (a file used as a directory) and ELOOP (a symlink cycle) are
    // both "there is no such file" to a client.
    // 40 is ELOOP on Linux (io::ErrorKind::FilesystemLoop is not stable).
    matches!(e.kind(), NotFound | NotADirectory) || e.raw_os_error() == Some(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<String> {
        decode(raw).map(|d| d.segments).unwrap_or_default()
    }

    #[test]
    fn plain_and_encoded_paths() {
        assert_eq!(ok("/debian/pool/a+b.deb"), ["debian", "pool", "a+b.deb"]);
        assert_eq!(ok("/debian/pool/a%2bb.deb"), ["debian", "pool", "a+b.deb"]);
        assert_eq!(ok("/debian//x/"), ["debian", "x"]);
        assert_eq!(ok("/a%20b"), ["a b"]);
        assert_eq!(ok("/caf%C3%A9"), ["café"]);
        assert_eq!(ok("/..."), ["..."]);
        assert!(decode("/d/").is_ok_and(|d| d.trailing_slash));
        assert!(decode("/d").is_ok_and(|d| !d.trailing_slash));
        assert!(decode("/").is_ok_and(|d| d.segments.is_empty()));
        // A lone percent sign not followed by hex is a malformed escape.
        assert_eq!(decode("/100%"), Err(Reject::BadEscape));
    }

    #[test]
    fn hostile_paths_are_rejected() {
        use Reject::*;
        let cases = [
            ("*", NotAbsolute),
            ("", NotAbsolute),
            ("debian/x", NotAbsolute),
            ("/debian/../etc", DotSegment),
            ("/debian/./x", DotSegment),
            ("/debian/%2e%2e/etc", DotSegment),
            ("/debian/%2E%2E/etc", DotSegment),
            ("/debian/.%2e/etc", DotSegment),
            ("/debian/%2e", DotSegment),
            ("/..", DotSegment),
            ("/debian/..%2f..%2fetc", Separator),
            ("/debian/%2f", Separator),
            ("/debian/..%5c..%5cetc", Separator),
            ("/debian/a\\b", Separator),
            ("/debian/a%00b", Control),
            ("/debian/a%0ab", Control),
            ("/debian/a%7f", Control),
            ("/debian/%c0%ae%c0%ae/etc", NotUtf8),
            ("/debian/%e0%80%ae", NotUtf8),
            ("/debian/%ff", NotUtf8),
            ("/debian/%252e%252e/etc", DoubleEncoded),
            ("/debian/%25%32%65", DoubleEncoded),
            ("/debian/%zz", BadEscape),
            ("/debian/%2", BadEscape),
        ];
        for (raw, want) in cases {
            assert_eq!(decode(raw), Err(want), "{raw:?}");
        }
    }

    /// Random paths over an alphabet rich in separators, dots and escapes:
    /// whatever decodes must be plain names, and must resolve inside the root.
    #[test]
    fn random_paths_never_escape() -> std::io::Result<()> {
        const PIECES: &[&str] = &[
            "/",
            "/",
            ".",
            ".",
            "..",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "\\",
            "%25",
            "%00",
            "%c0%ae",
            "%c0%af",
            "%e0%80%ae",
            "a",
            "b",
            "secret",
            "link",
            "up",
            "%",
            "2",
            "e",
            "f",
            "%ff",
            "~",
        ];
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b"))?;
        std::fs::write(dir.path().join("secret"), b"x")?;
        std::os::unix::fs::symlink("..", root.join("a/up"))?;
        std::os::unix::fs::symlink("../secret", root.join("link"))?;
        let canonical_root = std::fs::canonicalize(&root)?;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut decoded_ok = 0;
        for _ in 0..20_000 {
            let mut raw = String::from("/");
            for _ in 0..(next() % 8 + 1) {
                raw.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let Ok(d) = decode(&raw) else { continue };
            decoded_ok += 1;
            for seg in &d.segments {
                assert!(
                    seg != "." && seg != ".." && !seg.is_empty(),
                    "{raw:?} -> {seg:?}"
                );
                assert!(!seg.contains(['/', '\\', '\0']), "{raw:?} -> {seg:?}");
            }
            if let Some(r) = resolve(&root, &d.segments)? {
                assert!(
                    r.path.starts_with(&canonical_root),
                    "{raw:?} escaped to {:?}",
                    r.path
                );
            }
        }
        assert!(
            decoded_ok > 1_000,
            "the generator hardly produced valid paths"
        );
        Ok(())
    }

    #[test]
    fn resolve_stays_inside_root() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub"))?;
        std::fs::write(root.join("sub/f"), b"in")?;
        std::fs::write(dir.path().join("secret"), b"out")?;
        std::os::unix::fs::symlink("sub", root.join("alias"))?;
        std::os::unix::fs::symlink("../secret", root.join("escape"))?;
        std::os::unix::fs::symlink("/", root.join("slash"))?;
        std::os::unix::fs::symlink("loop", root.join("loop"))?;
        let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let found = resolve(&root, &seg(&["alias", "f"]))?;
        assert!(found.is_some_and(|r| r.path.ends_with("sub/f")));
        assert!(resolve(&root, &seg(&["escape"]))?.is_none());
        assert!(resolve(&root, &seg(&["slash", "etc", "passwd"]))?.is_none());
        assert!(resolve(&root, &seg(&["loop"]))?.is_none());
        assert!(resolve(&root, &seg(&["sub", "f", "x"]))?.is_none());
        assert!(resolve(&root, &seg(&["missing"]))?.is_none());
        assert!(stays_inside(
            &std::fs::canonicalize(&root)?,
            &root.join("alias")
        ));
        assert!(!stays_inside(
            &std::fs::canonicalize(&root)?,
            &root.join("escape")
        ));
        Ok(())
    }

    #[test]
    fn root_memo_follows_the_link() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for snap in ["1", "2"] {
            std::fs::create_dir(dir.path().join(snap))?;
        }
        let current = dir.path().join("current");
        std::os::unix::fs::symlink("1", &current)?;
        let memo = RootMemo::default();
        let base = std::fs::canonicalize(dir.path())?;
        assert_eq!(memo.canonical(&current)?, base.join("1"));
        assert_eq!(memo.canonical(&current)?, base.join("1"));
        std::os::unix::fs::symlink("2", dir.path().join("tmp"))?;
        std::fs::rename(dir.path().join("tmp"), &current)?;
        assert_eq!(memo.canonical(&current)?, base.join("2"));
        // A plain directory root.
        let plain = RootMemo::default();
        assert_eq!(plain.canonical(&dir.path().join("1"))?, base.join("1"));
        let missing = RootMemo::default();
        assert!(missing.canonical(&dir.path().join("missing")).is_err());
        // Metadata comes with the walk unless the last step is a symlink.
        std::fs::write(dir.path().join("2/f"), b"x")?;
        std::os::unix::fs::symlink("f", dir.path().join("2/l"))?;
        let f = resolve(&current, &["f".to_string()])?;
        assert!(f.is_some_and(|r| r.meta.is_some_and(|m| m.len() == 1)));
        let l = resolve(&current, &["l".to_string()])?;
        assert!(l.is_some_and(|r| r.meta.is_none() && r.path.ends_with("2/f")));
        Ok(())
    }

    #[test]
    fn root_symlink_is_followed_per_request() -> std::io::Result<()> {
        // The node's roots are `<data>/current`, a symlink switched by rename.
        let dir = tempfile::tempdir()?;
        for (snap, body) in [("1", "one"), ("2", "two")] {
            std::fs::create_dir(dir.path().join(snap))?;
            std::fs::write(dir.path().join(snap).join("f"), body)?;
        }
        let current = dir.path().join("current");
        std::os::unix::fs::symlink("1", &current)?;
        let seg = vec!["f".to_string()];
        let first = resolve(&current, &seg)?.map(|r| r.path);
        std::os::unix::fs::symlink("2", dir.path().join("tmp"))?;
        std::fs::rename(dir.path().join("tmp"), &current)?;
        let second = resolve(&current, &seg)?.map(|r| r.path);
        assert!(first.is_some_and(|p| p.ends_with("1/f")));
        assert!(second.is_some_and(|p| p.ends_with("2/f")));
        Ok(())
    }
}
