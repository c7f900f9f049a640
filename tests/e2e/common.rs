//! Helpers shared by the end-to-end test modules.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished child process printed.
pub struct Run {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Run {
    /// Asserts exit status 0, showing both streams otherwise.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Run {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&t_out.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().expect("stderr reader")).into_owned(),
        what,
    }
}

// A swarmsync process of a test (origin or node) and how to reach it.

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swarmsync"))
}

/// `swarmsync keygen --out key`; returns the public key it prints.
pub fn keygen(key: &Path) -> String {
    let out = run_within(
        bin().args(["keygen", "--out"]).arg(key),
        Duration::from_secs(30),
    )
    .ok();
    out.stdout.trim().to_owned()
}

pub fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("probe port")
}

/// Kills the child on drop.
pub struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(cmd: &mut Command, log: &Path) -> Kill {
    let f = std::fs::File::create(log).expect("log");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log"))
        .stderr(f)
        .spawn()
        .expect("spawn swarmsync");
    Kill(child)
}

/// An origin (`swarmsync publish`) of channel `c` over `<d>/tree`.
pub struct Origin {
    pub d: PathBuf,
    pub key: PathBuf,
    pub public: String,
    pub peer: u16,
    pub http: u16,
}

impl Origin {
    /// Writes a tree with a `len`-byte `pool/a.deb` and a signing key.
    pub fn new(d: &Path, len: usize) -> Origin {
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join("pool")).expect("mkdir");
        std::fs::write(tree.join("pool/a.deb"), vec![7u8; len]).expect("write");
        std::fs::write(tree.join("Release"), b"one\n").expect("write");
        let key = d.join("k.key");
        let public = keygen(&key);
        Origin {
            d: d.to_path_buf(),
            key,
            public,
            peer: port(),
            http: port(),
        }
    }

    pub fn publish(&self, once: bool) -> Command {
        let mut c = bin();
        c.args([
            "publish",
            "--channel",
            "c",
            "--expires",
            "1d",
            "--piece-size",
            "16384",
        ])
        .arg("--key")
        .arg(&self.key)
        .arg("--tree")
        .arg(self.d.join("tree"))
        .arg("--state")
        .arg(self.d.join("origin"))
        .args(["--listen", &format!("127.0.0.1:{}", self.peer)])
        .args(["--http", &format!("127.0.0.1:{}", self.http)]);
        if once {
            c.arg("--once");
        }
        c
    }

    /// Starts the long-running origin (with `extra` arguments) and waits
    /// for its first release.
    pub fn start(&self, log: &Path, extra: &[&str]) -> Kill {
        let origin = spawn(self.publish(false).args(extra), log);
        let t0 = Instant::now();
        while !self.d.join("origin/c/release").exists() && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        origin
    }

    /// Changes the tree and publishes it from another process, as cron
    /// would; the new release's seq.
    pub fn republish(&self) -> u64 {
        std::fs::write(self.d.join("tree/Release"), b"two\n").expect("write");
        run_within(&mut self.publish(true), Duration::from_secs(60)).ok();
        current_seq(&self.d.join("origin"))
    }
}

/// The node's first channel, from /-/status.json.
fn first_channel(http: u16) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /-/status.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split("\r\n\r\n").nth(1)?;
    let mut v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(v.get_mut("channels")?.get_mut(0)?.take())
}

/// The served seq of the node's first channel, from /-/status.json.
pub fn served_seq(http: u16) -> Option<u64> {
    let ch = first_channel(http)?;
    if ch.get("state")?.as_str()? != "synced" {
        return None;
    }
    ch.get("seq")?.as_u64()
}

/// Peers connected in the node's first channel, from /-/status.json.
pub fn channel_peers(http: u16) -> Option<u64> {
    first_channel(http)?.get("peers")?.as_u64()
}

/// The seq the origin's `current` points at (channel "c").
pub fn current_seq(state: &Path) -> u64 {
    let link = std::fs::read_link(state.join("c").join("current")).expect("origin current");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("seq")
}

/// Whether the test runs as root (mounts in a namespace need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Free bytes of the filesystem holding `dir` (`stat -f`).
pub fn fs_free(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .expect("run stat -f");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok());
    match (it.next(), it.next()) {
        (Some(blocks), Some(size)) => blocks * size,
        _ => panic!("stat -f {}: {text:?}", dir.display()),
    }
}
