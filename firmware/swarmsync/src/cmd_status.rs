//! `swarmsync status [--url URL] [--json]`: what a node says about itself.
//!
//! It reads the node's `/-/status.json`, the same data as the status page,
//! so there is one source of truth and no local state to get out of step.
//! The client is a plain blocking HTTP/1.1 GET over a std socket: the status
//! page is on the LAN (or loopback) and plain HTTP, one request needs no
//! runtime or connection pool, and everything about it is bounded (connect
//! and read timeouts, at most 16 MiB of response). What comes back is
//! another machine's text: the summary strips control characters, and
//! `--json` prints the body only once it parsed as a status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The default `--url`: the local node on port 80.
pub const DEFAULT_URL: &str = "http://127.0.0.1/-/status.json";

const STATUS_PATH: &str = "/-/status.json";
const MAX_RESPONSE: u64 = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The node's status URL, or just its base (http://host:8080 gets
    /// /-/status.json appended).
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    url: String,
    /// Print the JSON as the node served it.
    #[arg(long)]
    json: bool,
}

/// A parsed `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host[:port]` as given, for the Host header.
    authority: String,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => bail!(
            "unsupported URL scheme {scheme:?} in {url:?}\nthe node serves its status over plain http"
        ),
        None => url,
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.split('#').next().unwrap_or("");
    if authority.is_empty() {
        bail!("no host in URL {url:?}");
    }
    if authority.contains('@') {
        bail!("URL {url:?} has user information; the status page needs none");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("unclosed [ in URL {url:?}"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => bail!("bad host in URL {url:?}"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .with_context(|| format!("bad port {p:?} in URL {url:?}"))?,
        None => 80,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("bad host in URL {url:?}");
    }
    // A base URL (nothing, or only "/") means the node's status page.
    let path = if path.is_empty() || path == "/" {
        STATUS_PATH.to_string()
    } else if path.starts_with('?') {
        format!("{STATUS_PATH}{path}")
    } else {
        path.to_string()
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("URL {url:?} has spaces or control characters in its path");
    }
    Ok(Target {
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        path,
    })
}

fn connect(t: &Target) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", t.host))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(e).with_context(|| format!("cannot connect to {addr}")),
        None => bail!("{} has no address", t.host),
    }
}

/// A response: status code, reason, header lines (lower-case names), body.
#[derive(Debug)]
struct Response {
    code: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the response has no complete head")?;
    let head = std::str::from_utf8(&raw[..end]).context("the response head is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 response: {:?}", clean(status_line));
    }
    let code: u16 = code
        .parse()
        .with_context(|| format!("bad status line {:?}", clean(status_line)))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .with_context(|| format!("bad header line {:?}", clean(line)))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        code,
        reason,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    resp.body = if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .with_context(|| format!("bad Content-Length {:?}", clean(len)))?;
        if rest.len() < len {
            bail!(
                "the response ended after {} of {len} body bytes",
                rest.len()
            );
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunked body ended early")?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .map(|l| l.split(';').next().unwrap_or("").trim())
            .and_then(|l| usize::from_str_radix(l, 16).ok())
            .context("bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest
            .get(..size)
            .context("a chunked body ended inside a chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).context("a chunked body ended early")?;
    }
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// GETs `url` and returns the body of a 200 response.
fn fetch(url: &str) -> Result<Vec<u8>> {
    let target = parse_url(url)?;
    let shown = format!("http://{}{}", target.authority, target.path);
    let mut stream = connect(&target).with_context(|| format!("GET {shown}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: swarmsync/{}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("GET {shown}: sending the request"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .with_context(|| format!("GET {shown}: reading the response"))?;
    if raw.len() as u64 > MAX_RESPONSE {
        bail!("GET {shown}: the response is larger than {MAX_RESPONSE} bytes");
    }
    let resp = parse_response(&raw).with_context(|| format!("GET {shown}"))?;
    if resp.code != 200 {
        bail!(
            "GET {shown}: {} {}\nis it a swarmsync node? its status is at /-/status.json",
            resp.code,
            clean(&resp.reason)
        );
    }
    Ok(resp.body)
}

/// Runs `swarmsync status`.
pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let body = fetch(&args.url)?;
    let status = serve::status::Status::from_json(&body)
        .with_context(|| format!("{} is not a swarmsync status page", args.url))?;
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        stdout.write_all(&body).and_then(|()| {
            if body.ends_with(b"\n") {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        })
    } else {
        stdout.write_all(serve::status::render_text(&status).as_bytes())
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `swarmsync status | head -1` closes the pipe: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Option<(String, String, u16, String)> {
        parse_url(url)
            .ok()
            .map(|t| (t.authority, t.host, t.port, t.path))
    }

    #[test]
    fn urls() {
        let t = |a: &str, h: &str, p: u16, path: &str| {
            Some((a.to_string(), h.to_string(), p, path.to_string()))
        };
        assert_eq!(
            target(DEFAULT_URL),
            t("127.0.0.1", "127.0.0.1", 80, "/-/status.json")
        );
        assert_eq!(
            target("http://node:8080"),
            t("node:8080", "node", 8080, "/-/status.json")
        );
        assert_eq!(
            target("HTTP://node:8080/"),
            t("node:8080", "node", 8080, "/-/status.json")
        );
        assert_eq!(
            target("node/-/status.json"),
            t("node", "node", 80, "/-/status.json")
        );
        assert_eq!(
            target("http://[::1]:81/x?y#z"),
            t("[::1]:81", "::1", 81, "/x?y")
        );
        assert_eq!(
            target("http://[::1]"),
            t("[::1]", "::1", 80, "/-/status.json")
        );
        for bad in [
            "https://node/",
            "ftp://node",
            "http://",
            "http://:80/",
            "http://node:0/",
            "http://node:99999/",
            "http://node:x/",
            "http://u:p@node/",
            "http://[::1/",
            "http://node/a b",
            "http://no de/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn responses() -> Result<()> {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra")?;
        assert_eq!((r.code, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n",
        )?;
        assert_eq!(r.body, b"{\"a\":1}");
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope")?;
        assert_eq!(
            (r.code, r.reason.as_str(), r.body.as_slice()),
            (404, "Not Found", &b"nope"[..])
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        Ok(())
    }
}
