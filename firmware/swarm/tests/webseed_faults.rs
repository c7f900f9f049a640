//! Web seeds that misbehave: a tiny HTTP/1.1 server on 127.0.0.1 answers
//! Range requests wrongly on purpose (ignored range with a huge body, extra
//! body bytes, wrong Content-Range or Content-Length, truncated, stalled or
//! absent responses, transient 503s, a 404). Each case must end in a clear
//! error naming the URL and the fault, within its timeout, without the
//! client reading (or buffering) more than it asked for; transient faults
//! are retried a bounded number of times, permanent ones not at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swarm::webseed::{Client, Config, Problem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FILE_LEN: u64 = 100_000;

fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Correct 206 answers, keep-alive.
    Good,
    /// 200 with a 1 GiB body, streamed for as long as the client reads.
    Whole200,
    /// Correct 206 headers, no Content-Length, then endless body bytes.
    ExtraBody,
    /// Content-Length larger than asked.
    LongContentLength,
    /// Content-Range off by one.
    WrongRange,
    /// Half the body, then the connection closes.
    Truncated,
    /// Half the body, then nothing.
    Stalled,
    /// The request is read and never answered.
    Silent,
    /// One body byte every 50 ms.
    Drip,
    /// 503 for the first two requests, then Good.
    FlakyTwice,
    /// 404.
    NotFound,
    /// Correct 206 headers and length, but a gzip Content-Encoding.
    Gzip,
    /// 200 with the whole file, whatever the Range says.
    Plain200,
    /// A 302 to an absolute path for the first request, then Good.
    RedirectOnce,
    /// A 302 to itself, forever.
    RedirectLoop,
}

struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    body_bytes_written: Arc<AtomicU64>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/some%20dir/file.bin", self.port)
    }
}

async fn serve(mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let (c, r, w) = (connections.clone(), requests.clone(), written.clone());
    tokio::spawn(async move {
        // Bounded: the test's runtime ends the task when the test ends.
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (r, w) = (r.clone(), w.clone());
            tokio::spawn(async move {
                let _ = connection(sock, mode, r, w).await;
            });
        }
    });
    Server {
        port,
        connections,
        requests,
        body_bytes_written: written,
    }
}

/// Reads one request head (bounded to 16 KiB) and returns its Range.
async fn read_head(sock: &mut TcpStream) -> Option<(u64, u64)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        let n = sock.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let range = text
        .lines()
        .find_map(|l| l.strip_prefix("range: bytes="))?
        .trim()
        .to_owned();
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

async fn connection(
    mut sock: TcpStream,
    mode: Mode,
    requests: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
) -> std::io::Result<()> {
    loop {
        let Some((first, last)) = read_head(&mut sock).await else {
            return Ok(());
        };
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let len = last - first + 1;
        let body: Vec<u8> = (first..=last).map(byte_at).collect();
        let range = format!("bytes {first}-{last}/{FILE_LEN}");
        let mode = if (mode == Mode::FlakyTwice && n >= 2) || (mode == Mode::RedirectOnce && n >= 1)
        {
            Mode::Good
        } else {
            mode
        };
        match mode {
            Mode::Good => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                     Content-Length: {len}\r\n\r\n"
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body).await?;
                written.fetch_add(len, Ordering::SeqCst);
                continue;
            }
            Mode::Whole200 | Mode::ExtraBody => {
                let head = if mode == Mode::Whole200 {
                    "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                         Connection: close\r\n\r\n"
                    )
                };
                sock.write_all(head.as_bytes()).await?;
                let chunk = vec![0x55u8; 64 * 1024];
                for _ in 0..(1u64 << 30) / chunk.len() as u64 {
                    sock.write_all(&chunk).await?;
                    written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            }
            Mode::LongContentLength => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                     Content-Length: {}\r\n\r\n",
                    len + 10
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body).await?;
                sock.write_all(&[0; 10]).await?;
            }
            Mode::WrongRange => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {}-{}/{FILE_LEN}\r\n\
                     Content-Length: {len}\r\n\r\n",
                    first + 1,
                    last + 1
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body).await?;
            }
            Mode::Truncated | Mode::Stalled => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                     Content-Length: {len}\r\n\r\n"
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body[..body.len() / 2]).await?;
                sock.flush().await?;
                if mode == Mode::Stalled {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
            Mode::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
            Mode::Drip => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                     Content-Length: {len}\r\n\r\n"
                );
                sock.write_all(head.as_bytes()).await?;
                for b in body {
                    sock.write_all(&[b]).await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Mode::FlakyTwice => {
                sock.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
                )
                .await?;
                continue;
            }
            Mode::Plain200 => {
                let whole: Vec<u8> = (0..FILE_LEN).map(byte_at).collect();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {FILE_LEN}\r\n\r\n");
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&whole).await?;
                continue;
            }
            Mode::RedirectOnce | Mode::RedirectLoop => {
                sock.write_all(
                    b"HTTP/1.1 302 Found\r\nLocation: /moved/file.bin\r\nContent-Length: 0\r\n\r\n",
                )
                .await?;
                continue;
            }
            Mode::Gzip => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: {range}\r\n\
                     Content-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n"
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body).await?;
                continue;
            }
            Mode::NotFound => {
                sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
                    .await?;
                continue;
            }
        }
        return Ok(());
    }
}

fn quick(retries: u32) -> Config {
    Config {
        connect_timeout: Duration::from_millis(500),
        first_byte_timeout: Duration::from_millis(500),
        stall_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_secs(1),
        retries,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..Config::default()
    }
}

/// Runs one fetch of 30,000 bytes at offset 1,000 and returns the problem
/// with the error text, the time it took and the request count.
async fn fault(mode: Mode, retries: u32) -> (Problem, String, Duration, usize, Server) {
    let server = serve(mode).await;
    let client = Client::new(quick(retries)).expect("client");
    let mut out = vec![0u8; 30_000];
    let started = Instant::now();
    let e = client
        .fetch_range(&server.url(), FILE_LEN, 1000, &mut out)
        .await
        .expect_err("the server misbehaves");
    let took = started.elapsed();
    let msg = e.to_string();
    eprintln!("{mode:?}: {msg} ({took:?})");
    assert!(msg.contains(&server.url()), "{msg}");
    let swarm::Error::WebSeed { problem, url } = e else {
        panic!("not a web seed error: {msg}");
    };
    assert_eq!(url, server.url());
    let n = server.requests.load(Ordering::SeqCst);
    (problem, msg, took, n, server)
}

#[tokio::test]
async fn good_server_gives_exact_bytes_over_one_connection() {
    let server = serve(Mode::Good).await;
    let client = Client::new(quick(0)).expect("client");
    for (offset, len) in [
        (0u64, 1usize),
        (1000, 30_000),
        (FILE_LEN - 7, 7),
        (0, 100_000),
    ] {
        let mut out = vec![0u8; len];
        client
            .fetch_range(&server.url(), FILE_LEN, offset, &mut out)
            .await
            .expect("fetch");
        let expected: Vec<u8> = (offset..offset + len as u64).map(byte_at).collect();
        assert_eq!(out, expected, "{offset}+{len}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 4);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "keep-alive");
    let mut out = vec![0u8; 10];
    let e = client
        .fetch_range(&server.url(), FILE_LEN, FILE_LEN - 5, &mut out)
        .await
        .expect_err("past the end");
    assert!(e.to_string().contains("outside"), "{e}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 4, "not sent");
}

#[tokio::test]
async fn a_200_with_a_huge_body_for_a_range_is_refused_unread() {
    let (problem, msg, took, n, server) = fault(Mode::Whole200, 0).await;
    assert!(
        matches!(problem, Problem::RangeIgnored { .. }),
        "{problem:?}"
    );
    assert!(msg.contains("ignored the Range header"), "{msg}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(n, 1);
    // The client stopped reading at once: the server could push no more
    // than socket buffers hold, nowhere near the 1 GiB it offered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = server.body_bytes_written.load(Ordering::SeqCst);
    assert!(pushed < 16 << 20, "{pushed} bytes pushed");
}

#[tokio::test]
async fn extra_body_bytes_stop_the_read_at_the_asked_length() {
    let (problem, msg, took, n, server) = fault(Mode::ExtraBody, 0).await;
    assert_eq!(problem, Problem::TooLong { expected: 30_000 });
    assert!(msg.contains("longer than the 30000 bytes"), "{msg}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(n, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = server.body_bytes_written.load(Ordering::SeqCst);
    assert!(pushed < 16 << 20, "{pushed} bytes pushed");
}

#[tokio::test]
async fn a_wrong_content_length_is_refused() {
    let (problem, msg, _, n, _) = fault(Mode::LongContentLength, 2).await;
    assert!(
        matches!(problem, Problem::ContentLength { .. }),
        "{problem:?}"
    );
    assert!(msg.contains("Content-Length is \"30010\""), "{msg}");
    assert_eq!(n, 1, "not retried");
}

#[tokio::test]
async fn a_wrong_content_range_is_refused_and_not_retried() {
    let (problem, msg, _, n, _) = fault(Mode::WrongRange, 2).await;
    assert!(
        matches!(problem, Problem::ContentRange { .. }),
        "{problem:?}"
    );
    assert!(
        msg.contains("bytes 1001-31000/100000") && msg.contains("bytes 1000-30999/100000"),
        "{msg}"
    );
    assert_eq!(n, 1, "not retried");
}

#[tokio::test]
async fn a_truncated_body_is_reported_and_retried_a_bounded_number_of_times() {
    let (problem, msg, took, n, _) = fault(Mode::Truncated, 2).await;
    assert!(
        matches!(problem, Problem::Truncated { got: 15_000, .. }),
        "{problem:?}"
    );
    assert!(msg.contains("after 15000 of 30000 bytes"), "{msg}");
    assert_eq!(n, 3, "one attempt and two retries");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn a_stalled_body_ends_at_the_stall_timeout() {
    let (problem, msg, took, n, _) = fault(Mode::Stalled, 0).await;
    assert!(
        matches!(problem, Problem::Stalled { got: 15_000, .. }),
        "{problem:?}"
    );
    assert!(msg.contains("stalled"), "{msg}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn no_response_ends_at_the_first_byte_timeout() {
    let (problem, msg, took, n, _) = fault(Mode::Silent, 1).await;
    assert!(matches!(problem, Problem::NoResponse(_)), "{problem:?}");
    assert!(msg.contains("no response headers"), "{msg}");
    // Two attempts of 500 ms and one short backoff.
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_slow_drip_ends_at_the_total_timeout() {
    let (problem, msg, took, _, _) = fault(Mode::Drip, 0).await;
    assert!(matches!(problem, Problem::TooSlow(_)), "{problem:?}");
    assert!(msg.contains("not finished within"), "{msg}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
}

#[tokio::test]
async fn transient_503s_are_retried_with_backoff() {
    let server = serve(Mode::FlakyTwice).await;
    let client = Client::new(quick(3)).expect("client");
    let mut out = vec![0u8; 500];
    client
        .fetch_range(&server.url(), FILE_LEN, 99_000, &mut out)
        .await
        .expect("third attempt succeeds");
    let expected: Vec<u8> = (99_000..99_500).map(byte_at).collect();
    assert_eq!(out, expected);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);

    // With fewer retries than failures, the 503 is the error.
    let (problem, msg, _, n, _) = fault(Mode::FlakyTwice, 1).await;
    assert_eq!(problem, Problem::Status(503));
    assert!(msg.contains("503"), "{msg}");
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_200_with_the_whole_file_is_accepted_for_a_whole_file_range() {
    let server = serve(Mode::Plain200).await;
    let client = Client::new(quick(0)).expect("client");
    let mut out = vec![0u8; FILE_LEN as usize];
    client
        .fetch_range(&server.url(), FILE_LEN, 0, &mut out)
        .await
        .expect("whole file");
    assert!(out.iter().enumerate().all(|(i, b)| *b == byte_at(i as u64)));
    let (problem, _, _, _, _) = fault(Mode::Plain200, 0).await;
    assert!(
        matches!(problem, Problem::RangeIgnored { .. }),
        "{problem:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_a_bounded_number_of_times() {
    let server = serve(Mode::RedirectOnce).await;
    let client = Client::new(quick(0)).expect("client");
    let mut out = vec![0u8; 100];
    client
        .fetch_range(&server.url(), FILE_LEN, 5, &mut out)
        .await
        .expect("after one redirect");
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, b)| *b == byte_at(i as u64 + 5))
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);

    let server = serve(Mode::RedirectLoop).await;
    let e = client
        .fetch_range(&server.url(), FILE_LEN, 5, &mut out)
        .await
        .expect_err("loop");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("/moved/file.bin") && msg.contains("more than 5 redirects"),
        "{msg}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn an_encoded_body_is_refused() {
    let (problem, msg, _, n, _) = fault(Mode::Gzip, 2).await;
    assert_eq!(problem, Problem::ContentEncoding("gzip".into()));
    assert!(msg.contains("Content-Encoding \"gzip\""), "{msg}");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_404_is_permanent() {
    let (problem, _, _, n, _) = fault(Mode::NotFound, 3).await;
    assert_eq!(problem, Problem::Status(404));
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_refused_connection_is_named() {
    // A port nobody listens on: bind, take the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/f");
    let client = Client::new(quick(0)).expect("client");
    let mut out = vec![0u8; 10];
    let e = client
        .fetch_range(&url, 100, 0, &mut out)
        .await
        .expect_err("refused");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&url) && msg.contains("connection failed"),
        "{msg}"
    );
}
