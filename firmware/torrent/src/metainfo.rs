//! Torrent metainfo: v1 (BEP 3), v2 (BEP 52), hybrid, with BEP 47 file
//! attributes, read from untrusted bytes.
//!
//! Parsing goes in three steps, each narrowing what the next must trust:
//! [`crate::bencode::validate`] bounds size and depth, `bt_bencode` decodes
//! through serde into borrowed fields (the `raw` module: no value tree, so
//! memory is about the input plus the resulting file list), and the checks
//! here test every field, every path component and every count against
//! [`Limits`], then cross-check the v1 file list, the v2 file tree and the
//! piece layers of a hybrid. The infohashes are always taken over the
//! original `info` bytes, never over a re-encoding, so they match what
//! every other client computes.

use std::collections::BTreeMap;

use crate::bencode::{self, top_level_span};
use crate::error::{Error, field, missing};
use crate::hash::{Sha1, Sha256, sha1, sha256};
use crate::merkle::{self, BLOCK_SIZE};

mod path;
mod raw;

pub use path::FilePath;

use raw::{Any, InfoSeed, RawEntry, RawInfo, TorrentSeed};

/// Bounds on what a torrent may describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bencode: bencode::Limits,
    /// Files, pad files included.
    pub max_files: usize,
    /// Pieces of the whole torrent.
    pub max_pieces: u64,
    /// Largest piece length accepted.
    pub max_piece_length: u64,
    /// Bytes in one path component (Linux NAME_MAX).
    pub max_component: usize,
    /// Bytes in a whole path, components joined by `/` (Linux PATH_MAX).
    pub max_path: usize,
    /// Components in one path.
    pub max_path_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            bencode: bencode::Limits::default(),
            max_files: 1_000_000,
            max_pieces: 1 << 24,
            max_piece_length: 256 << 20,
            max_component: 255,
            max_path: 4095,
            max_path_depth: 32,
        }
    }
}

/// Which hash schemes a torrent carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    Hybrid,
}

impl Version {
    pub fn has_v1(self) -> bool {
        matches!(self, Version::V1 | Version::Hybrid)
    }
    pub fn has_v2(self) -> bool {
        matches!(self, Version::V2 | Version::Hybrid)
    }
}

/// BEP 47 attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attr {
    pub pad: bool,
    pub symlink: bool,
    pub executable: bool,
    pub hidden: bool,
}

impl Attr {
    fn parse(s: &[u8]) -> Attr {
        // Unknown attribute letters are ignored, as BEP 47 asks.
        Attr {
            pad: s.contains(&b'p'),
            symlink: s.contains(&b'l'),
            executable: s.contains(&b'x'),
            hidden: s.contains(&b'h'),
        }
    }

    pub(crate) fn encode(self) -> Option<String> {
        let mut s = String::new();
        for (on, c) in [
            (self.pad, 'p'),
            (self.symlink, 'l'),
            (self.executable, 'x'),
            (self.hidden, 'h'),
        ] {
            if on {
                s.push(c);
            }
        }
        (!s.is_empty()).then_some(s)
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path inside the torrent, validated components. For a single-file
    /// torrent this is just the name.
    pub path: FilePath,
    pub length: u64,
    /// Offset in the torrent's piece space: the v1 byte stream for v1 and
    /// hybrid torrents; for v2, every non-empty file starts a new piece.
    pub offset: u64,
    /// v2 merkle root; `None` for v1-only torrents and empty files.
    pub pieces_root: Option<Sha256>,
    pub attr: Attr,
    /// Target of a symlink, as components relative to the torrent root.
    pub symlink_target: Option<FilePath>,
}

impl File {
    /// Path joined with `/`, for messages.
    pub fn display_path(&self) -> String {
        self.path.as_str().to_owned()
    }

    /// Index of the first piece holding this file's data.
    pub fn first_piece(&self, piece_length: u64) -> u64 {
        self.offset / piece_length
    }

    /// Number of v2 pieces of this file.
    pub fn piece_count(&self, piece_length: u64) -> u64 {
        self.length.div_ceil(piece_length)
    }
}

/// The validated `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub piece_length: u64,
    pub version: Version,
    /// In piece-space order; pad files included for v1 and hybrid.
    pub files: Vec<File>,
    /// v1 piece hashes (empty for v2-only torrents).
    pub pieces: Vec<Sha1>,
    pub private: bool,
    /// `info` has `length` rather than `files`/a multi-entry tree.
    pub single_file: bool,
    pub v1_infohash: Option<Sha1>,
    pub v2_infohash: Option<Sha256>,
    /// The exact bytes the infohashes were computed over.
    pub raw: Vec<u8>,
}

impl Info {
    /// Total bytes of real (non-pad) files.
    pub fn total_length(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.attr.pad)
            .map(|f| f.length)
            .sum()
    }

    /// Number of pieces in the torrent's piece space.
    pub fn piece_count(&self) -> u64 {
        let end = self
            .files
            .iter()
            .map(|f| f.offset + f.length)
            .max()
            .unwrap_or(0);
        end.div_ceil(self.piece_length)
    }

    /// Real files (no pad files).
    pub fn real_files(&self) -> impl Iterator<Item = &File> {
        self.files.iter().filter(|f| !f.attr.pad)
    }

    /// Parses a bare `info` dictionary (as received through BEP 9).
    pub fn from_bytes(raw: &[u8], limits: &Limits) -> Result<Info, Error> {
        bencode::validate(raw, &limits.bencode)?;
        let sizes = raw::Sizes::of(raw, limits);
        let seed = InfoSeed { limits, sizes };
        let info = raw::decode(raw, seed, "info dictionary")?;
        parse_info(info, raw, limits, true)
    }
}

/// A whole `.torrent` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub info: Info,
    /// Tracker tiers (`announce-list`, or `announce` alone).
    pub trackers: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    /// v2 piece layers by pieces root, each checked against its root.
    pub piece_layers: BTreeMap<Sha256, Vec<Sha256>>,
    pub creation_date: Option<i64>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
}

impl Metainfo {
    /// Parses a `.torrent` file with the default [`Limits`].
    pub fn from_bytes(buf: &[u8]) -> Result<Metainfo, Error> {
        Self::from_bytes_with(buf, &Limits::default())
    }

    pub fn from_bytes_with(buf: &[u8], limits: &Limits) -> Result<Metainfo, Error> {
        Self::parse(buf, limits, true)
    }

    /// Parses as [`Metainfo::from_bytes_with`], but leaves `info.raw`
    /// empty: for a caller that keeps the `.torrent` file and would rather
    /// not hold its largest part twice (the info dictionary of a 20,000-file
    /// release is 5 to 8 MB). The dictionary is `buf[Metainfo::info_span(buf)]`.
    pub fn from_bytes_without_raw(buf: &[u8], limits: &Limits) -> Result<Metainfo, Error> {
        Self::parse(buf, limits, false)
    }

    /// Where the info dictionary is in a `.torrent` file's bytes.
    pub fn info_span(buf: &[u8], limits: &Limits) -> Option<std::ops::Range<usize>> {
        top_level_span(buf, b"info", &limits.bencode)
    }

    fn parse(buf: &[u8], limits: &Limits, keep_raw: bool) -> Result<Metainfo, Error> {
        bencode::validate(buf, &limits.bencode)?;
        let span = top_level_span(buf, b"info", &limits.bencode).ok_or_else(|| missing("info"))?;
        let raw = &buf[span];
        let sizes = raw::Sizes::of(raw, limits);
        let top = raw::decode(buf, TorrentSeed { limits, sizes }, "torrent")?
            .ok_or_else(|| field("torrent", "not a dictionary"))?;
        let info_value = top.info.ok_or_else(|| missing("info"))?;
        let info = parse_info(info_value, raw, limits, keep_raw)?;

        let mut trackers = Vec::new();
        if let Some(list) = top.announce_list.as_ref().and_then(Any::as_list) {
            for tier in list {
                let urls: Vec<String> = tier
                    .as_list()
                    .map(|t| {
                        t.iter()
                            .filter_map(|u| u.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if !urls.is_empty() {
                    trackers.push(urls);
                }
            }
        }
        if let Some(url) = top.announce.as_ref().and_then(Any::as_str)
            && trackers.is_empty()
        {
            trackers.push(vec![url.to_owned()]);
        }
        let web_seeds = match &top.url_list {
            Some(Any::List(l)) => l
                .iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect(),
            Some(v) => v.as_str().map(|s| vec![s.to_owned()]).unwrap_or_default(),
            None => Vec::new(),
        };
        let piece_layers = match &top.piece_layers {
            Some(v) => parse_piece_layers(v, &info)?,
            None => BTreeMap::new(),
        };
        if info.version.has_v2() {
            for f in info.real_files() {
                if f.length > info.piece_length {
                    let root = f.pieces_root.unwrap_or_default();
                    if !piece_layers.contains_key(&root) {
                        return Err(missing(format!(
                            "piece layers entry for {}",
                            f.display_path()
                        )));
                    }
                }
            }
        }
        Ok(Metainfo {
            info,
            trackers,
            web_seeds,
            piece_layers,
            creation_date: top.creation_date.as_ref().and_then(Any::as_i64),
            created_by: top
                .created_by
                .as_ref()
                .and_then(Any::as_str)
                .map(str::to_owned),
            comment: top
                .comment
                .as_ref()
                .and_then(Any::as_str)
                .map(str::to_owned),
        })
    }

    /// The v2 hash of piece `index` (torrent-wide numbering) and the file it
    /// belongs to, with the subtree width to check it against.
    pub fn v2_piece(&self, file: &File, local_index: u64) -> Option<(Sha256, usize)> {
        let root = file.pieces_root?;
        let width = merkle::piece_width(file.length, self.info.piece_length);
        if file.length <= self.info.piece_length {
            return (local_index == 0).then_some((root, width));
        }
        let layer = self.piece_layers.get(&root)?;
        Some((*layer.get(usize::try_from(local_index).ok()?)?, width))
    }
}

/// A required non-negative integer field `key` of `ctx`.
fn u64_field(v: Option<&Any<'_>>, key: &str, ctx: &str) -> Result<u64, Error> {
    let v = v.ok_or_else(|| missing(format!("{ctx}.{key}")))?;
    v.as_u64()
        .ok_or_else(|| field(format!("{ctx}.{key}"), "not a non-negative integer"))
}

/// Checks a decoded `info` dictionary (`None`: it was not a dictionary).
fn parse_info(
    d: Option<RawInfo<'_>>,
    raw: &[u8],
    limits: &Limits,
    keep_raw: bool,
) -> Result<Info, Error> {
    let mut d = d.ok_or_else(|| field("info", "not a dictionary"))?;
    let name_bytes = d
        .name
        .as_ref()
        .and_then(Any::as_bytes)
        .ok_or_else(|| missing("info.name"))?;
    let name = component("info.name", name_bytes, limits)?;
    let piece_length = u64_field(d.piece_length.as_ref(), "piece length", "info")?;
    if piece_length == 0 || piece_length > limits.max_piece_length {
        return Err(field(
            "info.piece length",
            format!("{piece_length} is not in 1..={}", limits.max_piece_length),
        ));
    }
    let private = d.private.as_ref().and_then(Any::as_u64) == Some(1);
    let has_v2 = match &d.meta_version {
        Some(v) => match v.as_u64() {
            Some(2) => true,
            Some(other) => {
                return Err(field(
                    "info.meta version",
                    format!("unsupported version {other}"),
                ));
            }
            None => return Err(field("info.meta version", "not an integer")),
        },
        None => false,
    };
    let has_v1 = d.pieces.is_some();
    let version = match (has_v1, has_v2) {
        (true, true) => Version::Hybrid,
        (true, false) => Version::V1,
        (false, true) => Version::V2,
        (false, false) => return Err(missing("info.pieces")),
    };
    if has_v2 && (!piece_length.is_power_of_two() || piece_length < BLOCK_SIZE as u64) {
        return Err(field(
            "info.piece length",
            format!("{piece_length} is not a power of two of at least 16 KiB (BEP 52)"),
        ));
    }

    let v1_files = if has_v1 {
        Some(match d.files.take() {
            Some(files) => (false, files?),
            None => (true, vec![single_file(&d.single, &name, limits)?]),
        })
    } else {
        None
    };
    let v2_files = if has_v2 {
        let out = d
            .file_tree
            .take()
            .ok_or_else(|| missing("info.file tree"))??;
        if out.is_empty() {
            return Err(field("info.file tree", "has no files"));
        }
        Some(out)
    } else {
        None
    };

    let (single_file, mut files) = match (v1_files, v2_files) {
        (Some((single, f)), None) => (single, f),
        (None, Some(f)) => {
            let single = f.len() == 1 && f[0].path.len() == 1 && f[0].path.as_str() == name;
            (single, f)
        }
        (Some((single, v1)), Some(v2)) => (single, merge_hybrid(v1, v2)?),
        (None, None) => return Err(missing("info.pieces")),
    };
    files.shrink_to_fit();

    // Offsets in piece space.
    let mut offset = 0u64;
    for f in &mut files {
        if version == Version::V2 && f.length > 0 {
            offset = offset.next_multiple_of(piece_length);
        }
        f.offset = offset;
        offset = offset
            .checked_add(f.length)
            .ok_or_else(|| field("info.files", "total length overflows"))?;
    }
    let piece_count = offset.div_ceil(piece_length);
    if piece_count > limits.max_pieces {
        return Err(Error::Limit {
            what: "piece count",
            value: piece_count,
            limit: limits.max_pieces,
        });
    }
    if version == Version::Hybrid {
        for f in files.iter().filter(|f| !f.attr.pad && f.length > 0) {
            if f.offset % piece_length != 0 {
                return Err(Error::Inconsistent(format!(
                    "file {} does not start on a piece boundary (pad files missing)",
                    f.display_path()
                )));
            }
        }
    }

    let mut pieces = Vec::new();
    if has_v1 {
        let p = d
            .pieces
            .as_ref()
            .and_then(Any::as_bytes)
            .ok_or_else(|| field("info.pieces", "not a string"))?;
        if p.len() % 20 != 0 || (p.len() / 20) as u64 != piece_count {
            return Err(field(
                "info.pieces",
                format!(
                    "{} bytes, expected {} piece hashes of 20 bytes",
                    p.len(),
                    piece_count
                ),
            ));
        }
        pieces = p
            .chunks_exact(20)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();
    }

    Ok(Info {
        name,
        piece_length,
        version,
        files,
        pieces,
        private,
        single_file,
        v1_infohash: has_v1.then(|| sha1(raw)),
        v2_infohash: has_v2.then(|| sha256(raw)),
        raw: if keep_raw { raw.to_vec() } else { Vec::new() },
    })
}

/// The one file of a single-file v1 torrent (`length` in `info`).
fn single_file(e: &RawEntry<'_>, name: &str, limits: &Limits) -> Result<File, Error> {
    let length = u64_field(e.length.as_ref(), "length", "info")?;
    let (attr, symlink_target) = attrs(e, "info", limits)?;
    Ok(File {
        path: FilePath::new([name]),
        length,
        offset: 0,
        pieces_root: None,
        attr,
        symlink_target,
    })
}

fn attrs(e: &RawEntry<'_>, ctx: &str, limits: &Limits) -> Result<(Attr, Option<FilePath>), Error> {
    let attr = e
        .attr
        .as_ref()
        .and_then(Any::as_bytes)
        .map(Attr::parse)
        .unwrap_or_default();
    let mut target = None;
    if attr.symlink {
        let v = e
            .symlink_path
            .as_ref()
            .ok_or_else(|| missing(format!("{ctx}.symlink path")))?;
        let t = path_list(v, &format!("{ctx}.symlink path"), limits)?;
        target = Some(FilePath::new(t));
    }
    Ok((attr, target))
}

fn tree_ctx(path: &[String]) -> String {
    format!("info.file tree/{}", path.join("/"))
}

/// Checks that a hybrid's v1 file list (pads aside) and v2 tree agree, and
/// returns the v1 list with the v2 roots filled in.
fn merge_hybrid(mut v1: Vec<File>, v2: Vec<File>) -> Result<Vec<File>, Error> {
    let mut v2_iter = v2.into_iter();
    for f in v1.iter_mut().filter(|f| !f.attr.pad) {
        let Some(g) = v2_iter.next() else {
            return Err(Error::Inconsistent(format!(
                "v1 file {} is not in the v2 file tree",
                f.display_path()
            )));
        };
        // A single-file hybrid names its one file after the torrent.
        let same_path = f.path == g.path;
        if !same_path || f.length != g.length {
            return Err(Error::Inconsistent(format!(
                "v1 file {} ({} bytes) differs from v2 file {} ({} bytes)",
                f.display_path(),
                f.length,
                g.display_path(),
                g.length
            )));
        }
        f.pieces_root = g.pieces_root;
    }
    if let Some(g) = v2_iter.next() {
        return Err(Error::Inconsistent(format!(
            "v2 file {} is not in the v1 file list",
            g.display_path()
        )));
    }
    Ok(v1)
}

fn parse_piece_layers(v: &Any<'_>, info: &Info) -> Result<BTreeMap<Sha256, Vec<Sha256>>, Error> {
    let entries = v
        .as_dict()
        .ok_or_else(|| field("piece layers", "not a dictionary"))?;
    // Key order, the last of repeated keys: as a sorted map of the
    // dictionary would have it.
    let d: BTreeMap<&[u8], &Any<'_>> = entries.iter().map(|(k, v)| (*k, v)).collect();
    let mut out = BTreeMap::new();
    let pad = merkle::pad_hash((info.piece_length / BLOCK_SIZE as u64).trailing_zeros());
    for (key, layer) in d {
        let mut root = [0u8; 32];
        if key.len() != 32 {
            return Err(field("piece layers", "key is not a 32-byte pieces root"));
        }
        root.copy_from_slice(key);
        let Some(file) = info
            .real_files()
            .find(|f| f.pieces_root == Some(root) && f.length > info.piece_length)
        else {
            // Unreferenced layers are harmless; skip them.
            continue;
        };
        let ctx = || format!("piece layers[{}]", file.display_path());
        let bytes = layer
            .as_bytes()
            .ok_or_else(|| field(ctx(), "not a string"))?;
        let expected = file.piece_count(info.piece_length);
        if bytes.len() % 32 != 0 || (bytes.len() / 32) as u64 != expected {
            return Err(field(
                ctx(),
                format!("{} bytes, expected {} hashes", bytes.len(), expected),
            ));
        }
        let hashes: Vec<Sha256> = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let width = hashes.len().next_power_of_two();
        if merkle::root_of(&hashes, width, pad) != Some(root) {
            return Err(Error::Inconsistent(format!(
                "piece layer of {} does not hash to its pieces root",
                file.display_path()
            )));
        }
        out.insert(root, hashes);
    }
    Ok(out)
}

fn path_list(v: &Any<'_>, ctx: &str, limits: &Limits) -> Result<Vec<String>, Error> {
    let list = v.as_list().ok_or_else(|| field(ctx, "not a list"))?;
    if list.len() > limits.max_path_depth {
        return Err(Error::Limit {
            what: "path depth",
            value: list.len() as u64,
            limit: limits.max_path_depth as u64,
        });
    }
    let mut out = Vec::with_capacity(list.len());
    let mut total = 0usize;
    for (i, c) in list.iter().enumerate() {
        let b = c
            .as_bytes()
            .ok_or_else(|| field(format!("{ctx}[{i}]"), "not a string"))?;
        let s = component(&format!("{ctx}[{i}]"), b, limits)?;
        total += s.len() + 1;
        out.push(s);
    }
    if total > limits.max_path {
        return Err(Error::Path {
            field: ctx.to_owned(),
            reason: format!("path is {total} bytes long, over {}", limits.max_path),
        });
    }
    Ok(out)
}

/// Validates one path component: it must be usable as one directory entry
/// name on Linux and must not move outside its parent.
pub fn component(ctx: &str, bytes: &[u8], limits: &Limits) -> Result<String, Error> {
    let bad = |reason: &str| Error::Path {
        field: ctx.to_owned(),
        reason: reason.to_owned(),
    };
    let s = std::str::from_utf8(bytes).map_err(|_| bad("not valid UTF-8"))?;
    if s.is_empty() {
        return Err(bad("empty component"));
    }
    if s == "." || s == ".." {
        return Err(bad(&format!("component is {s:?}")));
    }
    if s.contains('/') || s.contains('\\') {
        return Err(bad(&format!("component {s:?} contains a path separator")));
    }
    if s.contains('\0') {
        return Err(bad("component contains NUL"));
    }
    if s.len() > limits.max_component {
        return Err(bad(&format!(
            "component is {} bytes, over {}",
            s.len(),
            limits.max_component
        )));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Metainfo, Error> {
        Metainfo::from_bytes(s.as_bytes())
    }

    fn v1(files: &str) -> String {
        format!(
            "d4:infod5:files{files}4:name1:t12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"
        )
    }

    #[test]
    fn minimal_v1_parses() {
        let m = parse(&v1("ld6:lengthi3e4:pathl1:aeee")).expect("valid");
        assert_eq!(m.info.files[0].path.as_str(), "a");
        assert_eq!(m.info.version, Version::V1);
        assert!(m.info.v1_infohash.is_some());
    }

    #[test]
    fn without_raw_is_the_same_torrent_minus_the_copy() {
        let t = v1("ld6:lengthi3e4:pathl1:aeee");
        let full = parse(&t).expect("valid");
        let lean =
            Metainfo::from_bytes_without_raw(t.as_bytes(), &Limits::default()).expect("valid");
        assert!(lean.info.raw.is_empty());
        assert_eq!(lean.info.v1_infohash, full.info.v1_infohash);
        assert_eq!(lean.info.files, full.info.files);
        let span = Metainfo::info_span(t.as_bytes(), &Limits::default()).expect("span");
        assert_eq!(&t.as_bytes()[span], full.info.raw.as_slice());
    }

    #[test]
    fn unsafe_paths_name_the_field() {
        for (files, needle) in [
            ("ld6:lengthi3e4:pathl2:..eee", "info.files[0].path[0]"),
            ("ld6:lengthi3e4:pathl0:eee", "empty component"),
            ("ld6:lengthi3e4:pathl3:a/beee", "path separator"),
            ("ld6:lengthi3e4:pathl3:a\0beee", "NUL"),
            ("ld6:lengthi3e4:pathleee", "empty path"),
        ] {
            let err = parse(&v1(files)).expect_err(files).to_string();
            assert!(err.contains(needle), "{files}: {err}");
        }
    }

    #[test]
    fn wrong_piece_count_is_refused() {
        let err = parse(&v1("ld6:lengthi99999e4:pathl1:aeee"))
            .expect_err("7 pieces needed")
            .to_string();
        assert!(err.contains("info.pieces"), "{err}");
    }

    #[test]
    fn v2_piece_length_must_be_power_of_two() {
        let t = "d4:infod9:file treed1:ad0:d6:lengthi1e11:pieces root32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaeee12:meta versioni2e4:name1:t12:piece lengthi20000eee";
        let err = parse(t).expect_err("bad piece length").to_string();
        assert!(err.contains("power of two"), "{err}");
    }

    #[test]
    fn missing_info_and_wrong_types() {
        assert!(parse("de").is_err());
        assert!(parse("d4:infoi1ee").is_err());
        assert!(parse("d4:infod4:name1:tee").is_err());
    }
}
