//! A node (`swarmsync run`) against an origin (`swarmsync publish`):
//! release gossip between peers, and fetch-on-miss of files outside the
//! subset.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{
    Origin, bin, channel_peers, current_seq, keygen, port, run_within, served_seq, spawn,
};

fn wait_seq(http: u16, want: u64, limit: Duration, what: &str, logs: &[&Path]) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if served_seq(http) == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    panic!(
        "{what}: release {want} not served within {limit:?}\n{}",
        logs.join("\n----\n")
    );
}

/// A node config for origin `o`'s channel: peer and HTTP ports, the feed
/// polled every `poll`, `peers` dialed.
fn node_config(o: &Origin, n: u8, peer: u16, http: u16, peers: &[u16], poll: &str) -> PathBuf {
    let feed = format!("http://127.0.0.1:{}/-/releases/c", o.http);
    let peers: Vec<String> = peers.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let text = format!(
        "[node]\ndata_dir = {:?}\npeer_listen = \"127.0.0.1:{peer}\"\nhttp_listen = \"127.0.0.1:{http}\"\npoll_interval = \"{poll}\"\n\
         [[channel]]\nname = \"c\"\npublic_key = \"{}\"\nfeeds = [\"{feed}\"]\n\
         [network]\nlsd = false\npeers = [{}]\n[leds]\nbackend = \"none\"\nwatchdog = \"off\"\n",
        o.d.join(format!("node{n}")).display().to_string(),
        o.public,
        peers.join(", ")
    );
    let path = o.d.join(format!("node{n}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

/// Release gossip (the `swarmsync_release` BEP 10 extension): a node that
/// polls its feed only once an hour still switches to a new release within
/// seconds, because a peer of the same swarm that polls often tells it.
#[test]
fn a_node_learns_a_release_from_its_peer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let o = Origin::new(d, 200_000);
    let origin_log = d.join("origin.log");
    let _origin = o.start(&origin_log, &[]);
    let (p1, p2, h1, h2) = (port(), port(), port(), port());
    let c1 = node_config(&o, 1, p1, h1, &[p2], "500ms");
    let c2 = node_config(&o, 2, p2, h2, &[p1], "1h");
    let (l1, l2) = (d.join("node1.log"), d.join("node2.log"));
    // The origin has published before node 2's one and only poll.
    let first = current_seq(&d.join("origin"));
    let _n1 = spawn(bin().arg("run").arg("--config").arg(&c1), &l1);
    let _n2 = spawn(bin().arg("run").arg("--config").arg(&c2), &l2);
    let logs = [origin_log.as_path(), l1.as_path(), l2.as_path()];
    wait_seq(h1, first, Duration::from_secs(60), "node1", &logs);
    wait_seq(h2, first, Duration::from_secs(60), "node2", &logs);
    // Gossip travels over connections: the nodes must have met (each
    // sees the origin and the other) before the origin moves on. Their
    // first dials can come before the other's listener is up, and the
    // redial waits a few seconds.
    let t0 = Instant::now();
    while [h1, h2].iter().any(|&h| channel_peers(h).unwrap_or(0) < 2) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the nodes did not connect to each other and the origin within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both nodes tag the same content with the same strong ETag.
    crate::etag::same_content_etag(&[h1, h2], "/c/pool/a.deb", &[7u8; 200_000], d);

    let second = o.republish();
    assert!(second > first);
    wait_seq(h1, second, Duration::from_secs(60), "node1", &logs);
    // Node 2 will not poll for an hour: only gossip (from node 1 or the
    // origin, whichever tells it first) can.
    wait_seq(h2, second, Duration::from_secs(30), "node2 (gossip)", &logs);
    let log2 = std::fs::read_to_string(&l2).unwrap_or_default();
    assert!(log2.contains(&format!("new release {second}")), "{log2}");
}

/// The origin gossips too: a lone node that polls once an hour, with no
/// LAN peer to tell it, learns a release published by cron from the
/// origin it is connected to, within seconds.
#[test]
fn a_node_learns_a_release_from_the_origin() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let o = Origin::new(d, 200_000);
    let origin_log = d.join("origin.log");
    let _origin = o.start(&origin_log, &[]);
    let (p1, h1) = (port(), port());
    let c1 = node_config(&o, 1, p1, h1, &[], "1h");
    let l1 = d.join("node1.log");
    let first = current_seq(&d.join("origin"));
    let _n1 = spawn(bin().arg("run").arg("--config").arg(&c1), &l1);
    let logs = [origin_log.as_path(), l1.as_path()];
    wait_seq(h1, first, Duration::from_secs(60), "node", &logs);
    // Connected to the origin's seeder (the release names its address).
    let t0 = Instant::now();
    while channel_peers(h1).unwrap_or(0) < 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the node did not connect to the origin within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = o.republish();
    assert!(second > first);
    wait_seq(
        h1,
        second,
        Duration::from_secs(30),
        "node (gossip from the origin)",
        &logs,
    );
}

fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(150)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (code, raw[split + 4..].to_vec())
}

/// An origin publishing `keep/a` (50,000 bytes) and `other/big.iso`, and
/// a node whose subset is `keep/**`, synced.
struct MissSetup {
    dir: tempfile::TempDir,
    http: u16,
    log: std::path::PathBuf,
    big: Vec<u8>,
    _origin: crate::common::Kill,
    node: Option<crate::common::Kill>,
}

impl MissSetup {
    fn start(big_len: u32, network: &str) -> MissSetup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join("keep")).expect("mkdir");
        std::fs::create_dir_all(tree.join("other")).expect("mkdir");
        std::fs::write(tree.join("keep/a"), vec![1u8; 50_000]).expect("write");
        let big: Vec<u8> = (0..big_len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(tree.join("other/big.iso"), &big).expect("write");
        let key = d.join("k.key");
        let public = keygen(&key);
        let (o_peer, o_http, peer, http) = (port(), port(), port(), port());
        let origin_log = d.join("origin.log");
        let origin = spawn(
            bin()
                .args(["publish", "--channel", "c", "--piece-size", "16384"])
                .arg("--key")
                .arg(&key)
                .arg("--tree")
                .arg(&tree)
                .arg("--state")
                .arg(d.join("origin"))
                .args(["--listen", &format!("127.0.0.1:{o_peer}")])
                .args(["--http", &format!("127.0.0.1:{o_http}")]),
            &origin_log,
        );
        let t0 = Instant::now();
        while !d.join("origin/c/release").exists() && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let seq = current_seq(&d.join("origin"));
        let config = d.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\ndata_dir = {:?}\npeer_listen = \"127.0.0.1:{peer}\"\nhttp_listen = \"127.0.0.1:{http}\"\npoll_interval = \"500ms\"\n\
                 [[channel]]\nname = \"c\"\npublic_key = \"{public}\"\nfeeds = [\"http://127.0.0.1:{o_http}/-/releases/c\"]\n\
                 [channel.subset]\nkind = \"paths\"\ninclude = [\"keep/**\"]\n\
                 [network]\nlsd = false\n{network}\n[leds]\nbackend = \"none\"\nwatchdog = \"off\"\n",
                d.join("node").display().to_string()
            ),
        )
        .expect("config");
        let log = d.join("node.log");
        let node = spawn(bin().arg("run").arg("--config").arg(&config), &log);
        wait_seq(
            http,
            seq,
            Duration::from_secs(60),
            "node",
            &[&origin_log, &log],
        );
        MissSetup {
            dir: tmp,
            http,
            log,
            big,
            _origin: origin,
            node: Some(node),
        }
    }

    fn objects(&self) -> u64 {
        walk(&self.dir.path().join("node/c/objects"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the node (the store is its own while it runs) and verifies
    /// the store.
    fn stop_and_verify(&mut self) {
        drop(self.node.take());
        run_within(
            bin()
                .args(["verify", "--state"])
                .arg(self.dir.path().join("node/c")),
            Duration::from_secs(60),
        )
        .ok();
    }
}

/// A file outside the node's subset is fetched when a client asks for it,
/// verified, and served; one that is not in the snapshot is a plain 404.
#[test]
fn a_file_outside_the_subset_is_fetched_on_first_request() {
    let mut s = MissSetup::start(700_000, "");
    // Only the subset is on disk.
    let before = s.objects();
    assert!(
        before < 100_000,
        "{before} bytes of objects before the miss"
    );
    assert_eq!(http_get(s.http, "/c/keep/a"), (200, vec![1u8; 50_000]));
    let (code, body) = http_get(s.http, "/c/other/big.iso");
    assert_eq!(code, 200, "{}", s.log());
    assert!(body == s.big, "fetched bytes differ");
    // Streamed as it verified; it becomes an object right after.
    let t0 = Instant::now();
    while s.objects() < before + 700_000 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.objects() >= before + 700_000, "not stored: {}", s.log());
    assert_eq!(http_get(s.http, "/c/other/nothing").0, 404);
    s.stop_and_verify();
}

/// A large missing file is streamed to the client as its pieces verify:
/// with the node's download limited to 1 MiB/s (peers and web seed alike),
/// the first bytes of a 6 MB file arrive while most of it is still being
/// fetched, and the whole body is the published file.
#[test]
fn a_missing_file_is_streamed_as_its_pieces_verify() {
    const LEN: u32 = 6_000_000;
    let mut s = MissSetup::start(LEN, "download_limit = \"1MiB/s\"");
    let mut c = TcpStream::connect(("127.0.0.1", s.http)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let asked = Instant::now();
    write!(
        c,
        "GET /c/other/big.iso HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 65536];
    let head_end = loop {
        let n = c.read(&mut buf).expect("read head");
        assert!(n > 0, "closed before the head: {}", s.log());
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}\n{}", s.log());
    assert!(head.contains(&format!("content-length: {LEN}")), "{head}");
    let mut body = raw[head_end..].to_vec();
    while body.is_empty() {
        let n = c.read(&mut buf).expect("read body");
        assert!(n > 0, "closed before the body: {}", s.log());
        body.extend_from_slice(&buf[..n]);
    }
    let first = asked.elapsed();
    // Streaming, not store-and-forward: the file is far from complete.
    let stored_at_first = s.objects();
    assert!(
        stored_at_first < 100_000 + u64::from(LEN) / 2,
        "{stored_at_first} bytes of objects when the first bytes arrived"
    );
    c.read_to_end(&mut body).expect("read the rest");
    let all = asked.elapsed();
    eprintln!(
        "node: fetch-on-miss of {LEN} bytes at 1 MiB/s: first bytes after {first:?}, all after {all:?}"
    );
    assert!(
        body == s.big,
        "streamed bytes differ ({} bytes)",
        body.len()
    );
    // Complete now: served from the object like any other file, with the
    // ETag the stream announced (the content hash), so a client can
    // resume an interrupted stream with If-Range.
    assert_eq!(http_get(s.http, "/c/other/big.iso"), (200, s.big.clone()));
    let streamed_tag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .map(str::to_owned);
    assert!(streamed_tag.is_some(), "no ETag while streaming: {head}");
    let mut c = TcpStream::connect(("127.0.0.1", s.http)).expect("connect");
    write!(
        c,
        "HEAD /c/other/big.iso HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    c.read_to_string(&mut raw).expect("read");
    let raw = raw.to_lowercase();
    let final_tag = raw.lines().find_map(|l| l.strip_prefix("etag: "));
    assert_eq!(streamed_tag.as_deref(), final_tag, "{raw}");
    s.stop_and_verify();
}

/// Bytes of regular files under `dir`.
fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += walk(&e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
