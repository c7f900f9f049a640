//! A real apt repository synced origin → node through swarmsync, read by
//! the real apt-get (issue 5's apt acceptance points).
//!
//! The processes are the shipped binary (`swarmsync publish` as a
//! long-running origin, `publish --once` as the cron hook, `swarmsync run`
//! as the node), on loopback ports found by binding to port 0, so what is
//! tested is what a mirror operator runs. apt-get reads no system
//! configuration (APT_CONFIG with its own Dir::Etc, state and cache; the
//! machine's own configuration may relax checks) and exits 0 on many
//! fallbacks, so every `E:`, `W:`, `N:`, `Err:` or `Ign:` line fails.
//!
//! "Only changed files cross the network" is counted with the node's own
//! `downloaded` figure (status.json) against the distinct new contents of
//! the subset, in whole pieces as the peer wire moves them; unchanged files
//! must stay the same hard-linked objects. The 100-switch loop is a test of
//! its own so CI can time it (about 2.5 to 3.5 minutes on 2 cores).
//!
//! The harness (processes killed on drop, the status reader, the store
//! walk) is shared with sync_rpm. `SYNC_TEST_NODE_LOG` sets the node's
//! SWARMSYNC_LOG filter (e.g. `debug`) when a failure needs more detail.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serve::status::{ChannelStatus, Status};

use crate::common::{Run, run_within};

const BIN: &str = env!("CARGO_BIN_EXE_swarmsync");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/fixtures");
/// v2's smallest piece, so small changed files cost little on the wire
/// (each file's last piece is padded to a whole piece there).
const PIECE: u64 = 16 * 1024;
/// Time allowed for a release to reach the node and be switched to.
const SYNC_LIMIT: Duration = Duration::from_secs(90);

/// A child process, killed and reaped when dropped; its output goes to a
/// log file shown when something fails.
pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = no_proxy(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The last part of the log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let from = text.len().saturating_sub(12_000);
        format!(
            "--- {} log (tail) ---\n{}",
            self.name,
            String::from_utf8_lossy(&text[from..])
        )
    }

    /// The whole log.
    pub(crate) fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Panics (with the log) if the process has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited: {status}\n{}", self.name, self.log_tail());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the gpg-agent of a GNUPGHOME when dropped.
pub(crate) struct GpgAgent(pub(crate) PathBuf);

impl Drop for GpgAgent {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.0)
            .args(["--kill", "all"])
            .output();
    }
}

fn no_proxy(cmd: &mut Command) -> &mut Command {
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command to completion within `limit`; it must succeed.
pub(crate) fn run_ok(cmd: &mut Command, limit: Duration) -> Run {
    run_within(no_proxy(cmd), limit).ok()
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe port")
        .port()
}

/// GET over plain HTTP/1.0 (no chunking); the status and body.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    Ok((code, raw[end + 4..].to_vec()))
}

/// What a test needs to know to build a node's configuration.
pub(crate) struct ChannelSpec {
    /// Channel name (also the origin's web seed path).
    pub(crate) name: &'static str,
    /// URL prefix on the node.
    pub(crate) mount: &'static str,
    /// The `[channel.subset]` table's body.
    pub(crate) subset: &'static str,
}

/// An origin (`swarmsync publish`, long-running) and a node (`swarmsync
/// run`) following it, both on loopback.
pub(crate) struct Swarm {
    pub(crate) data: PathBuf,
    pub(crate) node_http: SocketAddr,
    channel: &'static str,
    mount: &'static str,
    publish_args: Vec<String>,
    // Dropped (killed) node first, then origin.
    node: Proc,
    origin: Proc,
}

impl Swarm {
    /// Starts the origin on `tree` (which must hold the first tree) and the
    /// node, and waits until the node serves the first release.
    pub(crate) fn start(work: &Path, tree: &Path, spec: &ChannelSpec) -> (Swarm, ChannelStatus) {
        let key = work.join("origin.key");
        let keygen = run_ok(
            Command::new(BIN).arg("keygen").arg("--out").arg(&key),
            Duration::from_secs(30),
        );
        let public = keygen.stdout.trim().to_owned();
        let origin_http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let origin_peer = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let publish_args: Vec<String> = vec![
            "publish".into(),
            "--key".into(),
            key.display().to_string(),
            "--channel".into(),
            spec.name.into(),
            "--tree".into(),
            tree.display().to_string(),
            "--state".into(),
            work.join("origin-state").display().to_string(),
            "--listen".into(),
            origin_peer.to_string(),
            "--http".into(),
            origin_http.to_string(),
            "--expires".into(),
            "1d".into(),
            "--piece-size".into(),
            PIECE.to_string(),
        ];
        let mut origin = Proc::spawn(
            "origin",
            Command::new(BIN)
                .args(&publish_args)
                .env("SWARMSYNC_LOG", "info"),
            work.join("origin.log"),
        );
        let feed = format!("/-/releases/{}", spec.name);
        let started = Instant::now();
        loop {
            origin.check_alive();
            if matches!(http_get(origin_http, &feed), Ok((200, _))) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the origin's feed did not come up\n{}",
                origin.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let data = work.join("node-data");
        let node_http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "[node]\ndata_dir = {data:?}\npeer_listen = \"127.0.0.1:{peer}\"\n\
             http_listen = \"{node_http}\"\npoll_interval = \"200ms\"\n\n\
             [[channel]]\nname = \"{name}\"\npublic_key = \"{public}\"\n\
             feeds = [\"http://{origin_http}{feed}\"]\nmount = \"{mount}\"\n\n\
             [channel.subset]\n{subset}\n\n\
             [network]\nlsd = false\n\n[leds]\nbackend = \"none\"\n",
            data = data.display().to_string(),
            peer = free_port(),
            name = spec.name,
            mount = spec.mount,
            subset = spec.subset,
        );
        let config_path = work.join("swarmsync.toml");
        std::fs::write(&config_path, config).expect("write node config");
        let node = Proc::spawn(
            "node",
            Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .env(
                    "SWARMSYNC_LOG",
                    std::env::var("SYNC_TEST_NODE_LOG").unwrap_or_else(|_| "info".into()),
                ),
            work.join("node.log"),
        );
        let mut swarm = Swarm {
            data,
            node_http,
            channel: spec.name,
            mount: spec.mount,
            publish_args,
            node,
            origin,
        };
        let first = swarm.wait_switch(0);
        (swarm, first)
    }

    /// The node's URL of the channel's mount.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{}", self.node_http, self.mount)
    }

    /// The node's store of the channel.
    pub(crate) fn store(&self) -> PathBuf {
        self.data.join(self.channel)
    }

    /// Both logs, for failure messages.
    pub(crate) fn logs(&self) -> String {
        format!("{}\n{}", self.origin.log_tail(), self.node.log_tail())
    }

    /// Prints where the node's downloads came from (peers, web seeds,
    /// duplicates): the figures behind a byte count that went over.
    pub(crate) fn print_downloads(&self) {
        for l in self.node.log_text().lines() {
            if l.contains("download complete") {
                eprintln!("node: {l}");
            }
        }
    }

    /// Fails if the node logged a web seed problem: the origin's web seed
    /// must always serve the tree of the release it announces.
    pub(crate) fn check_web_seed_clean(&self) {
        let log = self.node.log_text();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && l.contains("web seed"))
            .collect();
        assert!(
            bad.is_empty(),
            "the node had trouble with the origin's web seed:\n{}",
            bad.join("\n")
        );
    }

    /// GETs a file outside the subset from the node (fetch-on-miss) and
    /// compares it with the origin's tree.
    pub(crate) fn check_fetch_on_miss(&self, tree: &Path, rel: &str) {
        let (code, body) = http_get(self.node_http, &format!("{}/{rel}", self.mount))
            .unwrap_or_else(|e| panic!("GET {rel} from the node: {e}"));
        assert_eq!(
            code,
            200,
            "fetch-on-miss of {rel} (outside the subset)\n{}",
            self.logs()
        );
        let want = std::fs::read(tree.join(rel)).expect("tree file");
        assert!(
            body == want,
            "fetch-on-miss of {rel}: not the origin's bytes"
        );
    }

    /// `publish --once` on the origin's state, as a cron hook would.
    pub(crate) fn publish_once(&mut self) {
        let run = run_within(
            no_proxy(
                Command::new(BIN)
                    .args(&self.publish_args)
                    .arg("--once")
                    .env("SWARMSYNC_LOG", "warn"),
            ),
            Duration::from_secs(60),
        );
        assert_eq!(
            run.code,
            Some(0),
            "publish --once failed\n{}\n{}\n{}",
            run.stdout,
            run.stderr,
            self.logs()
        );
    }

    /// The node's channel status from `/-/status.json`.
    pub(crate) fn status(&self) -> Option<ChannelStatus> {
        let (code, body) = http_get(self.node_http, "/-/status.json").ok()?;
        if code != 200 {
            return None;
        }
        Status::from_json(&body).ok()?.channels.into_iter().next()
    }

    /// Waits until the node serves a release newer than `after`, synced.
    pub(crate) fn wait_switch(&mut self, after: u64) -> ChannelStatus {
        let started = Instant::now();
        let mut last = None;
        loop {
            self.node.check_alive();
            self.origin.check_alive();
            if let Some(c) = self.status() {
                if c.seq.is_some_and(|s| s > after) && c.state == "synced" {
                    return c;
                }
                last = Some(c);
            }
            assert!(
                started.elapsed() < SYNC_LIMIT,
                "the node did not switch past release {after} within {SYNC_LIMIT:?}; last status {last:#?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every regular file of the node's store (objects, partials,
    /// snapshots, anything), by content.
    pub(crate) fn stored_contents(&self) -> HashSet<Vec<u8>> {
        walk_files(&self.store())
            .into_values()
            .map(|p| std::fs::read(p).expect("read a stored file"))
            .collect()
    }

    /// The files of the snapshot `current` points at: path in the tree →
    /// content.
    pub(crate) fn served_tree(&self) -> BTreeMap<String, Vec<u8>> {
        let current = self.store().join("current");
        let dir = std::fs::canonicalize(&current).expect("current snapshot");
        walk_files(&dir)
            .into_iter()
            .map(|(rel, p)| (rel, std::fs::read(p).expect("read a served file")))
            .collect()
    }
}

/// Regular files under `dir` (symlinks not followed): relative path →
/// full path.
pub(crate) fn walk_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, p);
            }
        }
    }
    out
}

/// What a content-addressed sync must transfer to go from `old` to `new`:
/// the distinct contents of `new` that `old` does not hold.
pub(crate) struct Changed {
    /// Their bytes.
    pub(crate) bytes: u64,
    /// How many.
    pub(crate) files: usize,
}

pub(crate) fn changed(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, Vec<u8>>) -> Changed {
    let had: HashSet<&Vec<u8>> = old.values().collect();
    let fresh: HashSet<&Vec<u8>> = new.values().filter(|c| !had.contains(c)).collect();
    Changed {
        bytes: fresh.iter().map(|c| c.len() as u64).sum(),
        files: fresh.len(),
    }
}

/// Checks the bytes a node downloaded for a republish: at most twice what
/// changed (padding is never fetched; the slack is for endgame duplicates
/// and a copy fetched twice), and
/// less than the first, full sync of the subset took. Files present in
/// both snapshots must be the same objects (hard links, never rewritten).
pub(crate) fn check_incremental(
    what: &str,
    store: &Path,
    old_seq: u64,
    new_seq: u64,
    first_sync: u64,
    moved: u64,
    c: &Changed,
) {
    use std::os::unix::fs::MetadataExt;
    eprintln!(
        "{what} republish: {moved} bytes downloaded for {} changed bytes in {} files; the first sync took {first_sync}",
        c.bytes, c.files
    );
    assert!(c.files > 0, "{what}: the republished tree changed nothing");
    assert!(
        moved <= 2 * c.bytes,
        "{what}: {moved} bytes downloaded for {} bytes of changed files",
        c.bytes,
    );
    assert!(
        moved < first_sync,
        "{what}: {moved} bytes downloaded, not less than the full sync's {first_sync}"
    );
    let old = walk_files(&store.join("snapshots").join(old_seq.to_string()));
    let new = walk_files(&store.join("snapshots").join(new_seq.to_string()));
    let mut same = 0;
    for (rel, path) in &new {
        let Some(before) = old.get(rel) else { continue };
        let (a, b) = (
            std::fs::metadata(before).expect("old snapshot file"),
            std::fs::metadata(path).expect("new snapshot file"),
        );
        if std::fs::read(before).ok() == std::fs::read(path).ok() {
            same += 1;
            assert_eq!(
                (a.dev(), a.ino()),
                (b.dev(), b.ino()),
                "{what}: unchanged {rel} is a new file in the new snapshot"
            );
        }
    }
    assert!(same > 0, "{what}: no file carried over between snapshots");
}

/// Copies `from`'s tree into `to` as hard links (replacing `to`'s
/// content): a republished tree with fresh directory entries but the
/// same files, as ftpsync's rename dance leaves it.
pub(crate) fn link_tree(from: &Path, to: &Path, dirs: &[&str]) {
    for d in dirs {
        let target = to.join(d);
        if target.exists() {
            std::fs::remove_dir_all(&target).expect("remove old tree");
        }
    }
    let mut cp = Command::new("cp");
    cp.arg("-al");
    for d in dirs {
        cp.arg(from.join(d));
    }
    cp.arg(to);
    run_ok(&mut cp, Duration::from_secs(30));
}

// ---- apt ----

fn apt_fixture(out: &Path, keys: &Path, generation: u8) {
    run_ok(
        Command::new("bash")
            .arg(format!("{FIXTURES}/apt-repo.sh"))
            .arg(out)
            .arg(keys)
            .arg(generation.to_string()),
        Duration::from_secs(180),
    );
}

const APT_SPEC: ChannelSpec = ChannelSpec {
    name: "debian",
    mount: "/debian",
    subset: "kind = \"apt\"\nsuites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]",
};

/// An apt-get with private state, configuration and sources (the node's
/// `stable main`, signed by the fixture key), architecture amd64.
struct Apt {
    config: PathBuf,
    cwd: PathBuf,
}

impl Apt {
    fn new(dir: &Path, url: &str, key: &Path) -> Apt {
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "log",
            "dl",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir apt dirs");
        }
        std::fs::write(dir.join("state/status"), "").expect("dpkg status");
        std::fs::write(dir.join("etc/sources.list"), "").expect("sources.list");
        std::fs::write(
            dir.join("etc/sources.list.d/swarm.sources"),
            format!(
                "Types: deb\nURIs: {url}\nSuites: stable\nComponents: main\nSigned-By: {}\n",
                key.display()
            ),
        )
        .expect("sources");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let d = dir.display();
        let mut conf = format!(
            "Dir \"/\";\nDir::State \"{d}/state\";\nDir::State::status \"{d}/state/status\";\n\
             Dir::Cache \"{d}/cache\";\nDir::Log \"{d}/log\";\nDir::Etc \"{d}/etc\";\n\
             Dir::Etc::main \"/dev/null\";\nDir::Etc::parts \"{d}/etc/apt.conf.d\";\n\
             Dir::Etc::sourcelist \"{d}/etc/sources.list\";\n\
             Dir::Etc::sourceparts \"{d}/etc/sources.list.d\";\n\
             Dir::Etc::preferences \"{d}/etc/preferences\";\n\
             Dir::Etc::preferencesparts \"{d}/etc/preferences.d\";\n\
             Dir::Etc::trusted \"{d}/etc/trusted.gpg\";\n\
             Dir::Etc::trustedparts \"{d}/etc/trusted.gpg.d\";\n\
             APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\n\
             Acquire::Languages \"none\";\nAcquire::http::Proxy \"DIRECT\";\n\
             Acquire::Retries \"0\";\nAcquire::http::Timeout \"20\";\n"
        );
        if root {
            conf.push_str("APT::Sandbox::User \"root\";\n");
        }
        let config = dir.join("apt.conf");
        std::fs::write(&config, conf).expect("apt.conf");
        Apt {
            config,
            cwd: dir.join("dl"),
        }
    }

    /// Runs apt-get; the combined output, or why it is not clean (a
    /// non-zero exit or a warning-class line).
    fn try_get(&self, args: &[&str]) -> Result<String, String> {
        let run = run_within(
            no_proxy(
                Command::new("apt-get")
                    .current_dir(&self.cwd)
                    .env("APT_CONFIG", &self.config)
                    .env("LC_ALL", "C")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(args),
            ),
            Duration::from_secs(60),
        );
        let text = format!("{}{}", run.stdout, run.stderr);
        if run.code != Some(0) {
            return Err(format!("apt-get {args:?} exited {:?}\n{text}", run.code));
        }
        let bad = text.lines().find(|l| {
            let l = l.trim_start();
            ["E:", "W:", "N:", "Err:", "Ign:"]
                .iter()
                .any(|p| l.starts_with(p))
                || l.contains("Hash Sum mismatch")
        });
        match bad {
            Some(line) => Err(format!("apt-get {args:?}: {line}\n{text}")),
            None => Ok(text),
        }
    }

    fn get(&self, args: &[&str], swarm: &Swarm) -> String {
        self.try_get(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", swarm.logs()))
    }
}

/// Packages of the fixture that a `stable main amd64` subset leaves out.
fn outside_apt_subset(path: &str) -> bool {
    path.ends_with(".deb")
        && (path.starts_with("pool/contrib/")
            || path.starts_with("pool/updates/")
            || path.ends_with("_arm64.deb"))
}

/// Publish, sync a subset, apt-get update + download from the node; then
/// republish with packages added and removed and count the bytes.
#[test]
fn apt_subset_sync_then_incremental_republish() {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path();
    let keys = work.join("keys");
    let tree = work.join("tree");
    apt_fixture(&tree, &keys, 1);
    let _agent = GpgAgent(keys.join("gnupg"));
    let archive_key = keys.join("archive-key.gpg");

    let (mut swarm, first) = Swarm::start(work, &tree, &APT_SPEC);
    let seq1 = first.seq.expect("installed release");

    // The subset only: every package of stable/main for amd64 and all is
    // on the node's disk, nothing else is (objects, partials, snapshots).
    let stored = swarm.stored_contents();
    let mut inside = 0;
    for (rel, path) in walk_files(&tree) {
        if !rel.ends_with(".deb") {
            continue;
        }
        let content = std::fs::read(path).expect("read tree file");
        if outside_apt_subset(&rel) {
            assert!(
                !stored.contains(&content),
                "{rel} is outside the subset but on the node's disk"
            );
        } else {
            inside += 1;
            assert!(
                stored.contains(&content),
                "{rel} is in the subset but not stored"
            );
        }
    }
    assert_eq!(inside, 5, "the fixture's stable/main amd64+all packages");
    let served = swarm.served_tree();
    assert!(
        !served
            .keys()
            .any(|p| p.starts_with("pool/contrib/") || p.starts_with("pool/updates/")),
        "the snapshot holds files outside the subset: {:?}",
        served.keys().collect::<Vec<_>>()
    );

    // The real apt-get against the node.
    let apt = Apt::new(&work.join("apt"), &swarm.url(), &archive_key);
    let update = apt.get(&["update"], &swarm);
    assert!(update.contains("InRelease"), "{update}");
    let dl = apt.get(
        &["download", "swarm-tool", "hello-swarm", "swarm-data"],
        &swarm,
    );
    for (file, pool) in [
        ("swarm-tool_1.0+1_amd64.deb", "pool/main/s/swarm-tool"),
        ("hello-swarm_1.1_amd64.deb", "pool/main/h/hello-swarm"),
        ("swarm-data_1.0_all.deb", "pool/main/s/swarm-data"),
    ] {
        let got = std::fs::read(apt.cwd.join(file))
            .unwrap_or_else(|e| panic!("apt-get download left no {file}: {e}\n{dl}"));
        let want = std::fs::read(tree.join(pool).join(file)).expect("tree deb");
        assert!(
            got == want,
            "{file} from the node differs from the origin's"
        );
    }

    // Generation 2: swarm-newcomer added to main, contrib-data removed,
    // indexes and signatures regenerated; the rest byte-identical.
    let before = swarm.status().expect("status").downloaded;
    apt_fixture(&tree, &keys, 2);
    swarm.publish_once();
    let second = swarm.wait_switch(seq1);
    let new_served = swarm.served_tree();
    assert!(
        new_served.contains_key("pool/main/s/swarm-newcomer/swarm-newcomer_1.0_all.deb"),
        "the new package is not served: {:?}",
        new_served.keys().collect::<Vec<_>>()
    );
    let c = changed(&served, &new_served);
    let moved = second.downloaded.saturating_sub(before);
    swarm.print_downloads();
    check_incremental(
        "apt",
        &swarm.store(),
        seq1,
        second.seq.expect("installed release"),
        first.downloaded,
        moved,
        &c,
    );
    apt.get(&["update"], &swarm);
    apt.get(&["download", "swarm-newcomer"], &swarm);
    let got = std::fs::read(apt.cwd.join("swarm-newcomer_1.0_all.deb")).expect("newcomer deb");
    let want = std::fs::read(tree.join("pool/main/s/swarm-newcomer/swarm-newcomer_1.0_all.deb"))
        .expect("tree newcomer");
    assert!(got == want, "swarm-newcomer from the node differs");
    swarm.check_web_seed_clean();
    // Outside the subset: fetched from the swarm when a client asks.
    swarm.check_fetch_on_miss(
        &tree,
        "pool/contrib/c/contrib-tool/contrib-tool_0.5_arm64.deb",
    );
}

/// Replaces each suite's Release date with now and re-signs InRelease and
/// Release.gpg (new files: the linked generation trees stay untouched), as
/// an archive does at every publication; apt does not expect a Release
/// older than the one it has.
fn redate_and_sign(tree: &Path, gnupg: &Path) {
    let now = run_ok(
        Command::new("date").args(["-u", "-R"]),
        Duration::from_secs(10),
    );
    let now = now.stdout.trim();
    for suite in ["stable", "stable-updates"] {
        let dir = tree.join("dists").join(suite);
        let text = std::fs::read_to_string(dir.join("Release")).expect("Release");
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("Date: ") {
                    format!("Date: {now}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        for f in ["Release", "InRelease", "Release.gpg"] {
            std::fs::remove_file(dir.join(f)).expect("remove old Release file");
        }
        std::fs::write(dir.join("Release"), text).expect("write Release");
        for (mode, out) in [
            ("--clearsign", "InRelease"),
            ("--detach-sign", "Release.gpg"),
        ] {
            let mut gpg = Command::new("gpg");
            gpg.env("GNUPGHOME", gnupg)
                .args([
                    "--batch",
                    "--quiet",
                    "--yes",
                    "--digest-algo",
                    "SHA512",
                    "--armor",
                ])
                .arg(mode)
                .arg("--output")
                .arg(dir.join(out))
                .arg(dir.join("Release"));
            run_ok(&mut gpg, Duration::from_secs(30));
        }
    }
}

/// Switches the node runs through while apt-get update loops.
const SWITCHES: u64 = 100;

/// apt-get update in a loop while the origin republishes ≥ 100 times
/// (two package sets in turn, `publish --once` each time, each switch
/// awaited): zero "Hash Sum mismatch", zero apt errors or warnings.
#[test]
fn apt_update_loop_across_100_switches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path();
    let keys = work.join("keys");
    let generations = [work.join("gen1"), work.join("gen2")];
    apt_fixture(&generations[0], &keys, 1);
    apt_fixture(&generations[1], &keys, 2);
    let gnupg = keys.join("gnupg");
    let _agent = GpgAgent(gnupg.clone());
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir tree");
    link_tree(&generations[0], &tree, &["dists", "pool"]);
    redate_and_sign(&tree, &gnupg);

    let (mut swarm, first) = Swarm::start(work, &tree, &APT_SPEC);
    let apt = Arc::new(Apt::new(
        &work.join("apt"),
        &swarm.url(),
        &keys.join("archive-key.gpg"),
    ));
    apt.get(&["update"], &swarm);

    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (apt, stop) = (Arc::clone(&apt), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut runs = 0u32;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                runs += 1;
                if let Err(e) = apt.try_get(&["update"]) {
                    failures.push(e);
                }
            }
            (runs, failures)
        })
    };
    // Stops the loop even if the switching below panics.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(Arc::clone(&stop));

    let started = Instant::now();
    let mut seq = first.seq.expect("installed release");
    let mut slowest = Duration::ZERO;
    for i in 0..SWITCHES {
        let t = Instant::now();
        let from = &generations[usize::from(i % 2 == 0)];
        link_tree(from, &tree, &["dists", "pool"]);
        redate_and_sign(&tree, &gnupg);
        swarm.publish_once();
        let st = swarm.wait_switch(seq);
        seq = st.seq.expect("installed release");
        slowest = slowest.max(t.elapsed());
    }
    let took = started.elapsed();
    drop(stopper);
    let (runs, failures) = looper.join().expect("apt loop thread");
    eprintln!(
        "apt loop: {SWITCHES} switches in {:.1} s (slowest {:.1} s), {runs} apt-get update runs during them",
        took.as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} apt-get update runs failed; the first:\n{}\n{}",
        failures.len(),
        failures[0],
        swarm.logs()
    );
    assert!(
        runs >= 10,
        "only {runs} apt-get update runs during the switches"
    );
    // And the node still serves a consistent repository.
    apt.get(&["update"], &swarm);
    swarm.check_web_seed_clean();
}
