//! Feeds the node's state into the LED state machine and the watchdog.
//!
//! The status board is the one place every part of the node reports to, so
//! the LEDs are derived from it rather than wired into each part: what the
//! status page says and what the LEDs show cannot disagree. Events are sent
//! on change only; the state machine is ticked every [`TICK`].

use std::time::Duration;

use bsp::health::Event;
use serve::status::{LedStatus, StatusBoard};
use tokio::sync::watch;

const TICK: Duration = Duration::from_millis(100);

/// What the LEDs were last told, to send events on change only.
#[derive(Default, PartialEq, Eq, Clone)]
struct Seen {
    peers: u32,
    syncing: Option<(u64, u64)>,
    expired: bool,
    error: bool,
    rejections: u64,
    requests: u64,
}

pub async fn run(config: bsp::config::Leds, board: StatusBoard, mut stop: watch::Receiver<bool>) {
    let mut driver = match bsp::HealthDriver::open(&config) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("LEDs and watchdog are off: {e}");
            return;
        }
    };
    tracing::info!(
        "health: board {:?}, LEDs {}",
        driver.board(),
        driver.backend()
    );
    let mut seen = Seen::default();
    let send = |d: &mut bsp::HealthDriver, e: Event| {
        if let Err(err) = d.event(e) {
            tracing::warn!("LEDs: {err}");
        }
    };
    send(&mut driver, Event::Booted);
    let mut ticks: u64 = 0;
    loop {
        // The link (sysfs) about once a second: a pulled cable shows
        // within two seconds.
        if ticks.is_multiple_of(10)
            && let Err(e) = driver.poll_link()
        {
            tracing::warn!("LEDs: {e}");
        }
        ticks += 1;
        let s = board.snapshot();
        let mut now = Seen {
            peers: s.channels.iter().map(|c| c.peers).sum(),
            requests: s.http.requests,
            ..Seen::default()
        };
        for c in &s.channels {
            match c.state.as_str() {
                "syncing" => {
                    let (d, t) = now.syncing.unwrap_or((0, 0));
                    now.syncing = Some((d + c.have_bytes, t + c.total_bytes));
                }
                "expired" => now.expired = true,
                "error" => now.error = true,
                _ => {}
            }
            now.rejections += c.last_rejection.as_ref().map_or(0, |r| r.at);
        }
        if now.peers != seen.peers {
            send(&mut driver, Event::PeersFound(now.peers));
        }
        if now.syncing != seen.syncing {
            match now.syncing {
                Some((done, total)) => send(&mut driver, Event::SyncProgress { done, total }),
                None => send(&mut driver, Event::SyncDone),
            }
        }
        if now.expired != seen.expired || now.syncing.is_none() && seen.syncing.is_some() {
            send(
                &mut driver,
                if now.expired {
                    Event::ReleaseExpired
                } else {
                    Event::ReleaseFresh
                },
            );
        }
        if now.error != seen.error {
            send(
                &mut driver,
                if now.error {
                    Event::DiskError
                } else {
                    Event::DiskOk
                },
            );
        }
        if now.rejections != seen.rejections {
            send(&mut driver, Event::ReleaseRejected);
        }
        if now.requests != seen.requests {
            send(&mut driver, Event::Serving);
        }
        seen = now;
        if let Err(e) = driver.tick() {
            tracing::warn!("LEDs: {e}");
        }
        let leds: Vec<LedStatus> = driver
            .led_states()
            .into_iter()
            .map(|(name, pattern)| LedStatus {
                name,
                pattern,
                meaning: driver.summary(),
            })
            .collect();
        board.update(|s| s.leds = leds);
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            () = crate::signals::stopped(&mut stop) => break,
        }
    }
    // Clean exit: the watchdog is closed with the magic character.
    if let Err(e) = driver.close() {
        tracing::warn!("closing the watchdog: {e}");
    }
}
