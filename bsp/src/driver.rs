//! The node's side of health: events in, LEDs and watchdog out.
//!
//! [`HealthDriver`] owns the pure state machine, an LED backend and the
//! watchdog, and is the only thing the daemon talks to: it calls
//! [`HealthDriver::event`] when something happens and [`HealthDriver::tick`]
//! every [`HealthDriver::TICK`] (error codes and GPIO LEDs are drawn on
//! ticks; a tick is also when the watchdog is pinged, so a stuck event loop
//! stops the pings). LED and watchdog failures are returned for logging, and
//! never stop the rest: a broken LED must not starve the watchdog, and a
//! failed ping must not freeze the LEDs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use health::{Event, Health, Pattern};

use crate::board::Board;
use crate::config;
use crate::watchdog::Watchdog;
use crate::{Error, LedBackend, open_leds};

/// The health state machine wired to LEDs and a watchdog.
pub struct HealthDriver {
    health: Health,
    leds: Box<dyn LedBackend>,
    watchdog: Option<Watchdog>,
    started: Instant,
    board: Board,
    system_root: PathBuf,
    link: Option<bool>,
    /// The last error returned, so a broken LED is reported once, not on
    /// every tick (the log lives on the same eMMC the store does).
    last_error: Option<String>,
}

impl std::fmt::Debug for HealthDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthDriver")
            .field("health", &self.health)
            .field("leds", &self.leds.kind())
            .field("watchdog", &self.watchdog)
            .field("board", &self.board)
            .finish()
    }
}

impl HealthDriver {
    /// How often [`HealthDriver::tick`] should be called.
    pub const TICK: Duration = Duration::from_millis(50);

    /// Detects the board, opens the configured LEDs and arms the watchdog
    /// (when the config and board call for one).
    pub fn open(config: &config::Leds) -> Result<Self, Error> {
        let board = Board::detect(&config.system_root);
        let leds = open_leds(config)?;
        let watchdog = match config.watchdog_path(board) {
            Some(path) => Some(Watchdog::open(&path)?),
            None => None,
        };
        let mut driver = HealthDriver::new(leds, watchdog);
        driver.board = board;
        driver.system_root.clone_from(&config.system_root);
        Ok(driver)
    }

    /// A driver over the given parts (tests, or a daemon with its own choice).
    pub fn new(leds: Box<dyn LedBackend>, watchdog: Option<Watchdog>) -> Self {
        HealthDriver {
            health: Health::new(),
            leds,
            watchdog,
            started: Instant::now(),
            board: Board::Generic,
            system_root: PathBuf::from("/"),
            link: None,
            last_error: None,
        }
    }

    /// The board found by [`HealthDriver::open`].
    pub fn board(&self) -> Board {
        self.board
    }

    /// The armed watchdog, if any.
    pub fn watchdog(&self) -> Option<&Watchdog> {
        self.watchdog.as_ref()
    }

    /// The state machine, for status pages.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The LED backend's name: `led-class`, `gpio` or `none`.
    pub fn backend(&self) -> &'static str {
        self.leds.kind()
    }

    /// Takes in an event and shows its effect at once.
    ///
    /// Errors (here and from [`HealthDriver::tick`]) are for logging; the
    /// same error repeated on every tick is returned once.
    pub fn event(&mut self, event: Event) -> Result<(), Error> {
        self.health.handle(event);
        let shown = self
            .leds
            .show(&self.health.patterns(), self.health.now_ms());
        self.report(shown)
    }

    /// Looks at the network link (see [`crate::net`]) below the config's
    /// `system_root` and sends [`Event::LinkUp`] or [`Event::LinkDown`] when
    /// it changed since the last call. Cheap (a few sysfs reads): call it
    /// about once a second. Returns whether the link is up.
    pub fn poll_link(&mut self) -> Result<bool, Error> {
        let up = crate::net::link_up(&self.system_root);
        if self.link != Some(up) {
            self.link = Some(up);
            self.event(if up { Event::LinkUp } else { Event::LinkDown })?;
        }
        Ok(up)
    }

    /// Advances to the current time: draws software patterns and pings the
    /// watchdog while health allows.
    pub fn tick(&mut self) -> Result<(), Error> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.tick_at(now)
    }

    /// [`HealthDriver::tick`] at a given time, in ms since the driver started.
    pub fn tick_at(&mut self, now_ms: u64) -> Result<(), Error> {
        self.health.tick(now_ms);
        let ping = match &mut self.watchdog {
            Some(dog) if self.health.watchdog_ok() => dog.ping(),
            _ => Ok(()),
        };
        let shown = self
            .leds
            .show(&self.health.patterns(), self.health.now_ms());
        self.report(shown.and(ping))
    }

    /// Passes an error on only when it differs from the last one; a success
    /// in between re-arms it.
    fn report(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Ok(()) => {
                self.last_error = None;
                Ok(())
            }
            Err(err) => {
                let text = err.to_string();
                if self.last_error.as_deref() == Some(text.as_str()) {
                    return Ok(());
                }
                self.last_error = Some(text);
                Err(err)
            }
        }
    }

    /// `(LED name, pattern)` for every LED, e.g.
    /// `("beaglebone:green:usr0", "heartbeat")`.
    pub fn led_states(&self) -> Vec<(String, String)> {
        let patterns = self.health.patterns();
        self.leds
            .names()
            .into_iter()
            .zip(patterns.iter().map(Pattern::to_string))
            .collect()
    }

    /// The state in one phrase (`healthy`, `syncing 42%`, …).
    pub fn summary(&self) -> String {
        self.health.summary().to_string()
    }

    /// Clean exit: disarms the watchdog (magic close). The LEDs keep their
    /// last pattern.
    pub fn close(self) -> Result<(), Error> {
        match self.watchdog {
            Some(dog) => dog.close(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the patterns shown.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<Pattern>>>>);

    impl LedBackend for Recorder {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn names(&self) -> Vec<String> {
            (0..4).map(|i| format!("led{i}")).collect()
        }
        fn show(&mut self, patterns: &[Pattern], _now_ms: u64) -> Result<(), Error> {
            self.0.lock().expect("lock").push(patterns.to_vec());
            Ok(())
        }
    }

    fn watchdog_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").expect("create");
        (dir, path)
    }

    #[test]
    fn events_show_at_once_and_ticks_ping_until_fatal() {
        let (_dir, path) = watchdog_file();
        let rec = Recorder::default();
        let dog = Watchdog::open(&path).expect("open");
        let stalled = dog.is_stalled();
        let mut driver = HealthDriver::new(Box::new(rec.clone()), Some(dog));
        driver.event(Event::Booted).expect("event");
        driver.event(Event::LinkDown).expect("event");
        let last = rec.0.lock().expect("lock").last().cloned().expect("shown");
        assert_eq!(last[0], Pattern::Heartbeat);
        assert_eq!(last[1], Pattern::Off);
        assert_eq!(driver.summary(), "offline");
        driver.tick_at(50).expect("tick");
        driver.tick_at(100).expect("tick");
        driver.event(Event::Fatal).expect("event");
        driver.tick_at(150).expect("tick");
        assert_eq!(
            driver.led_states()[2],
            ("led2".to_string(), "blink 100/100".to_string())
        );
        let pings = std::fs::read(&path).expect("read");
        if !stalled {
            assert_eq!(pings, b"\n\n", "no ping once fatal");
        }
        driver.close().expect("close");
        if !stalled {
            assert_eq!(std::fs::read(&path).expect("read"), b"\n\nV");
        }
    }

    /// Fails every `show`.
    struct Broken;

    impl LedBackend for Broken {
        fn kind(&self) -> &'static str {
            "broken"
        }
        fn names(&self) -> Vec<String> {
            vec!["led0".to_string()]
        }
        fn show(&mut self, _patterns: &[Pattern], _now_ms: u64) -> Result<(), Error> {
            Err(Error::Pin {
                led: "led0".to_string(),
                message: "Other".to_string(),
            })
        }
    }

    #[test]
    fn a_repeated_error_is_returned_once() {
        let mut driver = HealthDriver::new(Box::new(Broken), None);
        assert!(driver.event(Event::Booted).is_err());
        for t in 1..10 {
            assert!(driver.tick_at(t * 50).is_ok(), "same error again");
        }
        assert_eq!(driver.summary(), "offline", "health goes on regardless");
    }

    #[test]
    fn poll_link_sends_changes() {
        let root = tempfile::tempdir().expect("tempdir");
        let config = config::Leds {
            backend: config::Backend::None,
            system_root: root.path().to_path_buf(),
            ..config::Leds::default()
        };
        let mut driver = HealthDriver::open(&config).expect("open");
        driver.event(Event::Booted).expect("event");
        driver.event(Event::LinkUp).expect("event");
        assert!(!driver.poll_link().expect("poll"));
        assert_eq!(driver.health().pattern(health::Led::Usr1), Pattern::Off);
        let eth0 = root.path().join("sys/class/net/eth0");
        std::fs::create_dir_all(&eth0).expect("mkdir");
        std::fs::write(eth0.join("operstate"), "up\n").expect("write");
        assert!(driver.poll_link().expect("poll"));
        assert_eq!(driver.health().pattern(health::Led::Usr1), health::NO_PEERS);
    }

    #[test]
    fn open_with_no_leds_and_no_watchdog() {
        let root = tempfile::tempdir().expect("tempdir");
        let config = config::Leds {
            led_class_dir: root.path().join("leds"),
            system_root: root.path().to_path_buf(),
            ..config::Leds::default()
        };
        let mut driver = HealthDriver::open(&config).expect("open");
        assert_eq!(driver.backend(), "none");
        assert_eq!(driver.board(), Board::Generic);
        driver.event(Event::Booted).expect("event");
        driver.tick().expect("tick");
        assert!(driver.led_states().is_empty());
        assert_eq!(driver.summary(), "offline");
        driver.close().expect("close");
    }
}
