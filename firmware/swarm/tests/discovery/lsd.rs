//! Local service discovery between two network namespaces joined by a veth
//! pair, made and deleted by the test (needs root; skipped otherwise).
//!
//! Each namespace runs this test binary again (`ip netns exec … <self>
//! lsd::lsd_node --exact`) as one LSD node: it announces its own infohash
//! and a shared one, and must hear the other node announce the shared one,
//! over IPv4 and IPv6, from the other node's address; never its own
//! announces (multicast loopback delivers them back; the cookie must filter
//! them out), and never the other node's own infohash, which it does not
//! want. Node A names its
//! interface explicitly; node B relies on the routing table (a multicast
//! route), the default on a board. A second test runs two nodes in one
//! namespace that has nothing but loopback.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use swarm::lsd::{Config, Lsd};
use torrent::hash::{Sha1, from_hex, to_hex};

const SHARED: Sha1 = [0x5a; 20];
const NODE_ENV: &str = "SWARMSYNC_LSD_NODE";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces made by a test; deleted on drop, even after a panic.
struct Testbed {
    a: String,
    b: String,
}

/// One namespace with only its loopback interface up.
struct LoopbackOnly(String);

impl LoopbackOnly {
    fn new() -> LoopbackOnly {
        let ns = LoopbackOnly(format!("ssync-lsd-{}-lo", std::process::id()));
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for LoopbackOnly {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdin(Stdio::null())
            .output();
    }
}

impl Testbed {
    fn new() -> Testbed {
        let pid = std::process::id();
        let t = Testbed {
            a: format!("ssync-lsd-{pid}-a"),
            b: format!("ssync-lsd-{pid}-b"),
        };
        ip(&["netns", "add", &t.a]);
        ip(&["netns", "add", &t.b]);
        ip(&[
            "-n", &t.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns",
            &t.b,
        ]);
        for (ns, v4, v6) in [
            (&t.a, "10.213.0.1/24", "fd53::1/64"),
            (&t.b, "10.213.0.2/24", "fd53::2/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", "veth0"]);
            ip(&["-n", ns, "-6", "addr", "add", v6, "dev", "veth0", "nodad"]);
            ip(&["-n", ns, "link", "set", "veth0", "up"]);
        }
        // B has no interface configured in LSD: the kernel routes the group.
        ip(&["-n", &t.b, "route", "add", "224.0.0.0/4", "dev", "veth0"]);
        t
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// How one node runs.
struct Node {
    own: Sha1,
    port: u16,
    peer_port: u16,
    /// The IPv4 interface address given to LSD.
    iface_v4: &'static str,
    /// Give LSD the IPv6 interface index (else 0: the routing table).
    explicit: bool,
    v6: bool,
    /// Take peers through `Lsd::forward` instead of `Lsd::next`.
    forward: bool,
}

fn run_node(ns: &str, node: Node) -> std::process::Child {
    let Node {
        own,
        port,
        peer_port,
        iface_v4,
        explicit,
        v6,
        forward,
    } = node;
    let exe = std::env::current_exe().expect("test binary path");
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args([
            "lsd::lsd_node",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NODE_ENV, "1")
        .env("LSD_OWN", to_hex(&own))
        .env("LSD_PEER_PORT", peer_port.to_string())
        .env("LSD_PORT", port.to_string())
        .env("LSD_IFACE_V4", iface_v4)
        .env("LSD_EXPLICIT", if explicit { "1" } else { "0" })
        .env("LSD_V6", if v6 { "1" } else { "0" })
        .env("LSD_FORWARD", if forward { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a node")
}

fn wait(mut child: std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("node output")
}

/// Lines `HEARD <family> <infohash> <addr>` a node printed.
fn heard(out: &Output) -> BTreeSet<(String, String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("HEARD ")?.split(' ');
            Some((w.next()?.into(), w.next()?.into(), w.next()?.into()))
        })
        .collect()
}

#[test]
fn lsd_between_two_namespaces() {
    if !is_root() {
        eprintln!("skipping lsd_between_two_namespaces: creating network namespaces needs root");
        return;
    }
    let bed = Testbed::new();
    let (own_a, own_b) = ([0xaa; 20], [0xbb; 20]);
    let node = |own, port, peer_port, iface_v4, explicit| Node {
        own,
        port,
        peer_port,
        iface_v4,
        explicit,
        v6: true,
        forward: false,
    };
    let a = run_node(&bed.a, node(own_a, 7001, 7002, "10.213.0.1", true));
    let b = run_node(&bed.b, node(own_b, 7002, 7001, "0.0.0.0", false));
    let (a, b) = (
        wait(a, Duration::from_secs(30)),
        wait(b, Duration::from_secs(30)),
    );
    for (name, out) in [("A", &a), ("B", &b)] {
        assert!(
            out.status.success(),
            "node {name} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ha, hb) = (heard(&a), heard(&b));
    let shared = to_hex(&SHARED);
    for (name, got, v4, v6) in [
        ("A", &ha, "10.213.0.2:7002", "[fd53::2]:7002"),
        ("B", &hb, "10.213.0.1:7001", "[fd53::1]:7001"),
    ] {
        for (family, addr) in [("v4", v4), ("v6", v6)] {
            assert!(
                got.contains(&(family.into(), shared.clone(), addr.into())),
                "{name} did not hear the shared hash over {family} from {addr}: {got:?}"
            );
        }
    }
    drop(bed);
}

/// Several nodes in one namespace (how an end-to-end test can run a swarm
/// on one machine): no LAN interface at all, the group reached through
/// loopback with the interface set to 127.0.0.1, IPv4 only.
#[test]
fn lsd_within_one_namespace_over_loopback() {
    if !is_root() {
        eprintln!(
            "skipping lsd_within_one_namespace_over_loopback: creating network namespaces needs root"
        );
        return;
    }
    let ns = LoopbackOnly::new();
    let node = |own, port, peer_port, forward| Node {
        own,
        port,
        peer_port,
        iface_v4: "127.0.0.1",
        explicit: true,
        v6: false,
        forward,
    };
    let a = run_node(&ns.0, node([0xaa; 20], 7101, 7102, false));
    // B takes its peers through `Lsd::forward`.
    let b = run_node(&ns.0, node([0xbb; 20], 7102, 7101, true));
    let (a, b) = (
        wait(a, Duration::from_secs(30)),
        wait(b, Duration::from_secs(30)),
    );
    for (name, out, from) in [("A", &a, "127.0.0.1:7102"), ("B", &b, "127.0.0.1:7101")] {
        assert!(
            out.status.success(),
            "node {name} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            heard(out).contains(&("v4".into(), to_hex(&SHARED), from.into())),
            "{name} did not hear {from}: {:?}",
            heard(out)
        );
    }
    drop(ns);
}

/// One LSD node, run by [`lsd_between_two_namespaces`] inside a namespace;
/// without its environment variable it does nothing.
#[test]
fn lsd_node() {
    if std::env::var_os(NODE_ENV).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let own: Sha1 = from_hex(&var("LSD_OWN")).expect("LSD_OWN");
    let peer_port: u16 = var("LSD_PEER_PORT").parse().expect("LSD_PEER_PORT");
    let port: u16 = var("LSD_PORT").parse().expect("LSD_PORT");
    let iface_v4: Ipv4Addr = var("LSD_IFACE_V4").parse().expect("LSD_IFACE_V4");
    let explicit = var("LSD_EXPLICIT") == "1";
    let with_v6 = var("LSD_V6") == "1";
    let forward = var("LSD_FORWARD") == "1";
    let index: u32 = if explicit && with_v6 {
        std::fs::read_to_string("/sys/class/net/veth0/ifindex")
            .expect("veth0 ifindex")
            .trim()
            .parse()
            .expect("ifindex")
    } else {
        0
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut lsd = Lsd::bind(Config {
            interval: Duration::from_millis(200),
            interface_v4: Some(iface_v4),
            interface_v6: with_v6.then_some(index),
            ..Config::new(port)
        })
        .expect("bind LSD");
        assert_eq!(lsd.families(), (true, with_v6), "the families asked for");
        // The peer also announces its own hash, which we do not want: it
        // must not show up.
        lsd.set_infohashes([own, SHARED]);
        // Either poll `next` here or let `forward` feed a channel.
        let (tx, mut forwarded) = tokio::sync::mpsc::channel(16);
        let mut lsd = Some(lsd);
        if forward && let Some(lsd) = lsd.take() {
            tokio::spawn(lsd.forward(tx));
        }
        let want: BTreeSet<bool> = if with_v6 {
            [false, true].into()
        } else {
            [false].into()
        };
        let mut got = BTreeSet::new();
        let start = Instant::now();
        // Keep listening for a while after hearing everything, so our own
        // looped-back announces (several intervals' worth) are seen too.
        let deadline = start + Duration::from_secs(20);
        let mut done_at = None;
        while Instant::now() < deadline && done_at.is_none_or(|t| Instant::now() < t) {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(Duration::from_secs(1));
            let p = match lsd.as_mut() {
                Some(lsd) => match tokio::time::timeout(wait, lsd.next()).await {
                    Ok(next) => next.expect("LSD receive"),
                    Err(_) => continue,
                },
                None => match tokio::time::timeout(wait, forwarded.recv()).await {
                    Ok(next) => next.expect("forwarding ended"),
                    Err(_) => continue,
                },
            };
            let v6 = matches!(p.addr.ip(), IpAddr::V6(_));
            println!(
                "HEARD {} {} {}",
                if v6 { "v6" } else { "v4" },
                to_hex(&p.info_hash),
                p.addr
            );
            assert_ne!(p.addr.port(), port, "heard our own announce: {p:?}");
            assert_eq!(p.addr.port(), peer_port, "{p:?}");
            assert_eq!(
                p.info_hash, SHARED,
                "only the shared hash is wanted and announced: {p:?}"
            );
            got.insert(v6);
            if done_at.is_none() && want.is_subset(&got) {
                done_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        assert!(want.is_subset(&got), "heard only {got:?}");
    });
}
