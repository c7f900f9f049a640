//! One channel of a node: follow the feeds, accept releases, sync each into
//! the store, switch `current`, collect garbage.
//!
//! Order of a sync, and why:
//! 1. The release passes every acceptance rule (`channel::accept`) with
//!    the time floor, or is recorded as rejected and changes nothing.
//! 2. Its torrent is fetched and must hash to the release's infohashes: a
//!    release naming one tree and a torrent describing another is refused.
//! 3. The engine runs over the store with only the repository metadata
//!    wanted; once those objects are complete, `repo::plan` picks the
//!    subset from them and the rest is wanted. Objects already stored (any
//!    earlier snapshot) count as present: that is the whole incremental
//!    sync.
//! 4. Only when every selected file is an object is the snapshot built,
//!    then `current` switched, then the release recorded as installed, then
//!    garbage collected (keeping the previous snapshot for sticky clients).
//!    A crash anywhere leaves the old snapshot served and the work done so
//!    far in the store.
//!
//! The engine keeps seeding the release after the switch until a newer one
//! arrives: LAN nodes fetch from each other.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serve::status::StatusBoard;
use store::{Entry, Store};
use swarm::engine::{Control, InfoFile, Options, Target};
use tokio::sync::{broadcast, mpsc, watch};
use torrent::metainfo::{File as TFile, Metainfo};

use super::paths::PathIndex;
use crate::config::Config;
use crate::origin::{now_secs, write_atomic};

/// Largest torrent accepted from a feed (the metainfo limits apply too).
const MAX_TORRENT: usize = 64 << 20;
/// Time allowed for one feed or torrent request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ChannelTask {
    name: String,
    idx: usize,
    policy: channel::Policy,
    feeds: Vec<String>,
    subset: Option<repo::Subset>,
    dir: PathBuf,
    board: StatusBoard,
    poll: Duration,
    listen: SocketAddr,
    peers: Vec<String>,
    trackers: Vec<String>,
    lsd: bool,
    limits: swarm::conn::Limits,
    budget: Option<u64>,
    dht: Option<Arc<swarm::dht::Dht>>,
    /// Release gossip: the signed release this node announces to peers
    /// (every engine run subscribes), and what peers announce to it.
    gossip_out: watch::Sender<Option<Arc<Vec<u8>>>>,
    heard_tx: mpsc::Sender<Vec<u8>>,
    heard_rx: Mutex<Option<mpsc::Receiver<Vec<u8>>>>,
    miss: Arc<super::miss::ChannelMiss>,
}

/// What the running engine reports to the channel loop.
enum Report {
    /// Every selected file is stored.
    Complete {
        seq: u64,
        /// The release's torrent and, per file, whether it was selected:
        /// the snapshot's entries are made from these one at a time
        /// ([`snapshot_entries`]), never all at once.
        meta: Arc<Metainfo>,
        selected: Vec<bool>,
    },
    Failed {
        seq: u64,
        error: String,
    },
}

/// A release being synced or seeded.
struct Active {
    release: channel::Release,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ChannelTask {
    pub fn new(
        config: &Config,
        idx: usize,
        dir: PathBuf,
        board: StatusBoard,
        dht: Option<Arc<swarm::dht::Dht>>,
        miss: Arc<super::miss::ChannelMiss>,
    ) -> Result<Self> {
        let ch = &config.channels[idx];
        let root: channel::PublicKey = ch
            .public_key
            .parse()
            .map_err(|e| anyhow::anyhow!("channel {:?} public_key: {e}", ch.name))?;
        let (heard_tx, heard_rx) = mpsc::channel(16);
        let mut listen = config.node.peer_listen;
        if listen.port() != 0 {
            listen.set_port(listen.port().saturating_add(idx as u16));
        }
        let limit = |s: &Option<String>| -> Vec<Arc<swarm::rate::Limiter>> {
            s.as_deref()
                .and_then(swarm::rate::parse_rate)
                .flatten()
                .map(|r| vec![Arc::new(swarm::rate::Limiter::new(r))])
                .unwrap_or_default()
        };
        Ok(ChannelTask {
            name: ch.name.clone(),
            idx,
            policy: channel::Policy {
                root,
                channel: ch.name.clone(),
            },
            feeds: ch.feeds.clone(),
            subset: ch.subset.clone(),
            dir,
            board,
            poll: config.poll_interval()?,
            listen,
            peers: config.network.peers.clone(),
            trackers: config.network.trackers.clone(),
            lsd: config.network.lsd,
            limits: swarm::conn::Limits {
                down: limit(&config.network.download_limit),
                up: limit(&config.network.upload_limit),
            },
            budget: config.disk_budget()?,
            dht,
            gossip_out: watch::channel(None).0,
            heard_tx,
            heard_rx: Mutex::new(Some(heard_rx)),
            miss,
        })
    }

    fn node_dir(&self) -> PathBuf {
        self.dir.join("node")
    }

    fn status(&self, f: impl FnOnce(&mut serve::status::ChannelStatus)) {
        let i = self.idx;
        self.board.update(|s| {
            if let Some(c) = s.channels.get_mut(i) {
                f(c);
            }
        });
    }

    fn reject(&self, code: &str, reason: String) {
        tracing::warn!("channel {}: release refused: {reason}", self.name);
        let code = code.to_owned();
        self.status(|c| {
            c.last_rejection = Some(serve::status::Rejection {
                code,
                reason,
                at: now_secs(),
            });
        });
    }

    /// Shows the served release as expired once the (no-RTC) time floor
    /// reaches its `expires`: the rule `channel::accept` applies.
    fn mark_expired(&self, installed: Option<&channel::Release>, newest_created: Option<u64>) {
        if let Some(r) = installed
            && channel::time_floor(now_secs(), newest_created) >= r.expires
        {
            self.status(|c| c.state = "expired".into());
        }
    }

    fn error(&self, e: &str) {
        tracing::error!("channel {}: {e}", self.name);
        let e = e.to_owned();
        self.status(|c| {
            c.last_error = Some(e);
            c.state = "error".into();
        });
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<()> {
        std::fs::create_dir_all(self.node_dir().join("releases"))
            .with_context(|| format!("cannot create {}", self.node_dir().display()))?;
        std::fs::create_dir_all(self.node_dir().join("torrents"))?;
        let dir = self.dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .context("store")?
            .with_context(|| format!("cannot open store {}", self.dir.display()))?;
        let mut store = Arc::new(Mutex::new(store));
        let this = Arc::new(self);

        // What is installed: the release of the current snapshot.
        let current = lock(&store)?.current()?;
        let mut installed: Option<channel::Release> =
            current.and_then(|seq| this.load_release(seq));
        let mut newest_created = installed.as_ref().map(|r| r.created);
        this.miss.set_serving(installed.as_ref().map(|r| r.seq));
        if let Some(r) = &installed {
            this.show_release(r, "synced");
        }
        let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Report>();
        let mut active: Option<Active> = None;
        // Resume: seed the installed release, or finish a pending one.
        let pending = this
            .pending()
            .filter(|p| installed.as_ref().is_none_or(|i| p.seq > i.seq));
        if let Some(r) = pending.or_else(|| installed.clone()) {
            active = Some(this.start(r, &store, report_tx.clone()));
        }

        let mut heard = this.heard_rx.lock().ok().and_then(|mut h| h.take());
        let mut gossip: Option<Vec<u8>> = None;
        if let Some(r) = &installed {
            this.announce(r.seq);
        }
        let mut first = true;
        // A sync that failed (disk budget, unreachable torrent) is retried
        // at each poll until it works or a newer release replaces it.
        let mut failed: Option<u64> = None;
        loop {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(this.poll) => {}
                    r = report_rx.recv() => {
                        if let Some(r) = r {
                            if let Report::Failed { seq, .. } = &r {
                                failed = Some(*seq);
                            }
                            installed = this.on_report(r, &store, installed, &active).await;
                        }
                        continue;
                    }
                    () = crate::signals::stopped(&mut stop) => break,
                    Some(p) = recv_heard(&mut heard) => gossip = Some(p),
                    // The installed release expires: say so at that second,
                    // not at the next poll (a minute later by default).
                    () = until_unix(installed.as_ref().map(|r| r.expires)) => {
                        this.mark_expired(installed.as_ref(), newest_created);
                        continue;
                    }
                }
            }
            first = false;
            if let (Some(f), Some(a)) = (failed, &active)
                && a.release.seq == f
            {
                failed = None;
                let r = a.release.clone();
                if let Some(a) = active.take() {
                    let _ = a.stop.send(true);
                    let _ = a.task.await;
                }
                tracing::info!("channel {}: retrying release {}", this.name, r.seq);
                // After an I/O error (a full disk) redb refuses every call
                // until the database is reopened: reopen the store, whose
                // recovery also tidies what the failure left.
                this.miss.set_engine(None);
                store = match this.reopen(store, &mut stop).await {
                    Some(s) => s,
                    None => return Ok(()),
                };
                active = Some(this.start(r, &store, report_tx.clone()));
            }
            // Poll the feeds.
            let floor = channel::time_floor(now_secs(), newest_created);
            let installed_seq = installed.as_ref().map(|r| r.seq);
            let syncing = active.as_ref().map(|a| a.release.seq);
            let mut best: Option<(channel::Release, Vec<u8>)> = None;
            // A release a peer announced, or else what the feeds say now.
            let mut candidates: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(payload) = gossip.take() {
                match channel::gossip::decode(&payload) {
                    Ok(b) => candidates.push(("a peer's gossip".into(), b.to_vec())),
                    Err(e) => tracing::debug!("channel {}: bad gossip: {e}", this.name),
                }
            } else {
                for url in &this.feeds {
                    match channel::feed::fetch(url, FETCH_TIMEOUT).await {
                        Ok(b) => candidates.push((url.clone(), b)),
                        Err(e) => match &e {
                            channel::Error::FeedRefused { code, .. } => {
                                this.reject(code, format!("from {url}: {e}"))
                            }
                            _ => tracing::warn!("channel {}: feed {url}: {e}", this.name),
                        },
                    }
                }
                // The channel's DHT item (BEP 46), when DHT is on.
                if let Some(dht) = &this.dht {
                    let mine = installed_seq.and_then(|s| {
                        let path = this.node_dir().join("releases").join(s.to_string());
                        Some((s, std::fs::read(path).ok()?))
                    });
                    let mine = mine.as_ref().map(|(s, b)| (*s, b.as_slice()));
                    for b in super::dht_releases(dht, &this.policy, mine).await {
                        candidates.push(("the DHT".into(), b));
                    }
                }
            }
            for (url, bytes) in candidates {
                // The release we already have or are syncing is no news.
                let seen_seq = channel::parse_unverified(&bytes).ok().map(|r| r.seq);
                if seen_seq.is_some() && (seen_seq == installed_seq || seen_seq == syncing) {
                    continue;
                }
                match channel::accept(&bytes, &this.policy, installed_seq, floor) {
                    Ok(r) => {
                        if best.as_ref().is_none_or(|(b, _)| r.seq > b.seq) {
                            best = Some((r, bytes));
                        }
                    }
                    Err(rej) => this.reject(rej.code(), format!("from {url}: {rej}")),
                }
            }
            // Expiry of what is served.
            this.mark_expired(installed.as_ref(), newest_created);
            let Some((release, bytes)) = best else {
                continue;
            };
            if syncing.is_some_and(|s| s >= release.seq) {
                continue;
            }
            newest_created = newest_created.max(Some(release.created));
            if let Err(e) = this.save_release(&release, &bytes) {
                this.error(&format!("{e:#}"));
                continue;
            }
            tracing::info!("channel {}: new release {}", this.name, release.seq);
            // Tell the peers of the old swarm before leaving it: LAN nodes
            // learn the release from each other.
            this.gossip_out
                .send_replace(Some(Arc::new(channel::gossip::encode(&bytes))));
            if active.is_some() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if let Some(a) = active.take() {
                let _ = a.stop.send(true);
                let _ = a.task.await;
            }
            failed = None;
            active = Some(this.start(release, &store, report_tx.clone()));
        }
        if let Some(a) = active.take() {
            let _ = a.stop.send(true);
            let _ = a.task.await;
        }
        let s = Arc::clone(&store);
        tokio::task::spawn_blocking(move || lock(&s).and_then(|mut s| Ok(s.flush()?)))
            .await
            .ok();
        Ok(())
    }

    /// Announces the recorded release `seq` to peers.
    fn announce(&self, seq: u64) {
        if let Ok(bytes) = std::fs::read(self.node_dir().join("releases").join(seq.to_string())) {
            self.gossip_out
                .send_replace(Some(Arc::new(channel::gossip::encode(&bytes))));
        }
    }

    /// Closes the store and opens it again, retrying at each poll while
    /// that fails (the disk still full). A store still shared (a request
    /// holding it) is kept as it is. `None` when stopped meanwhile.
    async fn reopen(
        &self,
        store: Arc<Mutex<Store>>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Arc<Mutex<Store>>> {
        let mut old = match Arc::try_unwrap(store) {
            Ok(s) => Some(s),
            Err(shared) => return Some(shared),
        };
        loop {
            let dir = self.dir.clone();
            let closing = old.take();
            // The old handle is closed first: redb opens a file once.
            let opened = tokio::task::spawn_blocking(move || {
                drop(closing);
                Store::open(&dir)
            })
            .await;
            match opened {
                Ok(Ok(s)) => return Some(Arc::new(Mutex::new(s))),
                Ok(Err(e)) => self.error(&format!(
                    "cannot reopen the store {}: {e}",
                    self.dir.display()
                )),
                Err(e) => self.error(&format!("cannot reopen the store: {e}")),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                () = crate::signals::stopped(stop) => return None,
            }
        }
    }

    fn load_release(&self, seq: u64) -> Option<channel::Release> {
        let bytes = std::fs::read(self.node_dir().join("releases").join(seq.to_string())).ok()?;
        channel::accept(&bytes, &self.policy, None, 0).ok()
    }

    fn pending(&self) -> Option<channel::Release> {
        let seq: u64 = std::fs::read_to_string(self.node_dir().join("pending"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.load_release(seq)
    }

    fn save_release(&self, r: &channel::Release, bytes: &[u8]) -> Result<()> {
        write_atomic(
            &self.node_dir().join("releases").join(r.seq.to_string()),
            bytes,
        )?;
        write_atomic(
            &self.node_dir().join("pending"),
            r.seq.to_string().as_bytes(),
        )
    }

    fn show_release(&self, r: &channel::Release, state: &str) {
        let (seq, created, expires) = (r.seq, r.created, r.expires);
        let state = state.to_owned();
        self.status(|c| {
            c.seq = Some(seq);
            c.release_created = Some(created);
            c.release_expires = Some(expires);
            c.state = state;
        });
    }

    async fn on_report(
        self: &Arc<Self>,
        r: Report,
        store: &Arc<Mutex<Store>>,
        installed: Option<channel::Release>,
        active: &Option<Active>,
    ) -> Option<channel::Release> {
        match r {
            Report::Failed { seq, error } => {
                self.error(&format!("release {seq}: {error}"));
                installed
            }
            Report::Complete {
                seq,
                meta,
                selected,
            } => {
                let Some(release) = active.as_ref().map(|a| a.release.clone()) else {
                    return installed;
                };
                if release.seq != seq {
                    return installed;
                }
                let previous = installed.as_ref().map(|r| r.seq);
                let s = Arc::clone(store);
                let created = release.created;
                let switched = tokio::task::spawn_blocking(move || -> Result<store::GcReport> {
                    let mut st = lock(&s)?;
                    st.flush()?;
                    stamp_new_objects(&st, snapshot_entries(&meta, &selected), created);
                    st.build_snapshot(seq, snapshot_entries(&meta, &selected))?;
                    st.switch_current(seq)?;
                    let retain: Vec<u64> = previous.into_iter().chain([seq]).collect();
                    Ok(st.gc(&retain)?)
                })
                .await;
                match switched {
                    Ok(Ok(gc)) => {
                        tracing::info!(
                            "channel {}: serving release {seq} ({} old objects removed)",
                            self.name,
                            gc.objects_removed
                        );
                        let _ = std::fs::remove_file(self.node_dir().join("pending"));
                        self.miss.set_serving(Some(seq));
                        self.prune_files(seq, previous);
                        self.show_release(&release, "synced");
                        self.status(|c| c.last_error = None);
                        give_back_memory();
                        Some(release)
                    }
                    Ok(Err(e)) => {
                        self.error(&format!("release {seq}: cannot switch: {e:#}"));
                        installed
                    }
                    Err(e) => {
                        self.error(&format!("release {seq}: {e}"));
                        installed
                    }
                }
            }
        }
    }

    /// Removes recorded releases and torrents older than `previous`.
    fn prune_files(&self, seq: u64, previous: Option<u64>) {
        for sub in ["releases", "torrents"] {
            let Ok(rd) = std::fs::read_dir(self.node_dir().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let n = name.to_string_lossy();
                let s = n.trim_end_matches(".torrent").parse::<u64>().ok();
                if let Some(s) = s
                    && s != seq
                    && Some(s) != previous
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn start(
        self: &Arc<Self>,
        release: channel::Release,
        store: &Arc<Mutex<Store>>,
        report: mpsc::UnboundedSender<Report>,
    ) -> Active {
        let (stop_tx, stop_rx) = watch::channel(false);
        let this = Arc::clone(self);
        let store = Arc::clone(store);
        let r = release.clone();
        this.show_release(&release, "syncing");
        let task = tokio::spawn(async move {
            let seq = r.seq;
            if let Err(e) = this.sync(r, store, stop_rx, &report).await {
                let _ = report.send(Report::Failed {
                    seq,
                    error: format!("{e:#}"),
                });
            }
        });
        Active {
            release,
            stop: stop_tx,
            task,
        }
    }

    /// The torrent of `r`: recorded, or fetched and checked. Parsed without
    /// its info dictionary's bytes, which stay in the recorded file (the
    /// returned [`InfoFile`]): they are the largest part of a big torrent
    /// and only peers asking for metadata need them.
    async fn torrent(&self, r: &channel::Release) -> Result<(Metainfo, InfoFile)> {
        let path = self
            .node_dir()
            .join("torrents")
            .join(format!("{}.torrent", r.seq));
        let mut errors = Vec::new();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => {
                let mut got = None;
                for url in &r.torrents {
                    match channel::feed::fetch_limited(url, FETCH_TIMEOUT, MAX_TORRENT).await {
                        Ok(b) => {
                            got = Some(b);
                            break;
                        }
                        Err(e) => errors.push(format!("{url}: {e}")),
                    }
                }
                match got {
                    Some(b) => b,
                    None => bail!("cannot fetch the torrent: {}", errors.join("; ")),
                }
            }
        };
        let limits = torrent::metainfo::Limits::default();
        let meta =
            Metainfo::from_bytes_without_raw(&bytes, &limits).context("the release's torrent")?;
        if meta.info.v2_infohash != Some(r.v2) || (r.v1.is_some() && meta.info.v1_infohash != r.v1)
        {
            self.reject(
                "content_mismatch",
                format!(
                    "release {}: the torrent's infohashes do not match the release",
                    r.seq
                ),
            );
            bail!("its torrent does not match the release (content_mismatch)");
        }
        if !path.exists() {
            write_atomic(&path, &bytes)?;
        }
        let span = Metainfo::info_span(&bytes, &limits)
            .context("the release's torrent has no info dictionary")?;
        let info = InfoFile {
            path,
            offset: span.start as u64,
            len: span.len() as u64,
        };
        Ok((meta, info))
    }

    async fn sync(
        self: &Arc<Self>,
        r: channel::Release,
        store: Arc<Mutex<Store>>,
        mut stop: watch::Receiver<bool>,
        report: &mpsc::UnboundedSender<Report>,
    ) -> Result<()> {
        let (meta, info_file) = self.torrent(&r).await?;
        let meta = Arc::new(meta);
        let files = &meta.info.files;
        // Files are named by their index in the torrent from here on: the
        // torrent holds each path once, nothing here copies them for the
        // life of the sync (see paths.rs).
        let index_of = Arc::new(PathIndex::new(Arc::clone(&meta)));
        // Phase 1: the repository metadata (everything without a subset).
        let first: Vec<usize> = match &self.subset {
            None => (0..files.len()).filter(|&i| !files[i].attr.pad).collect(),
            Some(s) => repo::metadata_paths(s, &tree_of(&meta))
                .iter()
                .filter_map(|p| index_of.get(p))
                .collect(),
        };
        let mut wanted = vec![false; files.len()];
        for &i in &first {
            wanted[i] = true;
        }
        let (control_tx, control_rx) = mpsc::channel::<Control>(1024);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
        let mut opts = Options::with_target(
            Target::Store {
                store: Arc::clone(&store),
                wanted,
            },
            crate::cmd_swarm::peer_id(),
        );
        opts.control = Some(control_rx);
        opts.completed = Some(done_tx);
        opts.info_file = Some(info_file);
        opts.seed = true;
        opts.listen = Some(self.listen);
        let mut peers = crate::cmd_swarm::resolve(&self.peers).unwrap_or_default();
        for p in &r.peers {
            match tokio::net::lookup_host(p.as_str()).await {
                Ok(a) => peers.extend(a),
                Err(e) => tracing::warn!("release peer {p}: {e}"),
            }
        }
        peers.sort();
        peers.dedup();
        opts.peers = peers;
        opts.trackers = self.trackers.clone();
        opts.trackers.extend(r.trackers.iter().cloned());
        opts.web_seeds = r.web_seeds.clone();
        opts.use_torrent_sources = false;
        opts.lsd = self.lsd.then(|| swarm::lsd::Config::new(0));
        opts.limits = self.limits.clone();
        opts.dht = self.dht.clone();
        opts.gossip = Some(swarm::engine::Gossip {
            outbound: self.gossip_out.subscribe(),
            inbound: self.heard_tx.clone(),
        });

        // Transfer totals on the status page count across engine runs.
        let (down0, up0) = self
            .board
            .snapshot()
            .channels
            .get(self.idx)
            .map_or((0, 0), |c| (c.downloaded, c.uploaded));
        // Fetch-on-miss goes through this run's control channel.
        let (completed_tx, _) = broadcast::channel::<usize>(1024);
        let (readable_tx, _) = broadcast::channel::<swarm::engine::Readable>(1024);
        opts.readable = Some(readable_tx.clone());
        self.miss.set_engine(Some(super::miss::Engine {
            seq: r.seq,
            meta: Arc::clone(&meta),
            index_of: Arc::clone(&index_of),
            control: control_tx.clone(),
            completed: completed_tx.clone(),
            readable: readable_tx,
            store: Arc::clone(&store),
        }));
        let this = Arc::clone(self);
        let mut engine_stop = stop.clone();
        let engine_meta = Arc::clone(&meta);
        let engine = tokio::spawn(async move {
            let board = this.clone();
            swarm::engine::run(
                engine_meta,
                opts,
                async move {
                    let _ = engine_stop.wait_for(|s| *s).await;
                },
                move |p| {
                    board.status(|c| {
                        c.have_bytes = p.have_bytes;
                        c.total_bytes = p.total_bytes;
                        c.peers = p.peers as u32;
                        c.downloaded = down0 + p.downloaded;
                        c.uploaded = up0 + p.uploaded;
                    });
                },
            )
            .await
        });

        // Files to wait for: selected, with data (not empty, not a link).
        let has_data = |i: usize| files[i].length > 0 && files[i].symlink_target.is_none();
        let mut done = vec![false; files.len()];
        let mut need = vec![false; files.len()];
        let mut selected = vec![false; files.len()];
        for &i in &first {
            selected[i] = true;
            need[i] = has_data(i);
        }
        drop(first);
        let count = |need: &[bool], done: &[bool]| -> (u64, u64) {
            let total = need.iter().filter(|n| **n).count() as u64;
            let have = need.iter().zip(done).filter(|(n, d)| **n && **d).count() as u64;
            (total, have)
        };
        let (mut need_total, mut need_done) = count(&need, &done);
        let mut planned = self.subset.is_none();
        self.status(|c| {
            c.files_total = need_total;
            c.files_done = 0;
        });
        loop {
            if need_done == need_total {
                if planned {
                    break;
                }
                // Phase 2: choose the subset from the metadata.
                let plan = self.plan(&meta, &store, &index_of).await?;
                tracing::info!("channel {}: {}", self.name, plan.summary());
                selected.iter_mut().for_each(|s| *s = false);
                for p in &plan.selected {
                    if let Some(i) = index_of.get(p) {
                        selected[i] = true;
                    }
                }
                drop(plan);
                let more: Vec<usize> = (0..files.len())
                    .filter(|&i| selected[i] && has_data(i))
                    .collect();
                self.check_budget(&meta, &store, &more).await?;
                for &i in &more {
                    if !need[i] {
                        need[i] = true;
                        control_tx
                            .send(Control::Want {
                                file: i,
                                urgent: false,
                            })
                            .await
                            .ok();
                    }
                }
                // What was needed before and is not selected now (a plan
                // never drops metadata, but a subset may) stops counting.
                for (i, n) in need.iter_mut().enumerate() {
                    *n = *n && selected[i] && has_data(i);
                }
                (need_total, need_done) = count(&need, &done);
                planned = true;
                self.status(|c| {
                    c.files_total = need_total;
                    c.files_done = need_done;
                });
                continue;
            }
            tokio::select! {
                i = done_rx.recv() => match i {
                    Some(i) => {
                        let _ = completed_tx.send(i);
                        if let Some(d) = done.get_mut(i)
                            && !*d
                        {
                            *d = true;
                            if need[i] {
                                need_done += 1;
                            }
                        }
                        let n = need_done;
                        self.status(|c| c.files_done = n);
                    }
                    None => {
                        let r = engine.await;
                        bail!("the engine stopped: {}", match r {
                            Ok(Ok(_)) => "without finishing".to_owned(),
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => e.to_string(),
                        });
                    }
                },
                () = crate::signals::stopped(&mut stop) => {
                    let _ = engine.await;
                    return Ok(());
                }
            }
        }
        drop((need, done));
        // Everything selected is stored: hand the tree to the loop.
        let _ = report.send(Report::Complete {
            seq: r.seq,
            meta: Arc::clone(&meta),
            selected,
        });
        // Keep seeding (and fetching on miss) until told to stop.
        loop {
            tokio::select! {
                i = done_rx.recv() => match i {
                    Some(i) => {
                        let _ = completed_tx.send(i);
                    }
                    None => break,
                },
                () = crate::signals::stopped(&mut stop) => break,
            }
        }
        self.miss.set_engine(None);
        let _ = engine.await;
        Ok(())
    }

    /// Reads the metadata objects and plans the subset.
    async fn plan(
        &self,
        meta: &Arc<Metainfo>,
        store: &Arc<Mutex<Store>>,
        index_of: &Arc<PathIndex>,
    ) -> Result<repo::Plan> {
        let Some(subset) = self.subset.clone() else {
            bail!("no subset");
        };
        let (meta, store, index_of) = (Arc::clone(meta), Arc::clone(store), Arc::clone(index_of));
        tokio::task::spawn_blocking(move || {
            let tree = tree_of(&meta);
            let mut read = |p: &str| -> Result<Vec<u8>, repo::Error> {
                let f = index_of
                    .get(p)
                    .map(|i| &meta.info.files[i])
                    .ok_or_else(|| repo::Error::read(p, "not in the snapshot"))?;
                let path = {
                    let st = lock(&store).map_err(|e| repo::Error::read(p, e))?;
                    object_or_empty(&st, f)
                };
                std::fs::read(path).map_err(|e| repo::Error::read(p, e))
            };
            repo::plan(&subset, &tree, &mut read)
        })
        .await
        .context("planning")?
        .context("cannot choose the subset")
    }

    /// Refuses a sync that would not fit the disk budget.
    async fn check_budget(
        &self,
        meta: &Arc<Metainfo>,
        store: &Arc<Mutex<Store>>,
        files: &[usize],
    ) -> Result<()> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let missing: u64 = {
            let st = lock(store)?;
            files
                .iter()
                .map(|&i| &meta.info.files[i])
                .filter(|f| f.pieces_root.is_none_or(|r| !st.has_object(&r)))
                .map(|f| f.length)
                .sum()
        };
        let dir = self.dir.clone();
        let used = tokio::task::spawn_blocking(move || super::dir_size(&dir))
            .await
            .unwrap_or(0);
        if used + missing > budget {
            bail!(
                "the subset does not fit the disk budget: {} more needed, {} in use, budget {} (disk_budget in [node]); still serving the old snapshot",
                human(missing),
                human(used),
                human(budget)
            );
        }
        Ok(())
    }
}

/// Gives objects downloaded for this release the release's creation time
/// as mtime, so Last-Modified is the same on every node and never the
/// moment of download: apt revalidates InRelease with If-Modified-Since,
/// and two different contents downloaded within one second would
/// otherwise share a date and get a wrong 304. Objects from earlier
/// releases are older than `created` and keep their date.
fn stamp_new_objects(
    st: &Store,
    entries: impl Iterator<Item = (Vec<String>, Entry)>,
    created: u64,
) {
    let when = std::time::UNIX_EPOCH + Duration::from_secs(created);
    for (_, e) in entries {
        let Entry::File(root) = e else { continue };
        let path = st.object_path(&root);
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let newer = f
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > when);
        if newer && let Err(err) = f.set_times(std::fs::FileTimes::new().set_modified(when)) {
            tracing::debug!("cannot date {}: {err}", path.display());
        }
    }
}

/// Resolves at Unix second `at` when that is still ahead; never otherwise
/// (a time already past was dealt with when it was reached).
async fn until_unix(at: Option<u64>) {
    let ahead = at.and_then(|t| {
        (std::time::UNIX_EPOCH + Duration::from_secs(t))
            .duration_since(std::time::SystemTime::now())
            .ok()
    });
    match ahead {
        Some(d) if !d.is_zero() => tokio::time::sleep(d).await,
        _ => std::future::pending().await,
    }
}

/// The snapshot of a synced release: every symlink and empty file, and the
/// selected files with data, each as (path components, entry).
fn snapshot_entries<'a>(
    meta: &'a Metainfo,
    selected: &'a [bool],
) -> impl Iterator<Item = (Vec<String>, Entry)> + 'a {
    meta.info
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.attr.pad)
        .filter_map(move |(i, f)| {
            let entry = if let Some(t) = &f.symlink_target {
                Entry::Symlink(t.relative_from(&f.path))
            } else if f.length == 0 {
                // Empty files cost nothing: always in the tree.
                Entry::Empty
            } else if selected.get(i).copied().unwrap_or(false) {
                Entry::File(f.pieces_root.unwrap_or_default())
            } else {
                return None;
            };
            Some((f.path.to_vec(), entry))
        })
}

/// The next release payload a peer announced; never without a receiver.
async fn recv_heard(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// The repository reader's view of a torrent: every non-pad file with its
/// '/'-joined path. Built when needed and dropped after (it copies every
/// path).
pub(crate) fn tree_of(meta: &Metainfo) -> Vec<repo::TreeFile> {
    meta.info
        .files
        .iter()
        .filter(|f| !f.attr.pad)
        .map(|f| repo::TreeFile {
            path: f.path.as_str().to_owned(),
            size: f.length,
        })
        .collect()
}

fn object_or_empty(st: &Store, f: &TFile) -> PathBuf {
    match f.pieces_root {
        Some(root) if f.length > 0 => st.object_path(&root),
        _ => PathBuf::from("/dev/null"),
    }
}

/// Returns what the sync freed (parse buffers, piece and write buffers,
/// the plan) to the kernel: now, and once more when the engine's queues
/// have drained. Without it glibc keeps a synced node at its peak.
fn give_back_memory() {
    bsp::memory::release_free_memory();
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = tokio::task::spawn_blocking(bsp::memory::release_free_memory).await;
    });
}

fn lock(store: &Arc<Mutex<Store>>) -> Result<std::sync::MutexGuard<'_, Store>> {
    store
        .lock()
        .map_err(|_| anyhow::anyhow!("the store lock was poisoned"))
}

pub(crate) fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
