//! The HTTP(S) release feed client: one GET of `/-/releases/<channel>`.
//!
//! Deliberately small: a feed answer is one signed release of at most
//! [`MAX_BODY`] bytes, so the body limit is enforced while reading (a
//! server that sends more, or announces more, is cut off at the limit), the
//! whole exchange runs under one deadline (a server that trickles bytes
//! cannot hold the node), and at most [`MAX_REDIRECTS`] redirects are
//! followed. Nothing fetched is trusted: the bytes go to [`crate::accept`].
//! TLS is there for privacy and to avoid wasting time on tampered answers,
//! not for authenticity, which the signature gives.
//!
//! The stack is hyper + rustls with the ring provider and the webpki
//! (Mozilla) roots, the one firmware/swarm uses for web seeds, so the feed
//! adds no code to the static binary. A client is built per fetch: feeds
//! are polled every few minutes, and a fresh client keeps no state between
//! polls to reason about.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Error, MAX_SIGNED};

/// Largest feed answer: one signed release.
pub const MAX_BODY: usize = MAX_SIGNED;
/// Most redirects followed for one fetch.
pub const MAX_REDIRECTS: u32 = 5;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// GETs `url` (http:// or https://) and returns its body, within `timeout`
/// for the whole exchange (connect, TLS, redirects, body).
pub async fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, Error> {
    fetch_with_roots(url, timeout, &[]).await
}

/// [`fetch`] with another body limit: for the release's torrent, which
/// is bigger than a release (about 100 bytes per file) and is checked
/// against the release's infohashes by the caller.
pub async fn fetch_limited(url: &str, timeout: Duration, max: usize) -> Result<Vec<u8>, Error> {
    fetch_within(url, timeout, &[], max).await
}

/// [`fetch`], trusting these extra root certificates (DER) besides the
/// webpki roots: for private CAs and tests.
pub async fn fetch_with_roots(
    url: &str,
    timeout: Duration,
    extra_roots: &[Vec<u8>],
) -> Result<Vec<u8>, Error> {
    fetch_within(url, timeout, extra_roots, MAX_BODY).await
}

async fn fetch_within(
    url: &str,
    timeout: Duration,
    extra_roots: &[Vec<u8>],
    max: usize,
) -> Result<Vec<u8>, Error> {
    let client = client(url, extra_roots)?;
    match tokio::time::timeout(timeout, get(&client, url, max)).await {
        Ok(result) => result,
        Err(_) => Err(Error::FeedRefused {
            url: url.to_owned(),
            code: "timeout",
            problem: format!("no complete answer within {timeout:?}"),
        }),
    }
}

fn client(url: &str, extra_roots: &[Vec<u8>]) -> Result<HttpClient, Error> {
    let tls_err = |problem: String| Error::Feed {
        url: url.to_owned(),
        problem,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (i, der) in extra_roots.iter().enumerate() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| tls_err(format!("extra root certificate {i}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Checks that `url` is an absolute http(s) URL with a host.
fn parse_url(url: &str) -> Result<Uri, Error> {
    let bad = |problem: &str| Error::FeedUrl {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("URL has no host"));
    }
    Ok(uri)
}

async fn get(client: &HttpClient, url: &str, max: usize) -> Result<Vec<u8>, Error> {
    let mut current = url.to_owned();
    let mut redirects = 0u32;
    let response = loop {
        let uri = parse_url(&current)?;
        let fail = |problem: String| Error::Feed {
            url: current.clone(),
            problem,
        };
        let request = Request::get(uri.clone())
            .header(
                header::USER_AGENT,
                concat!("swarmsync/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT_ENCODING, "identity")
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(format!("bad request: {e}")))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            if redirects >= MAX_REDIRECTS {
                return Err(fail(format!("more than {MAX_REDIRECTS} redirects")));
            }
            redirects += 1;
            current = redirect_target(&uri, response.headers()).map_err(fail)?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(fail(format!("HTTP status {status}")));
        }
        break response;
    };
    let fail = |problem: String| Error::Feed {
        url: current.clone(),
        problem,
    };
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |problem: String| Error::FeedRefused {
        url: current.clone(),
        code: "too_large",
        problem,
    };
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large(format!(
            "answer of {} bytes is over the limit of {max}",
            announced.unwrap_or_default()
        )));
    }
    let mut body = response.into_body();
    let mut out = Vec::with_capacity(announced.map_or(4096, |n| n as usize).min(1 << 20));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(format!("reading the answer: {}", error_chain(&e))))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(too_large(format!(
                    "answer is over the limit of {max} bytes"
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Where a redirect points: an absolute http(s) URL, or an absolute path
/// on the same origin.
fn redirect_target(from: &Uri, headers: &HeaderMap) -> Result<String, String> {
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("redirect without a usable Location header")?;
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = from.scheme_str().unwrap_or("http");
        let authority = from.authority().map_or("", |a| a.as_str());
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    Err(format!("redirect to an unsupported location {location:?}"))
}

/// An error and its sources joined with ": " (hyper's top-level messages
/// alone say little, e.g. "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("http://h/-/releases/a").is_ok());
        assert!(parse_url("https://h:8443/x").is_ok());
        for bad in ["ftp://h/x", "/relative", "h/x", "http://", "not a url"] {
            assert!(
                matches!(parse_url(bad), Err(Error::FeedUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirect_targets() {
        let from: Uri = "https://a:1/x/y".parse().expect("uri");
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, "/z".parse().expect("value"));
        assert_eq!(redirect_target(&from, &h), Ok("https://a:1/z".into()));
        h.insert(header::LOCATION, "http://b/z".parse().expect("value"));
        assert_eq!(redirect_target(&from, &h), Ok("http://b/z".into()));
        h.insert(header::LOCATION, "//b/z".parse().expect("value"));
        assert!(redirect_target(&from, &h).is_err());
        h.insert(header::LOCATION, "z".parse().expect("value"));
        assert!(redirect_target(&from, &h).is_err());
        assert!(redirect_target(&from, &HeaderMap::new()).is_err());
    }
}
