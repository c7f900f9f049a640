//! Announcing to trackers: HTTP (BEP 3, BEP 23) and UDP (BEP 15).
//!
//! This module only moves bytes; what they mean is decided by
//! `torrent::tracker`, which builds every request and bounds every answer.
//!
//! Why a hand-written HTTP/1.1 GET instead of the hyper client the web seeds
//! use: an announce is one small request and one small reply per interval,
//! with `Connection: close`, so keep-alive pools buy nothing, and the reply
//! framing lives in the sans-IO crate where it is fuzzed. `https://`
//! trackers run the same exchange over rustls (ring provider, webpki roots
//! plus [`Config::extra_roots`], as the web seeds do). Redirects are not
//! followed: a tracker that answers 3xx gets a [`Problem::Protocol`] error
//! naming the status.
//!
//! UDP announces run [`torrent::tracker::udp::UdpAnnounce`] against a
//! connected socket. The connection id a tracker hands out is cached per
//! tracker address for its one-minute lifetime in the [`Client`], so
//! re-announces within a minute (several torrents on one tracker) skip the
//! connect round trip. Retransmission follows BEP 15's `base · 2^n`,
//! bounded to [`udp::Timing::max_tries`] transmissions; tests shrink the base.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use torrent::tracker::{Limits, Scheme, TrackerUrl, http, udp};

use crate::Error;

pub use torrent::tracker::{AnnounceRequest as Request, AnnounceResponse as Response, Event};

/// Why an announce failed (the `problem` of [`Error::Tracker`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The URL is malformed, the tracker refused, or its answer was
    /// malformed or over a limit (see [`torrent::tracker::TrackerError`]).
    #[error(transparent)]
    Protocol(#[from] torrent::Error),
    /// Resolving, connecting, sending or receiving failed.
    #[error("{context}: {io}")]
    Io {
        context: &'static str,
        io: std::io::Error,
    },
    /// An HTTP tracker did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The TLS setup or handshake of an `https://` tracker failed.
    #[error("TLS: {0}")]
    Tls(String),
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Problem {
    move |io| Problem::Io { context, io }
}

/// How announces are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bound on a whole HTTP announce: connect, send, read the reply.
    pub http_timeout: Duration,
    /// UDP retransmission: BEP 15's 15 s base and 4 tries by default.
    pub udp: udp::Timing,
    /// Bounds on answers.
    pub limits: Limits,
    /// The `User-Agent` of HTTP announces.
    pub user_agent: String,
    /// Extra trusted root certificates (DER) for `https://` trackers with a
    /// private CA; the webpki (Mozilla) roots are always trusted.
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_timeout: Duration::from_secs(30),
            udp: udp::Timing::default(),
            limits: Limits::default(),
            user_agent: concat!("swarmsync/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_roots: Vec::new(),
        }
    }
}

/// Most UDP connection ids kept; beyond this the oldest are dropped.
const MAX_CACHED_IDS: usize = 256;

/// A tracker client: its configuration, the UDP connection-id cache and
/// the TLS setup. Share it behind an `Arc`; every method takes `&self`.
#[derive(Default)]
pub struct Client {
    config: Config,
    /// Tracker address → (connection id, when it was received). A std mutex:
    /// it is never held across an await.
    udp_ids: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
    /// Built on the first `https://` announce.
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Announces with a process-wide [`Client`] of default [`Config`].
pub async fn announce(url: &str, request: &Request) -> Result<Response, Error> {
    static DEFAULT: OnceLock<Client> = OnceLock::new();
    DEFAULT
        .get_or_init(Client::default)
        .announce(url, request)
        .await
}

impl Client {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            udp_ids: Mutex::new(HashMap::new()),
            tls: OnceLock::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Announces `request` to the tracker at `url` (`http://`, `https://` or
    /// `udp://`).
    pub async fn announce(&self, url: &str, request: &Request) -> Result<Response, Error> {
        self.announce_inner(url, request)
            .await
            .map_err(|problem| Error::Tracker {
                url: url.to_owned(),
                problem,
            })
    }

    async fn announce_inner(&self, url: &str, request: &Request) -> Result<Response, Problem> {
        let parsed = TrackerUrl::parse(url).map_err(torrent::Error::from)?;
        match parsed.scheme {
            Scheme::Http | Scheme::Https => self.announce_http(&parsed, request).await,
            Scheme::Udp => self.announce_udp(&parsed, request).await,
        }
    }

    async fn announce_http(
        &self,
        url: &TrackerUrl,
        request: &Request,
    ) -> Result<Response, Problem> {
        let limit = self.config.http_timeout;
        let exchange = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(io("connect"))?;
            let _ = tcp.set_nodelay(true);
            if url.scheme == Scheme::Https {
                let connector = self.tls_connector()?;
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| Problem::Tls(format!("server name {}: {e}", url.host)))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Problem::Tls(e.to_string()))?;
                self.http_exchange(tls, url, request).await
            } else {
                self.http_exchange(tcp, url, request).await
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| Problem::Timeout(limit))?
    }

    /// Sends the GET and reads the reply until its framing says it is
    /// whole, the tracker closes, or more than the limits allow arrived.
    async fn http_exchange(
        &self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        url: &TrackerUrl,
        request: &Request,
    ) -> Result<Response, Problem> {
        let req = http::request(url, request, &self.config.user_agent);
        stream.write_all(&req).await.map_err(io("send"))?;
        stream.flush().await.map_err(io("send"))?;
        // Headers, the body, and slack for chunk framing; one byte more than
        // that makes the parser report the reply as too large.
        let max = http::MAX_HEAD + self.config.limits.max_message * 2 + 1024;
        let mut reply = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                // A TLS peer that closes without close_notify: what was read
                // is judged by its framing like a plain close.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(io("receive")(e)),
            };
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
            if reply.len() > max || http::is_complete(&reply) {
                break;
            }
        }
        Ok(http::parse_reply(&reply, &self.config.limits)?)
    }

    fn tls_connector(&self) -> Result<tokio_rustls::TlsConnector, Problem> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                for (i, der) in self.config.extra_roots.iter().enumerate() {
                    roots
                        .add(rustls::pki_types::CertificateDer::from(der.clone()))
                        .map_err(|e| format!("extra root {i}: {e}"))?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
            .clone()
            .map_err(Problem::Tls)
    }

    async fn announce_udp(&self, url: &TrackerUrl, request: &Request) -> Result<Response, Problem> {
        let addr = resolve(url).await?;
        let local: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(io("bind"))?;
        socket.connect(addr).await.map_err(io("connect"))?;
        let cached = self.cached_id(addr);
        let mut exchange = udp::UdpAnnounce::new(
            request.clone(),
            addr.is_ipv6(),
            cached,
            random_u32(),
            self.config.udp,
            self.config.limits,
            Instant::now(),
        );
        // One byte over the limit so an oversized datagram is reported, not
        // silently cut to a valid-looking one.
        let mut buf = vec![0u8; self.config.limits.max_message + 1];
        let outcome = loop {
            let now = Instant::now();
            if let Some(packet) = exchange.poll_transmit(now) {
                socket.send(&packet).await.map_err(io("send"))?;
            }
            if let Some(result) = exchange.poll_result() {
                break result;
            }
            let Some(deadline) = exchange.poll_timeout() else {
                // Not done, nothing to wait for: cannot happen, but never spin.
                break Err(torrent::tracker::TrackerError::Timeout { tries: 0 });
            };
            tokio::select! {
                received = socket.recv(&mut buf) => {
                    let n = received.map_err(io("receive"))?;
                    exchange.handle_datagram(Instant::now(), &buf[..n]);
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    exchange.handle_timeout(Instant::now());
                }
            }
        };
        self.store_id(addr, exchange.connection_id());
        Ok(outcome.map_err(torrent::Error::from)?)
    }

    fn cached_id(&self, addr: SocketAddr) -> Option<(u64, Instant)> {
        let ids = self.udp_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(&addr).copied()
    }

    fn store_id(&self, addr: SocketAddr, id: Option<(u64, Instant)>) {
        let mut ids = self.udp_ids.lock().unwrap_or_else(|e| e.into_inner());
        match id {
            Some(id) => {
                if ids.len() >= MAX_CACHED_IDS && !ids.contains_key(&addr) {
                    let oldest = ids.iter().min_by_key(|(_, (_, at))| *at).map(|(a, _)| *a);
                    if let Some(oldest) = oldest {
                        ids.remove(&oldest);
                    }
                }
                ids.insert(addr, id);
            }
            None => {
                ids.remove(&addr);
            }
        }
    }
}

async fn resolve(url: &TrackerUrl) -> Result<SocketAddr, Problem> {
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(io("resolve"))?;
    addrs.next().ok_or(Problem::Io {
        context: "resolve",
        io: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

/// An unpredictable 32-bit value (transaction ids, announce keys, LSD
/// cookies). std's `RandomState` is keyed from the OS's random source once
/// per thread and SipHash is a keyed PRF, so its outputs cannot be guessed
/// by someone who cannot read our memory; the counter makes each call
/// differ. That is all BEP 15 transaction ids need, without a
/// dependency on a random-number crate.
pub(crate) fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// An unpredictable 32-bit value (transaction ids, announce keys): keyed
/// SipHash over a counter, keys from the OS's random source.
pub fn random_u32() -> u32 {
    (random_u64() >> 32) as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn random_values_differ() {
        let a: Vec<u64> = (0..64).map(|_| random_u64()).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn id_cache_is_bounded() {
        let c = Client::default();
        let now = Instant::now();
        for port in 0..(MAX_CACHED_IDS as u16 + 10) {
            c.store_id(([127, 0, 0, 1], port).into(), Some((port.into(), now)));
        }
        assert_eq!(c.udp_ids.lock().unwrap().len(), MAX_CACHED_IDS);
        let last: SocketAddr = ([127, 0, 0, 1], MAX_CACHED_IDS as u16 + 9).into();
        assert!(c.cached_id(last).is_some());
        c.store_id(last, None);
        assert!(c.cached_id(last).is_none());
    }

    #[tokio::test]
    async fn refuses_bad_urls() {
        let r = Request {
            info_hash: [0; 20],
            peer_id: [0; 20],
            port: 1,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            numwant: None,
            key: 0,
        };
        let e = announce("udp://127.0.0.1/announce", &r).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tracker udp://127.0.0.1/announce: bad tracker URL"),
            "{e}"
        );
    }
}
