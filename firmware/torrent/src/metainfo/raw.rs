//! Borrowed decoding of metainfo: serde visitors over `bt_bencode`, no
//! value tree.
//!
//! Why not `bt_bencode::Value`: every decoded dictionary is a `BTreeMap`
//! with owned keys and values, about 1.3 KB each, and a torrent has one per
//! v1 file entry and one or two per v2 file-tree node. 20,000 files made a
//! 3.8 MB torrent cost 84 MB to parse (docs/benchmarks.md). Here byte
//! strings borrow from the input, dictionaries we know are decoded straight
//! into their fields, and the two parts that grow with the file count (the
//! v1 `files` list and the v2 `file tree`) become [`File`]s as they are
//! read, so memory is about the input plus the resulting `Vec<File>`.
//!
//! Field types are not trusted to serde: every field is decoded as an
//! [`Any`] and checked by metainfo.rs, in the order it always checked them,
//! so errors keep naming the field (`info.files[3].length`). The file lists
//! cannot wait for that order without holding their raw entries, so their
//! first error is kept as a value (not raised) and reported when its turn
//! comes; a torrent with several faults reports the same one as before.
//!
//! Recursion is bounded by [`crate::bencode::validate`], which every input
//! passes first.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Limits, attrs, component, path_list, tree_ctx, u64_field};
use crate::error::{Error, field, missing};
use crate::metainfo::{File, FilePath};

/// Any bencoded value, borrowing its byte strings. Dictionaries keep their
/// entries in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Any<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Any<'a>>),
    Dict(Vec<(&'a [u8], Any<'a>)>),
}

impl<'a> Any<'a> {
    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Any::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Any::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub(super) fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Any::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub(super) fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub(super) fn as_list(&self) -> Option<&[Any<'a>]> {
        match self {
            Any::List(l) => Some(l),
            _ => None,
        }
    }

    pub(super) fn as_dict(&self) -> Option<&[(&'a [u8], Any<'a>)]> {
        match self {
            Any::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Any<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a bencoded value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Any<'de>, E> {
        // bencode::validate has refused integers outside i64.
        i64::try_from(v)
            .map(Any::Int)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Any<'de>, E> {
        Ok(Any::Int(v))
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Any<'de>, E> {
        Ok(Any::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Any::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<&'de [u8]>()? {
            out.push((k, map.next_value()?));
        }
        Ok(Any::Dict(out))
    }
}

/// Visitor methods for the shapes a visitor does not want: each skips the
/// value and returns `self.wrong()`.
macro_rules! wrong_shapes {
    ($($shape:ident)*) => { $( wrong_shapes!(@ $shape); )* };
    (@ int) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.wrong())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.wrong())
        }
    };
    (@ bytes) => {
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Ok(self.wrong())
        }
    };
    (@ list) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(self.wrong())
        }
    };
    (@ dict) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(self.wrong())
        }
    };
}

/// The fields of a v1 file entry, a v2 file-tree leaf or a single-file
/// `info` that describe one file.
#[derive(Debug, Default)]
pub(super) struct RawEntry<'a> {
    pub length: Option<Any<'a>>,
    pub path: Option<Any<'a>>,
    pub attr: Option<Any<'a>>,
    pub symlink_path: Option<Any<'a>>,
    pub pieces_root: Option<Any<'a>>,
}

/// A dictionary decoded as a [`RawEntry`], or `None` for another type.
struct EntryVisitor;

impl EntryVisitor {
    fn wrong<'a>(self) -> Option<RawEntry<'a>> {
        None
    }
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Option<RawEntry<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a file entry")
    }

    wrong_shapes!(int bytes list);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut e = RawEntry::default();
        while let Some(k) = map.next_key::<&'de [u8]>()? {
            let slot = match k {
                b"length" => &mut e.length,
                b"path" => &mut e.path,
                b"attr" => &mut e.attr,
                b"symlink path" => &mut e.symlink_path,
                b"pieces root" => &mut e.pieces_root,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Some(e))
    }
}

struct Entry<'a>(Option<RawEntry<'a>>);

impl<'de> de::Deserialize<'de> for Entry<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor).map(Entry)
    }
}

/// The `info` dictionary. The file lists are already [`File`]s, or the
/// first error found in them.
#[derive(Debug, Default)]
pub(super) struct RawInfo<'a> {
    pub name: Option<Any<'a>>,
    pub piece_length: Option<Any<'a>>,
    pub private: Option<Any<'a>>,
    pub meta_version: Option<Any<'a>>,
    pub pieces: Option<Any<'a>>,
    /// `length`, `attr`, `symlink path` of a single-file torrent.
    pub single: RawEntry<'a>,
    pub files: Option<Result<Vec<File>, Error>>,
    pub file_tree: Option<Result<Vec<File>, Error>>,
}

/// Decodes `info`: `None` when it is not a dictionary.
pub(super) struct InfoSeed<'l> {
    pub limits: &'l Limits,
    pub sizes: Sizes,
}

/// How many files the two lists of an `info` dictionary hold, counted on
/// its bytes before decoding, so that each `Vec<File>` is allocated once
/// at its size: one grown by doubling holds up to twice that, and three
/// times while it moves.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sizes {
    pub files: usize,
    pub tree: usize,
}

impl Sizes {
    pub(super) fn of(raw: &[u8], limits: &Limits) -> Sizes {
        Sizes {
            files: files_len(raw, limits),
            tree: tree_len(raw, limits),
        }
    }
}

/// The number of files of the v2 `file tree` of the `info` dictionary
/// `raw` (already validated): the empty keys in it, at most
/// `limits.max_files`; 0 without one.
fn tree_len(raw: &[u8], limits: &Limits) -> usize {
    let count = || {
        let tree = &raw[crate::bencode::top_level_span(raw, b"file tree", &limits.bencode)?];
        // Positions of the dictionaries being read, innermost last; lists
        // and other values are skipped whole.
        let mut depth = 0usize;
        let mut pos = 0usize;
        let mut n = 0usize;
        loop {
            match *tree.get(pos)? {
                b'd' => {
                    depth += 1;
                    pos += 1;
                }
                b'e' => {
                    depth = depth.checked_sub(1)?;
                    pos += 1;
                    if depth == 0 {
                        return Some(n);
                    }
                }
                _ if depth == 0 => return Some(0),
                _ => {
                    // A key, then its value: descend into a dictionary,
                    // skip anything else.
                    let key_end = pos
                        + crate::bencode::first_value_end(&tree[pos..], &limits.bencode).ok()?;
                    if tree[pos..key_end] == b"0:"[..] {
                        n += 1;
                        if n >= limits.max_files {
                            return Some(n);
                        }
                    }
                    pos = key_end;
                    if tree.get(pos) != Some(&b'd') {
                        pos +=
                            crate::bencode::first_value_end(&tree[pos..], &limits.bencode).ok()?;
                    }
                }
            }
        }
    };
    count().unwrap_or(0)
}

/// The number of entries of the `files` list of the `info` dictionary
/// `raw` (already validated), at most `limits.max_files`; 0 without one.
fn files_len(raw: &[u8], limits: &Limits) -> usize {
    let count = || {
        let list = &raw[crate::bencode::top_level_span(raw, b"files", &limits.bencode)?];
        if list.first() != Some(&b'l') {
            return None;
        }
        let mut pos = 1;
        let mut n = 0usize;
        while list.get(pos).is_some_and(|b| *b != b'e') && n < limits.max_files {
            pos += crate::bencode::first_value_end(&list[pos..], &limits.bencode).ok()?;
            n += 1;
        }
        Some(n)
    };
    count().unwrap_or(0)
}

impl InfoSeed<'_> {
    fn wrong<'a>(self) -> Option<RawInfo<'a>> {
        None
    }
}

impl<'de> DeserializeSeed<'de> for InfoSeed<'_> {
    type Value = Option<RawInfo<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InfoSeed<'_> {
    type Value = Option<RawInfo<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an info dictionary")
    }

    wrong_shapes!(int bytes list);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits;
        let mut info = RawInfo::default();
        while let Some(k) = map.next_key::<&'de [u8]>()? {
            let slot = match k {
                b"files" => {
                    info.files = Some(map.next_value_seed(FilesSeed {
                        limits,
                        capacity: self.sizes.files,
                    })?);
                    continue;
                }
                b"file tree" => {
                    info.file_tree = Some(map.next_value_seed(TreeSeed {
                        limits,
                        capacity: self.sizes.tree,
                    })?);
                    continue;
                }
                b"name" => &mut info.name,
                b"piece length" => &mut info.piece_length,
                b"private" => &mut info.private,
                b"meta version" => &mut info.meta_version,
                b"pieces" => &mut info.pieces,
                b"length" => &mut info.single.length,
                b"attr" => &mut info.single.attr,
                b"symlink path" => &mut info.single.symlink_path,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Some(info))
    }
}

/// The v1 `files` list, turned into [`File`]s entry by entry.
struct FilesSeed<'l> {
    limits: &'l Limits,
    capacity: usize,
}

impl FilesSeed<'_> {
    fn wrong(self) -> Result<Vec<File>, Error> {
        Err(field("info.files", "not a list"))
    }
}

impl<'de> DeserializeSeed<'de> for FilesSeed<'_> {
    type Value = Result<Vec<File>, Error>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FilesSeed<'_> {
    type Value = Result<Vec<File>, Error>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a file list")
    }

    wrong_shapes!(int bytes dict);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits;
        let mut files = Vec::with_capacity(self.capacity.min(limits.max_files));
        let mut first_err = None;
        let mut count = 0usize;
        loop {
            // Past an error or the limit, only count what is left.
            if first_err.is_some() || count >= limits.max_files {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                count += 1;
                continue;
            }
            let Some(Entry(entry)) = seq.next_element::<Entry<'de>>()? else {
                break;
            };
            let ctx = format!("info.files[{count}]");
            count += 1;
            let result = match entry {
                Some(e) => v1_file(&e, &ctx, limits),
                None => Err(field(&ctx, "not a dictionary")),
            };
            match result {
                Ok(f) => files.push(f),
                Err(e) => first_err = Some(e),
            }
        }
        if count > limits.max_files {
            return Ok(Err(Error::Limit {
                what: "file count",
                value: count as u64,
                limit: limits.max_files as u64,
            }));
        }
        Ok(match first_err {
            Some(e) => Err(e),
            None => Ok(files),
        })
    }
}

/// One entry of the v1 `files` list.
fn v1_file(e: &RawEntry<'_>, ctx: &str, limits: &Limits) -> Result<File, Error> {
    let length = u64_field(e.length.as_ref(), "length", ctx)?;
    let path_v = e
        .path
        .as_ref()
        .ok_or_else(|| missing(format!("{ctx}.path")))?;
    let path = path_list(path_v, &format!("{ctx}.path"), limits)?;
    if path.is_empty() {
        return Err(Error::Path {
            field: format!("{ctx}.path"),
            reason: "empty path".into(),
        });
    }
    let (attr, symlink_target) = attrs(e, ctx, limits)?;
    Ok(File {
        path: FilePath::new(path),
        length,
        offset: 0,
        pieces_root: None,
        attr,
        symlink_target,
    })
}

/// The v2 `file tree`, walked depth-first into a flat list of [`File`]s.
struct TreeSeed<'l> {
    limits: &'l Limits,
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = Result<Vec<File>, Error>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let mut walk = Walk {
            limits: self.limits,
            out: Vec::with_capacity(self.capacity.min(self.limits.max_files)),
            path: Vec::new(),
            err: None,
        };
        NodeSeed { walk: &mut walk }.deserialize(d)?;
        Ok(match walk.err {
            Some(e) => Err(e),
            None => Ok(walk.out),
        })
    }
}

/// State of a file-tree walk: the path of the node being read, the files
/// found so far and the first error (after which the rest is only skipped).
struct Walk<'l> {
    limits: &'l Limits,
    out: Vec<File>,
    path: Vec<String>,
    err: Option<Error>,
}

impl Walk<'_> {
    fn fail(&mut self, e: Error) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    fn depth_check(&mut self) {
        if self.path.len() >= self.limits.max_path_depth {
            self.fail(Error::Limit {
                what: "path depth",
                value: self.path.len() as u64 + 1,
                limit: self.limits.max_path_depth as u64,
            });
        }
    }

    /// A file entry (the value under the empty key) at the current path.
    fn leaf(&mut self, entry: Option<RawEntry<'_>>) -> Result<(), Error> {
        let ctx = tree_ctx(&self.path);
        let e = entry.ok_or_else(|| field(&ctx, "file entry is not a dictionary"))?;
        let length = u64_field(e.length.as_ref(), "length", &ctx)?;
        let pieces_root = match &e.pieces_root {
            Some(v) => {
                let b = v
                    .as_bytes()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| field(format!("{ctx}.pieces root"), "not 32 bytes"))?;
                let mut h = [0u8; 32];
                h.copy_from_slice(b);
                Some(h)
            }
            None => None,
        };
        let (attr, symlink_target) = attrs(&e, &ctx, self.limits)?;
        if length > 0 && pieces_root.is_none() && !attr.pad {
            return Err(missing(format!("{ctx}.pieces root")));
        }
        if self.out.len() >= self.limits.max_files {
            return Err(Error::Limit {
                what: "file count",
                value: self.out.len() as u64 + 1,
                limit: self.limits.max_files as u64,
            });
        }
        self.out.push(File {
            path: FilePath::new(&self.path),
            length,
            offset: 0,
            pieces_root,
            attr,
            symlink_target,
        });
        Ok(())
    }

    /// Puts the files of a directory whose keys were not in ascending
    /// order into key order, keeping only the last of repeated keys: the
    /// order and the choice a sorted map of the dictionary gives, which is
    /// BEP 52's canonical file order.
    fn reorder(&mut self, start: usize, children: &[(&[u8], usize)]) {
        let tail: Vec<File> = self.out.drain(start..).collect();
        let ends = children
            .iter()
            .skip(1)
            .map(|(_, s)| s - start)
            .chain(std::iter::once(tail.len()));
        let mut ranges: Vec<(&[u8], std::ops::Range<usize>)> = children
            .iter()
            .zip(ends)
            .map(|((k, s), e)| (*k, s - start..e))
            .collect();
        ranges.sort_by(|a, b| a.0.cmp(b.0));
        // After a stable sort, repeated keys are adjacent in input order.
        let mut keep: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, (k, r)) in ranges.iter().enumerate() {
            if ranges.get(i + 1).is_none_or(|(next, _)| next != k) {
                keep.push(r.clone());
            }
        }
        let mut slots: Vec<Option<File>> = tail.into_iter().map(Some).collect();
        for r in keep {
            self.out
                .extend(slots[r].iter_mut().filter_map(Option::take));
        }
    }
}

/// One node of the file tree: a directory or, under the empty key, a file.
struct NodeSeed<'w, 'l> {
    walk: &'w mut Walk<'l>,
}

impl NodeSeed<'_, '_> {
    fn wrong(self) {
        let ctx = tree_ctx(&self.walk.path);
        self.walk.fail(field(ctx, "not a dictionary"));
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a file tree node")
    }

    wrong_shapes!(int bytes list);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.walk;
        let start = walk.out.len();
        // The file entry under "", if any (the last one if repeated).
        let mut entry: Option<Option<RawEntry<'de>>> = None;
        // Directory children: key and where their files start in `out`.
        let mut children: Vec<(&'de [u8], usize)> = Vec::new();
        let mut sorted = true;
        while let Some(key) = map.next_key::<&'de [u8]>()? {
            if walk.err.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // A file entry is the only key of its node.
            if key.is_empty() && children.is_empty() {
                entry = Some(map.next_value::<Entry<'de>>()?.0);
                continue;
            }
            if key.is_empty() || entry.is_some() {
                walk.fail(Error::Path {
                    field: tree_ctx(&walk.path),
                    reason: "empty path component".into(),
                });
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if children.is_empty() {
                walk.depth_check();
            }
            if let Some((last, _)) = children.last() {
                sorted &= *last < key;
            }
            children.push((key, walk.out.len()));
            let name = match component(&tree_ctx(&walk.path), key, walk.limits) {
                Ok(name) => name,
                Err(e) => {
                    walk.fail(e);
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if walk.err.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            walk.path.push(name);
            map.next_value_seed(NodeSeed { walk: &mut *walk })?;
            walk.path.pop();
        }
        if walk.err.is_some() {
            return Ok(());
        }
        match entry {
            Some(_) if walk.path.is_empty() => {
                walk.fail(Error::Path {
                    field: tree_ctx(&walk.path),
                    reason: "empty path component".into(),
                });
            }
            Some(e) => {
                if let Err(e) = walk.leaf(e) {
                    walk.fail(e);
                }
            }
            None if children.is_empty() => walk.depth_check(),
            None if !sorted => walk.reorder(start, &children),
            None => {}
        }
        Ok(())
    }
}

/// The top-level dictionary of a `.torrent` file.
#[derive(Debug, Default)]
pub(super) struct RawTorrent<'a> {
    /// `Some(None)`: present but not a dictionary.
    pub info: Option<Option<RawInfo<'a>>>,
    pub announce: Option<Any<'a>>,
    pub announce_list: Option<Any<'a>>,
    pub url_list: Option<Any<'a>>,
    pub piece_layers: Option<Any<'a>>,
    pub creation_date: Option<Any<'a>>,
    pub created_by: Option<Any<'a>>,
    pub comment: Option<Any<'a>>,
}

/// Decodes a whole torrent: `None` when it is not a dictionary.
pub(super) struct TorrentSeed<'l> {
    pub limits: &'l Limits,
    /// Of the `info` dictionary.
    pub sizes: Sizes,
}

impl TorrentSeed<'_> {
    fn wrong<'a>(self) -> Option<RawTorrent<'a>> {
        None
    }
}

impl<'de> DeserializeSeed<'de> for TorrentSeed<'_> {
    type Value = Option<RawTorrent<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TorrentSeed<'_> {
    type Value = Option<RawTorrent<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a torrent dictionary")
    }

    wrong_shapes!(int bytes list);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut t = RawTorrent::default();
        while let Some(k) = map.next_key::<&'de [u8]>()? {
            let slot = match k {
                b"info" => {
                    t.info = Some(map.next_value_seed(InfoSeed {
                        limits: self.limits,
                        sizes: self.sizes,
                    })?);
                    continue;
                }
                b"announce" => &mut t.announce,
                b"announce-list" => &mut t.announce_list,
                b"url-list" => &mut t.url_list,
                b"piece layers" => &mut t.piece_layers,
                b"creation date" => &mut t.creation_date,
                b"created by" => &mut t.created_by,
                b"comment" => &mut t.comment,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Some(t))
    }
}

/// Runs `seed` over all of `buf` (trailing bytes are an error).
pub(super) fn decode<'de, S: DeserializeSeed<'de>>(
    buf: &'de [u8],
    seed: S,
    what: &'static str,
) -> Result<S::Value, Error> {
    let decode_err = |e: bt_bencode::Error| Error::Decode {
        what,
        reason: e.to_string(),
    };
    let mut de = bt_bencode::Deserializer::from_slice(buf);
    let value = seed.deserialize(&mut de).map_err(decode_err)?;
    de.end().map_err(decode_err)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(bytes: &str) -> Result<Vec<File>, Error> {
        decode(
            bytes.as_bytes(),
            TreeSeed {
                limits: &Limits::default(),
                capacity: 0,
            },
            "file tree",
        )
        .expect("decodes")
    }

    fn leaf(len: u32) -> String {
        format!("d0:d6:lengthi{len}e11:pieces root32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaee")
    }

    fn paths(files: &[File]) -> Vec<String> {
        files.iter().map(File::display_path).collect()
    }

    #[test]
    fn any_borrows_and_keeps_order() {
        let v: Any<'_> = bt_bencode::from_slice(b"d1:bi-3e1:al1:xee").expect("any");
        let d = v.as_dict().expect("dict");
        assert_eq!(d[0].0, b"b");
        assert_eq!(d[0].1.as_i64(), Some(-3));
        assert_eq!(d[0].1.as_u64(), None);
        assert_eq!(d[1].1.as_list().map(<[_]>::len), Some(1));
    }

    #[test]
    fn files_len_counts_the_v1_list() {
        let l = Limits::default();
        let info = b"d5:filesld6:lengthi1eeli1eei3ee4:name1:xe";
        assert_eq!(files_len(info, &l), 3);
        assert_eq!(files_len(b"d5:filesi1ee", &l), 0);
        assert_eq!(files_len(b"d4:name1:xe", &l), 0);
        let small = Limits {
            max_files: 2,
            ..Limits::default()
        };
        assert_eq!(files_len(info, &small), 2);
    }

    #[test]
    fn tree_len_counts_the_v2_leaves() {
        let l = Limits::default();
        let t = format!(
            "d9:file treed1:ad1:c{}1:d{}e1:b{}1:zdee4:name1:xe",
            leaf(1),
            leaf(2),
            leaf(3)
        );
        assert_eq!(tree_len(t.as_bytes(), &l), 3);
        assert_eq!(tree_len(b"d9:file treei1ee", &l), 0);
        assert_eq!(tree_len(b"d4:name1:xe", &l), 0);
        assert_eq!(tree_len(b"d9:file treed1:ali1eeee", &l), 0);
    }

    #[test]
    fn file_tree_walks_in_key_order() {
        let t = format!("d1:ad1:c{}1:d{}e1:b{}e", leaf(1), leaf(2), leaf(3));
        assert_eq!(paths(&tree(&t).expect("tree")), ["a/c", "a/d", "b"]);
    }

    #[test]
    fn unsorted_file_tree_gets_key_order_and_last_repeat() {
        // Keys out of order, and "a" twice: like a sorted map of the
        // dictionary, "a" is the second one and comes first.
        let t = format!(
            "d1:b{}1:ad1:x{}e1:ad1:y{}1:z{}ee",
            leaf(1),
            leaf(2),
            leaf(3),
            leaf(4)
        );
        let files = tree(&t).expect("tree");
        assert_eq!(paths(&files), ["a/y", "a/z", "b"]);
        assert_eq!(files[0].length, 3);
    }

    #[test]
    fn file_tree_errors_name_the_node() {
        let err = tree("d1:ai1ee").expect_err("not a dict").to_string();
        assert!(err.contains("info.file tree/a: not a dictionary"), "{err}");
        let err = tree(&format!("d1:a{}e", "d0:i1ee"))
            .expect_err("entry")
            .to_string();
        assert!(err.contains("file entry is not a dictionary"), "{err}");
        let err = tree(&format!("d0:{}e", "de"))
            .expect_err("root")
            .to_string();
        assert!(err.contains("empty path component"), "{err}");
        let err = tree(&format!("d2:..{}e", leaf(1)))
            .expect_err("dotdot")
            .to_string();
        assert!(err.contains("info.file tree/"), "{err}");
        let err = tree("d1:ad0:d6:lengthi5eeee")
            .expect_err("no root")
            .to_string();
        assert!(
            err.contains("missing field info.file tree/a.pieces root"),
            "{err}"
        );
    }
}
