//! Resource bounds: the connection cap, slowloris, idle and stalled
//! clients, 1,000 idle connections, shutdown with clients still connected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Server, Tree, get, read_response};

fn keep_alive_get(c: &mut TcpStream, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    c.write_all(req.as_bytes()).expect("write");
    read_response(c, false).status
}

/// Reads until EOF or error; returns bytes read and whether it was a clean EOF.
fn drain(c: &mut TcpStream, limit: Duration) -> (usize, bool) {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (total, false);
            }
            Err(_) => return (total, true), // reset: closed too
        }
    }
}

#[test]
fn connection_cap_keeps_serving_existing_clients() {
    let tree = Tree::new();
    let config = serve::Config {
        max_connections: 2,
        ..serve::Config::default()
    };
    let s = Server::start(tree.mounts(), config);
    let mut a = TcpStream::connect(s.addr).expect("a");
    let mut b = TcpStream::connect(s.addr).expect("b");
    assert_eq!(keep_alive_get(&mut a, "/debian/hello.txt"), 200);
    assert_eq!(keep_alive_get(&mut b, "/debian/hello.txt"), 200);
    // Over the cap: an immediate 503 and close, not a hang.
    let t = Instant::now();
    let over = get(s.addr, "/debian/hello.txt", &[]);
    assert_eq!(over.status, 503);
    assert_eq!(over.header("retry-after"), Some("1"));
    assert!(t.elapsed() < Duration::from_secs(2));
    // Existing clients are unaffected.
    for _ in 0..5 {
        assert_eq!(keep_alive_get(&mut a, "/debian/dir/inner.txt"), 200);
        assert_eq!(keep_alive_get(&mut b, "/debian/dir/inner.txt"), 200);
    }
    // A freed slot is reused.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(s.addr, "/debian/hello.txt", &[]);
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed: {}", r.status);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slowloris_is_cut_off_by_the_header_timeout() {
    let tree = Tree::new();
    let config = serve::Config {
        header_read_timeout: Duration::from_millis(800),
        ..serve::Config::default()
    };
    let s = Server::start(tree.mounts(), config);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    let t = Instant::now();
    let mut closed = false;
    // One header byte every 100 ms, never finishing the head.
    for b in b"GET /debian/hello.txt HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle().take(100) {
        if c.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let (_, eof) = drain(&mut c, Duration::from_secs(1));
    assert!(closed || eof, "a trickling client was not cut off");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut off too late: {:?}",
        t.elapsed()
    );

    // A silent connection goes the same way, and the server still serves.
    let mut idle = TcpStream::connect(s.addr).expect("connect");
    let (_, eof) = drain(&mut idle, Duration::from_secs(3));
    assert!(eof, "an idle connection was kept");
    assert_eq!(get(s.addr, "/debian/hello.txt", &[]).status, 200);
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let tree = Tree::new();
    // Larger than loopback socket buffers on both sides.
    let size = 48 * 1024 * 1024;
    let f = std::fs::File::create(tree.root.join("huge.bin")).expect("create");
    f.set_len(size).expect("set_len");
    let config = serve::Config {
        idle_timeout: Duration::from_millis(700),
        ..serve::Config::default()
    };
    let s = Server::start(tree.mounts(), config);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"GET /debian/huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_secs(2));
    let (n, eof) = drain(&mut c, Duration::from_secs(3));
    assert!(eof, "the stalled connection is still open");
    assert!(
        (n as u64) < size,
        "the whole file arrived ({n} bytes): buffers too large for this test"
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Makes sure this process may open `need` descriptors (client and server
/// sockets of the test both live here), raising the soft limit with
/// util-linux's prlimit when the hard limit allows.
fn ensure_nofile(need: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files"));
    let nums: Vec<u64> = line
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (soft, hard) = match nums.as_slice() {
        [soft, hard, ..] => (*soft, *hard),
        _ => return,
    };
    if soft >= need {
        return;
    }
    assert!(
        hard >= need,
        "this test needs {need} open files; the hard limit is {hard}"
    );
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={need}:{hard}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "could not raise the open-file limit from {soft} to {need} with prlimit"
    );
}

/// Runs the test `name` alone in a child process of this test binary and
/// returns false; in that child returns true. The resident-set figure of
/// a test is only meaningful when no other test shares the process.
fn isolated(name: &str) -> bool {
    const VAR: &str = "SWARMSYNC_SERVE_ISOLATED_TEST";
    if std::env::var_os(VAR).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(VAR, "1")
        .output()
        .expect("run the test in a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed in its own process:\n{stdout}\n{stderr}"
    );
    false
}

#[test]
fn a_thousand_idle_connections_do_not_block_a_new_client() {
    if !isolated("limits::a_thousand_idle_connections_do_not_block_a_new_client") {
        return;
    }
    ensure_nofile(2_300);
    let tree = Tree::new();
    let s = Server::start(tree.mounts(), serve::Config::default());
    assert_eq!(get(s.addr, "/debian/hello.txt", &[]).status, 200);
    let before = rss_kib();
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(s.addr).expect("idle connect"));
    }
    // Half of them send a partial request head, the rest nothing.
    for c in idle.iter_mut().step_by(2) {
        c.write_all(b"GET /debian/hello.txt HTTP/1.1\r\nHo")
            .expect("partial");
    }
    // Let the server accept them all: it must be holding them, not refusing.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let r = get(s.addr, "/debian/big.bin", &[]);
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024 * 1024);
    assert!(took < Duration::from_secs(1), "new client waited {took:?}");
    let grown = rss_kib().saturating_sub(before);
    eprintln!("1000 idle connections: new client served in {took:?}; RSS grew {grown} KiB");
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    // Still connected (not refused with 503): one of them completes its request.
    let c = &mut idle[0];
    c.write_all(b"st: t\r\n\r\n").expect("finish head");
    assert_eq!(read_response(c, false).status, 200);
    drop(idle);
    // Shutdown with nothing in flight is prompt.
    let stop = s.stop();
    assert!(stop < Duration::from_secs(3), "shutdown took {stop:?}");
}

#[test]
fn shutdown_with_idle_clients_is_prompt() {
    let tree = Tree::new();
    let s = Server::start(tree.mounts(), serve::Config::default());
    let mut kept = TcpStream::connect(s.addr).expect("connect");
    assert_eq!(keep_alive_get(&mut kept, "/debian/hello.txt"), 200);
    let _silent = TcpStream::connect(s.addr).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let took = s.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let (_, eof) = drain(&mut kept, Duration::from_secs(2));
    assert!(eof, "kept-alive connection not closed at shutdown");
}

#[test]
fn downloads_share_the_body_memory_budget() {
    // A budget of exactly one chunk: concurrent downloads take turns, and
    // every one of them completes intact.
    let tree = Tree::new();
    let config = serve::Config {
        chunk_size: 16 * 1024,
        body_memory: 16 * 1024,
        ..serve::Config::default()
    };
    let s = Server::start(tree.mounts(), config);
    let addr = s.addr;
    let want = crate::util::big();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let range = format!("bytes={}-", i * 1000);
                (i, get(addr, "/debian/big.bin", &[("Range", &range)]))
            })
        })
        .collect();
    for c in clients {
        let (i, r) = c.join().expect("client thread");
        assert_eq!(r.status, 206);
        assert!(
            r.body == want[i * 1000..],
            "client {i} got a different body"
        );
    }
}
