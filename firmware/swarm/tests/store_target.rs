//! The engine downloading into a node's store (`Target::Store`), against
//! the engine seeding in place (`Target::Dir`), over real loopback TCP with
//! a real redb store in a tempdir.
//!
//! What is pinned here: only wanted files become objects and nothing else
//! is begun; a second release of the same tree fetches only what changed;
//! a file wanted at run time through the control channel arrives and is
//! reported; a download cut off mid-way resumes from what the store
//! recorded without fetching it again; a peer sending corrupt data is found
//! through the store's hash check.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::Store;
use swarm::engine::{self, Control, Options, Summary, Target};
use swarm::rate::Limiter;
use tokio::sync::{mpsc, oneshot};
use torrent::create::{InputFile, Options as CreateOptions, Plan, Source, create};
use torrent::hash::Sha256;
use torrent::{Metainfo, Version};

const PIECE: u64 = 32 * 1024;
const BLOCK: u64 = 16 * 1024;

/// Reads the tree for `create`.
struct Disk(PathBuf);

impl Source for Disk {
    type Reader = std::fs::File;
    fn open(&self, f: &InputFile) -> std::io::Result<std::fs::File> {
        let mut p = self.0.clone();
        p.extend(&f.path);
        std::fs::File::open(p)
    }
}

/// Deterministic, piece-distinct contents.
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

type Files = BTreeMap<Vec<String>, Vec<u8>>;

fn files(spec: &[(&str, u64, usize)]) -> Files {
    spec.iter()
        .map(|(p, seed, len)| {
            (
                p.split('/').map(str::to_owned).collect(),
                content(*seed, *len),
            )
        })
        .collect()
}

/// Writes `files` under `<parent>/<name>` and makes a hybrid torrent of it.
fn release(parent: &Path, name: &str, files: &Files) -> Arc<Metainfo> {
    let root = parent.join(name);
    for (path, data) in files {
        let mut p = root.clone();
        p.extend(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write tree");
    }
    let inputs = files
        .iter()
        .map(|(path, data)| InputFile {
            path: path.clone(),
            length: data.len() as u64,
            executable: false,
            symlink_target: None,
        })
        .collect();
    let opts = CreateOptions {
        version: Version::Hybrid,
        piece_length: Some(PIECE),
        ..CreateOptions::default()
    };
    let plan = Plan::new(name, false, inputs, &opts).expect("plan");
    let meta = create(&plan, &opts, &Disk(root), 2, &|_| {})
        .expect("create")
        .1;
    Arc::new(meta)
}

/// Index in `meta.info.files` of each real file, by path.
fn index_of(meta: &Metainfo) -> BTreeMap<Vec<String>, usize> {
    meta.info
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.attr.pad)
        .map(|(i, f)| (f.path.to_vec(), i))
        .collect()
}

fn root_of(meta: &Metainfo, path: &[String]) -> Option<Sha256> {
    meta.info
        .files
        .iter()
        .find(|f| !f.attr.pad && f.path.components().eq(path.iter().map(String::as_str)))
        .and_then(|f| f.pieces_root)
}

fn peer_id(n: u8) -> [u8; 20] {
    let mut id = *b"-SS0001-storetarget0";
    id[19] = n;
    id
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("probe addr").port()
}

/// An in-place seeder of the tree under `dir`.
struct Seeder {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<Summary, swarm::Error>>,
}

impl Seeder {
    async fn start(meta: &Arc<Metainfo>, dir: &Path, id: u8, rate: Option<u64>) -> Seeder {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Seeder::spawn(meta, dir, id, rate, addr).await
    }

    async fn start_at(meta: &Arc<Metainfo>, dir: &Path, id: u8, addr: SocketAddr) -> Seeder {
        Seeder::spawn(meta, dir, id, None, addr).await
    }

    async fn spawn(
        meta: &Arc<Metainfo>,
        dir: &Path,
        id: u8,
        rate: Option<u64>,
        addr: SocketAddr,
    ) -> Seeder {
        let mut opts = Options::new(dir.to_owned(), peer_id(id));
        opts.listen = Some(addr);
        opts.seed = true;
        opts.use_torrent_sources = false;
        if let Some(r) = rate {
            opts.limits.up.push(Arc::new(Limiter::new(r)));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let m = Arc::clone(meta);
        let task = tokio::spawn(async move {
            engine::run(
                m,
                opts,
                async move {
                    let _ = stopped.await;
                },
                |_| {},
            )
            .await
        });
        // Listening once a connection goes through (the engine hashes the
        // tree first).
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "seeder never listened on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Seeder {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) -> Summary {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("seeder stops")
            .expect("seeder task")
            .expect("seeder run")
    }
}

fn store_opts(
    store: &Arc<Mutex<Store>>,
    wanted: Vec<bool>,
    peers: &[SocketAddr],
    id: u8,
) -> Options {
    let target = Target::Store {
        store: Arc::clone(store),
        wanted,
    };
    let mut opts = Options::with_target(target, peer_id(id));
    opts.peers = peers.to_vec();
    opts.use_torrent_sources = false;
    opts
}

/// A seeding store-target engine that takes [`Control`]s, as a node runs
/// one for fetch-on-miss.
struct Controlled {
    control: mpsc::Sender<Control>,
    completed: mpsc::UnboundedReceiver<usize>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Summary, swarm::Error>>,
}

impl Controlled {
    fn start(meta: &Arc<Metainfo>, mut opts: Options) -> Controlled {
        let (control, ctl_rx) = mpsc::channel(8);
        let (done_tx, completed) = mpsc::unbounded_channel();
        opts.control = Some(ctl_rx);
        opts.completed = Some(done_tx);
        opts.seed = true;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(engine::run(
            Arc::clone(meta),
            opts,
            async move {
                let _ = stopped.await;
            },
            |_| {},
        ));
        Controlled {
            control,
            completed,
            stop,
            task,
        }
    }

    /// Wants `file`, then waits up to `limit` for the next completed file.
    async fn want(&mut self, file: usize, urgent: bool, limit: Duration, what: &str) -> usize {
        self.control
            .send(Control::Want { file, urgent })
            .await
            .expect("control");
        self.next(limit, what).await
    }

    /// The next completed file, within `limit`.
    async fn next(&mut self, limit: Duration, what: &str) -> usize {
        tokio::time::timeout(limit, self.completed.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .expect("engine running")
    }
}

/// Runs a store-target download to completion.
async fn leech(meta: &Arc<Metainfo>, opts: Options) -> Summary {
    let run = engine::run(Arc::clone(meta), opts, std::future::pending(), |_| {});
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("download finishes in time")
        .expect("download")
}

fn object(store: &Arc<Mutex<Store>>, root: &Sha256) -> Option<Vec<u8>> {
    let s = store.lock().expect("store lock");
    s.has_object(root)
        .then(|| std::fs::read(s.object_path(root)).expect("read object"))
}

/// Pieces a restart trusts: whole objects plus recorded pieces of partials.
fn recorded_pieces(store: &Arc<Mutex<Store>>, meta: &Metainfo) -> u64 {
    let s = store.lock().expect("store lock");
    let mut n = 0;
    for f in meta.info.real_files() {
        let Some(root) = f.pieces_root else { continue };
        if s.has_object(&root) {
            n += f.piece_count(PIECE);
        } else if let Ok(v) = s.verified_pieces(&root) {
            n += v.len() as u64;
        }
    }
    n
}

fn wire_bytes(len: u64) -> (u64, u64) {
    // Blocks straddling a file's end are fetched whole (padding as zeros).
    (len, len.next_multiple_of(BLOCK))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_then_control_then_next_release_reuses_objects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = [
        ("a/one.deb", 1, 100_000),
        ("a/two.deb", 2, 5_000),
        ("b/three.deb", 3, 32_768),
        ("b/four.deb", 4, 70_000),
        ("b/empty", 5, 0),
        ("c/five.deb", 6, 200_000),
        ("c/six", 7, 1),
        ("dists/Release", 8, 45_000),
    ];
    let tree1 = files(&spec);
    let src1 = tmp.path().join("src1");
    let meta1 = release(&src1, "rel", &tree1);
    let seeder = Seeder::start(&meta1, &src1, 1, None).await;

    let data = tmp.path().join("data");
    let store = Arc::new(Mutex::new(Store::open(&data).expect("open store")));
    let idx1 = index_of(&meta1);
    let paths: Vec<Vec<String>> = tree1.keys().cloned().collect();
    // Every other file, the empty one among them.
    let wanted_paths: Vec<Vec<String>> = paths.iter().step_by(2).cloned().collect();
    let mut wanted = vec![false; meta1.info.files.len()];
    for p in &wanted_paths {
        wanted[idx1[p]] = true;
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut opts = store_opts(&store, wanted.clone(), &[seeder.addr], 2);
    opts.completed = Some(done_tx);
    let s1 = leech(&meta1, opts).await;
    assert!(s1.complete, "{s1:?}");

    let with_data: Vec<&Vec<String>> = wanted_paths
        .iter()
        .filter(|p| !tree1[*p].is_empty())
        .collect();
    let mut reported = Vec::new();
    while let Ok(f) = done_rx.try_recv() {
        reported.push(f);
    }
    reported.sort_unstable();
    let mut expected: Vec<usize> = with_data.iter().map(|p| idx1[*p]).collect();
    expected.sort_unstable();
    assert_eq!(reported, expected, "completed files");
    assert_eq!(s1.completed_files, expected.len() as u64);
    let (lo, hi) = with_data
        .iter()
        .map(|p| wire_bytes(tree1[*p].len() as u64))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        (lo..=hi + 4 * BLOCK).contains(&s1.downloaded),
        "downloaded {} for {lo}..{hi} wanted bytes",
        s1.downloaded
    );
    for (path, bytes) in &tree1 {
        let Some(root) = root_of(&meta1, path) else {
            assert!(bytes.is_empty());
            continue;
        };
        let got = object(&store, &root);
        if wanted_paths.contains(path) {
            assert_eq!(got.as_deref(), Some(&bytes[..]), "object of {path:?}");
        } else {
            assert!(got.is_none(), "unwanted {path:?} was stored");
        }
    }
    assert!(
        store
            .lock()
            .expect("lock")
            .partials()
            .expect("partials")
            .is_empty(),
        "a file was begun that is not complete"
    );

    // Fetch-on-miss: nothing wanted, then one file urgently, then one
    // already stored (answered at once).
    let missing = paths
        .iter()
        .find(|p| !wanted_paths.contains(p) && !tree1[*p].is_empty())
        .expect("an unwanted file with data")
        .clone();
    let stored = with_data[0].clone();
    let mut e = Controlled::start(&meta1, store_opts(&store, Vec::new(), &[seeder.addr], 3));
    let got = e
        .want(
            idx1[&missing],
            true,
            Duration::from_secs(30),
            "urgent file completes in time",
        )
        .await;
    assert_eq!(got, idx1[&missing]);
    let got = e
        .want(
            idx1[&stored],
            false,
            Duration::from_secs(10),
            "stored file reported",
        )
        .await;
    assert_eq!(got, idx1[&stored]);
    let _ = e.stop.send(());
    let s2 = tokio::time::timeout(Duration::from_secs(20), e.task)
        .await
        .expect("stops")
        .expect("task")
        .expect("run");
    assert_eq!(s2.completed_files, 1, "{s2:?}");
    assert!(
        s2.downloaded <= wire_bytes(tree1[&missing].len() as u64).1 + 4 * BLOCK,
        "{s2:?}"
    );
    let root = root_of(&meta1, &missing).expect("root");
    assert_eq!(object(&store, &root).as_deref(), Some(&tree1[&missing][..]));
    seeder.stop().await;

    // The next release: one wanted file changed, one added.
    let mut tree2 = tree1.clone();
    let changed = with_data[1].clone();
    tree2.insert(changed.clone(), content(99, tree1[&changed].len() + 3000));
    let added: Vec<String> = vec!["c".into(), "seven.deb".into()];
    tree2.insert(added.clone(), content(100, 90_000));
    let src2 = tmp.path().join("src2");
    let meta2 = release(&src2, "rel", &tree2);
    let seeder = Seeder::start(&meta2, &src2, 4, None).await;
    let idx2 = index_of(&meta2);
    let mut wanted2 = vec![false; meta2.info.files.len()];
    for p in wanted_paths.iter().chain([&added]) {
        wanted2[idx2[p]] = true;
    }
    let s3 = leech(&meta2, store_opts(&store, wanted2, &[seeder.addr], 5)).await;
    assert!(s3.complete, "{s3:?}");
    assert_eq!(
        s3.completed_files, 2,
        "only the changed and added files: {s3:?}"
    );
    let (lo, hi) = [&changed, &added]
        .iter()
        .map(|p| wire_bytes(tree2[*p].len() as u64))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        (lo..=hi + 4 * BLOCK).contains(&s3.downloaded),
        "downloaded {} for {lo}..{hi} changed bytes",
        s3.downloaded
    );
    for p in wanted_paths.iter().chain([&added]) {
        if let Some(root) = root_of(&meta2, p) {
            assert_eq!(
                object(&store, &root).as_deref(),
                Some(&tree2[p][..]),
                "{p:?}"
            );
        }
    }
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_download_resumes_without_refetching() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = files(&[
        ("x/a", 11, 1 << 20),
        ("x/b", 12, 1 << 20),
        ("y/c", 13, 1 << 20),
    ]);
    let src = tmp.path().join("src");
    let meta = release(&src, "big", &tree);
    let total_pieces: u64 = meta.info.real_files().map(|f| f.piece_count(PIECE)).sum();
    // Slow enough that the store flushes (every 2 s) before the cut.
    let seeder = Seeder::start(&meta, &src, 1, Some(512 * 1024)).await;
    let data = tmp.path().join("data");
    let store = Arc::new(Mutex::new(Store::open(&data).expect("open store")));
    let wanted = vec![true; meta.info.files.len()];
    let opts = store_opts(&store, wanted.clone(), &[seeder.addr], 2);
    let m = Arc::clone(&meta);
    let task = tokio::spawn(engine::run(m, opts, std::future::pending(), |_| {}));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = recorded_pieces(&store, &meta);
        if n >= 16 {
            assert!(n < total_pieces, "finished before the cut: make it slower");
            break;
        }
        assert!(Instant::now() < deadline, "no piece recorded in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let _ = task.await;
    seeder.stop().await;
    // The disk thread drains its queue and lets go of the store.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Arc::strong_count(&store) > 1 {
        assert!(Instant::now() < deadline, "disk thread kept the store");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Drop without a flush: whatever was not recorded is lost, as in a crash.
    drop(Arc::try_unwrap(store).expect("sole owner"));
    let store = Arc::new(Mutex::new(Store::open(&data).expect("reopen store")));
    let recorded = recorded_pieces(&store, &meta);
    assert!(recorded >= 16 && recorded < total_pieces, "{recorded}");

    let seeder = Seeder::start(&meta, &src, 3, None).await;
    let s = leech(&meta, store_opts(&store, wanted, &[seeder.addr], 4)).await;
    assert!(s.complete, "{s:?}");
    assert_eq!(u64::from(s.resumed_pieces), recorded, "{s:?}");
    let missing = (total_pieces - recorded) * PIECE;
    assert!(
        (missing..=missing + 8 * BLOCK).contains(&s.downloaded),
        "downloaded {} for {missing} missing bytes",
        s.downloaded
    );
    for (path, bytes) in &tree {
        let root = root_of(&meta, path).expect("root");
        assert_eq!(
            object(&store, &root).as_deref(),
            Some(&bytes[..]),
            "{path:?}"
        );
    }
    seeder.stop().await;
}

/// A seeder whose files were overwritten after its resume record said it
/// had everything: it serves wrong bytes for every piece.
fn corrupt_copy(meta: &Metainfo, tree: &Files, dir: &Path) {
    for (i, (path, data)) in tree.iter().enumerate() {
        let mut p = dir.join(&meta.info.name);
        p.extend(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content(1000 + i as u64, data.len())).expect("write");
    }
    let n = u32::try_from(meta.info.piece_count()).expect("pieces");
    let mut resume = b"SSR1".to_vec();
    resume.extend(n.to_be_bytes());
    resume.extend(torrent::bitfield::Bitfield::full(n).as_bytes());
    let v1 = meta.info.v1_infohash.expect("hybrid has a v1 infohash");
    let rdir = dir.join(".swarmsync");
    std::fs::create_dir_all(&rdir).expect("mkdir");
    std::fs::write(
        rdir.join(format!("{}.resume", torrent::hash::to_hex(&v1))),
        resume,
    )
    .expect("write resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_caught_by_the_store_and_banned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = files(&[("p/a", 21, 256 * 1024), ("p/b", 22, 100_000)]);
    let src = tmp.path().join("src");
    let meta = release(&src, "t", &tree);
    let bad_dir = tmp.path().join("bad");
    corrupt_copy(&meta, &tree, &bad_dir);
    let bad = Seeder::start(&meta, &bad_dir, 1, None).await;
    let honest_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let data = tmp.path().join("data");
    let store = Arc::new(Mutex::new(Store::open(&data).expect("open store")));
    let wanted = vec![true; meta.info.files.len()];
    let opts = store_opts(&store, wanted, &[bad.addr, honest_addr], 2);
    let m = Arc::clone(&meta);
    let task = tokio::spawn(engine::run(m, opts, std::future::pending(), |_| {}));
    // Only the corrupt peer at first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let honest = Seeder::start_at(&meta, &src, 3, honest_addr).await;
    let s = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("download finishes in time")
        .expect("task")
        .expect("download");
    assert!(s.complete, "{s:?}");
    assert!(s.hash_failures >= 1, "{s:?}");
    for (path, bytes) in &tree {
        let root = root_of(&meta, path).expect("root");
        assert_eq!(
            object(&store, &root).as_deref(),
            Some(&bytes[..]),
            "{path:?}"
        );
    }
    honest.stop().await;
    bad.stop().await;
}

/// A store-target node seeds what it holds: whole objects and the verified
/// pieces of a partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_target_seeds_objects_and_verified_partial_pieces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = files(&[("s/whole", 31, 300_000), ("s/part", 32, 512 * 1024)]);
    let src = tmp.path().join("src");
    let meta = release(&src, "t", &tree);
    let idx = index_of(&meta);
    let whole = vec!["s".to_owned(), "whole".to_owned()];
    let part = vec!["s".to_owned(), "part".to_owned()];
    let part_root = root_of(&meta, &part).expect("root");

    // Node A: "whole" complete, and half of "part" recorded in its store,
    // written through the store's own API.
    let data_a = tmp.path().join("a");
    let store_a = Arc::new(Mutex::new(Store::open(&data_a).expect("open store")));
    {
        let seeder = Seeder::start(&meta, &src, 1, None).await;
        let mut wanted = vec![false; meta.info.files.len()];
        wanted[idx[&whole]] = true;
        leech(&meta, store_opts(&store_a, wanted, &[seeder.addr], 2)).await;
        seeder.stop().await;
        let layer = meta.piece_layers.get(&part_root).expect("layer").clone();
        let mut s = store_a.lock().expect("lock");
        s.begin_file(store::FileSpec {
            root: part_root,
            length: tree[&part].len() as u64,
            piece_len: PIECE,
            piece_layer: layer,
        })
        .expect("begin");
        for i in (0..16u32).step_by(2) {
            let at = i as usize * PIECE as usize;
            let piece = &tree[&part][at..at + PIECE as usize];
            assert_eq!(
                s.write_piece(&part_root, i, piece).expect("write piece"),
                store::PieceOutcome::Verified
            );
        }
        s.flush().expect("flush");
    }
    // A seeds (wanting nothing more); B downloads everything it can.
    let addr_a = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut opts = store_opts(&store_a, Vec::new(), &[], 3);
    opts.seed = true;
    opts.listen = Some(addr_a);
    let (stop_a, stopped_a) = oneshot::channel::<()>();
    let a = tokio::spawn(engine::run(
        Arc::clone(&meta),
        opts,
        async move {
            let _ = stopped_a.await;
        },
        |_| {},
    ));
    let data_b = tmp.path().join("b");
    let store_b = Arc::new(Mutex::new(Store::open(&data_b).expect("open store")));
    let wanted = vec![true; meta.info.files.len()];
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut opts = store_opts(&store_b, wanted, &[addr_a], 4);
    opts.completed = Some(done_tx);
    let b = tokio::spawn(engine::run(
        Arc::clone(&meta),
        opts,
        tokio::time::sleep(Duration::from_secs(4)),
        |_| {},
    ));
    let got = tokio::time::timeout(Duration::from_secs(20), done_rx.recv())
        .await
        .expect("the whole file arrives");
    assert_eq!(got, Some(idx[&whole]));
    let s = b.await.expect("task").expect("run");
    assert!(!s.complete, "A cannot have given all of it: {s:?}");
    assert_eq!(s.hash_failures, 0, "{s:?}");
    assert_eq!(
        object(&store_b, &root_of(&meta, &whole).expect("root")).as_deref(),
        Some(&tree[&whole][..])
    );
    let got: Vec<u32> = store_b
        .lock()
        .expect("lock")
        .verified_pieces(&part_root)
        .expect("B began the partial file");
    let expected: Vec<u32> = (0..16).step_by(2).collect();
    assert_eq!(got, expected, "B has exactly A's verified pieces");
    let _ = stop_a.send(());
    a.await.expect("task").expect("run");
}

#[tokio::test]
async fn v1_only_torrent_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = files(&[("v/a", 41, 50_000), ("v/b", 42, 20_000)]);
    let root = tmp.path().join("src").join("v1");
    for (path, data) in &tree {
        let mut p = root.clone();
        p.extend(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write tree");
    }
    let inputs = tree
        .iter()
        .map(|(path, data)| InputFile {
            path: path.clone(),
            length: data.len() as u64,
            executable: false,
            symlink_target: None,
        })
        .collect();
    let opts = CreateOptions {
        version: Version::V1,
        piece_length: Some(PIECE),
        ..CreateOptions::default()
    };
    let plan = Plan::new("v1", false, inputs, &opts).expect("plan");
    let meta = Arc::new(
        create(&plan, &opts, &Disk(root), 1, &|_| {})
            .expect("create")
            .1,
    );
    let store = Arc::new(Mutex::new(
        Store::open(tmp.path().join("data")).expect("open store"),
    ));
    let wanted = vec![true; meta.info.files.len()];
    let run = engine::run(
        meta,
        store_opts(&store, wanted, &[], 1),
        std::future::pending(),
        |_| {},
    );
    let err = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("fails at once")
        .expect_err("v1-only must be refused");
    let msg = err.to_string();
    assert!(msg.contains("v1-only") && msg.contains("hybrid"), "{msg}");
    assert!(
        store
            .lock()
            .expect("lock")
            .partials()
            .expect("partials")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_the_same_content_are_fetched_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let same = content(51, 200_000);
    let mut tree = files(&[("d/other", 52, 60_000)]);
    for p in ["d/a", "d/by-hash/x", "d/by-hash/y"] {
        tree.insert(p.split('/').map(str::to_owned).collect(), same.clone());
    }
    let src = tmp.path().join("src");
    let meta = release(&src, "t", &tree);
    let seeder = Seeder::start(&meta, &src, 1, None).await;
    let store = Arc::new(Mutex::new(
        Store::open(tmp.path().join("data")).expect("open store"),
    ));
    let wanted = vec![true; meta.info.files.len()];
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut opts = store_opts(&store, wanted, &[seeder.addr], 2);
    opts.completed = Some(done_tx);
    let s = leech(&meta, opts).await;
    assert!(s.complete, "{s:?}");
    assert_eq!(s.completed_files, 4, "{s:?}");
    let mut n = 0;
    while done_rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4, "every copy is reported");
    let (lo, hi) = [200_000u64, 60_000]
        .iter()
        .map(|l| wire_bytes(*l))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        (lo..=hi + 4 * BLOCK).contains(&s.downloaded),
        "downloaded {} for {lo}..{hi}: the copies were fetched too",
        s.downloaded
    );
    for (path, bytes) in &tree {
        let root = root_of(&meta, path).expect("root");
        assert_eq!(
            object(&store, &root).as_deref(),
            Some(&bytes[..]),
            "{path:?}"
        );
    }
    seeder.stop().await;
}

/// Records every piece of `path` in the store, as a run cut off between
/// its last flush and `complete_file` leaves it.
fn record_all_pieces(store: &Arc<Mutex<Store>>, meta: &Metainfo, path: &[String], bytes: &[u8]) {
    let root = root_of(meta, path).expect("root");
    let mut s = store.lock().expect("lock");
    s.begin_file(store::FileSpec {
        root,
        length: bytes.len() as u64,
        piece_len: PIECE,
        piece_layer: meta.piece_layers.get(&root).cloned().unwrap_or_default(),
    })
    .expect("begin");
    for (i, piece) in (0u32..).zip(bytes.chunks(PIECE as usize)) {
        s.write_piece(&root, i, piece).expect("write piece");
    }
    s.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_recorded_but_not_completed_complete_without_peers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = files(&[("r/a", 71, 150_000), ("r/b", 72, 40_000)]);
    let meta = release(&tmp.path().join("src"), "t", &tree);
    let idx = index_of(&meta);
    let store = Arc::new(Mutex::new(
        Store::open(tmp.path().join("data")).expect("open store"),
    ));
    for (path, bytes) in &tree {
        record_all_pieces(&store, &meta, path, bytes);
    }
    let a = vec!["r".to_owned(), "a".to_owned()];
    let b = vec!["r".to_owned(), "b".to_owned()];

    // Wanted from the start: completed at once, nothing downloaded.
    let mut wanted = vec![false; meta.info.files.len()];
    wanted[idx[&a]] = true;
    let s = leech(&meta, store_opts(&store, wanted, &[], 1)).await;
    assert!(s.complete && s.downloaded == 0, "{s:?}");
    assert_eq!(s.completed_files, 1);
    let root = root_of(&meta, &a).expect("root");
    assert_eq!(object(&store, &root).as_deref(), Some(&tree[&a][..]));

    // Wanted while running: completed at the next flush.
    let mut e = Controlled::start(&meta, store_opts(&store, Vec::new(), &[], 2));
    let got = e
        .want(
            idx[&b],
            false,
            Duration::from_secs(10),
            "completed at the next flush",
        )
        .await;
    assert_eq!(got, idx[&b]);
    let _ = e.stop.send(());
    let s = e.task.await.expect("task").expect("run");
    assert_eq!((s.completed_files, s.downloaded), (1, 0), "{s:?}");
    let root = root_of(&meta, &b).expect("root");
    assert_eq!(object(&store, &root).as_deref(), Some(&tree[&b][..]));
}

/// A node wants the metadata first and the rest later: a by-hash copy
/// wanted after its twin was stored (so it was stored with it, unwanted)
/// must be reported at once, not waited for forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_wanted_after_its_twin_was_stored_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let same = content(61, 30_000);
    let mut tree = files(&[("d/other", 62, 20_000)]);
    for p in ["d/a", "d/by-hash/x"] {
        tree.insert(p.split('/').map(str::to_owned).collect(), same.clone());
    }
    let src = tmp.path().join("src");
    let meta = release(&src, "t", &tree);
    let seeder = Seeder::start(&meta, &src, 1, None).await;
    let store = Arc::new(Mutex::new(
        Store::open(tmp.path().join("data")).expect("open store"),
    ));
    let index = index_of(&meta);
    let path = |p: &str| -> Vec<String> { p.split('/').map(str::to_owned).collect() };
    let (a, x) = (index[&path("d/a")], index[&path("d/by-hash/x")]);
    let mut wanted = vec![false; meta.info.files.len()];
    wanted[a] = true;
    let mut e = Controlled::start(&meta, store_opts(&store, wanted, &[seeder.addr], 2));
    let got = e
        .next(Duration::from_secs(30), "the wanted file completes in time")
        .await;
    assert_eq!(got, a);
    let got = e
        .want(
            x,
            false,
            Duration::from_secs(10),
            "the copy is reported, not waited for",
        )
        .await;
    assert_eq!(got, x);
    let _ = e.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), e.task).await;
    seeder.stop().await;
}
