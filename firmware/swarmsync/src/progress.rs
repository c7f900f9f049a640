//! Progress reporting: a bar on a terminal, a log line every few seconds
//! otherwise (cron jobs and journald get readable logs, not escape codes).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: AtomicU64,
    last_log: Mutex<Instant>,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            total,
            done: AtomicU64::new(0),
            last_log: Mutex::new(Instant::now()),
        }
    }

    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        if let Ok(mut last) = self.last_log.try_lock()
            && last.elapsed() >= Duration::from_secs(5)
        {
            *last = Instant::now();
            let pct = done as f64 * 100.0 / self.total.max(1) as f64;
            tracing::info!("{}: {done} of {} bytes ({pct:.0}%)", self.what, self.total);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
