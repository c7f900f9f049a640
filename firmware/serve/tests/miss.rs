//! Fetch-on-miss through a real server and real sockets: a handler that
//! names a file still being written is streamed as its "verified" bytes
//! grow, never past them, and cut short when the fetch fails.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serve::{Found, Growing, Miss, MissError, MissFuture, Mount, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const LEN: usize = 300_000;
const TAG: &str = "\"0123abcd\"";

fn content() -> Vec<u8> {
    (0..LEN as u32).map(|i| (i * 31 % 253) as u8).collect()
}

/// Answers every miss with one growing file, the one the test writes.
struct OneFile {
    path: std::path::PathBuf,
    ready: watch::Receiver<u64>,
    stall: Duration,
}

impl Miss for OneFile {
    fn fetch(&self, _prefix: &str, rest: &[String]) -> MissFuture {
        let answer = match rest.last().map(String::as_str) {
            Some("grow.bin") => {
                let path = self.path.clone();
                Ok(Found::Growing(Growing {
                    length: LEN as u64,
                    ready: self.ready.clone(),
                    open: Arc::new(move || std::fs::File::open(&path)),
                    stall: self.stall,
                    etag: Some(TAG.to_owned()),
                }))
            }
            Some("slow.bin") => Err(MissError::TimedOut),
            _ => Err(MissError::NotFound),
        };
        Box::pin(async move { answer })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    port: u16,
    file: std::fs::File,
    ready: watch::Sender<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    board: serve::StatusBoard,
}

async fn start(stall: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let path = dir.path().join("grow.part");
    let file = std::fs::File::create(&path).expect("part");
    let (tx, rx) = watch::channel(0u64);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let board = serve::StatusBoard::new();
    let server = Server::new(vec![Mount::new("/m", &root)], serve::Config::default())
        .miss(Arc::new(OneFile {
            path,
            ready: rx,
            stall,
        }))
        .status(board.clone());
    tokio::spawn(async move {
        let _ = server
            .run(listener, async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    Fixture {
        _dir: dir,
        port,
        file,
        ready: tx,
        stop: Some(stop_tx),
        board,
    }
}

impl Fixture {
    /// Appends `bytes` and says they are verified.
    fn verify(&mut self, bytes: &[u8]) {
        self.file.write_all(bytes).expect("append");
        self.ready.send_modify(|r| *r += bytes.len() as u64);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Sends a request; returns the stream positioned after the head, and
/// the head (lowercased).
async fn request(port: u16, path: &str, extra: &str) -> (TcpStream, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..i]).to_lowercase();
            return (s, head, raw[i + 4..].to_vec());
        }
    }
}

/// Reads until `want` body bytes are in `body`, or fails after `limit`.
async fn read_until(s: &mut TcpStream, body: &mut Vec<u8>, want: usize, limit: Duration) {
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + limit;
    while body.len() < want {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(n > 0, "closed after {} of {want} bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_growing_file_is_streamed_as_it_verifies_and_never_past_it() {
    let mut f = start(Duration::from_secs(30)).await;
    let data = content();
    let (mut s, head, mut body) = request(f.port, "/m/grow.bin", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {LEN}")), "{head}");
    // The first third verified: exactly that arrives, and nothing more.
    f.verify(&data[..100_000]);
    read_until(&mut s, &mut body, 100_000, Duration::from_secs(10)).await;
    let mut more = [0u8; 16];
    let extra = tokio::time::timeout(Duration::from_millis(300), s.read(&mut more)).await;
    assert!(extra.is_err(), "bytes beyond the verified ones: {extra:?}");
    assert_eq!(body, data[..100_000]);
    // The rest.
    f.verify(&data[100_000..]);
    read_until(&mut s, &mut body, LEN, Duration::from_secs(10)).await;
    assert_eq!(body, data);
    let mut end = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut end))
        .await
        .expect("close")
        .expect("read");
    assert_eq!(n, 0, "bytes after the body");
}

#[tokio::test]
async fn a_range_waits_for_its_bytes_and_if_range_gets_the_whole_file() {
    let mut f = start(Duration::from_secs(30)).await;
    let data = content();
    f.verify(&data[..50_000]);
    let (mut s, head, mut body) =
        request(f.port, "/m/grow.bin", "Range: bytes=200000-200099\r\n").await;
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 200000-200099/{LEN}")),
        "{head}"
    );
    f.verify(&data[50_000..]);
    read_until(&mut s, &mut body, 100, Duration::from_secs(10)).await;
    assert_eq!(body, data[200_000..200_100]);
    // If-Range with the content's ETag holds: a resumed download.
    let (mut s, head, mut body) = request(
        f.port,
        "/m/grow.bin",
        &format!("Range: bytes=10-\r\nIf-Range: {TAG}\r\n"),
    )
    .await;
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(head.contains(&format!("etag: {TAG}")), "{head}");
    read_until(&mut s, &mut body, LEN - 10, Duration::from_secs(10)).await;
    assert_eq!(body, data[10..]);
    // Another tag, or a date (no Last-Modified before the file is
    // complete), cannot hold: 200 and the whole file.
    for if_range in ["\"abc\"", "Wed, 25 Nov 2026 10:00:00 GMT"] {
        let (mut s, head, mut body) = request(
            f.port,
            "/m/grow.bin",
            &format!("Range: bytes=10-\r\nIf-Range: {if_range}\r\n"),
        )
        .await;
        assert!(head.starts_with("http/1.1 200"), "{if_range}: {head}");
        read_until(&mut s, &mut body, LEN, Duration::from_secs(10)).await;
        assert_eq!(body, data);
    }
    // If-None-Match with it: 304.
    let (_, head, _) = request(f.port, "/m/grow.bin", &format!("If-None-Match: {TAG}\r\n")).await;
    assert!(head.starts_with("http/1.1 304"), "{head}");
}

#[tokio::test]
async fn a_failed_fetch_cuts_the_body_short_and_errors_keep_their_status() {
    let mut f = start(Duration::from_secs(30)).await;
    let data = content();
    let (mut s, head, mut body) = request(f.port, "/m/grow.bin", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    f.verify(&data[..70_000]);
    read_until(&mut s, &mut body, 70_000, Duration::from_secs(10)).await;
    // The fetch gives up: the client sees a short body and a closed
    // connection, never bytes that were not verified.
    let (dead_tx, _) = watch::channel(0u64);
    drop(std::mem::replace(&mut f.ready, dead_tx));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    body.extend_from_slice(&rest);
    assert_eq!(body, data[..70_000], "only verified bytes, then the end");
    assert_eq!(
        request(f.port, "/m/slow.bin", "").await.1.split(' ').nth(1),
        Some("504")
    );
    assert_eq!(
        request(f.port, "/m/none.bin", "").await.1.split(' ').nth(1),
        Some("404")
    );
    // The failure is on the status board (page, status.json, metrics).
    let http = f.board.snapshot().http;
    assert_eq!(http.miss_failures, 1);
    let last = http.last_miss_failure.expect("a recorded failure");
    assert_eq!((last.path.as_str(), last.status), ("/m/slow.bin", 504));
}

#[tokio::test]
async fn a_stalled_fetch_is_cut_off_after_the_stall_timeout() {
    let mut f = start(Duration::from_millis(500)).await;
    let data = content();
    f.verify(&data[..1000]);
    let (mut s, head, mut body) = request(f.port, "/m/grow.bin", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("cut off in time");
    body.extend_from_slice(&rest);
    assert_eq!(body, data[..1000]);
}
