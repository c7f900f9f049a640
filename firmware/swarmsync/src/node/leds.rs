//! Feeds the node's state into the LED state machine and the watchdog.
//!
//! The status board is the one place every part of the node reports to, so
//! the LEDs are derived from it rather than wired into each part: what the
//! status page says and what the LEDs show cannot disagree. Events are sent
//! on change only; the state machine is ticked every [`TICK`].
//!
//! docs/leds.md promises the pattern within two seconds of the event, so
//! each condition is derived from what the board holds on every tick, not
//! from the moments other parts happen to report it:
//!
//! - The release: from the channels' states, not from seeing a sync end (a
//!   sync shorter than a tick, or the re-seed of the installed release at
//!   start, is never seen as "syncing").
//! - Expiry: from the channel's "expired" state, which the sync loop sets
//!   at the installed release's `expires` second (a timer, not its next
//!   feed poll).
//! - A disk error: from the channel's `last_error`, which stays set until a
//!   sync succeeds; the channel's state goes back to "syncing" at every
//!   retry, and following it would restart the code on each attempt.
//! - The link: polled every [`LINK_POLL`] ticks, so a pulled cable shows
//!   well within the bound even on a busy board.

use std::time::Duration;

use bsp::health::Event;
use serve::status::{LedStatus, StatusBoard};
use tokio::sync::watch;

const TICK: Duration = Duration::from_millis(100);
/// The link is read every this many ticks (half a second).
const LINK_POLL: u64 = 5;

/// What the LEDs were last told, to send events on change only.
#[derive(Default, PartialEq, Eq, Clone)]
struct Seen {
    peers: u32,
    syncing: Option<(u64, u64)>,
    /// `ReleaseExpired` or `ReleaseFresh` while some channel has a release
    /// installed, None while none has (syncing the first, or failed).
    release: Option<Event>,
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
        // The clock first: an event shows its pattern from the time it is
        // sent, so a code's first pulse is as long as the others.
        if let Err(e) = driver.tick() {
            tracing::warn!("LEDs: {e}");
        }
        // The link (sysfs) twice a second: a pulled cable shows within
        // two seconds.
        if ticks.is_multiple_of(LINK_POLL)
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
        let mut installed = false;
        let mut expired = false;
        for c in &s.channels {
            match c.state.as_str() {
                "syncing" => {
                    let (d, t) = now.syncing.unwrap_or((0, 0));
                    now.syncing = Some((d + c.have_bytes, t + c.total_bytes));
                }
                "synced" => installed = true,
                "expired" => {
                    installed = true;
                    expired = true;
                }
                _ => {}
            }
            now.error |= c.state == "error" || c.last_error.is_some();
            now.rejections += c.last_rejection.as_ref().map_or(0, |r| r.at);
        }
        now.release = if expired {
            Some(Event::ReleaseExpired)
        } else {
            installed.then_some(Event::ReleaseFresh)
        };
        if now.peers != seen.peers {
            send(&mut driver, Event::PeersFound(now.peers));
        }
        if now.syncing != seen.syncing {
            match now.syncing {
                Some((done, total)) => send(&mut driver, Event::SyncProgress { done, total }),
                None => send(&mut driver, Event::SyncDone),
            }
        }
        if let Some(release) = now.release
            && (now.release != seen.release || now.syncing.is_none() && seen.syncing.is_some())
        {
            send(&mut driver, release);
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
