//! A torrent's files as objects of a node's store ([`store::Store`]).
//!
//! Why a second storage target instead of downloading in place and
//! importing: a mirror node keeps one copy of each file, named by its v2
//! pieces root, so a file unchanged between two releases is never fetched
//! again and never stored twice. Downloading straight into `partial/` gives
//! that, and the store's crash rules (a piece is recorded only after it is
//! fsynced) replace the resume file of the in-place target.
//!
//! How a torrent maps onto the store: in hybrid and v2 torrents every file
//! starts on a piece boundary, so piece `p` belongs to exactly one file and
//! is piece `p - first_piece` of that file's object. v1-only torrents have
//! pieces that straddle files and cannot be checked per file: refused.
//!
//! Rules kept here:
//! - blocks are buffered until their piece is whole, then the store hashes
//!   the piece against the v2 piece layer; a mismatch goes back to the
//!   session as a failed check, with per-block digests, so it can find and
//!   ban the peer. Memory is bounded by the pieces in flight and by
//!   [`MAX_BUFFERED`]: past it, new pieces are written unverified into their
//!   `.part` and read back whole for the check (safe: the store trusts only
//!   pieces it recorded, and rewrites these with the same bytes);
//! - a file is begun (its `.part` created) only when its first data
//!   arrives: unwanted files never appear in `partial/`;
//! - a file is completed (renamed into `objects/`) at the next flush after
//!   its last piece verified, at once if it is urgent;
//! - files with the same content (an apt `by-hash/` copy of an index) are
//!   one object: only the first wanted one is fetched, the copies are had
//!   and reported when it completes;
//! - uploads read objects, or `.part` files for verified pieces only (a
//!   piece still buffered in the store is flushed before it is read).
//!
//! Memory per file: one state byte, one piece counter and three bits on
//! the engine's side (20,000 files: about 110 KiB); the file list itself
//! stays in the caller's metainfo. Opening also holds, briefly, a map of
//! the pieces roots (about 1.5 MiB for 20,000 files).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use store::{Begin, FileSpec, PieceOutcome, Store};
use torrent::bitfield::Bitfield;
use torrent::hash::{Sha256, sha256, to_hex};
use torrent::layout::{BLOCK, Layout};
use torrent::metainfo::{Metainfo, Version};

/// Open file handles kept for uploads.
const MAX_OPEN: usize = 64;
/// Bytes of incomplete pieces kept in memory (with 4 MiB pieces and many
/// peers each delivering one, buffering them all would not fit a board).
pub const MAX_BUFFERED: usize = 8 * 1024 * 1024;

/// Per-file state bits.
const WANTED: u8 = 1;
const URGENT: u8 = 2;
const BEGUN: u8 = 4;
/// The object is in `objects/`.
const DONE: u8 = 8;
/// Every piece verified, waiting for `complete_file`.
const READY: u8 = 16;
/// Has a piece in the torrent's piece space (not pad, symlink or empty).
const DATA: u8 = 32;
/// Another file of the torrent has the same content (pieces root): its
/// `.part` may hold verified pieces this file's pieces do not know about,
/// so nothing unverified is ever written into it.
const SHARED: u8 = 64;

/// A piece of a file wanted urgently whose verified bytes can now be read
/// from the file's `.part` (or its object, once complete): what
/// fetch-on-miss streams to a waiting client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readable {
    /// Index of `meta.info.files`.
    pub file: usize,
    /// Piece index within the file (byte offset `piece * piece_length`).
    pub piece: u32,
}

/// What the disk thread learned that the engine must hear.
#[derive(Debug, Default)]
pub struct News {
    /// Files now in `objects/`: wanted ones, and copies of them (the
    /// engine reports only the wanted).
    pub stored: Vec<usize>,
    /// Pieces stored without being downloaded: the file has the same
    /// content as one just completed.
    pub had: Vec<std::ops::Range<u32>>,
}

impl News {
    fn extend(&mut self, other: News) {
        self.stored.extend(other.stored);
        self.had.extend(other.had);
    }
}

/// What opening found, for the engine.
pub struct Opened {
    /// Pieces verified in the store: objects (wanted or not) and recorded
    /// pieces of partials. Uploadable at once, never downloaded again.
    pub have: Bitfield,
    /// Which files are wanted and which are stored.
    pub selection: Selection,
}

/// The store target, owned by the disk thread.
pub struct StoreTarget {
    meta: Arc<Metainfo>,
    layout: Layout,
    store: Arc<Mutex<Store>>,
    /// Where `.part` files live: `<data>/partial/<root>.part` (design.md).
    partial_dir: PathBuf,
    /// Pieces verified (durable, or buffered in the store).
    have: Bitfield,
    /// Verified since the last flush: not readable from the `.part` yet.
    unflushed: HashSet<u32>,
    /// Per file: state bits.
    state: Vec<u8>,
    /// Per file: pieces not yet verified.
    remaining: Vec<u32>,
    /// Files whose pieces are all verified, to complete at the next flush.
    ready: Vec<usize>,
    /// Blocks of pieces in flight: piece → the file's bytes of that piece.
    pieces: HashMap<u32, Vec<u8>>,
    /// Sum of the buffers in `pieces`.
    buffered: usize,
    /// [`MAX_BUFFERED`] (tests lower it).
    max_buffered: usize,
    /// Pieces in flight written straight into their `.part` (over budget).
    spilled: HashSet<u32>,
    /// Read handles: (file, is object) → file.
    open: HashMap<(usize, bool), File>,
    /// Where [`Readable`] pieces of urgent files are announced.
    readable: Option<tokio::sync::broadcast::Sender<Readable>>,
}

/// Which files the engine must wait for. Kept on the engine's task: one
/// bit per file for wanted and stored, a count of what is left.
pub struct Selection {
    wanted: Bitfield,
    /// Wanted, but the same content as an earlier wanted file: stored when
    /// that one is, never fetched itself.
    follower: Bitfield,
    done: Bitfield,
    data: Bitfield,
    left: usize,
    total_bytes: u64,
}

/// What [`Selection::want`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Nothing to do (no data, out of range, already wanted and pending).
    Nothing,
    /// Already stored: report it as complete now.
    Stored,
    /// Newly wanted (or raised to urgent): set priorities, tell the disk.
    Download,
}

impl Selection {
    /// Every wanted file with data is stored.
    pub fn is_complete(&self) -> bool {
        self.left == 0
    }

    /// Bytes of wanted files.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn is_wanted(&self, file: usize) -> bool {
        idx(file).is_some_and(|i| self.wanted.get(i))
    }

    /// Wanted, and its pieces are to be fetched (not a copy of another
    /// wanted file).
    pub fn fetches(&self, file: usize) -> bool {
        idx(file).is_some_and(|i| self.wanted.get(i) && !self.follower.get(i))
    }

    /// Wanted files stored at start (reported on `completed`).
    pub fn stored_wanted(&self) -> impl Iterator<Item = usize> + '_ {
        self.wanted
            .ones()
            .filter(|i| self.done.get(*i))
            .map(|i| i as usize)
    }

    /// Marks `file` wanted (the engine then raises its priority).
    pub fn want(&mut self, meta: &Metainfo, file: usize, urgent: bool) -> Wanted {
        let Some(i) = idx(file).filter(|i| self.data.get(*i)) else {
            return Wanted::Nothing;
        };
        let newly = self.wanted.set(i);
        if newly {
            self.total_bytes += meta.info.files[file].length;
        }
        if self.done.get(i) {
            return if newly {
                Wanted::Stored
            } else {
                Wanted::Nothing
            };
        }
        if newly {
            self.left += 1;
        }
        if newly || urgent {
            Wanted::Download
        } else {
            Wanted::Nothing
        }
    }

    /// The disk thread stored `file`; whether it is news for `completed`.
    pub fn stored(&mut self, file: usize) -> bool {
        let Some(i) = idx(file) else { return false };
        if !self.done.set(i) {
            return false;
        }
        if self.wanted.get(i) {
            self.left = self.left.saturating_sub(1);
            return true;
        }
        false
    }
}

fn idx(file: usize) -> Option<u32> {
    u32::try_from(file).ok()
}

/// Pieces of `file` in the torrent's piece space.
pub fn piece_range(meta: &Metainfo, file: usize) -> std::ops::Range<u32> {
    let Some(f) = meta.info.files.get(file) else {
        return 0..0;
    };
    let pl = meta.info.piece_length;
    let first = u32::try_from(f.first_piece(pl)).unwrap_or(u32::MAX);
    let n = u32::try_from(f.piece_count(pl)).unwrap_or(0);
    first..first.saturating_add(n)
}

/// Error for this target: names the store, says what is wrong.
fn err(dir: &std::path::Path, reason: impl std::fmt::Display) -> crate::Error {
    crate::Error::Storage {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    }
}

impl StoreTarget {
    /// Checks that the torrent fits the store, finds what is stored
    /// already (objects: had; partials: their verified pieces) and what is
    /// wanted. Blocking: a stat per file and an index lookup per partial.
    /// `layout` is the torrent's, as the engine built it: a clone shares
    /// its file table (half a MiB for 20,000 files) instead of a second.
    pub fn open(
        meta: Arc<Metainfo>,
        layout: Layout,
        store: Arc<Mutex<Store>>,
        wanted: &[bool],
    ) -> Result<(StoreTarget, Opened), crate::Error> {
        let (dir, partials) = {
            let s = lock_store(&store)?;
            let dir = s.dir().to_path_buf();
            let partials: HashSet<Sha256> = s
                .partials()
                .map_err(|e| err(&dir, e))?
                .into_iter()
                .collect();
            (dir, partials)
        };
        let info = &meta.info;
        if info.version == Version::V1 {
            return Err(err(
                &dir,
                format!(
                    "torrent {}: v1-only torrents cannot go into the store (files are kept by v2 pieces root)\npublish it as a hybrid or v2 torrent",
                    info.name
                ),
            ));
        }
        let nfiles = u32::try_from(info.files.len())
            .map_err(|_| err(&dir, format!("torrent {}: too many files", info.name)))?;
        let pl = info.piece_length;
        let mut have = Bitfield::new(layout.piece_count);
        let mut state = vec![0u8; info.files.len()];
        let mut remaining = vec![0u32; info.files.len()];
        let mut ready = Vec::new();
        // Transient: first file of each root, to find shared content, and
        // the roots of wanted files to fetch.
        let mut roots: HashMap<Sha256, usize> = HashMap::new();
        let mut leaders: HashSet<Sha256> = HashSet::new();
        let mut sel = Selection {
            wanted: Bitfield::new(nfiles),
            follower: Bitfield::new(nfiles),
            done: Bitfield::new(nfiles),
            data: Bitfield::new(nfiles),
            left: 0,
            total_bytes: 0,
        };
        for (i, f) in info.files.iter().enumerate() {
            if f.attr.pad || f.symlink_target.is_some() || f.length == 0 {
                continue;
            }
            let bad = |why: &str| {
                err(
                    &dir,
                    format!("torrent {}: file {}: {why}", info.name, f.display_path()),
                )
            };
            let root = f.pieces_root.ok_or_else(|| bad("no v2 pieces root"))?;
            if !f.offset.is_multiple_of(pl) {
                return Err(bad("does not start on a piece boundary"));
            }
            let range = piece_range(&meta, i);
            if range.end > layout.piece_count || range.is_empty() {
                return Err(bad("pieces out of range"));
            }
            if f.length > pl
                && meta
                    .piece_layers
                    .get(&root)
                    .is_none_or(|l| l.len() != range.len())
            {
                return Err(bad("piece layer missing or of the wrong length"));
            }
            let bit = i as u32;
            state[i] |= DATA;
            sel.data.set(bit);
            if let Some(&j) = roots.get(&root) {
                state[i] |= SHARED;
                state[j] |= SHARED;
            } else {
                roots.insert(root, i);
            }
            let want = wanted.get(i).copied().unwrap_or(false);
            if want {
                state[i] |= WANTED;
                sel.wanted.set(bit);
                sel.total_bytes += f.length;
            }
            let n = range.len() as u32;
            let stored = lock_store(&store)?.has_object(&root);
            if stored {
                state[i] |= DONE;
                sel.done.set(bit);
                for p in range {
                    have.set(p);
                }
                continue;
            }
            if want {
                sel.left += 1;
                if !leaders.insert(root) {
                    sel.follower.set(bit);
                }
            }
            remaining[i] = n;
            if partials.contains(&root) {
                // Resume: recreate a lost .part (dropping its records),
                // then trust what the index says is verified.
                let spec = file_spec(&meta, i, root)?;
                let mut s = lock_store(&store)?;
                match s.begin_file(spec).map_err(|e| err(&dir, e))? {
                    Begin::AlreadyComplete => {
                        drop(s);
                        state[i] |= DONE;
                        sel.done.set(bit);
                        if want {
                            sel.left -= 1;
                        }
                        for p in range {
                            have.set(p);
                        }
                        continue;
                    }
                    _ => state[i] |= BEGUN,
                }
                for local in s.verified_pieces(&root).map_err(|e| err(&dir, e))? {
                    if local < n && have.set(range.start + local) {
                        remaining[i] -= 1;
                    }
                }
                if remaining[i] == 0 && want {
                    state[i] |= READY;
                    ready.push(i);
                }
            }
        }
        let target = StoreTarget {
            partial_dir: dir.join("partial"),
            meta,
            layout,
            store,
            have: have.clone(),
            unflushed: HashSet::new(),
            state,
            remaining,
            ready,
            pieces: HashMap::new(),
            buffered: 0,
            max_buffered: MAX_BUFFERED,
            spilled: HashSet::new(),
            open: HashMap::new(),
            readable: None,
        };
        Ok((
            target,
            Opened {
                have,
                selection: sel,
            },
        ))
    }

    /// Announce the pieces of urgent files on `tx` as they become
    /// readable (see [`Readable`]).
    pub fn announce_readable(&mut self, tx: tokio::sync::broadcast::Sender<Readable>) {
        self.readable = Some(tx);
    }

    /// Makes the verified pieces of urgent `file` readable from its `.part`
    /// and announces `pieces` (local indices). Without a listener, nothing.
    fn readable(
        &mut self,
        file: usize,
        root: &Sha256,
        pieces: impl Iterator<Item = u32>,
    ) -> std::io::Result<()> {
        let Some(tx) = self.readable.clone() else {
            return Ok(());
        };
        if self.state[file] & DONE == 0 {
            self.lock()?
                .write_out(root)
                .map_err(std::io::Error::other)?;
        }
        for piece in pieces {
            // No receiver: nobody is waiting, which is fine.
            let _ = tx.send(Readable { file, piece });
        }
        Ok(())
    }

    fn lock(&self) -> std::io::Result<MutexGuard<'_, Store>> {
        self.store
            .lock()
            .map_err(|_| std::io::Error::other("store lock poisoned (a thread panicked)"))
    }

    /// The file of piece `p` and the piece's index within it.
    fn locate(&self, piece: u32) -> Option<(usize, u32)> {
        let sp = *self
            .layout
            .spans(piece, 0, self.layout.piece_size(piece))
            .first()?;
        let local = sp.file_offset / self.layout.piece_length;
        Some((sp.file, u32::try_from(local).ok()?))
    }

    fn root(&self, file: usize) -> std::io::Result<Sha256> {
        self.meta
            .info
            .files
            .get(file)
            .and_then(|f| f.pieces_root)
            .ok_or_else(|| std::io::Error::other(format!("file {file} has no pieces root")))
    }

    /// Buffers a block; bytes in padding are dropped.
    pub fn write(&mut self, piece: u32, begin: u32, data: &[u8]) -> std::io::Result<()> {
        let len = self.layout.data_len(piece) as usize;
        let begin = begin as usize;
        if begin >= len {
            return Ok(());
        }
        let n = data.len().min(len - begin);
        if !self.pieces.contains_key(&piece)
            && (self.spilled.contains(&piece) || self.buffered + len > self.max_buffered)
            && let Some(path) = self.spill_path(piece)?
        {
            self.spilled.insert(piece);
            let (_, local) = self.locate(piece).unwrap_or_default();
            let at = u64::from(local) * self.layout.piece_length + begin as u64;
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            return f.write_all_at(&data[..n], at);
        }
        let buf = self.pieces.entry(piece).or_insert_with(|| {
            self.buffered += len;
            vec![0u8; len]
        });
        buf[begin..begin + n].copy_from_slice(&data[..n]);
        Ok(())
    }

    /// The `.part` a piece can be written to unverified: its file begun,
    /// and not already an object. `None` keeps the piece in memory.
    fn spill_path(&mut self, piece: u32) -> std::io::Result<Option<PathBuf>> {
        let Some((file, _)) = self.locate(piece) else {
            return Ok(None);
        };
        if self.state[file] & (DONE | READY | SHARED) != 0 {
            return Ok(None);
        }
        let root = self.root(file)?;
        self.begin(file, root)?;
        if self.state[file] & (DONE | READY) != 0 {
            return Ok(None);
        }
        Ok(Some(self.partial_path(&root)))
    }

    fn partial_path(&self, root: &Sha256) -> PathBuf {
        self.partial_dir.join(format!("{}.part", to_hex(root)))
    }

    /// Records the file in the store (creates its `.part`) once per run.
    fn begin(&mut self, file: usize, root: Sha256) -> std::io::Result<()> {
        let st = self.state[file];
        if st & (DONE | BEGUN) != 0 {
            return Ok(());
        }
        let spec = file_spec(&self.meta, file, root).map_err(std::io::Error::other)?;
        let begun = self
            .lock()?
            .begin_file(spec)
            .map_err(std::io::Error::other)?;
        self.state[file] |= BEGUN;
        if begun == Begin::AlreadyComplete {
            // Another file with the same content completed it.
            self.mark_ready(file);
        }
        Ok(())
    }

    /// Hands a whole piece to the store. Returns whether it verified, the
    /// per-block digests (with `digests`, or on failure), and the files
    /// this completed (urgent ones complete at once).
    pub fn check(
        &mut self,
        piece: u32,
        digests: bool,
    ) -> std::io::Result<(bool, Vec<[u8; 32]>, News)> {
        let buf = match self.pieces.remove(&piece) {
            Some(b) => {
                self.buffered -= b.len();
                b
            }
            None if self.spilled.remove(&piece) => self.read_part(piece)?,
            None => Vec::new(),
        };
        let mut completed = News::default();
        let ok = match self.locate(piece) {
            None => false,
            Some((file, local)) => self.store_piece(piece, file, local, &buf, &mut completed)?,
        };
        let d = if digests || !ok {
            buf.chunks(BLOCK as usize).map(sha256).collect()
        } else {
            Vec::new()
        };
        Ok((ok, d, completed))
    }

    fn store_piece(
        &mut self,
        piece: u32,
        file: usize,
        local: u32,
        buf: &[u8],
        completed: &mut News,
    ) -> std::io::Result<bool> {
        let root = self.root(file)?;
        self.begin(file, root)?;
        let outcome = if self.state[file] & DONE != 0 {
            PieceOutcome::AlreadyHave
        } else {
            self.lock()?
                .write_piece(&root, local, buf)
                .map_err(std::io::Error::other)?
        };
        if outcome == PieceOutcome::HashMismatch {
            return Ok(false);
        }
        if self.have.set(piece) {
            self.unflushed.insert(piece);
            self.remaining[file] = self.remaining[file].saturating_sub(1);
            if self.remaining[file] == 0 {
                self.mark_ready(file);
            }
        }
        if self.state[file] & URGENT != 0 {
            self.readable(file, &root, std::iter::once(local))?;
        }
        if self.state[file] & (URGENT | READY) == URGENT | READY {
            completed.extend(self.complete(&[file])?);
        }
        Ok(true)
    }

    fn mark_ready(&mut self, file: usize) {
        let st = &mut self.state[file];
        if *st & (WANTED | READY | DONE) == WANTED {
            *st |= READY;
            self.ready.push(file);
        }
    }

    /// A file became wanted while running.
    pub fn want(&mut self, file: usize, urgent: bool) -> std::io::Result<News> {
        let Some(st) = self.state.get_mut(file) else {
            return Ok(News::default());
        };
        if *st & DATA == 0 {
            return Ok(News::default());
        }
        *st |= WANTED;
        if urgent {
            *st |= URGENT;
            // A client waits: what was verified before counts too (also
            // when asked again after a lagging listener missed some).
            let range = piece_range(&self.meta, file);
            let first = range.start;
            let had: Vec<u32> = range
                .filter(|p| self.have.get(*p))
                .map(|p| p - first)
                .collect();
            if !had.is_empty() {
                let root = self.root(file)?;
                self.readable(file, &root, had.into_iter())?;
            }
        }
        let st = &mut self.state[file];
        if *st & DONE != 0 {
            // Stored while unwanted, as a copy of a file with the same
            // content (by-hash): the engine learns it only now.
            return Ok(News {
                stored: vec![file],
                had: Vec::new(),
            });
        }
        if self.remaining[file] == 0 {
            self.mark_ready(file);
        }
        if self.state[file] & (URGENT | READY) == URGENT | READY {
            return self.complete(&[file]);
        }
        Ok(News::default())
    }

    /// Makes verified pieces durable (what a restart trusts), then moves
    /// every file whose pieces are all verified into `objects/`. Returns
    /// the files completed.
    pub fn flush(&mut self) -> std::io::Result<News> {
        self.lock()?.flush().map_err(std::io::Error::other)?;
        self.unflushed.clear();
        let ready = std::mem::take(&mut self.ready);
        self.complete(&ready)
    }

    fn complete(&mut self, files: &[usize]) -> std::io::Result<News> {
        let mut news = News::default();
        if files.is_empty() {
            return Ok(news);
        }
        if !self.unflushed.is_empty() {
            // complete_file flushes only when its own file has pieces
            // pending; flush everything so `unflushed` stays true.
            self.lock()?.flush().map_err(std::io::Error::other)?;
            self.unflushed.clear();
        }
        for &file in files {
            if self.state[file] & READY == 0 {
                continue;
            }
            let root = self.root(file)?;
            self.lock()?
                .complete_file(&root)
                .map_err(std::io::Error::other)?;
            self.state[file] = (self.state[file] & !READY) | DONE;
            self.open.remove(&(file, false));
            self.ready.retain(|f| *f != file);
            news.stored.push(file);
            if self.state[file] & SHARED != 0 {
                self.same_content_stored(file, root, &mut news);
            }
        }
        Ok(news)
    }

    /// Every other file with `root`'s content is stored too: had from now
    /// on, reported if wanted, its pieces in flight dropped.
    fn same_content_stored(&mut self, file: usize, root: Sha256, news: &mut News) {
        for j in 0..self.state.len() {
            let st = self.state[j];
            if j == file || st & (SHARED | DONE) != SHARED {
                continue;
            }
            if self.meta.info.files[j].pieces_root != Some(root) {
                continue;
            }
            self.state[j] = (st & !READY) | DONE;
            self.ready.retain(|f| *f != j);
            self.remaining[j] = 0;
            let range = piece_range(&self.meta, j);
            for p in range.clone() {
                self.have.set(p);
                if let Some(b) = self.pieces.remove(&p) {
                    self.buffered -= b.len();
                }
                self.spilled.remove(&p);
            }
            news.had.push(range);
            // Unwanted copies too: wanted later, they are answered at once.
            news.stored.push(j);
        }
    }

    /// Reads `len` bytes of verified piece `piece` from `begin`; padding
    /// reads as zeros.
    pub fn read(&mut self, piece: u32, begin: u32, len: u32) -> std::io::Result<Vec<u8>> {
        if !self.have.get(piece) {
            return Err(std::io::Error::other(format!(
                "piece {piece} is not stored"
            )));
        }
        let (file, local) = self
            .locate(piece)
            .ok_or_else(|| std::io::Error::other(format!("piece {piece} holds no file")))?;
        let data_len = self.layout.data_len(piece);
        let mut out = vec![0u8; len as usize];
        let end = begin.saturating_add(len).min(data_len);
        if begin >= end {
            return Ok(out);
        }
        let object = self.state[file] & DONE != 0;
        if !object && self.unflushed.contains(&piece) {
            self.lock()?.flush().map_err(std::io::Error::other)?;
            self.unflushed.clear();
        }
        if !self.open.contains_key(&(file, object)) {
            if self.open.len() >= MAX_OPEN {
                self.open.clear();
            }
            let root = self.root(file)?;
            let path = if object {
                self.lock()?.object_path(&root)
            } else {
                self.partial_path(&root)
            };
            self.open.insert((file, object), File::open(path)?);
        }
        let f = self
            .open
            .get(&(file, object))
            .ok_or_else(|| std::io::Error::other("file handle vanished"))?;
        let offset = u64::from(local) * self.layout.piece_length + u64::from(begin);
        f.read_exact_at(&mut out[..(end - begin) as usize], offset)?;
        Ok(out)
    }
}

impl StoreTarget {
    /// A spilled piece's bytes, back from its `.part`.
    fn read_part(&mut self, piece: u32) -> std::io::Result<Vec<u8>> {
        let (file, local) = self
            .locate(piece)
            .ok_or_else(|| std::io::Error::other(format!("piece {piece} holds no file")))?;
        let path = self.partial_path(&self.root(file)?);
        let mut buf = vec![0u8; self.layout.data_len(piece) as usize];
        let at = u64::from(local) * self.layout.piece_length;
        File::open(&path)?.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }
}

fn lock_store(store: &Mutex<Store>) -> Result<MutexGuard<'_, Store>, crate::Error> {
    store.lock().map_err(|_| crate::Error::Storage {
        path: "store".into(),
        reason: "lock poisoned (a thread panicked)".into(),
    })
}

/// What the store needs to begin file `i`.
fn file_spec(meta: &Metainfo, i: usize, root: Sha256) -> Result<FileSpec, crate::Error> {
    let f = &meta.info.files[i];
    let pl = meta.info.piece_length;
    let piece_layer = if f.length > pl {
        meta.piece_layers.get(&root).cloned().ok_or_else(|| {
            err(
                std::path::Path::new(&meta.info.name),
                format!("file {}: piece layer missing", f.display_path()),
            )
        })?
    } else {
        Vec::new()
    };
    Ok(FileSpec {
        root,
        length: f.length,
        piece_len: pl,
        piece_layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use torrent::create::{InputFile, Options, Plan, Source, create};

    const PL: u64 = 32 * 1024;

    struct Mem(Vec<(Vec<String>, Vec<u8>)>);

    impl Source for Mem {
        type Reader = Cursor<Vec<u8>>;
        fn open(&self, f: &InputFile) -> std::io::Result<Cursor<Vec<u8>>> {
            self.0
                .iter()
                .find(|(p, _)| *p == f.path)
                .map(|(_, d)| Cursor::new(d.clone()))
                .ok_or_else(|| std::io::Error::other("no such file"))
        }
    }

    fn data(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn torrent(files: &[(&str, Vec<u8>)]) -> Arc<Metainfo> {
        let mem = Mem(files
            .iter()
            .map(|(p, d)| (vec![(*p).to_owned()], d.clone()))
            .collect());
        let inputs = mem
            .0
            .iter()
            .map(|(p, d)| InputFile {
                path: p.clone(),
                length: d.len() as u64,
                executable: false,
                symlink_target: None,
            })
            .collect();
        let opts = Options {
            version: Version::Hybrid,
            piece_length: Some(PL),
            ..Options::default()
        };
        let plan = Plan::new("t", false, inputs, &opts).expect("plan");
        Arc::new(create(&plan, &opts, &mem, 1, &|_| {}).expect("create").1)
    }

    /// Feeds every wanted piece in blocks, as the session would.
    fn feed(t: &mut StoreTarget, meta: &Metainfo, files: &[(&str, Vec<u8>)]) -> Vec<usize> {
        let mut completed = Vec::new();
        for (i, f) in meta.info.files.iter().enumerate() {
            let Some((_, bytes)) = files.iter().find(|(p, _)| f.path.as_str() == *p) else {
                continue;
            };
            if t.state[i] & WANTED == 0 {
                continue;
            }
            for p in piece_range(meta, i) {
                let local = (p - piece_range(meta, i).start) as usize;
                let start = local * PL as usize;
                let piece = &bytes[start..(start + PL as usize).min(bytes.len())];
                for (b, block) in piece.chunks(BLOCK as usize).enumerate() {
                    t.write(p, (b * BLOCK as usize) as u32, block)
                        .expect("write");
                }
                let (ok, _, done) = t.check(p, false).expect("check");
                assert!(ok, "piece {p} of {}", f.display_path());
                completed.extend(done.stored);
            }
        }
        completed.extend(t.flush().expect("flush").stored);
        completed
    }

    #[test]
    fn over_budget_pieces_go_through_the_part_file() {
        let files = [("a", data(1, 100_000)), ("b", data(2, 70_000))];
        let meta = torrent(&files);
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Mutex::new(Store::open(tmp.path()).expect("store")));
        let wanted = vec![true; meta.info.files.len()];
        let (mut t, _) = StoreTarget::open(
            Arc::clone(&meta),
            Layout::new(&meta.info),
            Arc::clone(&store),
            &wanted,
        )
        .expect("open");
        t.max_buffered = 0;
        // A corrupt block in a spilled piece fails the check and blames it.
        t.write(0, 0, &[0u8; BLOCK as usize]).expect("write");
        t.write(0, BLOCK, &files[0].1[BLOCK as usize..PL as usize])
            .expect("write");
        assert!(t.spilled.contains(&0));
        let (ok, digests, _) = t.check(0, false).expect("check");
        assert!(!ok);
        assert_eq!(digests.len(), 2);
        let mut done = feed(&mut t, &meta, &files);
        done.sort_unstable();
        assert_eq!(t.buffered, 0);
        let s = store.lock().expect("lock");
        for (name, bytes) in &files {
            let f = meta.info.files.iter().find(|f| f.path.as_str() == *name);
            let root = f.and_then(|f| f.pieces_root).expect("root");
            let got = std::fs::read(s.object_path(&root)).expect("object");
            assert_eq!(&got, bytes, "{name}");
        }
        assert_eq!(done.len(), 2);
    }

    #[test]
    fn files_with_the_same_content_share_one_object_and_never_spill() {
        let same = data(7, 80_000);
        let files = [
            ("x", same.clone()),
            ("y", same.clone()),
            ("z", data(8, 40_000)),
        ];
        let meta = torrent(&files);
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Mutex::new(Store::open(tmp.path()).expect("store")));
        let wanted = vec![true; meta.info.files.len()];
        let (mut t, opened) = StoreTarget::open(
            Arc::clone(&meta),
            Layout::new(&meta.info),
            Arc::clone(&store),
            &wanted,
        )
        .expect("open");
        t.max_buffered = 0;
        let mut done = feed(&mut t, &meta, &files);
        done.sort_unstable();
        let data_files: Vec<usize> = (0..meta.info.files.len())
            .filter(|i| t.state[*i] & DATA != 0)
            .collect();
        assert_eq!(done, data_files, "every copy is reported");
        let shared = data_files
            .iter()
            .filter(|i| t.state[**i] & SHARED != 0)
            .count();
        assert_eq!(shared, 2);
        assert!(!opened.selection.is_complete());
        let s = store.lock().expect("lock");
        let root = meta.info.files[data_files[0]].pieces_root.expect("root");
        assert_eq!(std::fs::read(s.object_path(&root)).expect("object"), same);
    }
}
