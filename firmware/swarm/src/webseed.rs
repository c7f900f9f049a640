//! HTTP/HTTPS web seeds (BEP 19, the "GetRight" `url-list` style).
//!
//! Why: the origin of a channel is also a plain HTTP server, and a node
//! with no peers yet (first boot, an empty LAN, a new release) must still be
//! able to sync. A web seed is any HTTP server holding the torrent's tree;
//! pieces are fetched from it with Range requests and verified like blocks
//! from peers (verification stays with the caller).
//!
//! The server is treated as untrusted as any peer: every response must be
//! exactly what was asked for (status 206 with a matching `Content-Range`, or
//! 200 with the whole file when the whole file was asked for), the body is
//! copied into a buffer of the requested size and reading stops the moment
//! the server sends more, so nothing is ever buffered beyond the request.
//! Each attempt is bounded in time three ways (connect, first byte, stalled
//! body) plus a total deadline; transient failures are retried a bounded
//! number of times with exponential backoff; an error names the URL and what
//! was wrong.
//!
//! Many pieces come from few servers, so one [`Client`] keeps HTTP/1.1
//! keep-alive connections in a pool (hyper-util's client) and is cheap to
//! clone. TLS is rustls with the ring provider and the webpki root store,
//! so the binary carries no OpenSSL or aws-lc and cross-compiles statically.

mod layout;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use torrent::{Info, Metainfo};

pub use layout::{Span, piece_spans};

use crate::Error;

/// Timeouts, retries and trust settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Establishing the TCP connection.
    pub connect_timeout: Duration,
    /// From sending a request (connecting and the TLS handshake included)
    /// to the end of the response headers.
    pub first_byte_timeout: Duration,
    /// Longest wait for the next part of a response body.
    pub stall_timeout: Duration,
    /// One attempt, from start to the last body byte.
    pub total_timeout: Duration,
    /// Further attempts after a transient failure (0: try once).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Redirects followed per request.
    pub max_redirects: u32,
    /// Most bytes [`Client::fetch_pieces`] fetches in one call.
    pub max_run_bytes: u64,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    pub user_agent: String,
    /// Extra trusted root certificates (DER), for origins with a private
    /// CA; the webpki (Mozilla) roots are always trusted.
    pub extra_roots: Vec<Vec<u8>>,
    /// Download rate limits the body bytes pass through (the torrent's and
    /// the process's, as for peer connections): a metered link's limit
    /// covers web seed traffic too.
    pub limits: Vec<Arc<crate::rate::Limiter>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_redirects: 5,
            max_run_bytes: 16 << 20,
            max_idle_per_host: 4,
            idle_timeout: Duration::from_secs(60),
            user_agent: concat!("swarmsync/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_roots: Vec::new(),
            limits: Vec::new(),
        }
    }
}

/// What went wrong with a web seed request (the URL is in [`Error::WebSeed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The URL is not an absolute http or https URL we can use.
    BadUrl(String),
    /// The TLS configuration could not be built (a bad extra root), or
    /// the handshake failed (an untrusted certificate, a name mismatch).
    Tls(String),
    /// The piece index is past the end of the torrent.
    NoSuchPiece { piece: u64, count: u64 },
    /// The torrent's file list does not cut this piece the expected way.
    Layout(String),
    /// Connecting, or the connection failed before a response.
    Connect(String),
    /// No response headers within the first-byte timeout.
    NoResponse(Duration),
    /// The attempt took longer than the total timeout.
    TooSlow(Duration),
    /// The body stopped arriving for the stall timeout.
    Stalled {
        got: u64,
        expected: u64,
        after: Duration,
    },
    /// An unexpected HTTP status.
    Status(u16),
    /// A 200 answer to a request for part of the file: the server ignored
    /// the Range header. The body is not read.
    RangeIgnored { file_length: u64 },
    /// The Content-Range header is missing or names other bytes.
    ContentRange {
        got: Option<String>,
        expected: String,
    },
    /// The Content-Length header differs from the bytes asked for.
    ContentLength { got: String, expected: u64 },
    /// The server sent more body bytes than asked for.
    TooLong { expected: u64 },
    /// The body is encoded (compressed) although `identity` was asked for.
    ContentEncoding(String),
    /// The body ended early.
    Truncated {
        got: u64,
        expected: u64,
        detail: String,
    },
    /// A redirect without a usable Location, or too many of them.
    Redirect(String),
    /// Another HTTP-level failure while reading the response.
    Http(String),
}

impl Problem {
    /// Whether another attempt may succeed: timeouts, broken connections,
    /// and statuses that say "later" (408, 429, 5xx). A server that answers
    /// with the wrong bytes is not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Problem::Connect(_)
            | Problem::NoResponse(_)
            | Problem::TooSlow(_)
            | Problem::Stalled { .. }
            | Problem::Truncated { .. }
            | Problem::Http(_) => true,
            Problem::Status(s) => *s == 408 || *s == 429 || (500..600).contains(s),
            _ => false,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadUrl(why) => write!(f, "unusable URL: {why}"),
            Problem::Tls(why) => write!(f, "TLS: {why}"),
            Problem::NoSuchPiece { piece, count } => {
                write!(f, "piece {piece} does not exist (the torrent has {count})")
            }
            Problem::Layout(why) => write!(f, "torrent layout: {why}"),
            Problem::Connect(why) => write!(f, "connection failed: {why}"),
            Problem::NoResponse(t) => write!(f, "no response headers within {t:?}"),
            Problem::TooSlow(t) => write!(f, "request not finished within {t:?}"),
            Problem::Stalled {
                got,
                expected,
                after,
            } => write!(
                f,
                "body stalled for {after:?} after {got} of {expected} bytes"
            ),
            Problem::Status(s) => write!(f, "unexpected HTTP status {s}"),
            Problem::RangeIgnored { file_length } => write!(
                f,
                "server ignored the Range header (200 instead of 206 for part of the \
                 {file_length}-byte file); body not read"
            ),
            Problem::ContentRange { got, expected } => match got {
                Some(g) => write!(f, "Content-Range is {g:?}, asked for {expected:?}"),
                None => write!(f, "206 without Content-Range, asked for {expected:?}"),
            },
            Problem::ContentLength { got, expected } => {
                write!(f, "Content-Length is {got:?}, asked for {expected} bytes")
            }
            Problem::ContentEncoding(e) => {
                write!(f, "body has Content-Encoding {e:?}, asked for identity")
            }
            Problem::TooLong { expected } => {
                write!(f, "body longer than the {expected} bytes asked for")
            }
            Problem::Truncated {
                got,
                expected,
                detail,
            } => {
                write!(f, "body ended after {got} of {expected} bytes")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            Problem::Redirect(why) => write!(f, "redirect: {why}"),
            Problem::Http(why) => write!(f, "HTTP error: {why}"),
        }
    }
}

fn err(url: &str, problem: Problem) -> Error {
    Error::WebSeed {
        url: url.to_owned(),
        problem,
    }
}

/// A web seed's base URL, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSeed {
    base: String,
}

impl WebSeed {
    /// Accepts an absolute `http://` or `https://` URL with a host and no
    /// query or fragment (file paths are appended to it).
    pub fn new(url: &str) -> Result<WebSeed, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|e| err(url, Problem::BadUrl(format!("{e}"))))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(err(
                    url,
                    Problem::BadUrl("scheme is not http or https".into()),
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(err(url, Problem::BadUrl("no host".into())));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(err(
                url,
                Problem::BadUrl("a query or fragment cannot take a file path".into()),
            ));
        }
        Ok(WebSeed {
            base: url.to_owned(),
        })
    }

    /// The base URL as given.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The URL of file `file` (an index into [`Info::files`]).
    pub fn file_url(&self, info: &Info, file: usize) -> Option<String> {
        let f = info.files.get(file)?;
        Some(layout::file_url(&self.base, info, f))
    }
}

/// A piece's bytes, fetched from a web seed and ready for hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub index: u64,
    /// The spans the bytes came from, in order.
    pub spans: Vec<Span>,
    /// The concatenated spans (pad spans as zeros).
    pub data: Vec<u8>,
}

impl Piece {
    /// The bytes the v1 piece hash covers (the whole piece, pads included).
    pub fn v1_bytes(&self) -> &[u8] {
        &self.data
    }

    /// For v2 and hybrid torrents: the file the piece belongs to, the
    /// piece's index inside that file, and the bytes its v2 piece hash
    /// covers (the file's part, without any pad). `None` when the piece
    /// does not start a file-aligned run of one real file (v1 layouts).
    pub fn v2_part(&self, info: &Info) -> Option<(usize, u64, &[u8])> {
        let first = self.spans.first().filter(|s| !s.pad)?;
        if self.spans.iter().skip(1).any(|s| !s.pad) {
            return None;
        }
        if first.offset % info.piece_length != 0 {
            return None;
        }
        let len = usize::try_from(first.length).ok()?;
        let data = self.data.get(..len)?;
        Some((first.file, first.offset / info.piece_length, data))
    }

    /// Checks the piece against every hash `meta` has for it (v1, v2 or
    /// both). A convenience for callers that do not hash elsewhere.
    pub fn verify(&self, meta: &Metainfo) -> bool {
        let info = &meta.info;
        let mut checked = false;
        if info.version.has_v1() {
            let Some(expected) = usize::try_from(self.index)
                .ok()
                .and_then(|i| info.pieces.get(i))
            else {
                return false;
            };
            if torrent::hash::sha1(self.v1_bytes()) != *expected {
                return false;
            }
            checked = true;
        }
        if info.version.has_v2() {
            let Some((file, local, data)) = self.v2_part(info) else {
                return false;
            };
            let Some((expected, width)) =
                info.files.get(file).and_then(|f| meta.v2_piece(f, local))
            else {
                return false;
            };
            if torrent::merkle::piece_hash(data, width) != Some(expected) {
                return false;
            }
            checked = true;
        }
        checked
    }
}

type Connector = HttpsConnector<HttpConnector>;

/// A web seed HTTP client with a keep-alive connection pool. Clones share
/// the pool; fetch pieces concurrently by cloning it into tasks.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<Connector, Empty<Bytes>>,
    cfg: Arc<Config>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("cfg", &self.cfg).finish()
    }
}

impl Client {
    /// Builds the client (TLS: rustls, ring provider, webpki roots plus
    /// `cfg.extra_roots`). Building needs no runtime; requests must run
    /// inside a tokio runtime, which drives the pooled connections.
    pub fn new(cfg: Config) -> Result<Client, Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (i, der) in cfg.extra_roots.iter().enumerate() {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| err("(config)", Problem::Tls(format!("extra root {i}: {e}"))))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("(config)", Problem::Tls(e.to_string())))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(cfg.connect_timeout));
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .build(https);
        Ok(Client {
            http,
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Fetches piece `piece` of `info` from `seed`: real spans by Range
    /// requests, pad spans as zeros. The bytes are not verified.
    pub async fn fetch_piece(
        &self,
        seed: &WebSeed,
        info: &Info,
        piece: u64,
    ) -> Result<Piece, Error> {
        let mut data = Vec::new();
        let spans = self.fetch_piece_into(seed, info, piece, &mut data).await?;
        Ok(Piece {
            index: piece,
            spans,
            data,
        })
    }

    /// Like [`Client::fetch_piece`], into a caller's buffer (cleared
    /// first), so a downloader can reuse one allocation per slot.
    pub async fn fetch_piece_into(
        &self,
        seed: &WebSeed,
        info: &Info,
        piece: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Span>, Error> {
        let spans = piece_spans(info, piece).map_err(|p| err(seed.url(), p))?;
        self.fetch_spans(seed, info, &spans, buf, u64::MAX).await?;
        Ok(spans)
    }

    /// Fetches the consecutive pieces `pieces` with as few requests as the
    /// layout allows: the spans of neighbouring pieces in one file become
    /// one Range request. For files much larger than a piece this turns
    /// hundreds of requests into one. The run may hold at most
    /// [`Config::max_run_bytes`], which bounds the memory it takes.
    pub async fn fetch_pieces(
        &self,
        seed: &WebSeed,
        info: &Info,
        pieces: std::ops::Range<u64>,
    ) -> Result<Vec<Piece>, Error> {
        let mut per_piece = Vec::new();
        let mut spans = Vec::new();
        for i in pieces.clone() {
            let s = piece_spans(info, i).map_err(|p| err(seed.url(), p))?;
            per_piece.push((i, s.len()));
            spans.extend(s);
        }
        let mut buf = Vec::new();
        self.fetch_spans(seed, info, &spans, &mut buf, self.cfg.max_run_bytes)
            .await?;
        let mut out = Vec::with_capacity(per_piece.len());
        let (mut span_at, mut byte_at) = (0usize, 0usize);
        for (index, n) in per_piece {
            let own: Vec<Span> = spans.get(span_at..span_at + n).unwrap_or_default().to_vec();
            span_at += n;
            let len: u64 = own.iter().map(|s| s.length).sum();
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let data = buf
                .get(byte_at..byte_at.saturating_add(len))
                .ok_or_else(|| err(seed.url(), Problem::Layout("span outside run".into())))?
                .to_vec();
            byte_at += len;
            out.push(Piece {
                index,
                spans: own,
                data,
            });
        }
        Ok(out)
    }

    /// Fills `buf` (cleared first) with the bytes of `spans` in order:
    /// pads as zeros, runs of adjacent spans of one file in one request.
    async fn fetch_spans(
        &self,
        seed: &WebSeed,
        info: &Info,
        spans: &[Span],
        buf: &mut Vec<u8>,
        max_bytes: u64,
    ) -> Result<(), Error> {
        let total: u64 = spans.iter().map(|s| s.length).sum();
        if total > max_bytes {
            return Err(err(
                seed.url(),
                Problem::Layout(format!(
                    "{total} bytes asked for at once, over the limit of {max_bytes}"
                )),
            ));
        }
        let total = usize::try_from(total)
            .map_err(|_| err(seed.url(), Problem::Layout("run too large".into())))?;
        buf.clear();
        buf.resize(total, 0);
        // (file, offset in file, length, offset in buf) of the run being built.
        let mut runs: Vec<(usize, u64, u64, usize)> = Vec::new();
        let mut at = 0usize;
        for s in spans {
            let start = at;
            // Span lengths sum to `total`, which fits in usize.
            at = at.saturating_add(usize::try_from(s.length).unwrap_or(usize::MAX));
            if s.pad {
                continue; // already zeros
            }
            match runs.last_mut() {
                Some(r)
                    if r.0 == s.file && r.1 + r.2 == s.offset && r.3 + r.2 as usize == start =>
                {
                    r.2 += s.length;
                }
                _ => runs.push((s.file, s.offset, s.length, start)),
            }
        }
        for (file, offset, length, start) in runs {
            let Some(f) = info.files.get(file) else {
                return Err(err(seed.url(), Problem::Layout("no such file".into())));
            };
            let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
            let out = buf
                .get_mut(start..end)
                .ok_or_else(|| err(seed.url(), Problem::Layout("span outside buffer".into())))?;
            let url = layout::file_url(&seed.base, info, f);
            self.fetch_range(&url, f.length, offset, out).await?;
        }
        Ok(())
    }

    /// Fetches `out.len()` bytes at `offset` of the file at `url`, whose
    /// length per the torrent is `file_length`, retrying transient failures
    /// with backoff. On success `out` holds exactly the requested bytes.
    pub async fn fetch_range(
        &self,
        url: &str,
        file_length: u64,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), Error> {
        if out.is_empty() {
            return Ok(());
        }
        let len = out.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > file_length) {
            return Err(err(
                url,
                Problem::Layout(format!(
                    "bytes {offset}+{len} are outside the {file_length}-byte file"
                )),
            ));
        }
        let mut attempt = 0u32;
        loop {
            match self.attempt(url, file_length, offset, out).await {
                Ok(()) => return Ok(()),
                Err((at, problem)) => {
                    if attempt >= self.cfg.retries || !problem.is_transient() {
                        return Err(err(&at, problem));
                    }
                    let wait = self
                        .cfg
                        .backoff
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(self.cfg.max_backoff);
                    tracing::debug!(url = %at, %problem, attempt, ?wait, "web seed retry");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One attempt, redirects included, under the total deadline. The
    /// error carries the URL that failed (after redirects).
    async fn attempt(
        &self,
        url: &str,
        file_length: u64,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), (String, Problem)> {
        let total = self.cfg.total_timeout;
        let deadline = Instant::now() + total;
        let mut current = url.to_owned();
        let fut = self.attempt_inner(&mut current, file_length, offset, out);
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(r) => r.map_err(|p| (current, p)),
            Err(_) => Err((current, Problem::TooSlow(total))),
        }
    }

    async fn attempt_inner(
        &self,
        current: &mut String,
        file_length: u64,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), Problem> {
        let len = out.len() as u64;
        let last = offset + len - 1;
        let range = format!("bytes={offset}-{last}");
        let mut redirects = 0u32;
        let response = loop {
            let uri: Uri = current
                .parse()
                .map_err(|e| Problem::BadUrl(format!("{e}")))?;
            let req = Request::get(uri.clone())
                .header(header::RANGE, &range)
                .header(header::USER_AGENT, &self.cfg.user_agent)
                .header(header::ACCEPT_ENCODING, "identity")
                .body(Empty::<Bytes>::new())
                .map_err(|e| Problem::BadUrl(e.to_string()))?;
            let sent = self.http.request(req);
            let resp = match tokio::time::timeout(self.cfg.first_byte_timeout, sent).await {
                Err(_) => return Err(Problem::NoResponse(self.cfg.first_byte_timeout)),
                Ok(Err(e)) => {
                    return Err(match tls_failure(&e) {
                        Some(why) => Problem::Tls(why),
                        None => Problem::Connect(chain(&e)),
                    });
                }
                Ok(Ok(r)) => r,
            };
            if resp.status().is_redirection() && resp.status() != StatusCode::NOT_MODIFIED {
                if redirects >= self.cfg.max_redirects {
                    return Err(Problem::Redirect(format!(
                        "more than {} redirects",
                        self.cfg.max_redirects
                    )));
                }
                redirects += 1;
                *current = redirect_target(&uri, resp.headers())?;
                continue;
            }
            break resp;
        };
        let status = response.status();
        let whole = offset == 0 && len == file_length;
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let expected = format!("bytes {offset}-{last}/{file_length}");
                let got = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                if !content_range_ok(got.as_deref(), offset, last, file_length) {
                    return Err(Problem::ContentRange { got, expected });
                }
            }
            StatusCode::OK if whole => {}
            StatusCode::OK => return Err(Problem::RangeIgnored { file_length }),
            other => return Err(Problem::Status(other.as_u16())),
        }
        if let Some(v) = response.headers().get(header::CONTENT_ENCODING)
            && !v.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            // Ranges would then be of the encoded bytes, not the file's.
            return Err(Problem::ContentEncoding(
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ));
        }
        if let Some(v) = response.headers().get(header::CONTENT_LENGTH)
            && !content_length_is(v, len)
        {
            return Err(Problem::ContentLength {
                got: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                expected: len,
            });
        }
        let mut body = response.into_body();
        let stall = self.cfg.stall_timeout;
        let mut got = 0usize;
        loop {
            let frame = match tokio::time::timeout(stall, body.frame()).await {
                Err(_) => {
                    return Err(Problem::Stalled {
                        got: got as u64,
                        expected: len,
                        after: stall,
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Problem::Truncated {
                        got: got as u64,
                        expected: len,
                        detail: chain(&e),
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers carry nothing we use
            };
            let end = got.saturating_add(data.len());
            let Some(dst) = out.get_mut(got..end) else {
                return Err(Problem::TooLong { expected: len });
            };
            dst.copy_from_slice(&data);
            got = end;
            for l in &self.cfg.limits {
                l.take(data.len()).await;
            }
        }
        if got < out.len() {
            return Err(Problem::Truncated {
                got: got as u64,
                expected: len,
                detail: String::new(),
            });
        }
        Ok(())
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` naming exactly the asked bytes;
/// TOTAL must be the torrent's file length (or `*`, unknown).
fn content_range_ok(got: Option<&str>, first: u64, last: u64, total: u64) -> bool {
    let Some(v) = got.and_then(|g| g.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((range, size)) = v.trim().split_once('/') else {
        return false;
    };
    let Some((a, b)) = range.split_once('-') else {
        return false;
    };
    let size_ok = size == "*" || size.parse::<u64>().ok() == Some(total);
    a.parse::<u64>().ok() == Some(first) && b.parse::<u64>().ok() == Some(last) && size_ok
}

fn content_length_is(v: &HeaderValue, len: u64) -> bool {
    v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) == Some(len)
}

/// The absolute URL a redirect points to: an absolute http(s) URL, or an
/// absolute path on the same origin.
fn redirect_target(from: &Uri, headers: &HeaderMap) -> Result<String, Problem> {
    let loc = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem::Redirect("no usable Location header".into()))?;
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Ok(loc.to_owned());
    }
    if loc.starts_with('/') && !loc.starts_with("//") {
        let scheme = from.scheme_str().unwrap_or("http");
        let authority = from
            .authority()
            .ok_or_else(|| Problem::Redirect("no authority to resolve Location".into()))?;
        return Ok(format!("{scheme}://{authority}{loc}"));
    }
    Err(Problem::Redirect(format!(
        "Location {loc:?} is neither an absolute URL nor an absolute path"
    )))
}

/// The rustls error inside a connection failure, if the TLS handshake is
/// what failed (a certificate the roots do not vouch for, a name mismatch):
/// retrying cannot fix it. It arrives wrapped in `io::Error`s (by
/// tokio-rustls, then hyper-rustls), whose `source()` skips the wrapped
/// error itself, so those are unwrapped with `get_ref`.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    let mut depth = 0;
    while let Some(c) = cur {
        if depth >= 8 {
            break;
        }
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
        depth += 1;
    }
    None
}

/// An error with its sources, joined: hyper's top-level messages alone
/// ("client error (Connect)") do not say what happened.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(c) = cur {
        if depth >= 8 {
            break;
        }
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
        depth += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_must_match_exactly() {
        assert!(content_range_ok(Some("bytes 0-9/100"), 0, 9, 100));
        assert!(content_range_ok(Some("bytes 0-9/*"), 0, 9, 100));
        assert!(!content_range_ok(Some("bytes 0-10/100"), 0, 9, 100));
        assert!(!content_range_ok(Some("bytes 1-9/100"), 0, 9, 100));
        assert!(!content_range_ok(Some("bytes 0-9/99"), 0, 9, 100));
        assert!(!content_range_ok(Some("0-9/100"), 0, 9, 100));
        assert!(!content_range_ok(None, 0, 9, 100));
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(WebSeed::new("http://h/x/").is_ok());
        assert!(WebSeed::new("https://h:8443/x").is_ok());
        for bad in [
            "ftp://h/",
            "/relative",
            "http://h/x?y=1",
            "http://h/x#f",
            "nonsense",
        ] {
            let e = WebSeed::new(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn redirects_resolve_absolute_forms_only() {
        let from: Uri = "https://a:1/x/y".parse().expect("uri");
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_static("/z"));
        assert_eq!(redirect_target(&from, &h), Ok("https://a:1/z".into()));
        h.insert(header::LOCATION, HeaderValue::from_static("http://b/z"));
        assert_eq!(redirect_target(&from, &h), Ok("http://b/z".into()));
        h.insert(header::LOCATION, HeaderValue::from_static("z"));
        assert!(redirect_target(&from, &h).is_err());
    }
}
