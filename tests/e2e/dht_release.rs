//! The DHT release transport (BEP 46): an origin with `--dht` puts each
//! release into the channel's mutable item, and a node whose feed is dead
//! learns both releases from the DHT alone.
//!
//! Loopback only: the DHT is a few server nodes started in this process
//! on 127.0.0.1 (the first with no bootstrap at all), and the origin and
//! the node join through them, never through a public router.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use swarm::dht::{Config, Dht};

use crate::common::{Origin, bin, current_seq, port, served_seq, spawn};

/// A private DHT of `n` server nodes on 127.0.0.1, each joining through
/// the first. The nodes run on their own threads; the runtime only
/// started them, and is returned so it outlives them.
fn testnet(n: usize) -> (tokio::runtime::Runtime, Vec<Dht>, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut nodes = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    for _ in 0..n {
        let dht = rt
            .block_on(Dht::start(Config {
                bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
                bootstrap: addrs.first().cloned().into_iter().collect(),
                server_mode: true,
                ..Config::default()
            }))
            .expect("start a testnet node");
        addrs.push(dht.local_addr().to_string());
        nodes.push(dht);
    }
    (rt, nodes, addrs)
}

fn wait_seq(http: u16, want: u64, until: Instant, what: &str, logs: &[&Path]) {
    while Instant::now() < until {
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
        "{what}: release {want} not served in time\n{}",
        logs.join("\n----\n")
    );
}

#[test]
fn a_node_with_a_dead_feed_follows_the_dht_item() {
    let deadline = Instant::now() + Duration::from_secs(90);
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let o = Origin::new(d, 100_000);

    let (_rt, _net, dht_nodes) = testnet(4);
    let origin_log = d.join("origin.log");
    let _origin = o.start(&origin_log, &["--dht", "--dht-bootstrap", &dht_nodes[0]]);
    let first = current_seq(&d.join("origin"));

    // The feed is a closed port: only the DHT can tell the node.
    let dead_feed = format!("http://127.0.0.1:{}/-/releases/c", port());
    let (peer, http) = (port(), port());
    let bootstrap: Vec<String> = dht_nodes.iter().map(|a| format!("{a:?}")).collect();
    let config = d.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = {:?}\npeer_listen = \"127.0.0.1:{peer}\"\nhttp_listen = \"127.0.0.1:{http}\"\npoll_interval = \"1s\"\n\
             [[channel]]\nname = \"c\"\npublic_key = \"{}\"\nfeeds = [\"{dead_feed}\"]\n\
             [network]\nlsd = false\ndht = true\ndht_bootstrap = [{}]\n[leds]\nbackend = \"none\"\nwatchdog = \"off\"\n",
            d.join("node").display().to_string(),
            o.public,
            bootstrap.join(", ")
        ),
    )
    .expect("config");
    let node_log = d.join("node.log");
    let _node = spawn(bin().arg("run").arg("--config").arg(&config), &node_log);
    let logs = [origin_log.as_path(), node_log.as_path()];
    wait_seq(http, first, deadline, "node (first release)", &logs);

    // A cron-style publication; the running origin puts it in the DHT.
    let second = o.republish();
    assert!(second > first);
    wait_seq(http, second, deadline, "node (second release)", &logs);

    let origin = std::fs::read_to_string(&origin_log).unwrap_or_default();
    assert!(
        origin.contains(&format!("release {second} put in the DHT")),
        "{origin}"
    );
    let node = std::fs::read_to_string(&node_log).unwrap_or_default();
    assert!(node.contains(&format!("new release {second}")), "{node}");
}
