//! Upload and download rate limits.
//!
//! A token bucket per limit, shared (`Arc`) by every connection it governs:
//! one bucket per torrent for a per-torrent limit, one for the process for
//! a global limit; a connection passes through each bucket that applies.
//! Connections take what they moved and then wait while the bucket is in
//! debt, so a limit never splits a message and a reader slowed here slows
//! its TCP sender through flow control — nothing is buffered.

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so tests can run with paused time.
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    /// `rate` bytes per second.
    pub fn new(rate: u64) -> Limiter {
        Limiter {
            rate: rate.max(1),
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Accounts for `n` bytes moved, then waits until the bucket is out of
    /// debt. Bursts are bounded to a quarter second of traffic.
    pub async fn take(&self, n: usize) {
        let wait = {
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            let now = Instant::now();
            let rate = self.rate as f64;
            let burst = rate / 4.0;
            let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
            s.0 = (s.0 + elapsed * rate).min(burst) - n as f64;
            s.1 = now;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses a rate such as `2MiB/s`, `500KiB/s`, `1.5MB/s`, `100000` (bytes
/// per second) or `off` (None).
pub fn parse_rate(s: &str) -> Option<Option<u64>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Some(None);
    }
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "KiB" | "k iB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1048576.0,
        "G" | "GB" => 1e9,
        "GiB" => 1073741824.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 1.0).then_some(Some(v as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("off"), Some(None));
        assert_eq!(parse_rate("2MiB/s"), Some(Some(2 << 20)));
        assert_eq!(parse_rate("500KiB/s"), Some(Some(500 * 1024)));
        assert_eq!(parse_rate("1.5MB/s"), Some(Some(1_500_000)));
        assert_eq!(parse_rate("1000"), Some(Some(1000)));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("2XB/s"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn limits_the_average_rate() {
        let l = Limiter::new(1 << 20);
        let t0 = tokio::time::Instant::now();
        for _ in 0..64 {
            l.take(64 * 1024).await;
        }
        // 4 MiB at 1 MiB/s: about 4 s (less the initial allowance).
        let secs = t0.elapsed().as_secs_f64();
        assert!((3.5..=4.5).contains(&secs), "{secs}");
    }
}
