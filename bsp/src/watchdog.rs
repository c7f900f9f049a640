//! The hardware watchdog (/dev/watchdog).
//!
//! Opening the device arms it: from then on the board resets unless it is
//! written to within the driver's timeout (60 s for most, including the
//! AM335x's and softdog's defaults). Any write is a ping; writing `V` and
//! then closing is the "magic close" that disarms it, done only on a clean
//! exit, so a crash or a hang still ends in a reset. [`crate::HealthDriver`]
//! pings only while the health state machine allows it, so a fatal node is
//! reset too. No ioctl is needed, which keeps this crate free of `unsafe`.
//!
//! Test-only: with the environment variable `SWARMSYNC_TEST_STALL_WATCHDOG=1`
//! pings are skipped, which is how the qemu test proves a stalled node gets
//! the board reset. Never set it on a real node.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

/// The test-only switch that stops pinging (see the module documentation).
pub const STALL_ENV: &str = "SWARMSYNC_TEST_STALL_WATCHDOG";

/// An armed hardware watchdog.
#[derive(Debug)]
pub struct Watchdog {
    file: File,
    path: PathBuf,
    stalled: bool,
}

impl Watchdog {
    /// Opens (and so arms) the watchdog device at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| Error::Watchdog {
                path: path.to_path_buf(),
                source,
            })?;
        let stalled = std::env::var_os(STALL_ENV).is_some_and(|v| v == "1");
        Ok(Watchdog {
            file,
            path: path.to_path_buf(),
            stalled,
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the test-only stall switch is on.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Keeps the board alive for another timeout period.
    pub fn ping(&mut self) -> Result<(), Error> {
        if self.stalled {
            return Ok(());
        }
        // Anything but 'V' is a plain keep-alive.
        self.file
            .write_all(b"\n")
            .map_err(|source| Error::Watchdog {
                path: self.path.clone(),
                source,
            })
    }

    /// Disarms the watchdog (magic close) on a clean exit. A kernel built
    /// with `nowayout` keeps it armed anyway.
    pub fn close(mut self) -> Result<(), Error> {
        self.file.write_all(b"V").map_err(|source| Error::Watchdog {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_then_magic_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").expect("create");
        let mut dog = Watchdog::open(&path).expect("open");
        assert_eq!(dog.path(), path);
        if !dog.is_stalled() {
            dog.ping().expect("ping");
            dog.ping().expect("ping");
            dog.close().expect("close");
            assert_eq!(std::fs::read(&path).expect("read"), b"\n\nV");
        }
    }

    #[test]
    fn missing_device_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Watchdog::open(&dir.path().join("watchdog0"))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("watchdog0"), "{err}");
    }
}
