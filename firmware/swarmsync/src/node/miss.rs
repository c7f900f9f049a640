//! Fetch-on-miss for the node's HTTP server: a file of the served snapshot
//! outside the subset is fetched at top priority when a client asks for it.
//!
//! The channel task registers its running engine here (its torrent, its
//! control channel, and broadcasts of completed files and of readable
//! pieces of urgent files); the server's [`serve::Miss`] call looks the
//! path up in that torrent, asks the engine for the file as urgent (its
//! pieces then come in file order), and once the first piece verified
//! answers with a growing file the server streams as the verified prefix
//! grows: a large package starts flowing at once instead of after the
//! whole download. Only when the engine's release is the one being
//! served: while a newer release is syncing, a path could name different
//! bytes in the two snapshots, so the client gets 503 and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serve::{Found, Growing, MissError, MissFuture};
use store::Store;
use swarm::engine::{Control, Readable};
use tokio::sync::{broadcast, mpsc, watch};
use torrent::metainfo::Metainfo;

/// How long a client waits for the first bytes of a missing file, and at
/// most between two pieces of it.
const WAIT: Duration = Duration::from_secs(120);

/// The running engine of one channel, as fetch-on-miss needs it.
#[derive(Clone)]
pub struct Engine {
    pub seq: u64,
    pub meta: Arc<Metainfo>,
    pub index_of: Arc<super::paths::PathIndex>,
    pub control: mpsc::Sender<Control>,
    pub completed: broadcast::Sender<usize>,
    pub readable: broadcast::Sender<Readable>,
    pub store: Arc<Mutex<Store>>,
}

/// One channel's registration point.
#[derive(Default)]
pub struct ChannelMiss {
    engine: Mutex<Option<Engine>>,
    /// The seq of the snapshot `current` points to.
    serving: Mutex<Option<u64>>,
}

impl ChannelMiss {
    pub fn set_engine(&self, e: Option<Engine>) {
        if let Ok(mut g) = self.engine.lock() {
            *g = e;
        }
    }

    pub fn set_serving(&self, seq: Option<u64>) {
        if let Ok(mut g) = self.serving.lock() {
            *g = seq;
        }
    }

    async fn fetch(&self, rest: Vec<String>) -> Result<Found, MissError> {
        let engine = self.engine.lock().ok().and_then(|g| g.clone());
        let serving = self.serving.lock().ok().and_then(|g| *g);
        let Some(e) = engine else {
            return Err(MissError::Busy);
        };
        let path = rest.join("/");
        let Some(idx) = e.index_of.get(&path) else {
            return Err(MissError::NotFound);
        };
        if serving != Some(e.seq) {
            return Err(MissError::Busy);
        }
        let Some(f) = e.meta.info.files.get(idx) else {
            return Err(MissError::NotFound);
        };
        let Some(root) = f
            .pieces_root
            .filter(|_| f.length > 0 && f.symlink_target.is_none())
        else {
            return Err(MissError::NotFound);
        };
        let (object, partial) = {
            let st = e
                .store
                .lock()
                .map_err(|_| MissError::Unavailable("the store lock is poisoned".into()))?;
            if st.has_object(&root) {
                return Ok(Found::Complete(st.object_path(&root)));
            }
            (st.object_path(&root), st.partial_path(&root))
        };
        // Subscribe before asking, so nothing can slip by.
        let done = e.completed.subscribe();
        let readable = e.readable.subscribe();
        e.control
            .send(Control::Want {
                file: idx,
                urgent: true,
            })
            .await
            .map_err(|_| MissError::Unavailable("the engine stopped".into()))?;
        let (tx, mut rx) = watch::channel(0u64);
        let length = f.length;
        tokio::spawn(track(
            idx,
            length,
            e.meta.info.piece_length.max(1),
            done,
            readable,
            e.control.clone(),
            tx,
        ));
        // Answer once the first bytes are there: a file nobody delivers is
        // a clear 504, not a 200 that stalls.
        match tokio::time::timeout(WAIT, rx.wait_for(|v| *v > 0)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                return Err(MissError::Unavailable(format!(
                    "{path}: the engine stopped before it was complete"
                )));
            }
            Err(_) => return Err(MissError::TimedOut),
        }
        if *rx.borrow() >= length && object.is_file() {
            return Ok(Found::Complete(object));
        }
        Ok(Found::Growing(Growing {
            length,
            ready: rx,
            open: Arc::new(move || open_either(&partial, &object)),
            stall: WAIT,
            // The same strong tag the object gets served with (serve's
            // content-hash ETag).
            etag: Some(format!("\"{}\"", torrent::hash::to_hex(&root))),
        }))
    }
}

/// Follows one urgent file: publishes on `tx` how many bytes from its
/// start are verified and readable, until it is complete, the engine
/// stops, nothing arrives for [`WAIT`], or the client is gone.
async fn track(
    file: usize,
    length: u64,
    piece_length: u64,
    mut done: broadcast::Receiver<usize>,
    mut readable: broadcast::Receiver<Readable>,
    control: mpsc::Sender<Control>,
    tx: watch::Sender<u64>,
) {
    let pieces = usize::try_from(length.div_ceil(piece_length)).unwrap_or(usize::MAX);
    let mut have = vec![false; pieces];
    let mut prefix = 0usize;
    loop {
        tokio::select! {
            r = readable.recv() => match r {
                Ok(Readable { file: f, piece }) if f == file => {
                    if let Some(slot) = have.get_mut(piece as usize) {
                        *slot = true;
                    }
                    while have.get(prefix).copied().unwrap_or(false) {
                        prefix += 1;
                    }
                    let bytes = (prefix as u64).saturating_mul(piece_length).min(length);
                    tx.send_if_modified(|v| {
                        let grew = bytes > *v;
                        if grew {
                            *v = bytes;
                        }
                        grew
                    });
                    if bytes >= length {
                        return;
                    }
                }
                Ok(_) => {}
                // Missed some: asking again replays every readable piece.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let ask = Control::Want { file, urgent: true };
                    if control.send(ask).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = done.recv() => match r {
                Ok(f) if f == file => {
                    tx.send_replace(length);
                    return;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tx.closed() => return,
            () = tokio::time::sleep(WAIT) => return,
        }
    }
}

/// The `.part` while it is downloaded, the object once it is complete (the
/// rename is atomic, so one of the two exists; a handle opened on the
/// `.part` stays valid across the rename).
fn open_either(
    partial: &std::path::Path,
    object: &std::path::Path,
) -> std::io::Result<std::fs::File> {
    let mut last = None;
    for _ in 0..3 {
        for p in [partial, object] {
            match std::fs::File::open(p) {
                Ok(f) => return Ok(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => last = Some(e),
                Err(e) => return Err(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// The node's [`serve::Miss`]: routes by mount prefix to the channel.
pub struct Misses {
    pub channels: Vec<(String, Arc<ChannelMiss>)>,
}

impl serve::Miss for Misses {
    fn fetch(&self, prefix: &str, rest: &[String]) -> MissFuture {
        let ch = self
            .channels
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, c)| Arc::clone(c));
        let rest = rest.to_vec();
        Box::pin(async move {
            match ch {
                Some(c) => c.fetch(rest).await,
                None => Err(MissError::NotFound),
            }
        })
    }
}
