//! Fetch-on-miss for the node's HTTP server: a file of the served snapshot
//! outside the subset is fetched at top priority when a client asks for it.
//!
//! The channel task registers its running engine here (its torrent, its
//! control channel, and a broadcast of completed files); the server's
//! [`serve::Miss`] call looks the path up in that torrent, asks the engine
//! for the file as urgent, and waits for the object to be complete and
//! verified. Only when the engine's release is the one being served: while
//! a newer release is syncing, a path could name different bytes in the two
//! snapshots, so the client gets 503 and retries.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serve::{MissError, MissFuture};
use store::Store;
use swarm::engine::Control;
use tokio::sync::{broadcast, mpsc};
use torrent::metainfo::Metainfo;

/// How long a client waits for a missing file.
const WAIT: Duration = Duration::from_secs(120);

/// The running engine of one channel, as fetch-on-miss needs it.
#[derive(Clone)]
pub struct Engine {
    pub seq: u64,
    pub meta: Arc<Metainfo>,
    pub index_of: Arc<super::paths::PathIndex>,
    pub control: mpsc::Sender<Control>,
    pub completed: broadcast::Sender<usize>,
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

    async fn fetch(&self, rest: Vec<String>) -> Result<PathBuf, MissError> {
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
        let object = |e: &Engine| -> Option<PathBuf> {
            let st = e.store.lock().ok()?;
            st.has_object(&root).then(|| st.object_path(&root))
        };
        if let Some(p) = object(&e) {
            return Ok(p);
        }
        // Subscribe before asking, so the completion cannot slip by.
        let mut done = e.completed.subscribe();
        e.control
            .send(Control::Want {
                file: idx,
                urgent: true,
            })
            .await
            .map_err(|_| MissError::Unavailable("the engine stopped".into()))?;
        let wait = async {
            loop {
                match done.recv().await {
                    Ok(i) if i == idx => return object(&e),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(p) = object(&e) {
                            return Some(p);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return object(&e),
                }
            }
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(MissError::Unavailable(format!(
                "{path}: the engine stopped before it was complete"
            ))),
            Err(_) => Err(MissError::TimedOut),
        }
    }
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
