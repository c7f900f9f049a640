//! Directory listings, as HTML for people and JSON for scripts.
//!
//! Entries are read and sorted by name in one pass on a blocking thread; the
//! count is capped so a hostile or accidental huge directory cannot make one
//! request allocate without bound (a mirror's largest pool directories hold a
//! few thousand entries). Symlinks are shown only when they resolve inside
//! the tree, and with their target's type and size, so a listing reveals
//! nothing a GET would not.

use std::fmt::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::path::stays_inside;

/// Most entries one listing shows.
pub const MAX_ENTRIES: usize = 100_000;

/// Bytes that stay literal in an href segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment for a URL.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// One line of a listing.
#[derive(Debug)]
pub struct Entry {
    /// File name (UTF-8; other names are skipped: they cannot be requested).
    pub name: String,
    /// A directory (after following a symlink inside the tree).
    pub dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// Reads `dir` (canonical, under the canonical `root`). Blocking.
pub fn read(root: &Path, dir: &Path) -> std::io::Result<(Vec<Entry>, bool)> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        let path = item.path();
        let Ok(ft) = item.file_type() else { continue };
        if ft.is_symlink() && !stays_inside(root, &path) {
            continue;
        }
        // Follows an inside symlink to show its target's type and size.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_dir() && !meta.is_file() {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        entries.push(Entry {
            name,
            dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, truncated))
}

fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` escaped too, so the JSON is safe to inline in a page.
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The HTML page for the directory at URL path `url_path` (decoded, ending
/// in `/`). Links are relative, so the page works behind any prefix.
pub fn html(url_path: &str, entries: &[Entry], truncated: bool) -> String {
    let mut out = String::with_capacity(512 + entries.len() * 128);
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    html_escape(url_path, &mut out);
    out.push_str("</title></head><body><h1>Index of ");
    html_escape(url_path, &mut out);
    out.push_str("</h1><table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n");
    if url_path != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let slash = if e.dir { "/" } else { "" };
        out.push_str("<tr><td><a href=\"");
        out.push_str(&encode_segment(&e.name));
        out.push_str(slash);
        out.push_str("\">");
        html_escape(&e.name, &mut out);
        out.push_str(slash);
        out.push_str("</a></td><td>");
        if !e.dir {
            let _ = write!(out, "{}", e.size);
        }
        out.push_str("</td><td>");
        out.push_str(&httpdate::fmt_http_date(
            UNIX_EPOCH + std::time::Duration::from_secs(e.mtime),
        ));
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>");
    if truncated {
        let _ = write!(
            out,
            "<p>Only the first {MAX_ENTRIES} entries are shown.</p>"
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The JSON listing: `{"path": "…", "truncated": false, "entries":
/// [{"name": "…", "type": "file"|"dir", "size": N, "mtime": SECONDS}, …]}`.
pub fn json(url_path: &str, entries: &[Entry], truncated: bool) -> String {
    let mut out = String::with_capacity(64 + entries.len() * 80);
    out.push_str("{\"path\":");
    json_string(url_path, &mut out);
    let _ = write!(out, ",\"truncated\":{truncated},\"entries\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&e.name, &mut out);
        let kind = if e.dir { "dir" } else { "file" };
        let _ = write!(
            out,
            ",\"type\":\"{kind}\",\"size\":{},\"mtime\":{}}}",
            e.size, e.mtime
        );
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                name: "a b<&>\"'.deb".into(),
                dir: false,
                size: 3,
                mtime: 0,
            },
            Entry {
                name: "sub".into(),
                dir: true,
                size: 0,
                mtime: 1,
            },
        ]
    }

    #[test]
    fn html_escapes_names_and_encodes_links() {
        let page = html("/debian/<x>/", &entries(), false);
        assert!(page.contains("Index of /debian/&lt;x&gt;/"));
        assert!(page.contains("href=\"a%20b%3C%26%3E%22%27.deb\""));
        assert!(page.contains(">a b&lt;&amp;&gt;&quot;&#39;.deb<"));
        assert!(page.contains("href=\"sub/\""));
        assert!(page.contains("href=\"../\""));
        assert!(!page.contains("<x>"));
    }

    #[test]
    fn json_escapes() {
        let j = json("/d/", &entries(), true);
        assert!(j.starts_with("{\"path\":\"/d/\",\"truncated\":true,\"entries\":["));
        assert!(j.contains(
            "\"name\":\"a b\\u003c\\u0026\\u003e\\\"'.deb\",\"type\":\"file\",\"size\":3"
        ));
        assert!(j.contains("{\"name\":\"sub\",\"type\":\"dir\",\"size\":0,\"mtime\":1}"));
    }

    #[test]
    fn read_hides_outward_symlinks() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub"))?;
        std::fs::write(root.join("f"), b"12345")?;
        std::fs::write(dir.path().join("secret"), b"x")?;
        std::os::unix::fs::symlink("../secret", root.join("out"))?;
        std::os::unix::fs::symlink("f", root.join("in"))?;
        let root = std::fs::canonicalize(&root)?;
        let (list, truncated) = read(&root, &root)?;
        let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["f", "in", "sub"]);
        assert!(!truncated);
        assert_eq!(list[1].size, 5);
        assert!(list[2].dir);
        Ok(())
    }
}
