//! Writes a new torrent's bencode straight into a byte buffer.
//!
//! Why not build a `bt_bencode::Value` and serialise it: every dictionary of
//! that tree is a `BTreeMap` of about 1.3 KB, and a hybrid of 20,000 files
//! has about 80,000 of them (a v2 leaf, its `""` wrapper, a v1 entry and a
//! pad entry per file), some 100 MB for a torrent of 4 MB. Here the only
//! allocation is the output. Dictionary keys are written in the sorted
//! order bencode requires, which each function below spells out; the tests
//! check the bytes against what `bt_bencode::to_vec` made of the old value
//! tree.

use std::io::Write as _;

use super::{InputFile, Options, Plan};
use crate::error::{Error, field};
use crate::hash::Sha256;
use crate::merkle::{self, BLOCK_SIZE};
use crate::metainfo::Attr;

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}:", b.len());
    out.extend_from_slice(b);
}

fn int(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "i{n}e");
}

fn path(out: &mut Vec<u8>, path: &[String]) {
    out.push(b'l');
    for c in path {
        bytes(out, c.as_bytes());
    }
    out.push(b'e');
}

fn attr(f: &InputFile) -> Option<String> {
    Attr {
        symlink: f.symlink_target.is_some(),
        executable: f.executable,
        ..Attr::default()
    }
    .encode()
}

/// The fields of a v1 file entry or a single-file `info` that sort before
/// `path`: `attr`, `length`.
fn head_fields(out: &mut Vec<u8>, f: &InputFile) {
    if let Some(a) = attr(f) {
        bytes(out, b"attr");
        bytes(out, a.as_bytes());
    }
    bytes(out, b"length");
    int(out, f.length);
}

/// `symlink path`, which sorts after every other per-file key.
fn symlink_field(out: &mut Vec<u8>, f: &InputFile) {
    if let Some(t) = &f.symlink_target {
        bytes(out, b"symlink path");
        path(out, t);
    }
}

/// The whole `.torrent`: `layers` are the v2 piece hashes of each file,
/// `pieces` the concatenated v1 piece hashes.
pub(super) fn encode(
    plan: &Plan,
    opts: &Options,
    layers: &[Vec<Sha256>],
    pieces: &[u8],
) -> Result<Vec<u8>, Error> {
    let pl = plan.piece_length;
    // v2 pieces roots, and the piece layers (files over one piece) by root.
    let mut roots: Vec<Option<Sha256>> = vec![None; plan.files.len()];
    let mut piece_layers: Vec<(Sha256, usize)> = Vec::new();
    if plan.version.has_v2() {
        let pad = merkle::pad_hash((pl / BLOCK_SIZE as u64).trailing_zeros());
        for (i, (f, layer)) in plan.files.iter().zip(layers).enumerate() {
            if f.length == 0 || f.symlink_target.is_some() {
                continue;
            }
            let root = if f.length > pl {
                let width = layer.len().next_power_of_two();
                let root = merkle::root_of(layer, width, pad)
                    .ok_or_else(|| field("piece layers", "bad layer width"))?;
                piece_layers.push((root, i));
                root
            } else {
                layer
                    .first()
                    .copied()
                    .ok_or_else(|| field("pieces root", "file was not hashed"))?
            };
            roots[i] = Some(root);
        }
        // Sorted keys; identical files share a root and one layer.
        piece_layers.sort_by_key(|a| a.0);
        piece_layers.dedup_by(|a, b| a.0 == b.0);
    }

    // About the encoded size, so that the buffer is not grown by doubling
    // (up to twice the torrent, three times while it moves); trimmed at
    // the end.
    let v1_list = plan.version.has_v1() && !plan.single_file;
    let mut size = 256 + plan.name.len() + pieces.len();
    size += piece_layers
        .iter()
        .map(|(_, i)| 40 + 32 * layers[*i].len())
        .sum::<usize>();
    size += opts
        .trackers
        .iter()
        .chain(&opts.web_seeds)
        .map(|u| 2 * u.len() + 16)
        .sum::<usize>();
    for (f, pad) in plan.files.iter().zip(&plan.pad_after) {
        let path_len: usize = f.path.iter().map(|c| c.len() + 4).sum();
        if v1_list {
            size += path_len + 32 + if *pad > 0 { 56 } else { 0 };
        }
        if plan.version.has_v2() {
            size += path_len + 80;
        }
    }
    let mut out = Vec::with_capacity(size);

    // Top level: announce, announce-list, created by, creation date, info,
    // piece layers, url-list.
    out.push(b'd');
    if let Some(first) = opts.trackers.first() {
        bytes(&mut out, b"announce");
        bytes(&mut out, first.as_bytes());
        if opts.trackers.len() > 1 {
            bytes(&mut out, b"announce-list");
            out.push(b'l');
            for t in &opts.trackers {
                out.push(b'l');
                bytes(&mut out, t.as_bytes());
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    if let Some(by) = &opts.created_by {
        bytes(&mut out, b"created by");
        bytes(&mut out, by.as_bytes());
    }
    if let Some(date) = opts.creation_date {
        bytes(&mut out, b"creation date");
        int(&mut out, date);
    }
    bytes(&mut out, b"info");
    info(&mut out, plan, &roots, pieces)?;
    if !piece_layers.is_empty() {
        bytes(&mut out, b"piece layers");
        out.push(b'd');
        for (root, i) in &piece_layers {
            bytes(&mut out, root);
            let _ = write!(out, "{}:", layers[*i].len() * 32);
            for h in &layers[*i] {
                out.extend_from_slice(h);
            }
        }
        out.push(b'e');
    }
    if !opts.web_seeds.is_empty() {
        bytes(&mut out, b"url-list");
        out.push(b'l');
        for u in &opts.web_seeds {
            bytes(&mut out, u.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out.shrink_to_fit();
    Ok(out)
}

/// The `info` dictionary: attr, file tree, files, length, meta version,
/// name, piece length, pieces, symlink path.
fn info(
    out: &mut Vec<u8>,
    plan: &Plan,
    roots: &[Option<Sha256>],
    pieces: &[u8],
) -> Result<(), Error> {
    let v1 = plan.version.has_v1();
    let v2 = plan.version.has_v2();
    let single_v1 = v1 && plan.single_file;
    out.push(b'd');
    if single_v1 && let Some(a) = attr(&plan.files[0]) {
        bytes(out, b"attr");
        bytes(out, a.as_bytes());
    }
    if v2 {
        bytes(out, b"file tree");
        let single = [plan.name.clone()];
        let entries: Vec<(&[String], usize)> = if plan.single_file {
            vec![(&single[..], 0)]
        } else {
            plan.files
                .iter()
                .enumerate()
                .map(|(i, f)| (&f.path[..], i))
                .collect()
        };
        tree(out, plan, roots, &entries, 0)?;
    }
    if v1 && !plan.single_file {
        bytes(out, b"files");
        out.push(b'l');
        for (f, pad) in plan.files.iter().zip(&plan.pad_after) {
            // attr, length, path, symlink path.
            out.push(b'd');
            head_fields(out, f);
            bytes(out, b"path");
            path(out, &f.path);
            symlink_field(out, f);
            out.push(b'e');
            if *pad > 0 {
                out.push(b'd');
                bytes(out, b"attr");
                bytes(out, b"p");
                bytes(out, b"length");
                int(out, *pad);
                bytes(out, b"path");
                path(out, &[".pad".to_owned(), pad.to_string()]);
                out.push(b'e');
            }
        }
        out.push(b'e');
    }
    if single_v1 {
        bytes(out, b"length");
        int(out, plan.files[0].length);
    }
    if v2 {
        bytes(out, b"meta version");
        int(out, 2);
    }
    bytes(out, b"name");
    bytes(out, plan.name.as_bytes());
    bytes(out, b"piece length");
    int(out, plan.piece_length);
    if v1 {
        bytes(out, b"pieces");
        bytes(out, pieces);
    }
    if single_v1 {
        symlink_field(out, &plan.files[0]);
    }
    out.push(b'e');
    Ok(())
}

/// One directory of the v2 file tree: `entries` are (path, file index),
/// sorted by path, all sharing their first `depth` components.
fn tree(
    out: &mut Vec<u8>,
    plan: &Plan,
    roots: &[Option<Sha256>],
    entries: &[(&[String], usize)],
    depth: usize,
) -> Result<(), Error> {
    out.push(b'd');
    let mut rest = entries;
    while let Some((first, _)) = rest.first() {
        let name = first
            .get(depth)
            .ok_or_else(|| field("file tree", "a file is also a directory"))?;
        let n = rest
            .iter()
            .take_while(|(p, _)| p.get(depth) == Some(name))
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        bytes(out, name.as_bytes());
        if first.len() > depth + 1 {
            tree(out, plan, roots, group, depth + 1)?;
            continue;
        }
        if group.len() > 1 {
            return Err(field("file tree", "a file is also a directory"));
        }
        let i = group[0].1;
        let f = &plan.files[i];
        // {"": {attr, length, pieces root, symlink path}}
        out.push(b'd');
        bytes(out, b"");
        out.push(b'd');
        head_fields(out, f);
        if let Some(root) = &roots[i] {
            bytes(out, b"pieces root");
            bytes(out, root);
        }
        symlink_field(out, f);
        out.push(b'e');
        out.push(b'e');
    }
    out.push(b'e');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bt_bencode::value::Number;
    use bt_bencode::{ByteString, Value};

    use super::*;
    use crate::create::{MemSource, hash_pieces};
    use crate::metainfo::Version;

    // The value-tree encoder this module replaced, kept as the reference.

    fn v_int(n: u64) -> Value {
        Value::Int(Number::Unsigned(n))
    }

    fn v_bstr(s: impl Into<Vec<u8>>) -> Value {
        Value::ByteStr(ByteString::from(s.into()))
    }

    fn key(s: &str) -> ByteString {
        ByteString::from(s)
    }

    fn path_value(path: &[String]) -> Value {
        Value::List(path.iter().map(|c| v_bstr(c.as_bytes())).collect())
    }

    fn common_fields(d: &mut BTreeMap<ByteString, Value>, f: &InputFile) {
        if let Some(a) = attr(f) {
            d.insert(key("attr"), v_bstr(a));
        }
        d.insert(key("length"), v_int(f.length));
        if let Some(t) = &f.symlink_target {
            d.insert(key("symlink path"), path_value(t));
        }
    }

    fn reference(plan: &Plan, opts: &Options, layers: &[Vec<Sha256>], pieces: &[u8]) -> Vec<u8> {
        let pl = plan.piece_length;
        let mut info: BTreeMap<ByteString, Value> = BTreeMap::new();
        info.insert(key("name"), v_bstr(plan.name.as_bytes()));
        info.insert(key("piece length"), v_int(pl));
        if plan.version.has_v1() {
            info.insert(key("pieces"), v_bstr(pieces));
        }
        let mut piece_layers: BTreeMap<ByteString, Value> = BTreeMap::new();
        if plan.version.has_v2() {
            info.insert(key("meta version"), v_int(2));
            let pad = merkle::pad_hash((pl / BLOCK_SIZE as u64).trailing_zeros());
            let mut tree: BTreeMap<ByteString, Value> = BTreeMap::new();
            for (f, layer) in plan.files.iter().zip(layers) {
                let mut leaf = BTreeMap::new();
                common_fields(&mut leaf, f);
                if f.length > 0 && f.symlink_target.is_none() {
                    let root = if f.length > pl {
                        let width = layer.len().next_power_of_two();
                        let root = merkle::root_of(layer, width, pad).expect("root");
                        piece_layers
                            .insert(ByteString::from(root.to_vec()), v_bstr(layer.concat()));
                        root
                    } else {
                        layer[0]
                    };
                    leaf.insert(key("pieces root"), v_bstr(root.to_vec()));
                }
                let mut node = &mut tree;
                let path: &[String] = if plan.single_file {
                    std::slice::from_ref(&plan.name)
                } else {
                    &f.path
                };
                for c in path {
                    let child = node
                        .entry(key(c))
                        .or_insert_with(|| Value::Dict(BTreeMap::new()));
                    node = child.as_dict_mut().expect("dict");
                }
                node.insert(key(""), Value::Dict(leaf));
            }
            info.insert(key("file tree"), Value::Dict(tree));
        }
        if plan.version.has_v1() {
            if plan.single_file {
                let mut d = BTreeMap::new();
                common_fields(&mut d, &plan.files[0]);
                info.extend(d);
            } else {
                let mut list = Vec::new();
                for (f, pad) in plan.files.iter().zip(&plan.pad_after) {
                    let mut d = BTreeMap::new();
                    common_fields(&mut d, f);
                    d.insert(key("path"), path_value(&f.path));
                    list.push(Value::Dict(d));
                    if *pad > 0 {
                        let mut p = BTreeMap::new();
                        p.insert(key("attr"), v_bstr("p"));
                        p.insert(key("length"), v_int(*pad));
                        p.insert(
                            key("path"),
                            path_value(&[".pad".to_owned(), pad.to_string()]),
                        );
                        list.push(Value::Dict(p));
                    }
                }
                info.insert(key("files"), Value::List(list));
            }
        }
        let mut top: BTreeMap<ByteString, Value> = BTreeMap::new();
        if let Some(first) = opts.trackers.first() {
            top.insert(key("announce"), v_bstr(first.as_bytes()));
            if opts.trackers.len() > 1 {
                let tiers = opts
                    .trackers
                    .iter()
                    .map(|t| Value::List(vec![v_bstr(t.as_bytes())]))
                    .collect();
                top.insert(key("announce-list"), Value::List(tiers));
            }
        }
        if let Some(by) = &opts.created_by {
            top.insert(key("created by"), v_bstr(by.as_bytes()));
        }
        if let Some(date) = opts.creation_date {
            top.insert(key("creation date"), Value::Int(Number::Signed(date)));
        }
        top.insert(key("info"), Value::Dict(info));
        if !piece_layers.is_empty() {
            top.insert(key("piece layers"), Value::Dict(piece_layers));
        }
        if !opts.web_seeds.is_empty() {
            let seeds = opts
                .web_seeds
                .iter()
                .map(|u| v_bstr(u.as_bytes()))
                .collect();
            top.insert(key("url-list"), Value::List(seeds));
        }
        bt_bencode::to_vec(&Value::Dict(top)).expect("encode")
    }

    fn file(path: &str, len: usize) -> InputFile {
        InputFile {
            path: path.split('/').map(str::to_owned).collect(),
            length: len as u64,
            executable: path.contains("bin/"),
            symlink_target: None,
        }
    }

    fn check(files: Vec<InputFile>, single: bool, opts: &Options) {
        let mut mem = BTreeMap::new();
        for f in &files {
            let data: Vec<u8> = (0..f.length).map(|j| (j * 13 + f.length) as u8).collect();
            mem.insert(f.path.clone(), data);
        }
        let src = MemSource(mem);
        let plan = Plan::new("root ü", single, files, opts).expect("plan");
        let mut layers = vec![Vec::new(); plan.files.len()];
        let mut pieces = Vec::new();
        for r in hash_pieces(&plan, &src, 2, true, &|_| {}) {
            let r = r.expect("hashed");
            if plan.version.has_v2() {
                layers[r.file].extend(r.v2);
            }
            for h in r.v1 {
                pieces.extend_from_slice(&h);
            }
        }
        let ours = encode(&plan, opts, &layers, &pieces).expect("encode");
        let theirs = reference(&plan, opts, &layers, &pieces);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{:?} single {single}",
            opts.version
        );
    }

    #[test]
    fn bytes_match_the_value_tree_encoder() {
        let mut link = file("d/link", 0);
        link.symlink_target = Some(vec!["a".to_owned(), "x".to_owned()]);
        let files = vec![
            file("b/x.bin", 100_000),
            file("a", 5000),
            file("a2/ö/deep/er", 40_000),
            file("bin/tool", 16384),
            file("c/exact", 32768),
            file("empty", 0),
            file("b/y", 3),
            file("b/y2", 3),
            link,
        ];
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            for piece_length in [16384, 32768, 1 << 20] {
                let mut opts = Options {
                    version,
                    piece_length: Some(piece_length),
                    ..Options::default()
                };
                check(files.clone(), false, &opts);
                check(vec![file("one", 70_000)], true, &opts);
                check(vec![file("bin/one", 7)], true, &opts);
                opts.trackers = vec!["http://t/a".into(), "udp://u:1".into()];
                opts.web_seeds = vec!["http://w/".into()];
                opts.created_by = Some("swarmsync/test".into());
                opts.creation_date = Some(1_700_000_000);
                check(files.clone(), false, &opts);
                opts.trackers.truncate(1);
                check(vec![file("one", 70_000)], true, &opts);
            }
        }
    }

    #[test]
    fn identical_files_share_one_piece_layer() {
        let opts = Options {
            version: Version::V2,
            piece_length: Some(16384),
            ..Options::default()
        };
        let mut same = file("b", 50_000);
        same.executable = false;
        check(vec![file("a", 50_000), same], false, &opts);
    }
}
