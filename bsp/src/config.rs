//! The `[leds]` table of swarmsync.toml.
//!
//! It lives here, not in the binary, so that the node's config loader can
//! embed it as `leds: bsp::config::Leds` and `swarmsync leds` can read the
//! same table on its own (ignoring every other table) without waiting for,
//! or depending on, the rest of the config. Every key has a default, so an
//! empty table, or none at all, means "find the LEDs by yourself".

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;
use crate::board::Board;

/// Which LED backend drives the LEDs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `gpio` when `gpio_lines` are given, else `led-class` when the first of
    /// `names` exists under `led_class_dir`, else `none`.
    #[default]
    Auto,
    /// The Linux LED class (`led_class_dir/<name>/trigger` …).
    LedClass,
    /// GPIO lines through the GPIO character device.
    Gpio,
    /// No LEDs.
    None,
}

impl Backend {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::LedClass => "led-class",
            Backend::Gpio => "gpio",
            Backend::None => "none",
        }
    }
}

/// The `[leds]` table. See docs/leds.md for every key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Leds {
    /// `auto`, `led-class`, `gpio` or `none`.
    pub backend: Backend,
    /// Where the kernel's LED class lives; tests point this at a temporary tree.
    pub led_class_dir: PathBuf,
    /// LED class names for USR0, USR1, … (at most four).
    pub names: Vec<String>,
    /// The GPIO character device of the `gpio` backend.
    pub gpio_chip: PathBuf,
    /// Line offsets on `gpio_chip` for USR0, USR1, … (at most four).
    pub gpio_lines: Vec<u32>,
    /// Whether a GPIO LED lights when its line is low.
    pub gpio_active_low: bool,
    /// `auto` (the hardware watchdog on a BeagleBone Black or MinnowBoard,
    /// none elsewhere), `off`, or the path of a watchdog device.
    pub watchdog: String,
    /// Root under which the board is detected (`proc/device-tree/model`,
    /// `sys/class/dmi/id/board_name` …); tests point this at a temporary tree.
    pub system_root: PathBuf,
}

impl Default for Leds {
    fn default() -> Self {
        Leds {
            backend: Backend::Auto,
            led_class_dir: PathBuf::from("/sys/class/leds"),
            names: (0..health::LED_COUNT)
                .map(|i| format!("beaglebone:green:usr{i}"))
                .collect(),
            gpio_chip: PathBuf::from("/dev/gpiochip0"),
            gpio_lines: Vec::new(),
            gpio_active_low: false,
            watchdog: "auto".to_string(),
            system_root: PathBuf::from("/"),
        }
    }
}

/// A config file seen through its `[leds]` table only.
#[derive(Deserialize)]
struct LedsOnly {
    #[serde(default)]
    leds: Leds,
}

impl Leds {
    /// Reads the `[leds]` table of the TOML file at `path`, ignoring the
    /// other tables; defaults when the table is missing.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses the `[leds]` table of a whole config file's text; `file` only
    /// names it in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, Error> {
        let parsed: LedsOnly = toml::from_str(text).map_err(|err| Error::Config {
            file: file.to_path_buf(),
            message: err.to_string(),
        })?;
        parsed.leds.validate().map_err(|message| Error::Config {
            file: file.to_path_buf(),
            message,
        })?;
        Ok(parsed.leds)
    }

    /// Checks what serde cannot: counts and the watchdog value.
    pub fn validate(&self) -> Result<(), String> {
        if self.names.len() > health::LED_COUNT {
            return Err(format!(
                "leds.names: {} names given, at most {} LEDs are used",
                self.names.len(),
                health::LED_COUNT
            ));
        }
        if let Some(bad) = self
            .names
            .iter()
            .find(|n| n.is_empty() || n.contains('/') || n.as_str() == "." || n.as_str() == "..")
        {
            return Err(format!("leds.names: {bad:?} is not an LED class name"));
        }
        if self.gpio_lines.len() > health::LED_COUNT {
            return Err(format!(
                "leds.gpio_lines: {} lines given, at most {} LEDs are used",
                self.gpio_lines.len(),
                health::LED_COUNT
            ));
        }
        if self.backend == Backend::Gpio && self.gpio_lines.is_empty() {
            return Err("leds.backend is \"gpio\" but leds.gpio_lines is empty".to_string());
        }
        if self.watchdog.is_empty() {
            return Err("leds.watchdog: empty; use \"auto\", \"off\" or a device path".to_string());
        }
        Ok(())
    }

    /// The watchdog device to use on `board`, if any.
    pub fn watchdog_path(&self, board: Board) -> Option<PathBuf> {
        match self.watchdog.as_str() {
            "off" => None,
            "auto" => board.has_watchdog().then(|| PathBuf::from("/dev/watchdog")),
            path => Some(PathBuf::from(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Leds, Error> {
        Leds::from_toml(text, Path::new("swarmsync.toml"))
    }

    #[test]
    fn missing_table_gives_defaults() {
        let leds =
            parse("[node]\ndata_dir = \"/data\"\n[[channel]]\nname = \"x\"\n").expect("parses");
        assert_eq!(leds, Leds::default());
        assert_eq!(leds.names[3], "beaglebone:green:usr3");
    }

    #[test]
    fn design_example_parses() {
        let leds = parse(
            "[leds]\nbackend = \"auto\"\nled_class_dir = \"/sys/class/leds\"\n\n[network]\nlsd = true\n",
        )
        .expect("parses");
        assert_eq!(leds.backend, Backend::Auto);
    }

    #[test]
    fn every_key() {
        let leds = parse(
            r#"[leds]
backend = "gpio"
led_class_dir = "/tmp/leds"
names = ["a", "b"]
gpio_chip = "/dev/gpiochip1"
gpio_lines = [3, 4]
gpio_active_low = true
watchdog = "/dev/watchdog1"
system_root = "/tmp/root"
"#,
        )
        .expect("parses");
        assert_eq!(leds.backend, Backend::Gpio);
        assert_eq!(leds.gpio_lines, [3, 4]);
        assert!(leds.gpio_active_low);
        assert_eq!(
            leds.watchdog_path(Board::Generic),
            Some(PathBuf::from("/dev/watchdog1"))
        );
    }

    #[test]
    fn watchdog_auto_only_on_known_boards() {
        let leds = Leds::default();
        assert_eq!(leds.watchdog_path(Board::Generic), None);
        assert_eq!(
            leds.watchdog_path(Board::BeagleBoneBlack),
            Some(PathBuf::from("/dev/watchdog"))
        );
        let off = Leds {
            watchdog: "off".into(),
            ..Leds::default()
        };
        assert_eq!(off.watchdog_path(Board::MinnowBoard), None);
    }

    #[test]
    fn bad_input_names_the_file_and_key() {
        for (text, want) in [
            ("[leds]\nbackend = \"blinkenlights\"\n", "backend"),
            ("[leds]\nbakend = \"none\"\n", "bakend"),
            ("[leds]\ngpio_lines = [1, 2, 3, 4, 5]\n", "leds.gpio_lines"),
            ("[leds]\nnames = [\"../x\"]\n", "leds.names"),
            ("[leds]\nbackend = \"gpio\"\n", "gpio_lines"),
            ("[leds\n", "swarmsync.toml"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains("swarmsync.toml"), "{err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
