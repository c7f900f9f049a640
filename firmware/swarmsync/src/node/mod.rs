//! `swarmsync run`: the node daemon.
//!
//! One task per channel follows its feeds and keeps a store under
//! `<data_dir>/<channel>/`; one HTTP server serves every channel's
//! `current` snapshot at its mount, plus `/-/status`, `/-/status.json` and
//! `/-/metrics` from the shared status board. Each channel's engine listens
//! on `peer_listen`'s port plus the channel's position in the config.

mod leds;
mod miss;
mod paths;
mod sync;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::config::Config;

pub(crate) use sync::{ChannelTask, human, tree_of};

pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let rt = crate::cmd_swarm::runtime()?;
    rt.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            crate::signals::terminated().await;
            tracing::info!("stopping");
            let _ = stop_tx.send(true);
        });
        run_until(config, serve::status::StatusBoard::new(), stop_rx, None).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the node until `stop` turns true. `http_bound`, if given, receives
/// the HTTP server's bound address (tests and the demo use port 0).
pub async fn run_until(
    config: Config,
    board: serve::status::StatusBoard,
    stop: watch::Receiver<bool>,
    http_bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> Result<()> {
    let data = config.node.data_dir.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create data_dir {}", data.display()))?;
    let started = std::time::Instant::now();
    board.update(|s| {
        s.node.version = env!("CARGO_PKG_VERSION").to_owned();
        s.node.name = crate::origin::hostname_pub();
        s.node.data_dir = data.display().to_string();
        s.node.disk_budget = config.disk_budget().ok().flatten().unwrap_or(0);
        s.channels = config
            .channels
            .iter()
            .map(|c| serve::status::ChannelStatus {
                name: c.name.clone(),
                mount: c.mount.clone().unwrap_or_default(),
                state: "waiting".into(),
                ..Default::default()
            })
            .collect();
    });

    // DHT (BEP 5), off unless [network] dht = true: one node for all
    // channels, on the peer port's UDP twin.
    let dht = if config.network.dht {
        let mut cfg = swarm::dht::Config::default();
        if !config.network.dht_bootstrap.is_empty() {
            cfg.bootstrap = config.network.dht_bootstrap.clone();
        }
        if let std::net::SocketAddr::V4(a) = config.node.peer_listen {
            cfg.bind = a;
        }
        match swarm::dht::Dht::start(cfg).await {
            Ok(d) => Some(std::sync::Arc::new(d)),
            Err(e) => {
                tracing::warn!("DHT is off: {e}");
                None
            }
        }
    } else {
        None
    };
    tokio::spawn(leds::run(config.leds.clone(), board.clone(), stop.clone()));

    let mut mounts = Vec::new();
    let mut tasks = Vec::new();
    let mut misses = Vec::new();
    for (i, ch) in config.channels.iter().enumerate() {
        let dir = data.join(&ch.name);
        let mount = ch.mount.clone().unwrap_or_else(|| format!("/{}", ch.name));
        // by-hash files are found in any retained snapshot (design.md
        // "Consistency for clients").
        let store_dir = std::fs::canonicalize(&data)?.join(&ch.name);
        mounts.push(serve::Mount::with_snapshots(
            mount.clone(),
            store_dir.join("current"),
            store_dir.join("snapshots"),
        ));
        let miss = std::sync::Arc::new(miss::ChannelMiss::default());
        misses.push((mount.clone(), std::sync::Arc::clone(&miss)));
        let task = ChannelTask::new(&config, i, dir, board.clone(), dht.clone(), miss)?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move { task.run(stop).await }));
    }

    let listener = tokio::net::TcpListener::bind(config.node.http_listen)
        .await
        .with_context(|| format!("cannot listen on http_listen {}", config.node.http_listen))?;
    let bound = listener.local_addr()?;
    tracing::info!("serving HTTP on {bound}");
    if let Some(tx) = http_bound {
        let _ = tx.send(bound);
    }
    let server = serve::Server::new(mounts, serve::Config::default())
        .status(board.clone())
        .miss(std::sync::Arc::new(miss::Misses { channels: misses }));
    let mut http_stop = stop.clone();
    let http = tokio::spawn(async move {
        server
            .run(listener, async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    // Node-wide figures for the status page.
    let mut tick_stop = stop.clone();
    let data2 = data.clone();
    let board2 = board.clone();
    tokio::spawn(async move {
        loop {
            let (used, free) = tokio::task::spawn_blocking({
                let d = data2.clone();
                move || (dir_size(&d), free_space(&d))
            })
            .await
            .unwrap_or((0, 0));
            board2.update(|s| {
                s.node.uptime_s = started.elapsed().as_secs();
                s.node.time = crate::origin::now_secs();
                s.node.disk_used = used;
                s.node.disk_free = free;
            });
            tokio::select! {
                // A walk of the store: not too often on an SD card.
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                () = crate::signals::stopped(&mut tick_stop) => return,
            }
        }
    });

    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e:#}"),
            Err(e) => tracing::error!("channel task failed: {e}"),
        }
    }
    match http.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("HTTP server: {e}")),
        Err(e) => Err(anyhow::anyhow!("HTTP server stopped: {e}")),
    }
}

/// Bytes of regular files under `dir` (hard links counted once).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && (m.nlink() == 1 || seen.insert(m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Free bytes on the filesystem holding `dir`, from `df` (no libc here).
pub fn free_space(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output();
    let Ok(out) = out else { return 0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// The signed releases the channel's DHT item holds (BEP 46, see
/// `channel::dht`): one lookup under each key a release may be signed
/// with. Items no newer than `installed` are no news and left out; the
/// rest go through `channel::accept` like a feed's answer, since the
/// item's own signature only says who put it.
pub(crate) async fn dht_releases(
    dht: &swarm::dht::Dht,
    policy: &channel::Policy,
    installed: Option<(u64, &[u8])>,
) -> Vec<Vec<u8>> {
    let salt = channel::dht::salt(&policy.channel);
    let mut found = Vec::new();
    for key in channel::dht::lookup_keys(policy, installed.map(|(_, b)| b)) {
        match dht.get_mutable(key.0, salt).await {
            Ok(Some((seq, value))) => {
                let seq = u64::try_from(seq).unwrap_or(0);
                if installed.is_none_or(|(s, _)| seq > s) && !found.contains(&value) {
                    found.push(value);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("channel {}: {e}", policy.channel),
        }
    }
    found
}
