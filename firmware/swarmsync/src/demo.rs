//! `swarmsync demo`: the whole product on loopback in one command.
//!
//! A signing key, a generated tree, an origin publishing it, and three
//! nodes that sync it through the swarm (each knows the others as static
//! peers and the origin from the release) and serve it over HTTP. Then
//! one file is changed and one added, the origin republishes, and the nodes
//! switch to the new snapshot while only the changed bytes move. It is the
//! same code as `publish` and `run`, with ports chosen on 127.0.0.1.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serve::status::StatusBoard;
use tokio::sync::watch;

use crate::config::Config;
use crate::origin::PublishArgs;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where to put the key, the tree, the origin's state and the nodes'
    /// data (default: a new directory under the system temp dir, removed
    /// at the end).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    nodes: u8,
    /// Exit once every node serves the second release, after checking that
    /// each served tree equals the origin's (for tests and CI), instead of
    /// waiting for Ctrl-C.
    #[arg(long)]
    exit_when_synced: bool,
    /// Keep --dir's contents at the end.
    #[arg(long)]
    keep: bool,
}

const CHANNEL: &str = "demo";

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let (dir, remove) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("swarmsync-demo-{}", std::process::id())),
            !args.keep,
        ),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("--dir {} is not empty", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = crate::cmd_swarm::runtime()?.block_on(demo(&dir, args));
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn demo(dir: &Path, args: &DemoArgs) -> Result<()> {
    // 1. A key, as `swarmsync keygen` makes it.
    let key_path = dir.join("origin.key");
    let key = channel::SecretKey::generate();
    key.write_new(&key_path)?;
    let public = key.public();
    println!("signing key  {} (public {public})", key_path.display());

    // 2. A tree to publish.
    let tree = dir.join("tree");
    let total = make_tree(&tree)?;
    println!(
        "sample tree  {} ({} files, {})",
        tree.display(),
        count_files(&tree),
        crate::node::human(total)
    );

    // 3. The origin.
    let http_port = free_port()?;
    let peer_port = free_port()?;
    let publish = PublishArgs {
        key: key_path.clone(),
        channel: CHANNEL.into(),
        tree: tree.clone(),
        state: dir.join("origin"),
        listen: SocketAddr::from(([127, 0, 0, 1], peer_port)),
        http: SocketAddr::from(([127, 0, 0, 1], http_port)),
        url: None,
        web_seeds: Vec::new(),
        trackers: Vec::new(),
        expires: "1d".into(),
        once: false,
        watch: false,
        settle: "2s".into(),
        force: false,
        v1_compatible: false,
        piece_size: Some(64 * 1024),
        dht: false,
        dht_bootstrap: Vec::new(),
    };
    let signer = Arc::new(channel::Signer::load(&key_path)?);
    let first = {
        let (p, s) = (publish.clone(), Arc::clone(&signer));
        tokio::task::spawn_blocking(move || crate::origin::publish_logged(&p, &s)).await??
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let origin = tokio::spawn(crate::origin::serve(
        publish.clone(),
        Arc::clone(&signer),
        stop_rx.clone(),
    ));
    let feed = format!("http://127.0.0.1:{http_port}/-/releases/{CHANNEL}");
    println!("origin       feed {feed}, peers on 127.0.0.1:{peer_port}");

    // 4. The nodes.
    let n = usize::from(args.nodes);
    let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_>>()?;
    let mut boards = Vec::new();
    let mut urls = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let peers: Vec<String> = peer_ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("\"127.0.0.1:{p}\""))
            .collect();
        let text = format!(
            "[node]\ndata_dir = {data:?}\npeer_listen = \"127.0.0.1:{peer}\"\nhttp_listen = \"127.0.0.1:0\"\npoll_interval = \"1s\"\n\n\
             [[channel]]\nname = \"{CHANNEL}\"\npublic_key = \"{public}\"\nfeeds = [\"{feed}\"]\nmount = \"/{CHANNEL}\"\n\n\
             [network]\nlsd = false\npeers = [{peers}]\n",
            data = dir.join(format!("node{}", i + 1)).display().to_string(),
            peer = peer_ports[i],
            peers = peers.join(", "),
        );
        std::fs::write(dir.join(format!("node{}.toml", i + 1)), &text)?;
        let config = Config::parse(&text)?;
        let board = StatusBoard::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        nodes.push(tokio::spawn(crate::node::run_until(
            config,
            board.clone(),
            stop_rx.clone(),
            Some(tx),
        )));
        let addr = rx.await.context("node did not start")?;
        urls.push(format!("http://{addr}"));
        boards.push(board);
    }

    let mut ctrl_c = Box::pin(crate::signals::terminated());
    let outcome: Result<()> = async {
        wait_synced(&boards, first.seq, &mut ctrl_c).await?;
        // Not Release yet: a client that fetched it stays on this snapshot
        // for the grace window (design.md "Consistency for clients").
        check_served(&urls, &tree, dir, args.exit_when_synced, false).await?;
        // 5. A second release: one file changed, one added.
        std::fs::write(tree.join("pool/main/h/hello/hello_2.0_all.deb"), pseudo(99, 300_000))?;
        std::fs::write(tree.join("NEWS"), b"release 2: hello 2.0\n")?;
        let second = {
            let (p, s) = (publish.clone(), Arc::clone(&signer));
            tokio::task::spawn_blocking(move || crate::origin::publish_logged(&p, &s)).await??
        };
        let before: Vec<u64> = boards.iter().map(downloaded).collect();
        wait_synced(&boards, second.seq, &mut ctrl_c).await?;
        check_served(&urls, &tree, dir, args.exit_when_synced, true).await?;
        for (i, b) in boards.iter().enumerate() {
            println!(
                "node{}        release {} in place; it received {} for it (changed files only; peers and origin shared the work)",
                i + 1,
                second.seq,
                crate::node::human(downloaded(b).saturating_sub(before[i]))
            );
        }
        println!();
        for (i, u) in urls.iter().enumerate() {
            println!("node{}  {u}/{CHANNEL}/   status {u}/-/status", i + 1);
        }
        if args.exit_when_synced {
            return Ok(());
        }
        println!("\nserving; press Ctrl-C to stop");
        (&mut ctrl_c).await;
        Ok(())
    }
    .await;
    let _ = stop_tx.send(true);
    for n in nodes {
        if let Ok(Err(e)) = n.await {
            tracing::error!("{e:#}");
        }
    }
    if let Ok(Err(e)) = origin.await {
        tracing::error!("{e:#}");
    }
    outcome
}

fn downloaded(b: &StatusBoard) -> u64 {
    b.snapshot().channels.first().map_or(0, |c| c.downloaded)
}

/// Waits until every node serves `seq`, printing progress.
async fn wait_synced(
    boards: &[StatusBoard],
    seq: u64,
    ctrl_c: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
) -> Result<()> {
    let started = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(10);
    loop {
        let states: Vec<serve::status::ChannelStatus> = boards
            .iter()
            .filter_map(|b| b.snapshot().channels.first().cloned())
            .collect();
        let done = states
            .iter()
            .all(|c| c.seq == Some(seq) && c.state == "synced");
        if done || last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let line: Vec<String> = states
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    format!(
                        "node{} {} {}/{} files {} peers",
                        i + 1,
                        if c.seq == Some(seq) {
                            c.state.as_str()
                        } else {
                            "waiting"
                        },
                        c.files_done,
                        c.files_total,
                        c.peers
                    )
                })
                .collect();
            println!("release {seq}: {}", line.join(" | "));
        }
        if done {
            return Ok(());
        }
        if let Some(e) = states.iter().find_map(|c| c.last_error.clone())
            && started.elapsed() > Duration::from_secs(20)
        {
            bail!("a node reports: {e}");
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the nodes did not sync release {seq} within 5 minutes");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = ctrl_c.as_mut() => bail!("interrupted"),
        }
    }
}

/// Each node's served tree equals the origin's: every file fetched over
/// HTTP with curl (when `strict`; the interactive demo skips it).
async fn check_served(
    urls: &[String],
    tree: &Path,
    dir: &Path,
    strict: bool,
    with_release: bool,
) -> Result<()> {
    if !strict {
        return Ok(());
    }
    let files: Vec<PathBuf> = walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| with_release || e.file_name() != "Release")
        .map(|e| e.path().to_path_buf())
        .collect();
    let client = dir.join("fetched");
    for u in urls {
        for f in &files {
            let rel = f.strip_prefix(tree)?.to_string_lossy().into_owned();
            let url = format!("{u}/{CHANNEL}/{rel}");
            let out = tokio::process::Command::new("curl")
                .args(["-sSf", "-o"])
                .arg(&client)
                .arg(&url)
                .status()
                .await
                .context("run curl")?;
            if !out.success() || std::fs::read(&client)? != std::fs::read(f)? {
                bail!("{url} does not serve the published {rel}");
            }
        }
    }
    let _ = std::fs::remove_file(&client);
    println!(
        "checked      every file of the tree, byte for byte, from each of {} nodes over HTTP",
        urls.len()
    );
    Ok(())
}

fn count_files(tree: &Path) -> usize {
    walkdir::WalkDir::new(tree)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .count()
}

/// Deterministic bytes.
fn pseudo(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A small tree shaped like an apt repository. Returns its size.
fn make_tree(tree: &Path) -> Result<u64> {
    let files: &[(&str, usize)] = &[
        ("dists/demo/Release", 1_200),
        ("dists/demo/main/binary-amd64/Packages", 9_000),
        ("dists/demo/main/binary-armhf/Packages", 8_500),
        ("pool/main/h/hello/hello_1.0_all.deb", 250_000),
        ("pool/main/h/hello/hello_2.0_all.deb", 260_000),
        ("pool/main/b/big/big_1.0_amd64.deb", 6_000_000),
        ("pool/main/b/big/big_1.0_armhf.deb", 5_500_000),
        ("pool/main/t/tiny/tiny_0.1_all.deb", 3_000),
        ("pool/main/e/empty/EMPTY", 0),
        ("README", 700),
    ];
    let mut total = 0;
    for (i, (p, len)) in files.iter().enumerate() {
        let path = tree.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, pseudo(i as u64 + 1, *len))?;
        total += *len as u64;
    }
    // Debian mirrors carry suite aliases as symlinks.
    std::os::unix::fs::symlink("demo", tree.join("dists/stable"))?;
    Ok(total)
}
