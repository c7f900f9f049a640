//! The DHT on a private loopback network: a few server nodes bound to
//! 127.0.0.1 on free ports, and our nodes bootstrapping from them only.
//! No public router is ever contacted: every node gets an explicit
//! bootstrap list of testnet addresses (the first testnet node an empty
//! one), which is all `swarm::dht` ever bootstraps from.
//!
//! - A seed and a leecher that know nothing of each other (no peers, no
//!   trackers, no LSD, no web seeds) meet through the DHT alone, and the
//!   download completes byte-identical.
//! - A signed mutable item (BEP 44, as BEP 46 channels use it) is put and
//!   read back from another node, its `seq` rising; a stale `seq` is
//!   refused and does not replace the newer item.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use swarm::dht::{Config, Dht, Problem};
use swarm::engine::{self, Options};
use torrent::Version;
use torrent::create::{InputFile, Options as CreateOptions, Plan, Source, create};

/// A private DHT of `n` server nodes on 127.0.0.1: the first starts
/// alone, the others join through it. Returns the nodes (dropping them
/// ends the network) and their addresses as a bootstrap list.
async fn testnet(n: usize) -> (Vec<Dht>, Vec<String>) {
    let mut nodes: Vec<Dht> = Vec::new();
    let mut bootstrap: Vec<String> = Vec::new();
    for _ in 0..n {
        let dht = Dht::start(Config {
            bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            bootstrap: bootstrap.first().cloned().into_iter().collect(),
            server_mode: true,
            ..Config::default()
        })
        .await
        .expect("start a testnet node");
        assert!(dht.local_addr().ip().is_loopback());
        bootstrap.push(dht.local_addr().to_string());
        nodes.push(dht);
    }
    (nodes, bootstrap)
}

/// Our node on 127.0.0.1 joined to `bootstrap`, retrying lookups fast.
async fn node(bootstrap: &[String]) -> Arc<Dht> {
    let dht = Dht::start(Config {
        bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        bootstrap: bootstrap.to_vec(),
        lookup_first: Duration::from_millis(500),
        lookup_every: Duration::from_secs(2),
        ..Config::default()
    })
    .await
    .expect("start a DHT node");
    assert!(dht.local_addr().ip().is_loopback());
    assert!(dht.bootstrapped().await, "node did not join the testnet");
    Arc::new(dht)
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

/// A small tree of pseudo-random files under `dir/name`, and a hybrid
/// torrent of it with no trackers and no web seeds.
fn tree_and_torrent(dir: &Path, name: &str) -> (BTreeMap<String, Vec<u8>>, torrent::Metainfo) {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).expect("tree root");
    let mut files = BTreeMap::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (file, len) in [("a.deb", 700_000usize), ("b.deb", 300_001), ("c", 5)] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(root.join(file), &data).expect("write file");
        files.insert(file.to_owned(), data);
    }
    let inputs = files
        .iter()
        .map(|(f, d)| InputFile {
            path: vec![f.clone()],
            length: d.len() as u64,
            executable: false,
            symlink_target: None,
        })
        .collect();
    let opts = CreateOptions {
        version: Version::Hybrid,
        piece_length: Some(64 * 1024),
        ..CreateOptions::default()
    };
    let plan = Plan::new(name, false, inputs, &opts).expect("plan");
    let meta = create(&plan, &opts, &Disk(root), 1, &|_| {})
        .expect("create")
        .1;
    (files, meta)
}

fn options(dir: &Path, id: u8, dht: Arc<Dht>, seed: bool) -> Options {
    let mut peer_id = *b"-SS0100-dhttest00000";
    peer_id[19] = id;
    let mut opts = Options::new(dir.to_owned(), peer_id);
    opts.listen = Some("127.0.0.1:0".parse().expect("address"));
    opts.seed = seed;
    opts.use_torrent_sources = false;
    opts.dht = Some(dht);
    opts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_and_leecher_meet_through_the_dht_only() {
    let (_net, bootstrap) = testnet(5).await;
    let seed_dir = tempfile::tempdir().expect("seed dir");
    let leech_dir = tempfile::tempdir().expect("leech dir");
    let (files, meta) = tree_and_torrent(seed_dir.path(), "pool");
    let meta = Arc::new(meta);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let seed = tokio::spawn(engine::run(
        Arc::clone(&meta),
        options(seed_dir.path(), 1, node(&bootstrap).await, true),
        async move {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    let leech = engine::run(
        Arc::clone(&meta),
        options(leech_dir.path(), 2, node(&bootstrap).await, false),
        std::future::pending::<()>(),
        |_| {},
    );
    let summary = tokio::time::timeout(Duration::from_secs(90), leech)
        .await
        .expect("the leecher did not finish within 90 s: no peer found through the DHT?")
        .expect("download");
    assert!(summary.complete);
    assert!(summary.downloaded >= 1_000_000, "{summary:?}");
    for (file, data) in &files {
        let got = std::fs::read(leech_dir.path().join("pool").join(file)).expect("read copy");
        assert!(got == *data, "{file} differs");
    }
    let _ = stop_tx.send(());
    let seeded = tokio::time::timeout(Duration::from_secs(20), seed)
        .await
        .expect("seed stops")
        .expect("seed task")
        .expect("seed");
    assert!(seeded.uploaded >= 1_000_000, "{seeded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutable_item_round_trip_with_rising_seq() {
    let (_net, bootstrap) = testnet(5).await;
    let writer = node(&bootstrap).await;
    let reader = node(&bootstrap).await;
    let seed = [42u8; 32];
    let public = mainline::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let salt = b"debian-stable";

    assert_eq!(
        reader.get_mutable(public, salt).await.expect("get"),
        None,
        "nothing published yet"
    );

    writer
        .put_mutable(seed, salt, b"release 1".to_vec(), 1)
        .await
        .expect("put seq 1");
    assert_eq!(
        reader.get_mutable(public, salt).await.expect("get"),
        Some((1, b"release 1".to_vec()))
    );

    let big = vec![b'r'; swarm::dht::MAX_VALUE];
    writer
        .put_mutable(seed, salt, big.clone(), 2)
        .await
        .expect("put seq 2 at the size limit");
    assert_eq!(
        reader.get_mutable(public, salt).await.expect("get"),
        Some((2, big.clone()))
    );

    // A replayed older release is refused and changes nothing.
    let e = writer
        .put_mutable(seed, salt, b"release 1".to_vec(), 1)
        .await
        .expect_err("stale seq");
    assert!(
        matches!(
            e,
            swarm::Error::Dht {
                problem: Problem::Stale,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        reader.get_mutable(public, salt).await.expect("get"),
        Some((2, big))
    );

    // Another salt, another key: other items, none published.
    assert_eq!(
        reader.get_mutable(public, b"other").await.expect("get"),
        None
    );
    assert_eq!(reader.get_mutable([9; 32], salt).await.expect("get"), None);
}
