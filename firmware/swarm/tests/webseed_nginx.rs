//! Web seeds against a real nginx (Debian's nginx-light) on 127.0.0.1.
//!
//! A generated tree is made into v1, v2 and hybrid torrents with
//! `torrent::create` (so the expected hashes come from the creation code, not
//! from the web seed code), served by nginx, and every piece is fetched,
//! checked against the torrent's own v1 and v2 piece hashes and put back
//! together into files that must be byte-identical to the originals.
//!
//! nginx runs in the foreground as one process (`master_process off`) with
//! a generated config, pid file, logs and temp paths in a tempdir, and is
//! killed when the test ends. These tests fail, never skip, when nginx is
//! missing: tools/setup installs it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use swarm::webseed::{Client, Config, Piece, WebSeed};
use torrent::create::{InputFile, Options, Plan, Source, create};
use torrent::{Metainfo, Version};

const NGINX: &str = "/usr/sbin/nginx";

/// A foreground nginx on a free loopback port, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Serves `www` over HTTP, or over HTTPS with `tls` = (cert, key).
    fn start(dir: &Path, www: &Path, tls: Option<(&Path, &Path)>) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: run tools/setup (package nginx-light)"
        );
        let mut last_log = String::new();
        // A free port can be taken between our probe and nginx's bind; try
        // a few.
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("nginx.conf");
            let ssl = match tls {
                Some((cert, key)) => format!(
                    "listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {};",
                    cert.display(),
                    key.display()
                ),
                None => format!("listen 127.0.0.1:{port};"),
            };
            let d = dir.display();
            std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
            let text = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  log_format conn '$connection $connection_requests $status $request_uri';\n\
                 access_log {d}/access.log conn;\n  client_body_temp_path {d}/tmp/body;\n\
                 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
                 uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
                 default_type application/octet-stream;\n  sendfile on;\n  keepalive_requests 100000;\n\
                 server {{\n    {ssl}\n    root {www};\n    location / {{ }}\n  }}\n}}\n",
                www = www.display()
            );
            std::fs::write(&conf, text).expect("write nginx.conf");
            let _ = std::fs::remove_file(dir.join("access.log"));
            let child = Command::new(NGINX)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx");
            let mut nginx = Nginx {
                child,
                port,
                dir: dir.to_owned(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = nginx.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return nginx;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            drop(nginx);
        }
        panic!("nginx did not start; error.log:\n{last_log}");
    }

    /// (connections, requests) nginx has logged so far.
    /// nginx writes an access-log line after the response has gone out, so
    /// a client can hold its answer before the line exists: read until the
    /// counts have not changed for 150 ms (at most 3 s).
    fn connections_and_requests(&self) -> (usize, usize) {
        let read = || {
            let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
            let conns: BTreeSet<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
            (conns.len(), log.lines().count())
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = read();
        let mut stable = 0;
        while stable < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = read();
            if now == last {
                stable += 1;
            } else {
                (last, stable) = (now, 0);
            }
        }
        last
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("probe addr").port()
}

/// Deterministic, piece-distinct file contents.
fn content(seed: u64, len: usize) -> Vec<u8> {
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

struct Disk(PathBuf);

impl Source for Disk {
    type Reader = std::fs::File;
    fn open(&self, f: &InputFile) -> std::io::Result<std::fs::File> {
        let mut p = self.0.clone();
        p.extend(&f.path);
        std::fs::File::open(p)
    }
}

/// Writes `files` under `root` and returns their inputs and contents.
fn write_tree(root: &Path, files: &[(&str, usize)]) -> BTreeMap<Vec<String>, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (i, (path, len)) in files.iter().enumerate() {
        let comps: Vec<String> = path.split('/').map(str::to_owned).collect();
        let mut p = root.to_owned();
        p.extend(&comps);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let data = content(i as u64 + 1, *len);
        std::fs::write(&p, &data).expect("write file");
        out.insert(comps, data);
    }
    out
}

fn make_torrent(
    name: &str,
    single: bool,
    root: &Path,
    files: &BTreeMap<Vec<String>, Vec<u8>>,
    version: Version,
    piece_length: u64,
) -> Metainfo {
    let inputs = files
        .iter()
        .map(|(path, data)| InputFile {
            path: path.clone(),
            length: data.len() as u64,
            executable: false,
            symlink_target: None,
        })
        .collect();
    let opts = Options {
        version,
        piece_length: Some(piece_length),
        ..Options::default()
    };
    let plan = Plan::new(name, single, inputs, &opts).expect("plan");
    create(&plan, &opts, &Disk(root.to_owned()), 2, &|_| {})
        .expect("create")
        .1
}

/// Checks `piece` against the torrent's hashes without the web seed
/// module's own helper, then with it.
fn check_hashes(meta: &Metainfo, piece: &Piece) {
    let info = &meta.info;
    let i = piece.index;
    if info.version.has_v1() {
        let expected = info.pieces[i as usize];
        assert_eq!(
            torrent::hash::sha1(&piece.data),
            expected,
            "v1 hash of piece {i}"
        );
    }
    if info.version.has_v2() {
        let first = piece.spans[0];
        assert!(!first.pad, "piece {i} starts with a pad");
        let file = &info.files[first.file];
        let local = first.offset / info.piece_length;
        let data = &piece.data[..first.length as usize];
        let (expected, width) = meta.v2_piece(file, local).expect("v2 hash");
        assert_eq!(
            torrent::merkle::piece_hash(data, width),
            Some(expected),
            "v2 hash of piece {i} ({} piece {local})",
            file.display_path()
        );
    }
    assert!(piece.verify(meta), "Piece::verify of piece {i}");
}

/// Fetches every piece, checks it, rebuilds every file from the spans and
/// compares it with `expected` (path inside the torrent -> contents).
async fn fetch_all(
    client: &Client,
    seed: &WebSeed,
    meta: &Metainfo,
    expected: &BTreeMap<Vec<String>, Vec<u8>>,
) -> usize {
    let info = &meta.info;
    let mut rebuilt: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut covered: BTreeMap<usize, u64> = BTreeMap::new();
    let mut buf = Vec::new();
    let count = info.piece_count();
    assert!(count > 0);
    for i in 0..count {
        let piece = client
            .fetch_piece(seed, info, i)
            .await
            .unwrap_or_else(|e| panic!("piece {i}: {e}"));
        check_hashes(meta, &piece);
        let mut at = 0usize;
        for s in &piece.spans {
            let part = &piece.data[at..at + s.length as usize];
            at += s.length as usize;
            if s.pad {
                assert!(part.iter().all(|b| *b == 0), "pad bytes of piece {i}");
                continue;
            }
            let f = &info.files[s.file];
            let dst = rebuilt
                .entry(s.file)
                .or_insert_with(|| vec![0xAA; f.length as usize]);
            dst[s.offset as usize..(s.offset + s.length) as usize].copy_from_slice(part);
            *covered.entry(s.file).or_default() += s.length;
        }
        assert_eq!(at, piece.data.len());
        // The buffer-reusing form gives the same bytes.
        if i % 7 == 0 {
            client
                .fetch_piece_into(seed, info, i, &mut buf)
                .await
                .expect("fetch_piece_into");
            assert_eq!(buf, piece.data);
        }
    }
    for (idx, f) in info.files.iter().enumerate() {
        if f.attr.pad || f.length == 0 {
            continue;
        }
        assert_eq!(covered.get(&idx), Some(&f.length), "{}", f.display_path());
    }
    let real = info.real_files().filter(|f| f.length > 0).count();
    assert_eq!(rebuilt.len(), real);
    // Byte-identical to what was written.
    for (idx, data) in &rebuilt {
        let f = &info.files[*idx];
        assert!(
            expected.get(&f.path.to_vec()) == Some(data),
            "{} differs from the original",
            f.display_path()
        );
    }
    count as usize
}

const TREE: &[(&str, usize)] = &[
    ("a.txt", 5000),
    ("dists/main/Packages", 100_000),
    ("empty", 0),
    ("pool/q?mark#hash.bin", 16384),
    ("pool/ü nicode+plus%25.deb", 40_000),
    ("z/big.bin", 300_001),
];

#[tokio::test]
async fn nginx_serves_every_piece_of_v1_v2_and_hybrid_multi_file_torrents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    let name = "repo tree+1";
    let root = www.join("seed").join(name);
    let files = write_tree(&root, TREE);
    let nginx = Nginx::start(tmp.path(), &www, None);
    let client = Client::new(Config::default()).expect("client");
    let mut pieces = 0;
    for (version, base) in [
        (
            Version::Hybrid,
            format!("http://127.0.0.1:{}/seed/", nginx.port),
        ),
        (Version::V1, format!("http://127.0.0.1:{}/seed", nginx.port)),
        (
            Version::V2,
            format!("http://127.0.0.1:{}/seed/", nginx.port),
        ),
    ] {
        let meta = make_torrent(name, false, &root, &files, version, 16384);
        if version == Version::Hybrid {
            assert!(
                meta.info.files.iter().any(|f| f.attr.pad),
                "hybrid has pads"
            );
        }
        let seed = WebSeed::new(&base).expect("seed url");
        pieces += fetch_all(&client, &seed, &meta, &files).await;
    }
    let (conns, requests) = nginx.connections_and_requests();
    eprintln!("{pieces} pieces, {requests} requests over {conns} connections");
    assert!(
        requests >= pieces,
        "{requests} requests for {pieces} pieces"
    );
    // Keep-alive: all those requests went over a handful of connections.
    assert!(conns <= 4, "{conns} connections for {requests} requests");
    // No request for a pad file ever reached the server.
    let log = std::fs::read_to_string(tmp.path().join("access.log")).expect("log");
    assert!(!log.contains(".pad"), "a pad file was requested");
    assert!(log.lines().all(|l| l.contains(" 206 ")), "non-206:\n{log}");
}

#[tokio::test]
async fn runs_of_pieces_take_one_request_per_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    let name = "runs";
    let root = www.join(name);
    let files = write_tree(&root, TREE);
    let nginx = Nginx::start(tmp.path(), &www, None);
    let client = Client::new(Config::default()).expect("client");
    let seed = WebSeed::new(&format!("http://127.0.0.1:{}/", nginx.port)).expect("seed");
    for version in [Version::Hybrid, Version::V1, Version::V2] {
        let meta = make_torrent(name, false, &root, &files, version, 16384);
        let count = meta.info.piece_count();
        let before = nginx.connections_and_requests().1;
        let mut got = Vec::new();
        let mut first = 0;
        while first < count {
            let end = (first + 8).min(count);
            got.extend(
                client
                    .fetch_pieces(&seed, &meta.info, first..end)
                    .await
                    .unwrap_or_else(|e| panic!("{version:?} {first}..{end}: {e}")),
            );
            first = end;
        }
        let requests = nginx.connections_and_requests().1 - before;
        assert_eq!(got.len() as u64, count);
        for (i, piece) in got.iter().enumerate() {
            assert_eq!(piece.index, i as u64);
            check_hashes(&meta, piece);
        }
        // Requests: at most one per file per run of 8 pieces.
        let real = meta.info.real_files().filter(|f| f.length > 0).count() as u64;
        let runs = count.div_ceil(8);
        eprintln!("{version:?}: {count} pieces in {requests} requests");
        assert!(requests as u64 <= real + runs, "{requests} requests");
        assert!((requests as u64) < count, "{requests} requests");
    }
    // A run over the limit is refused before any request.
    let meta = make_torrent(name, false, &root, &files, Version::Hybrid, 16384);
    let small = Client::new(Config {
        max_run_bytes: 16384,
        ..Config::default()
    })
    .expect("client");
    let before = nginx.connections_and_requests().1;
    let e = small
        .fetch_pieces(&seed, &meta.info, 0..2)
        .await
        .expect_err("over the limit");
    assert!(e.to_string().contains("over the limit"), "{e}");
    assert_eq!(nginx.connections_and_requests().1, before);
}

#[tokio::test]
async fn nginx_serves_a_single_file_torrent_by_directory_or_file_url() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    let name = "single image+1.iso";
    let files = write_tree(&www.join("dir"), &[(name, 70_001)]);
    // The same file under another name, for a URL that names the file.
    std::fs::create_dir_all(www.join("other")).expect("mkdir");
    std::fs::copy(www.join("dir").join(name), www.join("other/renamed.iso")).expect("copy");
    let nginx = Nginx::start(tmp.path(), &www, None);
    let client = Client::new(Config::default()).expect("client");
    for version in [Version::Hybrid, Version::V1, Version::V2] {
        let meta = make_torrent(name, true, &www.join("dir"), &files, version, 32768);
        assert!(meta.info.single_file);
        for base in [
            format!("http://127.0.0.1:{}/dir/", nginx.port),
            format!("http://127.0.0.1:{}/other/renamed.iso", nginx.port),
        ] {
            let seed = WebSeed::new(&base).expect("seed url");
            assert_eq!(fetch_all(&client, &seed, &meta, &files).await, 3);
        }
    }
    let log = std::fs::read_to_string(tmp.path().join("access.log")).expect("log");
    assert!(log.contains("/dir/single%20image%2B1.iso"), "{log}");
    assert!(log.contains("/other/renamed.iso"), "{log}");
}

#[tokio::test]
async fn a_missing_file_is_a_clear_permanent_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    let name = "t";
    let root = www.join(name);
    let files = write_tree(&root, &[("a", 20_000), ("b", 20_000)]);
    let meta = make_torrent(name, false, &root, &files, Version::Hybrid, 16384);
    std::fs::remove_file(root.join("b")).expect("rm");
    let nginx = Nginx::start(tmp.path(), &www, None);
    let client = Client::new(Config::default()).expect("client");
    let seed = WebSeed::new(&format!("http://127.0.0.1:{}/", nginx.port)).expect("seed");
    let started = Instant::now();
    let b_piece = meta
        .info
        .files
        .iter()
        .find(|f| f.path.as_str() == "b")
        .expect("b")
        .offset
        / 16384;
    let e = client
        .fetch_piece(&seed, &meta.info, b_piece)
        .await
        .expect_err("404");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&format!("http://127.0.0.1:{}/t/b", nginx.port)),
        "{msg}"
    );
    assert!(msg.contains("404"), "{msg}");
    // Not retried: one request, no backoff wait.
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(nginx.connections_and_requests().1, 1);
}

/// A CA and a leaf certificate for 127.0.0.1, made with the openssl CLI.
/// Returns (leaf cert, leaf key, CA cert DER).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (tools/setup installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=swarmsync test CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&a);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    run(&["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"]);
    let der = std::fs::read(dir.join("ca.der")).expect("ca.der");
    (dir.join("leaf.pem"), dir.join("leaf.key"), der)
}

#[tokio::test]
async fn https_through_rustls_with_a_private_root_and_refusal_without_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    let (cert, key, ca_der) = make_certs(&certs);
    let www = tmp.path().join("www");
    let name = "secure";
    let root = www.join(name);
    let files = write_tree(&root, &[("x/one", 40_000), ("two", 1234)]);
    let meta = make_torrent(name, false, &root, &files, Version::Hybrid, 16384);
    let nginx = Nginx::start(tmp.path(), &www, Some((&cert, &key)));
    let base = format!("https://127.0.0.1:{}/", nginx.port);
    let seed = WebSeed::new(&base).expect("seed");

    let trusted = Client::new(Config {
        extra_roots: vec![ca_der],
        ..Config::default()
    })
    .expect("client");
    fetch_all(&trusted, &seed, &meta, &files).await;

    let untrusted = Client::new(Config::default()).expect("client");
    let started = Instant::now();
    let e = untrusted
        .fetch_piece(&seed, &meta.info, 0)
        .await
        .expect_err("unknown issuer");
    // Not retried: a certificate problem does not go away by waiting.
    assert!(started.elapsed() < Duration::from_millis(400));
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(&base), "{msg}");
    assert!(msg.contains("TLS: invalid peer certificate"), "{msg}");
}
