//! The accept loop and the life of one connection.
//!
//! Why these pieces:
//! - A semaphore caps connections. When it is exhausted the new connection
//!   is answered with a fixed 503 written without blocking and closed at
//!   once, instead of waiting in the kernel backlog: clients already
//!   connected keep being served at full speed, and the newcomer learns
//!   immediately that it should retry.
//! - hyper's header-read timeout runs whenever the connection waits for a
//!   request head, including between requests on a kept-alive connection,
//!   so a client that trickles headers (slowloris) or sits idle is dropped.
//! - hyper has no timeout for a response the client stops reading, so the
//!   socket is wrapped to record the last time bytes moved, and the
//!   connection task drops a connection idle for longer than the idle
//!   timeout.
//! - Connection tasks live in a `JoinSet`: shutdown stops accepting, asks
//!   every connection to finish its current response, waits up to the grace
//!   period and then aborts the rest, so `run` returns with nothing left
//!   running (mini-redis's shutdown, with a bound).
//! - Accept errors (EMFILE when out of descriptors) back off briefly
//!   rather than spin.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::service::{Shared, handle};
use crate::special::{Chain, Special};
use crate::status::{HttpCounters, StatusBoard};
use crate::{Config, Error, Mount};

/// Written to a connection over the cap, then the connection is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";

/// Serves `mounts` on `listener` until `shutdown` completes, then finishes
/// in-flight responses (up to [`Config::shutdown_grace`]) and returns.
/// `/-/…` is 404; use [`Server`] for a status board or special pages.
///
/// Fails only on invalid mounts or settings, before accepting anything.
pub async fn run(
    listener: TcpListener,
    mounts: Vec<Mount>,
    config: Config,
    shutdown: impl Future,
) -> Result<(), Error> {
    Server::new(mounts, config).run(listener, shutdown).await
}

/// A server to be run: mounts, settings, and what answers under `/-/`.
pub struct Server {
    mounts: Vec<Mount>,
    config: Config,
    special: Option<Arc<dyn Special>>,
    board: Option<StatusBoard>,
    miss: Option<Arc<dyn crate::Miss>>,
}

impl Server {
    /// Serves `mounts` with `config`; nothing under `/-/` yet.
    pub fn new(mounts: Vec<Mount>, config: Config) -> Self {
        Server {
            mounts,
            config,
            special: None,
            board: None,
            miss: None,
        }
    }

    /// Answers `/-/…` with `special` (after the status board's pages, if
    /// one is set). Combine several with [`crate::Chain`].
    #[must_use]
    pub fn special(mut self, special: Arc<dyn Special>) -> Self {
        self.special = Some(special);
        self
    }

    /// Asks `miss` for files of a snapshot that are not on disk
    /// (fetch-on-miss) instead of answering 404.
    #[must_use]
    pub fn miss(mut self, miss: Arc<dyn crate::Miss>) -> Self {
        self.miss = Some(miss);
        self
    }

    /// Counts HTTP statistics into `board` and serves its `/-/status`,
    /// `/-/status.json` and `/-/metrics`.
    #[must_use]
    pub fn status(mut self, board: StatusBoard) -> Self {
        self.board = Some(board);
        self
    }

    /// Serves on `listener` until `shutdown` completes, then finishes
    /// in-flight responses (up to [`Config::shutdown_grace`]) and returns.
    ///
    /// Fails only on invalid mounts or settings, before accepting anything.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future) -> Result<(), Error> {
        let counters = self
            .board
            .as_ref()
            .map_or_else(Default::default, StatusBoard::counters);
        let special: Option<Arc<dyn Special>> = match (self.board, self.special) {
            (Some(board), Some(other)) => Some(Arc::new(Chain::new(vec![Arc::new(board), other]))),
            (Some(board), None) => Some(Arc::new(board)),
            (None, other) => other,
        };
        serve(
            listener,
            Shared::new(self.mounts, self.config, special, counters)?.with_miss(self.miss),
            shutdown,
        )
        .await
    }
}

async fn serve(listener: TcpListener, shared: Shared, shutdown: impl Future) -> Result<(), Error> {
    let shared = Arc::new(shared);
    let config = &shared.config;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers)
        .max_header_size(config.max_header_bytes)
        // hyper polls the body for more while its write queue holds less
        // than this (default ~400 KiB per connection): keep it near one
        // chunk, so a connection holds about two chunks at most.
        .max_buf_size(config.chunk_size.max(config.max_header_bytes).max(8192));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let conn = connection(stream, peer.ip(), shared.clone(), builder.clone(), stop_rx.clone());
                        tasks.spawn(async move {
                            conn.await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::debug!("connection cap reached; refusing a connection");
                        // A fresh socket's send buffer always has room for
                        // these few bytes; if not, the client gets a reset.
                        let _ = stream.try_write(BUSY);
                    }
                },
                Err(e) => {
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + shared.config.shutdown_grace;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    tasks.shutdown().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    client: IpAddr,
    shared: Arc<Shared>,
    builder: http1::Builder,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let counters = shared.counters.clone();
    HttpCounters::add(&counters.connections_total, 1);
    HttpCounters::add(&counters.connections, 1);
    let _open = OpenConnection(counters.clone());
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        start,
        last: last.clone(),
        counters,
    });
    let idle = shared.config.idle_timeout;
    let svc = service_fn(move |req| handle(shared.clone(), client, req));
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut stopping = false;
    if *stop.borrow_and_update() {
        conn.as_mut().graceful_shutdown();
        stopping = true;
    }
    loop {
        let last_seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("http: connection ended: {e}");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = tokio::time::sleep_until(last_seen + idle) => {
                let now_last = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if now_last == last_seen {
                    tracing::debug!("http: closing a connection idle for {idle:?}");
                    return;
                }
            }
        }
    }
}

/// Counts a connection as open until dropped (also when the task is
/// aborted at shutdown).
struct OpenConnection(Arc<HttpCounters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when bytes last moved, in milliseconds since
/// `start`, and counts the bytes it sends.
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last: Arc<AtomicU64>,
    counters: Arc<HttpCounters>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn sent(&self, n: usize) {
        self.touch();
        HttpCounters::add(&self.counters.bytes_sent, n as u64);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            this.sent(n);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            this.sent(n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
