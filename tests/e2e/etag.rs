//! The strong ETag from the content hash, across processes: two nodes that
//! synced the same file from the swarm send the same ETag for it (its v2
//! pieces root), and a resume validated on one holds on the other. Called
//! from node.rs's two-node test once both nodes have synced.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Status, headers (lower-case names) and body of one GET.
fn get(port: u16, path: &str, extra: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (code, headers, raw[split + 4..].to_vec())
}

fn etag(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone())
        .expect("an ETag")
}

/// Asserts that every node in `http` serves `path` (whose content is
/// `content`, at least 5 bytes) with the ETag `"<v2 pieces root>"`, and
/// that `If-None-Match` / `If-Range` with one node's tag work on the others.
/// Skipped (with a message) when `scratch`'s filesystem refuses user
/// xattrs: the nodes then fall back to per-node tags by design.
pub fn same_content_etag(http: &[u16], path: &str, content: &[u8], scratch: &Path) {
    let probe = scratch.join("xattr-probe");
    std::fs::write(&probe, b"").expect("probe");
    if !store::record_root(&probe, &[0u8; 32]) {
        eprintln!(
            "etag check skipped: {} refuses user xattrs",
            scratch.display()
        );
        return;
    }
    let root = torrent::merkle::hash_bytes(content, 16 * 1024)
        .root
        .expect("non-empty content");
    let want = format!("\"{}\"", torrent::hash::to_hex(&root));
    for &port in http {
        let (code, headers, body) = get(port, path, &[]);
        assert_eq!(code, 200, "node on {port}: {path}");
        assert_eq!(body, content, "node on {port}: {path}");
        assert_eq!(etag(&headers), want, "node on {port}: {path}");
        let (code, _, _) = get(port, path, &[("If-None-Match", &want)]);
        assert_eq!(code, 304, "node on {port}: If-None-Match");
        let (code, _, body) = get(port, path, &[("Range", "bytes=1-4"), ("If-Range", &want)]);
        assert_eq!(
            (code, body.as_slice()),
            (206, &content[1..5]),
            "node on {port}: If-Range"
        );
    }
}
