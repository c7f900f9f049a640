//! `/-/status`: a page a person reads at a glance. Plain HTML with a little
//! inline CSS and a refresh every 10 s: no JavaScript and nothing fetched
//! from elsewhere, so it works in any browser on an offline LAN. Every value
//! from the status is escaped, names and error texts included (a channel
//! name or an error quoting a peer is not trusted markup). Times are shown
//! relative to the status's own `node.time`, so the page is a pure function
//! of the status and tests need no clock.

use std::fmt::Write;

use super::{ChannelStatus, LedStatus, Status};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1.5 GiB`, `12 KiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `45 s`, `12 min`, `3 h 20 min`, `6 d 4 h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{m} min"),
        3600..86_400 if m > 0 => format!("{h} h {m} min"),
        3600..86_400 => format!("{h} h"),
        _ if h > 0 => format!("{d} d {h} h"),
        _ => format!("{d} d"),
    }
}

/// `3 h ago` / `in 2 d` for a unix time relative to `now`.
fn relative(at: u64, now: u64) -> String {
    if at <= now {
        format!("{} ago", duration(now - at))
    } else {
        format!("in {}", duration(at - now))
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part.min(whole) as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
}

const CSS: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.2em 0 .4em}\
.sub{color:#666;margin-bottom:1em}\
table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e4e4e4;vertical-align:top}\
th{font-weight:600;color:#555;font-size:.85em}\
.num{text-align:right;white-space:nowrap}\
.state{display:inline-block;padding:.05em .5em;border-radius:.8em;font-size:.85em;font-weight:600;color:#fff;background:#777}\
.synced{background:#2e7d32}.syncing{background:#1565c0}.waiting{background:#777}\
.stale{background:#ef6c00}.expired,.error{background:#c62828}\
.bar{background:#e0e0e0;border-radius:3px;height:.7em;min-width:8em;overflow:hidden}\
.bar>div{background:#1565c0;height:100%}\
.bar.full>div{background:#2e7d32}\
.small{font-size:.85em;color:#555}.warn{color:#c62828}\
.led{display:inline-block;width:.9em;height:.9em;border-radius:50%;border:1px solid #888;vertical-align:middle;margin-right:.4em}\
.led.on{background:#43a047;border-color:#2e7d32}\
.led.blink{background:#43a047;animation:b 1s steps(2,start) infinite}\
@keyframes b{to{visibility:hidden}}";

/// Renders the status page.
pub fn render_html(s: &Status) -> String {
    let now = s.node.time;
    let title = if s.node.name.is_empty() {
        "swarmsync".to_string()
    } else {
        format!("swarmsync — {}", s.node.name)
    };
    let mut out = String::with_capacity(8192);
    // `write!` into a String cannot fail; the results are ignored below.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    node_line(&mut out, s);
    out.push_str("<h2>Channels</h2>\n");
    if s.channels.is_empty() {
        out.push_str("<p class=\"small\">No channels configured.</p>\n");
    } else {
        out.push_str(
            "<table><tr><th>channel</th><th>state</th><th>release</th>\
             <th>sync</th><th class=\"num\">peers</th><th class=\"num\">rates</th></tr>\n",
        );
        for c in &s.channels {
            channel_row(&mut out, c, now);
        }
        out.push_str("</table>\n");
    }
    leds(&mut out, &s.leds);
    let h = &s.http;
    let _ = write!(
        out,
        "<h2>HTTP</h2>\n<p class=\"small\">requests {} · sent {} · open connections {} \
         ({} since start) · not found {} · fetched on miss {} ({} failed)</p>\n",
        h.requests,
        bytes(h.bytes_sent),
        h.connections,
        h.connections_total,
        h.not_found,
        h.misses,
        h.miss_failures
    );
    if let Some(f) = &h.last_miss_failure {
        let _ = writeln!(
            out,
            "<p class=\"small\">Last failed fetch on miss: {} → {} ({}), {}</p>",
            escape(&f.path),
            f.status,
            escape(&f.reason),
            relative(f.at, now)
        );
    }
    let _ = write!(
        out,
        "<p class=\"small\">Machine-readable: <a href=\"status.json\">status.json</a>, \
         <a href=\"metrics\">metrics</a>. This page refreshes every 10 s.</p>\n\
         </body></html>\n"
    );
    out
}

fn node_line(out: &mut String, s: &Status) {
    let n = &s.node;
    let _ = write!(
        out,
        "<div class=\"sub\">version {} · up {}",
        escape(&n.version),
        duration(n.uptime_s)
    );
    if !n.data_dir.is_empty() {
        let _ = write!(out, " · data <code>{}</code>", escape(&n.data_dir));
    }
    out.push_str("</div>\n");
    // Disk: used against the budget when there is one, else against used + free.
    let whole = if n.disk_budget > 0 {
        n.disk_budget
    } else {
        n.disk_used.saturating_add(n.disk_free)
    };
    if whole > 0 {
        let pct = percent(n.disk_used, whole);
        let _ = write!(
            out,
            "<table><tr><th>disk</th><td style=\"width:40%\"><div class=\"bar\">\
             <div style=\"width:{pct:.1}%\"></div></div></td><td class=\"num\">{} used",
            bytes(n.disk_used)
        );
        if n.disk_budget > 0 {
            let _ = write!(out, " of {} budget", bytes(n.disk_budget));
        }
        let _ = writeln!(out, ", {} free</td></tr></table>", bytes(n.disk_free));
    }
}

fn channel_row(out: &mut String, c: &ChannelStatus, now: u64) {
    let state = if c.state.is_empty() {
        "waiting"
    } else {
        c.state.as_str()
    };
    // The state is also a CSS class: only known, plain names become one.
    let class = if super::CHANNEL_STATES.contains(&state) {
        state
    } else {
        "unknown"
    };
    // Only a plain absolute path becomes a link (never `javascript:` or
    // another host).
    let mount = if c.mount.starts_with('/') && !c.mount.starts_with("//") {
        format!(
            "<a class=\"small\" href=\"{}/\">{}</a>",
            escape(c.mount.trim_end_matches('/')),
            escape(&c.mount)
        )
    } else {
        format!("<span class=\"small\">{}</span>", escape(&c.mount))
    };
    let _ = write!(
        out,
        "<tr class=\"row-{class}\"><td><b>{}</b><br>{mount}</td>\
         <td><span class=\"state {class}\">{}</span></td><td>",
        escape(&c.name),
        escape(state)
    );
    match c.seq {
        Some(seq) => {
            let _ = write!(out, "seq <b>{seq}</b>");
        }
        None => out.push_str("none yet"),
    }
    if let Some(created) = c.release_created {
        let _ = write!(
            out,
            "<br><span class=\"small\">created {}</span>",
            relative(created, now)
        );
    }
    if let Some(expires) = c.release_expires {
        let (class, word) = if expires <= now {
            ("small warn", "expired")
        } else {
            ("small", "expires")
        };
        let _ = write!(
            out,
            "<br><span class=\"{class}\">{word} {}</span>",
            relative(expires, now)
        );
    }
    let pct = percent(c.have_bytes, c.total_bytes);
    let full = if c.total_bytes > 0 && c.have_bytes >= c.total_bytes {
        " full"
    } else {
        ""
    };
    let _ = write!(
        out,
        "</td><td><div class=\"bar{full}\" title=\"{pct:.1}%\"><div style=\"width:{pct:.1}%\"></div></div>\
         <span class=\"small\">{pct:.1}% · {} of {} · {} of {} files</span>",
        bytes(c.have_bytes),
        bytes(c.total_bytes),
        c.files_done,
        c.files_total
    );
    if let Some(r) = &c.last_rejection {
        let _ = write!(
            out,
            "<br><span class=\"small warn\">refused a release {}: {} ({})</span>",
            relative(r.at, now),
            escape(&r.reason),
            escape(&r.code)
        );
    }
    if let Some(e) = &c.last_error {
        let _ = write!(out, "<br><span class=\"small warn\">{}</span>", escape(e));
    }
    let _ = writeln!(
        out,
        "</td><td class=\"num\">{}<br><span class=\"small\">{} on LAN</span></td>\
         <td class=\"num\">↓ {}/s<br>↑ {}/s<br><span class=\"small\">{} down, {} up</span></td></tr>",
        c.peers,
        c.lan_peers,
        bytes(c.download_rate),
        bytes(c.upload_rate),
        bytes(c.downloaded),
        bytes(c.uploaded)
    );
}

fn leds(out: &mut String, leds: &[LedStatus]) {
    if leds.is_empty() {
        return;
    }
    out.push_str("<h2>LEDs</h2>\n<table>\n");
    for led in leds {
        let p = led.pattern.to_ascii_lowercase();
        let class = if p == "on" {
            "on"
        } else if p.contains("blink") || p.contains("flash") || p.contains("heartbeat") {
            "blink"
        } else {
            "off"
        };
        let _ = writeln!(
            out,
            "<tr><td><span class=\"led {class}\"></span><b>{}</b></td><td>{}</td><td>{}</td></tr>",
            escape(&led.name),
            escape(&led.pattern),
            escape(&led.meaning)
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{HttpStats, NodeStatus, Rejection};
    use super::*;

    pub(crate) fn sample() -> Status {
        Status {
            node: NodeStatus {
                version: "0.1.0".into(),
                name: "bbb-kitchen".into(),
                time: 1_700_100_000,
                uptime_s: 93_784,
                data_dir: "/data".into(),
                disk_used: 900 << 20,
                disk_free: 3 << 30,
                disk_budget: 1600 << 20,
            },
            channels: vec![
                ChannelStatus {
                    name: "debian-bookworm".into(),
                    mount: "/debian".into(),
                    seq: Some(42),
                    release_created: Some(1_700_100_000 - 7200),
                    release_expires: Some(1_700_100_000 + 6 * 86_400),
                    state: "syncing".into(),
                    have_bytes: 600 << 20,
                    total_bytes: 800 << 20,
                    files_done: 1500,
                    files_total: 2000,
                    peers: 7,
                    lan_peers: 2,
                    download_rate: 5 << 20,
                    upload_rate: 300 << 10,
                    downloaded: 600 << 20,
                    uploaded: 90 << 20,
                    last_rejection: Some(Rejection {
                        code: "rollback".into(),
                        reason: "seq 41 is older than the installed 42".into(),
                        at: 1_700_100_000 - 600,
                    }),
                    last_error: None,
                },
                ChannelStatus {
                    name: "<script>alert('x')</script>".into(),
                    mount: "/\"evil".into(),
                    state: "error\"><b>".into(),
                    last_error: Some("peer said <img src=x onerror=alert(1)> & left".into()),
                    ..ChannelStatus::default()
                },
            ],
            leds: vec![
                LedStatus {
                    name: "usr0".into(),
                    pattern: "heartbeat".into(),
                    meaning: "running".into(),
                },
                LedStatus {
                    name: "usr1".into(),
                    pattern: "on".into(),
                    meaning: "synced".into(),
                },
            ],
            http: HttpStats {
                requests: 1234,
                bytes_sent: 5 << 30,
                connections: 3,
                connections_total: 99,
                not_found: 7,
                misses: 1,
                miss_failures: 1,
                last_miss_failure: Some(super::super::MissFailure {
                    path: "/debian/<x>.deb".into(),
                    status: 504,
                    reason: "timed out".into(),
                    at: 1,
                }),
            },
        }
    }

    #[test]
    fn everything_is_escaped() {
        let page = render_html(&sample());
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("\"evil"));
        assert!(!page.contains("<b>\"") && !page.contains("\"><b>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("peer said &lt;img src=x onerror=alert(1)&gt; &amp; left"));
        // An unknown state is shown, escaped, and styled as unknown.
        assert!(page.contains("<span class=\"state unknown\">error&quot;&gt;&lt;b&gt;</span>"));
        assert!(!page.contains("<script") && !page.contains("javascript:"));
        let mut s = sample();
        s.channels[0].mount = "javascript:alert(1)".into();
        s.channels[1].mount = "//evil.example/".into();
        let page = render_html(&s);
        assert!(!page.contains("href=\"javascript") && !page.contains("href=\"//"));
        assert!(page.contains("<span class=\"small\">javascript:alert(1)</span>"));
        assert!(
            render_html(&sample()).contains("<a class=\"small\" href=\"/debian/\">/debian</a>")
        );
    }

    #[test]
    fn shows_what_matters() {
        let page = render_html(&sample());
        for want in [
            "<meta http-equiv=\"refresh\" content=\"10\">",
            "swarmsync — bbb-kitchen",
            "debian-bookworm",
            "seq <b>42</b>",
            "created 2 h ago",
            "expires in 6 d",
            "width:75.0%",
            "600 MiB of 800 MiB",
            "1500 of 2000 files",
            "7<br><span class=\"small\">2 on LAN",
            "↓ 5.0 MiB/s",
            "↑ 300 KiB/s",
            "refused a release 10 min ago: seq 41 is older than the installed 42 (rollback)",
            "900 MiB used of 1.6 GiB budget, 3.0 GiB free",
            "up 1 d 2 h",
            "led blink",
            "led on",
            "requests 1234 · sent 5.0 GiB",
        ] {
            assert!(page.contains(want), "missing {want:?} in\n{page}");
        }
        let expired = Status {
            channels: vec![ChannelStatus {
                release_expires: Some(100),
                ..ChannelStatus::default()
            }],
            node: NodeStatus {
                time: 100 + 3 * 3600 + 120,
                ..NodeStatus::default()
            },
            ..Status::default()
        };
        let page = render_html(&expired);
        assert!(page.contains("expired 3 h 2 min ago"), "{page}");
        assert!(page.contains("none yet"));
        assert!(render_html(&Status::default()).contains("No channels configured."));
    }

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(u64::MAX), "16 EiB");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(86_400 * 3), "3 d");
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(9, 4), 100.0);
    }
}
