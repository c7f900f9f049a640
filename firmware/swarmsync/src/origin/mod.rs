//! `swarmsync publish`: the origin.
//!
//! A publication freezes the tree first and hashes second: every file is
//! hard-linked into `<state>/<channel>/trees/<seq>/<channel>/`, so ftpsync
//! or reposync replacing files (they write a temporary file and rename it)
//! cannot change what was hashed, and the web seed and the seeder keep
//! serving exactly the published bytes. Files unchanged since the last
//! publication (path, size, mtime, inode) take their hashes from the hash
//! cache and are not read at all.
//!
//! State layout, per channel:
//!
//! ```text
//! <state>/hashcache.redb
//! <state>/<channel>/release              newest signed release (what the feed serves)
//! <state>/<channel>/torrents/<seq>.torrent
//! <state>/<channel>/trees/<seq>/<channel>/…   the frozen tree (hard links)
//! <state>/<channel>/current -> trees/<seq>
//! ```

pub mod hashcache;
mod http;
mod run;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use torrent::create::{FileHashes, InputFile, Options as CreateOptions, Plan};
use torrent::metainfo::{FilePath, Metainfo, Version};

use crate::tree::{self, DirSource};
use hashcache::{HashCache, Stamp};

pub use run::{publish_logged, run, serve};

#[derive(clap::Args, Clone)]
pub struct PublishArgs {
    /// Secret signing key (from `swarmsync keygen`); KEY.delegation next to
    /// it is used when present.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// Channel name (letters, digits, '-', '_', '.').
    #[arg(long, value_name = "NAME")]
    pub channel: String,
    /// The repository tree to publish.
    #[arg(long, value_name = "DIR")]
    pub tree: PathBuf,
    /// The origin's own state (frozen trees, torrents, releases, hash cache).
    /// Best on the tree's filesystem, so freezing is hard links, not copies.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Peer port to seed on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881")]
    pub listen: SocketAddr,
    /// HTTP address for the release feed and the web seed.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Base URL nodes reach `--http` at (default: http://ADDR, with the
    /// host name when ADDR is 0.0.0.0).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Extra web seed base URL, e.g. a plain HTTP mirror of the tree
    /// (repeatable); the origin's own is always listed.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Tracker announce URL put in the torrent and the release (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// How long a release stays valid (nodes refuse it after that: a frozen
    /// origin is noticed). E.g. 7d, 12h.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub expires: String,
    /// Publish, then exit (for cron or an ftpsync/reposync hook); a running
    /// origin on the same --state picks the release up.
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Also republish whenever the tree changes and then stays still for
    /// --settle.
    #[arg(long)]
    pub watch: bool,
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub settle: String,
    /// Re-sign and republish even if the tree is unchanged (renews expiry).
    #[arg(long)]
    pub force: bool,
    /// A v1-only torrent, for swarms that must include Transmission 3 or
    /// aria2 (no hybrid support); nodes then check v1 pieces only and the
    /// hash cache is not used.
    #[arg(long)]
    pub v1_compatible: bool,
    #[arg(long, value_name = "BYTES")]
    pub piece_size: Option<u64>,
    /// Also publish the newest release in the BitTorrent DHT, as the
    /// channel's signed mutable item (BEP 46; see docs/channels.md), and
    /// find peers there. Off by default: it makes the origin a public UDP
    /// DHT node on --listen's IPv4 address and port. The running origin
    /// puts each release (also those of `--once` runs on the same --state).
    #[arg(long)]
    pub dht: bool,
    /// Join the DHT through this node instead of the public routers
    /// (repeatable; needs --dht).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", requires = "dht")]
    pub dht_bootstrap: Vec<String>,
}

/// What one publication did.
#[derive(Debug)]
pub struct Published {
    pub seq: u64,
    pub meta: Metainfo,
    /// Bytes read to hash (the rest came from the hash cache).
    pub read: u64,
    pub total: u64,
    pub unchanged: bool,
}

/// Paths under `<state>/<channel>`.
#[derive(Debug, Clone)]
pub struct ChannelDir {
    pub dir: PathBuf,
    pub channel: String,
}

impl ChannelDir {
    pub fn new(state: &Path, channel: &str) -> ChannelDir {
        ChannelDir {
            dir: state.join(channel),
            channel: channel.to_owned(),
        }
    }
    pub fn release(&self) -> PathBuf {
        self.dir.join("release")
    }
    pub fn torrent(&self, seq: u64) -> PathBuf {
        self.dir.join("torrents").join(format!("{seq}.torrent"))
    }
    pub fn trees(&self) -> PathBuf {
        self.dir.join("trees")
    }
    /// The folder the seeding engine uses (it holds `<channel>/`).
    pub fn tree(&self, seq: u64) -> PathBuf {
        self.trees().join(seq.to_string())
    }
    pub fn current(&self) -> PathBuf {
        self.dir.join("current")
    }
}

pub fn check_channel_name(name: &str) -> Result<()> {
    if !channel::valid_channel_name(name) {
        bail!("channel name {name:?}: use up to 64 letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The base URL nodes use for the origin's HTTP side.
pub fn base_url(args: &PublishArgs) -> String {
    if let Some(u) = &args.url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = if args.http.ip().is_unspecified() {
        hostname()
    } else {
        match args.http {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    format!("http://{host}:{}", args.http.port())
}

/// The peer address put in releases as a hint.
pub fn peer_hint(args: &PublishArgs) -> String {
    if args.listen.ip().is_unspecified() {
        // The host part of the base URL, which nodes can reach.
        let base = base_url(args);
        let host = base
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(|hp| match hp.rfind(':') {
                Some(i) if !hp.ends_with(']') => &hp[..i],
                _ => hp,
            })
            .unwrap_or("localhost")
            .to_owned();
        format!("{host}:{}", args.listen.port())
    } else {
        args.listen.to_string()
    }
}

pub fn hostname_pub() -> String {
    hostname()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The newest release this origin wrote for the channel, if any.
pub fn previous_release(cd: &ChannelDir, signer: &channel::Signer) -> Option<channel::Release> {
    let bytes = std::fs::read(cd.release()).ok()?;
    let policy = channel::Policy {
        root: signer.public(),
        channel: cd.channel.clone(),
    };
    // Time 0: our own old release is read back even if it expired.
    channel::accept(&bytes, &policy, None, 0).ok()
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        // A full disk shows up here: name the file.
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Points `link` at `target` atomically.
fn switch_symlink(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("cannot switch {}", link.display()))?;
    if let Some(dir) = link.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Publishes one release of the tree. Blocking (hashing uses threads).
pub fn publish_once(
    args: &PublishArgs,
    signer: &channel::Signer,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Published> {
    check_channel_name(&args.channel)?;
    let expires = crate::config::parse_duration(&args.expires).context("--expires")?;
    let cd = ChannelDir::new(&args.state, &args.channel);
    for d in [cd.trees(), cd.dir.join("torrents")] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let cache = HashCache::open(&args.state.join("hashcache.redb"))?;
    let prev = previous_release(&cd, signer);
    let prev_tree = prev.as_ref().map(|r| cd.tree(r.seq).join(&args.channel));
    let prev_meta = prev
        .as_ref()
        .and_then(|r| std::fs::read(cd.torrent(r.seq)).ok())
        .and_then(|b| Metainfo::from_bytes(&b).ok());

    let tree = std::fs::canonicalize(&args.tree)
        .with_context(|| format!("cannot read tree {}", args.tree.display()))?;
    if !tree.is_dir() {
        bail!("--tree {} is not a directory", tree.display());
    }
    let (_, _, files) = tree::scan(&tree)?;
    if files.is_empty() {
        bail!("--tree {} has no files to publish", tree.display());
    }

    // Freeze: hard links into a fresh tree directory.
    // `created` grows strictly from release to release (nodes date new
    // files with it, and HTTP dates have one-second resolution).
    let now = prev
        .as_ref()
        .map_or(now_secs(), |r| now_secs().max(r.created + 1));
    let seq = prev.as_ref().map_or(now, |r| (r.seq + 1).max(now));
    let staging = cd.trees().join(format!("{seq}.tmp"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    let frozen = staging.join(&args.channel);
    let mut known: HashMap<Vec<String>, FileHashes> = HashMap::new();
    let mut stamps: HashMap<Vec<String>, Stamp> = HashMap::new();
    // What gets hashed: the frozen copies, as stat'ed after linking (a
    // second walk of the frozen tree cost 20,000 more stats and reads of
    // every directory).
    let mut frozen_files: Vec<InputFile> = Vec::with_capacity(files.len());
    let mut frozen_links: Vec<(PathBuf, InputFile)> = Vec::new();
    // Directories made so far: one mkdir per directory, not one per file
    // (create_dir_all of an existing parent is a failed mkdir and a stat).
    let mut made: HashSet<PathBuf> = HashSet::new();
    for f in files {
        let mut dst = frozen.clone();
        dst.extend(&f.path);
        if let Some(parent) = dst.parent()
            && !made.contains(parent)
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            made.insert(parent.to_path_buf());
        }
        let mut src = tree.clone();
        src.extend(&f.path);
        if let Some(target) = &f.symlink_target {
            let rel = FilePath::new(target).relative_from(&FilePath::new(&f.path));
            std::os::unix::fs::symlink(&rel, &dst)
                .with_context(|| format!("cannot create {}", dst.display()))?;
            frozen_links.push((dst, f));
            continue;
        }
        let meta = std::fs::symlink_metadata(&src)
            .with_context(|| format!("cannot stat {}", src.display()))?;
        let stamp = Stamp::of(&meta);
        let key = f.path.join("/");
        let cached = if args.v1_compatible {
            None
        } else {
            cache.get(&key, stamp)?
        };
        freeze_file(&src, &dst, cached.is_some(), prev_tree.as_deref(), &f.path)?;
        // What was linked must be what was stamped (a writer may have
        // replaced the file in between).
        let linked = std::fs::symlink_metadata(&dst)
            .with_context(|| format!("cannot stat {}", dst.display()))?;
        let same = Stamp::of(&linked) == stamp
            || (linked.len() == stamp.size && cached.is_some() && linked.ino() != stamp.ino);
        if let (Some(h), true) = (cached, same) {
            known.insert(f.path.clone(), h);
        }
        if Stamp::of(&linked).ino == stamp.ino {
            stamps.insert(f.path.clone(), stamp);
        }
        frozen_files.push(InputFile {
            length: linked.len(),
            executable: linked.permissions().mode() & 0o111 != 0,
            ..f
        });
    }
    // A link whose target holds no file (an empty directory) would dangle
    // in every snapshot: the torrent cannot carry directories.
    for (dst, f) in frozen_links {
        if std::fs::metadata(&dst).is_ok() {
            frozen_files.push(f);
        } else {
            tracing::warn!(
                "skipping symlink {} (its target holds no file to publish)",
                f.path.join("/")
            );
            std::fs::remove_file(&dst).ok();
        }
    }
    // The order the walk gave (by name): the torrent's file order.
    frozen_files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let files = frozen_files;

    let version = if args.v1_compatible {
        Version::V1
    } else {
        Version::Hybrid
    };
    let base = base_url(args);
    let mut web_seeds = vec![format!("{base}/")];
    web_seeds.extend(args.web_seeds.iter().cloned());
    let piece_length = args.piece_size.or_else(|| {
        // Keep the previous piece length while it stays sensible, so the
        // hash cache stays usable.
        let prev = prev_meta.as_ref()?.info.piece_length;
        let auto = torrent::create::auto_piece_length_for(version, &files, 1 << 20);
        (prev * 4 >= auto && prev <= auto * 4).then_some(prev)
    });
    let opts = CreateOptions {
        version,
        piece_length,
        trackers: args.trackers.clone(),
        web_seeds: web_seeds.clone(),
        creation_date: i64::try_from(now).ok(),
        created_by: Some(concat!("swarmsync ", env!("CARGO_PKG_VERSION")).to_owned()),
    };
    let plan = Plan::new(&args.channel, false, files, &opts)?;
    let total = plan.total_length();
    let source = DirSource {
        base: frozen.clone(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (torrent, meta, hashes, read) = if version == Version::V1 {
        let (t, m) = torrent::create::create(&plan, &opts, &source, threads, progress)?;
        (t, m, Vec::new(), total)
    } else {
        let lookup = |i: usize| known.get(&plan.files[i].path).cloned();
        torrent::create::create_incremental(&plan, &opts, &source, threads, progress, &lookup)?
    };

    // Unchanged tree: nothing to do unless forced.
    if let (Some(p), Some(pm), false) = (&prev, &prev_meta, args.force)
        && pm.info.v2_infohash == meta.info.v2_infohash
        && pm.info.v1_infohash == meta.info.v1_infohash
    {
        std::fs::remove_dir_all(&staging).ok();
        return Ok(Published {
            seq: p.seq,
            meta,
            read,
            total,
            unchanged: true,
        });
    }

    write_atomic(&cd.torrent(seq), &torrent)?;
    let final_tree = cd.tree(seq);
    std::fs::rename(&staging, &final_tree)
        .with_context(|| format!("cannot rename {}", staging.display()))?;
    File::open(cd.trees())?.sync_all()?;
    // The seeder trusts the frozen tree without rehashing it.
    swarm::storage::Storage::record_complete(&meta, &final_tree)
        .with_context(|| format!("cannot record {}", final_tree.display()))?;

    let release = channel::Release {
        channel: args.channel.clone(),
        seq,
        created: now,
        expires: now + expires.as_secs(),
        v2: meta.info.v2_infohash.unwrap_or_default(),
        v1: meta.info.v1_infohash,
        size: total,
        files: plan.files.iter().filter(|f| !f.path.is_empty()).count() as u64,
        torrents: vec![format!("{base}/-/torrents/{}/{seq}.torrent", args.channel)],
        feeds: vec![format!("{base}/-/releases/{}", args.channel)],
        web_seeds,
        peers: vec![peer_hint(args)],
        trackers: args.trackers.clone(),
    };
    let signed = signer.sign(&release);
    write_atomic(&cd.release(), &signed)?;
    switch_symlink(
        &cd.current(),
        Path::new("trees").join(seq.to_string()).as_path(),
    )?;

    if version != Version::V1 {
        let entries = plan.files.iter().enumerate().filter_map(|(i, f)| {
            let stamp = stamps.get(&f.path)?;
            let h = hashes.get(i)?;
            (f.symlink_target.is_none() && f.length > 0).then(|| (f.path.join("/"), *stamp, h))
        });
        let entries: Vec<(String, Stamp, &FileHashes)> = entries.collect();
        cache.replace_all(entries.iter().map(|(p, s, h)| (p.as_str(), *s, *h)))?;
    }
    prune(&cd, seq, prev.as_ref().map(|r| r.seq));
    Ok(Published {
        seq,
        meta,
        read,
        total,
        unchanged: false,
    })
}

/// Links `src` (or its unchanged frozen copy from the previous release)
/// to `dst`; copies when the state is on another filesystem.
fn freeze_file(
    src: &Path,
    dst: &Path,
    unchanged: bool,
    prev_tree: Option<&Path>,
    rel: &[String],
) -> Result<()> {
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    if unchanged && let Some(prev) = prev_tree {
        let mut p = prev.to_path_buf();
        p.extend(rel);
        if std::fs::hard_link(&p, dst).is_ok() {
            return Ok(());
        }
    }
    std::fs::copy(src, dst)
        .with_context(|| format!("cannot freeze {} into {}", src.display(), dst.display()))?;
    if let Ok(m) = std::fs::metadata(src).and_then(|m| m.modified()) {
        File::options()
            .write(true)
            .open(dst)
            .and_then(|f| f.set_modified(m))
            .ok();
    }
    Ok(())
}

/// Keeps the new tree and the previous one (nodes still finishing it);
/// removes older trees and torrents.
fn prune(cd: &ChannelDir, seq: u64, prev: Option<u64>) {
    let keep = |s: u64| s == seq || Some(s) == prev;
    if let Ok(rd) = std::fs::read_dir(cd.trees()) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let num = name.trim_end_matches(".tmp").parse::<u64>().ok();
            if let Some(s) = num
                && !keep(s)
            {
                std::fs::remove_dir_all(e.path()).ok();
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(cd.dir.join("torrents")) {
        for e in rd.flatten() {
            let name = e.file_name();
            let s = name
                .to_string_lossy()
                .strip_suffix(".torrent")
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(s) = s
                && !keep(s)
            {
                std::fs::remove_file(e.path()).ok();
            }
        }
    }
}

/// Sizes and mtimes of the tree, to notice changes for `--watch`.
pub fn tree_fingerprint(tree: &Path) -> u64 {
    use std::hash::Hasher;
    // The value is only compared with itself, within one process.
    let mut h2 = std::hash::DefaultHasher::new();
    for e in walkdir::WalkDir::new(tree)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if let Ok(m) = e.metadata() {
            h2.write(e.path().as_os_str().as_encoded_bytes());
            h2.write_u64(m.len());
            h2.write_i64(m.mtime());
            h2.write_i64(m.mtime_nsec());
            h2.write_u64(m.ino());
        }
    }
    h2.finish()
}

pub fn settle(args: &PublishArgs) -> Result<Duration> {
    crate::config::parse_duration(&args.settle).context("--settle")
}
