//! Issue 5 acceptance: the node survives SIGKILL during sync, snapshot
//! switch and garbage collection, and a full disk during a sync.
//!
//! Crash test: an origin state made by `swarmsync publish --once` is served
//! by a test HTTP server (feed, torrents and the web seed, the node's only
//! source), so the test sees every byte range the node asks for. A node
//! (`swarmsync run`) is started and SIGKILLed at random moments (seeded;
//! the seed is printed, `SWARMSYNC_CRASH_SEED` replays it), at least 200
//! times (`SWARMSYNC_CRASH_CYCLES`). Whenever the node has caught up, the
//! origin publishes the next release (half the files change), so kills
//! land in syncs, switches and collections. After every kill:
//! `swarmsync verify --state` passes; `current` is exactly one complete
//! published snapshot; and no byte range the next run asks the web seed
//! for lies in a piece the store had already verified (read from the store
//! itself after the kill), which is "no verified piece is downloaded
//! again", checked piece by piece (a byte total could not tell a verified
//! piece fetched twice from unverified bytes lost at a kill; the total is
//! printed and only loosely bounded).
//!
//! Disk-full test: the node's data_dir is a 6 MiB tmpfs in a mount
//! namespace of its own (`unshare -m`, so root only; skipped with a message
//! otherwise). A filler file leaves too little room for the second release:
//! the sync fails with a clear error in status.json and the log, the first
//! snapshot stays served; once the filler is removed the retry completes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::Store;

use crate::common::{fs_free, is_root};
use torrent::hash::Sha256;

use crate::sync_attacks::{
    CHANNEL, HttpServer, Node, Origin, PIECE, Reply, SYNC, current_seq, pseudo, read_tree,
    wait_status, write_tree,
};

const SEED_ENV: &str = "SWARMSYNC_CRASH_SEED";
const CYCLES_ENV: &str = "SWARMSYNC_CRASH_CYCLES";

/// splitmix64, for the kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Files of release `n`: six pool files, the last three of release n-1
/// kept, plus an index file that changes every time (as a Release file
/// does). File contents never come back once dropped.
fn crash_tree(seed: u64, n: u64) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (3 * n..3 * n + 6)
        .map(|id| {
            let len = 1 + (seed ^ id.wrapping_mul(0x2545_f491)) % (96 * 1024);
            (
                format!("pool/d{}/f{id}.deb", id % 3),
                pseudo(seed ^ (id << 8), len as usize),
            )
        })
        .collect();
    files.push(("dists/Release".into(), pseudo(seed ^ n ^ 0xabcd, 1500)));
    files.sort();
    files
}

/// The origin's state served by a test HTTP server: feed, torrents, web seed.
fn origin_server(state: &Path) -> HttpServer {
    let state = state.join(CHANNEL);
    HttpServer::start(Arc::new(move |path: &str| {
        let file = if path == format!("/-/releases/{CHANNEL}") {
            state.join("release")
        } else if let Some(t) = path.strip_prefix(&format!("/-/torrents/{CHANNEL}/")) {
            state.join("torrents").join(t)
        } else if let Some(p) = path.strip_prefix(&format!("/{CHANNEL}/")) {
            if p.split('/').any(|c| c == ".." || c.is_empty()) {
                return Reply::NotFound;
            }
            state.join("current").join(CHANNEL).join(p)
        } else {
            return Reply::NotFound;
        };
        match std::fs::read(file) {
            Ok(b) => Reply::Bytes(b),
            Err(_) => Reply::NotFound,
        }
    }))
}

/// Runs `swarmsync verify --state`; panics with its output on failure.
fn verify(store: &Path, ctx: &str) {
    let out = Command::new(crate::sync_attacks::bin())
        .args(["verify", "--state"])
        .arg(store)
        .output()
        .expect("run swarmsync verify");
    assert!(
        out.status.success(),
        "{ctx}: swarmsync verify failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Path in the tree -> (pieces root, length) for release `seq`.
fn roots(origin: &Origin, seq: u64) -> HashMap<String, (Sha256, u64)> {
    origin
        .torrent(seq)
        .info
        .files
        .iter()
        .filter(|f| !f.attr.pad && f.length > 0)
        .filter_map(|f| Some((f.path.as_str().to_owned(), (f.pieces_root?, f.length))))
        .collect()
}

/// Pieces the store holds verified, per file root (a complete object: all).
fn verified(
    store: &Path,
    files: &HashMap<Sha256, u64>,
    ctx: &str,
) -> HashMap<Sha256, BTreeSet<u64>> {
    let st = Store::open_inspect(store).unwrap_or_else(|e| panic!("{ctx}: open store: {e}"));
    let mut out = HashMap::new();
    for (root, len) in files {
        let set: BTreeSet<u64> = if st.has_object(root) {
            (0..len.div_ceil(PIECE)).collect()
        } else {
            st.verified_pieces(root)
                .unwrap_or_default()
                .into_iter()
                .map(u64::from)
                .collect()
        };
        if !set.is_empty() {
            out.insert(*root, set);
        }
    }
    out
}

fn num_env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn node_survives_sigkill_during_sync_switch_and_gc() {
    let seed = num_env(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let cycles = num_env(CYCLES_ENV).unwrap_or(200);
    eprintln!("sync_crash: seed {seed} (rerun with {SEED_ENV}={seed}), {cycles} cycles");
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut origin = Origin::new(tmp.path());
    let server = origin_server(&origin.state);
    origin.url = Some(format!("http://{}", server.addr));
    let mut rng = Rng(seed);

    // Release number 1 (its seq is the origin's choice), and what every
    // published release looks like.
    let mut number = 1;
    write_tree(&origin.tree, &crash_tree(seed, number));
    let mut latest = origin.publish_once();
    let mut published = vec![latest];
    let mut trees: HashMap<u64, Vec<(String, Vec<u8>)>> = HashMap::new();
    trees.insert(latest, crash_tree(seed, number));
    let mut by_path: HashMap<u64, HashMap<String, (Sha256, u64)>> = HashMap::new();
    by_path.insert(latest, roots(&origin, latest));
    let mut all_files: HashMap<Sha256, u64> = by_path[&latest].values().copied().collect();

    let mut node = Node::new(
        tmp.path(),
        &origin.public,
        &server.url(&format!("/-/releases/{CHANNEL}")),
        &[],
    );
    let store = node.store();
    let mut before: HashMap<Sha256, BTreeSet<u64>> = HashMap::new();
    let mut seen_served = 0;
    let mut redownloaded: Vec<String> = Vec::new();
    let mut fetched_bytes = 0u64;
    let mut kills_by_event: HashMap<&str, u32> = HashMap::new();
    let mut switches = 0u32;
    let mut phases: HashMap<&str, u32> = HashMap::new();
    let mut last_current = None;

    for run in 0..=cycles {
        let ctx = format!("seed {seed}, run {run}");
        server.tag.store(run, std::sync::atomic::Ordering::SeqCst);
        node.start();
        let p = node.proc.as_mut().expect("node process");
        let spawned = Instant::now();
        if run == cycles {
            // The final run: no kill; it must catch up with `latest`.
            let limit = Instant::now() + SYNC;
            while current_seq(&store) != Some(latest) {
                assert!(
                    Instant::now() < limit,
                    "{ctx}: the node did not reach release {latest}:\n{}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "sync_crash: final run caught up in {:.1?}",
                spawned.elapsed()
            );
            // Give the collection after the switch a moment.
            std::thread::sleep(Duration::from_millis(300));
        } else {
            // Half the kills at a random moment, the others just after the
            // sync starts (within 300 ms) or just after the engine has every
            // file (within 15 ms: snapshot build, switch and GC follow).
            let (event, jitter) = match rng.below(4) {
                0 => ("new release", 300_000),
                1 => ("download complete", 15_000),
                _ => ("", 0),
            };
            if event.is_empty() {
                std::thread::sleep(Duration::from_millis(rng.below(1400)));
                *kills_by_event.entry("random").or_default() += 1;
            } else {
                let limit = Instant::now() + Duration::from_millis(1500);
                while !p.logged_since(0, event) && Instant::now() < limit {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_micros(rng.below(jitter)));
                let hit = p.logged_since(0, event);
                *kills_by_event
                    .entry(if hit { event } else { "timeout" })
                    .or_default() += 1;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("{ctx}: the node exited by itself ({st}):\n{}", p.log());
            }
        }
        p.kill();

        // After the kill: the store is sound and `current` is one whole
        // published snapshot.
        verify(&store, &ctx);
        let cur = current_seq(&store);
        if let Some(c) = cur {
            let want = trees
                .get(&c)
                .unwrap_or_else(|| panic!("{ctx}: current names unpublished release {c}"));
            let got = read_tree(&store.join("current"));
            assert!(
                &got == want,
                "{ctx}: the served tree of release {c} is not the published one: {:?} vs {:?}",
                got.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>(),
                want.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>()
            );
            let frozen = origin
                .state
                .join(CHANNEL)
                .join("trees")
                .join(c.to_string())
                .join(CHANNEL);
            if frozen.is_dir() {
                assert!(
                    read_tree(&frozen) == got,
                    "{ctx}: differs from the origin's frozen tree"
                );
            }
        }
        // Where the kill landed, read from the node's own files.
        let pending: Option<u64> = std::fs::read_to_string(store.join("node").join("pending"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let phase = match pending {
            None => "idle",
            Some(p) if cur == Some(p) => "switched, collecting",
            Some(p) if store.join("snapshots").join(p.to_string()).exists() => "building snapshot",
            Some(_) => "syncing",
        };
        *phases.entry(phase).or_default() += 1;
        if cur != last_current {
            switches += 1;
            last_current = cur;
        }

        // What this run fetched must not include pieces verified before it.
        let served = server.served.lock().expect("served lock").clone();
        let paths = &by_path[&latest];
        for s in served.iter().skip(seen_served) {
            let Some(rel) = s.path.strip_prefix(&format!("/{CHANNEL}/")) else {
                continue;
            };
            let Some(&(root, len)) = paths.get(rel) else {
                continue;
            };
            let (a, b) = s.range.unwrap_or((0, len.saturating_sub(1)));
            let b = b.min(len.saturating_sub(1));
            fetched_bytes += b + 1 - a;
            if let Some(v) = before.get(&root) {
                let again: Vec<u64> = (a / PIECE..=b / PIECE).filter(|p| v.contains(p)).collect();
                if !again.is_empty() {
                    redownloaded.push(format!(
                        "run {} (tag {}): {rel} bytes {a}-{b}: pieces {again:?} were verified",
                        run, s.tag
                    ));
                }
            }
        }
        seen_served = served.len();
        before = verified(&store, &all_files, &ctx);

        // Caught up: publish the next release (switch and GC ahead).
        if cur == Some(latest) && run < cycles {
            number += 1;
            write_tree(&origin.tree, &crash_tree(seed, number));
            let seq = origin.publish_once();
            assert!(seq > latest, "{ctx}: publish");
            latest = seq;
            published.push(latest);
            trees.insert(latest, crash_tree(seed, number));
            by_path.insert(latest, roots(&origin, latest));
            all_files.extend(by_path[&latest].values().copied());
        }
    }

    let distinct: u64 = all_files.values().sum();
    eprintln!(
        "sync_crash: {cycles} kills in {:.1?}: reached release number {number} ({switches} switches seen), \
         kills {kills_by_event:?}, node state at the kills {phases:?}; web seed sent {fetched_bytes} bytes for {distinct} bytes of distinct files",
        started.elapsed()
    );
    // Bytes lost at a kill (fetched, not yet verified and fsynced) are
    // fetched again, so the total is above the distinct bytes, but not far.
    assert!(
        fetched_bytes <= 2 * distinct + (1 << 20),
        "seed {seed}: the web seed sent {fetched_bytes} bytes for {distinct} distinct bytes"
    );
    if cycles >= 50 {
        assert!(
            phases.get("syncing").is_some_and(|&n| n > 0) && phases.len() >= 2,
            "seed {seed}: kills landed in too few states: {phases:?}"
        );
    }
    assert!(
        redownloaded.is_empty(),
        "seed {seed}: verified pieces were downloaded again:\n{}",
        redownloaded.join("\n")
    );
    assert!(
        number >= 5 || cycles < 50,
        "seed {seed}: only {number} releases synced across {cycles} kills"
    );
    // GC ran: objects of releases before the previous one are gone.
    let st = Store::open_inspect(&store).expect("open store");
    let keep: BTreeSet<Sha256> = published
        .iter()
        .rev()
        .take(2)
        .flat_map(|s| by_path[s].values().map(|v| v.0))
        .collect();
    let stale: Vec<&Sha256> = all_files
        .keys()
        .filter(|r| !keep.contains(*r) && st.has_object(r))
        .collect();
    assert!(
        stale.is_empty(),
        "seed {seed}: {} old objects left after GC",
        stale.len()
    );
}

// --- disk full ---------------------------------------------------------------------------

/// Tree of the disk-full tests (here and leds.rs): release 1 is about
/// 1 MiB, release 2 adds about 3 MiB.
pub(crate) fn full_tree(n: u64) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("dists/Release".to_owned(), pseudo(900 + n, 1000)),
        ("pool/base.deb".to_owned(), pseudo(901, 1_000_000)),
    ];
    if n >= 2 {
        files.push(("pool/big1.deb".into(), pseudo(902, 1_500_000)));
        files.push(("pool/big2.deb".into(), pseudo(903, 1_500_000)));
    }
    files
}

/// Room left on the tmpfs for release 2 (which needs 3 MiB): enough for
/// its torrent and the index, so the sync fails writing pieces. (With
/// 16 KiB it fails saving the torrent; the node retries alike.)
pub(crate) const FREE_LEFT: u64 = 256 * 1024;

/// Starts `node` in a mount namespace of its own with a 6 MiB tmpfs on its
/// data_dir (root only); returns where the test reaches that tmpfs
/// (through /proc/PID/root).
pub(crate) fn start_on_small_tmpfs(node: &mut Node) -> PathBuf {
    std::fs::create_dir_all(&node.data).expect("mount point");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=6m swarmsync-test \"$0\" && exec \"$1\" run --config \"$2\"")
        .arg(&node.data)
        .arg(crate::sync_attacks::bin())
        .arg(&node.config);
    node.start_with(cmd);
    let pid = node.proc.as_ref().expect("node").child.id();
    PathBuf::from(format!("/proc/{pid}/root"))
        .join(node.data.strip_prefix("/").expect("absolute data dir"))
}

#[test]
fn node_reports_a_full_disk_keeps_serving_and_resumes() {
    if !is_root() {
        eprintln!(
            "sync_crash: SKIPPED the disk-full test: mounting a small tmpfs needs root (CI runs as root)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut origin = Origin::new(tmp.path());
    let server = origin_server(&origin.state);
    origin.url = Some(format!("http://{}", server.addr));
    write_tree(&origin.tree, &full_tree(1));
    let first = origin.publish_once();

    let mut node = Node::new(
        tmp.path(),
        &origin.public,
        &server.url(&format!("/-/releases/{CHANNEL}")),
        &[],
    );
    let inside = start_on_small_tmpfs(&mut node);

    wait_status(&node, "sync of release 1", SYNC, |c| {
        c.seq == Some(first) && c.state == "synced"
    });
    node.assert_serves(&full_tree(1), "release 1");

    let free = fs_free(&inside);
    let filler = inside.join("filler");
    let fill = free.saturating_sub(FREE_LEFT);
    std::fs::write(&filler, vec![0x5a; fill as usize]).expect("write filler");
    eprintln!("sync_crash: tmpfs had {free} bytes free, filler {fill}");

    write_tree(&origin.tree, &full_tree(2));
    let second = origin.publish_once();
    let lines_before = node.proc.as_ref().map_or(0, |p| p.line_count());
    let st = wait_status(&node, "the disk-full error", SYNC, |c| {
        c.last_error.is_some() && c.state == "error"
    });
    let err = st.last_error.clone().unwrap_or_default();
    eprintln!("sync_crash: disk full: status last_error {err:?}");
    assert!(
        err.contains("No space left") || err.contains("space") || err.contains("full"),
        "the error does not say the disk is full: {err:?}"
    );
    let p = node.proc.as_ref().expect("node");
    assert!(
        p.logged_since(lines_before, "No space left") || p.logged_since(lines_before, "space"),
        "the log does not say the disk is full:\n{}",
        p.log()
    );
    assert_eq!(current_seq(&inside.join(CHANNEL)), Some(first));
    node.assert_serves(&full_tree(1), "disk full");

    // The node retries at each poll while the disk stays full (the index
    // then fails too, not just the piece files); nothing served changes.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(current_seq(&inside.join(CHANNEL)), Some(first));
    node.assert_serves(&full_tree(1), "disk still full");

    // Room again: the next poll retries and completes.
    std::fs::remove_file(&filler).expect("remove filler");
    wait_status(&node, "sync of release 2 after freeing space", SYNC, |c| {
        c.seq == Some(second) && c.state == "synced"
    });
    node.assert_serves(&full_tree(2), "release 2");
    assert_eq!(current_seq(&inside.join(CHANNEL)), Some(second));
    let log = node.log();
    eprintln!(
        "sync_crash: disk full: {} failed attempts logged, {} of them in the index",
        log.lines().filter(|l| l.contains("ERROR")).count(),
        log.lines()
            .filter(|l| l.contains("ERROR") && l.contains("index"))
            .count()
    );
}
