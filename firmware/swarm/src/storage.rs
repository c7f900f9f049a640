//! Files of a torrent on disk, as a plain client keeps them: the tree under
//! `<dir>/<name>`, written in place.
//!
//! Crash rule (the same as the store's): a piece is recorded in the resume
//! file only after its bytes were fsynced, and the resume file itself is
//! replaced atomically (write, fsync, rename, fsync the directory). After a
//! SIGKILL a restart trusts the resume file and never rehashes or
//! re-downloads what it lists.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use torrent::bitfield::Bitfield;
use torrent::hash::{Sha1Hasher, sha256, to_hex};
use torrent::layout::Layout;
use torrent::merkle;
use torrent::metainfo::{Metainfo, Version};

/// Open file handles kept at once (a mirror tree has thousands of files).
const MAX_OPEN: usize = 128;

pub struct Storage {
    meta: Arc<Metainfo>,
    layout: Layout,
    paths: Vec<PathBuf>,
    open: HashMap<usize, File>,
    dirty: Vec<usize>,
    resume: PathBuf,
    had_data: bool,
    /// The piece being checked, kept between checks: a fresh piece-sized
    /// buffer each time is an mmap, page faults and an munmap per piece
    /// once the allocator is tuned to give big blocks back (bsp::memory).
    scratch: Vec<u8>,
}

impl Storage {
    /// Creates directories and (sparse) files as needed.
    pub fn open(meta: Arc<Metainfo>, dir: &Path) -> io::Result<Storage> {
        let info = &meta.info;
        let base = if info.single_file {
            dir.to_path_buf()
        } else {
            dir.join(&info.name)
        };
        let mut paths = Vec::with_capacity(info.files.len());
        let mut had_data = false;
        // Files come grouped by directory: one create_dir_all per run of
        // files in the same directory, not one per file.
        let mut made: Option<PathBuf> = None;
        for f in &info.files {
            let mut p = base.clone();
            if !info.single_file {
                p.extend(f.path.components());
            } else {
                p.push(&info.name);
            }
            if !f.attr.pad {
                if let Some(parent) = p.parent()
                    && made.as_deref() != Some(parent)
                {
                    std::fs::create_dir_all(parent)?;
                    made = Some(parent.to_path_buf());
                }
                if let Some(target) = &f.symlink_target {
                    if std::fs::symlink_metadata(&p).is_err() {
                        std::os::unix::fs::symlink(target.relative_from(&f.path), &p)?;
                    }
                } else {
                    let file = OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&p)?;
                    let len = file.metadata()?.len();
                    had_data |= len > 0;
                    if len != f.length {
                        file.set_len(f.length)?;
                    }
                }
            }
            paths.push(p);
        }
        let resume = resume_file(info, dir)?;
        Ok(Storage {
            layout: Layout::new(info),
            meta,
            paths,
            open: HashMap::new(),
            dirty: Vec::new(),
            resume,
            had_data,
            scratch: Vec::new(),
        })
    }

    /// Records every piece of the torrent in `dir` as verified, without
    /// opening its files: for an origin that has just hashed them (opening
    /// 20,000 files only to write one resume file cost a re-publish 40,000
    /// syscalls).
    pub fn record_complete(meta: &Metainfo, dir: &Path) -> io::Result<()> {
        // Layout's piece count, without building its file table.
        let pieces = u32::try_from(meta.info.piece_count()).unwrap_or(u32::MAX);
        write_resume(&resume_file(&meta.info, dir)?, &Bitfield::full(pieces))
    }

    /// Whether any file already had data when opened (worth a check).
    pub fn had_data(&self) -> bool {
        self.had_data
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn file(&mut self, i: usize) -> io::Result<&File> {
        if !self.open.contains_key(&i) {
            if self.open.len() >= MAX_OPEN {
                self.sync()?;
                self.open.clear();
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.paths[i])?;
            self.open.insert(i, f);
        }
        self.open
            .get(&i)
            .ok_or_else(|| io::Error::other("file handle vanished"))
    }

    /// Writes block data; bytes that fall in padding are dropped.
    pub fn write(&mut self, piece: u32, begin: u32, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        for sp in self.layout.spans(piece, begin, len) {
            let off = (sp.piece_offset - begin) as usize;
            self.file(sp.file)?
                .write_all_at(&data[off..off + sp.len as usize], sp.file_offset)?;
            if !self.dirty.contains(&sp.file) {
                self.dirty.push(sp.file);
            }
        }
        Ok(())
    }

    /// Reads `len` bytes of piece `piece` from `begin`; padding reads as zeros.
    pub fn read(&mut self, piece: u32, begin: u32, len: u32) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len as usize];
        self.read_into(piece, begin, &mut out)?;
        Ok(out)
    }

    /// [`Storage::read`] into `out`, which padding must find zeroed.
    fn read_into(&mut self, piece: u32, begin: u32, out: &mut [u8]) -> io::Result<()> {
        let len = u32::try_from(out.len()).map_err(|_| io::Error::other("read too long"))?;
        for sp in self.layout.spans(piece, begin, len) {
            let off = (sp.piece_offset - begin) as usize;
            self.file(sp.file)?
                .read_exact_at(&mut out[off..off + sp.len as usize], sp.file_offset)?;
        }
        Ok(())
    }

    /// Hashes a whole piece against the torrent (v2 hashes when the piece
    /// layers are known, else v1). With `digests`, also returns a SHA-256
    /// per 16 KiB block, used to find which peer sent a bad block.
    pub fn check(&mut self, piece: u32, digests: bool) -> io::Result<(bool, Vec<[u8; 32]>)> {
        let size = self.layout.piece_size(piece) as usize;
        let mut data = std::mem::take(&mut self.scratch);
        data.clear();
        data.resize(size, 0);
        let checked = self.read_into(piece, 0, &mut data).map(|()| {
            let ok = check_piece(&self.meta, &self.layout, piece, &data);
            let d = if digests || !ok {
                data.chunks(16 * 1024).map(sha256).collect()
            } else {
                Vec::new()
            };
            (ok, d)
        });
        self.scratch = data;
        checked
    }

    /// fsyncs every file written since the last sync.
    pub fn sync(&mut self) -> io::Result<()> {
        for i in std::mem::take(&mut self.dirty) {
            if let Some(f) = self.open.get(&i) {
                f.sync_data()?;
            } else {
                File::open(&self.paths[i])?.sync_data()?;
            }
        }
        Ok(())
    }

    /// The pieces recorded as verified, if a resume file for this torrent
    /// exists and is well-formed.
    pub fn load_resume(&self) -> Option<Bitfield> {
        let f = File::open(&self.resume).ok()?;
        let mut buf = Vec::new();
        f.take(u64::from(self.layout.piece_count / 8 + 64))
            .read_to_end(&mut buf)
            .ok()?;
        let (head, bits) = buf.split_at_checked(8)?;
        let magic_ok = &head[..4] == b"SSR1";
        let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if !magic_ok || count != self.layout.piece_count {
            return None;
        }
        Bitfield::from_wire(bits, count)
    }

    /// Syncs data, then atomically records `have` as verified.
    pub fn save_resume(&mut self, have: &Bitfield) -> io::Result<()> {
        self.sync()?;
        write_resume(&self.resume, have)
    }
}

/// `<dir>/.swarmsync/<infohash>.resume`, its directory created.
fn resume_file(info: &torrent::Info, dir: &Path) -> io::Result<PathBuf> {
    let hash = info
        .v1_infohash
        .map(|h| to_hex(&h))
        .or_else(|| info.v2_infohash.map(|h| to_hex(&h)))
        .unwrap_or_default();
    let resume_dir = dir.join(".swarmsync");
    std::fs::create_dir_all(&resume_dir)?;
    Ok(resume_dir.join(format!("{hash}.resume")))
}

/// Writes a resume file atomically and durably.
fn write_resume(path: &Path, have: &Bitfield) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(b"SSR1")?;
        f.write_all(&have.len().to_be_bytes())?;
        f.write_all(have.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Checks one piece's bytes (padding included) against the torrent.
pub fn check_piece(meta: &Metainfo, layout: &Layout, piece: u32, data: &[u8]) -> bool {
    let info = &meta.info;
    if info.version != Version::V1 && !meta.piece_layers.is_empty() || info.version == Version::V2 {
        let spans = layout.spans(piece, 0, layout.piece_size(piece));
        // Aligned layouts: at most one file per piece.
        let Some(sp) = spans.first() else {
            return data.iter().all(|b| *b == 0);
        };
        let f = &info.files[sp.file];
        let local = sp.file_offset / info.piece_length;
        let Some((expected, width)) = meta.v2_piece(f, local) else {
            return false;
        };
        let part = &data[sp.piece_offset as usize..(sp.piece_offset + sp.len) as usize];
        return merkle::piece_hash(part, width) == Some(expected);
    }
    let mut h = Sha1Hasher::default();
    h.update(data);
    info.pieces.get(piece as usize) == Some(&h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use torrent::Version;
    use torrent::create::{InputFile, Options, Plan, Source, create};

    /// Every file is `length` bytes of 3.
    struct Threes;

    impl Source for Threes {
        type Reader = Cursor<Vec<u8>>;
        fn open(&self, f: &InputFile) -> io::Result<Cursor<Vec<u8>>> {
            Ok(Cursor::new(vec![3; f.length as usize]))
        }
    }

    #[test]
    fn record_complete_writes_what_an_opened_storage_loads() {
        let mut files = Vec::new();
        for (name, len) in [("a", 40_000usize), ("b", 70_000)] {
            files.push(InputFile {
                path: vec!["d".to_owned(), name.to_owned()],
                length: len as u64,
                executable: false,
                symlink_target: None,
            });
        }
        let opts = Options {
            version: Version::Hybrid,
            piece_length: Some(16384),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        let (_, meta) = create(&plan, &opts, &Threes, 1, &|_| {}).expect("create");
        let meta = Arc::new(meta);
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("t").join("d");
        std::fs::create_dir_all(&t).expect("mkdir");
        std::fs::write(t.join("a"), vec![3u8; 40_000]).expect("write");
        std::fs::write(t.join("b"), vec![3u8; 70_000]).expect("write");

        Storage::record_complete(&meta, dir.path()).expect("record");
        let storage = Storage::open(Arc::clone(&meta), dir.path()).expect("open");
        let have = storage.load_resume().expect("resume");
        assert!(have.is_full());
        assert_eq!(have.len(), storage.layout().piece_count);
    }
}
