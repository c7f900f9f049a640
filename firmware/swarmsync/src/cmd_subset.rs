//! `swarmsync subset --config FILE`: what a node would fetch, before it
//! fetches anything but the release, its torrent and the repository
//! metadata the selection is computed from.
//!
//! An admin on a metered link wants to know "how big is this?" before the
//! first sync starts. Metadata comes from the node's store when it already
//! holds it, else from the release's web seeds, and is checked against the
//! torrent's v2 roots either way, so the printed plan is the one the node
//! will follow.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use torrent::metainfo::Metainfo;

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest metadata file fetched for planning (a Packages file of all of
/// Debian main for one architecture is about 100 MiB uncompressed).
const MAX_METADATA: usize = 256 << 20;

pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    if config.channels.is_empty() {
        bail!("{} has no [[channel]]", config_path.display());
    }
    let rt = crate::cmd_swarm::runtime()?;
    for ch in &config.channels {
        rt.block_on(plan_channel(&config, ch))
            .with_context(|| format!("channel {}", ch.name))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn plan_channel(config: &Config, ch: &crate::config::Channel) -> Result<()> {
    let policy = channel::Policy {
        root: ch
            .public_key
            .parse()
            .map_err(|e| anyhow::anyhow!("public_key: {e}"))?,
        channel: ch.name.clone(),
    };
    let floor = channel::time_floor(crate::origin::now_secs(), None);
    let mut best: Option<channel::Release> = None;
    let mut problems = Vec::new();
    for url in &ch.feeds {
        match channel::feed::fetch(url, TIMEOUT).await {
            Ok(bytes) => match channel::accept(&bytes, &policy, None, floor) {
                Ok(r) if best.as_ref().is_none_or(|b| r.seq > b.seq) => best = Some(r),
                Ok(_) => {}
                Err(e) => problems.push(format!("{url}: refused: {e}")),
            },
            Err(e) => problems.push(format!("{url}: {e}")),
        }
    }
    let Some(release) = best else {
        bail!("no valid release from the feeds: {}", problems.join("; "));
    };
    let mut torrent = None;
    for url in &release.torrents {
        match channel::feed::fetch_limited(url, TIMEOUT, 64 << 20).await {
            Ok(b) => {
                torrent = Some(b);
                break;
            }
            Err(e) => problems.push(format!("{url}: {e}")),
        }
    }
    let Some(torrent) = torrent else {
        bail!("cannot fetch the torrent: {}", problems.join("; "));
    };
    let meta = Metainfo::from_bytes(&torrent).context("the release's torrent")?;
    if meta.info.v2_infohash != Some(release.v2) {
        bail!("the torrent does not match release {}", release.seq);
    }
    let files = crate::node::tree_of(&meta);
    let subset = ch.subset.clone().unwrap_or(repo::Subset::Paths {
        include: vec!["**".into()],
    });
    // The metadata files, from the store or the web seeds, checked.
    let by_path: HashMap<String, &torrent::metainfo::File> = meta
        .info
        .files
        .iter()
        .filter(|f| !f.attr.pad)
        .map(|f| (f.path.as_str().to_owned(), f))
        .collect();
    let store_dir = config.node.data_dir.join(&ch.name);
    let mut fetched: HashMap<String, Vec<u8>> = HashMap::new();
    for p in repo::metadata_paths(&subset, &files) {
        let Some(f) = by_path.get(&p) else { continue };
        let data = match f.pieces_root {
            None => Vec::new(),
            Some(root) => match std::fs::read(store::Store::object_path_in(&store_dir, &root)) {
                Ok(d) => d,
                Err(_) => fetch_file(&release, &meta, &p).await?,
            },
        };
        if let Some(root) = f.pieces_root {
            let got = torrent::merkle::hash_bytes(&data, meta.info.piece_length).root;
            if got != Some(root) {
                bail!("{p}: the copy fetched does not match the torrent");
            }
        }
        fetched.insert(p, data);
    }
    let mut read = |p: &str| -> Result<Vec<u8>, repo::Error> {
        fetched
            .get(p)
            .cloned()
            .ok_or_else(|| repo::Error::read(p, "not fetched"))
    };
    let plan = repo::plan(&subset, &files, &mut read).context("cannot choose the subset")?;
    // What is already stored needs no download.
    let stored: u64 = plan
        .selected
        .iter()
        .filter_map(|p| by_path.get(p))
        .filter_map(|f| f.pieces_root.map(|r| (r, f.length)))
        .filter(|(r, _)| store::Store::object_path_in(&store_dir, r).is_file())
        .map(|(_, len)| len)
        .sum();
    println!(
        "channel {} release {} (mount {})",
        ch.name,
        release.seq,
        ch.mount.as_deref().unwrap_or("")
    );
    print!("{}", plan.summary());
    println!(
        "  already stored: {}; to download: {}",
        crate::node::human(stored),
        crate::node::human(plan.bytes.saturating_sub(stored))
    );
    if let Some(budget) = config.disk_budget()? {
        let verdict = if plan.bytes > budget {
            "does NOT fit"
        } else {
            "fits"
        };
        println!("  disk_budget {}: {verdict}", crate::node::human(budget));
    }
    Ok(())
}

/// One file of the snapshot from the release's web seeds.
async fn fetch_file(release: &channel::Release, meta: &Metainfo, path: &str) -> Result<Vec<u8>> {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'?')
        .add(b'<')
        .add(b'>')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let rel: Vec<String> = std::iter::once(meta.info.name.as_str())
        .chain(path.split('/'))
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect();
    let mut problems = Vec::new();
    for base in &release.web_seeds {
        let url = format!("{}/{}", base.trim_end_matches('/'), rel.join("/"));
        match channel::feed::fetch_limited(&url, TIMEOUT, MAX_METADATA).await {
            Ok(d) => return Ok(d),
            Err(e) => problems.push(e.to_string()),
        }
    }
    bail!("cannot fetch {path}: {}", problems.join("; "))
}
