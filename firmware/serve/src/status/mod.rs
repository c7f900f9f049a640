//! The node's status: one data model, filled by the node and by the server,
//! rendered three ways (`/-/status` for people, `/-/status.json` for
//! `swarmsync status` and scripts, `/-/metrics` for Prometheus), plus the
//! plain-text summary `swarmsync status` prints from the JSON.
//!
//! Why a board with a lock plus atomics: the node updates channel progress
//! a few times a second and a page is rendered a few times a minute, so a
//! `RwLock<Status>` costs nothing; but the server counts every request and
//! every byte, so those counters are atomics the lock never sees, merged in
//! when a snapshot is taken. Rendering works on a snapshot (a clone), so no
//! lock is held while formatting. The renderers are pure functions of a
//! [`Status`] and the time, tested without a server.

mod html;
mod metrics;
mod text;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::special::{Special, SpecialResponse};

pub use html::render_html;
pub use metrics::render_metrics;
pub use text::render_text;

/// Everything `/-/status.json` says. Unknown fields are ignored and missing
/// ones default, so `swarmsync status` reads other versions' pages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Status {
    /// The node as a whole.
    pub node: NodeStatus,
    /// One entry per configured channel, in configuration order.
    pub channels: Vec<ChannelStatus>,
    /// What the LEDs show now.
    pub leds: Vec<LedStatus>,
    /// HTTP counters, kept by the server itself.
    pub http: HttpStats,
}

/// The node as a whole.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct NodeStatus {
    /// swarmsync version (this crate's when left empty).
    pub version: String,
    /// A name for the node (host name), free text.
    pub name: String,
    /// Unix time (s) when this status was taken; filled by [`StatusBoard`].
    pub time: u64,
    /// Seconds since the board was created; filled by [`StatusBoard`].
    pub uptime_s: u64,
    /// The data directory.
    pub data_dir: String,
    /// Bytes the store uses.
    pub disk_used: u64,
    /// Bytes free on the data file system.
    pub disk_free: u64,
    /// The configured disk budget in bytes (0: none).
    pub disk_budget: u64,
}

/// The states a channel can be in (the `state` field).
pub const CHANNEL_STATES: [&str; 6] = ["synced", "syncing", "stale", "expired", "error", "waiting"];

/// One channel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ChannelStatus {
    /// Channel name.
    pub name: String,
    /// URL prefix it is served under (`/debian`).
    pub mount: String,
    /// Sequence number of the installed release, if any.
    pub seq: Option<u64>,
    /// Unix time (s) the installed release was created.
    pub release_created: Option<u64>,
    /// Unix time (s) the installed release expires.
    pub release_expires: Option<u64>,
    /// One of [`CHANNEL_STATES`].
    pub state: String,
    /// Verified bytes of the release being synced (or installed).
    pub have_bytes: u64,
    /// Bytes of the selected subset of that release.
    pub total_bytes: u64,
    /// Complete files.
    pub files_done: u64,
    /// Files in the subset.
    pub files_total: u64,
    /// Connected peers.
    pub peers: u32,
    /// Connected peers on the local network.
    pub lan_peers: u32,
    /// Download rate, bytes/s.
    pub download_rate: u64,
    /// Upload rate, bytes/s.
    pub upload_rate: u64,
    /// Bytes downloaded since start.
    pub downloaded: u64,
    /// Bytes uploaded since start.
    pub uploaded: u64,
    /// The last release this node refused, and why.
    pub last_rejection: Option<Rejection>,
    /// The last error, if the channel is in trouble.
    pub last_error: Option<String>,
}

/// A refused release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Rejection {
    /// Short machine-readable reason (`"signature"`, `"rollback"`, `"expired"` …).
    pub code: String,
    /// The reason for a person.
    pub reason: String,
    /// Unix time (s) of the refusal.
    pub at: u64,
}

/// One LED.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct LedStatus {
    /// The LED's name (`usr0`, `status` …).
    pub name: String,
    /// Its pattern (`on`, `off`, `blink-slow` …).
    pub pattern: String,
    /// What the pattern means now.
    pub meaning: String,
}

/// HTTP counters since the server started.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct HttpStats {
    /// Requests answered.
    pub requests: u64,
    /// Bytes written to clients, heads included.
    pub bytes_sent: u64,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests answered 404.
    pub not_found: u64,
    /// Files requested that were not on disk yet (fetch-on-miss).
    pub misses: u64,
    /// Of those, the ones answered 502, 503 or 504.
    pub miss_failures: u64,
    /// The latest of those failures.
    pub last_miss_failure: Option<MissFailure>,
}

/// A fetch-on-miss that was answered with an error status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct MissFailure {
    /// The request path.
    pub path: String,
    /// The status sent (502, 503 or 504).
    pub status: u16,
    /// Why, in words.
    pub reason: String,
    /// When (Unix seconds).
    pub at: u64,
}

impl Status {
    /// The JSON of `/-/status.json`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses the JSON of `/-/status.json`.
    pub fn from_json(text: &[u8]) -> Result<Status, crate::Error> {
        serde_json::from_slice(text).map_err(crate::Error::StatusJson)
    }
}

/// The server's counters, shared between its connections and a board.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    pub requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub not_found: AtomicU64,
    pub misses: AtomicU64,
    pub miss_failures: AtomicU64,
    pub last_miss_failure: std::sync::Mutex<Option<MissFailure>>,
}

impl HttpCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a fetch-on-miss answered with an error status.
    pub fn miss_failed(&self, path: &str, status: u16, reason: String) {
        Self::add(&self.miss_failures, 1);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Ok(mut last) = self.last_miss_failure.lock() {
            *last = Some(MissFailure {
                path: path.chars().take(512).collect(),
                status,
                reason,
                at,
            });
        }
    }

    fn stats(&self) -> HttpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStats {
            requests: get(&self.requests),
            bytes_sent: get(&self.bytes_sent),
            connections: get(&self.connections),
            connections_total: get(&self.connections_total),
            not_found: get(&self.not_found),
            misses: get(&self.misses),
            miss_failures: get(&self.miss_failures),
            last_miss_failure: self.last_miss_failure.lock().ok().and_then(|l| l.clone()),
        }
    }
}

#[derive(Debug)]
struct Inner {
    status: RwLock<Status>,
    http: Arc<HttpCounters>,
    started: Instant,
}

/// The live [`Status`]: the node writes it with [`StatusBoard::update`],
/// the server counts its HTTP statistics into it (give it to
/// [`crate::Server::status`]), and it answers `/-/status`,
/// `/-/status.json` and `/-/metrics` as a [`Special`]. Cloning is cheap and
/// every clone is the same board.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    /// An empty board; uptime counts from now.
    pub fn new() -> Self {
        StatusBoard {
            inner: Arc::new(Inner {
                status: RwLock::new(Status::default()),
                http: Arc::new(HttpCounters::default()),
                started: Instant::now(),
            }),
        }
    }

    /// Changes the status in place. `node.time`, `node.uptime_s` and
    /// `http` are overwritten in every snapshot, so setting them is useless.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut status = self
            .inner
            .status
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut status);
    }

    /// Counts a request for a file that was not on disk yet.
    pub fn count_miss(&self) {
        HttpCounters::add(&self.inner.http.misses, 1);
    }

    /// The status now, with time, uptime and HTTP counters filled in.
    pub fn snapshot(&self) -> Status {
        let mut status = self
            .inner
            .status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if status.node.version.is_empty() {
            status.node.version = env!("CARGO_PKG_VERSION").to_string();
        }
        status.node.time = unix_now();
        status.node.uptime_s = self.inner.started.elapsed().as_secs();
        status.http = self.inner.http.stats();
        status
    }

    pub(crate) fn counters(&self) -> Arc<HttpCounters> {
        self.inner.http.clone()
    }
}

const INDEX: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>swarmsync</title></head><body><ul>\
<li><a href=\"status\">status</a></li><li><a href=\"status.json\">status.json</a></li>\
<li><a href=\"metrics\">metrics</a></li></ul></body></html>\n";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `/-/status`, `/-/status.json` and `/-/metrics`, and `/-/` linking
/// them; anything else is not the board's.
impl Special for StatusBoard {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        if path.is_empty() {
            return Some(SpecialResponse::ok("text/html; charset=utf-8", INDEX));
        }
        let render: fn(&Status) -> String = match path {
            "status" => render_html,
            "status.json" => Status::to_json,
            "metrics" => render_metrics,
            _ => return None,
        };
        let ctype = match path {
            "status" => "text/html; charset=utf-8",
            "status.json" => "application/json",
            _ => metrics::CONTENT_TYPE,
        };
        Some(SpecialResponse::ok(ctype, render(&self.snapshot())).with_cache_control("no-store"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_fills_time_and_counters() {
        let board = StatusBoard::new();
        board.update(|s| {
            s.channels.push(ChannelStatus {
                name: "deb".into(),
                ..ChannelStatus::default()
            });
            s.http.requests = 999;
        });
        HttpCounters::add(&board.counters().requests, 3);
        board.count_miss();
        let snap = board.snapshot();
        assert_eq!(snap.http.requests, 3);
        assert_eq!(snap.http.misses, 1);
        assert_eq!(snap.channels[0].name, "deb");
        assert_eq!(snap.node.version, env!("CARGO_PKG_VERSION"));
        assert!(snap.node.time > 1_600_000_000);
    }

    #[test]
    fn json_round_trip_and_tolerance() -> Result<(), crate::Error> {
        let board = StatusBoard::new();
        board.update(|s| {
            s.channels.push(ChannelStatus {
                name: "deb\"<x>".into(),
                seq: Some(7),
                last_rejection: Some(Rejection {
                    code: "rollback".into(),
                    reason: "seq 6 <= 7".into(),
                    at: 5,
                }),
                ..ChannelStatus::default()
            })
        });
        let snap = board.snapshot();
        assert_eq!(Status::from_json(snap.to_json().as_bytes())?, snap);
        // Missing fields default, unknown ones are ignored.
        let s = Status::from_json(br#"{"channels":[{"name":"a","future":1}],"x":{}}"#)?;
        assert_eq!(s.channels[0].name, "a");
        assert_eq!(s.channels[0].seq, None);
        assert!(Status::from_json(b"{").is_err());
        Ok(())
    }

    #[test]
    fn board_answers_three_paths() {
        let board = StatusBoard::new();
        for (path, ctype) in [
            ("status", "text/html"),
            ("status.json", "application/json"),
            ("metrics", "text/plain"),
        ] {
            let r = board.get(path);
            assert!(r.is_some_and(|r| r.status == 200 && r.content_type.starts_with(ctype)));
        }
        assert!(board.get("status/").is_none());
        assert!(
            board
                .get("")
                .is_some_and(|r| r.body.starts_with(b"<!DOCTYPE html>"))
        );
        assert!(board.get("releases/x").is_none());
    }
}
