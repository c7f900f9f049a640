//! Client-sticky snapshots (design.md, "Consistency for clients").
//!
//! apt and dnf read several files per update: InRelease, then the Packages
//! files it names (repomd.xml, then primary.xml). If the node switches
//! `current` between those reads, the client gets an index from one
//! snapshot and a release file from another, and fails with "Hash Sum
//! mismatch". So a client that fetches a release file (`Release`,
//! `InRelease`, `repomd.xml`) is pinned, by its IP address and the mount, to
//! the snapshot directory that answered, for a grace window; its other
//! requests under that mount are served from the pinned snapshot while the
//! pin lasts and the directory still exists. Fetching a release file again
//! always goes to the newest snapshot and renews the pin, so the next
//! `apt-get update` sees the new release.
//!
//! Pure bookkeeping: time comes in as `now`, the file system is not
//! touched. A std `Mutex` guards the table because every critical section is
//! a hash-map operation with no `.await` inside (the mini-redis reasoning);
//! the table is bounded, and when full an expired pin, or else the one
//! closest to expiry, makes room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// File names whose fetch pins a client to a snapshot.
pub fn is_release_file(name: &str) -> bool {
    matches!(name, "Release" | "InRelease" | "repomd.xml")
}

#[derive(Debug)]
struct Pin {
    root: PathBuf,
    until: Instant,
}

/// The pin table.
#[derive(Debug)]
pub struct Sticky {
    grace: Duration,
    max: usize,
    pins: Mutex<HashMap<(IpAddr, usize), Pin>>,
}

impl Sticky {
    /// Pins last `grace` (zero turns pinning off); at most `max` at once.
    pub fn new(grace: Duration, max: usize) -> Self {
        Sticky {
            grace,
            max,
            pins: Mutex::new(HashMap::new()),
        }
    }

    /// The snapshot root `client` is pinned to under mount `mount`, if any.
    pub fn get(&self, client: IpAddr, mount: usize, now: Instant) -> Option<PathBuf> {
        let pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        let pin = pins.get(&(client.to_canonical(), mount))?;
        (now < pin.until).then(|| pin.root.clone())
    }

    /// Pins `client` to `root` (a canonical snapshot directory) under `mount`.
    pub fn pin(&self, client: IpAddr, mount: usize, root: PathBuf, now: Instant) {
        if self.grace.is_zero() || self.max == 0 {
            return;
        }
        let key = (client.to_canonical(), mount);
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        if !pins.contains_key(&key) && pins.len() >= self.max {
            pins.retain(|_, p| p.until > now);
            if pins.len() >= self.max {
                let oldest = pins.iter().min_by_key(|(_, p)| p.until).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    pins.remove(&k);
                }
            }
        }
        pins.insert(
            key,
            Pin {
                root,
                until: now + self.grace,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn pins_expire_and_renew() {
        let t0 = Instant::now();
        let s = Sticky::new(Duration::from_secs(600), 16);
        let a = ip("10.0.0.1");
        assert_eq!(s.get(a, 0, t0), None);
        s.pin(a, 0, "/data/snapshots/1".into(), t0);
        assert_eq!(
            s.get(a, 0, t0 + Duration::from_secs(599)),
            Some("/data/snapshots/1".into())
        );
        assert_eq!(s.get(a, 1, t0), None, "per mount");
        assert_eq!(s.get(ip("10.0.0.2"), 0, t0), None, "per client");
        assert_eq!(s.get(a, 0, t0 + Duration::from_secs(600)), None, "expired");
        s.pin(
            a,
            0,
            "/data/snapshots/2".into(),
            t0 + Duration::from_secs(300),
        );
        assert_eq!(
            s.get(a, 0, t0 + Duration::from_secs(800)),
            Some("/data/snapshots/2".into())
        );
        // An IPv4-mapped IPv6 address is the same client.
        assert_eq!(
            s.get(ip("::ffff:10.0.0.1"), 0, t0 + Duration::from_secs(800)),
            Some("/data/snapshots/2".into())
        );
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let s = Sticky::new(Duration::from_secs(10), 3);
        for i in 0..3u8 {
            s.pin(
                IpAddr::from([10, 0, 0, i]),
                0,
                format!("/s/{i}").into(),
                t0 + Duration::from_secs(i.into()),
            );
        }
        // Full: the pin closest to expiry (client .0) makes room.
        s.pin(
            IpAddr::from([10, 0, 0, 9]),
            0,
            "/s/9".into(),
            t0 + Duration::from_secs(5),
        );
        let now = t0 + Duration::from_secs(5);
        assert_eq!(s.get(IpAddr::from([10, 0, 0, 0]), 0, now), None);
        assert!(s.get(IpAddr::from([10, 0, 0, 9]), 0, now).is_some());
        assert!(s.get(IpAddr::from([10, 0, 0, 2]), 0, now).is_some());
        assert_eq!(s.pins.lock().map(|p| p.len()).unwrap_or(0), 3);
        // Off when the grace is zero.
        let off = Sticky::new(Duration::ZERO, 3);
        off.pin(IpAddr::from([10, 0, 0, 1]), 0, "/s".into(), t0);
        assert_eq!(off.get(IpAddr::from([10, 0, 0, 1]), 0, t0), None);
    }

    #[test]
    fn release_files() {
        for n in ["Release", "InRelease", "repomd.xml"] {
            assert!(is_release_file(n));
        }
        for n in [
            "Release.gpg",
            "Packages.xz",
            "repomd.xml.asc",
            "primary.xml.zst",
            "release",
        ] {
            assert!(!is_release_file(n));
        }
    }
}
