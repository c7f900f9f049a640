//! `swarmsync status` against a real server holding a status board: the
//! summary, `--json` as served, base and full URLs, and the one-line errors
//! for a dead port, a server that is not a node and a bad URL.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serve::status::{ChannelStatus, LedStatus, Status};

use crate::common::run_within;

/// A server on 127.0.0.1:0 in its own thread; stops when dropped.
struct Node {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(board: Option<serve::StatusBoard>) -> Node {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let mut server = serve::Server::new(vec![], serve::Config::default());
                if let Some(board) = board {
                    server = server.status(board);
                }
                server.run(listener, stop_rx).await.expect("serve");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        Node {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn status(args: &[&str]) -> crate::common::Run {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_swarmsync"))
            .arg("status")
            .args(args),
        Duration::from_secs(30),
    )
}

fn board() -> serve::StatusBoard {
    let board = serve::StatusBoard::new();
    board.update(|s| {
        s.node.name = "bbb-kitchen".into();
        s.node.disk_used = 900 << 20;
        s.node.disk_free = 3 << 30;
        s.channels.push(ChannelStatus {
            name: "debian-bookworm".into(),
            mount: "/debian".into(),
            seq: Some(42),
            state: "syncing".into(),
            have_bytes: 600 << 20,
            total_bytes: 800 << 20,
            files_done: 1500,
            files_total: 2000,
            peers: 7,
            lan_peers: 2,
            ..ChannelStatus::default()
        });
        s.channels.push(ChannelStatus {
            name: "evil\x1b[2J\x1b]0;title\x07".into(),
            mount: "/evil".into(),
            state: "error".into(),
            last_error: Some("line one\nline two".into()),
            ..ChannelStatus::default()
        });
        s.leds.push(LedStatus {
            name: "usr0".into(),
            pattern: "heartbeat".into(),
            meaning: "running".into(),
        });
    });
    board
}

#[test]
fn status_summary_and_json() {
    let node = Node::start(Some(board()));
    let base = format!("http://{}", node.addr);
    let run = status(&["--url", &base]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("bbb-kitchen: swarmsync "),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with(
            "debian-bookworm /debian syncing seq 42, 75.0% of 800 MiB (1500/2000 files), 7 peers (2 lan)"
        ),
        "{}",
        run.stdout
    );
    // Another machine's text cannot drive the terminal.
    assert!(!run.stdout.contains('\x1b') && !run.stdout.contains('\x07'));
    assert!(run.stdout.contains("  error: line one?line two\n"));
    assert!(run.stdout.ends_with("leds: usr0 heartbeat (running)\n"));
    assert_eq!(lines.len(), 5, "{}", run.stdout);

    // --json prints the page as served; the full URL works too.
    let run = status(&["--json", "--url", &format!("{base}/-/status.json")]).ok();
    let parsed = Status::from_json(run.stdout.as_bytes()).expect("status JSON");
    assert_eq!(parsed.channels[0].seq, Some(42));
    assert_eq!(parsed.channels[1].name, "evil\x1b[2J\x1b]0;title\x07");
    assert!(parsed.http.requests >= 1);
    assert!(run.stdout.trim_start().starts_with('{'));
    // A base URL without the scheme, with a trailing slash.
    status(&["--url", &format!("{}/", node.addr)]).ok();
}

#[test]
fn status_errors_are_one_line() {
    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let run = status(&["--url", &format!("http://{free}")]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "swarmsync: GET http://{free}/-/status.json: cannot connect to {free}"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    // A server that is not a node (no status board): 404 with a hint.
    let plain = Node::start(None);
    let run = status(&["--url", &format!("http://{}", plain.addr)]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains(": 404 Not Found\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("is it a swarmsync node?"),
        "{}",
        run.stderr
    );
    // A URL this client does not speak.
    let run = status(&["--url", "https://example.invalid/"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("unsupported URL scheme"),
        "{}",
        run.stderr
    );
}
