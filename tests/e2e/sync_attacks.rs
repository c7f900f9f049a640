//! Issue 5 acceptance: attacks on a running node are refused with a
//! recorded reason while the served snapshot stays exactly as it was.
//!
//! A real origin (`swarmsync publish`, seeding and serving the torrent and
//! the web seed) publishes two releases; the node's feed, though, is a
//! small HTTP server of this test, so the test decides what the node reads
//! there: the origin's real releases first, then in turn an older release,
//! an expired one, a flipped signature byte, a release signed by a stranger,
//! an answer over the 64 KiB limit, an answer that trickles forever, and a
//! validly signed release whose infohashes name another tree than its
//! torrent. After each: `/-/status.json` records the expected rejection
//! code, `current` still names the installed snapshot and every served file
//! is byte-identical over HTTP. A second test lists a peer that trickles
//! piece data endlessly (tests/interop/badpeer.py `trickle`) and checks the
//! node still completes from the origin.
//!
//! The helpers here (processes killed on drop, the test HTTP server with
//! Range support, origin and node setup) are shared with sync_crash.rs.
//! Everything runs on 127.0.0.1 in temporary directories, every wait has a
//! limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serve::status::{ChannelStatus, Status};

use crate::common::run_within;

pub(crate) const CHANNEL: &str = "mirror";
/// Piece size of every published torrent: small, so small trees have many
/// pieces.
pub(crate) const PIECE: u64 = 16 * 1024;
/// A sync of a few MiB over loopback (debug build, loaded machine).
pub(crate) const SYNC: Duration = Duration::from_secs(90);

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swarmsync")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Deterministic bytes (xorshift).
pub(crate) fn pseudo(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// --- child processes ---------------------------------------------------------------

/// A child process whose stdout and stderr lines are collected as they
/// come; SIGKILLed and reaped on drop.
pub(crate) struct Proc {
    pub what: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
        // stdin stays open until the drop: badpeer.py ends at its EOF.
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for pipe in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("log lock").push(line);
                }
            });
        }
        Proc {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Everything printed so far.
    pub fn log(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    /// Lines printed so far.
    pub fn line_count(&self) -> usize {
        self.lines.lock().expect("log lock").len()
    }

    /// Whether a line from index `from` on contains `needle`.
    pub fn logged_since(&self, from: usize, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .skip(from)
            .any(|l| l.contains(needle))
    }

    /// Waits until a line contains `needle`; panics after `limit`.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.logged_since(0, needle) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}):\n{}", self.what, self.log());
            }
            assert!(
                start.elapsed() < limit,
                "{}: no line with {needle:?} within {limit:?}:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// --- a test HTTP server --------------------------------------------------------------

/// What the test server answers for a path.
#[derive(Clone)]
pub(crate) enum Reply {
    /// 200 with these bytes (206 for a Range request).
    Bytes(Vec<u8>),
    NotFound,
    /// A chunked answer of one byte every 100 ms, forever.
    Trickle,
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub(crate) struct Served {
    pub path: String,
    /// Byte range asked for (inclusive end), if any.
    pub range: Option<(u64, u64)>,
    /// The tag the test had set when the request arrived.
    pub tag: u64,
}

/// An end of a trickled answer: when it started and when the client went
/// away (None while it still reads).
#[derive(Clone, Debug)]
pub(crate) struct TrickleEnd {
    pub started: Instant,
    pub ended: Option<Instant>,
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 (keep-alive, Range) answering from a
/// closure; stops accepting when dropped.
pub(crate) struct HttpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub served: Arc<Mutex<Vec<Served>>>,
    pub trickles: Arc<Mutex<Vec<TrickleEnd>>>,
    pub tag: Arc<AtomicU64>,
}

impl HttpServer {
    pub fn start(handler: Arc<Handler>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test HTTP server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let trickles = Arc::new(Mutex::new(Vec::new()));
        let tag = Arc::new(AtomicU64::new(0));
        let (s, sv, tr, tg) = (
            Arc::clone(&stop),
            Arc::clone(&served),
            Arc::clone(&trickles),
            Arc::clone(&tag),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (h, sv, tr, tg, s) = (
                            Arc::clone(&handler),
                            Arc::clone(&sv),
                            Arc::clone(&tr),
                            Arc::clone(&tg),
                            Arc::clone(&s),
                        );
                        std::thread::spawn(move || {
                            let _ = connection(conn, &*h, &sv, &tr, &tg, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer {
            addr,
            stop,
            served,
            trickles,
            tag,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connection(
    conn: TcpStream,
    handler: &Handler,
    served: &Mutex<Vec<Served>>,
    trickles: &Mutex<Vec<TrickleEnd>>,
    tag: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut range = None;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("range: bytes=") {
                let (a, b) = r.split_once('-').unwrap_or((r, ""));
                range = a
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|a| (a, b.trim().parse::<u64>().ok()));
            }
            if lower == "connection: close" {
                close = true;
            }
        }
        let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
        let reply = handler(&path);
        let asked = range.map(|(a, b)| (a, b.unwrap_or(u64::MAX)));
        served.lock().expect("served lock").push(Served {
            path: path.clone(),
            range: asked,
            tag: tag.load(Ordering::SeqCst),
        });
        match reply {
            Reply::NotFound => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            }
            Reply::Trickle => {
                let i = {
                    let mut t = trickles.lock().expect("trickle lock");
                    t.push(TrickleEnd {
                        started: Instant::now(),
                        ended: None,
                    });
                    t.len() - 1
                };
                // Chunked: no length announced, so only a deadline stops it
                // (or the test moving on: a poll that began trickling just
                // before the feed changed must not hold the node for
                // another 30 s).
                let mut result =
                    out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let start = Instant::now();
                while result.is_ok()
                    && !stop.load(Ordering::Relaxed)
                    && start.elapsed() < Duration::from_secs(300)
                    && matches!(handler(&path), Reply::Trickle)
                {
                    std::thread::sleep(Duration::from_millis(100));
                    result = out.write_all(b"1\r\nd\r\n").and_then(|()| out.flush());
                }
                trickles.lock().expect("trickle lock")[i].ended = Some(Instant::now());
                return Ok(());
            }
            Reply::Bytes(body) => {
                let len = body.len() as u64;
                match asked {
                    Some((a, b)) if a < len => {
                        let b = b.min(len - 1);
                        let head = format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{len}\r\n\r\n",
                            b - a + 1
                        );
                        out.write_all(head.as_bytes())?;
                        out.write_all(&body[a as usize..=b as usize])?;
                    }
                    Some(_) => {
                        let head = format!(
                            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                        );
                        out.write_all(head.as_bytes())?;
                    }
                    None => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                        out.write_all(head.as_bytes())?;
                        out.write_all(&body)?;
                    }
                }
            }
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// GET over HTTP with curl: the body on 2xx, None otherwise.
pub(crate) fn get(url: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "10", url])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// The node's first channel in `/-/status.json`.
pub(crate) fn channel_status(http: SocketAddr) -> Option<ChannelStatus> {
    let body = get(&format!("http://{http}/-/status.json"))?;
    Status::from_json(&body).ok()?.channels.into_iter().next()
}

/// Polls the status until `pred` holds; panics with the node's log and the
/// last status after `limit`.
pub(crate) fn wait_status(
    node: &Node,
    what: &str,
    limit: Duration,
    pred: impl Fn(&ChannelStatus) -> bool,
) -> ChannelStatus {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(c) = channel_status(node.http) {
            if pred(&c) {
                return c;
            }
            last = Some(c);
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; last status {last:#?}\nnode log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- trees, origin, node ----------------------------------------------------------------

/// Writes `files` (path, bytes) under `dir`, removing what is not listed.
pub(crate) fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(dir);
    for (p, data) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write tree file");
    }
}

/// The regular files under `dir`, as (relative path, bytes), sorted.
pub(crate) fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&p).expect("read tree file")));
            }
        }
    }
    out.sort();
    out
}

/// A key, a tree and an origin state directory.
pub(crate) struct Origin {
    pub key: PathBuf,
    pub public: String,
    pub tree: PathBuf,
    pub state: PathBuf,
    pub http: u16,
    pub listen: u16,
    /// `--url` (default http://127.0.0.1:HTTP).
    pub url: Option<String>,
    pub serving: Option<Proc>,
}

impl Origin {
    pub fn new(dir: &Path) -> Origin {
        let key = dir.join("origin.key");
        let secret = channel::SecretKey::generate();
        secret.write_new(&key).expect("write key");
        Origin {
            key,
            public: secret.public().to_string(),
            tree: dir.join("tree"),
            state: dir.join("origin"),
            http: free_port(),
            listen: free_port(),
            url: None,
            serving: None,
        }
    }

    fn args(&self, cmd: &mut Command) {
        cmd.arg("publish")
            .arg("--key")
            .arg(&self.key)
            .args(["--channel", CHANNEL, "--tree"])
            .arg(&self.tree)
            .arg("--state")
            .arg(&self.state)
            .args(["--listen", &format!("127.0.0.1:{}", self.listen)])
            .args(["--http", &format!("127.0.0.1:{}", self.http)])
            .args(["--piece-size", &PIECE.to_string(), "--expires", "2d"]);
        if let Some(u) = &self.url {
            cmd.args(["--url", u]);
        }
    }

    /// `publish --once`; returns the new seq.
    pub fn publish_once(&self) -> u64 {
        let mut cmd = Command::new(bin());
        self.args(&mut cmd);
        cmd.arg("--once");
        run_within(&mut cmd, Duration::from_secs(60)).ok();
        self.seq()
    }

    /// Publishes and keeps serving (feed, torrent, web seed, seeder).
    pub fn start(&mut self) -> u64 {
        let mut cmd = Command::new(bin());
        self.args(&mut cmd);
        let mut p = Proc::spawn(&mut cmd, "origin");
        p.wait_line("origin HTTP on", Duration::from_secs(60));
        self.serving = Some(p);
        self.seq()
    }

    /// The signed release the origin serves now.
    pub fn release_bytes(&self) -> Vec<u8> {
        std::fs::read(self.state.join(CHANNEL).join("release")).expect("origin release")
    }

    pub fn seq(&self) -> u64 {
        channel::parse_unverified(&self.release_bytes())
            .expect("origin release parses")
            .seq
    }

    pub fn torrent(&self, seq: u64) -> torrent::Metainfo {
        let path = self
            .state
            .join(CHANNEL)
            .join("torrents")
            .join(format!("{seq}.torrent"));
        torrent::Metainfo::from_bytes(&std::fs::read(&path).expect("origin torrent"))
            .expect("origin torrent parses")
    }
}

/// A `swarmsync run` node with one channel.
pub(crate) struct Node {
    pub data: PathBuf,
    pub config: PathBuf,
    pub http: SocketAddr,
    pub proc: Option<Proc>,
}

impl Node {
    /// Writes the config; `wrap` is an optional command prefix (e.g.
    /// `unshare`) the node is started under.
    pub fn new(dir: &Path, public: &str, feed: &str, peers: &[String]) -> Node {
        let data = dir.join("node");
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
        let text = format!(
            "[node]\ndata_dir = {data:?}\npeer_listen = \"127.0.0.1:{peer}\"\nhttp_listen = \"{http}\"\npoll_interval = \"200ms\"\n\n\
             [[channel]]\nname = \"{CHANNEL}\"\npublic_key = \"{public}\"\nfeeds = [{feed:?}]\nmount = \"/{CHANNEL}\"\n\n\
             [network]\nlsd = false\npeers = [{peers}]\n",
            data = data.display().to_string(),
            peer = free_port(),
            peers = peers.join(", "),
        );
        let config = dir.join("node.toml");
        std::fs::write(&config, text).expect("write node config");
        Node {
            data,
            config,
            http,
            proc: None,
        }
    }

    pub fn start(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.arg("run").arg("--config").arg(&self.config);
        self.start_with(cmd);
    }

    pub fn start_with(&mut self, mut cmd: Command) {
        cmd.env("SWARMSYNC_LOG", "info");
        self.proc = Some(Proc::spawn(&mut cmd, "node"));
    }

    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// The channel's store.
    pub fn store(&self) -> PathBuf {
        self.data.join(CHANNEL)
    }

    /// The seq `current` points at (snapshots/<seq>).
    pub fn current_seq(&self) -> Option<u64> {
        current_seq(&self.store())
    }

    /// Every file of `tree` is served byte-identical over HTTP.
    pub fn assert_serves(&self, tree: &[(String, Vec<u8>)], ctx: &str) {
        for (p, data) in tree {
            let url = format!("http://{}/{CHANNEL}/{p}", self.http);
            let got = get(&url);
            assert!(
                got.as_deref() == Some(data.as_slice()),
                "{ctx}: {url} does not serve the published bytes ({:?} bytes)\nnode log:\n{}",
                got.map(|g| g.len()),
                self.log()
            );
        }
    }
}

/// The seq a store's `current` link points at.
pub(crate) fn current_seq(store: &Path) -> Option<u64> {
    let target = std::fs::read_link(store.join("current")).ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

// --- the attacks ---------------------------------------------------------------------

/// Tree of release `n` of the attack tests: two shared files, one changed.
fn attack_tree(n: u64) -> Vec<(String, Vec<u8>)> {
    vec![
        ("dists/stable/Release".into(), pseudo(100 + n, 900)),
        ("pool/a.deb".into(), pseudo(1, 300_000)),
        ("pool/b.deb".into(), pseudo(2, 120_000)),
        (format!("pool/c{n}.deb"), pseudo(10 + n, 200_000)),
    ]
}

/// Sets what the feed answers.
fn set_feed(feed: &Mutex<Reply>, r: Reply) {
    *feed.lock().expect("feed lock") = r;
}

/// The feed server: `/-/releases/<channel>` answers whatever `feed` holds.
fn feed_server(feed: &Arc<Mutex<Reply>>) -> HttpServer {
    let f = Arc::clone(feed);
    HttpServer::start(Arc::new(move |path: &str| {
        if path == format!("/-/releases/{CHANNEL}") {
            f.lock().expect("feed lock").clone()
        } else {
            Reply::NotFound
        }
    }))
}

/// Waits for a rejection with `code` recorded after `since` (Unix seconds),
/// then checks nothing served changed.
fn expect_refused(
    node: &Node,
    code: &str,
    since: u64,
    limit: Duration,
    seq: u64,
    tree: &[(String, Vec<u8>)],
) -> ChannelStatus {
    let st = wait_status(node, &format!("rejection {code}"), limit, |c| {
        c.last_rejection
            .as_ref()
            .is_some_and(|r| r.code == code && r.at >= since)
    });
    let reason = st.last_rejection.as_ref().map(|r| r.reason.clone());
    eprintln!("sync_attacks: {code}: {reason:?}");
    assert!(
        reason.is_some_and(|r| !r.is_empty()),
        "{code}: empty reason"
    );
    assert_eq!(node.current_seq(), Some(seq), "{code}: current moved");
    node.assert_serves(tree, code);
    st
}

#[test]
fn node_refuses_forged_stale_and_oversized_releases() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut origin = Origin::new(tmp.path());
    write_tree(&origin.tree, &attack_tree(1));
    let first = origin.start();
    let release1 = origin.release_bytes();

    let feed = Arc::new(Mutex::new(Reply::Bytes(release1.clone())));
    let server = feed_server(&feed);
    let mut node = Node::new(
        tmp.path(),
        &origin.public,
        &server.url(&format!("/-/releases/{CHANNEL}")),
        &[],
    );
    node.start();
    wait_status(&node, "sync of release 1", SYNC, |c| {
        c.seq == Some(first) && c.state == "synced"
    });
    node.assert_serves(&attack_tree(1), "release 1");

    // Release 2 from the real origin, through the test's feed.
    write_tree(&origin.tree, &attack_tree(2));
    let second = origin.publish_once();
    assert!(second > first);
    let release2 = origin.release_bytes();
    set_feed(&feed, Reply::Bytes(release2.clone()));
    wait_status(&node, "sync of release 2", SYNC, |c| {
        c.seq == Some(second) && c.state == "synced"
    });
    let tree = attack_tree(2);
    node.assert_serves(&tree, "release 2");
    assert_eq!(node.current_seq(), Some(second));

    let signer = channel::Signer::load(&origin.key).expect("load key");
    let base = channel::parse_unverified(&release2).expect("release 2 parses");
    let newer = |f: &dyn Fn(&mut channel::Release)| {
        let mut r = base.clone();
        r.seq = second + 1;
        r.created = now_secs();
        r.expires = now_secs() + 3600;
        f(&mut r);
        r
    };
    let limit = Duration::from_secs(20);

    // 1. Replay of the older release.
    let t = now_secs();
    set_feed(&feed, Reply::Bytes(release1.clone()));
    expect_refused(&node, "rollback", t, limit, second, &tree);

    // 2. Expired, validly signed.
    let t = now_secs();
    let expired = newer(&|r| {
        r.created = now_secs() - 7200;
        r.expires = now_secs() - 3600;
    });
    set_feed(&feed, Reply::Bytes(signer.sign(&expired)));
    expect_refused(&node, "expired", t, limit, second, &tree);

    // 3. One byte of the signature flipped (it ends the envelope: "...3:sig64:<sig>e").
    let t = now_secs();
    let mut forged = signer.sign(&newer(&|_| {}));
    let n = forged.len();
    forged[n - 10] ^= 0x01;
    set_feed(&feed, Reply::Bytes(forged));
    expect_refused(&node, "bad_signature", t, limit, second, &tree);

    // 4. Signed by another key.
    let t = now_secs();
    let stranger = channel::Signer::new(channel::SecretKey::generate(), None);
    set_feed(&feed, Reply::Bytes(stranger.sign(&newer(&|_| {}))));
    expect_refused(&node, "wrong_key", t, limit, second, &tree);

    // 5. An answer over the 64 KiB limit (a valid release padded with
    // trailing bytes would be refused too; this is just big).
    let t = now_secs();
    let mut big = signer.sign(&newer(&|_| {}));
    big.resize(100 * 1024, b'0');
    set_feed(&feed, Reply::Bytes(big));
    expect_refused(&node, "too_large", t, limit, second, &tree);

    // 6. A feed that trickles one byte every 100 ms: the fetch deadline
    // (30 s) cuts it, the node records it and keeps serving.
    let t = now_secs();
    set_feed(&feed, Reply::Trickle);
    expect_refused(&node, "timeout", t, Duration::from_secs(60), second, &tree);
    set_feed(&feed, Reply::Bytes(release2.clone()));
    // The server notices the closed connection at its next writes.
    std::thread::sleep(Duration::from_secs(1));
    let trickles = server.trickles.lock().expect("trickle lock").clone();
    assert!(
        !trickles.is_empty(),
        "the node never read the trickling feed"
    );
    let first_end = trickles[0]
        .ended
        .map(|e| e.duration_since(trickles[0].started));
    eprintln!("sync_attacks: trickling feed cut after {first_end:?}");
    assert!(
        first_end.is_some_and(|d| d < Duration::from_secs(40)),
        "the node kept reading a trickling feed: {first_end:?}"
    );

    // 7. Validly signed, but its infohashes are release 1's while its
    // torrent URL is release 2's torrent: the torrent does not match.
    let t = now_secs();
    let r1 = channel::parse_unverified(&release1).expect("release 1 parses");
    assert_ne!(r1.v2, base.v2);
    let mismatch = newer(&|r| {
        r.seq = second + 10;
        r.v2 = r1.v2;
        r.v1 = r1.v1;
    });
    set_feed(&feed, Reply::Bytes(signer.sign(&mismatch)));
    let st = expect_refused(&node, "content_mismatch", t, limit, second, &tree);
    eprintln!(
        "sync_attacks: after content_mismatch the status shows seq {:?}, state {:?}, last_error {:?}",
        st.seq, st.state, st.last_error
    );
    // Still serving release 2 a while later (the node retries the refused
    // release at each poll and refuses it each time).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.current_seq(), Some(second));
    node.assert_serves(&tree, "content_mismatch, later");
    assert!(
        node.log().contains("release refused"),
        "refusals are not in the log:\n{}",
        node.log()
    );
}

/// tests/interop/badpeer.py in `mode`, and the port it listens on.
fn badpeer(mode: &str, pieces: usize) -> (Proc, u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/badpeer.py"
    );
    let mut cmd = Command::new("python3");
    cmd.args([
        script,
        mode,
        "--pieces",
        &pieces.to_string(),
        "--timeout",
        "300",
    ]);
    let mut p = Proc::spawn(&mut cmd, &format!("badpeer.py {mode}"));
    p.wait_line("port: ", Duration::from_secs(20));
    let port = p
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("port: ")?.trim().parse().ok())
        .expect("badpeer port");
    (p, port)
}

#[test]
fn node_completes_despite_a_peer_that_trickles_endlessly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut origin = Origin::new(tmp.path());
    // The origin's HTTP side is a test server whose web seed answers its
    // first requests only after a pause, so the node has time to connect to the
    // trickler and hand it requests; nobody seeds at the origin's peer
    // port. The trickler is the node's only peer.
    let state = origin.state.join(CHANNEL);
    let slow = AtomicU64::new(0);
    let server = HttpServer::start(Arc::new(move |path: &str| {
        let file = if path == format!("/-/releases/{CHANNEL}") {
            state.join("release")
        } else if let Some(t) = path.strip_prefix(&format!("/-/torrents/{CHANNEL}/")) {
            state.join("torrents").join(t)
        } else if let Some(p) = path.strip_prefix(&format!("/{CHANNEL}/")) {
            if slow.fetch_add(1, Ordering::SeqCst) < 4 {
                std::thread::sleep(Duration::from_millis(1500));
            }
            state.join("current").join(CHANNEL).join(p)
        } else {
            return Reply::NotFound;
        };
        std::fs::read(file).map_or(Reply::NotFound, Reply::Bytes)
    }));
    origin.url = Some(format!("http://{}", server.addr));
    let tree: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("pool/f{i}.deb"), pseudo(50 + i, 700_000)))
        .collect();
    write_tree(&origin.tree, &tree);
    let seq = origin.publish_once();
    let pieces = origin.torrent(seq).info.pieces.len();
    let (peer, port) = badpeer("trickle", pieces);

    let mut node = Node::new(
        tmp.path(),
        &origin.public,
        &server.url(&format!("/-/releases/{CHANNEL}")),
        &[format!("127.0.0.1:{port}")],
    );
    let started = Instant::now();
    node.start();
    let t = std::thread::spawn({
        let http = node.http;
        move || {
            // Progress lines, to see a stall in the output.
            for _ in 0..30 {
                std::thread::sleep(Duration::from_secs(3));
                match channel_status(http) {
                    Some(c) if c.state == "synced" => return,
                    Some(c) => eprintln!(
                        "sync_attacks: trickling peer: {} of {} bytes, {} peers",
                        c.have_bytes, c.total_bytes, c.peers
                    ),
                    None => {}
                }
            }
        }
    });
    wait_status(&node, "sync next to a trickling peer", SYNC, |c| {
        c.seq == Some(seq) && c.state == "synced"
    });
    let _ = t.join();
    eprintln!(
        "sync_attacks: synced next to a trickling peer in {:.1?}; badpeer said:\n{}",
        started.elapsed(),
        peer.log()
    );
    node.assert_serves(&tree, "trickling peer");
    assert!(
        peer.log().contains("trickling"),
        "the node never asked the trickling peer for a block, so this test proved nothing:\n{}",
        node.log()
    );
}
