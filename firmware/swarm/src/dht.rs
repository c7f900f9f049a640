//! The BitTorrent DHT (BEP 5) and its signed mutable items (BEP 44, used
//! as BEP 46 does for update channels), through the `mainline` crate.
//!
//! Why a wrapper: `mainline` runs its node on its own thread (a blocking
//! UDP socket polled every 50 ms) and talks to callers through channels.
//! Its async API only waits on those channels, so it is safe on the
//! reactor; starting a node is not (it binds, and resolves the bootstrap
//! host names), so [`Dht::start`] does that on the blocking pool. One node
//! serves the whole process: torrents share it through an `Arc<Dht>`.
//!
//! Why off by default: a DHT node is a public UDP service. It tells
//! thousands of strangers which infohashes this machine holds and answers
//! anyone who asks, which is wrong for a private mirror pool and costs
//! a board memory and wakeups it need not spend when a tracker, LSD or the
//! origin's web seed already find everything. The node and the CLI turn it
//! on only when asked (`--dht`); SECURITY.md says what it exposes.
//!
//! Peer discovery ([`Dht::track`]) announces our peer port for a torrent's
//! handshake hashes and looks peers up again and again: often at first
//! (a swarm that has just started has announced nothing yet), then every
//! few minutes. Every lookup hands over at most [`Config::max_peers`]
//! addresses; the engine bounds what it keeps.
//!
//! Limits of `mainline` 8: IPv4 only (no BEP 32); a mutable value is a byte
//! string, and BEP 44 limits its *bencoded* form to 1000 bytes, which
//! leaves [`MAX_VALUE`] = 996 bytes of payload.

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::errors::{ConcurrencyError, PutMutableError, PutQueryError};
use mainline::{Id, MutableItem, SigningKey};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The usual public routers, used only when DHT is turned on without a
/// bootstrap list of its own.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

/// Largest mutable value: BEP 44 allows 1000 bytes for the bencoded `v`,
/// and a byte string of 996 bytes bencodes as `996:` plus the bytes.
pub const MAX_VALUE: usize = 996;

/// Largest salt BEP 44 allows.
pub const MAX_SALT: usize = 64;

/// Longest a single DHT operation may take before it is given up: queries
/// normally end in a few seconds (2 s per unanswered request).
const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// Backoff cap for announces that found no node to store at.
const ANNOUNCE_RETRY_MAX: Duration = Duration::from_secs(120);

/// What a node stores for others once it serves (server mode, or adaptive
/// mode after 15 reachable minutes). `mainline`'s defaults (2,000
/// infohashes × 500 peers, 1,000 items of each kind) could take tens of
/// MiB of a board's 32 MiB budget; these take about 2 MiB at most.
const SERVE_INFO_HASHES: usize = 256;
const SERVE_PEERS_PER_HASH: usize = 100;
const SERVE_ITEMS: usize = 128;

/// How to run the DHT node.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address to bind; port 0 takes any free port. The default,
    /// 0.0.0.0:0, suits a one-shot download; a long-running node keeps a
    /// fixed port (6881 by custom) so other nodes' routing tables stay
    /// valid across restarts and a firewall can let it in.
    pub bind: SocketAddrV4,
    /// `HOST:PORT` nodes to join the DHT through. Empty: start a network
    /// of our own and wait to be contacted (tests, isolated LANs).
    pub bootstrap: Vec<String>,
    /// Answer other nodes' queries and store their data from the start.
    /// Off: `mainline`'s adaptive mode, which becomes a server only after
    /// 15 minutes of being reachable.
    pub server_mode: bool,
    /// How often a torrent's announce is repeated (BEP 5 nodes forget
    /// peers after about 30 minutes).
    pub announce_every: Duration,
    /// Wait after the first peer lookup; it doubles after each lookup up
    /// to [`Config::lookup_every`].
    pub lookup_first: Duration,
    /// Longest wait between two peer lookups of a torrent.
    pub lookup_every: Duration,
    /// Peers handed to the engine per lookup and infohash.
    pub max_peers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| (*s).to_owned()).collect(),
            server_mode: false,
            announce_every: Duration::from_secs(15 * 60),
            lookup_first: Duration::from_secs(5),
            lookup_every: Duration::from_secs(5 * 60),
            max_peers: 200,
        }
    }
}

/// What went wrong in a DHT operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The UDP socket could not be opened.
    #[error("{0}")]
    Io(std::io::Error),
    /// A mutable value over [`MAX_VALUE`] bytes.
    #[error(
        "value of {0} bytes is too big: BEP 44 allows {MAX_VALUE} bytes (1000 bencoded)\nput a hash or URL in the item instead of the data"
    )]
    ValueTooBig(usize),
    /// A salt over [`MAX_SALT`] bytes.
    #[error("salt of {0} bytes is too big: BEP 44 allows {MAX_SALT}")]
    SaltTooBig(usize),
    /// No node was known to store at: the node is not bootstrapped.
    #[error("no DHT node to store at\nis UDP reachable, and are the bootstrap nodes up?")]
    NoNodes,
    /// Nodes answered, none stored the item or announce.
    #[error("refused by the nodes: error {code}: {message}")]
    Refused { code: i32, message: String },
    /// The nodes hold an item of the same key with a higher `seq`.
    #[error("a newer item (higher seq) is already stored")]
    Stale,
    /// Another put of the same key and salt with a different `seq` is
    /// still in flight from this node.
    #[error("{0}")]
    Conflict(String),
    /// No node answered in time.
    #[error("no DHT node answered in time")]
    TimedOut,
    /// The DHT node's thread is gone.
    #[error("the DHT node stopped")]
    Stopped,
}

fn err(context: impl Into<String>, problem: Problem) -> crate::Error {
    crate::Error::Dht {
        context: context.into(),
        problem,
    }
}

fn put_query_problem(e: PutQueryError) -> Problem {
    match e {
        PutQueryError::NoClosestNodes => Problem::NoNodes,
        PutQueryError::Timeout => Problem::TimedOut,
        PutQueryError::ErrorResponse(r) => Problem::Refused {
            code: r.code,
            message: r.description,
        },
    }
}

/// A running DHT node; dropping the last handle stops it.
#[derive(Debug)]
pub struct Dht {
    inner: AsyncDht,
    local: SocketAddrV4,
    config: Config,
}

impl Dht {
    /// Binds the node and starts joining the DHT through
    /// `config.bootstrap`. Returns before the join is done (see
    /// [`Dht::bootstrapped`]); bootstrap names that do not resolve are
    /// logged and skipped.
    pub async fn start(config: Config) -> Result<Dht, crate::Error> {
        let bind = config.bind;
        let (inner, config) = tokio::task::spawn_blocking(move || {
            let node = Self::build(&config)?;
            Ok::<_, crate::Error>((node, config))
        })
        .await
        .map_err(|_| err(format!("start on {bind}"), Problem::Stopped))??;
        let inner = inner.as_async();
        let local = inner.info().await.local_addr();
        tracing::info!("DHT node on udp {local}");
        Ok(Dht {
            inner,
            local,
            config,
        })
    }

    fn build(config: &Config) -> Result<mainline::Dht, crate::Error> {
        let mut nodes: Vec<SocketAddrV4> = Vec::new();
        for name in &config.bootstrap {
            match name.to_socket_addrs() {
                Ok(addrs) => nodes.extend(addrs.filter_map(|a| match a {
                    SocketAddr::V4(v4) => Some(v4),
                    SocketAddr::V6(_) => None,
                })),
                Err(e) => tracing::warn!("DHT bootstrap node {name}: {e}"),
            }
        }
        if nodes.is_empty() && !config.bootstrap.is_empty() {
            tracing::warn!(
                "no DHT bootstrap node resolved to an IPv4 address; waiting to be found"
            );
        }
        let mut builder = mainline::Dht::builder();
        // Always an explicit list, even an empty one: `mainline` falls
        // back to its own public defaults only when none is given.
        // Always an explicit port too: without one `mainline` tries 6881
        // first and would take it from whoever else wanted it.
        builder
            .bootstrap(&nodes)
            .bind_address(*config.bind.ip())
            .port(config.bind.port());
        if config.server_mode {
            builder.server_mode();
        }
        builder.server_settings(mainline::ServerSettings {
            max_info_hashes: SERVE_INFO_HASHES,
            max_peers_per_info_hash: SERVE_PEERS_PER_HASH,
            max_immutable_values: SERVE_ITEMS,
            max_mutable_values: SERVE_ITEMS,
            ..mainline::ServerSettings::default()
        });
        builder
            .build()
            .map_err(|e| err(format!("cannot bind udp {}", config.bind), Problem::Io(e)))
    }

    /// The node's UDP address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Waits for a lookup of our own id; true if any node answered.
    pub async fn bootstrapped(&self) -> bool {
        tokio::time::timeout(OP_TIMEOUT, self.inner.bootstrapped())
            .await
            .unwrap_or(false)
    }

    /// Announces that we accept peers for `info_hash` on TCP `port`, at
    /// the address the DHT nodes see our UDP packets come from.
    pub async fn announce(&self, info_hash: [u8; 20], port: u16) -> Result<(), crate::Error> {
        let context = || format!("announce {}", hex(&info_hash));
        let r = tokio::time::timeout(
            OP_TIMEOUT,
            self.inner.announce_peer(Id::from(info_hash), Some(port)),
        )
        .await
        .map_err(|_| err(context(), Problem::TimedOut))?;
        r.map(|_| ())
            .map_err(|e| err(context(), put_query_problem(e)))
    }

    /// Looks up peers of `info_hash`: at most `max` distinct addresses,
    /// none with port 0. Empty when nobody announced or no node answered.
    pub async fn peers(&self, info_hash: [u8; 20], max: usize) -> Vec<SocketAddr> {
        let mut found: Vec<SocketAddr> = Vec::new();
        let mut seen: HashSet<SocketAddrV4> = HashSet::new();
        let mut stream = self.inner.get_peers(Id::from(info_hash));
        let deadline = Instant::now() + OP_TIMEOUT;
        while found.len() < max {
            let Ok(Some(batch)) = tokio::time::timeout_at(deadline, stream.next()).await else {
                break;
            };
            for a in batch {
                if found.len() < max && a.port() != 0 && seen.insert(a) {
                    found.push(SocketAddr::V4(a));
                }
            }
        }
        found
    }

    /// Signs and stores a mutable item (BEP 44) under the ed25519 key of
    /// `seed` and `salt` (empty: none). `seq` must not be lower than what
    /// the nodes hold ([`Problem::Stale`]); `value` is at most
    /// [`MAX_VALUE`] bytes. Succeeds when at least one node stored it.
    pub async fn put_mutable(
        &self,
        seed: [u8; 32],
        salt: &[u8],
        value: Vec<u8>,
        seq: i64,
    ) -> Result<(), crate::Error> {
        let signer = SigningKey::from_bytes(&seed);
        let context = || {
            format!(
                "put item {} seq {seq}",
                item_name(&signer.verifying_key().to_bytes(), salt)
            )
        };
        if value.len() > MAX_VALUE {
            return Err(err(context(), Problem::ValueTooBig(value.len())));
        }
        if salt.len() > MAX_SALT {
            return Err(err(context(), Problem::SaltTooBig(salt.len())));
        }
        let item = MutableItem::new(signer.clone(), &value, seq, salt_opt(salt));
        let r = tokio::time::timeout(OP_TIMEOUT, self.inner.put_mutable(item, None))
            .await
            .map_err(|_| err(context(), Problem::TimedOut))?;
        match r {
            Ok(outcome) => {
                tracing::debug!("{}: stored at {} nodes", context(), outcome.stored_at);
                Ok(())
            }
            Err(PutMutableError::Query(e)) => Err(err(context(), put_query_problem(e))),
            Err(PutMutableError::Concurrency(ConcurrencyError::NotMostRecent)) => {
                Err(err(context(), Problem::Stale))
            }
            Err(PutMutableError::Concurrency(e)) => {
                Err(err(context(), Problem::Conflict(e.to_string())))
            }
        }
    }

    /// The newest mutable item under `public_key` and `salt` (empty:
    /// none) that any node holds, as `(seq, value)`. Every item is checked
    /// against its signature and target before it counts; `None` when no
    /// node has one.
    pub async fn get_mutable(
        &self,
        public_key: [u8; 32],
        salt: &[u8],
    ) -> Result<Option<(i64, Vec<u8>)>, crate::Error> {
        if salt.len() > MAX_SALT {
            return Err(err(
                format!("get item {}", item_name(&public_key, salt)),
                Problem::SaltTooBig(salt.len()),
            ));
        }
        let mut stream = self.inner.get_mutable(&public_key, salt_opt(salt), None);
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut best: Option<(i64, Vec<u8>)> = None;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
            if item.key() != &public_key || item.value().len() > MAX_VALUE {
                continue;
            }
            let newer = match &best {
                None => true,
                // Same seq, different value: a broken or equivocating
                // signer; take the larger value so every node agrees.
                Some((s, v)) => item.seq() > *s || (item.seq() == *s && item.value() > &v[..]),
            };
            if newer {
                best = Some((item.seq(), item.value().to_vec()));
            }
        }
        Ok(best)
    }

    /// Announces `port` for each of `info_hashes` and sends the peers
    /// found for them to `found`, repeatedly, until the returned
    /// [`Tracking`] is dropped or `found` is closed. Port 0: look up only.
    pub fn track(
        self: &Arc<Self>,
        info_hashes: Vec<[u8; 20]>,
        port: u16,
        found: mpsc::Sender<SocketAddr>,
    ) -> Tracking {
        let task = tokio::spawn(track_loop(Arc::clone(self), info_hashes, port, found));
        Tracking { task }
    }
}

/// Peer discovery for one torrent; stops when dropped.
#[derive(Debug)]
pub struct Tracking {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn track_loop(
    dht: Arc<Dht>,
    hashes: Vec<[u8; 20]>,
    port: u16,
    found: mpsc::Sender<SocketAddr>,
) {
    let cfg = dht.config.clone();
    let mut next_announce = Instant::now();
    let mut announce_retry = cfg.lookup_first;
    let mut next_lookup = Instant::now();
    let mut lookup_wait = cfg.lookup_first;
    loop {
        if port != 0 && Instant::now() >= next_announce {
            let mut ok = true;
            for h in &hashes {
                if let Err(e) = dht.announce(*h, port).await {
                    tracing::debug!("{e}");
                    ok = false;
                }
            }
            // Not bootstrapped yet, or nodes gone: try again soon.
            next_announce = Instant::now()
                + if ok {
                    cfg.announce_every
                } else {
                    announce_retry
                };
            announce_retry = (announce_retry * 2).min(ANNOUNCE_RETRY_MAX);
        }
        if Instant::now() >= next_lookup {
            for h in &hashes {
                let peers = dht.peers(*h, cfg.max_peers).await;
                if !peers.is_empty() {
                    tracing::debug!("DHT: {} peers for {}", peers.len(), hex(h));
                }
                for a in peers {
                    if found.send(a).await.is_err() {
                        return;
                    }
                }
            }
            next_lookup = Instant::now() + lookup_wait;
            lookup_wait = (lookup_wait * 2).min(cfg.lookup_every);
        }
        let wake = if port != 0 {
            next_announce.min(next_lookup)
        } else {
            next_lookup
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = found.closed() => return,
        }
    }
}

fn salt_opt(salt: &[u8]) -> Option<&[u8]> {
    // BEP 44: the target is SHA-1(key + salt), so an empty salt and no
    // salt name the same item; only "none" signs the same way.
    (!salt.is_empty()).then_some(salt)
}

fn item_name(public_key: &[u8; 32], salt: &[u8]) -> String {
    if salt.is_empty() {
        hex(public_key)
    } else {
        format!("{}/{}", hex(public_key), String::from_utf8_lossy(salt))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_salt_is_no_salt() {
        assert_eq!(salt_opt(b""), None);
        assert_eq!(salt_opt(b"x"), Some(&b"x"[..]));
    }

    #[test]
    fn max_value_bencodes_to_1000_bytes() {
        let n = MAX_VALUE;
        assert_eq!(format!("{n}:").len() + n, 1000);
    }

    #[test]
    fn default_config_has_public_routers_and_a_free_port() {
        let c = Config::default();
        assert!(!c.bootstrap.is_empty());
        assert_eq!(c.bind.port(), 0);
        assert!(!c.server_mode);
    }

    #[tokio::test]
    async fn oversized_values_and_salts_are_refused_before_the_network() {
        let dht = Dht::start(Config {
            bind: "127.0.0.1:0".parse().expect("address"),
            bootstrap: Vec::new(),
            ..Config::default()
        })
        .await
        .expect("start");
        let e = dht
            .put_mutable([7; 32], b"", vec![0; MAX_VALUE + 1], 1)
            .await
            .expect_err("too big");
        assert!(
            matches!(
                e,
                crate::Error::Dht {
                    problem: Problem::ValueTooBig(997),
                    ..
                }
            ),
            "{e}"
        );
        let e = dht
            .put_mutable([7; 32], &[b's'; 65], vec![1], 1)
            .await
            .expect_err("salt too big");
        assert!(e.to_string().contains("salt of 65 bytes"), "{e}");
        let e = dht
            .get_mutable([7; 32], &[b's'; 65])
            .await
            .expect_err("salt too big");
        assert!(e.to_string().contains("salt of 65 bytes"), "{e}");
        // Alone, with nobody to store at: a clear error, not a hang.
        let e = dht
            .put_mutable([7; 32], b"", vec![1], 1)
            .await
            .expect_err("no nodes");
        assert!(
            matches!(
                e,
                crate::Error::Dht {
                    problem: Problem::NoNodes | Problem::TimedOut,
                    ..
                }
            ),
            "{e}"
        );
    }
}
