//! Creating v1, v2 and hybrid torrents.
//!
//! The layout (file order, pad files, offsets) follows what libtorrent 2.0
//! writes, so that for the same tree and piece length our hybrid `info`
//! dictionary is byte-identical to libtorrent's (tested in tests/e2e).
//! Files are read through [`Source`], so this module stays free of paths
//! and file systems; hashing is split into independent units of whole pieces
//! and spread over threads, because SHA-1 plus SHA-256 of a mirror tree is
//! CPU-bound and a 2-core board should use both cores.

#[cfg(test)]
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, field};
use crate::hash::{Sha1, Sha1Hasher, Sha256};
use crate::merkle::{self, BLOCK_SIZE};
use crate::metainfo::{self, FilePath, Limits, Metainfo, Version};

mod encode;

/// A file to put in a torrent, as found by the caller's directory walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Path components below the torrent's root directory (for a
    /// single-file torrent: just the file name).
    pub path: Vec<String>,
    pub length: u64,
    pub executable: bool,
    /// Some for a symlink, whose target is given relative to the torrent root.
    pub symlink_target: Option<Vec<String>>,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct Options {
    pub version: Version,
    /// None picks [`auto_piece_length_for`].
    pub piece_length: Option<u64>,
    pub trackers: Vec<String>,
    pub web_seeds: Vec<String>,
    pub creation_date: Option<i64>,
    pub created_by: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            version: Version::Hybrid,
            piece_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            creation_date: None,
            created_by: None,
        }
    }
}

/// Opens the caller's files for reading.
pub trait Source: Sync {
    type Reader: Read + Seek;
    fn open(&self, file: &InputFile) -> std::io::Result<Self::Reader>;
}

/// About 512 pieces per torrent, as a power of two between 16 KiB and
/// 4 MiB: small enough that a lost piece is cheap to refetch, large enough
/// that the v1 piece list and v2 piece layers stay small.
pub fn auto_piece_length(total: u64) -> u64 {
    (total / 512)
        .max(BLOCK_SIZE as u64)
        .next_power_of_two()
        .min(4 << 20)
}

/// Padding a hybrid may add on top of its data before the automatic piece
/// length is halved: a quarter.
const MAX_PAD_SHARE: (u64, u64) = (5, 4);

/// The automatic piece length for `files` in a torrent of `version`.
///
/// v1 and v2 take [`auto_piece_length`] of the total. A multi-file hybrid
/// pads every file to a piece boundary (BEP 47) and hashes the pad zeros
/// with SHA-1, so its hashing work is Σ round_up(file, piece length), not
/// the total: 20,000 files of a few KiB at 512 KiB pieces are 10 GB of
/// zeros. Its piece length is halved while that sum is over 1.25 × the
/// data, down to 16 KiB, and while the piece count stays within `max_pieces`.
pub fn auto_piece_length_for(version: Version, files: &[InputFile], max_pieces: u64) -> u64 {
    let total: u64 = files.iter().map(|f| f.length).sum();
    let mut pl = auto_piece_length(total);
    if version != Version::Hybrid || files.len() < 2 {
        return pl;
    }
    let padded = |pl: u64| -> u128 {
        files
            .iter()
            .map(|f| u128::from(f.length.div_ceil(pl)) * u128::from(pl))
            .sum()
    };
    let budget = u128::from(total) * u128::from(MAX_PAD_SHARE.0) / u128::from(MAX_PAD_SHARE.1);
    while pl > BLOCK_SIZE as u64 && padded(pl) > budget {
        let half = pl / 2;
        if padded(half) / u128::from(half) > u128::from(max_pieces) {
            break;
        }
        pl = half;
    }
    pl
}

/// A validated, ordered file list with its piece layout.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub version: Version,
    pub piece_length: u64,
    pub single_file: bool,
    /// Canonical order: path components compared bytewise, which is the
    /// order of a v2 file tree.
    pub files: Vec<InputFile>,
    /// Offset of each file in piece space.
    offsets: Vec<u64>,
    /// Whether a pad file follows each file (hybrid only).
    pad_after: Vec<u64>,
    /// Length of the v1 stream / end of piece space.
    end: u64,
}

impl Plan {
    /// Validates names and paths, orders the files and lays out pieces.
    pub fn new(
        name: &str,
        single_file: bool,
        mut files: Vec<InputFile>,
        opts: &Options,
    ) -> Result<Plan, Error> {
        let limits = Limits::default();
        let name = metainfo::component("name", name.as_bytes(), &limits)?;
        for f in &files {
            for c in f.path.iter().chain(f.symlink_target.iter().flatten()) {
                metainfo::component(&f.path.join("/"), c.as_bytes(), &limits)?;
            }
        }
        if files.is_empty() {
            return Err(field("files", "the tree has no files"));
        }
        if single_file && files.len() != 1 {
            return Err(field("files", "a single-file torrent has one file"));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if files.windows(2).any(|w| w[0].path == w[1].path) {
            return Err(field("files", "two files have the same path"));
        }
        let piece_length = opts
            .piece_length
            .unwrap_or_else(|| auto_piece_length_for(opts.version, &files, limits.max_pieces));
        let pow2 = piece_length.is_power_of_two() && piece_length >= BLOCK_SIZE as u64;
        if !pow2 || piece_length > limits.max_piece_length {
            return Err(field(
                "piece length",
                format!("{piece_length} is not a power of two between 16 KiB and 256 MiB"),
            ));
        }
        let mut offsets = Vec::with_capacity(files.len());
        let mut pad_after = Vec::with_capacity(files.len());
        let mut off = 0u64;
        for f in &files {
            if opts.version == Version::V2 && f.length > 0 {
                off = off.next_multiple_of(piece_length);
            }
            offsets.push(off);
            off += f.length;
            let rem = f.length % piece_length;
            // libtorrent pads every file of a multi-file hybrid, the last
            // one included, and never the only file.
            let pad = if opts.version == Version::Hybrid && files.len() > 1 && rem != 0 {
                piece_length - rem
            } else {
                0
            };
            pad_after.push(pad);
            off += pad;
        }
        Ok(Plan {
            name,
            version: opts.version,
            piece_length,
            single_file,
            files,
            offsets,
            pad_after,
            end: off,
        })
    }

    /// The layout of an existing torrent, to hash files on disk the way
    /// the torrent cut them (verification).
    pub fn from_info(info: &metainfo::Info) -> Plan {
        let mut files = Vec::new();
        let mut offsets = Vec::new();
        let mut pad_after: Vec<u64> = Vec::new();
        for f in &info.files {
            if f.attr.pad {
                if let Some(last) = pad_after.last_mut() {
                    *last += f.length;
                }
                continue;
            }
            files.push(InputFile {
                path: f.path.to_vec(),
                length: f.length,
                executable: f.attr.executable,
                symlink_target: f.symlink_target.as_ref().map(FilePath::to_vec),
            });
            offsets.push(f.offset);
            pad_after.push(0);
        }
        let end = info
            .files
            .iter()
            .map(|f| f.offset + f.length)
            .max()
            .unwrap_or(0);
        Plan {
            name: info.name.clone(),
            version: info.version,
            piece_length: info.piece_length,
            single_file: info.single_file,
            files,
            offsets,
            pad_after,
            end,
        }
    }

    /// Offset of file `i` in piece space.
    pub fn offset(&self, i: usize) -> u64 {
        self.offsets[i]
    }

    /// Bytes of file data to hash.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    fn piece_count(&self) -> u64 {
        self.end.div_ceil(self.piece_length)
    }
}

/// One independent hashing job: whole pieces of one file (v2, hybrid) or
/// of the v1 stream.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// File index for v2/hybrid; unused for v1.
    file: usize,
    first_piece: u64,
    count: u64,
}

/// Hashes the plan's files and returns the encoded torrent and its parse.
///
/// `progress` is called with byte counts as they are hashed.
pub fn create<S: Source>(
    plan: &Plan,
    opts: &Options,
    source: &S,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<u8>, Metainfo), Error> {
    let hashed = hash_pieces(plan, source, threads, true, progress);
    let mut layers: Vec<Vec<Sha256>> = vec![Vec::new(); plan.files.len()];
    let mut pieces: Vec<u8> = Vec::new();
    for r in hashed {
        let r = r?;
        if plan.version.has_v2() {
            layers[r.file].extend(r.v2);
        }
        for h in r.v1 {
            pieces.extend_from_slice(&h);
        }
    }
    let torrent = encode::encode(plan, opts, &layers, &pieces)?;
    drop((layers, pieces));
    let meta = Metainfo::from_bytes(&torrent)?;
    Ok((torrent, meta))
}

/// The piece hashes of one whole file of a v2 or hybrid plan: what an
/// origin caches between publications so an unchanged file is not read
/// again. In a hybrid torrent every file starts on a piece boundary and is
/// padded to the next one, so its v1 hashes depend on the file alone too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHashes {
    pub piece_length: u64,
    /// v2 piece hashes (leaf-layer roots of each piece), in order.
    pub v2: Vec<Sha256>,
    /// v1 hashes of the file's padded pieces (hybrid only).
    pub v1: Vec<Sha1>,
}

/// [`create`] for v2 and hybrid plans, taking the hashes of some files
/// from `known` instead of reading them. Returns the torrent, its parse,
/// the hashes of every file (index by plan file; empty for symlinks and
/// empty files) and the bytes actually read.
///
/// `known(i)` must only return hashes made with this plan's piece length
/// and version from the same bytes; a wrong entry yields a torrent that
/// does not verify, so callers key their cache by path, size, mtime and
/// inode.
pub fn create_incremental<S: Source>(
    plan: &Plan,
    opts: &Options,
    source: &S,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
    known: &(dyn Fn(usize) -> Option<FileHashes> + Sync),
) -> Result<(Vec<u8>, Metainfo, Vec<FileHashes>, u64), Error> {
    if !plan.version.has_v2() {
        return Err(field("version", "incremental hashing needs v2 or hybrid"));
    }
    let want_count = |i: usize| plan.files[i].length.div_ceil(plan.piece_length) as usize;
    let mut per_file: Vec<FileHashes> = vec![FileHashes::default(); plan.files.len()];
    let mut reuse = vec![false; plan.files.len()];
    for (i, f) in plan.files.iter().enumerate() {
        if f.symlink_target.is_some() || f.length == 0 {
            continue;
        }
        if let Some(h) = known(i) {
            let v1_ok = plan.version != Version::Hybrid || h.v1.len() == want_count(i);
            if h.piece_length == plan.piece_length && h.v2.len() == want_count(i) && v1_ok {
                per_file[i] = h;
                reuse[i] = true;
            }
        }
    }
    let read = std::sync::atomic::AtomicU64::new(0);
    let counting = |n: u64| {
        read.fetch_add(n, Ordering::Relaxed);
        progress(n);
    };
    let hashed = hash_pieces_where(plan, source, threads, true, &counting, &|i| !reuse[i]);
    for r in hashed {
        let r = r?;
        let slot = &mut per_file[r.file];
        slot.piece_length = plan.piece_length;
        slot.v2.extend(r.v2);
        slot.v1.extend(r.v1);
    }
    let mut layers: Vec<Vec<Sha256>> = vec![Vec::new(); plan.files.len()];
    let mut pieces: Vec<u8> = Vec::new();
    for (i, h) in per_file.iter().enumerate() {
        layers[i].clone_from(&h.v2);
        for v in &h.v1 {
            pieces.extend_from_slice(v);
        }
    }
    let torrent = encode::encode(plan, opts, &layers, &pieces)?;
    drop((layers, pieces));
    let meta = Metainfo::from_bytes(&torrent)?;
    Ok((torrent, meta, per_file, read.into_inner()))
}

/// Hashes of a run of whole pieces: of one file (v2, hybrid) or of the v1
/// stream (v1, where `file` is 0).
#[derive(Debug, Clone, Default)]
pub struct PieceHashes {
    pub file: usize,
    pub first_piece: u64,
    pub count: u64,
    /// v2 piece hashes, numbered from the start of `file`.
    pub v2: Vec<Sha256>,
    /// v1 piece hashes: of `file`'s pieces padded (hybrid), or of the
    /// stream's pieces (v1).
    pub v1: Vec<Sha1>,
}

/// Hashes every piece of `plan` on `threads` threads. Each run of pieces
/// succeeds or fails on its own (a missing file fails only its runs);
/// with `stop_on_error` the remaining runs are skipped after a failure.
/// Results come back in piece order.
pub fn hash_pieces<S: Source>(
    plan: &Plan,
    source: &S,
    threads: usize,
    stop_on_error: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Result<PieceHashes, Error>> {
    hash_pieces_where(plan, source, threads, stop_on_error, progress, &|_| true)
}

/// [`hash_pieces`] of the files for which `include` holds (v2 and hybrid;
/// v1 plans hash the whole stream).
fn hash_pieces_where<S: Source>(
    plan: &Plan,
    source: &S,
    threads: usize,
    stop_on_error: bool,
    progress: &(dyn Fn(u64) + Sync),
    include: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Result<PieceHashes, Error>> {
    let mut units = units(plan);
    if plan.version != Version::V1 {
        units.retain(|u| include(u.file));
    }
    // The result vectors are allocated here, on the calling thread, at
    // their final size: a worker's allocations land in its own malloc
    // arena and stay there, which cost 5 MiB of RSS over 20,000 small
    // files.
    let results: Vec<Mutex<Slot>> = units
        .iter()
        .map(|u| Mutex::new(Slot::Ready(PieceHashes::for_unit(plan, u))))
        .collect();
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let threads = threads.clamp(1, 16).min(units.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; plan.piece_length as usize];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = units.get(i) else { break };
                    if stop_on_error && failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut slot) = results[i].lock() else {
                        continue;
                    };
                    let Slot::Ready(out) = std::mem::replace(&mut *slot, Slot::Taken) else {
                        continue;
                    };
                    let r = match plan.version {
                        Version::V1 => hash_v1_unit(plan, source, *unit, out, &mut buf, progress),
                        _ => hash_file_unit(plan, source, *unit, out, &mut buf, progress),
                    };
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *slot = Slot::Done(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| match r.into_inner() {
            Ok(Slot::Done(r)) => r,
            _ => Err(field("hashing", "skipped after an earlier error")),
        })
        .collect()
}

/// A unit's place in [`hash_pieces`].
enum Slot {
    /// Not started; the vectors to fill.
    Ready(PieceHashes),
    /// Being hashed (or its worker panicked).
    Taken,
    Done(Result<PieceHashes, Error>),
}

impl PieceHashes {
    fn for_unit(plan: &Plan, unit: &Unit) -> PieceHashes {
        let n = usize::try_from(unit.count).unwrap_or(0);
        let cap = |on: bool| if on { n } else { 0 };
        PieceHashes {
            file: unit.file,
            first_piece: unit.first_piece,
            count: unit.count,
            v2: Vec::with_capacity(cap(plan.version.has_v2())),
            v1: Vec::with_capacity(cap(plan.version.has_v1())),
        }
    }
}

/// Splits the work into units of about 16 MiB.
fn units(plan: &Plan) -> Vec<Unit> {
    let per = ((16u64 << 20) / plan.piece_length).max(1);
    let mut out = Vec::new();
    match plan.version {
        Version::V1 => {
            let n = plan.piece_count();
            let mut p = 0;
            while p < n {
                let count = per.min(n - p);
                out.push(Unit {
                    file: 0,
                    first_piece: p,
                    count,
                });
                p += count;
            }
        }
        _ => {
            for (i, f) in plan.files.iter().enumerate() {
                if f.symlink_target.is_some() {
                    continue;
                }
                let n = f.length.div_ceil(plan.piece_length);
                let mut p = 0;
                while p < n {
                    let count = per.min(n - p);
                    out.push(Unit {
                        file: i,
                        first_piece: p,
                        count,
                    });
                    p += count;
                }
            }
        }
    }
    out
}

fn io_err(f: &InputFile, e: &std::io::Error) -> Error {
    let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "file shrank while being hashed".to_owned()
    } else {
        e.to_string()
    };
    Error::Io {
        path: f.path.join("/"),
        reason,
    }
}

fn hash_file_unit<S: Source>(
    plan: &Plan,
    source: &S,
    unit: Unit,
    mut out: PieceHashes,
    buf: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PieceHashes, Error> {
    let f = &plan.files[unit.file];
    let pl = plan.piece_length;
    let mut r = source.open(f).map_err(|e| io_err(f, &e))?;
    r.seek(SeekFrom::Start(unit.first_piece * pl))
        .map_err(|e| io_err(f, &e))?;
    let width = merkle::piece_width(f.length, pl);
    let zeros = [0u8; BLOCK_SIZE];
    for p in unit.first_piece..unit.first_piece + unit.count {
        let len = (f.length - p * pl).min(pl) as usize;
        let data = &mut buf[..len];
        r.read_exact(data).map_err(|e| io_err(f, &e))?;
        out.v2
            .push(merkle::piece_hash(data, width).unwrap_or_default());
        if plan.version == Version::Hybrid {
            let mut h = Sha1Hasher::default();
            h.update(data);
            if plan.pad_after[unit.file] > 0 {
                let mut fill = pl as usize - len;
                while fill > 0 {
                    let n = fill.min(zeros.len());
                    h.update(&zeros[..n]);
                    fill -= n;
                }
            }
            out.v1.push(h.finish());
        }
        progress(len as u64);
    }
    Ok(out)
}

fn hash_v1_unit<S: Source>(
    plan: &Plan,
    source: &S,
    unit: Unit,
    mut out: PieceHashes,
    buf: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PieceHashes, Error> {
    let pl = plan.piece_length;
    // The file currently open: (index, reader, position).
    let mut open: Option<(usize, S::Reader, u64)> = None;
    for p in unit.first_piece..unit.first_piece + unit.count {
        let start = p * pl;
        let len = (plan.end - start).min(pl) as usize;
        let mut filled = 0usize;
        while filled < len {
            let pos = start + filled as u64;
            // The last file starting at or before `pos` that has data there.
            let idx = plan
                .offsets
                .partition_point(|o| *o <= pos)
                .saturating_sub(1);
            let found = plan
                .files
                .iter()
                .enumerate()
                .skip(idx)
                .find(|(i, f)| plan.offsets[*i] + f.length > pos && f.symlink_target.is_none());
            let Some((fi, f)) = found.filter(|(i, _)| plan.offsets[*i] <= pos) else {
                // A gap: a pad file, whose bytes are zeros by definition.
                let next = found.map_or(start + len as u64, |(i, _)| plan.offsets[i]);
                let n = ((next - pos) as usize).min(len - filled);
                buf[filled..filled + n].fill(0);
                filled += n;
                continue;
            };
            let in_file = pos - plan.offsets[fi];
            let reopen = !matches!(&open, Some((i, _, at)) if *i == fi && *at == in_file);
            if reopen {
                let mut r = source.open(f).map_err(|e| io_err(f, &e))?;
                r.seek(SeekFrom::Start(in_file))
                    .map_err(|e| io_err(f, &e))?;
                open = Some((fi, r, in_file));
            }
            let n = ((f.length - in_file) as usize).min(len - filled);
            if let Some((_, r, at)) = open.as_mut() {
                r.read_exact(&mut buf[filled..filled + n])
                    .map_err(|e| io_err(f, &e))?;
                *at += n as u64;
            }
            filled += n;
        }
        let mut h = Sha1Hasher::default();
        h.update(&buf[..len]);
        out.v1.push(h.finish());
        progress(len as u64);
    }
    Ok(out)
}

/// A [`Source`] over in-memory files (tests).
#[cfg(test)]
pub(crate) struct MemSource(pub BTreeMap<Vec<String>, Vec<u8>>);

#[cfg(test)]
impl Source for MemSource {
    type Reader = std::io::Cursor<Vec<u8>>;
    fn open(&self, file: &InputFile) -> std::io::Result<Self::Reader> {
        self.0
            .get(&file.path)
            .cloned()
            .map(std::io::Cursor::new)
            .ok_or_else(|| std::io::Error::other("no such file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha1;

    fn tree(files: &[(&str, usize)]) -> (Vec<InputFile>, MemSource) {
        let mut mem = BTreeMap::new();
        let mut list = Vec::new();
        for (i, (p, len)) in files.iter().enumerate() {
            let path: Vec<String> = p.split('/').map(str::to_owned).collect();
            let data: Vec<u8> = (0..*len).map(|j| (j * 31 + i * 7) as u8).collect();
            mem.insert(path.clone(), data);
            list.push(InputFile {
                path,
                length: *len as u64,
                executable: false,
                symlink_target: None,
            });
        }
        (list, MemSource(mem))
    }

    fn make(version: Version, files: &[(&str, usize)], pl: u64) -> (Vec<u8>, Metainfo, MemSource) {
        let (list, src) = tree(files);
        let opts = Options {
            version,
            piece_length: Some(pl),
            ..Options::default()
        };
        let plan = Plan::new("root", false, list, &opts).expect("plan");
        let (bytes, meta) = create(&plan, &opts, &src, 2, &|_| {}).expect("create");
        (bytes, meta, src)
    }

    const FILES: &[(&str, usize)] = &[
        ("b/x.bin", 100_000),
        ("a.txt", 5000),
        ("c/exact", 32768),
        ("empty", 0),
        ("b/y", 3),
    ];

    #[test]
    fn hybrid_layout_matches_libtorrent_conventions() {
        let (_, meta, src) = make(Version::Hybrid, FILES, 16384);
        let info = &meta.info;
        assert_eq!(info.version, Version::Hybrid);
        let names: Vec<String> = info.files.iter().map(|f| f.display_path()).collect();
        // Canonical order; a pad after every file not ending on a piece
        // boundary, the last one included.
        assert_eq!(
            names,
            [
                "a.txt",
                ".pad/11384",
                "b/x.bin",
                ".pad/14688",
                "b/y",
                ".pad/16381",
                "c/exact",
                "empty"
            ]
        );
        for f in info.real_files().filter(|f| f.length > 0) {
            assert_eq!(f.offset % 16384, 0);
            let data = &src.0[&f.path.to_vec()];
            let hashes = merkle::hash_bytes(data, 16384);
            assert_eq!(f.pieces_root, hashes.root, "{}", f.display_path());
        }
        // v1 pieces: first piece is a.txt plus zeros.
        let mut first = src.0[&vec!["a.txt".to_owned()]].clone();
        first.resize(16384, 0);
        assert_eq!(info.pieces[0], sha1(&first));
        assert_eq!(info.pieces.len() as u64, info.piece_count());
    }

    #[test]
    fn incremental_reuses_known_files_and_matches_a_full_create() {
        for version in [Version::Hybrid, Version::V2] {
            let (full, _, src) = make(version, FILES, 16384);
            let (list, _) = tree(FILES);
            let opts = Options {
                version,
                piece_length: Some(16384),
                ..Options::default()
            };
            let plan = Plan::new("root", false, list, &opts).expect("plan");
            // First pass: nothing known, everything read.
            let (bytes, _, hashes, read) =
                create_incremental(&plan, &opts, &src, 2, &|_| {}, &|_| None).expect("create");
            assert_eq!(bytes, full, "{version:?}");
            assert_eq!(read, plan.total_length());
            // Second pass: every file but one known: only that one is read.
            let changed = plan
                .files
                .iter()
                .position(|f| f.path == ["b", "x.bin"])
                .expect("x.bin");
            let known = |i: usize| (i != changed).then(|| hashes[i].clone());
            let (again, _, _, read) =
                create_incremental(&plan, &opts, &src, 2, &|_| {}, &known).expect("again");
            assert_eq!(again, full, "{version:?}");
            assert_eq!(read, 100_000);
            // Hashes of another piece length are not trusted.
            let wrong = |i: usize| {
                Some(FileHashes {
                    piece_length: 32768,
                    ..hashes[i].clone()
                })
            };
            let (again, _, _, read) =
                create_incremental(&plan, &opts, &src, 2, &|_| {}, &wrong).expect("wrong");
            assert_eq!(again, full);
            assert_eq!(read, plan.total_length());
        }
    }

    #[test]
    fn v1_pieces_span_files() {
        let (_, meta, src) = make(Version::V1, FILES, 16384);
        let mut stream = Vec::new();
        for f in &meta.info.files {
            stream.extend_from_slice(&src.0[&f.path.to_vec()]);
        }
        let expect: Vec<Sha1> = stream.chunks(16384).map(sha1).collect();
        assert_eq!(meta.info.pieces, expect);
        assert!(meta.info.v2_infohash.is_none());
    }

    #[test]
    fn v2_has_piece_layers_and_no_v1() {
        let (_, meta, _) = make(Version::V2, FILES, 16384);
        assert!(meta.info.pieces.is_empty());
        assert!(meta.info.v1_infohash.is_none());
        assert_eq!(meta.piece_layers.len(), 2);
    }

    #[test]
    fn single_thread_and_many_threads_agree() {
        let (list, src) = tree(&[("big", 5_000_000), ("small", 10)]);
        let opts = Options {
            piece_length: Some(16384),
            ..Options::default()
        };
        let plan = Plan::new("r", false, list, &opts).expect("plan");
        let a = create(&plan, &opts, &src, 1, &|_| {}).expect("a").0;
        let b = create(&plan, &opts, &src, 4, &|_| {}).expect("b").0;
        assert_eq!(a, b);
    }

    fn sized(lengths: &[u64]) -> Vec<InputFile> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, len)| InputFile {
                path: vec![format!("f{i}")],
                length: *len,
                executable: false,
                symlink_target: None,
            })
            .collect()
    }

    #[test]
    fn hybrid_auto_piece_length_counts_padding() {
        let max = Limits::default().max_pieces;
        // 20,000 files of 8 KiB: 160 MiB, 512 KiB by the total alone, but
        // then 10 GB of pad zeros; padding cannot get under 1.25 × at any
        // size, so the floor.
        let small = sized(&[8192; 20_000]);
        assert_eq!(auto_piece_length(20_000 * 8192), 512 << 10);
        assert_eq!(auto_piece_length_for(Version::Hybrid, &small, max), 16384);
        // v1 and v2 are unaffected.
        assert_eq!(auto_piece_length_for(Version::V1, &small, max), 512 << 10);
        assert_eq!(auto_piece_length_for(Version::V2, &small, max), 512 << 10);
        // Large files: the padding is small at the total's piece length.
        let big = sized(&[1 << 30, (1 << 30) + 1]);
        let pl = auto_piece_length((2 << 30) + 1);
        assert_eq!(auto_piece_length_for(Version::Hybrid, &big, max), pl);
        // One file is never padded.
        let one = sized(&[100]);
        assert_eq!(auto_piece_length_for(Version::Hybrid, &one, max), 16384);
        // In between: 256 files of 100 KiB and one of 64 MiB: 256 KiB by
        // the total, 128 KiB counting the padding.
        let mut mixed = vec![100 << 10; 256];
        mixed.push(64 << 20);
        let mixed = sized(&mixed);
        let pl = auto_piece_length_for(Version::Hybrid, &mixed, max);
        let padded: u64 = mixed.iter().map(|f| f.length.div_ceil(pl) * pl).sum();
        let total: u64 = mixed.iter().map(|f| f.length).sum();
        assert!(padded * 4 <= total * 5, "{pl}: {padded} vs {total}");
        assert_eq!((pl, auto_piece_length(total)), (128 << 10, 256 << 10));
        // The piece-count limit stops the halving.
        assert_eq!(
            auto_piece_length_for(Version::Hybrid, &small, 19_999),
            512 << 10
        );
    }

    #[test]
    fn rejects_bad_names_and_sizes() {
        let (list, _) = tree(&[("ok", 1)]);
        let opts = Options {
            piece_length: Some(1000),
            ..Options::default()
        };
        assert!(Plan::new("r", false, list.clone(), &opts).is_err());
        assert!(Plan::new("..", false, list, &Options::default()).is_err());
        assert!(Plan::new("r", false, Vec::new(), &Options::default()).is_err());
    }
}
