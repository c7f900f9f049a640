//! Conditional requests and byte ranges (RFC 9110 §13 and §14), as pure
//! functions of the request headers and the file's validators.
//!
//! Kept apart from the server so every precondition order and range edge case
//! is a unit test, not a socket test. The evaluation order is the RFC's:
//! If-Match, If-Unmodified-Since (→ 412), If-None-Match, If-Modified-Since
//! (→ 304), then Range guarded by If-Range. Resumes depend on this: apt and
//! curl send `Range` with `If-Range`, and a client holding the prefix of an
//! older file must get the whole new file (200), never a splice of the two.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, quotes included: `"…"`.
    pub etag: String,
    /// Modification time, truncated to whole seconds (HTTP dates have no more).
    pub modified: SystemTime,
}

/// The extended attribute in which the store records an object's v2
/// pieces root (64 hex digits); the same name as `store::ROOT_XATTR`,
/// repeated here so the server does not depend on the store.
pub const ROOT_XATTR: &str = "user.swarmsync.root";

impl Validators {
    /// Validators of an open file: the ETag is its v2 pieces root when the
    /// store recorded one on it (the same on every node serving the same
    /// content, so a client moving between LAN mirrors keeps its cache and
    /// its `If-Range`), else [`Validators::from_metadata`]'s. One
    /// `fgetxattr` on the descriptor already open: blocking work, like the
    /// open itself.
    pub fn from_file(file: &std::fs::File, meta: &std::fs::Metadata) -> Self {
        let mut v = Self::from_metadata(meta);
        if let Some(root) = recorded_root(file) {
            v.etag = format!("\"{root}\"");
        }
        v
    }

    /// Validators from file metadata alone: the ETag is made from inode,
    /// size and modification time in nanoseconds. Files in a snapshot are
    /// immutable, so this changes exactly when the content does, but it
    /// differs between nodes; the fallback for files without a recorded
    /// root (filesystems without user xattrs, trees not from a store).
    pub fn from_metadata(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let nanos = meta.mtime() as i128 * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let etag = format!("\"{:x}-{:x}-{:x}\"", meta.ino(), meta.size(), nanos);
        let modified = meta.modified().map(whole_seconds).unwrap_or(UNIX_EPOCH);
        Validators { etag, modified }
    }

    /// The `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// The root recorded on `file`, in lowercase hex, if the attribute is
/// exactly 64 hex digits. The read is bounded: a longer value fails with
/// ERANGE and counts as absent, like any other error.
fn recorded_root(file: &std::fs::File) -> Option<String> {
    let mut buf = [0u8; 64];
    match rustix::fs::fgetxattr(file, ROOT_XATTR, &mut buf) {
        Ok(64) if buf.iter().all(u8::is_ascii_hexdigit) => Some(
            buf.iter()
                .map(|b| char::from(b.to_ascii_lowercase()))
                .collect(),
        ),
        Ok(_) => None,
        // Not recorded, or a filesystem without user xattrs: expected.
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => None,
        Err(e) => {
            tracing::debug!("http: cannot read {ROOT_XATTR}: {e}");
            None
        }
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// The outcome of the preconditions for a GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (possibly a range of it).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One value of an If-Match / If-None-Match list.
fn etag_list(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut any = false;
    for value in headers.get_all(name) {
        any = true;
        // A header that is not visible ASCII matches nothing.
        let Ok(s) = value.to_str() else { continue };
        out.extend(
            s.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        );
    }
    any.then_some(out)
}

fn strong_match(list: &[String], etag: &str) -> bool {
    list.iter().any(|t| t == "*" || t == etag)
}

fn weak_match(list: &[String], etag: &str) -> bool {
    list.iter()
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    // An unparsable date is ignored, as the RFC requires.
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
pub fn evaluate(headers: &HeaderMap, v: &Validators) -> Precondition {
    if let Some(list) = etag_list(headers, header::IF_MATCH) {
        if !strong_match(&list, &v.etag) {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, header::IF_UNMODIFIED_SINCE)
        && v.modified > since
    {
        return Precondition::Failed;
    }
    if let Some(list) = etag_list(headers, header::IF_NONE_MATCH) {
        if weak_match(&list, &v.etag) {
            return Precondition::NotModified;
        }
    } else if let Some(since) = date(headers, header::IF_MODIFIED_SINCE)
        && v.modified <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// True when If-None-Match lists `etag` (weak comparison) or `*`: a GET
/// of a generated page with that tag gets 304.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    etag_list(headers, header::IF_NONE_MATCH).is_some_and(|list| weak_match(&list, etag))
}

/// What to send for a GET, given its Range and If-Range headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides the range to send. Ranges we do not support (other units, more
/// than one range, bad syntax) are ignored and the whole file is sent, which
/// the RFC allows; only a well-formed single range that misses the file is a
/// 416.
pub fn range(headers: &HeaderMap, v: &Validators, len: u64) -> RangeDecision {
    let Some(value) = headers.get(header::RANGE) else {
        return RangeDecision::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && !if_range_holds(if_range, v)
    {
        return RangeDecision::Full;
    }
    match parse_range(value, len) {
        Some(Some((start, end))) => RangeDecision::Partial { start, end },
        Some(None) => RangeDecision::Unsatisfiable,
        None => RangeDecision::Full,
    }
}

/// If-Range holds when it is our strong ETag, or exactly our Last-Modified
/// date (a date is only a strong validator when it is not in the same second
/// as now; our files are published before they are served, so it is).
fn if_range_holds(value: &HeaderValue, v: &Validators) -> bool {
    let Ok(s) = value.to_str() else { return false };
    let s = s.trim();
    if s.starts_with('"') || s.starts_with("W/") {
        return s == v.etag;
    }
    httpdate::parse_http_date(s).is_ok_and(|d| d == v.modified)
}

/// `None`: ignore the header. `Some(None)`: unsatisfiable.
/// `Some(Some((start, end)))`: inclusive byte range inside the file.
fn parse_range(value: &HeaderValue, len: u64) -> Option<Option<(u64, u64)>> {
    let s = value.to_str().ok()?.trim();
    let (unit, spec) = s.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(last) {
            return None;
        }
        let n: u64 = last.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len.saturating_sub(n), len - 1)));
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return None;
    }
    // A start too large for u64 is beyond any file: unsatisfiable.
    let Ok(start) = first.parse::<u64>() else {
        return Some(None);
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        // An end too large for u64 means "to the end".
        last.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(None);
    }
    Some(Some((start, end.min(len - 1))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v() -> Validators {
        Validators {
            etag: "\"abc\"".into(),
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            let name = header::HeaderName::from_bytes(k.as_bytes()).expect("test header name");
            h.append(name, HeaderValue::from_str(val).expect("test header value"));
        }
        h
    }

    #[test]
    fn the_recorded_root_is_the_etag() -> std::io::Result<()> {
        use rustix::fs::{XattrFlags, fsetxattr};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"content")?;
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        let plain = Validators::from_metadata(&meta);
        assert_eq!(Validators::from_file(&file, &meta), plain, "no attribute");
        let root = "0123456789abcdef".repeat(4);
        if let Err(e) = fsetxattr(&file, ROOT_XATTR, root.as_bytes(), XattrFlags::empty()) {
            eprintln!("skipped: {} refuses user xattrs: {e}", dir.path().display());
            return Ok(());
        }
        let v = Validators::from_file(&file, &meta);
        assert_eq!(v.etag, format!("\"{root}\""));
        assert_eq!(v.modified, plain.modified);
        // Upper case is the same root.
        fsetxattr(
            &file,
            ROOT_XATTR,
            root.to_uppercase().as_bytes(),
            XattrFlags::empty(),
        )?;
        assert_eq!(Validators::from_file(&file, &meta).etag, v.etag);
        // Anything but 64 hex digits: the metadata tag.
        for bad in [&root.as_bytes()[..63], &[b'g'; 64], &[b'a'; 65], b"\"x\""] {
            fsetxattr(&file, ROOT_XATTR, bad, XattrFlags::empty())?;
            assert_eq!(Validators::from_file(&file, &meta), plain, "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn preconditions_in_rfc_order() {
        use Precondition::*;
        let lm = v().last_modified();
        let older = httpdate::fmt_http_date(v().modified - Duration::from_secs(10));
        let newer = httpdate::fmt_http_date(v().modified + Duration::from_secs(10));
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[], Proceed),
            (&[("if-match", "\"abc\"")], Proceed),
            (&[("if-match", "*")], Proceed),
            (&[("if-match", "\"x\", \"abc\"")], Proceed),
            (&[("if-match", "\"x\"")], Failed),
            (&[("if-match", "W/\"abc\"")], Failed),
            (&[("if-unmodified-since", &older)], Failed),
            (&[("if-unmodified-since", &lm)], Proceed),
            (&[("if-unmodified-since", "garbage")], Proceed),
            (&[("if-none-match", "\"abc\"")], NotModified),
            (&[("if-none-match", "W/\"abc\"")], NotModified),
            (&[("if-none-match", "*")], NotModified),
            (&[("if-none-match", "\"x\"")], Proceed),
            (&[("if-modified-since", &lm)], NotModified),
            (&[("if-modified-since", &newer)], NotModified),
            (&[("if-modified-since", &older)], Proceed),
            (&[("if-modified-since", "not a date")], Proceed),
            // If-None-Match wins over If-Modified-Since.
            (
                &[("if-none-match", "\"x\""), ("if-modified-since", &lm)],
                Proceed,
            ),
            // 412 before 304.
            (
                &[("if-match", "\"x\""), ("if-none-match", "\"abc\"")],
                Failed,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(evaluate(&headers(h), &v()), *want, "{h:?}");
        }
    }

    #[test]
    fn ranges() {
        use RangeDecision::*;
        let lm = v().last_modified();
        let cases: &[(&[(&str, &str)], RangeDecision)] = &[
            (&[], Full),
            (&[("range", "bytes=0-9")], Partial { start: 0, end: 9 }),
            (&[("range", "bytes=10-")], Partial { start: 10, end: 99 }),
            (&[("range", "bytes=-10")], Partial { start: 90, end: 99 }),
            (&[("range", "bytes=-1000")], Partial { start: 0, end: 99 }),
            (
                &[("range", "bytes=50-5000")],
                Partial { start: 50, end: 99 },
            ),
            (&[("range", "bytes=99-99")], Partial { start: 99, end: 99 }),
            (&[("range", "BYTES = 1-2")], Partial { start: 1, end: 2 }),
            (
                &[("range", "bytes=0-99999999999999999999999")],
                Partial { start: 0, end: 99 },
            ),
            (&[("range", "bytes=100-")], Unsatisfiable),
            (&[("range", "bytes=100-200")], Unsatisfiable),
            (&[("range", "bytes=-0")], Unsatisfiable),
            (
                &[("range", "bytes=99999999999999999999999-")],
                Unsatisfiable,
            ),
            (&[("range", "bytes=5-1")], Full),
            (&[("range", "bytes=0-1,5-6")], Full),
            (&[("range", "items=0-1")], Full),
            (&[("range", "bytes=a-b")], Full),
            (&[("range", "bytes=+1-2")], Full),
            (&[("range", "bytes=-")], Full),
            (
                &[("range", "bytes=0-9"), ("if-range", "\"abc\"")],
                Partial { start: 0, end: 9 },
            ),
            (&[("range", "bytes=0-9"), ("if-range", "\"old\"")], Full),
            (&[("range", "bytes=0-9"), ("if-range", "W/\"abc\"")], Full),
            (
                &[("range", "bytes=0-9"), ("if-range", &lm)],
                Partial { start: 0, end: 9 },
            ),
            (
                &[
                    ("range", "bytes=0-9"),
                    ("if-range", "Sat, 01 Jan 2000 00:00:00 GMT"),
                ],
                Full,
            ),
            (&[("range", "bytes=0-9"), ("if-range", "junk")], Full),
        ];
        for (h, want) in cases {
            assert_eq!(range(&headers(h), &v(), 100), *want, "{h:?}");
        }
        assert_eq!(
            range(&headers(&[("range", "bytes=0-")]), &v(), 0),
            Unsatisfiable
        );
        assert_eq!(
            range(&headers(&[("range", "bytes=-5")]), &v(), 0),
            Unsatisfiable
        );
    }
}
