//! Keeping a torrent announced to its trackers while it runs.
//!
//! [`Announcer::start`] spawns one task per tracker URL. Each announces
//! `started`, then re-announces when the tracker asks (its `interval`, or
//! `min interval` if larger, clamped to [`AnnouncerConfig::min_interval`] ..
//! [`AnnouncerConfig::max_interval`] so a hostile or broken tracker can
//! neither make us hammer it nor go silent for days), sends `completed` once
//! when the engine reports nothing left, and `stopped` from
//! [`Announcer::stop`]. A failed announce is retried after
//! [`AnnouncerConfig::retry`], doubled per consecutive failure up to the
//! maximum interval.
//!
//! Why one task per tracker rather than one loop: a UDP tracker that does not
//! answer holds its announce for minutes (BEP 15's retransmissions), and
//! that must not delay the others.
//!
//! Peers go to the engine through a bounded channel with `try_send`: when the
//! engine is busy the surplus is dropped rather than queued, since trackers
//! send the same peers again next time. The lists may contain our own
//! address (trackers echo it); the engine recognises itself by peer id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use torrent::hash::Sha1;

use crate::tracker::{Client, Event, Request};

/// What the engine tells trackers about its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes still missing; 0 for a seed.
    pub left: u64,
}

/// Which trackers and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Announce URLs (`http://`, `udp://`); every one is announced to.
    pub trackers: Vec<String>,
    pub info_hash: Sha1,
    pub peer_id: [u8; 20],
    /// Our peer port.
    pub port: u16,
    /// Peers asked for per announce; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// Floor on the re-announce interval, whatever the tracker says.
    pub min_interval: Duration,
    /// Ceiling on the re-announce interval and on the retry backoff.
    pub max_interval: Duration,
    /// First retry after a failed announce.
    pub retry: Duration,
    /// Bound on the `stopped` announce sent by [`Announcer::stop`].
    pub stop_timeout: Duration,
}

impl AnnouncerConfig {
    /// Intervals of 1 to 30 minutes, retries from 30 s, numwant 50.
    pub fn new(trackers: Vec<String>, info_hash: Sha1, peer_id: [u8; 20], port: u16) -> Self {
        Self {
            trackers,
            info_hash,
            peer_id,
            port,
            numwant: Some(50),
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(30 * 60),
            retry: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

/// The running announce tasks of one torrent. Dropping it aborts them
/// without a `stopped` announce; [`Self::stop`] sends one first.
#[derive(Debug)]
pub struct Announcer {
    // Dropped first, so the tasks are aborted before they can see `stop`
    // closed and say goodbye.
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Announcer {
    /// Starts announcing. `transfer` is read at every announce; a change of
    /// `left` to 0 triggers the `completed` announce.
    pub fn start(
        client: Arc<Client>,
        config: AnnouncerConfig,
        transfer: watch::Receiver<Transfer>,
        peers: mpsc::Sender<SocketAddr>,
    ) -> Announcer {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let key = crate::tracker::random_u32();
        let config = Arc::new(config);
        for url in config.trackers.clone() {
            tasks.spawn(tracker_task(
                Arc::clone(&client),
                url,
                Arc::clone(&config),
                key,
                transfer.clone(),
                peers.clone(),
                stop_rx.clone(),
            ));
        }
        Announcer { tasks, stop }
    }

    /// Sends `stopped` to every tracker that was announced to (each bounded
    /// by [`AnnouncerConfig::stop_timeout`]) and ends the tasks.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn tracker_task(
    client: Arc<Client>,
    url: String,
    config: Arc<AnnouncerConfig>,
    key: u32,
    mut transfer: watch::Receiver<Transfer>,
    peers: mpsc::Sender<SocketAddr>,
    mut stop: watch::Receiver<bool>,
) {
    let request = |event: Event, t: Transfer| Request {
        info_hash: config.info_hash,
        peer_id: config.peer_id,
        port: config.port,
        uploaded: t.uploaded,
        downloaded: t.downloaded,
        left: t.left,
        event,
        numwant: if event == Event::Stopped {
            Some(0)
        } else {
            config.numwant
        },
        key,
    };
    let mut event = Event::Started;
    let mut started = false;
    // A torrent that starts complete never sends `completed`.
    let mut completed = transfer.borrow().left == 0;
    let mut failures: u32 = 0;
    loop {
        let t = *transfer.borrow_and_update();
        let req = request(event, t);
        let announce = client.announce(&url, &req);
        let result = tokio::select! {
            r = announce => r,
            () = stopped(&mut stop) => break,
        };
        let wait = match result {
            Ok(response) => {
                started = true;
                if event == Event::Completed {
                    completed = true;
                }
                event = Event::None;
                failures = 0;
                tracing::debug!("{url}: {} peers", response.peers.len());
                for peer in response.peers {
                    match peers.try_send(peer) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                response
                    .interval
                    .max(response.min_interval.unwrap_or_default())
                    .clamp(
                        config.min_interval,
                        config.max_interval.max(config.min_interval),
                    )
            }
            Err(e) => {
                tracing::warn!("{e}");
                failures = failures.saturating_add(1);
                config
                    .retry
                    .saturating_mul(1u32 << (failures - 1).min(16))
                    .min(config.max_interval)
            }
        };
        // Never spin, whatever the configuration says.
        let deadline = Instant::now() + wait.max(Duration::from_millis(50));
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = stopped(&mut stop) => {
                    if started {
                        let t = *transfer.borrow();
                        let req = request(Event::Stopped, t);
                        let bye = client.announce(&url, &req);
                        match tokio::time::timeout(config.stop_timeout, bye).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::debug!("{e}"),
                            Err(_) => tracing::debug!("{url}: no answer to `stopped`"),
                        }
                    }
                    return;
                }
                changed = transfer.changed() => {
                    if changed.is_err() {
                        // The engine is gone: nothing more to report.
                        return;
                    }
                    if !completed && started && transfer.borrow().left == 0 {
                        event = Event::Completed;
                        break;
                    }
                }
            }
        }
    }
    // Stopped while an announce was in flight: it may have reached the
    // tracker, so say goodbye all the same.
    let t = *transfer.borrow();
    let _ = tokio::time::timeout(
        config.stop_timeout,
        client.announce(&url, &request(Event::Stopped, t)),
    )
    .await;
}

/// Resolves once `stop` is set or its sender is gone. Returns nothing, so no
/// lock guard of the watch channel outlives it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
