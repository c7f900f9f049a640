//! Trackers on 127.0.0.1 that lose packets, stay silent, refuse, or send
//! too much: each announce ends with the right answer or a clear error,
//! within a bounded time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swarm::tracker::{Client, Config, Event, Problem, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use torrent::tracker::udp::Timing;
use torrent::tracker::{Limits, TrackerError};

fn request() -> Request {
    Request {
        info_hash: [7; 20],
        peer_id: [8; 20],
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        numwant: None,
        key: 1,
    }
}

fn client(base_ms: u64, tries: u32) -> Client {
    Client::new(Config {
        http_timeout: Duration::from_millis(500),
        udp: Timing {
            base_timeout: Duration::from_millis(base_ms),
            max_tries: tries,
        },
        limits: Limits {
            max_message: 4096,
            max_peers: 100,
        },
        ..Config::default()
    })
}

#[derive(Default)]
struct Counts {
    connects: AtomicUsize,
    announces: AtomicUsize,
}

/// A UDP tracker that drops the first `drop_connects` connects and the
/// first `drop_announces` announces, and answers the rest with one peer.
async fn lossy_udp_tracker(
    drop_connects: usize,
    drop_announces: usize,
    error_reply: bool,
) -> (SocketAddr, Arc<Counts>) {
    udp_tracker_on("127.0.0.1:0", drop_connects, drop_announces, error_reply).await
}

/// [`lossy_udp_tracker`] on `bind`; over IPv6 it answers with an 18-byte
/// peer entry ([::1]:6881), as BEP 15 says.
async fn udp_tracker_on(
    bind: &str,
    drop_connects: usize,
    drop_announces: usize,
    error_reply: bool,
) -> (SocketAddr, Arc<Counts>) {
    let socket = UdpSocket::bind(bind).await.expect("bind");
    let addr = socket.local_addr().expect("address");
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let p = &buf[..n];
            if n < 16 {
                continue;
            }
            let tid = &p[12..16];
            let mut reply = Vec::new();
            if n == 16 && p[..8] == torrent::tracker::udp::PROTOCOL_ID.to_be_bytes() {
                if c.connects.fetch_add(1, Ordering::SeqCst) < drop_connects {
                    continue;
                }
                if error_reply {
                    reply.extend_from_slice(&3u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(b"torrent not registered");
                } else {
                    reply.extend_from_slice(&0u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(&0xc0ff_ee00_u64.to_be_bytes());
                }
            } else if n == 98 {
                assert_eq!(p[..8], 0xc0ff_ee00_u64.to_be_bytes(), "the connection id");
                if c.announces.fetch_add(1, Ordering::SeqCst) < drop_announces {
                    continue;
                }
                reply.extend_from_slice(&1u32.to_be_bytes());
                reply.extend_from_slice(tid);
                for v in [900u32, 1, 2] {
                    reply.extend_from_slice(&v.to_be_bytes());
                }
                if addr.is_ipv6() {
                    let mut peer = [0u8; 18];
                    peer[15] = 1;
                    peer[16..].copy_from_slice(&6881u16.to_be_bytes());
                    reply.extend_from_slice(&peer);
                } else {
                    reply.extend_from_slice(&[10, 1, 2, 3, 0x1a, 0xe1]);
                }
            } else {
                continue;
            }
            let _ = socket.send_to(&reply, from).await;
        }
    });
    (addr, counts)
}

#[tokio::test]
async fn udp_retransmits_after_loss_then_reuses_the_connection_id() {
    let (addr, counts) = lossy_udp_tracker(1, 1, false).await;
    let c = client(50, 4);
    let url = format!("udp://{addr}");
    let t0 = Instant::now();
    let r = c.announce(&url, &request()).await.expect("announce");
    let took = t0.elapsed();
    assert_eq!(
        r.peers,
        vec!["10.1.2.3:6881".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(r.interval, Duration::from_secs(900));
    assert_eq!((r.leechers, r.seeders), (Some(1), Some(2)));
    // Lost connect: 50 ms; lost announce (third transmission): 200 ms.
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(counts.connects.load(Ordering::SeqCst), 2);
    assert_eq!(counts.announces.load(Ordering::SeqCst), 2);

    // Within the id's lifetime the next announce skips the connect.
    c.announce(&url, &request()).await.expect("second announce");
    assert_eq!(counts.connects.load(Ordering::SeqCst), 2);
    assert_eq!(counts.announces.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn udp_over_ipv6_reads_18_byte_peers() {
    let (addr, _) = udp_tracker_on("[::1]:0", 0, 0, false).await;
    let r = client(50, 3)
        .announce(&format!("udp://{addr}"), &request())
        .await
        .expect("announce over IPv6");
    assert_eq!(
        r.peers,
        vec!["[::1]:6881".parse::<SocketAddr>().expect("addr")]
    );
}

#[tokio::test]
async fn udp_gives_up_after_the_last_try() {
    let (addr, counts) = lossy_udp_tracker(usize::MAX, 0, false).await;
    let t0 = Instant::now();
    let e = client(20, 3)
        .announce(&format!("udp://{addr}"), &request())
        .await
        .expect_err("a silent tracker");
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            swarm::Error::Tracker {
                problem: Problem::Protocol(torrent::Error::Tracker(TrackerError::Timeout {
                    tries: 3
                })),
                ..
            }
        ),
        "{e:?}"
    );
    // 20 + 40 + 80 ms.
    assert!(took >= Duration::from_millis(140), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(counts.connects.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn udp_error_packet_is_the_error() {
    let (addr, _) = lossy_udp_tracker(0, 0, true).await;
    let e = client(50, 3)
        .announce(&format!("udp://{addr}"), &request())
        .await
        .expect_err("refused");
    assert!(
        e.to_string()
            .ends_with("tracker refused the announce: torrent not registered"),
        "{e}"
    );
}

/// An HTTP tracker that answers every connection with `reply` and then
/// keeps the connection open (or sends nothing at all when `reply` is empty).
async fn http_tracker(reply: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                if !reply.is_empty() {
                    let _ = s.write_all(&reply).await;
                }
                // Hold the connection: the client must not wait for a close.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_reply_is_complete_without_a_close() {
    let body = b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
    let mut reply =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(body);
    let addr = http_tracker(reply).await;
    let t0 = Instant::now();
    let r = client(50, 3)
        .announce(&format!("http://{addr}/announce"), &request())
        .await
        .expect("announce");
    assert!(t0.elapsed() < Duration::from_millis(450));
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:6881".parse::<SocketAddr>().expect("addr")]
    );
}

#[tokio::test]
async fn http_silence_and_floods_are_bounded() {
    let addr = http_tracker(Vec::new()).await;
    let t0 = Instant::now();
    let e = client(50, 3)
        .announce(&format!("http://{addr}/announce"), &request())
        .await
        .expect_err("silent tracker");
    assert!(
        matches!(
            e,
            swarm::Error::Tracker {
                problem: Problem::Timeout(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));

    let mut flood = b"HTTP/1.1 200 OK\r\n\r\nd8:intervali60e5:peers".to_vec();
    flood.extend_from_slice(b"60000:");
    flood.extend(std::iter::repeat_n(0u8, 60_000));
    flood.push(b'e');
    let addr = http_tracker(flood).await;
    let e = client(50, 3)
        .announce(&format!("http://{addr}/announce"), &request())
        .await
        .expect_err("too large");
    assert!(e.to_string().contains("over the limit of 4096"), "{e}");
}
