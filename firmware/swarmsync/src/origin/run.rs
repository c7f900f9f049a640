//! The long-running origin: feed, web seed and seeder of the newest
//! release, republishing on `--watch`.
//!
//! The newest release is whatever `<state>/<channel>/release` holds, read
//! again every two seconds, so a `publish --once` from cron in another
//! process is picked up without a restart or a signal.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{ChannelDir, PublishArgs, Published, http::Feed, publish_once};

/// How often the state is checked for a newer release and the tree for
/// changes.
const POLL: Duration = Duration::from_secs(2);

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
    let mount = serve::Mount::new(
        format!("/{}", args.channel),
        cd.current().join(&args.channel),
    );
    let server =
        serve::Server::new(vec![mount], serve::Config::default()).special(Arc::new(Feed {
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
    loop {
        if *stop.borrow() {
            break;
        }
        let Some(release) = super::previous_release(&cd, &signer) else {
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
        tracing::info!("seeding release {seq} of {}", args.channel);
        let mut opts = swarm::engine::Options::new(cd.tree(seq), crate::cmd_swarm::peer_id());
        opts.listen = Some(args.listen);
        opts.seed = true;
        opts.trackers = args.trackers.clone();
        // Its own web seed is for nodes, not for itself.
        opts.use_torrent_sources = false;
        let (cd2, signer2) = (cd.clone(), Arc::clone(&signer));
        let mut stop2 = stop.clone();
        let newer = async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    () = crate::signals::stopped(&mut stop2) => return,
                }
                let latest = super::previous_release(&cd2, &signer2).map(|r| r.seq);
                if latest.is_some_and(|s| s != seq) {
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
