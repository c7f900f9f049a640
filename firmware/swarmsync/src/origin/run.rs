//! The long-running origin: feed, web seed and seeder of the newest
//! release, republishing on `--watch`.
//!
//! The newest release is whatever `<state>/<channel>/release` holds, read
//! again every two seconds, so a `publish --once` from cron in another
//! process is picked up without a restart or a signal.
//!
//! The seeder also speaks release gossip (the BEP 10 extension nodes use
//! among themselves): every peer hears the release it seeds on connecting,
//! and when a newer one appears the old swarm hears it before the seeder
//! leaves it. A node that polls its feed rarely (a metered link) then
//! learns of a release from the origin within the two-second poll, without
//! a request of its own, as a node learns it from a LAN peer.
//!
//! With `--dht` the origin is also a DHT node, in server mode from the
//! start: it is long-running and reachable, which is what the DHT needs of
//! a server, and nodes of a private pool can then bootstrap through it.
//! The newest release goes into the channel's mutable item (BEP 44 under
//! the signing key, salt = channel, `channel::dht`) as soon as it is seen
//! and again every 30 minutes, since DHT nodes forget items after about
//! two hours; a put that no node accepted yet (still joining, nodes gone)
//! is retried with backoff.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{ChannelDir, PublishArgs, Published, http::Feed, publish_once};

/// How often the state is checked for a newer release and the tree for
/// changes.
const POLL: Duration = Duration::from_secs(2);

/// How long the seeder of a release stays after telling its peers of a
/// newer one, for the message to leave (a node waits as long).
const GOSSIP_GRACE: Duration = Duration::from_millis(300);

/// How often the DHT item is put again while the release stays the same
/// (BEP 44 nodes drop items after about two hours).
const DHT_REFRESH: Duration = Duration::from_secs(30 * 60);
/// First and longest wait before a failed put is tried again.
const DHT_RETRY_FIRST: Duration = Duration::from_secs(2);
const DHT_RETRY_MAX: Duration = Duration::from_secs(5 * 60);

pub fn run(args: &PublishArgs) -> Result<ExitCode> {
    // Absolute paths: the HTTP mounts need them, and a relative --state
    // must not change meaning if the working directory does.
    let mut args = args.clone();
    for p in [&mut args.state, &mut args.tree, &mut args.key] {
        *p = std::path::absolute(&*p).with_context(|| format!("bad path {}", p.display()))?;
    }
    let args = &args;
    let signer = Arc::new(
        channel::Signer::load(&args.key)
            .with_context(|| format!("cannot load key {}", args.key.display()))?,
    );
    publish_logged(args, &signer)?;
    if args.once {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = crate::cmd_swarm::runtime()?;
    rt.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            crate::signals::terminated().await;
            let _ = stop_tx.send(true);
        });
        serve(args.clone(), signer, stop_rx).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Publishes and prints one line about it.
pub fn publish_logged(args: &PublishArgs, signer: &channel::Signer) -> Result<Published> {
    let started = Instant::now();
    let p = publish_once(args, signer, &|_| {})
        .with_context(|| format!("cannot publish {}", args.tree.display()))?;
    let v2 = p
        .meta
        .info
        .v2_infohash
        .map(|h| torrent::hash::to_hex(&h))
        .unwrap_or_default();
    if p.unchanged {
        println!(
            "{}: tree unchanged, release {} stays (use --force to re-sign)",
            args.channel, p.seq
        );
    } else {
        println!(
            "{}: published release {} ({} bytes; read {} bytes, the rest from the hash cache; {:.1} s) v2 {v2}",
            args.channel,
            p.seq,
            p.total,
            p.read,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(p)
}

/// Serves the channel as its origin until `stop_rx` turns true.
pub async fn serve(
    args: PublishArgs,
    signer: Arc<channel::Signer>,
    stop_rx: watch::Receiver<bool>,
) -> Result<()> {
    let cd = ChannelDir::new(&args.state, &args.channel);

    // HTTP: the feed, the torrents and the frozen tree as web seed.
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on --http {}", args.http))?;
    tracing::info!(
        "origin HTTP on {} (feed {}/-/releases/{})",
        args.http,
        super::base_url(&args),
        args.channel
    );
    // Rooted at the `current` symlink itself (so `/<channel>/…` is
    // `current/<channel>/…`): the server re-resolves its root only when the
    // root is the link that moves; a root below it would keep serving the
    // first tree after a republish, under the newer release's torrent.
    let mount = serve::Mount::new("/", cd.current());
    // No sticky snapshots: web seed clients are nodes fetching the newest
    // release's files (their pieces are verified), and a node that fetched
    // an InRelease would be pinned to the old tree for the grace window.
    let http_config = serve::Config {
        sticky_grace: Duration::ZERO,
        ..serve::Config::default()
    };
    let server = serve::Server::new(vec![mount], http_config).special(Arc::new(Feed {
        channel: cd.clone(),
    }));
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        server
            .run(listener, async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    // --dht: one node for the item and the seeder's peer discovery.
    let dht = if args.dht {
        let dht = swarm::dht::Dht::start(dht_config(&args))
            .await
            .context("cannot start the DHT node (--dht)")?;
        let dht = Arc::new(dht);
        tokio::spawn(put_items(
            Arc::clone(&dht),
            cd.clone(),
            Arc::clone(&signer),
            stop_rx.clone(),
        ));
        Some(dht)
    } else {
        None
    };

    // --watch: republish when the tree changed and then stayed still.
    if args.watch {
        let settle = super::settle(&args)?;
        let a = args.clone();
        let s = Arc::clone(&signer);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let tree = a.tree.clone();
            let fp = move || {
                let t = tree.clone();
                async move {
                    tokio::task::spawn_blocking(move || super::tree_fingerprint(&t))
                        .await
                        .unwrap_or(0)
                }
            };
            let mut published = fp().await;
            let mut seen = published;
            let mut since = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    () = crate::signals::stopped(&mut stop) => return,
                }
                let now = fp().await;
                if now != seen {
                    seen = now;
                    since = Instant::now();
                    continue;
                }
                if now != published && since.elapsed() >= settle {
                    let (a2, s2) = (a.clone(), Arc::clone(&s));
                    match tokio::task::spawn_blocking(move || publish_logged(&a2, &s2)).await {
                        Ok(Ok(_)) => published = now,
                        Ok(Err(e)) => tracing::error!("{e:#}"),
                        Err(e) => tracing::error!("publishing stopped: {e}"),
                    }
                }
            }
        });
    }

    // Seed the newest release; restart on a newer one.
    let mut stop = stop_rx.clone();
    let (gossip_tx, _) = watch::channel::<Option<Arc<Vec<u8>>>>(None);
    // What peers gossip back is of no use to the origin: the receiver is
    // dropped, and the engine's sends to it fail quietly.
    let heard_tx = tokio::sync::mpsc::channel::<Vec<u8>>(1).0;
    loop {
        if *stop.borrow() {
            break;
        }
        let Some((release, bytes)) = newest_signed(&cd, &signer) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let seq = release.seq;
        let meta = match std::fs::read(cd.torrent(seq))
            .ok()
            .and_then(|b| torrent::Metainfo::from_bytes(&b).ok())
        {
            Some(m) => Arc::new(m),
            None => {
                tracing::error!(
                    "release {seq}: torrent {} unreadable",
                    cd.torrent(seq).display()
                );
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        gossip_tx.send_replace(Some(Arc::new(channel::gossip::encode(&bytes))));
        tracing::info!("seeding release {seq} of {}", args.channel);
        let mut opts = swarm::engine::Options::new(cd.tree(seq), crate::cmd_swarm::peer_id());
        opts.listen = Some(args.listen);
        opts.seed = true;
        opts.trackers = args.trackers.clone();
        // Its own web seed is for nodes, not for itself.
        opts.use_torrent_sources = false;
        opts.dht = dht.clone();
        opts.gossip = Some(swarm::engine::Gossip {
            outbound: gossip_tx.subscribe(),
            inbound: heard_tx.clone(),
        });
        let (cd2, signer2) = (cd.clone(), Arc::clone(&signer));
        let mut stop2 = stop.clone();
        let gossip = gossip_tx.clone();
        let newer = async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    () = crate::signals::stopped(&mut stop2) => return,
                }
                let Some((latest, bytes)) = newest_signed(&cd2, &signer2) else {
                    continue;
                };
                if latest.seq != seq {
                    // Tell this swarm before leaving it, as a node does.
                    gossip.send_replace(Some(Arc::new(channel::gossip::encode(&bytes))));
                    tokio::time::sleep(GOSSIP_GRACE).await;
                    return;
                }
            }
        };
        match swarm::engine::run(meta, opts, newer, |_| {}).await {
            Ok(s) => tracing::info!(
                "release {seq}: seeding stopped after {} bytes uploaded",
                s.uploaded
            ),
            Err(e) => {
                tracing::error!("release {seq}: cannot seed: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    () = crate::signals::stopped(&mut stop) => {}
                }
            }
        }
    }
    match http.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("HTTP server: {e}")),
        Err(e) => Err(anyhow::anyhow!("HTTP server stopped: {e}")),
    }
}

/// The origin's DHT node: UDP on `--listen`'s IPv4 address and port (any
/// address for an IPv6 `--listen`), a server from the start.
fn dht_config(args: &PublishArgs) -> swarm::dht::Config {
    let mut cfg = swarm::dht::Config::default();
    if !args.dht_bootstrap.is_empty() {
        cfg.bootstrap = args.dht_bootstrap.clone();
    }
    cfg.bind = match args.listen {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port()),
    };
    cfg.server_mode = true;
    cfg
}

/// The newest release in the state, and its signed bytes.
fn newest_signed(cd: &ChannelDir, signer: &channel::Signer) -> Option<(channel::Release, Vec<u8>)> {
    let bytes = std::fs::read(cd.release()).ok()?;
    let policy = channel::Policy {
        root: signer.public(),
        channel: cd.channel.clone(),
    };
    // Time 0: our own release, whatever the clock says.
    let release = channel::accept(&bytes, &policy, None, 0).ok()?;
    Some((release, bytes))
}

/// Keeps the newest release in the channel's DHT item until `stop`.
async fn put_items(
    dht: Arc<swarm::dht::Dht>,
    cd: ChannelDir,
    signer: Arc<channel::Signer>,
    mut stop: watch::Receiver<bool>,
) {
    let seed = signer.key().seed();
    let salt = channel::dht::salt(&cd.channel).to_vec();
    // The release being kept in the DHT, and when to put it next (None:
    // not at all, it does not fit an item).
    let mut current: Option<u64> = None;
    let mut next: Option<tokio::time::Instant> = None;
    let mut retry = DHT_RETRY_FIRST;
    loop {
        let (c2, s2) = (cd.clone(), Arc::clone(&signer));
        let newest = tokio::task::spawn_blocking(move || newest_signed(&c2, &s2))
            .await
            .ok()
            .flatten();
        if let Some((release, bytes)) = newest {
            let seq = release.seq;
            if current != Some(seq) {
                current = Some(seq);
                retry = DHT_RETRY_FIRST;
                next = Some(tokio::time::Instant::now());
                if channel::dht::value(&bytes).is_none() {
                    tracing::warn!(
                        "{}: release {seq} is {} bytes, more than a DHT item holds ({}); it goes out by feed and gossip only",
                        cd.channel,
                        bytes.len(),
                        channel::dht::MAX_VALUE
                    );
                    next = None;
                }
            }
            if next.is_some_and(|t| t <= tokio::time::Instant::now()) {
                let put = dht.put_mutable(seed, &salt, bytes, channel::dht::seq(&release));
                let r = tokio::select! {
                    r = put => r,
                    () = crate::signals::stopped(&mut stop) => return,
                };
                let now = tokio::time::Instant::now();
                match r {
                    Ok(()) => {
                        tracing::info!("{}: release {seq} put in the DHT", cd.channel);
                        retry = DHT_RETRY_FIRST;
                        next = Some(now + DHT_REFRESH);
                    }
                    Err(swarm::Error::Dht {
                        problem: swarm::dht::Problem::Stale,
                        ..
                    }) => {
                        tracing::warn!(
                            "{}: the DHT holds a newer item than release {seq}; trying again in {} min",
                            cd.channel,
                            DHT_REFRESH.as_secs() / 60
                        );
                        next = Some(now + DHT_REFRESH);
                    }
                    Err(e) => {
                        // Quiet while joining; loud once it lasts.
                        if retry >= DHT_RETRY_MAX {
                            tracing::warn!("{}: {e}; retrying in {retry:?}", cd.channel);
                        } else {
                            tracing::info!("{}: {e}; retrying in {retry:?}", cd.channel);
                        }
                        next = Some(now + retry);
                        retry = (retry * 2).min(DHT_RETRY_MAX);
                    }
                }
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            () = crate::signals::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishArgs,
    }

    fn parse(extra: &[&str]) -> Result<PublishArgs, clap::Error> {
        let base = [
            "t",
            "--key",
            "k",
            "--channel",
            "c",
            "--tree",
            "t",
            "--state",
            "s",
        ];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.publish)
    }

    #[test]
    fn the_dht_is_off_unless_asked_and_binds_the_peer_address() {
        let a = parse(&[]).expect("defaults");
        assert!(!a.dht);
        assert!(parse(&["--dht-bootstrap", "10.0.0.1:6881"]).is_err());

        let a = parse(&["--dht", "--listen", "127.0.0.1:7000"]).expect("--dht");
        let cfg = dht_config(&a);
        assert_eq!(cfg.bind, "127.0.0.1:7000".parse().expect("addr"));
        assert!(cfg.server_mode);
        assert_eq!(cfg.bootstrap, swarm::dht::Config::default().bootstrap);

        let a = parse(&[
            "--dht",
            "--listen",
            "[::]:7001",
            "--dht-bootstrap",
            "10.0.0.1:6881",
            "--dht-bootstrap",
            "10.0.0.2:6881",
        ])
        .expect("--dht-bootstrap");
        let cfg = dht_config(&a);
        assert_eq!(cfg.bind, "0.0.0.0:7001".parse().expect("addr"));
        assert_eq!(cfg.bootstrap, ["10.0.0.1:6881", "10.0.0.2:6881"]);
    }
}
