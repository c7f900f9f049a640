//! Interop with the real libtorrent 2.0.8 (python3-libtorrent under
//! /usr/bin/python3, driven through tests/interop/lt.py).
//!
//! These tests fail, never skip, when libtorrent is missing: tools/setup
//! installs it, so its absence is a broken machine, not an optional feature.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";
const KIB: u64 = 1024;
const PIECE_SIZES: [u64; 4] = [16 * KIB, 64 * KIB, 1024 * KIB, 4096 * KIB];
/// Upper bound for any one child process (libtorrent's recheck has its own).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

// --- running things -------------------------------------------------------------

use crate::common::Run;

/// Runs `cmd` to completion, killing it after [`CHILD_TIMEOUT`].
fn run(cmd: &mut Command) -> Run {
    crate::common::run_within(cmd, CHILD_TIMEOUT)
}

fn swarmsync<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(env!("CARGO_BIN_EXE_swarmsync"))
        .args(args)
        .env("SWARMSYNC_LOG", "warn"))
}

/// Runs tests/interop/lt.py under Debian's python with libtorrent.
fn lt<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/lt.py");
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run tools/setup (python3-libtorrent)"
    );
    run(Command::new(PYTHON).arg(script).args(args))
}

/// The `v1:` and `v2:` lines of a tool's output.
#[derive(Debug, PartialEq, Eq)]
struct Hashes {
    v1: Option<String>,
    v2: Option<String>,
}

fn hashes(stdout: &str) -> Hashes {
    let line = |p: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(p).map(|h| h.trim().to_owned()))
    };
    Hashes {
        v1: line("v1: "),
        v2: line("v2: "),
    }
}

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no `{key}:` line in\n{stdout}"))
}

fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

// --- test trees -----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    V1,
    V2,
    Hybrid,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::V1, Kind::V2, Kind::Hybrid];

    fn flag(self) -> &'static str {
        match self {
            Kind::V1 => "--v1",
            Kind::V2 => "--v2",
            Kind::Hybrid => "--hybrid",
        }
    }

    fn check_presence(self, h: &Hashes, who: &str) {
        let (v1, v2) = match self {
            Kind::V1 => (true, false),
            Kind::V2 => (false, true),
            Kind::Hybrid => (true, true),
        };
        assert_eq!(
            h.v1.is_some(),
            v1,
            "{who}: v1 infohash presence for {self:?}: {h:?}"
        );
        assert_eq!(
            h.v2.is_some(),
            v2,
            "{who}: v2 infohash presence for {self:?}: {h:?}"
        );
    }
}

/// A generated tree at `<save>/tree`.
struct Tree {
    /// libtorrent's save_path, swarmsync's --dir.
    save: PathBuf,
    root: PathBuf,
    /// Relative path components and length, in canonical (sorted) order.
    files: Vec<(Vec<String>, u64)>,
}

/// Deterministic bytes that differ per file (xorshift64*).
fn fill(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len as usize + 8);
    while (v.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len as usize);
    v
}

/// Empty files, nested directories, non-ASCII names, a file that ends
/// exactly on a piece boundary (first in canonical order, so it also ends
/// on one in the v1 stream), files just over and under block and piece
/// sizes, an executable file (BEP 47 attr `x`) and an empty directory.
fn make_tree(dir: &Path, piece: u64) -> Tree {
    let save = dir.join("src");
    let root = save.join("tree");
    let spec: &[(&str, u64)] = &[
        ("0-boundary.bin", piece),
        ("a/b/c/deep.txt", 1000),
        ("a/empty.txt", 0),
        ("empty-top", 0),
        ("mid.bin", piece + 1),
        ("small.bin", 16 * KIB - 1),
        ("z/run.sh", 3 * 16 * KIB + 5),
        ("ü/ñ.txt", 40_000),
        ("ü/日本語/ファイル.dat", 20_000),
    ];
    let mut files = Vec::new();
    for (i, (rel, len)) in spec.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, fill(i as u64 * 7919 + piece, *len)).expect("write tree file");
        files.push((rel.split('/').map(str::to_owned).collect::<Vec<_>>(), *len));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let exe = root.join("z/run.sh");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
    files.sort();
    Tree { save, root, files }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("swarmsync-lt-")
        .tempdir()
        .expect("tempdir")
}

/// The `size tree/path` lines libtorrent's `info` prints, as a sorted list.
fn lt_files(info: &str) -> Vec<(Vec<String>, u64)> {
    let n: usize = field(info, "files").parse().expect("file count");
    let mut out: Vec<_> = info
        .lines()
        .skip_while(|l| !l.starts_with("files: "))
        .skip(1)
        .map(|l| {
            let (size, path) = l.split_once(' ').expect("size path");
            let comps: Vec<String> = path.split('/').skip(1).map(str::to_owned).collect();
            (comps, size.parse::<u64>().expect("size"))
        })
        .collect();
    assert_eq!(out.len(), n, "libtorrent file lines\n{info}");
    out.sort();
    out
}

// --- swarmsync-made torrents in libtorrent --------------------------------------------

fn ours_load_in_libtorrent(kind: Kind) {
    for piece in PIECE_SIZES {
        let tmp = tempdir();
        let tree = make_tree(tmp.path(), piece);
        let torrent = tmp.path().join("ours.torrent");
        let created = swarmsync([
            OsStr::new("torrent"),
            OsStr::new("create"),
            p(&tree.root),
            OsStr::new("-o"),
            p(&torrent),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new(&piece.to_string()),
        ])
        .ok();
        let show = swarmsync([OsStr::new("torrent"), OsStr::new("show"), p(&torrent)]).ok();
        let ours = hashes(&show.stdout);
        kind.check_presence(&ours, "torrent show");
        assert_eq!(hashes(&created.stdout), ours, "create and show disagree");

        let info = lt([OsStr::new("info"), p(&torrent)]).ok();
        let theirs = hashes(&info.stdout);
        assert_eq!(
            theirs, ours,
            "{kind:?}, piece {piece}: libtorrent's infohashes differ from `torrent show`"
        );
        assert_eq!(field(&info.stdout, "piece length"), piece.to_string());
        assert_eq!(field(&info.stdout, "name"), "tree");
        assert_eq!(
            lt_files(&info.stdout),
            tree.files,
            "{kind:?}, piece {piece}: file list"
        );

        let recheck = lt([OsStr::new("recheck"), p(&torrent), p(&tree.save)]);
        assert_eq!(
            recheck.code,
            Some(0),
            "{kind:?}, piece {piece}: libtorrent recheck of the source tree\n{}{}",
            recheck.stdout,
            recheck.stderr
        );
        let n = field(&recheck.stdout, "pieces");
        let (valid, total) = n.split_once('/').expect("valid/total");
        assert_eq!(valid, total, "{kind:?}, piece {piece}: {n}");
    }
}

#[test]
fn swarmsync_v1_torrents_load_and_recheck_in_libtorrent() {
    ours_load_in_libtorrent(Kind::V1);
}

#[test]
fn swarmsync_v2_torrents_load_and_recheck_in_libtorrent() {
    ours_load_in_libtorrent(Kind::V2);
}

#[test]
fn swarmsync_hybrid_torrents_load_and_recheck_in_libtorrent() {
    ours_load_in_libtorrent(Kind::Hybrid);
}

// --- libtorrent-made torrents in swarmsync --------------------------------------------

fn theirs_parse_in_swarmsync(kind: Kind) {
    for piece in PIECE_SIZES {
        let tmp = tempdir();
        let tree = make_tree(tmp.path(), piece);
        let torrent = tmp.path().join("lt.torrent");
        let created = lt([
            OsStr::new("create"),
            p(&tree.root),
            p(&torrent),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new(&piece.to_string()),
        ])
        .ok();
        let theirs = hashes(&created.stdout);
        kind.check_presence(&theirs, "libtorrent create");
        let info = lt([OsStr::new("info"), p(&torrent)]).ok();
        assert_eq!(hashes(&info.stdout), theirs);

        let show = swarmsync([OsStr::new("torrent"), OsStr::new("show"), p(&torrent)]).ok();
        assert_eq!(
            hashes(&show.stdout),
            theirs,
            "{kind:?}, piece {piece}: `torrent show` of libtorrent's torrent\n{}",
            show.stdout
        );
        assert_eq!(field(&show.stdout, "piece length"), piece.to_string());
        assert_eq!(field(&show.stdout, "name"), "tree");
        assert_eq!(
            field(&show.stdout, "files"),
            tree.files.len().to_string(),
            "{}",
            show.stdout
        );

        let verify = swarmsync([
            OsStr::new("torrent"),
            OsStr::new("verify"),
            p(&torrent),
            OsStr::new("--dir"),
            p(&tree.save),
        ]);
        assert_eq!(
            verify.code,
            Some(0),
            "{kind:?}, piece {piece}: `torrent verify` of libtorrent's torrent\n{}{}",
            verify.stdout,
            verify.stderr
        );
    }
}

#[test]
fn libtorrent_v1_torrents_parse_and_verify_in_swarmsync() {
    theirs_parse_in_swarmsync(Kind::V1);
}

#[test]
fn libtorrent_v2_torrents_parse_and_verify_in_swarmsync() {
    theirs_parse_in_swarmsync(Kind::V2);
}

#[test]
fn libtorrent_hybrid_torrents_parse_and_verify_in_swarmsync() {
    theirs_parse_in_swarmsync(Kind::Hybrid);
}

// --- byte-identical info dictionaries -----------------------------------------------

/// Both tools make a `kind` torrent of the same tree; their raw info
/// dictionaries (as libtorrent reads them) must be the same bytes.
fn same_info_dict(kind: Kind) {
    for piece in PIECE_SIZES {
        let tmp = tempdir();
        let tree = make_tree(tmp.path(), piece);
        let ours = tmp.path().join("ours.torrent");
        let theirs = tmp.path().join("lt.torrent");
        let size = piece.to_string();
        swarmsync([
            OsStr::new("torrent"),
            OsStr::new("create"),
            p(&tree.root),
            OsStr::new("-o"),
            p(&ours),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new(&size),
        ])
        .ok();
        lt([
            OsStr::new("create"),
            p(&tree.root),
            p(&theirs),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new(&size),
        ])
        .ok();
        let ours_info = tmp.path().join("ours.info");
        let theirs_info = tmp.path().join("lt.info");
        lt([OsStr::new("info-section"), p(&ours), p(&ours_info)]).ok();
        lt([OsStr::new("info-section"), p(&theirs), p(&theirs_info)]).ok();
        let a = std::fs::read(&ours_info).expect("our info");
        let b = std::fs::read(&theirs_info).expect("libtorrent's info");
        if a != b {
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{kind:?}, piece {piece}: info dicts differ at byte {at} ({} vs {} bytes)\n\
                 --- swarmsync ---\n{}\n--- libtorrent ---\n{}",
                a.len(),
                b.len(),
                lt([OsStr::new("dump"), p(&ours)]).stdout,
                lt([OsStr::new("dump"), p(&theirs)]).stdout
            );
        }
    }
}

#[test]
fn hybrid_info_dict_is_byte_identical_to_libtorrents() {
    same_info_dict(Kind::Hybrid);
}

#[test]
fn v2_info_dict_is_byte_identical_to_libtorrents() {
    same_info_dict(Kind::V2);
}

// --- verify finds a flipped byte ---------------------------------------------------

fn flipped_byte(kind: Kind) {
    let piece = 16 * KIB;
    let tmp = tempdir();
    let tree = make_tree(tmp.path(), piece);
    let torrent = tmp.path().join("t.torrent");
    swarmsync([
        OsStr::new("torrent"),
        OsStr::new("create"),
        p(&tree.root),
        OsStr::new("-o"),
        p(&torrent),
        OsStr::new(kind.flag()),
        OsStr::new("--piece-size"),
        OsStr::new(&piece.to_string()),
    ])
    .ok();

    // Flip one byte in the middle of a file that is neither first nor last.
    let target = ["ü", "ñ.txt"];
    let at: u64 = 33_000;
    let path = tree.root.join(target.join("/"));
    let mut data = std::fs::read(&path).expect("read");
    data[at as usize] ^= 0x01;
    std::fs::write(&path, &data).expect("write");

    // Where that byte lies in piece space: v1 concatenates the files;
    // v2 and hybrid start every file on a piece boundary.
    let mut offset = 0;
    for (comps, len) in &tree.files {
        if comps.iter().map(String::as_str).eq(target) {
            break;
        }
        offset += match kind {
            Kind::V1 => *len,
            _ => len.div_ceil(piece) * piece,
        };
    }
    let bad = (offset + at) / piece;

    let verify = swarmsync([
        OsStr::new("torrent"),
        OsStr::new("verify"),
        p(&torrent),
        OsStr::new("--dir"),
        p(&tree.save),
    ]);
    let ctx = format!(
        "{kind:?}\nstdout:\n{}\nstderr:\n{}",
        verify.stdout, verify.stderr
    );
    assert_eq!(verify.code, Some(1), "exit status: {ctx}");
    let fails: Vec<&str> = verify
        .stderr
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert_eq!(fails.len(), 1, "one bad piece: {ctx}");
    let prefix = format!("FAIL piece {bad}: ");
    assert!(fails[0].starts_with(&prefix), "expected `{prefix}…`: {ctx}");
    assert!(fails[0].contains("ü/ñ.txt"), "names the file: {ctx}");
    if kind != Kind::V1 {
        // Piece-aligned files: the piece covers only this file.
        let start = (at / piece) * piece;
        let end = (start + piece).min(data.len() as u64);
        assert_eq!(
            fails[0],
            format!("FAIL piece {bad}: ü/ñ.txt (bytes {start}..{end}): hash mismatch"),
            "{ctx}"
        );
    }
    let last = verify.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("swarmsync: "), "last line: {ctx}");

    // libtorrent agrees on which piece is bad.
    let recheck = lt([OsStr::new("recheck"), p(&torrent), p(&tree.save)]);
    assert_eq!(
        recheck.code,
        Some(1),
        "libtorrent recheck\n{}{}",
        recheck.stdout,
        recheck.stderr
    );
    assert!(
        recheck.stderr.contains(&format!("(first: [{bad}])")),
        "libtorrent's bad pieces: {}",
        recheck.stderr
    );
}

#[test]
fn verify_names_file_and_piece_of_a_flipped_byte_v1() {
    flipped_byte(Kind::V1);
}

#[test]
fn verify_names_file_and_piece_of_a_flipped_byte_v2() {
    flipped_byte(Kind::V2);
}

#[test]
fn verify_names_file_and_piece_of_a_flipped_byte_hybrid() {
    flipped_byte(Kind::Hybrid);
}

// --- single-file torrents ----------------------------------------------------------

/// `torrent create FILE`: both tools make byte-identical info dicts for all
/// three kinds, libtorrent rechecks ours, swarmsync verifies libtorrent's.
#[test]
fn single_file_torrents_match_libtorrent() {
    let tmp = tempdir();
    let save = tmp.path().join("src");
    std::fs::create_dir_all(&save).expect("mkdir");
    let file = save.join("ñame.bin");
    std::fs::write(&file, fill(99, 5 * 16 * KIB + 123)).expect("write");
    for kind in Kind::ALL {
        let ours = tmp.path().join(format!("ours-{kind:?}.torrent"));
        let theirs = tmp.path().join(format!("lt-{kind:?}.torrent"));
        let o = swarmsync([
            OsStr::new("torrent"),
            OsStr::new("create"),
            p(&file),
            OsStr::new("-o"),
            p(&ours),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new("16384"),
        ])
        .ok();
        let t = lt([
            OsStr::new("create"),
            p(&file),
            p(&theirs),
            OsStr::new(kind.flag()),
            OsStr::new("--piece-size"),
            OsStr::new("16384"),
        ])
        .ok();
        kind.check_presence(&hashes(&o.stdout), "swarmsync create");
        assert_eq!(hashes(&o.stdout), hashes(&t.stdout), "{kind:?}: infohashes");
        let show = swarmsync([OsStr::new("torrent"), OsStr::new("show"), p(&theirs)]).ok();
        assert_eq!(
            hashes(&show.stdout),
            hashes(&t.stdout),
            "{kind:?}: show of libtorrent's"
        );
        let a = tmp.path().join("ours.info");
        let b = tmp.path().join("lt.info");
        lt([OsStr::new("info-section"), p(&ours), p(&a)]).ok();
        lt([OsStr::new("info-section"), p(&theirs), p(&b)]).ok();
        assert!(
            std::fs::read(&a).expect("info") == std::fs::read(&b).expect("info"),
            "{kind:?}: single-file info dicts differ\n--- swarmsync ---\n{}\n--- libtorrent ---\n{}",
            lt([OsStr::new("dump"), p(&ours)]).stdout,
            lt([OsStr::new("dump"), p(&theirs)]).stdout
        );
        lt([OsStr::new("recheck"), p(&ours), p(&save)]).ok();
        swarmsync([
            OsStr::new("torrent"),
            OsStr::new("verify"),
            p(&theirs),
            OsStr::new("--dir"),
            p(&save),
        ])
        .ok();
    }
}

// --- malformed input -----------------------------------------------------------

/// A minimal bencode model for editing real torrents in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
enum B {
    Int(i64),
    Str(Vec<u8>),
    List(Vec<B>),
    Dict(BTreeMap<Vec<u8>, B>),
}

impl B {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            B::Str(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            B::List(l) => {
                out.push(b'l');
                l.iter().for_each(|x| x.encode(out));
                out.push(b'e');
            }
            B::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    B::Str(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes trusted input (torrents this test just made).
    fn decode(data: &[u8]) -> B {
        fn one(d: &[u8], i: &mut usize) -> B {
            match d[*i] {
                b'i' => {
                    let end = *i + d[*i..].iter().position(|&c| c == b'e').expect("int end");
                    let n = std::str::from_utf8(&d[*i + 1..end])
                        .expect("ascii")
                        .parse()
                        .expect("int");
                    *i = end + 1;
                    B::Int(n)
                }
                b'l' => {
                    *i += 1;
                    let mut l = Vec::new();
                    while d[*i] != b'e' {
                        l.push(one(d, i));
                    }
                    *i += 1;
                    B::List(l)
                }
                b'd' => {
                    *i += 1;
                    let mut m = BTreeMap::new();
                    while d[*i] != b'e' {
                        let B::Str(k) = one(d, i) else { panic!("key") };
                        let v = one(d, i);
                        m.insert(k, v);
                    }
                    *i += 1;
                    B::Dict(m)
                }
                _ => {
                    let colon = *i + d[*i..].iter().position(|&c| c == b':').expect("colon");
                    let n: usize = std::str::from_utf8(&d[*i..colon])
                        .expect("ascii")
                        .parse()
                        .expect("len");
                    *i = colon + 1 + n;
                    B::Str(d[colon + 1..colon + 1 + n].to_vec())
                }
            }
        }
        let mut i = 0;
        let v = one(data, &mut i);
        assert_eq!(i, data.len(), "trailing bytes");
        v
    }

    fn get(&mut self, key: &str) -> &mut B {
        match self {
            B::Dict(d) => d
                .get_mut(key.as_bytes())
                .unwrap_or_else(|| panic!("no key {key}")),
            _ => panic!("not a dict looking up {key}"),
        }
    }

    fn dict(&mut self) -> &mut BTreeMap<Vec<u8>, B> {
        match self {
            B::Dict(d) => d,
            _ => panic!("not a dict"),
        }
    }

    fn list(&mut self) -> &mut Vec<B> {
        match self {
            B::List(l) => l,
            _ => panic!("not a list"),
        }
    }
}

fn s(x: &str) -> B {
    B::Str(x.as_bytes().to_vec())
}

/// A small real torrent of `kind` to break, decoded.
fn sample(kind: Kind, tmp: &Path) -> (Vec<u8>, B) {
    let root = tmp.join("sample");
    std::fs::create_dir_all(root.join("d")).expect("mkdir");
    std::fs::write(root.join("d/one.bin"), fill(1, 20_000)).expect("write");
    std::fs::write(root.join("two.txt"), fill(2, 3_000)).expect("write");
    let out = tmp.join(format!("sample-{kind:?}.torrent"));
    swarmsync([
        OsStr::new("torrent"),
        OsStr::new("create"),
        p(&root),
        OsStr::new("-o"),
        p(&out),
        OsStr::new(kind.flag()),
        OsStr::new("--piece-size"),
        OsStr::new("16384"),
    ])
    .ok();
    let bytes = std::fs::read(&out).expect("read sample");
    let b = B::decode(&bytes);
    assert_eq!(b.bytes(), bytes, "the test's bencode model round-trips");
    (bytes, b)
}

/// `torrent show` must refuse `bytes` with exit 1 and exactly one
/// `swarmsync: ...` line on stderr — never a panic (101) or a signal — and
/// that line, past the file name, must name the problem: it contains every
/// entry of `names` (case-insensitive; `a|b` accepts either).
fn refused(tmp: &Path, case: &str, bytes: &[u8], names: &[&str]) {
    // A neutral file name, so the message's own words are what is checked.
    let file = tmp.join("case.torrent");
    std::fs::write(&file, bytes).expect("write case");
    let r = swarmsync([OsStr::new("torrent"), OsStr::new("show"), p(&file)]);
    let ctx = format!(
        "case {case}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    );
    assert!(r.code.is_some(), "killed by a signal: {ctx}");
    assert_ne!(r.code, Some(101), "panicked: {ctx}");
    assert_eq!(r.code, Some(1), "{ctx}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line: {ctx}");
    assert!(lines[0].starts_with("swarmsync: "), "{ctx}");
    let shown = file.display().to_string();
    let msg = lines[0].replacen(&shown, "FILE", 1);
    eprintln!("{case}: {msg}");
    let lower = msg.to_lowercase();
    for n in names {
        assert!(
            n.split('|').any(|alt| lower.contains(&alt.to_lowercase())),
            "message should name `{n}`: {ctx}"
        );
    }
}

#[test]
fn malformed_truncated_torrents_are_refused() {
    let tmp = tempdir();
    for kind in Kind::ALL {
        let (bytes, _) = sample(kind, tmp.path());
        for cut in [1, 2, 10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            refused(
                tmp.path(),
                &format!("{kind:?} truncated to {cut} of {} bytes", bytes.len()),
                &bytes[..cut],
                // A cut inside a string shows as a string running past the end.
                &["truncated|string length"],
            );
        }
    }
    refused(tmp.path(), "empty file", b"", &["truncated"]);
}

#[test]
fn malformed_deep_nesting_is_refused() {
    let tmp = tempdir();
    let depth = 100_000;
    let mut lists = vec![b'l'; depth];
    lists.extend(std::iter::repeat_n(b'e', depth));
    refused(tmp.path(), "100k nested lists", &lists, &["nests deeper"]);
    // Deep nesting inside an otherwise plausible torrent.
    let mut d = b"d4:infod5:filesl".to_vec();
    d.extend(b"d1:a".repeat(depth));
    refused(
        tmp.path(),
        "100k nested dicts in info.files",
        &d,
        &["nests deeper"],
    );
}

#[test]
fn malformed_huge_string_length_is_refused() {
    let tmp = tempdir();
    refused(
        tmp.path(),
        "string length past the end",
        b"d4:info99999999999999:xe",
        &["string length"],
    );
    refused(
        tmp.path(),
        "string length over u64",
        b"d4:info999999999999999999999999999999:xe",
        &["string length"],
    );
    // A real torrent whose name claims more bytes than the file holds.
    let (bytes, _) = sample(Kind::Hybrid, tmp.path());
    let needle = b"4:name6:sample";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("name in sample");
    let mut evil = bytes[..at].to_vec();
    evil.extend_from_slice(b"4:name4294967296:sample");
    evil.extend_from_slice(&bytes[at + needle.len()..]);
    refused(tmp.path(), "name of 4 GiB", &evil, &["string length"]);
}

#[test]
fn malformed_huge_integers_are_refused() {
    let tmp = tempdir();
    let (bytes, _) = sample(Kind::V1, tmp.path());
    let needle = b"12:piece lengthi16384e";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("piece length in sample");
    for (case, int, names) in [
        (
            "integer over i64",
            "i99999999999999999999999e",
            &["integer"][..],
        ),
        (
            "piece length i64::MAX",
            "i9223372036854775807e",
            &["piece length"][..],
        ),
        ("negative piece length", "i-16384e", &["piece length"][..]),
    ] {
        let mut evil = bytes[..at].to_vec();
        evil.extend_from_slice(b"12:piece length");
        evil.extend_from_slice(int.as_bytes());
        evil.extend_from_slice(&bytes[at + needle.len()..]);
        refused(tmp.path(), case, &evil, names);
    }
    // A file length near u64::MAX (an overflow bait for offset sums).
    let (_, mut t) = sample(Kind::V1, tmp.path());
    *t.get("info").get("files").list()[0].get("length") = B::Int(i64::MAX);
    refused(
        tmp.path(),
        "file length i64::MAX",
        &t.bytes(),
        &["piece count|length"],
    );
}

#[test]
fn malformed_paths_are_refused() {
    let tmp = tempdir();
    let bad: [(&str, &[u8]); 6] = [
        ("dot-dot", b".."),
        ("dot", b"."),
        ("absolute-like", b"/etc"),
        ("slash inside", b"a/b"),
        ("NUL", b"a\0b"),
        ("empty", b""),
    ];
    for (what, comp) in bad {
        // v1: a component of info.files[1].path.
        let (_, mut t) = sample(Kind::V1, tmp.path());
        *t.get("info").get("files").list()[1]
            .get("path")
            .list()
            .first_mut()
            .expect("path") = B::Str(comp.to_vec());
        refused(
            tmp.path(),
            &format!("v1 path component {what}"),
            &t.bytes(),
            &["unsafe path", "files"],
        );

        // v1 torrent name (the top-level directory).
        let (_, mut t) = sample(Kind::V1, tmp.path());
        *t.get("info").get("name") = B::Str(comp.to_vec());
        refused(
            tmp.path(),
            &format!("v1 name {what}"),
            &t.bytes(),
            &["name"],
        );

        // v2: a key of the file tree.
        let (_, mut t) = sample(Kind::V2, tmp.path());
        let tree = t.get("info").get("file tree").dict();
        let v = tree.remove(b"two.txt".as_slice()).expect("two.txt in tree");
        tree.insert(comp.to_vec(), v);
        refused(
            tmp.path(),
            &format!("v2 file tree key {what}"),
            &t.bytes(),
            &["file tree"],
        );
    }
    // An empty v1 path list.
    let (_, mut t) = sample(Kind::V1, tmp.path());
    *t.get("info").get("files").list()[0].get("path") = B::List(vec![]);
    refused(tmp.path(), "v1 empty path list", &t.bytes(), &["path"]);
    // A path with too many components.
    let (_, mut t) = sample(Kind::V1, tmp.path());
    *t.get("info").get("files").list()[0].get("path") = B::List(vec![s("d"); 1000]);
    refused(tmp.path(), "v1 path 1000 deep", &t.bytes(), &["path"]);
}

#[test]
fn malformed_hybrid_whose_v1_files_disagree_with_v2_tree_is_refused() {
    let tmp = tempdir();
    type Edit = fn(&mut B);
    let edits: [(&str, Edit); 4] = [
        ("v1 length differs", |t| {
            let f = &mut t.get("info").get("files").list()[0];
            let B::Int(n) = f.get("length") else {
                panic!("length")
            };
            *f.get("length") = B::Int(*n + 1);
        }),
        ("v1 path differs", |t| {
            let f = &mut t.get("info").get("files").list()[0];
            *f.get("path") = B::List(vec![s("d"), s("other.bin")]);
        }),
        ("v1 file missing", |t| {
            // Not the tail pad file (BEP 47 makes that optional): a real file.
            let files = t.get("info").get("files").list();
            let two = files
                .iter_mut()
                .position(|f| *f.get("path") == B::List(vec![s("two.txt")]))
                .expect("two.txt in files");
            files.remove(two);
        }),
        ("v1 extra file", |t| {
            let files = t.get("info").get("files").list();
            let mut extra = BTreeMap::new();
            extra.insert(b"length".to_vec(), B::Int(5));
            extra.insert(b"path".to_vec(), B::List(vec![s("extra")]));
            files.push(B::Dict(extra));
        }),
    ];
    for (case, edit) in edits {
        let (_, mut t) = sample(Kind::Hybrid, tmp.path());
        edit(&mut t);
        refused(tmp.path(), case, &t.bytes(), &["inconsistent"]);
    }
}
