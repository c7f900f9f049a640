//! The disk thread of one torrent.
//!
//! Why a thread and not `spawn_blocking` per job: jobs for one torrent must
//! run in order (a piece is checked after its last block is written), one
//! thread keeps that order for free, and it gives hashing the second core
//! of a 2-core board while the reactor keeps moving bytes. The job queue is
//! bounded, so when the disk is slower than the network the engine stops
//! reading sockets instead of buffering.
//!
//! The thread drives either target (in-place files or the node's store)
//! through [`Backend`], so the engine does not care which it writes to.

use tokio::sync::mpsc;
use torrent::bitfield::Bitfield;
use torrent::picker::{BlockRef, PeerKey};

use crate::storage::Storage;
use crate::store_target::{News, StoreTarget};

/// Where the disk thread keeps the data.
pub enum Backend {
    Dir(Storage),
    Store(Box<StoreTarget>),
}

/// Jobs queued before the engine waits for the disk. A write job holds a
/// block (16 KiB): 64 of them are 1 MiB, enough to keep the disk busy
/// (256 were 4 MiB of copies on a board with 32 MiB for everything).
pub const QUEUE: usize = 64;

pub enum Job {
    /// Store a block; with `check`, then hash its piece (`Some(true)`: and
    /// return per-block digests).
    Write {
        piece: u32,
        begin: u32,
        data: Vec<u8>,
        check: Option<bool>,
    },
    Read {
        peer: PeerKey,
        block: BlockRef,
    },
    /// Make `have` durable (store target: flush the store, then complete
    /// the files whose pieces are all verified).
    Resume(Bitfield),
    /// Store target: a file became wanted.
    Want {
        file: usize,
        urgent: bool,
    },
}

pub enum Done {
    Checked {
        piece: u32,
        ok: bool,
        digests: Vec<[u8; 32]>,
    },
    Read {
        peer: PeerKey,
        block: BlockRef,
        data: Option<Vec<u8>>,
    },
    /// Store target: a wanted file is now an object.
    Stored(usize),
    /// Store target: these pieces are stored without being downloaded (a
    /// file with the same content completed).
    Had(std::ops::Range<u32>),
    Failed(String),
}

pub fn run(mut backend: Backend, mut jobs: mpsc::Receiver<Job>, done: mpsc::UnboundedSender<Done>) {
    while let Some(job) = jobs.blocking_recv() {
        let r = match &mut backend {
            Backend::Dir(storage) => dir_job(storage, job, &done),
            Backend::Store(target) => store_job(target, job, &done),
        };
        if let Err(e) = r {
            let _ = done.send(Done::Failed(e.to_string()));
            return;
        }
    }
}

fn dir_job(
    storage: &mut Storage,
    job: Job,
    done: &mpsc::UnboundedSender<Done>,
) -> std::io::Result<()> {
    match job {
        Job::Write {
            piece,
            begin,
            data,
            check,
        } => storage.write(piece, begin, &data).and_then(|()| {
            if let Some(digests) = check {
                let (ok, digests) = storage.check(piece, digests)?;
                let _ = done.send(Done::Checked { piece, ok, digests });
            }
            Ok(())
        }),
        Job::Read { peer, block } => {
            let data = storage.read(block.piece, block.begin, block.len).ok();
            let _ = done.send(Done::Read { peer, block, data });
            Ok(())
        }
        Job::Resume(have) => storage.save_resume(&have),
        Job::Want { .. } => Ok(()),
    }
}

fn store_job(
    target: &mut StoreTarget,
    job: Job,
    done: &mpsc::UnboundedSender<Done>,
) -> std::io::Result<()> {
    let news = match job {
        Job::Write {
            piece,
            begin,
            data,
            check,
        } => {
            target.write(piece, begin, &data)?;
            match check {
                Some(digests) => {
                    let (ok, digests, news) = target.check(piece, digests)?;
                    let _ = done.send(Done::Checked { piece, ok, digests });
                    news
                }
                None => News::default(),
            }
        }
        Job::Read { peer, block } => {
            let data = target.read(block.piece, block.begin, block.len).ok();
            let _ = done.send(Done::Read { peer, block, data });
            News::default()
        }
        Job::Resume(_) => target.flush()?,
        Job::Want { file, urgent } => target.want(file, urgent)?,
    };
    for range in news.had {
        let _ = done.send(Done::Had(range));
    }
    for f in news.stored {
        let _ = done.send(Done::Stored(f));
    }
    Ok(())
}
