//! The request handler: method and size checks, mount lookup, then a file,
//! a directory listing or an error status.
//!
//! All file-system work for one request (resolving the path, reading
//! metadata, opening the file or reading the directory) happens in a single
//! blocking task, so the reactor thread never waits on the disk and a
//! request costs one hop to the blocking pool, not several.

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::{Body, content_type};
use crate::byhash;
use crate::cache::SmallFiles;
use crate::cond::{self, Precondition, RangeDecision, Validators};
use crate::listing::{self, Entry};
use crate::path::{self, Decoded};
use crate::special::{Special, SpecialResponse, special_path};
use crate::status::HttpCounters;
use crate::sticky::{self, Sticky};
use crate::{Config, Error, Mount};

/// A validated mount.
#[derive(Debug)]
struct Mounted {
    segments: Vec<String>,
    root: PathBuf,
    snapshots: Option<PathBuf>,
    /// Small files of the current snapshot (mounts with a snapshots
    /// directory only).
    cache: Option<SmallFiles>,
    /// The root's canonical form between requests.
    root_memo: Arc<path::RootMemo>,
}

/// What every connection shares: mounts, settings, snapshot pins, the
/// `/-/` handler and the HTTP counters.
pub struct Shared {
    mounts: Vec<Mounted>,
    pub config: Config,
    sticky: Sticky,
    /// Bytes of file chunks in memory, over all connections (in KiB).
    body_budget: Arc<tokio::sync::Semaphore>,
    special: Option<Arc<dyn Special>>,
    pub counters: Arc<HttpCounters>,
    miss: Option<Arc<dyn crate::Miss>>,
}

impl Shared {
    /// Validates mounts and settings.
    pub fn new(
        mounts: Vec<Mount>,
        config: Config,
        special: Option<Arc<dyn Special>>,
        counters: Arc<HttpCounters>,
    ) -> Result<Self, Error> {
        let checks: [(&'static str, bool, &'static str); 7] = [
            (
                "max_connections",
                config.max_connections >= 1 && config.max_connections <= 1 << 20,
                "1 to 1048576",
            ),
            ("max_headers", config.max_headers >= 8, "at least 8"),
            (
                "max_header_bytes",
                config.max_header_bytes >= 1024,
                "at least 1024",
            ),
            ("max_uri_bytes", config.max_uri_bytes >= 256, "at least 256"),
            (
                "chunk_size",
                config.chunk_size >= 512 && config.chunk_size <= 16 << 20,
                "512 B to 16 MiB",
            ),
            (
                "body_memory",
                config.body_memory >= config.chunk_size && config.body_memory <= 1 << 30,
                "at least chunk_size, at most 1 GiB",
            ),
            (
                "small_file_cache",
                config.small_file_cache <= 1 << 30,
                "at most 1 GiB",
            ),
        ];
        for (name, ok, reason) in checks {
            if !ok {
                return Err(Error::Config { name, reason });
            }
        }
        let mut out: Vec<Mounted> = Vec::with_capacity(mounts.len());
        for m in mounts {
            let bad = |reason| Error::MountPrefix {
                prefix: m.prefix.clone(),
                reason,
            };
            if !m.prefix.starts_with('/') {
                return Err(bad("it must start with /"));
            }
            if m.prefix.len() > 1 && m.prefix.ends_with('/') {
                return Err(bad("it must not end with /"));
            }
            if m.prefix.contains("//") {
                return Err(bad("it has an empty segment"));
            }
            let decoded = path::decode(&m.prefix)
                .map_err(|_| bad("it has a dot segment or a character that needs escaping"))?;
            if decoded
                .segments
                .iter()
                .any(|s| s.contains(['%', '?', '#', ' ']))
            {
                return Err(bad("it has a character that needs escaping"));
            }
            // `/-/…` is where the node's status page and metrics will live.
            if decoded.segments.first().is_some_and(|s| s == "-") {
                return Err(bad("/- is reserved for the node's own pages"));
            }
            if !m.root.is_absolute() {
                return Err(Error::RelativeRoot(m.root));
            }
            if let Some(snapshots) = &m.snapshots
                && !snapshots.is_absolute()
            {
                return Err(Error::RelativeRoot(snapshots.clone()));
            }
            if out.iter().any(|o| o.segments == decoded.segments) {
                return Err(Error::DuplicateMount(m.prefix));
            }
            // A node's mount has no snapshot before its first sync: the
            // normal state of a fresh board, not worth a warning. A plain
            // directory that is missing is more likely a wrong path.
            if !m.root.is_dir() {
                if m.snapshots.is_some() {
                    tracing::info!(
                        "http: {} is served once its first snapshot is in place ({})",
                        m.prefix,
                        m.root.display()
                    );
                } else {
                    tracing::warn!(
                        "http: mount {} root {} is not a directory yet",
                        m.prefix,
                        m.root.display()
                    );
                }
            }
            out.push(Mounted {
                segments: decoded.segments,
                root: m.root,
                cache: m
                    .snapshots
                    .as_ref()
                    .map(|_| SmallFiles::new(config.small_file_cache)),
                snapshots: m.snapshots,
                root_memo: Arc::default(),
            });
        }
        // Longest prefix first, so /debian/security wins over /debian.
        out.sort_by_key(|m| std::cmp::Reverse(m.segments.len()));
        let sticky = Sticky::new(config.sticky_grace, config.sticky_max_clients);
        let body_budget = Arc::new(tokio::sync::Semaphore::new(crate::body::budget_units(
            config.body_memory,
        ) as usize));
        Ok(Shared {
            mounts: out,
            config,
            sticky,
            body_budget,
            special,
            counters,
            miss: None,
        })
    }

    /// Fetch-on-miss for files missing from a snapshot.
    pub fn with_miss(mut self, miss: Option<Arc<dyn crate::Miss>>) -> Self {
        self.miss = miss;
        self
    }

    /// Names one level below `segments` that lead to mounts, when
    /// `segments` is a strict prefix of at least one mount (the virtual
    /// directories above the mounts, such as `/`).
    fn virtual_children(&self, segments: &[String]) -> Vec<String> {
        let mut names: Vec<String> = self
            .mounts
            .iter()
            .filter_map(|m| m.segments.strip_prefix(segments)?.first().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The mount serving `segments`, its index and the segments below it.
    fn mount_for<'a>(&self, segments: &'a [String]) -> Option<(usize, &Mounted, &'a [String])> {
        self.mounts.iter().enumerate().find_map(|(i, m)| {
            segments
                .strip_prefix(m.segments.as_slice())
                .map(|rest| (i, m, rest))
        })
    }
}

/// The result of the blocking part of a request.
enum Lookup {
    NotFound,
    Forbidden,
    /// An open file, its length and validators (from the open file's
    /// metadata; the ETag may take an fgetxattr) and, when it is small and
    /// a GET wants it, its whole content (read in the same blocking task:
    /// one hop to the blocking pool per small request instead of two).
    File(std::fs::File, u64, Validators, Option<Bytes>),
    Dir(Vec<Entry>, bool),
    /// A directory asked for without its trailing slash.
    DirRedirect,
}

fn status(code: StatusCode, head: bool) -> Response<Body> {
    let body = if head {
        Body::Empty
    } else {
        let reason = code.canonical_reason().unwrap_or("");
        Body::bytes(format!(
            "{} {}\n",
            code.as_u16(),
            reason.to_ascii_lowercase()
        ))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves one request. Never fails: every problem is a status code.
pub async fn handle(
    shared: Arc<Shared>,
    client: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let resp = respond(&shared, client, &req).await;
    HttpCounters::add(&shared.counters.requests, 1);
    if resp.status() == StatusCode::NOT_FOUND {
        HttpCounters::add(&shared.counters.not_found, 1);
    }
    Ok(resp)
}

async fn respond(shared: &Shared, client: IpAddr, req: &Request<Incoming>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > shared.config.max_uri_bytes {
        return status(StatusCode::URI_TOO_LONG, head);
    }
    // A GET or HEAD has no business sending a chunked body, and
    // Transfer-Encoding beside Content-Length is the request-smuggling shape
    // (RFC 9112 §6.1). hyper already lets Transfer-Encoding win, drops
    // Content-Length and closes after the response; we refuse the request
    // outright, which also covers the conflict hyper hides from us.
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        let mut resp = status(StatusCode::BAD_REQUEST, head);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    if req.method() != Method::GET && !head {
        let mut resp = status(StatusCode::METHOD_NOT_ALLOWED, false);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let decoded = match path::decode(req.uri().path()) {
        Ok(d) => d,
        Err(reject) => {
            tracing::debug!("http: refused path {:?}: {reject:?}", req.uri().path());
            return status(StatusCode::BAD_REQUEST, head);
        }
    };
    if let Some(below) = decoded.segments.strip_prefix(&["-".to_string()]) {
        let path = special_path(below, decoded.trailing_slash);
        return special_response(shared, req, path, head).await;
    }
    let Some((index, mount, rest)) = shared.mount_for(&decoded.segments) else {
        let children = shared.virtual_children(&decoded.segments);
        if children.is_empty() {
            return status(StatusCode::NOT_FOUND, head);
        }
        if !decoded.trailing_slash && !decoded.segments.is_empty() {
            return redirect(&decoded, req.uri().query(), head);
        }
        let entries: Vec<Entry> = children
            .into_iter()
            .map(|name| Entry {
                name,
                dir: true,
                size: 0,
                mtime: 0,
            })
            .collect();
        return listing_response(req, &decoded, &entries, false, head);
    };
    let trailing = decoded.trailing_slash;
    // A release file always comes from the newest snapshot and (re)pins
    // the client to it; anything else follows the client's pin, if any.
    let release = rest.last().is_some_and(|n| sticky::is_release_file(n));
    let pinned = if release {
        None
    } else {
        shared.sticky.get(client, index, Instant::now())
    };
    // Small files of the current snapshot, without the blocking pool.
    let cache = mount
        .cache
        .as_ref()
        .filter(|_| pinned.is_none() && !trailing);
    let target = cache.and_then(|c| c.target(&mount.root));
    if let (Some(cache), Some(target)) = (cache, &target)
        && let Some(entry) = cache.get(target, rest)
    {
        if release {
            shared
                .sticky
                .pin(client, index, entry.root.clone(), Instant::now());
        }
        let content = Content::Inline(entry.body.clone());
        return file_response(shared, req, content, &entry.validators, &decoded, head);
    }
    let root = mount.root.clone();
    let rest_owned = rest.to_vec();
    let snapshots = mount.snapshots.clone();
    let check_target = target.is_some();
    let memo = mount.root_memo.clone();
    let found = tokio::task::spawn_blocking(move || {
        let rest = rest_owned;
        // Fetch-on-miss serves the current release's bytes: fine for a
        // client pinned to the snapshot `current` names (apt after its
        // update), not for one pinned to an older snapshot.
        let on_current = pinned
            .as_ref()
            .is_none_or(|p| memo.canonical(&root).is_ok_and(|c| c == *p));
        let found = lookup(&root, &memo, pinned, &rest, trailing, !head)?;
        let found = match snapshots {
            Some(snapshots)
                if matches!(found.0, Lookup::NotFound)
                    && !trailing
                    && byhash::is_by_hash(&rest) =>
            {
                // From another snapshot: not for the cache of this one.
                let other = by_hash_elsewhere(&snapshots, &rest, !head).unwrap_or(found);
                return Ok::<_, std::io::Error>((other, None, on_current));
            }
            _ => found,
        };
        // Where `current` points after the lookup: if it is where it
        // pointed before, the file is that snapshot's.
        let after = check_target
            .then(|| std::fs::read_link(&root).ok().map(PathBuf::into_os_string))
            .flatten();
        Ok((found, after, on_current))
    })
    .await;
    let (found, on_current) = match found {
        Ok(Ok(((found, used_root), after, on_current))) => {
            if release
                && let Lookup::File(..) = found
                && let Some(used_root) = &used_root
            {
                shared
                    .sticky
                    .pin(client, index, used_root.clone(), Instant::now());
            }
            if let (Some(cache), Some(target), Some(after), Some(used_root)) =
                (cache, target, after, used_root)
                && target == after
                && let Lookup::File(_, _, validators, Some(body)) = &found
            {
                let entry = crate::cache::Entry {
                    body: body.clone(),
                    validators: validators.clone(),
                    root: used_root,
                };
                cache.put(target, rest.to_vec(), entry);
            }
            (found, on_current)
        }
        Ok(Err(e)) => {
            tracing::warn!("http: {}: {e}", req.uri().path());
            return status(StatusCode::INTERNAL_SERVER_ERROR, head);
        }
        Err(e) => {
            tracing::warn!("http: lookup task failed: {e}");
            return status(StatusCode::INTERNAL_SERVER_ERROR, head);
        }
    };
    match found {
        Lookup::NotFound => match shared.miss.as_ref().filter(|_| !trailing && on_current) {
            Some(miss) => {
                let prefix = format!("/{}", mount.segments.join("/"));
                miss_response(shared, req, miss, &prefix, rest, &decoded, head).await
            }
            None => status(StatusCode::NOT_FOUND, head),
        },
        Lookup::Forbidden => status(StatusCode::FORBIDDEN, head),
        Lookup::DirRedirect => redirect(&decoded, req.uri().query(), head),
        Lookup::Dir(entries, truncated) => {
            listing_response(req, &decoded, &entries, truncated, head)
        }
        Lookup::File(file, len, v, inline) => {
            let content = match inline {
                Some(bytes) => Content::Inline(bytes),
                None => Content::File(file, len),
            };
            file_response(shared, req, content, &v, &decoded, head)
        }
    }
}

/// Fetch-on-miss: waits for the handler, then serves the verified file, or
/// streams a file still being fetched as its bytes verify.
async fn miss_response(
    shared: &Shared,
    req: &Request<Incoming>,
    miss: &Arc<dyn crate::Miss>,
    prefix: &str,
    rest: &[String],
    decoded: &Decoded,
    head: bool,
) -> Response<Body> {
    use crate::{Found, MissError};
    let found = match miss.fetch(prefix, rest).await {
        Ok(f) => f,
        Err(MissError::NotFound) => return status(StatusCode::NOT_FOUND, head),
        Err(e) => {
            HttpCounters::add(&shared.counters.misses, 1);
            tracing::warn!("http: {}: fetch on miss: {e:?}", req.uri().path());
            let (code, reason) = match e {
                MissError::TimedOut => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "no bytes of it arrived in time".to_owned(),
                ),
                MissError::Busy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "a new release is being synced; retry".to_owned(),
                ),
                MissError::Unavailable(why) => (StatusCode::BAD_GATEWAY, why),
                MissError::NotFound => (StatusCode::NOT_FOUND, String::new()),
            };
            shared
                .counters
                .miss_failed(req.uri().path(), code.as_u16(), reason);
            return status(code, head);
        }
    };
    HttpCounters::add(&shared.counters.misses, 1);
    let path = match found {
        Found::Complete(path) => path,
        Found::Growing(g) => return growing_response(shared, req, g, decoded, head),
    };
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        let v = Validators::from_file(&file, &meta);
        Ok::<_, std::io::Error>((file, meta, v))
    })
    .await;
    match opened {
        Ok(Ok((file, meta, v))) if meta.is_file() => {
            let content = Content::File(file, meta.len());
            file_response(shared, req, content, &v, decoded, head)
        }
        _ => status(StatusCode::BAD_GATEWAY, head),
    }
}

/// Applies a range decision to `resp` (206 and Content-Range for a part):
/// the span `(start, count)` to send, or `None` for a 416
/// ([`unsatisfiable`]).
fn ranged(resp: &mut Response<Body>, decision: RangeDecision, len: u64) -> Option<(u64, u64)> {
    match decision {
        RangeDecision::Full => Some((0, len)),
        RangeDecision::Partial { start, end } => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            Some((start, end - start + 1))
        }
        RangeDecision::Unsatisfiable => None,
    }
}

/// 416 for a file of `len` bytes.
fn unsatisfiable(len: u64, head: bool) -> Response<Body> {
    let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE, head);
    if let Ok(cr) = HeaderValue::from_str(&format!("bytes */{len}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, cr);
    }
    r.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r
}

/// A file still being fetched: its length is known, and its ETag when the
/// handler names the content hash, but not its date (the object is dated
/// when it is complete). So If-None-Match and If-Range work with that ETag,
/// a date never validates (If-Range falls back to the whole file), and a
/// single Range is served from its start once those bytes verify.
fn growing_response(
    shared: &Shared,
    req: &Request<Incoming>,
    g: crate::Growing,
    decoded: &Decoded,
    head: bool,
) -> Response<Body> {
    let len = g.length;
    let name = decoded.segments.last().map_or("", String::as_str);
    let mut resp = Response::new(Body::Empty);
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let tag = g.etag.clone().filter(|t| HeaderValue::from_str(t).is_ok());
    if let Some(tag) = &tag {
        if let Ok(v) = HeaderValue::from_str(tag) {
            h.insert(header::ETAG, v);
        }
        if cond::none_match(req.headers(), tag) {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    let if_range_holds = match req.headers().get(header::IF_RANGE) {
        None => true,
        Some(v) => tag
            .as_deref()
            .is_some_and(|t| v.to_str().is_ok_and(|s| s.trim() == t)),
    };
    let v = Validators {
        etag: tag.unwrap_or_default(),
        modified: std::time::UNIX_EPOCH,
    };
    let decision = if head || !if_range_holds {
        RangeDecision::Full
    } else {
        cond::range(req.headers(), &v, len)
    };
    let Some((start, count)) = ranged(&mut resp, decision, len) else {
        return unsatisfiable(len, head);
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if !head && count > 0 {
        *resp.body_mut() = Body::growing(
            g,
            start,
            count,
            shared.config.chunk_size,
            shared.body_budget.clone(),
        );
    }
    resp
}

/// Answers `/-/…` from the [`Special`], if any, on the blocking pool.
async fn special_response(
    shared: &Shared,
    req: &Request<Incoming>,
    path: String,
    head: bool,
) -> Response<Body> {
    let Some(special) = shared.special.clone() else {
        return status(StatusCode::NOT_FOUND, head);
    };
    let answer = match tokio::task::spawn_blocking(move || special.get(&path)).await {
        Ok(Some(answer)) => answer,
        Ok(None) => return status(StatusCode::NOT_FOUND, head),
        Err(e) => {
            tracing::warn!("http: {}: special page failed: {e}", req.uri().path());
            return status(StatusCode::INTERNAL_SERVER_ERROR, head);
        }
    };
    match build_special(req, answer, head) {
        Some(resp) => resp,
        None => {
            tracing::warn!(
                "http: {}: special page has an invalid status or header",
                req.uri().path()
            );
            status(StatusCode::INTERNAL_SERVER_ERROR, head)
        }
    }
}

fn build_special(
    req: &Request<Incoming>,
    answer: SpecialResponse,
    head: bool,
) -> Option<Response<Body>> {
    let code = StatusCode::from_u16(answer.status).ok()?;
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&answer.content_type).ok()?,
    );
    h.insert(
        header::CACHE_CONTROL,
        match &answer.cache_control {
            Some(v) => HeaderValue::from_str(v).ok()?,
            None => HeaderValue::from_static("no-cache"),
        },
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(tag) = &answer.etag {
        h.insert(header::ETAG, HeaderValue::from_str(tag).ok()?);
        if code == StatusCode::OK && cond::none_match(req.headers(), tag) {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return Some(resp);
        }
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(answer.body.len()));
    if !head {
        *resp.body_mut() = Body::bytes(answer.body);
    }
    Some(resp)
}

/// Blocking: resolves (under `pinned`, a canonical snapshot root, while it
/// exists, else under the mount's root), stats and opens. Also returns the
/// canonical root that answered.
fn lookup(
    root: &std::path::Path,
    memo: &path::RootMemo,
    pinned: Option<PathBuf>,
    rest: &[String],
    trailing: bool,
    inline_body: bool,
) -> std::io::Result<(Lookup, Option<PathBuf>)> {
    let resolved = match pinned.filter(|p| p.is_dir()) {
        Some(pinned) => path::resolve_in(pinned, rest),
        None => memo
            .canonical(root)
            .and_then(|root| path::resolve_in(root, rest)),
    };
    let resolved = match resolved {
        Ok(Some(r)) => r,
        Ok(None) => return Ok((Lookup::NotFound, None)),
        // The root itself is missing (no snapshot yet).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Lookup::NotFound, None)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok((Lookup::Forbidden, None));
        }
        Err(e) => return Err(e),
    };
    let root = resolved.root.clone();
    lookup_resolved(resolved, trailing, inline_body).map(|l| (l, Some(root)))
}

/// Blocking: a by-hash file from the newest snapshot under `snapshots`
/// that has it.
fn by_hash_elsewhere(
    snapshots: &std::path::Path,
    rest: &[String],
    inline_body: bool,
) -> Option<(Lookup, Option<PathBuf>)> {
    let candidates = match byhash::newest_first(snapshots) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("http: snapshots {}: {e}", snapshots.display());
            return None;
        }
    };
    for snapshot in candidates {
        // A snapshot removed meanwhile, or one without the file: next.
        let Ok(Some(resolved)) = path::resolve(&snapshot, rest) else {
            continue;
        };
        let root = resolved.root.clone();
        if let Ok(found @ Lookup::File(..)) = lookup_resolved(resolved, false, inline_body) {
            return Some((found, Some(root)));
        }
    }
    None
}

/// Files up to this size are read whole during the lookup of a GET.
const INLINE_MAX: u64 = 16 * 1024;

fn read_small(file: &std::fs::File, len: u64) -> std::io::Result<Bytes> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(len as usize);
    // `take`: a file that grew since the stat is cut at the stat's length,
    // which is what Content-Length will say; one that shrank is an error.
    file.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while being read",
        ));
    }
    Ok(Bytes::from(buf))
}

fn lookup_resolved(
    mut resolved: path::Resolved,
    trailing: bool,
    inline_body: bool,
) -> std::io::Result<Lookup> {
    let meta = match resolved.meta.take() {
        Some(meta) => meta,
        None => std::fs::metadata(&resolved.path)?,
    };
    if meta.is_dir() {
        if !trailing {
            return Ok(Lookup::DirRedirect);
        }
        return match listing::read(&resolved.root, &resolved.path) {
            Ok((entries, truncated)) => Ok(Lookup::Dir(entries, truncated)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(Lookup::Forbidden),
            Err(e) => Err(e),
        };
    }
    // Never open FIFOs or devices: opening a FIFO blocks.
    if !meta.is_file() {
        return Ok(Lookup::NotFound);
    }
    if trailing {
        return Ok(Lookup::NotFound);
    }
    match std::fs::File::open(&resolved.path) {
        Ok(file) => {
            // Metadata from the open file, so validators and length describe
            // exactly what will be read.
            let meta = file.metadata()?;
            let v = Validators::from_file(&file, &meta);
            let inline = if inline_body && meta.len() <= INLINE_MAX {
                Some(read_small(&file, meta.len())?)
            } else {
                None
            };
            Ok(Lookup::File(file, meta.len(), v, inline))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(Lookup::Forbidden),
        Err(e) => Err(e),
    }
}

fn encoded_path(decoded: &Decoded) -> String {
    let mut out = String::new();
    for s in &decoded.segments {
        out.push('/');
        out.push_str(&listing::encode_segment(s));
    }
    out
}

fn redirect(decoded: &Decoded, query: Option<&str>, head: bool) -> Response<Body> {
    let mut location = encoded_path(decoded);
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    let mut resp = status(StatusCode::MOVED_PERMANENTLY, head);
    // Built only from re-encoded segments and the query hyper already
    // validated, so it is a valid header value; if not, a 404 is safer.
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => status(StatusCode::NOT_FOUND, head),
    }
}

fn wants_json(req: &Request<Incoming>) -> bool {
    let query = req.uri().query().unwrap_or("");
    if query.split('&').any(|kv| kv == "format=json") {
        return true;
    }
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().starts_with("application/json"))
        })
}

fn listing_response(
    req: &Request<Incoming>,
    decoded: &Decoded,
    entries: &[Entry],
    truncated: bool,
    head: bool,
) -> Response<Body> {
    let mut url_path = decoded.segments.iter().fold(String::new(), |mut acc, s| {
        acc.push('/');
        acc.push_str(s);
        acc
    });
    url_path.push('/');
    let (text, ctype) = if wants_json(req) {
        (
            listing::json(&url_path, entries, truncated),
            "application/json",
        )
    } else {
        (
            listing::html(&url_path, entries, truncated),
            "text/html; charset=utf-8",
        )
    };
    let len = text.len();
    let mut resp = Response::new(if head { Body::Empty } else { Body::bytes(text) });
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A file's content: open, to be streamed, or already in memory.
enum Content {
    /// An open file and its length.
    File(std::fs::File, u64),
    /// The whole file (read with the lookup, or from the cache).
    Inline(Bytes),
}

fn file_response(
    shared: &Shared,
    req: &Request<Incoming>,
    content: Content,
    v: &Validators,
    decoded: &Decoded,
    head: bool,
) -> Response<Body> {
    let len = match &content {
        Content::Inline(bytes) => bytes.len() as u64,
        Content::File(_, len) => *len,
    };
    let name = decoded.segments.last().map_or("", String::as_str);
    let mut resp = Response::new(Body::Empty);
    {
        let h = resp.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&v.etag) {
            h.insert(header::ETAG, etag);
        }
        if let Ok(lm) = HeaderValue::from_str(&v.last_modified()) {
            h.insert(header::LAST_MODIFIED, lm);
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    match cond::evaluate(req.headers(), v) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
        Precondition::Failed => {
            let mut failed = status(StatusCode::PRECONDITION_FAILED, head);
            failed.headers_mut().extend(resp.headers().clone());
            return failed;
        }
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    // Range applies to GET only (RFC 9110 §14.2).
    let decision = if head {
        RangeDecision::Full
    } else {
        cond::range(req.headers(), v, len)
    };
    let Some((start, count)) = ranged(&mut resp, decision, len) else {
        return unsatisfiable(len, head);
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if head {
        return resp;
    }
    *resp.body_mut() = match content {
        // `start + count <= len` by construction.
        Content::Inline(bytes) => {
            Body::bytes(bytes.slice(start as usize..(start + count) as usize))
        }
        Content::File(file, _) => Body::file(
            file,
            start,
            count,
            shared.config.chunk_size,
            shared.body_budget.clone(),
        ),
    };
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(mounts: Vec<Mount>, config: Config) -> Result<Shared, Error> {
        Shared::new(mounts, config, None, Default::default())
    }

    #[test]
    fn mount_validation() {
        let ok = |p: &str| shared(vec![Mount::new(p, "/srv")], Config::default()).is_ok();
        assert!(ok("/debian"));
        assert!(ok("/"));
        assert!(ok("/a/b-c_d.e"));
        for bad in [
            "debian", "/debian/", "//x", "/a/../b", "/a%2fb", "/a b", "/a?b", "", "/-", "/-/x",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        let rel = shared(vec![Mount::new("/d", "srv")], Config::default());
        assert!(matches!(rel, Err(Error::RelativeRoot(_))));
        let dup = shared(
            vec![Mount::new("/d", "/a"), Mount::new("/d", "/b")],
            Config::default(),
        );
        assert!(matches!(dup, Err(Error::DuplicateMount(_))));
        let zero = Config {
            max_connections: 0,
            ..Config::default()
        };
        assert!(matches!(shared(vec![], zero), Err(Error::Config { .. })));
    }

    #[test]
    fn longest_prefix_wins() -> Result<(), Error> {
        let s = shared(
            vec![
                Mount::new("/", "/r"),
                Mount::new("/debian", "/d"),
                Mount::new("/debian/security", "/s"),
            ],
            Config::default(),
        )?;
        let seg = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let root = |p: &[&str]| {
            let segs = seg(p);
            s.mount_for(&segs)
                .map(|(_, m, rest)| (m.root.clone(), rest.len()))
        };
        assert_eq!(
            root(&["debian", "security", "x"]),
            Some((PathBuf::from("/s"), 1))
        );
        assert_eq!(root(&["debian", "x"]), Some((PathBuf::from("/d"), 1)));
        assert_eq!(root(&["debianx"]), Some((PathBuf::from("/r"), 1)));
        assert_eq!(root(&[]), Some((PathBuf::from("/r"), 0)));
        Ok(())
    }

    #[test]
    fn virtual_directories_above_mounts() -> Result<(), Error> {
        let s = shared(
            vec![
                Mount::new("/debian", "/d"),
                Mount::new("/rpm/fedora", "/f"),
                Mount::new("/rpm/alma", "/a"),
            ],
            Config::default(),
        )?;
        let seg = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(s.virtual_children(&[]), ["debian", "rpm"]);
        assert_eq!(s.virtual_children(&seg(&["rpm"])), ["alma", "fedora"]);
        assert!(s.virtual_children(&seg(&["debian"])).is_empty());
        assert!(s.virtual_children(&seg(&["other"])).is_empty());
        Ok(())
    }
}
