//! The reserved `/-/…` namespace: pages the server does not know itself.
//!
//! Mount prefixes may not start with `/-`, so everything below it belongs to
//! whoever runs the server: the node answers its status page and metrics
//! there, the origin its release feed and torrents. The server stays a
//! file server; it only decodes the path (with the same strict rules as for
//! files), enforces GET/HEAD and the request limits, and turns the answer
//! into a response. Implementations are plain synchronous functions of the
//! path: they are called on the blocking pool, so a short disk read is
//! allowed, and they need to know nothing about hyper.

use std::sync::Arc;

use bytes::Bytes;

/// Answers requests under `/-/`.
///
/// `path` is what follows `/-/`, percent-decoded and checked like any
/// request path: segments joined by `/`, none of them empty, `.`, `..` or
/// holding `/`, `\`, NUL or control characters; a trailing `/` is kept
/// (`/-/status` → `"status"`, `/-/torrents/deb/7.torrent` →
/// `"torrents/deb/7.torrent"`, `/-/` → `""`). The query string is not
/// passed. `None` means "not mine" (404, or the next [`Special`] of a
/// [`Chain`]).
///
/// Called on tokio's blocking pool: keep it short (no network).
pub trait Special: Send + Sync + 'static {
    /// The response for `path`, or `None` when there is none.
    fn get(&self, path: &str) -> Option<SpecialResponse>;
}

impl<T: Special + ?Sized> Special for Arc<T> {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        (**self).get(path)
    }
}

/// Several [`Special`]s tried in order; the first answer wins.
pub struct Chain(Vec<Arc<dyn Special>>);

impl Chain {
    /// Tries `parts` in order.
    pub fn new(parts: Vec<Arc<dyn Special>>) -> Self {
        Chain(parts)
    }
}

impl Special for Chain {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        self.0.iter().find_map(|s| s.get(path))
    }
}

/// What a [`Special`] answers. HEAD gets the same head without the body;
/// `Content-Length` is set from the body. Build it with [`SpecialResponse::ok`]
/// or [`SpecialResponse::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecialResponse {
    /// HTTP status code (an invalid one becomes 500).
    pub status: u16,
    /// `Content-Type` (one that is not a valid header value becomes 500).
    pub content_type: String,
    /// The whole body.
    pub body: Bytes,
    /// `Cache-Control`; `no-cache` when `None`.
    pub cache_control: Option<String>,
    /// A strong `ETag` (the quoted form, `"abc"`); when set, a request whose
    /// `If-None-Match` lists it gets 304 without the body.
    pub etag: Option<String>,
}

impl SpecialResponse {
    /// A response with `status`, `content_type` and `body`.
    pub fn new(status: u16, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        SpecialResponse {
            status,
            content_type: content_type.into(),
            body: body.into(),
            cache_control: None,
            etag: None,
        }
    }

    /// 200 with `content_type` and `body`.
    pub fn ok(content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(200, content_type, body)
    }

    /// Sets `Cache-Control` (`"max-age=60"`, `"no-store"` …).
    #[must_use]
    pub fn with_cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    /// Sets a strong ETag; `tag` is quoted here if it is not already.
    #[must_use]
    pub fn with_etag(mut self, tag: impl Into<String>) -> Self {
        let tag = tag.into();
        self.etag = Some(if tag.starts_with('"') {
            tag
        } else {
            format!("\"{tag}\"")
        });
        self
    }
}

/// Joins decoded segments below `/-` into the path a [`Special`] sees.
pub(crate) fn special_path(below: &[String], trailing_slash: bool) -> String {
    let mut path = below.join("/");
    if trailing_slash && !below.is_empty() {
        path.push('/');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);

    impl Special for Fixed {
        fn get(&self, path: &str) -> Option<SpecialResponse> {
            (path == self.0).then(|| SpecialResponse::ok("text/plain", self.0))
        }
    }

    #[test]
    fn chain_takes_the_first_answer() {
        let chain = Chain::new(vec![Arc::new(Fixed("a")), Arc::new(Fixed("b"))]);
        assert_eq!(chain.get("a").map(|r| r.body), Some(Bytes::from("a")));
        assert_eq!(chain.get("b").map(|r| r.body), Some(Bytes::from("b")));
        assert!(chain.get("c").is_none());
        assert!(Chain::new(vec![]).get("a").is_none());
    }

    #[test]
    fn paths_and_etags() {
        let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(special_path(&seg(&["status"]), false), "status");
        assert_eq!(special_path(&seg(&["a", "b"]), true), "a/b/");
        assert_eq!(special_path(&[], true), "");
        let r = SpecialResponse::ok("x/y", "b").with_etag("abc");
        assert_eq!(r.etag.as_deref(), Some("\"abc\""));
        let r = r.with_etag("\"q\"").with_cache_control("max-age=5");
        assert_eq!(r.etag.as_deref(), Some("\"q\""));
        assert_eq!(r.cache_control.as_deref(), Some("max-age=5"));
    }
}
