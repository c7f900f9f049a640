//! `/-/metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! Written by hand rather than through a metrics crate: the values already
//! live in [`Status`], a scrape is rare, and the format is a few rules —
//! each family gets `# HELP` and `# TYPE` once, before its samples;
//! counters end in `_total`; label values escape `\`, `"` and newline, help
//! texts `\` and newline. Per-channel series carry a `channel` label; a
//! channel's state is one 0/1 series per possible state, so a dashboard can
//! alert on `swarmsync_channel_state{state="expired"} == 1`.

use std::fmt::Write;

use super::{CHANNEL_STATES, Status};

/// The `Content-Type` of the 0.0.4 text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A per-channel family: name, type, help, and the value of one channel.
type ChannelFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&super::ChannelStatus) -> Option<u64>,
);

/// One sample: label pairs and a value.
type Sample<'a> = (Vec<(&'static str, &'a str)>, f64);

struct Writer {
    out: String,
}

impl Writer {
    fn family<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = Sample<'a>>,
    ) {
        debug_assert!(kind != "counter" || name.ends_with("_total"));
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.out.push_str(name);
            if !labels.is_empty() {
                self.out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
                }
                self.out.push('}');
            }
            // Integers below 2^53 print exactly; `{}` of an f64 never uses
            // an exponent, and Prometheus parses any decimal.
            let _ = writeln!(self.out, " {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help, [(vec![], value as f64)]);
    }
}

/// Renders all metrics.
pub fn render_metrics(s: &Status) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096),
    };
    let n = &s.node;
    w.family(
        "swarmsync_info",
        "gauge",
        "Always 1; the version and node name as labels.",
        [(
            vec![("version", n.version.as_str()), ("name", n.name.as_str())],
            1.0,
        )],
    );
    w.single(
        "swarmsync_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        n.uptime_s,
    );
    w.single(
        "swarmsync_disk_used_bytes",
        "gauge",
        "Bytes the store uses.",
        n.disk_used,
    );
    w.single(
        "swarmsync_disk_free_bytes",
        "gauge",
        "Bytes free on the data file system.",
        n.disk_free,
    );
    w.single(
        "swarmsync_disk_budget_bytes",
        "gauge",
        "The configured disk budget (0: none).",
        n.disk_budget,
    );

    let ch = &s.channels;
    let per_channel = |f: fn(&super::ChannelStatus) -> Option<u64>| {
        ch.iter()
            .filter_map(move |c| f(c).map(|v| (vec![("channel", c.name.as_str())], v as f64)))
    };
    let families: [ChannelFamily; 14] = [
        (
            "swarmsync_channel_seq",
            "gauge",
            "Sequence number of the installed release.",
            |c| c.seq,
        ),
        (
            "swarmsync_channel_release_created_timestamp_seconds",
            "gauge",
            "Unix time the installed release was created.",
            |c| c.release_created,
        ),
        (
            "swarmsync_channel_release_expires_timestamp_seconds",
            "gauge",
            "Unix time the installed release expires.",
            |c| c.release_expires,
        ),
        (
            "swarmsync_channel_have_bytes",
            "gauge",
            "Verified bytes of the release being synced.",
            |c| Some(c.have_bytes),
        ),
        (
            "swarmsync_channel_total_bytes",
            "gauge",
            "Bytes of the selected subset of the release.",
            |c| Some(c.total_bytes),
        ),
        (
            "swarmsync_channel_files_done",
            "gauge",
            "Complete files of the release being synced.",
            |c| Some(c.files_done),
        ),
        (
            "swarmsync_channel_files_total",
            "gauge",
            "Files in the selected subset of the release.",
            |c| Some(c.files_total),
        ),
        ("swarmsync_peers", "gauge", "Connected peers.", |c| {
            Some(c.peers.into())
        }),
        (
            "swarmsync_lan_peers",
            "gauge",
            "Connected peers on the local network.",
            |c| Some(c.lan_peers.into()),
        ),
        (
            "swarmsync_download_rate_bytes_per_second",
            "gauge",
            "Current download rate.",
            |c| Some(c.download_rate),
        ),
        (
            "swarmsync_upload_rate_bytes_per_second",
            "gauge",
            "Current upload rate.",
            |c| Some(c.upload_rate),
        ),
        (
            "swarmsync_downloaded_bytes_total",
            "counter",
            "Bytes downloaded since the node started.",
            |c| Some(c.downloaded),
        ),
        (
            "swarmsync_uploaded_bytes_total",
            "counter",
            "Bytes uploaded since the node started.",
            |c| Some(c.uploaded),
        ),
        (
            "swarmsync_channel_error",
            "gauge",
            "1 when the channel has an error to report.",
            |c| Some(c.last_error.is_some().into()),
        ),
    ];
    for (name, kind, help, f) in families {
        w.family(name, kind, help, per_channel(f));
    }
    w.family(
        "swarmsync_channel_state",
        "gauge",
        "1 for the channel's current state (synced, syncing, stale, expired, error, waiting).",
        ch.iter().flat_map(|c| {
            let known = CHANNEL_STATES.contains(&c.state.as_str());
            let extra = (!known && !c.state.is_empty()).then_some(c.state.as_str());
            CHANNEL_STATES
                .iter()
                .copied()
                .chain(extra)
                .map(move |state| {
                    (
                        vec![("channel", c.name.as_str()), ("state", state)],
                        f64::from(u8::from(c.state == state)),
                    )
                })
        }),
    );
    w.family(
        "swarmsync_channel_last_rejection_timestamp_seconds",
        "gauge",
        "Unix time the channel last refused a release; the reason code as a label.",
        ch.iter().filter_map(|c| {
            let r = c.last_rejection.as_ref()?;
            Some((
                vec![("channel", c.name.as_str()), ("code", r.code.as_str())],
                r.at as f64,
            ))
        }),
    );
    w.family(
        "swarmsync_led",
        "gauge",
        "Always 1; each LED's current pattern as a label.",
        s.leds.iter().map(|l| {
            (
                vec![("led", l.name.as_str()), ("pattern", l.pattern.as_str())],
                1.0,
            )
        }),
    );
    let h = &s.http;
    w.single(
        "swarmsync_http_requests_total",
        "counter",
        "HTTP requests answered.",
        h.requests,
    );
    w.single(
        "swarmsync_http_sent_bytes_total",
        "counter",
        "Bytes written to HTTP clients, heads included.",
        h.bytes_sent,
    );
    w.single(
        "swarmsync_http_open_connections",
        "gauge",
        "HTTP connections open now.",
        h.connections,
    );
    w.single(
        "swarmsync_http_connections_total",
        "counter",
        "HTTP connections accepted.",
        h.connections_total,
    );
    w.single(
        "swarmsync_http_not_found_total",
        "counter",
        "HTTP requests answered 404.",
        h.not_found,
    );
    w.single(
        "swarmsync_http_misses_total",
        "counter",
        "Requested files that were not on disk yet (fetch-on-miss).",
        h.misses,
    );
    w.single(
        "swarmsync_http_miss_failures_total",
        "counter",
        "Fetch-on-miss requests answered 502, 503 or 504.",
        h.miss_failures,
    );
    w.out
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::super::html::tests::sample;
    use super::*;

    /// A parsed sample line.
    #[derive(Debug)]
    struct Line {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn valid_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// Parses `name{a="x",b="y"} value` strictly; unescapes label values.
    fn parse_sample(line: &str) -> Result<Line, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=').ok_or("label without =")?;
                let key = &rest[..eq];
                if !valid_name(key, false) || key.starts_with("__") {
                    return Err(format!("bad label name {key:?}"));
                }
                rest = rest[eq + 1..].strip_prefix('"').ok_or("unquoted value")?;
                let mut value = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next().ok_or("unterminated value")? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        (_, '\n') => return Err("raw newline in a value".into()),
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &rest[end + 1..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with('}') {
                    return Err("labels not separated by ,".into());
                }
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        if value.contains(' ') {
            return Err("a timestamp or trailing text".into());
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v if v.chars().all(|c| c.is_ascii_digit() || ".-+eE".contains(c)) => {
                v.parse().map_err(|_| format!("bad value {v:?}"))?
            }
            v => return Err(format!("bad value {v:?}")),
        };
        Ok(Line {
            name: name.to_string(),
            labels,
            value,
        })
    }

    /// Checks the whole exposition; returns the samples.
    fn parse(text: &str) -> Result<Vec<Line>, String> {
        if !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        let mut help = HashSet::new();
        let mut types: HashMap<String, String> = HashMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut seen = HashSet::new();
        let mut samples = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let err = |e: String| format!("line {}: {e}: {line:?}", no + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _) = rest
                    .split_once(' ')
                    .ok_or_else(|| err("empty help".into()))?;
                if !help.insert(name.to_string()) {
                    return Err(err("second HELP".into()));
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| err("no type".into()))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(err(format!("unknown type {kind}")));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(err("a counter not named _total".into()));
                }
                if types.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(err("second TYPE".into()));
                }
                if let Some(prev) = current.replace(name.to_string()) {
                    done.insert(prev);
                }
            } else if line.starts_with('#') || line.is_empty() {
                return Err(err("unexpected comment or blank line".into()));
            } else {
                let s = parse_sample(line).map_err(err)?;
                if current.as_deref() != Some(s.name.as_str()) || done.contains(&s.name) {
                    return Err(err("sample outside its family".into()));
                }
                if !help.contains(&s.name) {
                    return Err(err("sample without HELP".into()));
                }
                let mut key: Vec<_> = s.labels.clone();
                key.sort();
                if !seen.insert((s.name.clone(), key)) {
                    return Err(err("duplicate series".into()));
                }
                samples.push(s);
            }
        }
        Ok(samples)
    }

    fn value(samples: &[Line], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn output_parses_strictly() -> Result<(), String> {
        let s = sample();
        let text = render_metrics(&s);
        let samples = parse(&text)?;
        let deb = [("channel", "debian-bookworm")];
        assert_eq!(value(&samples, "swarmsync_channel_seq", &deb), Some(42.0));
        assert_eq!(
            value(&samples, "swarmsync_channel_have_bytes", &deb),
            Some((600u64 << 20) as f64)
        );
        assert_eq!(value(&samples, "swarmsync_peers", &deb), Some(7.0));
        assert_eq!(
            value(
                &samples,
                "swarmsync_channel_state",
                &[("channel", "debian-bookworm"), ("state", "syncing")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &samples,
                "swarmsync_channel_state",
                &[("channel", "debian-bookworm"), ("state", "synced")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&samples, "swarmsync_http_requests_total", &[]),
            Some(1234.0)
        );
        assert_eq!(
            value(
                &samples,
                "swarmsync_led",
                &[("led", "usr0"), ("pattern", "heartbeat")]
            ),
            Some(1.0)
        );
        assert!(text.contains("# TYPE swarmsync_downloaded_bytes_total counter\n"));
        // The hostile channel's name and state survive escaping intact.
        let evil = "<script>alert('x')</script>";
        assert_eq!(
            value(&samples, "swarmsync_channel_error", &[("channel", evil)]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &samples,
                "swarmsync_channel_state",
                &[("channel", evil), ("state", "error\"><b>")]
            ),
            Some(1.0)
        );
        // A channel without a release has no seq series.
        assert_eq!(
            value(&samples, "swarmsync_channel_seq", &[("channel", evil)]),
            None
        );
        // An empty status is valid too.
        parse(&render_metrics(&Status::default()))?;
        Ok(())
    }

    #[test]
    fn label_escaping_round_trips() -> Result<(), String> {
        let names = [
            "a\\b",
            "q\"uote",
            "new\nline",
            "\\\"\n\\n",
            "tab\tand ünïcödé",
            "}{=,",
            "",
        ];
        let status = Status {
            channels: names
                .iter()
                .map(|n| super::super::ChannelStatus {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            node: super::super::NodeStatus {
                version: "1\n\"2\\".into(),
                ..Default::default()
            },
            ..Status::default()
        };
        let samples = parse(&render_metrics(&status))?;
        for n in names {
            assert_eq!(
                value(&samples, "swarmsync_channel_have_bytes", &[("channel", n)]),
                Some(0.0),
                "{n:?}"
            );
        }
        assert_eq!(
            value(&samples, "swarmsync_info", &[("version", "1\n\"2\\")]),
            Some(1.0)
        );
        Ok(())
    }

    #[test]
    fn the_parser_is_strict() {
        for bad in [
            "x 1",                                                // no HELP/TYPE
            "# HELP x h\n# TYPE x gauge\nx{a=\"1\"} 1 2\n",       // timestamp
            "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",       // bad escape
            "# HELP x h\n# TYPE x gauge\nx{a=\"1\" b=\"2\"} 1\n", // separator
            "# HELP x h\n# TYPE x counter\nx 1\n",                // counter name
            "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",             // duplicate
            "# HELP x h\n# TYPE x gauge\nx 1",                    // final newline
            "# HELP x h\n# TYPE x gauge\nx one\n",                // value
            "# HELP x h\n# TYPE x gauge\ny 1\n",                  // family
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("# HELP x h\n# TYPE x gauge\nx{a=\"\\\\\"} 1.5\n").is_ok());
    }
}
