//! LED health patterns for a node, as a pure tick-driven state machine.
//!
//! Someone walking past a BeagleBone Black in a cupboard must know in two
//! seconds whether the mirror is healthy, syncing, stale or broken, with no
//! screen and no network. Four LEDs carry that, each with one job, so that a
//! single glance reads like a dashboard (the table a person reads is
//! docs/leds.md):
//!
//! | LED  | job     | healthy     | otherwise |
//! |------|---------|-------------|-----------|
//! | USR0 | alive   | heartbeat   | on while booting; fast blink on *every* LED = fatal |
//! | USR1 | network | on (peers)  | off = no link; slow blink = link but no peers |
//! | USR2 | release | on (fresh)  | fast blink = syncing; short flash = stale; code 2 = expired; code 3 = rejected |
//! | USR3 | disk    | off / flicker while serving | code 1 = disk error |
//!
//! USR0 keeps the BeagleBone habit (heartbeat = alive) and the numbering is
//! the board's; boards with other LEDs map theirs in bsp.
//!
//! The contract, as in quinn-proto: no IO and no clock. The node feeds
//! [`Event`]s through [`Health::handle`] as they happen and the current time
//! through [`Health::tick`] (milliseconds from any fixed origin); it then
//! reads [`Health::patterns`] and hands them to an LED backend, and asks
//! [`Health::watchdog_ok`] before pinging the hardware watchdog. Nothing
//! inside allocates, reads the clock or panics, so the same code runs on the
//! host under exhaustive tests and on the board.
//!
//! Rules the tests hold for every event sequence up to a bounded length:
//! every state has exactly one valid pattern per LED; once [`Event::Fatal`]
//! is seen, every LED shows the fatal pattern and the watchdog is starved,
//! whatever comes after (a fatal node is restarted, by the service manager or
//! by the watchdog, not talked back to health); any other state returns to
//! the healthy patterns once the conditions are healthy again.
#![no_std]

#[cfg(test)]
extern crate std;

mod pattern;
#[cfg(test)]
mod tests;

use core::fmt;

pub use pattern::{CODE_MAX, CODE_PAUSE_MS, CODE_PULSE_MS, Pattern};

/// Number of LEDs the patterns are made for.
pub const LED_COUNT: usize = 4;

/// How long USR3 flickers after a request was served, in milliseconds.
pub const SERVE_WINDOW_MS: u64 = 1000;

/// Every LED blinks this way once the node hit a fatal error.
pub const FATAL: Pattern = Pattern::Blink {
    on_ms: 100,
    off_ms: 100,
};
/// USR1: a link, but no peer yet.
pub const NO_PEERS: Pattern = Pattern::Blink {
    on_ms: 1000,
    off_ms: 1000,
};
/// USR2: a sync is running.
pub const SYNCING: Pattern = Pattern::Blink {
    on_ms: 250,
    off_ms: 250,
};
/// USR2: the installed release is getting old (no newer one arrived in time).
pub const STALE: Pattern = Pattern::Blink {
    on_ms: 100,
    off_ms: 900,
};
/// USR3: requests are being served.
pub const SERVING: Pattern = Pattern::Blink {
    on_ms: 50,
    off_ms: 50,
};
/// USR3: a disk error (the store could not read, write or fsync).
pub const CODE_DISK: Pattern = Pattern::Code(1);
/// USR2: the installed release expired and no valid newer one arrived.
pub const CODE_EXPIRED: Pattern = Pattern::Code(2);
/// USR2: the last release offered was rejected (bad signature, rollback).
pub const CODE_REJECTED: Pattern = Pattern::Code(3);

/// One of the four LEDs, named as on the BeagleBone Black.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Led {
    /// Alive: heartbeat.
    Usr0,
    /// Network: link and peers.
    Usr1,
    /// Release: freshness and sync.
    Usr2,
    /// Disk and serving.
    Usr3,
}

impl Led {
    /// All LEDs, in index order.
    pub const ALL: [Led; LED_COUNT] = [Led::Usr0, Led::Usr1, Led::Usr2, Led::Usr3];

    /// Index into [`Health::patterns`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// `usr0` … `usr3`.
    pub fn name(self) -> &'static str {
        ["usr0", "usr1", "usr2", "usr3"][self.index()]
    }

    /// What the LED tells: `alive`, `network`, `release`, `disk`.
    pub fn role(self) -> &'static str {
        ["alive", "network", "release", "disk"][self.index()]
    }
}

/// Something that happened to the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The node finished starting (config read, store opened).
    Booted,
    /// A network interface has a link and an address.
    LinkUp,
    /// No usable network link any more.
    LinkDown,
    /// The number of peers currently known (0 is allowed).
    PeersFound(u32),
    /// The installed release is current.
    ReleaseFresh,
    /// The installed release is valid but no newer one came when expected.
    ReleaseStale,
    /// The installed release expired.
    ReleaseExpired,
    /// A release was offered and rejected.
    ReleaseRejected,
    /// A sync is running; `done` of `total` bytes are verified.
    SyncProgress {
        /// Bytes verified so far.
        done: u64,
        /// Bytes in the sync.
        total: u64,
    },
    /// The running sync finished (or was abandoned).
    SyncDone,
    /// A request was served over HTTP.
    Serving,
    /// The store hit an IO error.
    DiskError,
    /// The store works again.
    DiskOk,
    /// The node cannot go on.
    Fatal,
}

/// The state in one phrase, for status pages and logs. `Display` gives the
/// phrase (`syncing 42%`); [`Summary::name`] gives it without numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Summary {
    /// Not booted yet.
    Booting,
    /// Hit a fatal error.
    Fatal,
    /// The store hit an IO error.
    DiskError,
    /// The last release offered was rejected.
    ReleaseRejected,
    /// The installed release expired.
    ReleaseExpired,
    /// No network link.
    Offline,
    /// A sync is running.
    Syncing {
        /// Percent done, 0 to 100.
        percent: u8,
    },
    /// The installed release is stale.
    Stale,
    /// No release heard of yet.
    WaitingForRelease,
    /// All is well.
    Healthy,
}

impl Summary {
    /// The state's name: `booting`, `fatal`, `disk error`, `release rejected`,
    /// `release expired`, `offline`, `syncing`, `stale`, `waiting for release`,
    /// `healthy`.
    pub fn name(self) -> &'static str {
        match self {
            Summary::Booting => "booting",
            Summary::Fatal => "fatal",
            Summary::DiskError => "disk error",
            Summary::ReleaseRejected => "release rejected",
            Summary::ReleaseExpired => "release expired",
            Summary::Offline => "offline",
            Summary::Syncing { .. } => "syncing",
            Summary::Stale => "stale",
            Summary::WaitingForRelease => "waiting for release",
            Summary::Healthy => "healthy",
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Summary::Syncing { percent } => write!(f, "syncing {percent}%"),
            other => f.write_str(other.name()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Unknown,
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Release {
    None,
    Fresh,
    Stale,
    Expired,
    Rejected,
}

/// The health state machine. See the crate documentation for the call order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    now_ms: u64,
    booted: bool,
    fatal: bool,
    link: Link,
    peers: u32,
    release: Release,
    /// `(done, total)` while a sync runs.
    sync: Option<(u64, u64)>,
    last_served_ms: Option<u64>,
    disk_error: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A node that has just started: booting, nothing known yet.
    pub const fn new() -> Self {
        Health {
            now_ms: 0,
            booted: false,
            fatal: false,
            link: Link::Unknown,
            peers: 0,
            release: Release::None,
            sync: None,
            last_served_ms: None,
            disk_error: false,
        }
    }

    /// Takes in one event. Its effect on the patterns is immediate.
    pub fn handle(&mut self, event: Event) {
        if self.fatal {
            return;
        }
        match event {
            Event::Booted => self.booted = true,
            Event::LinkUp => self.link = Link::Up,
            Event::LinkDown => self.link = Link::Down,
            Event::PeersFound(n) => self.peers = n,
            Event::ReleaseFresh => self.release = Release::Fresh,
            Event::ReleaseStale => self.release = Release::Stale,
            Event::ReleaseExpired => self.release = Release::Expired,
            Event::ReleaseRejected => self.release = Release::Rejected,
            Event::SyncProgress { done, total } => self.sync = Some((done, total)),
            Event::SyncDone => self.sync = None,
            Event::Serving => self.last_served_ms = Some(self.now_ms),
            Event::DiskError => self.disk_error = true,
            Event::DiskOk => self.disk_error = false,
            Event::Fatal => self.fatal = true,
        }
    }

    /// Advances the clock. Time never goes backwards: an earlier `now_ms`
    /// than the last one is ignored.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// The time of the last tick.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Whether the hardware watchdog may be pinged: everything but a fatal
    /// error. A node that is offline or stale is still doing its job (serving
    /// what it has), and a reset would not bring the origin back.
    pub fn watchdog_ok(&self) -> bool {
        !self.fatal
    }

    /// The pattern of one LED.
    pub fn pattern(&self, led: Led) -> Pattern {
        self.patterns()[led.index()]
    }

    /// The pattern of every LED, in [`Led::ALL`] order.
    pub fn patterns(&self) -> [Pattern; LED_COUNT] {
        if self.fatal {
            return [FATAL; LED_COUNT];
        }
        let alive = if self.booted {
            Pattern::Heartbeat
        } else {
            Pattern::On
        };
        let network = match (self.link, self.peers) {
            (Link::Unknown | Link::Down, _) => Pattern::Off,
            (Link::Up, 0) => NO_PEERS,
            (Link::Up, _) => Pattern::On,
        };
        let release = match (self.release, self.sync) {
            (Release::Rejected, _) => CODE_REJECTED,
            (Release::Expired, _) => CODE_EXPIRED,
            (_, Some(_)) => SYNCING,
            (Release::Stale, None) => STALE,
            (Release::Fresh, None) => Pattern::On,
            (Release::None, None) => Pattern::Off,
        };
        let disk = if self.disk_error {
            CODE_DISK
        } else if self.serving() {
            SERVING
        } else {
            Pattern::Off
        };
        [alive, network, release, disk]
    }

    fn serving(&self) -> bool {
        self.last_served_ms
            .is_some_and(|at| self.now_ms.saturating_sub(at) < SERVE_WINDOW_MS)
    }

    /// The state in one phrase; the most urgent condition wins.
    pub fn summary(&self) -> Summary {
        if self.fatal {
            return Summary::Fatal;
        }
        if !self.booted {
            return Summary::Booting;
        }
        if self.disk_error {
            return Summary::DiskError;
        }
        match self.release {
            Release::Rejected => return Summary::ReleaseRejected,
            Release::Expired => return Summary::ReleaseExpired,
            _ => {}
        }
        if self.link != Link::Up {
            return Summary::Offline;
        }
        if let Some((done, total)) = self.sync {
            let percent = if total == 0 {
                0
            } else {
                u128::from(done.min(total)) * 100 / u128::from(total)
            };
            return Summary::Syncing {
                percent: u8::try_from(percent).unwrap_or(100),
            };
        }
        match self.release {
            Release::Stale => Summary::Stale,
            Release::None => Summary::WaitingForRelease,
            _ => Summary::Healthy,
        }
    }
}
