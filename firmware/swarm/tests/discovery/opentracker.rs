//! Two fake clients announce to a real opentracker (Debian package, run on
//! 127.0.0.1 by the test) over HTTP and over UDP and must find each other.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use swarm::announcer::{Announcer, AnnouncerConfig, Transfer};
use swarm::tracker::{Client, Config, Event, Problem, Request};
use tokio::sync::{mpsc, watch};
use torrent::tracker::TrackerError;
use torrent::tracker::udp::Timing;

/// A running opentracker, killed on drop.
pub struct OpenTracker {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    whitelist: Vec<[u8; 20]>,
}

fn find_opentracker() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("opentracker"))
        .find(|p| p.is_file())
        .expect("opentracker not found: install the Debian package (tools/setup does)")
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

impl OpenTracker {
    /// Starts opentracker accepting only `whitelist` (Debian builds it in
    /// whitelist mode).
    pub fn start(whitelist: &[[u8; 20]]) -> OpenTracker {
        // One start at a time: between `free_port` and opentracker binding
        // it, a parallel test could pick the same port, and the two
        // trackers would share it (opentracker sets SO_REUSEPORT).
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let bin = find_opentracker();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temporary directory");
            // opentracker chroots into its directory and drops to `nobody`
            // when run as root: that user must be able to read it.
            set_mode(dir.path(), 0o755);
            let list: String = whitelist
                .iter()
                .map(|h| format!("{}\n", torrent::hash::to_hex(h)))
                .collect();
            std::fs::write(dir.path().join("whitelist.txt"), list).expect("write whitelist");
            let conf = format!(
                "access.whitelist whitelist.txt\ntracker.rootdir {}\n",
                dir.path().display()
            );
            std::fs::write(dir.path().join("opentracker.conf"), conf).expect("write config");
            let log = std::fs::File::create(dir.path().join("log")).expect("log file");
            let port = free_port();
            let child = Command::new(&bin)
                .arg("-f")
                .arg(dir.path().join("opentracker.conf"))
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-P",
                    &port.to_string(),
                ])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start opentracker");
            let mut t = OpenTracker {
                child,
                port,
                dir,
                whitelist: whitelist.to_vec(),
            };
            if t.wait_ready() {
                return t;
            }
        }
        panic!("opentracker did not start in 5 attempts");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!(
                    "opentracker exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
                );
                return false;
            }
            if self.probe() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether opentracker answers an announce for the first whitelisted
    /// hash. It accepts connections before it has read its whitelist, and
    /// until then refuses every hash.
    fn probe(&self) -> bool {
        use std::io::{Read, Write};
        let Some(info_hash) = self.whitelist.first() else {
            return true;
        };
        let Ok(mut s) = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let url = torrent::tracker::TrackerUrl::parse(&self.http_url()).expect("url");
        let probe = Request {
            left: 0,
            ..request(*info_hash, 0xff, 1, Event::Stopped)
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = Vec::new();
        s.write_all(&torrent::tracker::http::request(&url, &probe, "probe"))
            .is_ok()
            && s.read_to_end(&mut reply).is_ok()
            && torrent::tracker::http::parse_reply(&reply, &Default::default()).is_ok()
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn request(info_hash: [u8; 20], id: u8, port: u16, event: Event) -> Request {
    let mut peer_id = *b"-SS0001-000000000000";
    peer_id[19] = id;
    Request {
        info_hash,
        peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event,
        numwant: Some(50),
        key: u32::from(id),
    }
}

fn client() -> Client {
    Client::new(Config {
        http_timeout: Duration::from_secs(10),
        // opentracker answers at once; a short base bounds a lost packet.
        udp: Timing {
            base_timeout: Duration::from_millis(500),
            max_tries: 4,
        },
        ..Config::default()
    })
}

const HTTP_HASH: [u8; 20] = [0x11; 20];
const UDP_HASH: [u8; 20] = [0x22; 20];
const NOT_LISTED: [u8; 20] = [0x33; 20];

async fn two_clients_find_each_other(url: &str, info_hash: [u8; 20]) {
    let c = client();
    let a: SocketAddr = ([127, 0, 0, 1], 40001).into();
    let b: SocketAddr = ([127, 0, 0, 1], 40002).into();
    let first = c
        .announce(url, &request(info_hash, 1, a.port(), Event::Started))
        .await
        .expect("first announce");
    assert!(first.interval > Duration::ZERO);
    assert!(!first.peers.contains(&b));

    let second = c
        .announce(url, &request(info_hash, 2, b.port(), Event::Started))
        .await
        .expect("second announce");
    assert!(
        second.peers.contains(&a),
        "B must see A: {:?}",
        second.peers
    );

    let again = c
        .announce(url, &request(info_hash, 1, a.port(), Event::None))
        .await
        .expect("re-announce");
    assert!(again.peers.contains(&b), "A must see B: {:?}", again.peers);
    assert_eq!(again.leechers, Some(2), "{again:?}");

    // A leaves; B no longer gets it.
    c.announce(url, &request(info_hash, 1, a.port(), Event::Stopped))
        .await
        .expect("stopped");
    let after = c
        .announce(url, &request(info_hash, 2, b.port(), Event::None))
        .await
        .expect("announce after A left");
    assert!(!after.peers.contains(&a), "A left: {:?}", after.peers);
}

#[tokio::test]
async fn http_announces_find_each_other() {
    let t = OpenTracker::start(&[HTTP_HASH, UDP_HASH]);
    two_clients_find_each_other(&t.http_url(), HTTP_HASH).await;
}

#[tokio::test]
async fn udp_announces_find_each_other() {
    let t = OpenTracker::start(&[HTTP_HASH, UDP_HASH]);
    two_clients_find_each_other(&t.udp_url(), UDP_HASH).await;
}

#[tokio::test]
async fn refusal_names_the_reason() {
    let t = OpenTracker::start(&[HTTP_HASH]);
    let c = client();
    let e = c
        .announce(
            &t.http_url(),
            &request(NOT_LISTED, 1, 40003, Event::Started),
        )
        .await
        .expect_err("a hash off the whitelist is refused");
    let msg = e.to_string();
    assert!(
        matches!(
            &e,
            swarm::Error::Tracker {
                problem: Problem::Protocol(torrent::Error::Tracker(TrackerError::Failure(_))),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.starts_with(&format!("tracker {}: ", t.http_url())),
        "{msg}"
    );
    assert!(msg.contains("not authorized"), "{msg}");

    // Over UDP opentracker sends only the header of an announce response.
    let e = c
        .announce(&t.udp_url(), &request(NOT_LISTED, 1, 40003, Event::Started))
        .await
        .expect_err("a hash off the whitelist is refused over UDP too");
    let msg = e.to_string();
    assert!(msg.contains("do not track"), "{msg}");
}

/// Waits until `rx` yields `want`, for at most 10 s.
async fn hears(rx: &mut mpsc::Receiver<SocketAddr>, want: SocketAddr) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(p) = rx.recv().await {
            if p == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "never heard of {want}");
}

#[tokio::test]
async fn announcers_find_each_other_complete_and_stop() {
    const HASH: [u8; 20] = [0x44; 20];
    let t = OpenTracker::start(&[HASH]);
    let client = Arc::new(client());
    let config = |id: u8, port: u16| {
        let mut peer_id = [b'x'; 20];
        peer_id[0] = id;
        AnnouncerConfig {
            // Both trackers of the torrent: the same opentracker over both
            // protocols.
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(300),
            retry: Duration::from_millis(100),
            ..AnnouncerConfig::new(vec![t.http_url(), t.udp_url()], HASH, peer_id, port)
        }
    };
    let a_addr: SocketAddr = ([127, 0, 0, 1], 41001).into();
    let b_addr: SocketAddr = ([127, 0, 0, 1], 41002).into();
    let leeching = Transfer {
        left: 1000,
        ..Transfer::default()
    };
    let (a_progress, a_transfer) = watch::channel(leeching);
    let (b_progress, b_transfer) = watch::channel(leeching);
    let (a_tx, mut a_rx) = mpsc::channel(64);
    let (b_tx, mut b_rx) = mpsc::channel(64);
    let a = Announcer::start(
        client.clone(),
        config(b'a', a_addr.port()),
        a_transfer,
        a_tx,
    );
    let b = Announcer::start(
        client.clone(),
        config(b'b', b_addr.port()),
        b_transfer,
        b_tx,
    );
    hears(&mut b_rx, a_addr).await;
    hears(&mut a_rx, b_addr).await;

    // A finishes: the tracker counts a seed.
    a_progress.send_replace(Transfer {
        downloaded: 1000,
        left: 0,
        uploaded: 0,
    });
    let probe = request(HASH, b'p', 41003, Event::Stopped);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.announce(&t.http_url(), &probe).await.expect("probe");
        if r.seeders == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never counted as a seed: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A stops: it leaves the tracker's list.
    tokio::time::timeout(Duration::from_secs(10), a.stop())
        .await
        .expect("stop within its bound");
    let r = client.announce(&t.http_url(), &probe).await.expect("probe");
    assert_eq!((r.seeders, r.leechers), (Some(0), Some(1)), "{r:?}");
    b.stop().await;
    drop(b_progress);
}
