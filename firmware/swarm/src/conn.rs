//! One TCP peer connection: a reader task and a writer task.
//!
//! The reader forwards what it reads to the engine, so a peer that sends
//! faster than the engine (or the disk) can take is slowed down by TCP flow
//! control, not buffered. What is queued is bounded in bytes, not in
//! messages: every chunk holds permits of the torrent's [`ReadBudget`] until
//! the engine has parsed it. A bound in messages (the engine's channel
//! holds 256) let one fast peer queue 256 full reads, 16 MiB, while the
//! engine waited for the disk; the budget keeps all peers together under
//! [`READ_BUDGET`] however many there are. The writer counts
//! bytes handed to it and not yet written, and the engine stops feeding a
//! peer past a bound: a peer that reads slowly cannot make us buffer either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use torrent::picker::PeerKey;

/// Read buffer per connection (a block message and a half: enough for
/// full speed, small enough to keep for each of 100 connections).
const READ_BUF: usize = 24 * 1024;

/// Bytes read from all peers of one torrent and not yet parsed by the
/// engine.
pub const READ_BUDGET: usize = 1 << 20;

/// The permits of [`READ_BUDGET`] shared by the connections of one torrent.
#[derive(Debug, Clone)]
pub struct ReadBudget(Arc<Semaphore>);

impl ReadBudget {
    pub fn new(bytes: usize) -> ReadBudget {
        ReadBudget(Arc::new(Semaphore::new(bytes.max(READ_BUF))))
    }
}

impl Default for ReadBudget {
    fn default() -> ReadBudget {
        ReadBudget::new(READ_BUDGET)
    }
}

/// Bytes of one read, holding their share of the [`ReadBudget`] until
/// dropped.
pub struct Chunk {
    pub data: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

/// The rate limits a connection passes through (per torrent, global).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub down: Vec<Arc<crate::rate::Limiter>>,
    pub up: Vec<Arc<crate::rate::Limiter>>,
}

/// What connection tasks tell the engine.
pub enum ConnEvent {
    Data(PeerKey, Chunk),
    Closed(PeerKey, String),
}

pub struct Conn {
    pub addr: SocketAddr,
    /// The address we dialed (outgoing connections only): the peer's
    /// listening address, which is what a ban or a reconnect is keyed by.
    pub dialed: Option<SocketAddr>,
    pub peer_id: Option<[u8; 20]>,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    unsent: Arc<AtomicUsize>,
    reader: Option<tokio::task::AbortHandle>,
}

impl Drop for Conn {
    /// Dropping the connection ends both tasks: the writer when its channel
    /// closes (after shutting the socket down), the reader at once.
    fn drop(&mut self) {
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

impl Conn {
    /// A connection still being dialed.
    pub fn pending(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            dialed: Some(addr),
            peer_id: None,
            writer: None,
            unsent: Arc::new(AtomicUsize::new(0)),
            reader: None,
        }
    }

    /// An accepted connection.
    pub fn incoming(addr: SocketAddr) -> Conn {
        let mut c = Conn::pending(addr);
        c.dialed = None;
        c
    }

    /// Starts the tasks of an established connection.
    pub fn start(
        key: PeerKey,
        stream: TcpStream,
        mut conn: Conn,
        tx: mpsc::Sender<ConnEvent>,
        limits: &Limits,
        budget: &ReadBudget,
    ) -> Conn {
        let budget = Arc::clone(&budget.0);
        let down = limits.down.clone();
        let up = limits.up.clone();
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
        let unsent = Arc::clone(&conn.unsent);
        let tx_r = tx.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_BUF];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx_r
                            .send(ConnEvent::Closed(key, "closed by peer".into()))
                            .await;
                        break;
                    }
                    Ok(n) => {
                        for l in &down {
                            l.take(n).await;
                        }
                        // n <= READ_BUF, which the budget always covers.
                        let permits = u32::try_from(n).unwrap_or(u32::MAX);
                        let Ok(permit) = Arc::clone(&budget).acquire_many_owned(permits).await
                        else {
                            break;
                        };
                        let chunk = Chunk {
                            data: buf[..n].to_vec(),
                            _permit: permit,
                        };
                        if tx_r.send(ConnEvent::Data(key, chunk)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx_r.send(ConnEvent::Closed(key, e.to_string())).await;
                        break;
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(chunk) = wrx.recv().await {
                let n = chunk.len();
                for l in &up {
                    l.take(n).await;
                }
                if let Err(e) = wr.write_all(&chunk).await {
                    let _ = tx.send(ConnEvent::Closed(key, e.to_string())).await;
                    break;
                }
                unsent.fetch_sub(n, Ordering::Relaxed);
            }
            let _ = wr.shutdown().await;
        });
        conn.writer = Some(wtx);
        conn.reader = Some(reader.abort_handle());
        conn
    }

    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    pub fn send(&self, bytes: Vec<u8>) {
        if let Some(w) = &self.writer {
            self.unsent.fetch_add(bytes.len(), Ordering::Relaxed);
            let _ = w.send(bytes);
        }
    }

    pub fn is_established(&self) -> bool {
        self.writer.is_some()
    }
}
