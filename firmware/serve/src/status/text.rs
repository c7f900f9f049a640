//! The plain-text summary `swarmsync status` prints: one line for the node,
//! one per channel (plus its last rejection and error, indented), one for
//! the LEDs. The status comes from another machine, so every string is
//! stripped of control characters before it reaches a terminal (an escape
//! sequence in a channel name must not reprogram it).

use std::fmt::Write;

use super::html::{bytes, duration};
use super::{ChannelStatus, Status};

/// `s` with control characters (escape sequences, newlines) replaced by `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn relative(at: u64, now: u64) -> String {
    if at <= now {
        format!("{} ago", duration(now - at))
    } else {
        format!("in {}", duration(at - now))
    }
}

/// Renders the summary; every line ends in `\n`.
pub fn render_text(s: &Status) -> String {
    let n = &s.node;
    let now = n.time;
    let mut out = String::new();
    if !n.name.is_empty() {
        let _ = write!(out, "{}: ", clean(&n.name));
    }
    let _ = write!(
        out,
        "swarmsync {}, up {}, disk {} used",
        clean(&n.version),
        duration(n.uptime_s),
        bytes(n.disk_used)
    );
    if n.disk_budget > 0 {
        let _ = write!(out, " of {} budget", bytes(n.disk_budget));
    }
    let _ = writeln!(out, ", {} free", bytes(n.disk_free));
    if s.channels.is_empty() {
        out.push_str("no channels\n");
    }
    for c in &s.channels {
        channel(&mut out, c, now);
    }
    if !s.leds.is_empty() {
        let leds: Vec<String> = s
            .leds
            .iter()
            .map(|l| {
                format!(
                    "{} {} ({})",
                    clean(&l.name),
                    clean(&l.pattern),
                    clean(&l.meaning)
                )
            })
            .collect();
        let _ = writeln!(out, "leds: {}", leds.join(", "));
    }
    if let Some(f) = &s.http.last_miss_failure {
        let _ = writeln!(
            out,
            "last failed fetch on miss: {} -> {} ({}), {}",
            clean(&f.path),
            f.status,
            clean(&f.reason),
            relative(f.at, now)
        );
    }
    out
}

fn channel(out: &mut String, c: &ChannelStatus, now: u64) {
    let state = if c.state.is_empty() {
        "waiting"
    } else {
        &c.state
    };
    let _ = write!(
        out,
        "{} {} {}",
        clean(&c.name),
        clean(&c.mount),
        clean(state)
    );
    match c.seq {
        Some(seq) => {
            let _ = write!(out, " seq {seq}");
            let mut when = Vec::new();
            if let Some(t) = c.release_created {
                when.push(format!("created {}", relative(t, now)));
            }
            if let Some(t) = c.release_expires {
                let word = if t <= now { "expired" } else { "expires" };
                when.push(format!("{word} {}", relative(t, now)));
            }
            if !when.is_empty() {
                let _ = write!(out, " ({})", when.join(", "));
            }
        }
        None => out.push_str(" no release"),
    }
    let pct = if c.total_bytes == 0 {
        0.0
    } else {
        c.have_bytes.min(c.total_bytes) as f64 * 100.0 / c.total_bytes as f64
    };
    let _ = writeln!(
        out,
        ", {pct:.1}% of {} ({}/{} files), {} peers ({} lan), down {}/s up {}/s",
        bytes(c.total_bytes),
        c.files_done,
        c.files_total,
        c.peers,
        c.lan_peers,
        bytes(c.download_rate),
        bytes(c.upload_rate)
    );
    if let Some(r) = &c.last_rejection {
        let _ = writeln!(
            out,
            "  refused a release {}: {} ({})",
            relative(r.at, now),
            clean(&r.reason),
            clean(&r.code)
        );
    }
    if let Some(e) = &c.last_error {
        let _ = writeln!(out, "  error: {}", clean(e));
    }
}

#[cfg(test)]
mod tests {
    use super::super::html::tests::sample;
    use super::*;

    #[test]
    fn summary() {
        let text = render_text(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "bbb-kitchen: swarmsync 0.1.0, up 1 d 2 h, disk 900 MiB used of 1.6 GiB budget, 3.0 GiB free"
        );
        assert_eq!(
            lines[1],
            "debian-bookworm /debian syncing seq 42 (created 2 h ago, expires in 6 d), 75.0% of 800 MiB (1500/2000 files), 7 peers (2 lan), down 5.0 MiB/s up 300 KiB/s"
        );
        assert_eq!(
            lines[2],
            "  refused a release 10 min ago: seq 41 is older than the installed 42 (rollback)"
        );
        assert!(
            lines[3]
                .starts_with("<script>alert('x')</script> /\"evil error\"><b> no release, 0.0%")
        );
        assert_eq!(
            lines[4],
            "  error: peer said <img src=x onerror=alert(1)> & left"
        );
        assert_eq!(lines[5], "leds: usr0 heartbeat (running), usr1 on (synced)");
        assert!(
            lines[6].starts_with("last failed fetch on miss: /debian/<x>.deb -> 504 (timed out), "),
            "{}",
            lines[6]
        );
        assert_eq!(lines.len(), 7);
        assert!(render_text(&Status::default()).contains("no channels\n"));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut s = sample();
        s.channels[0].name = "a\x1b]0;owned\x07b\nc".into();
        s.leds[0].meaning = "\x1b[2J".into();
        if let Some(f) = s.http.last_miss_failure.as_mut() {
            f.path = "/x\n\x1b[31mred".into();
        }
        let text = render_text(&s);
        assert!(!text.contains('\x1b') && !text.contains('\x07'));
        assert!(text.contains("a?]0;owned?b?c /debian"));
        assert_eq!(text.lines().count(), 7, "no injected line");
    }
}
