//! Drives one torrent: sockets, trackers, LSD, web seeds and the disk on one
//! side, the sans-IO [`torrent::session::Session`] on the other.
//!
//! One task owns the session and runs the loop in [`run`]; everything else
//! talks to it through channels: connection tasks ([`crate::conn`]), the
//! disk thread ([`crate::disk`]), tracker announcers, LSD and web seed
//! workers. Keeping the session on one task means no locks around it, and
//! the session itself decides everything protocol-related.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use torrent::bitfield::Bitfield;
use torrent::ext::{self, ExtHandshake, ExtMessage, ExtensionIds, LOCAL_IDS, MetadataMessage};
use torrent::layout::Layout;
use torrent::metainfo::Metainfo;
use torrent::picker::{BlockRef, PeerKey};
use torrent::session::{Config, Event, Identity, Session, Stats};

use crate::announcer::{Announcer, AnnouncerConfig, Transfer};
use crate::conn::{Conn, ConnEvent};
use crate::disk::{self, Backend, Done, Job};
use crate::storage::Storage;
pub use crate::store_target::Readable;
use crate::store_target::{self, Opened, StoreTarget, Wanted};

/// Unsent bytes queued for one peer before the loop stops feeding it.
const MAX_UNSENT: usize = 1 << 20;
/// How often verified pieces are made durable in the resume record.
const RESUME_EVERY: Duration = Duration::from_secs(2);
/// Wait before dialing an address again after a failure.
const REDIAL: Duration = Duration::from_secs(2);
/// Picker priority of files wanted with [`Control::Want`] `urgent`: above
/// every other (1 = normal), and picked in piece order so the file can be
/// streamed from its start.
const URGENT: u8 = torrent::picker::IN_ORDER;
/// Why the engine stopped when the disk thread went away without a word
/// yet; its own error, read after it is joined, replaces this.
const DISK_STOPPED: &str = "disk thread stopped";
/// Peer keys from here up are web seeds.
const WEB_SEED_KEYS: PeerKey = 1 << 48;

/// How long without block data from any peer before web seeds are used:
/// they are the origin's HTTP server, the uplink the swarm is there to
/// spare.
const WEB_SEED_AFTER: Duration = Duration::from_secs(5);

/// Where a torrent's data lives.
#[derive(Debug, Clone)]
pub enum Target {
    /// In place, as a plain client keeps it: the tree under `<dir>/<name>`
    /// (`dir` is libtorrent's save_path), with a resume file in
    /// `<dir>/.swarmsync/`. Every file is downloaded.
    Dir(PathBuf),
    /// Into a node's content-addressed store: each file becomes
    /// `objects/<pieces root>`, downloaded through `partial/`. Hybrid and v2
    /// torrents only (every file starts on a piece boundary). The lock is
    /// held per store operation only, so the node can build snapshots and
    /// collect garbage meanwhile.
    Store {
        store: Arc<std::sync::Mutex<store::Store>>,
        /// Per index of `meta.info.files`: download this file. Pad files,
        /// symlinks and empty files need nothing whatever they say here;
        /// missing entries count as not wanted. [`Control::Want`] adds
        /// files while running.
        wanted: Vec<bool>,
    },
}

/// Instructions to a running engine (through [`Options::control`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Download file `file` (index of `meta.info.files`) too. `urgent`
    /// puts its pieces ahead of everything else (a client waiting for it,
    /// metadata files first) and completes it as soon as its last piece
    /// verifies. Wanting a wanted file again can raise it to urgent; a file
    /// already stored is reported on [`Options::completed`] at once.
    /// Store target only; ignored for [`Target::Dir`].
    Want { file: usize, urgent: bool },
}

/// What to do with a torrent.
#[derive(Debug)]
pub struct Options {
    /// Where the data goes (and, seeding, comes from).
    pub target: Target,
    /// Runtime instructions (store target), e.g. fetch-on-miss.
    pub control: Option<mpsc::Receiver<Control>>,
    /// Store target: receives the index of every wanted file once its
    /// object is in the store: at start for those already stored, then as
    /// each completes (durably: renamed into `objects/`). Each file at most
    /// once per run. Files without data (empty, symlink, pad) are never
    /// sent.
    pub completed: Option<mpsc::UnboundedSender<usize>>,
    /// Store target: each piece of a file wanted `urgent` as soon as its
    /// verified bytes can be read from the file's `.part` (or object), and
    /// when a file becomes urgent, its pieces verified before. A receiver
    /// that lagged asks for the file again with [`Control::Want`] `urgent`
    /// to hear them all once more. Fetch-on-miss streams from this.
    pub readable: Option<tokio::sync::broadcast::Sender<Readable>>,
    /// Peers to connect to.
    pub peers: Vec<SocketAddr>,
    /// Accept incoming peers here. Trackers and LSD need it; without it
    /// they get an ephemeral port on all interfaces.
    pub listen: Option<SocketAddr>,
    /// Keep running and uploading after the download completes.
    pub seed: bool,
    pub peer_id: [u8; 20],
    pub config: Config,
    /// Tracker announce URLs (in addition to the torrent's).
    pub trackers: Vec<String>,
    /// Local service discovery (BEP 14), if wanted.
    pub lsd: Option<crate::lsd::Config>,
    /// Web seed URLs (in addition to the torrent's `url-list`).
    pub web_seeds: Vec<String>,
    /// Use the torrent's own trackers and web seeds.
    pub use_torrent_sources: bool,
    /// Outgoing connections at once.
    pub max_outgoing: usize,
    /// Connections at once, both directions.
    pub max_connections: usize,
    /// Rate limits every connection of this torrent passes through (a
    /// per-torrent limiter, and the process's global one).
    pub limits: crate::conn::Limits,
    /// The process's DHT node (BEP 5), if DHT is on: the torrent's
    /// handshake hashes are announced and looked up there. Never used for
    /// private torrents (BEP 27).
    pub dht: Option<Arc<crate::dht::Dht>>,
    /// Release gossip (the `swarmsync_release` BEP 10 extension): what we
    /// announce to peers that speak it, and where what they announce goes.
    pub gossip: Option<Gossip>,
    /// Where the info dictionary is when `meta.info.raw` is empty (parsed
    /// with [`Metainfo::from_bytes_without_raw`]): metadata requests (BEP
    /// 9) are answered from this file instead.
    pub info_file: Option<InfoFile>,
}

/// The info dictionary's bytes inside a file (a saved `.torrent`).
#[derive(Debug, Clone)]
pub struct InfoFile {
    pub path: PathBuf,
    /// Where the dictionary starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

impl InfoFile {
    /// The BEP 9 answer for metadata piece `piece`: its bytes, read from
    /// the file, or a reject (out of range, or the file unreadable).
    fn answer(&self, piece: u32, out: &mut Vec<u8>) {
        use std::os::unix::fs::FileExt;
        let read = |range: std::ops::Range<usize>| -> Option<Vec<u8>> {
            let mut buf = vec![0u8; range.len()];
            let f = std::fs::File::open(&self.path).ok()?;
            f.read_exact_at(&mut buf, self.offset.checked_add(range.start as u64)?)
                .ok()?;
            Some(buf)
        };
        let piece_data = ext::metadata_piece(self.len, piece)
            .and_then(|(total, range)| Some((total, read(range)?)));
        match piece_data {
            Some((total_size, data)) => MetadataMessage::Data {
                piece,
                total_size,
                data: &data,
            }
            .encode(out),
            None => MetadataMessage::Reject { piece }.encode(out),
        }
    }
}

/// The two ends of release gossip for one run. The engine only carries
/// bytes: the node verifies what it hears (`channel::gossip`,
/// `channel::accept`) and decides what to announce.
#[derive(Debug)]
pub struct Gossip {
    /// The signed release to send to every peer that speaks the extension,
    /// now and whenever it changes (`None`: nothing to say).
    pub outbound: watch::Receiver<Option<Arc<Vec<u8>>>>,
    /// Payloads peers sent; dropped when the node is behind (bounded).
    pub inbound: mpsc::Sender<Vec<u8>>,
}

impl Options {
    /// In-place download into `dir` (see [`Target::Dir`]).
    pub fn new(dir: PathBuf, peer_id: [u8; 20]) -> Options {
        Options::with_target(Target::Dir(dir), peer_id)
    }

    /// Defaults for any target: no peers, no trackers, no seeding.
    pub fn with_target(target: Target, peer_id: [u8; 20]) -> Options {
        Options {
            target,
            control: None,
            completed: None,
            readable: None,
            peers: Vec::new(),
            listen: None,
            seed: false,
            peer_id,
            config: Config::default(),
            trackers: Vec::new(),
            lsd: None,
            web_seeds: Vec::new(),
            use_torrent_sources: true,
            max_outgoing: 30,
            max_connections: 100,
            limits: crate::conn::Limits::default(),
            dht: None,
            gossip: None,
            info_file: None,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Block bytes received from peers and web seeds in this run.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Pieces that were already verified when the run started.
    pub resumed_pieces: u32,
    pub pieces: u32,
    pub hash_failures: u64,
    /// Every wanted piece (store target: every wanted file) is stored.
    pub complete: bool,
    /// Store target: files that became objects in this run.
    pub completed_files: u64,
}

/// Progress reports for a UI.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes of wanted files stored.
    pub have_bytes: u64,
    /// Bytes of wanted files (grows with [`Control::Want`]).
    pub total_bytes: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub peers: usize,
}

enum Input {
    Accepted(TcpStream, SocketAddr),
    Dialed(PeerKey, Result<TcpStream, String>),
    /// A peer address from a tracker, LSD or PEX.
    Found(SocketAddr),
    WebSeed(WebSeedEvent),
}

enum WebSeedEvent {
    /// A worker wants work; answer on the channel.
    Want(PeerKey, tokio::sync::oneshot::Sender<Vec<BlockRef>>),
    Data(PeerKey, Vec<(BlockRef, Vec<u8>)>),
    Failed(PeerKey, Vec<BlockRef>, String),
}

/// The 20-byte handshake hashes of a torrent: v1 (or truncated v2), and
/// the truncated v2 of a hybrid.
pub fn handshake_hashes(meta: &Metainfo) -> ([u8; 20], Option<[u8; 20]>) {
    let v2 = meta
        .info
        .v2_infohash
        .as_ref()
        .map(torrent::wire::truncated_v2);
    match meta.info.v1_infohash {
        Some(v1) => (v1, v2),
        None => (v2.unwrap_or_default(), None),
    }
}

/// Downloads and/or seeds `meta` until done (or, with `seed`, until
/// `shutdown` resolves).
pub async fn run(
    meta: Arc<Metainfo>,
    mut opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
    progress: impl Fn(Progress),
) -> Result<Summary, crate::Error> {
    let target_path = match &opts.target {
        Target::Dir(dir) => dir.display().to_string(),
        Target::Store { store, .. } => store
            .lock()
            .map(|s| s.dir().display().to_string())
            .unwrap_or_else(|_| "store".into()),
    };
    let storage_err = |e: std::io::Error| crate::Error::Storage {
        path: target_path.clone(),
        reason: e.to_string(),
    };
    let layout = Layout::new(&meta.info);
    let piece_count = layout.piece_count;
    let (backend, have, mut selection) = match &opts.target {
        Target::Dir(dir) => {
            let mut storage = Storage::open(Arc::clone(&meta), dir).map_err(storage_err)?;
            let have = match storage.load_resume() {
                Some(have) => have,
                None if storage.had_data() => {
                    initial_check(&mut storage, piece_count).map_err(storage_err)?
                }
                None => Bitfield::new(piece_count),
            };
            (Backend::Dir(storage), have, None)
        }
        Target::Store { store, wanted } => {
            let (m, s, w) = (Arc::clone(&meta), Arc::clone(store), wanted.clone());
            let l = layout.clone();
            let (mut target, opened) =
                tokio::task::spawn_blocking(move || StoreTarget::open(m, l, s, &w))
                    .await
                    .map_err(|e| crate::Error::Storage {
                        path: target_path.clone(),
                        reason: e.to_string(),
                    })??;
            if let Some(tx) = &opts.readable {
                target.announce_readable(tx.clone());
            }
            let Opened { have, selection } = opened;
            (Backend::Store(Box::new(target)), have, Some(selection))
        }
    };
    // Store target: only pieces of wanted files count.
    let resumed = match &selection {
        None => have.count(),
        Some(sel) => (0..meta.info.files.len())
            .filter(|f| sel.is_wanted(*f))
            .flat_map(|f| store_target::piece_range(&meta, f))
            .filter(|p| have.get(*p))
            .count() as u32,
    };
    let (info_hash, alt_info_hash) = handshake_hashes(&meta);
    let id = Identity {
        info_hash,
        alt_info_hash,
        peer_id: opts.peer_id,
        v2: meta.info.v2_infohash.is_some(),
    };
    let mut seed_rng = [0u8; 8];
    seed_rng.copy_from_slice(&opts.peer_id[12..20]);
    let mut session = Session::new(
        id,
        layout.clone(),
        have,
        opts.config.clone(),
        u64::from_le_bytes(seed_rng),
    );
    session.share_piece_layers(Arc::clone(&meta));
    let mut total_bytes: u64 = match &selection {
        None => (0..piece_count)
            .map(|p| u64::from(layout.data_len(p)))
            .sum(),
        Some(sel) => sel.total_bytes(),
    };
    if let Some(sel) = &selection {
        // Nothing is fetched unless wanted.
        session.set_priority(0..piece_count, 0);
        for f in 0..meta.info.files.len() {
            if sel.fetches(f) {
                session.set_priority(store_target::piece_range(&meta, f), 1);
            }
        }
        if let Some(tx) = &opts.completed {
            for f in sel.stored_wanted() {
                let _ = tx.send(f);
            }
        }
    }
    let mut control = opts.control.take();
    let mut gossip_out = opts.gossip.as_ref().map(|g| g.outbound.clone());

    // Disk thread.
    let (job_tx, job_rx) = mpsc::channel::<Job>(disk::QUEUE);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let disk_thread = std::thread::Builder::new()
        .name("disk".into())
        .spawn(move || disk::run(backend, job_rx, done_tx))
        .map_err(|e| crate::Error::Storage {
            path: "disk thread".into(),
            reason: e.to_string(),
        })?;
    if selection.is_some() {
        // Files whose pieces were all recorded before a crash cut their
        // completion short: complete them now, not at some later flush.
        let _ = job_tx.send(Job::Resume(Bitfield::new(0))).await;
    }

    let (in_tx, mut in_rx) = mpsc::channel::<Input>(256);
    let (conn_tx, mut conn_rx) = mpsc::channel::<ConnEvent>(256);
    let read_budget = crate::conn::ReadBudget::default();

    // Listening socket: needed to be found through trackers and LSD.
    let wants_listen = opts.listen.is_some()
        || opts.lsd.is_some()
        || opts.dht.is_some()
        || !opts.trackers.is_empty()
        || (opts.use_torrent_sources && !meta.trackers.is_empty());
    let mut listen_port = 0u16;
    // Aborted when the run ends, so the port is free for the next run at
    // once (a node restarts the engine for each release).
    let mut accept_task: Option<tokio::task::JoinHandle<()>> = None;
    if wants_listen {
        let addr = opts
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| crate::Error::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let local = listener.local_addr().map_err(|e| crate::Error::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        listen_port = local.port();
        tracing::info!("listening for peers on {local}");
        let tx = in_tx.clone();
        accept_task = Some(tokio::spawn(async move {
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
        }));
    }

    // Extension handshake: metadata for magnet peers, our listen port.
    let mut hs = ExtHandshake::ours();
    hs.metadata_size = match (&opts.info_file, meta.info.raw.is_empty()) {
        (Some(f), true) => u32::try_from(f.len).ok(),
        _ => u32::try_from(meta.info.raw.len()).ok(),
    };
    hs.listen_port = (listen_port != 0).then_some(listen_port);
    hs.reqq = u32::try_from(opts.config.max_peer_requests).ok();
    let mut hs_bytes = Vec::new();
    hs.encode(&mut hs_bytes);
    session.set_ext_handshake(hs_bytes);

    // Trackers.
    let (transfer_tx, transfer_rx) = watch::channel(Transfer {
        uploaded: 0,
        downloaded: 0,
        left: session.picker().left(),
    });
    let mut trackers = opts.trackers.clone();
    if opts.use_torrent_sources {
        for tier in &meta.trackers {
            trackers.extend(tier.iter().cloned());
        }
    }
    trackers.dedup();
    let (found_tx, mut found_rx) = mpsc::channel::<SocketAddr>(256);
    let announcer = if trackers.is_empty() {
        None
    } else {
        let client = Arc::new(crate::tracker::Client::new(
            crate::tracker::Config::default(),
        ));
        let cfg = AnnouncerConfig::new(trackers, info_hash, opts.peer_id, listen_port);
        Some(Announcer::start(client, cfg, transfer_rx, found_tx.clone()))
    };
    {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(a) = found_rx.recv().await {
                if tx.send(Input::Found(a)).await.is_err() {
                    break;
                }
            }
        });
    }
    // DHT: the v1 (or truncated v2) hash and a hybrid's truncated v2
    // hash, so v2-only peers find us too. Stops when dropped at the end.
    let _dht_tracking = match &opts.dht {
        Some(dht) if !meta.info.private => {
            let hashes = std::iter::once(info_hash).chain(alt_info_hash).collect();
            Some(dht.track(hashes, listen_port, found_tx.clone()))
        }
        _ => None,
    };
    // LSD.
    if let Some(mut cfg) = opts.lsd.clone() {
        cfg.peer_port = listen_port;
        match crate::lsd::Lsd::bind(cfg) {
            Ok(mut lsd) => {
                lsd.set_infohashes([info_hash]);
                let tx = in_tx.clone();
                tokio::spawn(async move {
                    while let Ok(p) = lsd.next().await {
                        if p.info_hash == info_hash && tx.send(Input::Found(p.addr)).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("local service discovery is off: {e}"),
        }
    }
    // Web seeds.
    let mut seeds = opts.web_seeds.clone();
    if opts.use_torrent_sources {
        seeds.extend(meta.web_seeds.iter().cloned());
    }
    if !seeds.is_empty() {
        let client = crate::webseed::Client::new(crate::webseed::Config {
            limits: opts.limits.down.clone(),
            ..crate::webseed::Config::default()
        })?;
        for (i, url) in seeds.iter().enumerate() {
            let key = WEB_SEED_KEYS + i as PeerKey;
            let seed = crate::webseed::WebSeed::new(url)?;
            session.add_virtual_peer(key, Instant::now());
            tokio::spawn(web_seed_worker(
                key,
                client.clone(),
                seed,
                Arc::clone(&meta),
                layout.clone(),
                in_tx.clone(),
            ));
        }
    }

    let mut known: HashSet<SocketAddr> = opts.peers.iter().copied().collect();
    let mut conns: HashMap<PeerKey, Conn> = HashMap::new();
    let mut ext_ids: HashMap<PeerKey, ExtensionIds> = HashMap::new();
    let mut next_key: PeerKey = 1;
    let mut banned_addrs: HashSet<SocketAddr> = HashSet::new();
    let mut banned_ids: HashSet<[u8; 20]> = HashSet::new();
    let mut failed_at: HashMap<SocketAddr, Instant> = HashMap::new();
    let mut last_data = Instant::now();
    // Whether any peer has taken a connection in this run: one that did is
    // alive, and when it then closes (an origin that starts seeding a new
    // release a moment after announcing it) it is worth waiting for.
    let mut reached_a_peer = false;

    let mut summary = Summary {
        resumed_pieces: resumed,
        pieces: match &selection {
            None => piece_count,
            Some(sel) => (0..meta.info.files.len())
                .filter(|f| sel.is_wanted(*f))
                .map(|f| store_target::piece_range(&meta, f).len() as u32)
                .sum(),
        },
        ..Summary::default()
    };
    let mut complete = match &selection {
        None => session.picker().is_complete(),
        Some(sel) => sel.is_complete(),
    };
    summary.complete = complete;
    let mut last_resume = Instant::now();
    let mut resume_dirty = false;
    let mut last_progress = Instant::now();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut fatal: Option<String> = None;

    loop {
        if complete && !opts.seed {
            break;
        }
        // Dial known peers, within bounds.
        let outgoing = conns.values().filter(|c| c.dialed.is_some()).count();
        if (!complete || opts.seed)
            && outgoing < opts.max_outgoing
            && conns.len() < opts.max_connections
        {
            let dialed: HashSet<SocketAddr> = conns.values().filter_map(|c| c.dialed).collect();
            let mut due: Vec<SocketAddr> = known
                .iter()
                .filter(|a| {
                    !dialed.contains(a)
                        && !banned_addrs.contains(a)
                        && failed_at.get(a).is_none_or(|t| t.elapsed() >= REDIAL)
                })
                .copied()
                .collect();
            // LAN peers first: the LAN is fast and free, the WAN is neither.
            due.sort_by_key(|a| !is_lan(a));
            due.truncate(opts.max_outgoing - outgoing);
            for a in due {
                let key = next_key;
                next_key += 1;
                conns.insert(key, Conn::pending(a));
                failed_at.insert(a, Instant::now());
                let tx = in_tx.clone();
                tokio::spawn(async move {
                    let r =
                        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a)).await;
                    let r = match r {
                        Ok(Ok(s)) => Ok(s),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("connect timed out".into()),
                    };
                    let _ = tx.send(Input::Dialed(key, r)).await;
                });
            }
        }

        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => session.handle_timeout(Instant::now()),
            () = gossip_changed(&mut gossip_out) => {
                let payload = gossip_out.as_ref().and_then(|rx| rx.borrow().clone());
                if let Some(payload) = payload {
                    for (peer, ids) in &ext_ids {
                        if let Some(id) = ids.id(ext::Extension::Release) {
                            session.send_extended(*peer, id, &payload);
                        }
                    }
                }
            },
            c = next_control(&mut control) => match c {
                None => control = None,
                Some(first) => {
                    // Take the whole batch: one picker re-sort for all of it.
                    let mut batch = vec![first];
                    while batch.len() < 4096 {
                        match control.as_mut().map(|rx| rx.try_recv()) {
                            Some(Ok(c)) => batch.push(c),
                            _ => break,
                        }
                    }
                    if let Some(sel) = selection.as_mut() {
                        let mut changed = false;
                        for Control::Want { file, urgent } in batch {
                            match sel.want(&meta, file, urgent) {
                                Wanted::Nothing => {}
                                Wanted::Stored => {
                                    if let Some(tx) = &opts.completed {
                                        let _ = tx.send(file);
                                    }
                                }
                                Wanted::Download => {
                                    let prio = if urgent { URGENT } else { 1 };
                                    let pieces = store_target::piece_range(&meta, file);
                                    session.set_priority(pieces, prio);
                                    changed = true;
                                    // Maybe all its pieces are recorded
                                    // already: the next flush completes it.
                                    resume_dirty = true;
                                    if job_tx.send(Job::Want { file, urgent }).await.is_err() {
                                        fatal = Some(DISK_STOPPED.into());
                                    }
                                }
                            }
                        }
                        if changed {
                            session.priorities_changed(Instant::now());
                        }
                        total_bytes = sel.total_bytes();
                        complete = sel.is_complete();
                        summary.complete = complete;
                    }
                }
            },
            Some(ev) = conn_rx.recv() => match ev {
                ConnEvent::Data(key, chunk) => {
                    // Only block payload counts as delivery: a peer that
                    // trickles a block or sends keep-alives must not keep
                    // the web seeds idle.
                    let before = session.stats().downloaded;
                    session.handle_input(key, &chunk.data, Instant::now());
                    // Its bytes are parsed now: their budget goes back.
                    drop(chunk);
                    if session.stats().downloaded > before {
                        last_data = Instant::now();
                    }
                }
                ConnEvent::Closed(key, reason) => {
                    if let Some(c) = conns.remove(&key) {
                        tracing::debug!("peer {} closed: {reason}", c.addr);
                    }
                    ext_ids.remove(&key);
                    session.remove_peer(key);
                }
            },
            Some(input) = in_rx.recv() => match input {
                Input::Accepted(stream, addr) => {
                    if conns.len() >= opts.max_connections {
                        continue;
                    }
                    let key = next_key;
                    next_key += 1;
                    conns.insert(key, Conn::start(key, stream, Conn::incoming(addr), conn_tx.clone(), &opts.limits, &read_budget));
                    session.add_peer(key, false, Instant::now());
                    reached_a_peer = true;
                }
                Input::Dialed(key, Ok(stream)) => {
                    let Some(pending) = conns.remove(&key) else { continue };
                    reached_a_peer = true;
                    conns.insert(key, Conn::start(key, stream, pending, conn_tx.clone(), &opts.limits, &read_budget));
                    session.add_peer(key, true, Instant::now());
                }
                Input::Dialed(key, Err(reason)) => {
                    if let Some(c) = conns.remove(&key) {
                        tracing::debug!("cannot connect to {}: {reason}", c.addr);
                    }
                }
                Input::Found(addr) => {
                    if known.len() < 2000 && addr.port() != 0 {
                        known.insert(addr);
                    }
                }
                Input::WebSeed(WebSeedEvent::Want(key, reply)) => {
                    // Web seeds fill in while no peer delivers: peers first.
                    // `last_data` starts at the engine's start, so a peer
                    // being dialed gets [`WEB_SEED_AFTER`] to handshake and
                    // unchoke before a web seed takes pieces it would then
                    // be asked for again (in the endgame). With no peer at
                    // all (none known, or none that ever answered a dial)
                    // there is nothing to wait for.
                    let no_peer = conns.is_empty() && !reached_a_peer;
                    let idle = no_peer || last_data.elapsed() > WEB_SEED_AFTER;
                    let picks = if idle && !complete {
                        session.virtual_pick(key, 64, Instant::now())
                    } else {
                        Vec::new()
                    };
                    let _ = reply.send(picks);
                }
                Input::WebSeed(WebSeedEvent::Data(key, blocks)) => {
                    for (b, data) in blocks {
                        session.virtual_block(key, b, &data, Instant::now());
                    }
                }
                Input::WebSeed(WebSeedEvent::Failed(key, blocks, reason)) => {
                    tracing::warn!("web seed: {reason}");
                    session.virtual_failed(key, &blocks);
                }
            },
            Some(done) = done_rx.recv() => match done {
                Done::Checked { piece, ok, digests } => {
                    if !ok {
                        tracing::warn!("piece {piece} failed its hash check");
                    }
                    session.piece_checked(piece, ok, &digests, Instant::now());
                }
                Done::Read { peer, block, data } => session.send_block(peer, block, data.as_deref()),
                Done::Had(pieces) => {
                    for p in pieces {
                        if !session.picker().have().get(p) {
                            session.piece_checked(p, true, &[], Instant::now());
                        }
                    }
                }
                Done::Stored(file) => {
                    if let Some(sel) = selection.as_mut()
                        && sel.stored(file)
                    {
                        summary.completed_files += 1;
                        if let Some(tx) = &opts.completed {
                            let _ = tx.send(file);
                        }
                        if sel.is_complete() && !complete {
                            complete = true;
                            summary.complete = true;
                            log_complete(&meta.info.name, &session.stats());
                        }
                    }
                }
                Done::Failed(reason) => {
                    fatal = Some(reason);
                    break;
                }
            },
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
                    if job_tx
                        .send(Job::Write {
                            piece,
                            begin,
                            data,
                            check,
                        })
                        .await
                        .is_err()
                    {
                        fatal = Some(DISK_STOPPED.into());
                    }
                }
                Event::Read { peer, block } => {
                    let _ = job_tx.send(Job::Read { peer, block }).await;
                }
                Event::Verified { .. } => resume_dirty = true,
                Event::Complete => {
                    // Store target: complete once the files are objects
                    // (Done::Stored after this flush).
                    if selection.is_none() {
                        complete = true;
                        summary.complete = true;
                        log_complete(&meta.info.name, &session.stats());
                    }
                    let _ = job_tx
                        .send(Job::Resume(session.picker().have().clone()))
                        .await;
                    resume_dirty = false;
                }
                Event::Disconnect { peer, reason } => {
                    if peer >= WEB_SEED_KEYS {
                        tracing::warn!("dropping web seed: {reason}");
                    }
                    if let Some(c) = conns.remove(&peer) {
                        tracing::info!("dropping peer {}: {reason}", c.addr);
                        if reason.contains("ourselves")
                            && let Some(d) = c.dialed
                        {
                            banned_addrs.insert(d);
                        }
                    }
                    ext_ids.remove(&peer);
                    session.remove_peer(peer);
                }
                Event::Ban { peer, reason } => {
                    if let Some(c) = conns.remove(&peer) {
                        tracing::warn!("banning peer {}: {reason}", c.addr);
                        if let Some(d) = c.dialed {
                            banned_addrs.insert(d);
                        }
                        if let Some(id) = c.peer_id {
                            banned_ids.insert(id);
                        }
                    } else if peer >= WEB_SEED_KEYS {
                        tracing::warn!("banning web seed: {reason}");
                    }
                    ext_ids.remove(&peer);
                    session.remove_peer(peer);
                }
                Event::Connected { peer, peer_id, .. } => {
                    let duplicate = conns
                        .iter()
                        .any(|(k, c)| *k != peer && c.peer_id == Some(peer_id));
                    if let Some(c) = conns.get_mut(&peer) {
                        c.peer_id = Some(peer_id);
                        tracing::debug!("connected to {}", c.addr);
                    }
                    if banned_ids.contains(&peer_id) || duplicate {
                        conns.remove(&peer);
                        session.remove_peer(peer);
                    }
                }
                Event::Extended { peer, id, payload } => {
                    on_extended(
                        &mut session,
                        &meta,
                        &mut ext_ids,
                        &mut known,
                        opts.gossip.as_ref(),
                        opts.info_file.as_ref(),
                        peer,
                        id,
                        &payload,
                    );
                }
            }
        }
        if fatal.is_some() {
            break;
        }
        for (key, conn) in &conns {
            if conn.is_established() && conn.unsent() < MAX_UNSENT && session.wants_transmit(*key) {
                let mut out = Vec::new();
                session.poll_transmit(*key, &mut out, Instant::now());
                if !out.is_empty() {
                    conn.send(out);
                }
            }
        }
        if resume_dirty && last_resume.elapsed() >= RESUME_EVERY {
            let _ = job_tx
                .send(Job::Resume(session.picker().have().clone()))
                .await;
            resume_dirty = false;
            last_resume = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            let stats = session.stats();
            let left = session.picker().left();
            let _ = transfer_tx.send(Transfer {
                uploaded: stats.uploaded,
                downloaded: stats.downloaded,
                left,
            });
            progress(Progress {
                have_bytes: total_bytes - left.min(total_bytes),
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
    let _ = transfer_tx.send(Transfer {
        uploaded: stats.uploaded,
        downloaded: stats.downloaded,
        left: session.picker().left(),
    });
    if let Some(a) = announcer {
        a.stop().await;
    }
    if let Some(t) = accept_task.take() {
        t.abort();
        let _ = t.await;
    }
    drop(conns);
    let _ = job_tx
        .send(Job::Resume(session.picker().have().clone()))
        .await;
    drop(job_tx);
    let joined = tokio::task::spawn_blocking(move || disk_thread.join()).await;
    // What the last flush completed (and whether it failed).
    while let Ok(done) = done_rx.try_recv() {
        match done {
            Done::Stored(file) => {
                if let Some(sel) = selection.as_mut()
                    && sel.stored(file)
                {
                    summary.completed_files += 1;
                    summary.complete = sel.is_complete();
                    if let Some(tx) = &opts.completed {
                        let _ = tx.send(file);
                    }
                }
            }
            // The disk thread's own error (a full disk, named) beats
            // what the engine saw of it: a job it could no longer send.
            Done::Failed(reason) if fatal.as_deref().is_none_or(|f| f == DISK_STOPPED) => {
                fatal = Some(reason);
            }
            _ => {}
        }
    }
    if let Some(reason) = fatal {
        return Err(crate::Error::Storage {
            path: target_path,
            reason,
        });
    }
    if !matches!(joined, Ok(Ok(()))) {
        return Err(crate::Error::Storage {
            path: target_path,
            reason: "disk thread failed".into(),
        });
    }
    Ok(summary)
}

/// The next instruction; `None` once the sender is gone (then never again).
/// Resolves when the gossip outbound value changes; never without gossip
/// (or once its sender is gone).
async fn gossip_changed(rx: &mut Option<watch::Receiver<Option<Arc<Vec<u8>>>>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
            }
        }
        None => std::future::pending().await,
    }
}

async fn next_control(control: &mut Option<mpsc::Receiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether an address is on the local network (private, link-local,
/// loopback or unique-local).
pub fn is_lan(a: &SocketAddr) -> bool {
    match a.ip() {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// BEP 10 messages: remember the peer's extension ids, serve metadata to
/// magnet peers, learn addresses from PEX, and (with gossip) greet a peer
/// that speaks `swarmsync_release` with our release and pass on what it
/// announces.
#[allow(clippy::too_many_arguments)]
fn on_extended(
    session: &mut Session,
    meta: &Metainfo,
    ext_ids: &mut HashMap<PeerKey, ExtensionIds>,
    known: &mut HashSet<SocketAddr>,
    gossip: Option<&Gossip>,
    info_file: Option<&InfoFile>,
    peer: PeerKey,
    id: u8,
    payload: &[u8],
) {
    match ext::decode_extended(id, payload, &LOCAL_IDS) {
        Ok(ExtMessage::Handshake(hs)) => {
            let ids = ext_ids.entry(peer).or_default();
            ids.update(&hs.ids);
            let theirs = ids.id(ext::Extension::Release);
            let ours = gossip.and_then(|g| g.outbound.borrow().clone());
            if let (Some(their), Some(ours)) = (theirs, ours) {
                session.send_extended(peer, their, &ours);
            }
        }
        Ok(ExtMessage::Release(bytes)) => {
            if let Some(g) = gossip {
                let _ = g.inbound.try_send(bytes.to_vec());
            }
        }
        Ok(ExtMessage::Metadata(MetadataMessage::Request { piece })) => {
            let their = ext_ids
                .get(&peer)
                .and_then(|ids| ids.id(ext::Extension::Metadata));
            if let Some(their) = their {
                let mut out = Vec::new();
                match info_file.filter(|_| meta.info.raw.is_empty()) {
                    Some(f) => f.answer(piece, &mut out),
                    None => ext::serve_metadata(&meta.info.raw, piece).encode(&mut out),
                }
                session.send_extended(peer, their, &out);
            }
        }
        Ok(ExtMessage::Pex(pex)) => {
            if !meta.info.private {
                for p in pex.added {
                    if known.len() < 2000 {
                        known.insert(p.addr);
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("ignoring a bad extension message: {e}"),
    }
}

/// With no resume record but files already there, hashes what is on disk
/// (a seed, or data copied in by hand) so it is neither downloaded again
/// nor trusted blindly.
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

/// Where the bytes came from, for an operator watching a metered link.
fn log_complete(name: &str, stats: &Stats) {
    tracing::info!(
        "download complete: {name}: {} bytes downloaded, {} of them from web seeds, {} wasted on duplicates",
        stats.downloaded,
        stats.from_web_seeds,
        stats.wasted
    );
}

/// Most pieces one web seed fetches at once, and the bytes they may hold
/// together. In a tree of small files every piece is a request of its own,
/// so one at a time leaves a link with a long round trip idle (20,000
/// files over a 600 ms satellite hop: over three hours of waiting alone);
/// a few keep-alive connections hide it, as aria2's `-x` does, without
/// hammering the origin. Large pieces carry enough bytes per request to
/// fill the link, and are kept to one at a time for the board's memory.
const WEB_SEED_PARALLEL: usize = 4;
const WEB_SEED_IN_FLIGHT: u64 = 1 << 20;

/// How many pieces of `piece_length` a web seed fetches at once.
fn web_seed_parallel(piece_length: u64) -> usize {
    usize::try_from(WEB_SEED_IN_FLIGHT / piece_length.max(1))
        .unwrap_or(WEB_SEED_PARALLEL)
        .clamp(1, WEB_SEED_PARALLEL)
}

/// Fetches pieces from one web seed whenever the engine has work for it.
async fn web_seed_worker(
    key: PeerKey,
    client: crate::webseed::Client,
    seed: crate::webseed::WebSeed,
    meta: Arc<Metainfo>,
    layout: Layout,
    tx: mpsc::Sender<Input>,
) {
    let parallel = web_seed_parallel(layout.piece_length);
    loop {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        if tx
            .send(Input::WebSeed(WebSeedEvent::Want(key, reply_tx)))
            .await
            .is_err()
        {
            return;
        }
        let Ok(blocks) = reply_rx.await else { return };
        if blocks.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        // Each piece once, in the picker's order.
        let mut pieces: Vec<u32> = Vec::new();
        for b in &blocks {
            if !pieces.contains(&b.piece) {
                pieces.push(b.piece);
            }
        }
        let mut queue = pieces.into_iter();
        // Dropped with the worker: its fetches stop with it.
        let mut fetches = tokio::task::JoinSet::new();
        let mut failed = false;
        loop {
            while fetches.len() < parallel
                && let Some(piece) = queue.next()
            {
                let (client, seed, meta) = (client.clone(), seed.clone(), meta.clone());
                fetches.spawn(async move {
                    let got = client
                        .fetch_piece(&seed, &meta.info, u64::from(piece))
                        .await;
                    (piece, got)
                });
            }
            let Some(joined) = fetches.join_next().await else {
                break;
            };
            // A fetch task cannot panic short of a bug; its blocks then
            // time out in the session and are picked again.
            let Ok((piece, got)) = joined else { continue };
            let mine = blocks.iter().filter(|b| b.piece == piece).copied();
            let event = match got {
                Ok(p) => {
                    // A v2 piece stops at the end of its file: the rest of
                    // the piece is padding.
                    let mut data = p.data;
                    data.resize(layout.piece_size(piece) as usize, 0);
                    let out = mine
                        .filter_map(|b| {
                            let at = b.begin as usize..(b.begin + b.len) as usize;
                            Some((b, data.get(at)?.to_vec()))
                        })
                        .collect();
                    WebSeedEvent::Data(key, out)
                }
                Err(e) => {
                    failed = true;
                    WebSeedEvent::Failed(key, mine.collect(), e.to_string())
                }
            };
            if tx.send(Input::WebSeed(event)).await.is_err() {
                return;
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_seeds_fetch_small_pieces_in_parallel_and_large_ones_alone() {
        assert_eq!(web_seed_parallel(16 * 1024), WEB_SEED_PARALLEL);
        assert_eq!(web_seed_parallel(256 * 1024), 4);
        assert_eq!(web_seed_parallel(512 * 1024), 2);
        assert_eq!(web_seed_parallel(2 << 20), 1);
        assert_eq!(web_seed_parallel(0), WEB_SEED_PARALLEL);
    }

    #[test]
    fn metadata_from_the_info_file_is_what_the_bytes_in_memory_give() {
        let dir = tempfile::tempdir().expect("tempdir");
        let info: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = b"d8:announce0:4:info".to_vec();
        let offset = file.len() as u64;
        file.extend_from_slice(&info);
        file.push(b'e');
        let path = dir.path().join("t.torrent");
        std::fs::write(&path, &file).expect("write");
        let f = InfoFile {
            path,
            offset,
            len: info.len() as u64,
        };
        for piece in 0..4 {
            let (mut from_file, mut from_memory) = (Vec::new(), Vec::new());
            f.answer(piece, &mut from_file);
            ext::serve_metadata(&info, piece).encode(&mut from_memory);
            assert_eq!(from_file, from_memory, "piece {piece}");
        }
        // A file that went away: a reject, not a panic or garbage.
        let gone = InfoFile {
            path: dir.path().join("gone"),
            ..f
        };
        let mut out = Vec::new();
        gone.answer(0, &mut out);
        assert!(matches!(
            MetadataMessage::decode(&out),
            Ok(MetadataMessage::Reject { piece: 0 })
        ));
    }
}
