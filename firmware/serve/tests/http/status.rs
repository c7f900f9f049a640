//! The node's pages under `/-/`: a `StatusBoard` served by a real server,
//! its three endpoints fetched over TCP, the HTTP counters it keeps, and
//! the HTML page rendered by headless Chromium (screenshot in the test's
//! temporary directory).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serve::status::{ChannelStatus, LedStatus, Rejection, Status};
use serve::{Special, SpecialResponse, StatusBoard};

use crate::util::{Server, Tree, get, method};

fn board() -> StatusBoard {
    let board = StatusBoard::new();
    board.update(|s| {
        s.node.name = "bbb-kitchen".into();
        s.node.data_dir = "/data".into();
        s.node.disk_used = 900 << 20;
        s.node.disk_free = 3 << 30;
        s.node.disk_budget = 1600 << 20;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.channels = vec![
            ChannelStatus {
                name: "debian-bookworm".into(),
                mount: "/debian".into(),
                seq: Some(42),
                release_created: Some(now - 7300),
                release_expires: Some(now + 6 * 86_400 + 60),
                state: "syncing".into(),
                have_bytes: 600 << 20,
                total_bytes: 800 << 20,
                files_done: 1500,
                files_total: 2000,
                peers: 7,
                lan_peers: 2,
                download_rate: 5 << 20,
                upload_rate: 300 << 10,
                downloaded: 600 << 20,
                uploaded: 90 << 20,
                last_rejection: Some(Rejection {
                    code: "rollback".into(),
                    reason: "seq 41 is older than the installed 42".into(),
                    at: now - 600,
                }),
                last_error: None,
            },
            ChannelStatus {
                name: "fedora-<b>40</b>".into(),
                mount: "/fedora".into(),
                seq: Some(7),
                release_created: Some(now - 20 * 86_400),
                release_expires: Some(now - 3600),
                state: "expired".into(),
                have_bytes: 100,
                total_bytes: 100,
                files_done: 1,
                files_total: 1,
                last_error: Some("no feed answered: <connection refused>".into()),
                ..ChannelStatus::default()
            },
        ];
        s.leds = vec![
            LedStatus {
                name: "usr0".into(),
                pattern: "heartbeat".into(),
                meaning: "running".into(),
            },
            LedStatus {
                name: "usr1".into(),
                pattern: "blink-fast".into(),
                meaning: "syncing".into(),
            },
        ];
    });
    board
}

/// The origin's half of `/-/`, chained after the board.
struct Releases;

impl Special for Releases {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        (path == "releases/debian-bookworm")
            .then(|| SpecialResponse::ok("application/x-bittorrent", "d3:seqi42ee"))
    }
}

#[test]
fn status_endpoints() {
    let tree = Tree::new();
    let board = board();
    let s = Server::start_with(
        serve::Server::new(tree.mounts(), serve::Config::default())
            .status(board.clone())
            .special(Arc::new(Releases)),
    );
    // Some traffic for the counters: one file, one 404.
    assert_eq!(get(s.addr, "/debian/hello.txt", &[]).status, 200);
    assert_eq!(get(s.addr, "/debian/missing", &[]).status, 404);
    board.count_miss();

    let r = get(s.addr, "/-/status.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let status = Status::from_json(&r.body).expect("status JSON");
    assert_eq!(status.node.name, "bbb-kitchen");
    assert_eq!(status.channels.len(), 2);
    assert_eq!(status.channels[0].seq, Some(42));
    assert_eq!(status.http.requests, 2, "the two requests before this one");
    assert_eq!(status.http.not_found, 1);
    assert_eq!(status.http.misses, 1);
    // This one, and perhaps a closed one whose task has not ended yet.
    assert!(
        (1..=3).contains(&status.http.connections),
        "{:?}",
        status.http
    );
    assert_eq!(status.http.connections_total, 3);
    assert!(status.http.bytes_sent > 100, "{:?}", status.http);
    assert!(status.node.time > 1_600_000_000);

    let r = get(s.addr, "/-/metrics", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).expect("utf-8");
    for want in [
        "swarmsync_channel_seq{channel=\"debian-bookworm\"} 42\n",
        "swarmsync_channel_state{channel=\"fedora-<b>40</b>\",state=\"expired\"} 1\n",
        "swarmsync_http_requests_total 3\n",
        "swarmsync_http_not_found_total 1\n",
        "# TYPE swarmsync_http_sent_bytes_total counter\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    let r = get(s.addr, "/-/status", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = String::from_utf8(r.body).expect("utf-8");
    assert!(page.contains("fedora-&lt;b&gt;40&lt;/b&gt;"));
    assert!(page.contains("seq <b>42</b>"));
    let r = method(s.addr, "HEAD", "/-/status", &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(r.header("content-length").is_some());

    // The chained special answers after the board; the rest is 404.
    assert_eq!(
        get(s.addr, "/-/releases/debian-bookworm", &[]).body,
        b"d3:seqi42ee"
    );
    assert_eq!(get(s.addr, "/-/status/", &[]).status, 404);
    assert_eq!(get(s.addr, "/-/nothing", &[]).status, 404);
    drop(s);
    assert_eq!(board.snapshot().http.connections, 0, "all closed");
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn headless(browser: &str, profile: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox", // tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1100,800",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Chromium can hang on a broken setup: bound it.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.expect("chromium output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("chromium did not finish within 90 s");
        }
    }
}

#[test]
fn status_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium (tools/setup installs it)");
        return;
    };
    let tree = Tree::new();
    let s = Server::start_with(
        serve::Server::new(tree.mounts(), serve::Config::default()).status(board()),
    );
    let url = s.url("/-/status");
    let profile = tree.tmp.path().join("chromium-profile");
    // The DOM as the browser built it: text rendered, markup escaped, no script.
    let out = headless(browser, &profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "debian-bookworm",
        "fedora-&lt;b&gt;40&lt;/b&gt;",
        "no feed answered: &lt;connection refused&gt;",
        "expires in 6 d",
        "expired 1 h ago",
        "75.0%",
        "heartbeat",
    ] {
        assert!(dom.contains(want), "missing {want:?} in the DOM:\n{dom}");
    }
    assert!(
        !dom.contains("<b>40</b>"),
        "markup from a name was rendered"
    );
    assert!(!dom.contains("<script"));
    let shot = tree.tmp.path().join("status.png");
    let out = headless(
        browser,
        &profile,
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(png[20..24].try_into().expect("height"));
    assert_eq!((width, height), (1100, 800));
    // A blank page compresses to almost nothing; a rendered one does not.
    assert!(png.len() > 20_000, "screenshot is only {} bytes", png.len());
    eprintln!(
        "status page screenshot: {} ({} bytes)",
        shot.display(),
        png.len()
    );
    if let Some(dir) = std::env::var_os("SWARMSYNC_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("status.png"));
    }
}
