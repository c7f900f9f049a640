//! Drives one torrent: sockets and the disk on one side, the sans-IO
//! [`torrent::session::Session`] on the other.
//!
//! Shape: one task owns the session and runs the loop below; each peer
//! connection has a reader task (bytes in, through a bounded channel, so a
//! fast peer is slowed by TCP rather than buffered here) and a writer task
//! (bytes out; the loop stops taking bytes from the session while a peer
//! has more than [`MAX_UNSENT`] unsent). Disk work (writes, reads for
//! uploads, hashing) runs on one dedicated thread: it never blocks the
//! reactor, and on a 2-core board hashing gets the second core.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use torrent::bitfield::Bitfield;
use torrent::metainfo::Metainfo;
use torrent::picker::{BlockRef, PeerKey};
use torrent::session::{Config, Event, Identity, Session};

use crate::storage::Storage;

/// Unsent bytes queued for one peer before the loop stops feeding it.
const MAX_UNSENT: usize = 1 << 20;
/// How often verified pieces are made durable in the resume record.
const RESUME_EVERY: Duration = Duration::from_secs(2);

/// What to do with a torrent.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder that holds the torrent's top-level name.
    pub dir: PathBuf,
    /// Peers to connect to.
    pub peers: Vec<SocketAddr>,
    /// Accept incoming peers here.
    pub listen: Option<SocketAddr>,
    /// Keep running and uploading after the download completes.
    pub seed: bool,
    pub peer_id: [u8; 20],
    pub config: Config,
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Block bytes received from peers in this run.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Pieces that were already verified when the run started.
    pub resumed_pieces: u32,
    pub pieces: u32,
    pub hash_failures: u64,
    pub complete: bool,
}

/// Progress reports for a UI.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub have_bytes: u64,
    pub total_bytes: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub peers: usize,
}

enum Input {
    Accepted(TcpStream, SocketAddr),
    Connected(PeerKey, TcpStream),
    ConnectFailed(PeerKey, String),
    Data(PeerKey, Vec<u8>),
    Closed(PeerKey, String),
}

enum DiskJob {
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
    Resume(Bitfield),
}

enum DiskDone {
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
    Failed(String),
}

struct Conn {
    addr: SocketAddr,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    unsent: Arc<AtomicUsize>,
}

/// Downloads and/or seeds `meta` until done (or, with `seed`, until
/// `shutdown` resolves).
pub async fn run(
    meta: Arc<Metainfo>,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
    progress: impl Fn(Progress),
) -> Result<Summary, crate::Error> {
    let storage_err = |e: std::io::Error| crate::Error::Storage {
        path: opts.dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut storage = Storage::open(Arc::clone(&meta), &opts.dir).map_err(storage_err)?;
    let layout = storage.layout().clone();
    let piece_count = layout.piece_count;
    let have = match storage.load_resume() {
        Some(have) => have,
        None => initial_check(&mut storage, piece_count).map_err(storage_err)?,
    };
    let resumed = have.count();
    let info_hash = meta
        .info
        .v1_infohash
        .or_else(|| {
            meta.info.v2_infohash.map(|h| {
                let mut t = [0u8; 20];
                t.copy_from_slice(&h[..20]);
                t
            })
        })
        .unwrap_or_default();
    let alt_info_hash = meta.info.v2_infohash.map(|h| {
        let mut t = [0u8; 20];
        t.copy_from_slice(&h[..20]);
        t
    });
    let id = Identity {
        info_hash,
        alt_info_hash,
        peer_id: opts.peer_id,
        v2: meta.info.v2_infohash.is_some(),
    };
    let seed_rng = u64::from_le_bytes([
        opts.peer_id[12],
        opts.peer_id[13],
        opts.peer_id[14],
        opts.peer_id[15],
        opts.peer_id[16],
        opts.peer_id[17],
        opts.peer_id[18],
        opts.peer_id[19],
    ]);
    let mut session = Session::new(id, layout.clone(), have, opts.config.clone(), seed_rng);
    let total_bytes: u64 = (0..piece_count)
        .map(|p| u64::from(layout.data_len(p)))
        .sum();

    // The disk thread.
    let (job_tx, job_rx) = std::sync::mpsc::channel::<DiskJob>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<DiskDone>();
    let disk = std::thread::Builder::new()
        .name("disk".into())
        .spawn(move || disk_thread(storage, job_rx, done_tx))
        .map_err(|e| crate::Error::Storage {
            path: "disk thread".into(),
            reason: e.to_string(),
        })?;

    let (in_tx, mut in_rx) = mpsc::channel::<Input>(256);
    let mut conns: HashMap<PeerKey, Conn> = HashMap::new();
    let mut next_key: PeerKey = 1;
    let mut banned: HashSet<std::net::IpAddr> = HashSet::new();
    let mut failed_at: HashMap<SocketAddr, Instant> = HashMap::new();

    if let Some(addr) = opts.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| crate::Error::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        if let Ok(local) = listener.local_addr() {
            tracing::info!("listening for peers on {local}");
        }
        let tx = in_tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, a)) => {
                        if tx.send(Input::Accepted(s, a)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    let mut summary = Summary {
        resumed_pieces: resumed,
        pieces: piece_count,
        ..Summary::default()
    };
    let mut complete = session.picker().is_complete();
    if complete {
        summary.complete = true;
    }
    let mut last_resume = Instant::now();
    let mut resume_dirty = false;
    let mut last_progress = Instant::now();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(250));

    loop {
        if complete && !opts.seed {
            break;
        }
        // Keep outgoing connections to the configured peers.
        if !complete || opts.seed {
            for addr in &opts.peers {
                let connected = conns.values().any(|c| c.addr == *addr);
                let recently_failed = failed_at
                    .get(addr)
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(2));
                if !connected && !recently_failed && !banned.contains(&addr.ip()) {
                    let key = next_key;
                    next_key += 1;
                    conns.insert(
                        key,
                        Conn {
                            addr: *addr,
                            writer: None,
                            unsent: Arc::new(AtomicUsize::new(0)),
                        },
                    );
                    let tx = in_tx.clone();
                    let a = *addr;
                    tokio::spawn(async move {
                        let r =
                            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a))
                                .await;
                        let msg = match r {
                            Ok(Ok(s)) => Input::Connected(key, s),
                            Ok(Err(e)) => Input::ConnectFailed(key, e.to_string()),
                            Err(_) => Input::ConnectFailed(key, "connect timed out".into()),
                        };
                        let _ = tx.send(msg).await;
                    });
                }
            }
        }

        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                session.handle_timeout(Instant::now());
            }
            Some(input) = in_rx.recv() => {
                match input {
                    Input::Accepted(stream, addr) => {
                        if banned.contains(&addr.ip()) || conns.len() >= 200 {
                            continue;
                        }
                        let key = next_key;
                        next_key += 1;
                        let conn = start_conn(key, stream, addr, in_tx.clone());
                        conns.insert(key, conn);
                        session.add_peer(key, false, Instant::now());
                    }
                    Input::Connected(key, stream) => {
                        let Some(addr) = conns.get(&key).map(|c| c.addr) else { continue };
                        let conn = start_conn(key, stream, addr, in_tx.clone());
                        conns.insert(key, conn);
                        session.add_peer(key, true, Instant::now());
                    }
                    Input::ConnectFailed(key, reason) => {
                        if let Some(c) = conns.remove(&key) {
                            tracing::debug!("cannot connect to {}: {reason}", c.addr);
                            failed_at.insert(c.addr, Instant::now());
                        }
                    }
                    Input::Data(key, data) => {
                        session.handle_input(key, &data, Instant::now());
                    }
                    Input::Closed(key, reason) => {
                        if let Some(c) = conns.remove(&key) {
                            tracing::debug!("peer {} closed: {reason}", c.addr);
                            failed_at.insert(c.addr, Instant::now());
                        }
                        session.remove_peer(key);
                    }
                }
            }
            Some(done) = done_rx.recv() => {
                match done {
                    DiskDone::Checked { piece, ok, digests } => {
                        if !ok {
                            tracing::warn!("piece {piece} failed its hash check");
                        }
                        session.piece_checked(piece, ok, &digests, Instant::now());
                    }
                    DiskDone::Read { peer, block, data } => {
                        session.send_block(peer, block, data.as_deref());
                    }
                    DiskDone::Failed(reason) => {
                        let _ = job_tx.send(DiskJob::Resume(session.picker().have().clone()));
                        drop(job_tx);
                        let _ = disk.join();
                        return Err(crate::Error::Storage { path: opts.dir.display().to_string(), reason });
                    }
                }
            }
        }

        // Session output.
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Block {
                    piece,
                    begin,
                    data,
                    complete: full,
                    ..
                } => {
                    let check = full.then(|| session.needs_digests(piece, true));
                    let _ = job_tx.send(DiskJob::Write {
                        piece,
                        begin,
                        data,
                        check,
                    });
                }
                Event::Read { peer, block } => {
                    let _ = job_tx.send(DiskJob::Read { peer, block });
                }
                Event::Verified { .. } => resume_dirty = true,
                Event::Complete => {
                    complete = true;
                    summary.complete = true;
                    let _ = job_tx.send(DiskJob::Resume(session.picker().have().clone()));
                    resume_dirty = false;
                    tracing::info!("download complete: {}", meta.info.name);
                }
                Event::Disconnect { peer, reason } => {
                    if let Some(c) = conns.remove(&peer) {
                        tracing::info!("dropping peer {}: {reason}", c.addr);
                        failed_at.insert(c.addr, Instant::now());
                    }
                    session.remove_peer(peer);
                }
                Event::Ban { peer, reason } => {
                    if let Some(c) = conns.remove(&peer) {
                        tracing::warn!("banning peer {}: {reason}", c.addr);
                        banned.insert(c.addr.ip());
                    }
                    session.remove_peer(peer);
                }
                Event::Connected { peer, .. } => {
                    if let Some(c) = conns.get(&peer) {
                        tracing::debug!("connected to {}", c.addr);
                    }
                }
                Event::Extended { .. } => {}
            }
        }
        for (key, conn) in conns.iter() {
            if conn.unsent.load(Ordering::Relaxed) < MAX_UNSENT && session.wants_transmit(*key) {
                let mut out = Vec::new();
                session.poll_transmit(*key, &mut out, Instant::now());
                if let Some(w) = &conn.writer
                    && !out.is_empty()
                {
                    conn.unsent.fetch_add(out.len(), Ordering::Relaxed);
                    let _ = w.send(out);
                }
            }
        }
        if resume_dirty && last_resume.elapsed() >= RESUME_EVERY {
            let _ = job_tx.send(DiskJob::Resume(session.picker().have().clone()));
            resume_dirty = false;
            last_resume = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            let stats = session.stats();
            progress(Progress {
                have_bytes: total_bytes - session.picker().left().min(total_bytes),
                total_bytes,
                downloaded: stats.downloaded,
                uploaded: stats.uploaded,
                peers: stats.peers,
            });
        }
    }

    let stats = session.stats();
    summary.downloaded = stats.downloaded;
    summary.uploaded = stats.uploaded;
    summary.hash_failures = stats.hash_failures;
    let _ = job_tx.send(DiskJob::Resume(session.picker().have().clone()));
    drop(job_tx);
    let joined = tokio::task::spawn_blocking(move || disk.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        return Err(crate::Error::Storage {
            path: opts.dir.display().to_string(),
            reason: "disk thread failed".into(),
        });
    }
    Ok(summary)
}

/// With no resume record, hashes what is on disk (a seed, or data copied
/// in by hand) so it is neither downloaded again nor trusted blindly.
fn initial_check(storage: &mut Storage, pieces: u32) -> std::io::Result<Bitfield> {
    let mut have = Bitfield::new(pieces);
    for p in 0..pieces {
        if let Ok((true, _)) = storage.check(p, false) {
            have.set(p);
        }
    }
    if have.count() > 0 {
        storage.save_resume(&have)?;
    }
    Ok(have)
}

fn start_conn(key: PeerKey, stream: TcpStream, addr: SocketAddr, tx: mpsc::Sender<Input>) -> Conn {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    let unsent = Arc::new(AtomicUsize::new(0));
    let unsent_w = Arc::clone(&unsent);
    let tx_r = tx.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx_r.send(Input::Closed(key, "closed by peer".into())).await;
                    break;
                }
                Ok(n) => {
                    if tx_r
                        .send(Input::Data(key, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx_r.send(Input::Closed(key, e.to_string())).await;
                    break;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = wrx.recv().await {
            let n = chunk.len();
            if let Err(e) = wr.write_all(&chunk).await {
                let _ = tx.send(Input::Closed(key, e.to_string())).await;
                break;
            }
            unsent_w.fetch_sub(n, Ordering::Relaxed);
        }
        let _ = wr.shutdown().await;
    });
    Conn {
        addr,
        writer: Some(wtx),
        unsent,
    }
}

fn disk_thread(
    mut storage: Storage,
    jobs: std::sync::mpsc::Receiver<DiskJob>,
    done: mpsc::UnboundedSender<DiskDone>,
) {
    while let Ok(job) = jobs.recv() {
        let r = match job {
            DiskJob::Write {
                piece,
                begin,
                data,
                check,
            } => storage
                .write(piece, begin, &data)
                .and_then(|()| match check {
                    Some(digests) => {
                        let (ok, d) = storage.check(piece, digests)?;
                        let _ = done.send(DiskDone::Checked {
                            piece,
                            ok,
                            digests: d,
                        });
                        Ok(())
                    }
                    None => Ok(()),
                }),
            DiskJob::Read { peer, block } => {
                let data = storage.read(block.piece, block.begin, block.len).ok();
                let _ = done.send(DiskDone::Read { peer, block, data });
                Ok(())
            }
            DiskJob::Resume(have) => storage.save_resume(&have),
        };
        if let Err(e) = r {
            let _ = done.send(DiskDone::Failed(e.to_string()));
            return;
        }
    }
}
