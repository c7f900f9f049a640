//! `swarmsync torrent download` and `swarmsync torrent seed`.

use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use swarm::engine::{self, Options};
use torrent::magnet::Magnet;

use crate::progress::Progress;

#[derive(clap::Args)]
pub struct DownloadArgs {
    /// A .torrent file or a magnet link.
    source: String,
    /// The folder that will hold the torrent's top-level name.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A tracker announce URL (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Accept incoming peers on this address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Keep seeding after the download completes, until stopped.
    #[arg(long)]
    seed: bool,
    /// Find peers on the LAN with local service discovery (BEP 14).
    #[arg(long)]
    lsd: bool,
    /// A BEP 19 web seed URL, besides the torrent's own (repeatable).
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,
    #[command(flatten)]
    dht: DhtArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(clap::Args)]
pub struct DhtArgs {
    /// Find peers, and be found, through the BitTorrent DHT (BEP 5). Off
    /// by default: it makes this machine a public UDP node that tells
    /// strangers which torrents it has (see SECURITY.md). Its UDP socket
    /// takes --listen's IPv4 address, on a free port.
    #[arg(long)]
    dht: bool,
    /// Join the DHT through this node instead of the public routers
    /// (repeatable; needs --dht).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", requires = "dht")]
    dht_bootstrap: Vec<String>,
}

impl DhtArgs {
    fn config(&self, listen: Option<SocketAddr>) -> Option<swarm::dht::Config> {
        if !self.dht {
            return None;
        }
        let mut cfg = swarm::dht::Config::default();
        if !self.dht_bootstrap.is_empty() {
            cfg.bootstrap = self.dht_bootstrap.clone();
        }
        if let Some(SocketAddr::V4(a)) = listen {
            cfg.bind = SocketAddrV4::new(*a.ip(), 0);
        }
        Some(cfg)
    }

    /// Starts the DHT node if asked for. It runs on its own thread, so
    /// it outlives the runtime that started it and serves the next.
    fn start(&self, listen: Option<SocketAddr>) -> Result<Option<Arc<swarm::dht::Dht>>> {
        let Some(cfg) = self.config(listen) else {
            return Ok(None);
        };
        let dht = runtime()?.block_on(swarm::dht::Dht::start(cfg))?;
        Ok(Some(Arc::new(dht)))
    }
}

#[derive(clap::Args)]
pub struct LimitArgs {
    /// Download rate limit, e.g. 2MiB/s (default: off).
    #[arg(long, value_name = "RATE")]
    download_limit: Option<String>,
    /// Upload rate limit, e.g. 500KiB/s (default: off).
    #[arg(long, value_name = "RATE")]
    upload_limit: Option<String>,
}

impl LimitArgs {
    fn limits(&self) -> Result<swarm::conn::Limits> {
        let one = |s: &Option<String>, what: &str| -> Result<Vec<Arc<swarm::rate::Limiter>>> {
            match s {
                None => Ok(Vec::new()),
                Some(text) => match swarm::rate::parse_rate(text) {
                    Some(Some(rate)) => Ok(vec![Arc::new(swarm::rate::Limiter::new(rate))]),
                    Some(None) => Ok(Vec::new()),
                    None => bail!(
                        "bad --{what}-limit {text:?}\nuse a rate such as 2MiB/s, 500KiB/s or off"
                    ),
                },
            }
        };
        Ok(swarm::conn::Limits {
            down: one(&self.download_limit, "download")?,
            up: one(&self.upload_limit, "upload")?,
        })
    }
}

#[derive(clap::Args)]
pub struct SeedArgs {
    file: PathBuf,
    /// The folder that holds the torrent's top-level name.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Where to accept peers.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// A peer to connect to as well (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A tracker announce URL, besides the torrent's own (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Announce on the LAN with local service discovery (BEP 14).
    #[arg(long)]
    lsd: bool,
    #[command(flatten)]
    dht: DhtArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// An Azureus-style peer id: client and version, then random bytes.
pub fn peer_id() -> [u8; 20] {
    let mut id = *b"-SS0100-000000000000";
    let r1 = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let r2 = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let chars = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for (i, slot) in id[8..].iter_mut().enumerate() {
        let r = if i < 6 {
            r1 >> (i * 10)
        } else {
            r2 >> ((i - 6) * 10)
        };
        *slot = chars[(r % 36) as usize];
    }
    id
}

pub(crate) fn resolve(peers: &[String]) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("bad peer address {p:?} (want HOST:PORT)"))?;
        out.extend(addrs);
    }
    Ok(out)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn download(args: &DownloadArgs) -> Result<ExitCode> {
    let id = peer_id();
    let mut peers = resolve(&args.peers)?;
    let dht = args.dht.start(args.listen)?;
    let meta = if args.source.starts_with("magnet:") {
        let magnet = Magnet::parse(&args.source).context("cannot read the magnet link")?;
        for p in &magnet.peers {
            match resolve(std::slice::from_ref(p)) {
                Ok(a) => peers.extend(a),
                Err(e) => tracing::warn!("ignoring x.pe={p}: {e:#}"),
            }
        }
        let mut trackers = args.trackers.clone();
        trackers.extend(magnet.trackers.iter().cloned());
        let port = args.listen.map_or(0, |a| a.port());
        // For a v2-only torrent this also brings the piece layers of its
        // big files (BEP 52 hash requests), each checked against its root.
        let fetched = runtime()?.block_on(metadata(
            &magnet,
            peers.clone(),
            trackers,
            dht.clone(),
            id,
            port,
        ))?;
        torrent::Metainfo {
            info: fetched.info,
            trackers: magnet.trackers.iter().map(|t| vec![t.clone()]).collect(),
            web_seeds: magnet.web_seeds.clone(),
            piece_layers: fetched.piece_layers,
            creation_date: None,
            created_by: None,
            comment: None,
        }
    } else {
        crate::cmd_torrent::load(Path::new(&args.source))?
    };
    let mut opts = Options::new(args.dir.clone(), id);
    opts.peers = peers;
    opts.listen = args.listen;
    opts.seed = args.seed;
    opts.trackers = args.trackers.clone();
    opts.web_seeds = args.web_seeds.clone();
    opts.lsd = args.lsd.then(|| swarm::lsd::Config::new(0));
    opts.limits = args.limits.limits()?;
    opts.dht = dht;
    run(meta, opts)
}

/// Gets a magnet's metadata from its peers, trackers and the DHT.
async fn metadata(
    magnet: &Magnet,
    peers: Vec<SocketAddr>,
    trackers: Vec<String>,
    dht: Option<Arc<swarm::dht::Dht>>,
    peer_id: [u8; 20],
    port: u16,
) -> Result<swarm::metadata::Fetched> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let info_hash = magnet.swarm_hash();
    // Looks up only (port 0): there is nothing to offer before the info.
    let _dht_tracking = match (&dht, info_hash) {
        (Some(dht), Some(h)) => Some(dht.track(vec![h], 0, tx.clone())),
        _ => None,
    };
    if let Some(info_hash) = info_hash {
        for url in trackers {
            let tx = tx.clone();
            tokio::spawn(async move {
                let req = swarm::tracker::Request {
                    info_hash,
                    peer_id,
                    port,
                    uploaded: 0,
                    downloaded: 0,
                    left: 1,
                    event: swarm::tracker::Event::Started,
                    numwant: Some(50),
                    key: 0,
                };
                match swarm::tracker::announce(&url, &req).await {
                    Ok(r) => {
                        for p in r.peers {
                            let _ = tx.send(p).await;
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            });
        }
    }
    drop(tx);
    let name = magnet.name.clone().unwrap_or_else(|| "magnet".into());
    swarm::metadata::fetch(
        magnet,
        peers,
        rx,
        peer_id,
        std::time::Duration::from_secs(120),
    )
    .await
    .with_context(|| format!("cannot start {name}"))
}

pub fn seed(args: &SeedArgs) -> Result<ExitCode> {
    let meta = crate::cmd_torrent::load(&args.file)?;
    let mut opts = Options::new(args.dir.clone(), peer_id());
    opts.peers = resolve(&args.peers)?;
    opts.listen = Some(args.listen);
    opts.seed = true;
    opts.trackers = args.trackers.clone();
    opts.lsd = args.lsd.then(|| swarm::lsd::Config::new(0));
    opts.limits = args.limits.limits()?;
    opts.dht = args.dht.start(Some(args.listen))?;
    run(meta, opts)
}

fn run(meta: torrent::Metainfo, opts: Options) -> Result<ExitCode> {
    let name = meta.info.name.clone();
    let total = meta.info.total_length();
    let meta = Arc::new(meta);
    let bar = Progress::new("downloading", total);
    let last = std::cell::Cell::new(0u64);
    let started = std::time::Instant::now();
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        engine::run(meta, opts, shutdown, |p| {
            let have = p.have_bytes;
            if have > last.get() {
                bar.add(have - last.get());
                last.set(have);
            }
        })
        .await
    });
    bar.finish();
    let summary = summary.with_context(|| format!("cannot sync {name}"))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {} of {} pieces verified ({} resumed), {} bytes downloaded, {} bytes uploaded, {} hash failures, {:.1} s",
        if summary.complete { summary.pieces } else { 0 },
        summary.pieces,
        summary.resumed_pieces,
        summary.downloaded,
        summary.uploaded,
        summary.hash_failures,
        secs
    );
    if summary.complete {
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("{name}: stopped before the download completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        dht: DhtArgs,
    }

    fn parse(args: &[&str]) -> Result<DhtArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.dht)
    }

    #[test]
    fn dht_is_off_unless_asked_for() {
        let args = parse(&[]).expect("no flags");
        assert!(args.config(None).is_none());
    }

    #[test]
    fn dht_binds_the_listen_ipv4_address_and_takes_the_given_bootstrap() {
        let args = parse(&[
            "--dht",
            "--dht-bootstrap",
            "127.0.0.1:7001",
            "--dht-bootstrap",
            "127.0.0.1:7002",
        ])
        .expect("flags");
        let cfg = args
            .config(Some("127.0.0.1:6999".parse().expect("address")))
            .expect("on");
        assert_eq!(cfg.bind, "127.0.0.1:0".parse().expect("address"));
        assert_eq!(cfg.bootstrap, ["127.0.0.1:7001", "127.0.0.1:7002"]);
        let cfg = parse(&["--dht"])
            .expect("flags")
            .config(Some("[::1]:6999".parse().expect("address")))
            .expect("on");
        assert!(cfg.bind.ip().is_unspecified());
        assert_eq!(cfg.bootstrap.len(), swarm::dht::DEFAULT_BOOTSTRAP.len());
    }

    #[test]
    fn a_bootstrap_node_without_dht_is_an_error() {
        assert!(parse(&["--dht-bootstrap", "127.0.0.1:7001"]).is_err());
    }
}
