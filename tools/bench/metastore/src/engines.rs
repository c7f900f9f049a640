//! The two candidate engines behind one small interface: commit a batch of
//! piece records durably, read the resume point, verify records.

use crate::workload::{KEY_LEN, Record, VAL_LEN, set_bit};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redb,
    Sled,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "redb" => Ok(Kind::Redb),
            "sled" => Ok(Kind::Sled),
            _ => Err(format!("unknown engine {s:?} (redb | sled)")),
        }
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Redb => "redb",
            Kind::Sled => "sled",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub kind: Kind,
    /// Engine cache in bytes; None = the engine's default (1 GiB for both).
    pub cache_bytes: Option<u64>,
    /// redb only: persist allocator state on each commit (2-phase commit) so
    /// that opening after a crash needs no full repair.
    pub quick_repair: bool,
    /// Write only the piece records and the meta record, no per-file bitmaps.
    pub no_progress: bool,
    /// Negative control for the crash test: report commits without making
    /// them durable (redb `Durability::None`, sled without `flush()`).
    pub no_sync: bool,
}

/// Where an engine keeps its data inside the benchmark directory.
pub fn db_path(dir: &Path, kind: Kind) -> PathBuf {
    match kind {
        Kind::Redb => dir.join("index.redb"),
        Kind::Sled => dir.join("index.sled"),
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Verified {
    pub present: u64,
    pub missing: u64,
    pub damaged: u64,
}

impl Verified {
    fn see(&mut self, want: &[u8; VAL_LEN], got: Option<&[u8]>) {
        match got {
            None => self.missing += 1,
            Some(v) if v == want => self.present += 1,
            Some(_) => self.damaged += 1,
        }
    }
}

pub trait Engine {
    /// The batch number the next commit will carry (0 on an empty index).
    fn next_batch(&self) -> Result<u64>;
    /// One durable transaction: the records, the progress bitmaps of the files
    /// they belong to, and the resume point `batch + 1`.
    fn commit(&mut self, batch: u64, records: &[Record]) -> Result<()>;
    /// Look every record up and compare its value.
    fn verify(&self, records: &mut dyn Iterator<Item = Record>) -> Result<Verified>;
    /// True if the last open had to repair the file (redb only reports this).
    fn repaired(&self) -> Option<bool>;
    fn close(self: Box<Self>) -> Result<()>;
}

pub fn open(dir: &Path, opts: &Options) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir)?;
    match opts.kind {
        Kind::Redb => Ok(Box::new(RedbIndex::open(dir, opts)?)),
        Kind::Sled => Ok(Box::new(SledIndex::open(dir, opts)?)),
    }
}

/// Groups a batch's bitmap updates by file, so each progress record is
/// read and written once per transaction.
fn progress_updates(
    records: &[Record],
    mut current: impl FnMut(&[u8; 32]) -> Result<Option<Vec<u8>>>,
) -> Result<Vec<([u8; 32], Vec<u8>)>> {
    let mut out: Vec<([u8; 32], Vec<u8>)> = Vec::new();
    for r in records {
        let root = *r.root();
        let at = match out.iter().position(|(k, _)| *k == root) {
            Some(i) => i,
            None => {
                let cur = current(&root)?.unwrap_or_default();
                out.push((root, cur));
                out.len() - 1
            }
        };
        let before = std::mem::take(&mut out[at].1);
        let prev = if before.is_empty() {
            None
        } else {
            Some(&before[..])
        };
        out[at].1 = set_bit(prev, r.pieces, r.index());
    }
    Ok(out)
}

// ---------------------------------------------------------------- redb

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

const PIECES: TableDefinition<&[u8; KEY_LEN], &[u8; VAL_LEN]> = TableDefinition::new("pieces");
const FILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("files");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub struct RedbIndex {
    db: redb::Database,
    quick_repair: bool,
    no_progress: bool,
    no_sync: bool,
    repaired: bool,
}

impl RedbIndex {
    fn open(dir: &Path, opts: &Options) -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let mut b = redb::Database::builder();
        if let Some(c) = opts.cache_bytes {
            b.set_cache_size(c as usize);
        }
        b.set_repair_callback(move |_| seen.store(true, Ordering::Relaxed));
        let db = b.create(db_path(dir, Kind::Redb))?;
        Ok(RedbIndex {
            db,
            quick_repair: opts.quick_repair,
            no_progress: opts.no_progress,
            no_sync: opts.no_sync,
            repaired: flag.load(Ordering::Relaxed),
        })
    }
}

impl Engine for RedbIndex {
    fn next_batch(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(meta.get("next_batch")?.map(|v| v.value()).unwrap_or(0))
    }

    fn commit(&mut self, batch: u64, records: &[Record]) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(if self.no_sync {
            Durability::None
        } else {
            Durability::Immediate
        })?;
        if self.quick_repair {
            tx.set_quick_repair(true);
        }
        {
            let mut pieces = tx.open_table(PIECES)?;
            let mut files = tx.open_table(FILES)?;
            let mut meta = tx.open_table(META)?;
            for r in records {
                pieces.insert(&r.key, &r.val)?;
            }
            let updates = if self.no_progress {
                Vec::new()
            } else {
                progress_updates(records, |root| {
                    Ok(files.get(root)?.map(|v| v.value().to_vec()))
                })?
            };
            for (root, p) in &updates {
                files.insert(root, &p[..])?;
            }
            let verified = meta.get("verified_pieces")?.map(|v| v.value()).unwrap_or(0);
            meta.insert("verified_pieces", verified + records.len() as u64)?;
            meta.insert("next_batch", batch + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn verify(&self, records: &mut dyn Iterator<Item = Record>) -> Result<Verified> {
        let mut v = Verified::default();
        let tx = self.db.begin_read()?;
        let pieces = match tx.open_table(PIECES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                v.missing = records.count() as u64;
                return Ok(v);
            }
            Err(e) => return Err(e.into()),
        };
        for r in records {
            let got = pieces.get(&r.key)?;
            v.see(&r.val, got.as_ref().map(|g| &g.value()[..]));
        }
        Ok(v)
    }

    fn repaired(&self) -> Option<bool> {
        Some(self.repaired)
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self.db);
        Ok(())
    }
}

// ---------------------------------------------------------------- sled

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

pub struct SledIndex {
    db: sled::Db,
    pieces: sled::Tree,
    files: sled::Tree,
    meta: sled::Tree,
    no_progress: bool,
    no_sync: bool,
}

impl SledIndex {
    fn open(dir: &Path, opts: &Options) -> Result<Self> {
        let mut cfg = sled::Config::new().path(db_path(dir, Kind::Sled));
        if let Some(c) = opts.cache_bytes {
            cfg = cfg.cache_capacity(c);
        }
        let db = cfg.open()?;
        let pieces = db.open_tree("pieces")?;
        let files = db.open_tree("files")?;
        let meta = db.open_tree("meta")?;
        Ok(SledIndex {
            db,
            pieces,
            files,
            meta,
            no_progress: opts.no_progress,
            no_sync: opts.no_sync,
        })
    }
}

fn be_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl Engine for SledIndex {
    fn next_batch(&self) -> Result<u64> {
        Ok(be_u64(self.meta.get("next_batch")?))
    }

    fn commit(&mut self, batch: u64, records: &[Record]) -> Result<()> {
        (&self.pieces, &self.files, &self.meta)
            .transaction(|(pieces, files, meta)| {
                for r in records {
                    pieces.insert(&r.key[..], &r.val[..])?;
                }
                let updates = if self.no_progress {
                    Vec::new()
                } else {
                    progress_updates(records, |root| {
                        Ok(files
                            .get(&root[..])
                            .map_err(|e| format!("{e:?}"))?
                            .map(|v| v.to_vec()))
                    })
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?
                };
                for (root, p) in updates {
                    files.insert(&root[..], p)?;
                }
                let verified = be_u64(meta.get("verified_pieces")?);
                meta.insert(
                    "verified_pieces",
                    &(verified + records.len() as u64).to_be_bytes(),
                )?;
                meta.insert("next_batch", &(batch + 1).to_be_bytes())?;
                Ok(())
            })
            .map_err(|e| format!("sled transaction: {e:?}"))?;
        // sled makes writes durable only on flush (or every 500 ms in the
        // background): flush before the commit is reported.
        if !self.no_sync {
            self.db.flush()?;
        }
        Ok(())
    }

    fn verify(&self, records: &mut dyn Iterator<Item = Record>) -> Result<Verified> {
        let mut v = Verified::default();
        for r in records {
            let got = self.pieces.get(&r.key[..])?;
            v.see(&r.val, got.as_deref());
        }
        Ok(v)
    }

    fn repaired(&self) -> Option<bool> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.flush()?;
        drop(self.pieces);
        drop(self.files);
        drop(self.meta);
        drop(self.db);
        Ok(())
    }
}
