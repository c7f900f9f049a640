//! Board support: board detection, LED backends, hardware watchdog.
//!
//! The health state machine (crate `health`) says what each LED should
//! show; this crate makes real LEDs show it. Layers, bottom up:
//!
//! - [`board`]: which board this is (device tree, DMI), for defaults.
//! - [`LedBackend`]: one trait over the ways to light an LED, chosen by the
//!   `[leds]` table ([`config::Leds`]) in [`open_leds`]: the Linux LED class
//!   ([`LedClass`], the kernel blinks), GPIO lines through the character
//!   device behind embedded-hal's `OutputPin` ([`gpio`], [`PinLeds`] blinks
//!   in software), or none.
//! - [`Watchdog`]: /dev/watchdog, pinged while the node is healthy.
//! - [`net`]: whether there is a network link, for USR1.
//! - [`HealthDriver`]: all of the above behind `event` and `tick`, for the
//!   node daemon.
//!
//! Every path (the LED class dir, the GPIO chip, the watchdog device, the
//! root used for board detection) comes from the config, so the tests run
//! against temporary trees and the qemu tests against a guest's real kernel.
//! - [`memory`]: the C allocator's settings for a long-running node.
//!
//! The only `unsafe` is in [`memory`] (two glibc calls); sysfs files are
//! plain reads and writes, the watchdog needs only write(2), and gpiocdev
//! wraps the ioctls.

pub mod board;
pub mod config;
mod driver;
pub mod gpio;
mod led_class;
pub mod memory;
pub mod net;
mod soft;
pub mod watchdog;

use std::path::PathBuf;

pub use board::Board;
pub use driver::HealthDriver;
pub use health;
pub use led_class::{LedClass, LedState};
pub use soft::PinLeds;
pub use watchdog::Watchdog;

use config::Backend;
use health::Pattern;

/// Errors of board support.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("failed to read config {}: {source}", file.display())]
    ConfigRead {
        /// The config file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `[leds]` table is malformed.
    #[error("bad config {}: {message}", file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// An LED class attribute could not be read (the LED does not exist, or
    /// `led_class_dir` is wrong).
    #[error("failed to read LED attribute {}: {source}\nis leds.led_class_dir right, and are the LED names?", path.display())]
    LedRead {
        /// The attribute file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An LED class attribute could not be written.
    #[error("failed to write {value:?} to LED attribute {}: {source}", path.display())]
    LedWrite {
        /// The attribute file.
        path: PathBuf,
        /// The value.
        value: String,
        /// Why.
        source: std::io::Error,
    },
    /// An LED class attribute holds something unexpected.
    #[error("bad LED attribute {}: {message}", path.display())]
    LedAttr {
        /// The attribute file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A GPIO line could not be requested or read.
    #[error("GPIO line {line} of {}: {source}", chip.display())]
    Gpio {
        /// The GPIO character device.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// Why.
        source: gpiocdev_embedded_hal::Error,
    },
    /// An output pin refused a level.
    #[error("failed to set LED {led}: {message}")]
    Pin {
        /// The LED's name.
        led: String,
        /// The HAL's error kind.
        message: String,
    },
    /// The watchdog device could not be opened or written.
    #[error("watchdog {}: {source}", path.display())]
    Watchdog {
        /// The device.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A way to light the LEDs.
pub trait LedBackend: Send {
    /// `led-class`, `gpio` or `none`.
    fn kind(&self) -> &'static str;

    /// The LEDs' names, in pattern order (USR0 first); at most
    /// [`health::LED_COUNT`].
    fn names(&self) -> Vec<String>;

    /// Shows `patterns[i]` on LED `i` (extra patterns are ignored). Called on
    /// every tick with the time in ms from a fixed origin; writes only what
    /// changed. After an error the next call tries again.
    fn show(&mut self, patterns: &[Pattern], now_ms: u64) -> Result<(), Error>;
}

/// No LEDs at all.
#[derive(Debug, Default)]
pub struct NoLeds;

impl LedBackend for NoLeds {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn show(&mut self, _patterns: &[Pattern], _now_ms: u64) -> Result<(), Error> {
        Ok(())
    }
}

/// The backend the config selects (see [`config::Backend::Auto`] for how
/// `auto` chooses).
pub fn open_leds(config: &config::Leds) -> Result<Box<dyn LedBackend>, Error> {
    Ok(match resolve_backend(config) {
        Backend::LedClass => Box::new(LedClass::open(&config.led_class_dir, &config.names)?),
        Backend::Gpio => Box::new(gpio::open(
            &config.gpio_chip,
            &config.gpio_lines,
            config.gpio_active_low,
        )?),
        Backend::Auto | Backend::None => Box::new(NoLeds),
    })
}

/// What `auto` means on this system: `gpio` when lines are configured,
/// `led-class` when the first LED exists, `none` otherwise.
pub fn resolve_backend(config: &config::Leds) -> Backend {
    match config.backend {
        Backend::Auto if !config.gpio_lines.is_empty() => Backend::Gpio,
        Backend::Auto => match config.names.first() {
            Some(first) if config.led_class_dir.join(first).is_dir() => Backend::LedClass,
            _ => Backend::None,
        },
        chosen => chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_the_led_class_when_the_leds_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config::Leds {
            led_class_dir: dir.path().to_path_buf(),
            ..config::Leds::default()
        };
        assert_eq!(resolve_backend(&config), Backend::None);
        for name in &config.names {
            let led = dir.path().join(name);
            std::fs::create_dir(&led).expect("mkdir");
            std::fs::write(led.join("trigger"), "[none] timer heartbeat").expect("write");
            std::fs::write(led.join("max_brightness"), "1").expect("write");
        }
        assert_eq!(resolve_backend(&config), Backend::LedClass);
        let leds = open_leds(&config).expect("open");
        assert_eq!(leds.kind(), "led-class");
        assert_eq!(leds.names().len(), 4);
        config.gpio_lines = vec![1];
        assert_eq!(resolve_backend(&config), Backend::Gpio);
        config.backend = Backend::None;
        assert_eq!(open_leds(&config).expect("open").kind(), "none");
    }

    #[test]
    fn gpio_without_a_chip_names_chip_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config::Leds {
            backend: Backend::Gpio,
            gpio_chip: dir.path().join("gpiochip7"),
            gpio_lines: vec![5],
            ..config::Leds::default()
        };
        let Err(err) = open_leds(&config) else {
            panic!("opened a missing chip");
        };
        let err = err.to_string();
        assert!(err.contains("gpiochip7") && err.contains("line 5"), "{err}");
    }
}
