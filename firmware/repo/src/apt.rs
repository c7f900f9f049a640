//! apt metadata: Release/InRelease and `Packages` indexes, and the apt
//! subset built from them.
//!
//! Which files a subset keeps is what apt-get asks for, checked against the
//! real apt in tests/fixtures/apt.rs rather than guessed: the suite's
//! InRelease, Release and Release.gpg; for each selected component the
//! files the Release lists under `binary-<arch>/` for the selected
//! architectures and `binary-all/` (every compression, since which one apt
//! picks depends on its version and configuration), every `i18n/`
//! translation, `cnf/Commands-<arch>` (command-not-found), `dep11/`
//! (AppStream: `Components-<arch>`, `CID-Index-<arch>` and the icon
//! tarballs, which apt fetches when appstream is installed), and the
//! `by-hash/` copy of each of those under every hash the Release gives,
//! since apt asks only for by-hash paths when the Release says
//! `Acquire-By-Hash: yes`.
//!
//! All translations, not just English: apt asks for the languages of the
//! client's locale, and a translation the Release lists but the node cannot
//! serve (offline, not fetched) is an `E:` and a non-zero exit of
//! `apt-get update`, not a silent fallback (measured with apt 2.6). The
//! same holds for `Contents-<arch>`, which apt-get update asks for only
//! with apt-file installed; those are tens of MB per architecture, so they
//! are left to fetch-on-miss.
//!
//! Of the `Packages` indexes, the gzip one is parsed when present: it
//! decodes with a 32 KiB window, where xz and zstd need megabytes, which
//! matters on a 512 MiB board. The index is streamed paragraph by
//! paragraph; only the four fields the selection needs are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use crate::Error;
use crate::decompress::{self, Stream};
use crate::glob::Patterns;
use crate::limits::{MAX_FIELD, MAX_INDEX_FILE, MAX_LINE, MAX_PACKAGES, MAX_RELEASE_ENTRIES};
use crate::plan::{Selection, Tree, valid_relative};

/// The checksum fields of a Release file, by the name of their `by-hash/`
/// directory (the same names), and the length of a hex digest.
const HASHES: &[(&str, usize)] = &[
    ("MD5Sum", 32),
    ("SHA1", 40),
    ("SHA256", 64),
    ("SHA512", 128),
];

/// Compression endings of indexes, in the order the plan prefers to parse
/// them (see the module doc).
const PARSE_ORDER: &[&str] = &[".gz", ".zst", ".xz", ""];
const INDEX_EXTS: &[&str] = &[".gz", ".xz", ".zst", ".bz2", ".lzma", ".lz4"];

/// One file listed in a Release file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseEntry {
    /// Size in bytes.
    pub size: u64,
    /// `(field, lowercase hex digest)`: field is `MD5Sum`, `SHA1`, `SHA256`
    /// or `SHA512`, which is also the name of its `by-hash/` directory.
    pub hashes: Vec<(&'static str, String)>,
}

/// The parts of a Release (or the body of an InRelease) the subset needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// `Suite:`.
    pub suite: Option<String>,
    /// `Codename:`.
    pub codename: Option<String>,
    /// `Components:`.
    pub components: Vec<String>,
    /// `Architectures:`.
    pub architectures: Vec<String>,
    /// `Acquire-By-Hash: yes`.
    pub acquire_by_hash: bool,
    /// The files it lists, by path relative to the Release's directory.
    pub entries: BTreeMap<String, ReleaseEntry>,
}

impl Release {
    /// Parses a Release file, or an InRelease (the clearsigned body is
    /// taken; the signature is apt's to check, not ours).
    pub fn parse(path: &str, data: &[u8]) -> Result<Release, Error> {
        if data.len() > MAX_INDEX_FILE {
            return Err(Error::TooLarge {
                path: path.to_string(),
                limit: MAX_INDEX_FILE as u64,
            });
        }
        let text = std::str::from_utf8(data).map_err(|e| Error::Syntax {
            path: path.to_string(),
            line: line_of(data, e.valid_up_to()),
            reason: "not UTF-8 text".into(),
        })?;
        let syntax = |line: usize, reason: String| Error::Syntax {
            path: path.to_string(),
            line: line as u64 + 1,
            reason,
        };
        let lines: Vec<&str> = text.lines().collect();
        // (line index, text) of the body.
        let mut body: Vec<(usize, &str)> = Vec::new();
        if lines
            .first()
            .is_some_and(|l| l.trim_end() == "-----BEGIN PGP SIGNED MESSAGE-----")
        {
            let start = lines
                .iter()
                .position(|l| l.trim().is_empty())
                .ok_or_else(|| syntax(0, "clearsigned message without a body".into()))?;
            let mut signed = false;
            for (i, l) in lines.iter().enumerate().skip(start + 1) {
                if l.trim_end() == "-----BEGIN PGP SIGNATURE-----" {
                    signed = true;
                    break;
                }
                body.push((i, l.strip_prefix("- ").unwrap_or(l)));
            }
            if !signed {
                return Err(syntax(
                    lines.len(),
                    "clearsigned message without a signature".into(),
                ));
            }
        } else {
            body = lines.iter().copied().enumerate().collect();
        }

        let mut r = Release::default();
        let mut field: Option<&str> = None;
        let mut sizes = 0u64;
        let mut started = false;
        for (i, line) in body {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                if started {
                    break; // one paragraph; anything after is not ours
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            started = true;
            if line.starts_with([' ', '\t']) {
                let Some(name) = field else {
                    return Err(syntax(i, "continuation line before any field".into()));
                };
                let Some(&(name, hex_len)) =
                    HASHES.iter().find(|(h, _)| h.eq_ignore_ascii_case(name))
                else {
                    continue;
                };
                let mut parts = line.split_whitespace();
                let (Some(hash), Some(size), Some(file), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(syntax(i, format!("{name}: expected \"hash size path\"")));
                };
                if hash.len() != hex_len || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(syntax(
                        i,
                        format!("{name}: {hash:?} is not a {name} digest"),
                    ));
                }
                let size: u64 = size
                    .parse()
                    .map_err(|_| syntax(i, format!("{name}: size {size:?} is not a number")))?;
                if !valid_relative(file) {
                    return Err(syntax(i, format!("{name}: bad path {file:?}")));
                }
                sizes += 1;
                if sizes > MAX_RELEASE_ENTRIES {
                    return Err(Error::TooMany {
                        path: path.to_string(),
                        what: "checksum lines",
                        limit: MAX_RELEASE_ENTRIES,
                    });
                }
                let e = r.entries.entry(file.to_string()).or_default();
                if !e.hashes.is_empty() && e.size != size {
                    return Err(syntax(
                        i,
                        format!("{file}: {name} size {size} differs from {}", e.size),
                    ));
                }
                e.size = size;
                if !e.hashes.iter().any(|(h, _)| *h == name) {
                    e.hashes.push((name, hash.to_ascii_lowercase()));
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(syntax(
                    i,
                    format!("expected \"Field: value\", found {:?}", clip(line)),
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(syntax(i, format!("bad field name {:?}", clip(name))));
            }
            field = Some(name);
            let list = || value.split_whitespace().map(str::to_string).collect();
            match name.to_ascii_lowercase().as_str() {
                "suite" => r.suite = Some(value.to_string()),
                "codename" => r.codename = Some(value.to_string()),
                "components" => r.components = list(),
                "architectures" => r.architectures = list(),
                "acquire-by-hash" => r.acquire_by_hash = value.eq_ignore_ascii_case("yes"),
                _ => {}
            }
        }
        if !started {
            return Err(syntax(0, "no fields".into()));
        }
        Ok(r)
    }
}

fn line_of(data: &[u8], offset: usize) -> u64 {
    data[..offset.min(data.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One paragraph of a `Packages` index, the fields a subset needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph {
    /// `Package:`.
    pub package: String,
    /// `Architecture:`.
    pub architecture: Option<String>,
    /// `Filename:`, relative to the repository root (the parent of `dists/`).
    pub filename: Option<String>,
    /// `Size:`.
    pub size: Option<u64>,
    /// Line of the decompressed index where the paragraph starts.
    pub line: u64,
}

/// A streaming reader of a `Packages` index (plain, gz, xz or zst).
pub struct Packages<'a> {
    path: String,
    stream: Stream<'a>,
    line: u64,
    buf: Vec<u8>,
    count: u64,
}

impl<'a> Packages<'a> {
    /// Opens `data`, the bytes of `path` as published.
    pub fn open(path: &str, data: &'a [u8]) -> Result<Self, Error> {
        Ok(Packages {
            path: path.to_string(),
            stream: decompress::open(path, data, u64::MAX)?,
            line: 0,
            buf: Vec::new(),
            count: 0,
        })
    }

    /// Reads every paragraph, calling `f` on each; returns how many.
    pub fn read_all(
        path: &str,
        data: &[u8],
        mut f: impl FnMut(Paragraph) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let mut p = Packages::open(path, data)?;
        while let Some(para) = p.next_paragraph()? {
            f(para)?;
        }
        Ok(p.count)
    }

    fn syntax(&self, line: u64, reason: impl Into<String>) -> Error {
        Error::Syntax {
            path: self.path.clone(),
            line,
            reason: reason.into(),
        }
    }

    /// Reads one line into `buf` (newline stripped); false at the end.
    fn read_line(&mut self) -> Result<bool, Error> {
        self.buf.clear();
        let mut any = false;
        loop {
            let avail = match self.stream.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(decompress::error(&self.path, &self.stream, &e)),
            };
            if avail.is_empty() {
                if any {
                    self.line += 1;
                }
                return Ok(any);
            }
            any = true;
            let (take, end) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if self.buf.len() + take > MAX_LINE {
                let line = self.line + 1;
                return Err(self.syntax(line, format!("line longer than {MAX_LINE} bytes")));
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.stream.consume(take);
            if end {
                self.line += 1;
                while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                    self.buf.pop();
                }
                return Ok(true);
            }
        }
    }

    /// The next paragraph, or None at the end of the index.
    pub fn next_paragraph(&mut self) -> Result<Option<Paragraph>, Error> {
        let mut p: Option<Paragraph> = None;
        loop {
            if !self.read_line()? {
                break;
            }
            let line = &self.buf;
            if line.iter().all(|b| *b == b' ' || *b == b'\t') {
                if p.is_some() {
                    break;
                }
                continue;
            }
            if line.first() == Some(&b'#') {
                continue;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                if p.is_none() {
                    return Err(self.syntax(self.line, "continuation line outside a paragraph"));
                }
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Err(self.syntax(self.line, "expected \"Field: value\""));
            };
            let name = &line[..colon];
            if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
                return Err(self.syntax(self.line, "bad field name"));
            }
            let para = p.get_or_insert_with(|| Paragraph {
                line: self.line,
                ..Paragraph::default()
            });
            let field = |name: &str, value: &[u8], line: u64| -> Result<String, Error> {
                let v = std::str::from_utf8(value).map_err(|_| Error::Syntax {
                    path: self.path.clone(),
                    line,
                    reason: format!("{name}: not UTF-8"),
                })?;
                let v = v.trim();
                if v.is_empty() || v.len() > MAX_FIELD {
                    return Err(Error::Syntax {
                        path: self.path.clone(),
                        line,
                        reason: format!("{name}: empty or longer than {MAX_FIELD} bytes"),
                    });
                }
                Ok(v.to_string())
            };
            let value = &line[colon + 1..];
            if name.eq_ignore_ascii_case(b"Package") {
                para.package = field("Package", value, self.line)?;
            } else if name.eq_ignore_ascii_case(b"Architecture") {
                para.architecture = Some(field("Architecture", value, self.line)?);
            } else if name.eq_ignore_ascii_case(b"Filename") {
                para.filename = Some(field("Filename", value, self.line)?);
            } else if name.eq_ignore_ascii_case(b"Size") {
                let v = field("Size", value, self.line)?;
                para.size = Some(v.parse().map_err(|_| Error::Syntax {
                    path: self.path.clone(),
                    line: self.line,
                    reason: format!("Size: {:?} is not a number", clip(&v)),
                })?);
            }
        }
        let Some(p) = p else {
            return Ok(None);
        };
        if p.package.is_empty() {
            return Err(self.syntax(p.line, "paragraph without a Package field"));
        }
        self.count += 1;
        if self.count > MAX_PACKAGES {
            return Err(Error::TooMany {
                path: self.path.clone(),
                what: "paragraphs",
                limit: MAX_PACKAGES,
            });
        }
        Ok(Some(p))
    }
}

/// `name` without a compression ending.
fn stem(name: &str) -> &str {
    INDEX_EXTS
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}

/// Whether a Release entry (path relative to the component) is an index
/// apt-get update fetches for these architectures (see the module doc).
fn wanted(rest: &str, arches: &BTreeSet<&str>) -> bool {
    if let Some(r) = rest.strip_prefix("binary-") {
        let arch = r.split('/').next().unwrap_or("");
        return r.contains('/') && (arch == "all" || arches.contains(arch));
    }
    if let Some(r) = rest.strip_prefix("i18n/") {
        return !r.contains('/');
    }
    if let Some(r) = rest.strip_prefix("cnf/") {
        let s = stem(r);
        return s
            .strip_prefix("Commands-")
            .is_some_and(|a| a == "all" || arches.contains(a));
    }
    if let Some(r) = rest.strip_prefix("dep11/") {
        if r.contains('/') {
            return false;
        }
        if r.starts_with("icons-") {
            return true;
        }
        let arch = r
            .strip_prefix("Components-")
            .or_else(|| r.strip_prefix("CID-Index-"))
            .and_then(|a| a.split('.').next());
        return arch.is_some_and(|a| a == "all" || arches.contains(a));
    }
    false
}

/// The `(prefix, suite)` pairs of the tree: prefix is "" or ends with '/',
/// and `{prefix}dists/{suite}/` holds an InRelease or a Release.
fn roots<'t>(suites: &'t [String], tree: &Tree) -> BTreeSet<(String, &'t str)> {
    let mut out = BTreeSet::new();
    for path in tree.paths() {
        let Some(dir) = path
            .strip_suffix("/InRelease")
            .or_else(|| path.strip_suffix("/Release"))
        else {
            continue;
        };
        for (i, _) in dir.match_indices("dists/") {
            if i > 0 && !dir[..i].ends_with('/') {
                continue;
            }
            let suite = &dir[i + "dists/".len()..];
            if let Some(s) = suites.iter().find(|s| s.as_str() == suite) {
                out.insert((dir[..i].to_string(), s.as_str()));
            }
        }
    }
    out
}

fn arch_set(architectures: &[String]) -> BTreeSet<&str> {
    architectures.iter().map(String::as_str).collect()
}

/// Step 1 of an apt subset: the Release files and the `Packages` indexes.
pub(crate) fn metadata_paths(
    suites: &[String],
    components: &[String],
    architectures: &[String],
    tree: &Tree,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut arches = arch_set(architectures);
    arches.insert("all");
    for (prefix, suite) in roots(suites, tree) {
        let dir = format!("{prefix}dists/{suite}/");
        for name in ["InRelease", "Release", "Release.gpg"] {
            tree.keep(&mut out, format!("{dir}{name}"));
        }
        for c in components {
            for a in &arches {
                for ext in PARSE_ORDER {
                    tree.keep(&mut out, format!("{dir}{c}/binary-{a}/Packages{ext}"));
                }
            }
        }
    }
    out
}

/// Step 2 of an apt subset.
pub(crate) fn plan(
    suites: &[String],
    components: &[String],
    architectures: &[String],
    packages: &Patterns,
    tree: &Tree,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>,
    sel: &mut Selection,
) -> Result<(), Error> {
    let arches = arch_set(architectures);
    let roots = roots(suites, tree);
    for s in suites {
        if !roots.iter().any(|(_, suite)| suite == s) {
            return Err(Error::Subset(format!(
                "suite {s:?}: the snapshot has no dists/{s}/InRelease or dists/{s}/Release"
            )));
        }
    }
    let mut seen_components = BTreeSet::new();
    let mut seen_arches = BTreeSet::new();
    for (prefix, suite) in &roots {
        let dir = format!("{prefix}dists/{suite}/");
        let inrelease = format!("{dir}InRelease");
        let release_path = if tree.has(&inrelease) {
            inrelease
        } else {
            format!("{dir}Release")
        };
        let release = Release::parse(&release_path, &read(&release_path)?)?;
        for name in ["InRelease", "Release", "Release.gpg"] {
            sel.metadata(tree, format!("{dir}{name}"));
        }
        seen_components.extend(release.components.iter().cloned());
        seen_arches.extend(release.architectures.iter().cloned());
        for (file, entry) in &release.entries {
            if let Some((c, rest)) = file.split_once('/') {
                seen_components.insert(c.to_string());
                if let Some(a) = rest
                    .strip_prefix("binary-")
                    .and_then(|r| r.split('/').next())
                {
                    seen_arches.insert(a.to_string());
                }
            }
            let selected = components.iter().any(|c| {
                file.strip_prefix(c.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|r| wanted(r, &arches))
            });
            if !selected {
                continue;
            }
            let full = format!("{dir}{file}");
            let parent = full.rsplit_once('/').map_or("", |(p, _)| p);
            for (algo, hex) in &entry.hashes {
                sel.metadata(tree, format!("{parent}/by-hash/{algo}/{hex}"));
            }
            sel.metadata(tree, full);
        }
        // The package indexes: one per component and architecture.
        let mut all = arches.clone();
        all.insert("all");
        for c in components {
            for a in &all {
                let base = format!("{c}/binary-{a}/Packages");
                let listed: Vec<&str> = PARSE_ORDER
                    .iter()
                    .copied()
                    .filter(|ext| release.entries.contains_key(&format!("{base}{ext}")))
                    .collect();
                if listed.is_empty() {
                    continue;
                }
                let Some(ext) = listed
                    .iter()
                    .find(|ext| tree.has(&format!("{dir}{base}{ext}")))
                else {
                    return Err(Error::Repository {
                        path: release_path.clone(),
                        reason: format!(
                            "lists {base}{} but the snapshot has none of them",
                            listed.join("|")
                        ),
                    });
                };
                let index = format!("{dir}{base}{ext}");
                let data = read(&index)?;
                Packages::read_all(&index, &data, |p| {
                    if !packages.matches(&p.package) {
                        return Ok(());
                    }
                    let Some(file) = p.filename else {
                        return Err(Error::Syntax {
                            path: index.clone(),
                            line: p.line,
                            reason: format!("package {} has no Filename", p.package),
                        });
                    };
                    if !valid_relative(&file) {
                        return Err(Error::Syntax {
                            path: index.clone(),
                            line: p.line,
                            reason: format!("Filename {file:?} is not a relative path"),
                        });
                    }
                    sel.package(tree, format!("{prefix}{file}"));
                    Ok(())
                })?;
            }
        }
    }
    for c in components {
        if !seen_components.contains(c) {
            return Err(Error::Subset(format!(
                "component {c:?} is in none of the selected suites (they have: {})",
                join(&seen_components)
            )));
        }
    }
    for a in architectures {
        if !seen_arches.contains(a) {
            return Err(Error::Subset(format!(
                "architecture {a:?} is in none of the selected suites (they have: {})",
                join(&seen_arches)
            )));
        }
    }
    Ok(())
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        return "nothing".into();
    }
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const RELEASE: &str = concat!(
        "Origin: Test\nSuite: stable\nCodename: bookworm\n",
        "Architectures: amd64 arm64 all\nComponents: main contrib\nAcquire-By-Hash: yes\n",
        "Date: Sat, 01 Jan 2000 00:00:00 UTC\n",
        "MD5Sum:\n",
        " 0123456789abcdef0123456789abcdef 10 main/binary-amd64/Packages\n",
        " 0123456789abcdef0123456789abcdef 5 main/binary-amd64/Packages.gz\n",
        "SHA256:\n",
        " aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 10 main/binary-amd64/Packages\n",
        " bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 5 main/binary-amd64/Packages.gz\n",
    );

    #[test]
    fn release_fields_and_checksums() {
        let r = Release::parse("Release", RELEASE.as_bytes()).expect("parses");
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.architectures, ["amd64", "arm64", "all"]);
        assert!(r.acquire_by_hash);
        let e = &r.entries["main/binary-amd64/Packages.gz"];
        assert_eq!(e.size, 5);
        assert_eq!(
            e.hashes,
            [
                ("MD5Sum", "0123456789abcdef0123456789abcdef".to_string()),
                ("SHA256", "b".repeat(64))
            ]
        );
    }

    #[test]
    fn inrelease_body_is_the_clearsigned_text() {
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}- -dash-escaped: x\n\
             -----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n",
            RELEASE
        );
        let r = Release::parse("InRelease", signed.as_bytes()).expect("parses");
        assert_eq!(
            r,
            Release::parse("Release", RELEASE.as_bytes()).expect("plain")
        );
        let unsigned = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: x\n";
        let e = Release::parse("InRelease", unsigned.as_bytes()).expect_err("no signature");
        assert!(e.to_string().starts_with("InRelease:"), "{e}");
    }

    #[test]
    fn release_errors_name_the_line() {
        let bad = RELEASE.replace("aaaaaaaa", "zzzzzzzz");
        let e = Release::parse("dists/x/Release", bad.as_bytes()).expect_err("bad hex");
        assert!(
            e.to_string().starts_with("dists/x/Release:12: SHA256"),
            "{e}"
        );
        let e = Release::parse("R", b"Suite stable\n").expect_err("no colon");
        assert!(e.to_string().starts_with("R:1: expected"), "{e}");
        let bad = RELEASE.replacen(" 5 main", " 6 main", 1);
        let e = Release::parse("R", bad.as_bytes()).expect_err("sizes differ");
        assert!(e.to_string().contains("differs"), "{e}");
        let e = Release::parse("R", b"SHA256:\n 00 1 ../../etc/passwd\n").expect_err("path");
        assert!(
            e.to_string().contains("digest") || e.to_string().contains("path"),
            "{e}"
        );
        let e = Release::parse(
            "R",
            format!("SHA1:\n {} 1 ../x\n", "0".repeat(40)).as_bytes(),
        )
        .expect_err("path");
        assert!(e.to_string().contains("bad path"), "{e}");
        assert!(Release::parse("R", b"\n\n").is_err());
        assert!(Release::parse("R", b"Suite: \xff\n").is_err());
    }

    fn paragraphs(text: &[u8]) -> Result<Vec<Paragraph>, Error> {
        let mut v = Vec::new();
        Packages::read_all("Packages", text, |p| {
            v.push(p);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn packages_paragraphs() {
        let text =
            b"Package: a\nVersion: 1\nArchitecture: amd64\nDescription: x\n long\n .\n more\n\
Filename: pool/main/a/a_1_amd64.deb\nSize: 1234\n\n\n\npackage: b\r\nfilename: pool/b.deb\r\n";
        let v = paragraphs(text).expect("parses");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].package, "a");
        assert_eq!(v[0].architecture.as_deref(), Some("amd64"));
        assert_eq!(v[0].filename.as_deref(), Some("pool/main/a/a_1_amd64.deb"));
        assert_eq!(v[0].size, Some(1234));
        assert_eq!(v[0].line, 1);
        assert_eq!(v[1].package, "b");
        assert_eq!(v[1].filename.as_deref(), Some("pool/b.deb"));
        assert_eq!(v[1].line, 13);
        assert!(paragraphs(b"").expect("empty").is_empty());
    }

    #[test]
    fn packages_errors_name_the_line() {
        let e = paragraphs(b"Package: a\n\nVersion: 1\n").expect_err("no Package");
        assert_eq!(
            e.to_string(),
            "Packages:3: paragraph without a Package field"
        );
        let e = paragraphs(b"Package: a\nSize: many\n").expect_err("size");
        assert!(e.to_string().starts_with("Packages:2: Size"), "{e}");
        let e = paragraphs(b" leading continuation\n").expect_err("continuation");
        assert!(e.to_string().starts_with("Packages:1:"), "{e}");
        let e = paragraphs(b"Package: a\nno colon here\n").expect_err("colon");
        assert!(e.to_string().starts_with("Packages:2:"), "{e}");
        let e = paragraphs(b"Package: \xff\n").expect_err("utf8");
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let mut long = b"Package: a\nDepends: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE));
        let e = paragraphs(&long).expect_err("long line");
        assert!(e.to_string().starts_with("Packages:2: line longer"), "{e}");
        let long_name = format!("Package: {}\n", "a".repeat(MAX_FIELD + 1));
        assert!(paragraphs(long_name.as_bytes()).is_err());
    }

    #[test]
    fn wanted_indexes() {
        let arches: BTreeSet<&str> = ["amd64"].into();
        for yes in [
            "binary-amd64/Packages.xz",
            "binary-amd64/Release",
            "binary-all/Packages",
            "i18n/Translation-en.bz2",
            "i18n/Translation-en",
            "i18n/Translation-de.bz2",
            "i18n/Index",
            "cnf/Commands-amd64.xz",
            "dep11/Components-amd64.yml.gz",
            "dep11/CID-Index-amd64.json.gz",
            "dep11/icons-64x64@2.tar.gz",
        ] {
            assert!(wanted(yes, &arches), "{yes}");
        }
        for no in [
            "binary-arm64/Packages.xz",
            "binary-amd64",
            "source/Sources.xz",
            "Contents-amd64.gz",
            "Contents-udeb-amd64.gz",
            "dep11/Components-arm64.yml.gz",
            "dep11/sub/icons-1.tar.gz",
            "cnf/Commands-arm64.xz",
        ] {
            assert!(!wanted(no, &arches), "{no}");
        }
    }

    /// A synthetic repository under `prefix`: a Release, a plain Packages
    /// index with `packages`, and the files the index names.
    fn synthetic(prefix: &str, packages: &str) -> (Vec<crate::TreeFile>, HashMap<String, Vec<u8>>) {
        let release = concat!(
            "Suite: s\nComponents: main\nArchitectures: amd64\nSHA256:\n",
            " 0000000000000000000000000000000000000000000000000000000000000000 1 main/binary-amd64/Packages\n",
        );
        let mut data = HashMap::new();
        data.insert(
            format!("{prefix}dists/s/Release"),
            release.as_bytes().to_vec(),
        );
        data.insert(
            format!("{prefix}dists/s/main/binary-amd64/Packages"),
            packages.as_bytes().to_vec(),
        );
        for line in packages.lines() {
            if let Some(f) = line.strip_prefix("Filename: ") {
                data.insert(format!("{prefix}{f}"), b"deb".to_vec());
            }
        }
        let files = data
            .iter()
            .map(|(p, d)| crate::TreeFile {
                path: p.clone(),
                size: d.len() as u64,
            })
            .collect();
        (files, data)
    }

    fn subset(packages: &[&str]) -> crate::Subset {
        crate::Subset::Apt {
            suites: vec!["s".into()],
            components: vec!["main".into()],
            architectures: vec!["amd64".into()],
            packages: packages.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn plan_of(
        files: &[crate::TreeFile],
        data: &HashMap<String, Vec<u8>>,
        packages: &[&str],
    ) -> Result<crate::Plan, Error> {
        let mut read = |p: &str| data.get(p).cloned().ok_or_else(|| Error::read(p, "absent"));
        crate::plan(&subset(packages), files, &mut read)
    }

    #[test]
    fn repositories_below_a_prefix() {
        let (files, data) = synthetic(
            "mirror/debian/",
            "Package: a\nFilename: pool/a.deb\n\nPackage: b\nFilename: pool/b.deb\n",
        );
        let p = plan_of(&files, &data, &["a"]).expect("plan");
        let sel: Vec<&str> = p.selected.iter().map(String::as_str).collect();
        assert_eq!(
            sel,
            [
                "mirror/debian/dists/s/Release",
                "mirror/debian/dists/s/main/binary-amd64/Packages",
                "mirror/debian/pool/a.deb",
            ]
        );
        assert_eq!((p.packages, p.metadata, p.skipped_files), (1, 2, 1));
        // "debian" alone is not "dists/s" of another prefix.
        let meta = crate::metadata_paths(&subset(&["*"]), &files);
        assert_eq!(meta.len(), 2, "{meta:?}");
    }

    #[test]
    fn hostile_and_broken_indexes() {
        let (files, data) = synthetic("", "Package: a\nFilename: ../../etc/passwd\n");
        let e = plan_of(&files, &data, &["*"]).expect_err("escape");
        assert!(
            e.to_string()
                .starts_with("dists/s/main/binary-amd64/Packages:1: Filename"),
            "{e}"
        );
        let (files, data) = synthetic("", "Package: a\nVersion: 1\n");
        let e = plan_of(&files, &data, &["*"]).expect_err("no Filename");
        assert!(e.to_string().contains("has no Filename"), "{e}");
        // A package the snapshot lacks is counted, not invented.
        let (mut files, data) = synthetic("", "Package: a\nFilename: pool/a.deb\n");
        files.retain(|f| f.path != "pool/a.deb");
        let p = plan_of(&files, &data, &["*"]).expect("plan");
        assert_eq!((p.packages, p.missing), (0, 1));
        assert!(
            p.summary().contains("warning: 1 file named"),
            "{}",
            p.summary()
        );
        // The Release lists an index the snapshot does not have.
        let (mut files, data) = synthetic("", "Package: a\nFilename: pool/a.deb\n");
        files.retain(|f| !f.path.ends_with("/Packages"));
        let e = plan_of(&files, &data, &["*"]).expect_err("index missing");
        assert!(
            e.to_string().contains("the snapshot has none of them"),
            "{e}"
        );
        // The caller's read error comes through unchanged.
        let (files, mut data) = synthetic("", "Package: a\nFilename: pool/a.deb\n");
        data.remove("dists/s/main/binary-amd64/Packages");
        let e = plan_of(&files, &data, &["*"]).expect_err("read");
        assert_eq!(
            e.to_string(),
            "cannot read dists/s/main/binary-amd64/Packages: absent"
        );
    }
}
