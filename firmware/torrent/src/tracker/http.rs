//! HTTP trackers (BEP 3, compact peer lists BEP 23, IPv6 peers BEP 7).
//!
//! The driver sends [`request`]'s bytes, reads until the tracker closes the
//! connection (we ask for `Connection: close`, so no keep-alive state is
//! needed), and hands everything to [`parse_reply`]. The reply is small and
//! read whole, which is why a plain HTTP/1.1 framer is enough here: status
//! line, `Content-Length` or chunked or close-delimited body, nothing else.
//! The body goes through [`crate::bencode::validate`] with limits sized to
//! [`Limits`] before `bt_bencode` sees it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bt_bencode::Value;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::{
    AnnounceRequest, AnnounceResponse, Limits, TrackerError, TrackerUrl, compact_peers, malformed,
    tracker_text,
};
use crate::bencode;
use crate::error::Error;

/// Bytes left as they are in a query value: RFC 3986 unreserved characters.
/// Everything else, including every non-ASCII byte of an infohash, is
/// percent-encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest status line and headers accepted.
pub const MAX_HEAD: usize = 16 << 10;

/// The query string of an announce, without the leading `?`.
pub fn announce_query(req: &AnnounceRequest) -> String {
    let mut q = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&key={:08x}",
        percent_encode(&req.info_hash, QUERY),
        percent_encode(&req.peer_id, QUERY),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left,
        req.key,
    );
    if let Some(event) = req.event.as_http() {
        q.push_str("&event=");
        q.push_str(event);
    }
    if let Some(n) = req.numwant {
        q.push_str(&format!("&numwant={n}"));
    }
    q
}

/// The request target (`/announce?info_hash=…`): the URL's path and query
/// with the announce parameters appended.
pub fn announce_target(url: &TrackerUrl, req: &AnnounceRequest) -> String {
    let sep = if url.path.contains('?') { '&' } else { '?' };
    format!("{}{sep}{}", url.path, announce_query(req))
}

/// The whole HTTP/1.1 GET request of an announce.
pub fn request(url: &TrackerUrl, req: &AnnounceRequest, user_agent: &str) -> Vec<u8> {
    let default_port = match url.scheme {
        super::Scheme::Https => 443,
        _ => 80,
    };
    let host = if url.port == default_port {
        url.host_for_url()
    } else {
        format!("{}:{}", url.host_for_url(), url.port)
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        announce_target(url, req)
    )
    .into_bytes()
}

/// Whether `raw` already holds a whole reply whose end is known from its
/// framing (`Content-Length`, or the last chunk), so the driver can stop
/// reading without waiting for the tracker to close the connection. A reply
/// without either ends at the close; malformed headers count as complete,
/// so that [`parse_reply`] reports them.
pub fn is_complete(raw: &[u8]) -> bool {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return raw.len() > MAX_HEAD;
    };
    let Ok(head) = std::str::from_utf8(&raw[..head_end]) else {
        return true;
    };
    let body = &raw[head_end + 4..];
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            return true;
        };
        if name.eq_ignore_ascii_case("content-length") {
            return value.trim().parse::<usize>().is_ok_and(|n| body.len() >= n)
                || value.trim().parse::<usize>().is_err();
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return dechunk(body, usize::MAX).is_ok();
        }
    }
    false
}

/// Parses a whole HTTP reply (status line, headers, body) as read until the
/// tracker closed the connection.
pub fn parse_reply(raw: &[u8], limits: &Limits) -> Result<AnnounceResponse, Error> {
    let head_end = find(raw, b"\r\n\r\n")
        .filter(|end| *end <= MAX_HEAD)
        .ok_or_else(|| {
            if raw.len() > MAX_HEAD {
                TrackerError::TooLarge {
                    what: "tracker HTTP header",
                    size: raw.len(),
                    limit: MAX_HEAD,
                }
            } else {
                malformed(
                    "tracker HTTP reply",
                    "truncated before the end of the header",
                )
            }
        })?;
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| malformed("tracker HTTP header", "not UTF-8"))?;
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, reason) = parse_status(status_line)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("tracker HTTP header", "a line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| malformed("tracker HTTP header", "bad Content-Length"))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(malformed(
                    "tracker HTTP header",
                    format!(
                        "unsupported Transfer-Encoding {}",
                        tracker_text(value.as_bytes())
                    ),
                )
                .into());
            }
            chunked = true;
        }
    }
    let body: std::borrow::Cow<'_, [u8]> = if chunked {
        dechunk(rest, limits.max_message)?.into()
    } else if let Some(n) = content_length {
        if n > limits.max_message {
            return Err(too_large(n, limits).into());
        }
        rest.get(..n)
            .ok_or_else(|| malformed("tracker HTTP body", "shorter than its Content-Length"))?
            .into()
    } else {
        rest.into()
    };
    if body.len() > limits.max_message {
        return Err(too_large(body.len(), limits).into());
    }
    if status != 200 {
        // Some trackers send their failure reason with an error status.
        return Err(match parse_response(&body, limits) {
            Err(e @ Error::Tracker(TrackerError::Failure(_))) => e,
            _ => TrackerError::HttpStatus {
                status,
                reason: tracker_text(reason.as_bytes()),
            }
            .into(),
        });
    }
    parse_response(&body, limits)
}

fn too_large(size: usize, limits: &Limits) -> TrackerError {
    TrackerError::TooLarge {
        what: "tracker response",
        size,
        limit: limits.max_message,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(line: &str) -> Result<(u16, &str), TrackerError> {
    let bad = || malformed("tracker HTTP status line", tracker_text(line.as_bytes()));
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .ok_or_else(bad)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return Err(bad());
    }
    let code = code.parse::<u16>().map_err(|_| bad())?;
    Ok((code, reason))
}

/// Decodes a chunked body, refusing more than `max` bytes of data.
fn dechunk(mut raw: &[u8], max: usize) -> Result<Vec<u8>, TrackerError> {
    let what = "tracker HTTP chunked body";
    let mut out = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n").ok_or_else(|| malformed(what, "truncated chunk size"))?;
        let size_field = std::str::from_utf8(&raw[..line_end])
            .map_err(|_| malformed(what, "chunk size is not text"))?;
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        if size_hex.is_empty() || size_hex.len() > 8 {
            return Err(malformed(what, "bad chunk size"));
        }
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| malformed(what, "bad chunk size"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out); // trailers, if any, are ignored
        }
        if out.len() + size > max {
            return Err(TrackerError::TooLarge {
                what: "tracker response",
                size: out.len() + size,
                limit: max,
            });
        }
        let data = raw
            .get(..size)
            .ok_or_else(|| malformed(what, "truncated chunk"))?;
        out.extend_from_slice(data);
        raw = raw
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or_else(|| malformed(what, "chunk without its CRLF"))?;
    }
}

/// Parses a bencoded announce response body.
pub fn parse_response(body: &[u8], limits: &Limits) -> Result<AnnounceResponse, Error> {
    let what = "tracker response";
    if body.len() > limits.max_message {
        return Err(too_large(body.len(), limits).into());
    }
    // A dictionary-model peer is a dict with three keys and three values:
    // seven values. Allow that per peer plus room for the top-level fields.
    let bencode_limits = bencode::Limits {
        max_size: limits.max_message,
        max_depth: 8,
        max_items: limits.max_peers.saturating_mul(8).saturating_add(256),
    };
    bencode::validate(body, &bencode_limits)?;
    let top: Value = bt_bencode::from_slice(body).map_err(|e| Error::Decode {
        what,
        reason: e.to_string(),
    })?;
    let d = top
        .as_dict()
        .ok_or_else(|| malformed(what, "not a dictionary"))?;
    let get = |k: &str| d.get(k.as_bytes());
    if let Some(reason) = get("failure reason") {
        let reason = reason
            .as_byte_str()
            .ok_or_else(|| malformed("failure reason", "not a string"))?;
        return Err(TrackerError::Failure(tracker_text(reason)).into());
    }
    let seconds = |field: &'static str| -> Result<Option<u32>, TrackerError> {
        match get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| malformed(field, "not an integer from 0 to 2^32-1")),
        }
    };
    let interval = seconds("interval")?.ok_or(TrackerError::Missing {
        what,
        field: "interval",
    })?;
    let mut response = AnnounceResponse {
        interval: Duration::from_secs(interval.into()),
        min_interval: seconds("min interval")?.map(|s| Duration::from_secs(s.into())),
        seeders: seconds("complete")?,
        leechers: seconds("incomplete")?,
        peers: Vec::new(),
        warning: match get("warning message") {
            None => None,
            Some(v) => {
                Some(tracker_text(v.as_byte_str().ok_or_else(|| {
                    malformed("warning message", "not a string")
                })?))
            }
        },
    };
    match get("peers") {
        None => {}
        Some(Value::ByteStr(b)) => {
            compact_peers(b, false, "peers", limits.max_peers, &mut response.peers)?
        }
        Some(Value::List(list)) => dict_peers(list, limits.max_peers, &mut response.peers)?,
        Some(_) => return Err(malformed("peers", "neither a string nor a list").into()),
    }
    match get("peers6") {
        None => {}
        Some(Value::ByteStr(b)) => {
            compact_peers(b, true, "peers6", limits.max_peers, &mut response.peers)?
        }
        Some(_) => return Err(malformed("peers6", "not a string").into()),
    }
    Ok(response)
}

/// The original peer list: `[{"ip": "1.2.3.4", "port": 6881, "peer id": …}]`.
/// Host names (allowed by BEP 3) are skipped: resolving them is not worth
/// a DNS lookup per peer, and no tracker we know sends them.
fn dict_peers(list: &[Value], limit: usize, out: &mut Vec<SocketAddr>) -> Result<(), TrackerError> {
    if out.len() + list.len() > limit {
        return Err(TrackerError::TooManyPeers {
            what: "peers",
            count: out.len() + list.len(),
            limit,
        });
    }
    for (i, entry) in list.iter().enumerate() {
        let d = entry
            .as_dict()
            .ok_or_else(|| malformed("peers", format!("entry {i} is not a dictionary")))?;
        let ip = d
            .get(&b"ip"[..])
            .and_then(Value::as_byte_str)
            .ok_or_else(|| malformed("peers", format!("entry {i} has no ip string")))?;
        let port = d
            .get(&b"port"[..])
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| malformed("peers", format!("entry {i} has no port from 0 to 65535")))?;
        let ip = std::str::from_utf8(ip)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok());
        if let (Some(ip), true) = (ip, port != 0) {
            out.push(SocketAddr::new(ip, port));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use crate::tracker::Event;

    fn req() -> AnnounceRequest {
        let mut info_hash = [0u8; 20];
        for (i, b) in info_hash.iter_mut().enumerate() {
            *b = (i as u8) * 13;
        }
        AnnounceRequest {
            info_hash,
            peer_id: *b"-SS0100-abc~.-_ 09Z\xff",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            numwant: Some(50),
            key: 0xdead_beef,
        }
    }

    #[test]
    fn query_encodes_raw_bytes() {
        let q = announce_query(&req());
        assert_eq!(
            q,
            "info_hash=%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7\
             &peer_id=-SS0100-abc~.-_%2009Z%FF&port=6881&uploaded=1&downloaded=2&left=3\
             &compact=1&key=deadbeef&event=started&numwant=50"
        );
        let mut r = req();
        r.event = Event::None;
        r.numwant = None;
        assert!(!announce_query(&r).contains("event"));
        assert!(!announce_query(&r).contains("numwant"));
    }

    #[test]
    fn request_keeps_the_url_query() {
        let url = TrackerUrl::parse("http://t.example:6969/a?passkey=k").unwrap();
        let r = String::from_utf8(request(&url, &req(), "swarmsync/0")).unwrap();
        assert!(r.starts_with("GET /a?passkey=k&info_hash=%00"), "{r}");
        assert!(r.contains("\r\nHost: t.example:6969\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        let url = TrackerUrl::parse("http://[::1]/announce").unwrap();
        let r = String::from_utf8(request(&url, &req(), "x")).unwrap();
        assert!(r.starts_with("GET /announce?info_hash="));
        assert!(r.contains("\r\nHost: [::1]\r\n"));
    }

    #[test]
    fn compact_response() {
        let body = b"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali60e\
                     5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50\
                     6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e";
        let r = parse_response(body, &Limits::default()).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.min_interval, Some(Duration::from_secs(60)));
        assert_eq!((r.seeders, r.leechers), (Some(3), Some(1)));
        let want: Vec<SocketAddr> = ["127.0.0.1:6881", "10.0.0.2:80", "[::1]:6882"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(r.peers, want);
    }

    #[test]
    fn dictionary_response() {
        let body = b"d8:intervali900e5:peersld2:ip9:127.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti7000eed2:ip3:::14:porti7001eed2:ip9:host.name4:porti1eeee";
        let r = parse_response(body, &Limits::default()).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:7000".parse::<SocketAddr>().unwrap(),
                "[::1]:7001".parse().unwrap()
            ]
        );
        let bad = b"d8:intervali900e5:peersli1eee";
        assert!(matches!(
            parse_response(bad, &Limits::default()),
            Err(Error::Tracker(TrackerError::Malformed {
                what: "peers",
                ..
            }))
        ));
        let bad = b"d8:intervali900e5:peersld2:ip9:127.0.0.14:porti70000eeee";
        assert!(matches!(
            parse_response(bad, &Limits::default()),
            Err(Error::Tracker(TrackerError::Malformed {
                what: "peers",
                ..
            }))
        ));
    }

    #[test]
    fn failures_and_refusals() {
        let l = Limits::default();
        assert_eq!(
            parse_response(b"d14:failure reason8:not heree", &l),
            Err(TrackerError::Failure("not here".into()).into())
        );
        assert!(matches!(
            parse_response(b"d5:peers0:e", &l),
            Err(Error::Tracker(TrackerError::Missing {
                field: "interval",
                ..
            }))
        ));
        assert!(matches!(
            parse_response(b"d8:intervali-1ee", &l),
            Err(Error::Tracker(TrackerError::Malformed {
                what: "interval",
                ..
            }))
        ));
        assert!(matches!(
            parse_response(b"d8:intervali1e5:peers5:abcdee", &l),
            Err(Error::Tracker(TrackerError::Malformed {
                what: "peers",
                ..
            }))
        ));
        assert!(matches!(
            parse_response(b"d8:intervali1e6:peers63:abce", &l),
            Err(Error::Tracker(TrackerError::Malformed {
                what: "peers6",
                ..
            }))
        ));
        assert!(matches!(
            parse_response(b"li1ee", &l),
            Err(Error::Tracker(TrackerError::Malformed { .. }))
        ));
        assert!(matches!(
            parse_response(b"d8:interval", &l),
            Err(Error::Bencode(_))
        ));
        let small = Limits {
            max_message: 100,
            max_peers: 2,
        };
        let three = b"d8:intervali1e5:peers18:abcdefghijklmnopqre";
        assert!(matches!(
            parse_response(three, &small),
            Err(Error::Tracker(TrackerError::TooManyPeers { count: 3, .. }))
        ));
        let big = vec![b'x'; 101];
        assert!(matches!(
            parse_response(&big, &small),
            Err(Error::Tracker(TrackerError::TooLarge { .. }))
        ));
        // Deep nesting is stopped by the bencode pass, not by recursion.
        let mut deep = b"d8:intervali1e1:x".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 50));
        deep.extend(std::iter::repeat_n(b'e', 51));
        assert!(matches!(parse_response(&deep, &l), Err(Error::Bencode(_))));
    }

    #[test]
    fn completeness() {
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"
        ));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nabc"), "ends at close");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert!(is_complete(chunked));
        assert!(!is_complete(&chunked[..chunked.len() - 3]));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n"));
        assert!(is_complete(&[b'x'; MAX_HEAD + 1]));
    }

    #[test]
    fn replies() {
        let l = Limits::default();
        let body = b"d8:intervali60e5:peers6:\x01\x02\x03\x04\x00\x01e";
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        raw.extend_from_slice(body);
        raw.extend_from_slice(b"junk after the body");
        let r = parse_reply(&raw, &l).unwrap();
        assert_eq!(r.peers, vec!["1.2.3.4:1".parse::<SocketAddr>().unwrap()]);

        let mut raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        raw.extend_from_slice(body);
        assert_eq!(parse_reply(&raw, &l).unwrap().interval.as_secs(), 60);

        let mut raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n".to_vec();
        let (a, b) = body.split_at(10);
        raw.extend_from_slice(format!("{:x};ext=1\r\n", a.len()).as_bytes());
        raw.extend_from_slice(a);
        raw.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
        raw.extend_from_slice(b);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(parse_reply(&raw, &l).unwrap().interval.as_secs(), 60);

        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah";
        assert_eq!(
            parse_reply(raw, &l),
            Err(TrackerError::HttpStatus {
                status: 404,
                reason: "Not Found".into()
            }
            .into())
        );
        let raw = b"HTTP/1.1 400 Bad\r\n\r\nd14:failure reason3:note";
        assert_eq!(
            parse_reply(raw, &l),
            Err(TrackerError::Failure("not".into()).into())
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"[..],
            b"HTTP/2 200 OK\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 2000 OK\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nd8:intervali1ee",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nd8:in",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nd8xx",
        ] {
            assert!(
                matches!(parse_reply(bad, &l), Err(Error::Tracker(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let small = Limits {
            max_message: 8,
            max_peers: 2,
        };
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n";
        assert!(matches!(
            parse_reply(raw, &small),
            Err(Error::Tracker(TrackerError::TooLarge { .. }))
        ));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789";
        assert!(matches!(
            parse_reply(raw, &small),
            Err(Error::Tracker(TrackerError::TooLarge { .. }))
        ));
        let mut huge_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge_head.extend(std::iter::repeat_n(b'x', MAX_HEAD));
        assert!(matches!(
            parse_reply(&huge_head, &l),
            Err(Error::Tracker(TrackerError::TooLarge { .. }))
        ));
    }
}
