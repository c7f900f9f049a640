//! The Linux LED class backend (/sys/class/leds/<name>/…).
//!
//! Steady and blinking patterns are handed to the kernel: `none` plus
//! `brightness` for on and off, the `timer` trigger with `delay_on` and
//! `delay_off` for blinking, the `heartbeat` trigger for the heartbeat.
//! The kernel then blinks on its own, so a process that dies leaves its last
//! pattern showing (and the watchdog, not a frozen LED, tells the rest).
//! Error codes have no trigger and are drawn in software on ticks, as is any
//! pattern whose trigger this kernel lacks (the `trigger` file lists them).
//!
//! Files are written only when a pattern changes, each with one write(2),
//! in the order the kernel needs: the trigger first, because `delay_on` and
//! `delay_off` only exist while the timer trigger is active.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use health::Pattern;

use crate::soft::Slot;
use crate::{Error, LedBackend};

/// Most sysfs attributes are at most a page, but a `trigger` list on a
/// machine with many CPUs or keyboards can be longer (newer kernels serve it
/// beyond a page); anything past this bound is ignored.
const MAX_ATTR_LEN: u64 = 64 * 1024;

/// One LED of the LED class.
#[derive(Debug)]
struct ClassLed {
    name: String,
    dir: PathBuf,
    /// The `max_brightness` text, written to `brightness` to light the LED.
    max: String,
    timer: bool,
    heartbeat: bool,
    slot: Slot,
    /// Whether the current pattern is drawn in software.
    soft: bool,
}

/// LEDs of the Linux LED class.
#[derive(Debug)]
pub struct LedClass {
    leds: Vec<ClassLed>,
}

/// What an LED shows, read back from the LED class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedState {
    /// The LED class name.
    pub name: String,
    /// The active trigger (`none`, `timer`, `heartbeat`, …).
    pub trigger: String,
    /// The `brightness` value.
    pub brightness: String,
    /// The `max_brightness` value.
    pub max_brightness: String,
    /// `delay_on` and `delay_off` in ms, while the trigger is `timer`.
    pub delays: Option<(String, String)>,
}

impl std::fmt::Display for LedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: trigger {}, brightness {}/{}",
            self.name, self.trigger, self.brightness, self.max_brightness
        )?;
        if let Some((on, off)) = &self.delays {
            write!(f, ", delay_on {on} ms, delay_off {off} ms")?;
        }
        Ok(())
    }
}

impl LedClass {
    /// Opens the LEDs `names` under `dir` (normally /sys/class/leds). Fails
    /// when one is missing or its `trigger` file cannot be read.
    pub fn open(dir: &Path, names: &[String]) -> Result<Self, Error> {
        let mut leds = Vec::with_capacity(names.len());
        for name in names {
            let led_dir = dir.join(name);
            let triggers = read_attr(&led_dir.join("trigger"))?;
            let available: Vec<&str> = triggers
                .split_whitespace()
                .map(|t| t.trim_start_matches('[').trim_end_matches(']'))
                .collect();
            let max = read_attr(&led_dir.join("max_brightness"))?;
            if max.parse::<u32>().map_or(true, |m| m == 0) {
                return Err(Error::LedAttr {
                    path: led_dir.join("max_brightness"),
                    message: format!("{max:?} is not a positive brightness"),
                });
            }
            leds.push(ClassLed {
                name: name.clone(),
                timer: available.contains(&"timer"),
                heartbeat: available.contains(&"heartbeat"),
                dir: led_dir,
                max,
                slot: Slot::default(),
                soft: false,
            });
        }
        Ok(LedClass { leds })
    }

    /// Reads back what the LED `name` under `dir` shows.
    pub fn read_state(dir: &Path, name: &str) -> Result<LedState, Error> {
        let led_dir = dir.join(name);
        let triggers = read_attr(&led_dir.join("trigger"))?;
        // The kernel lists every trigger and brackets the active one.
        let trigger = triggers
            .split_whitespace()
            .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
            .unwrap_or(triggers.as_str())
            .to_string();
        let delays = if trigger == "timer" {
            Some((
                read_attr(&led_dir.join("delay_on"))?,
                read_attr(&led_dir.join("delay_off"))?,
            ))
        } else {
            None
        };
        Ok(LedState {
            name: name.to_string(),
            trigger,
            brightness: read_attr(&led_dir.join("brightness"))?,
            max_brightness: read_attr(&led_dir.join("max_brightness"))?,
            delays,
        })
    }

    /// Puts an LED back the way [`LedClass::read_state`] found it (so that
    /// `swarmsync leds test` leaves the board's own triggers in place).
    pub fn restore(dir: &Path, state: &LedState) -> Result<(), Error> {
        let led_dir = dir.join(&state.name);
        write_attr(&led_dir.join("trigger"), &state.trigger)?;
        match (state.trigger.as_str(), &state.delays) {
            ("timer", Some((on, off))) => {
                write_attr(&led_dir.join("delay_on"), on)?;
                write_attr(&led_dir.join("delay_off"), off)
            }
            ("none", _) => write_attr(&led_dir.join("brightness"), &state.brightness),
            _ => Ok(()),
        }
    }
}

impl ClassLed {
    fn write(&self, attr: &str, value: &str) -> Result<(), Error> {
        write_attr(&self.dir.join(attr), value)
    }

    /// Hands a new pattern to the kernel, or prepares to draw it.
    fn start(&mut self, pattern: Pattern) -> Result<(), Error> {
        self.soft = false;
        match pattern {
            Pattern::Off => {
                self.write("trigger", "none")?;
                self.write("brightness", "0")
            }
            Pattern::On => {
                self.write("trigger", "none")?;
                self.write("brightness", &self.max)
            }
            Pattern::Blink { on_ms, off_ms } if self.timer => {
                self.write("trigger", "timer")?;
                self.write("delay_on", &on_ms.to_string())?;
                self.write("delay_off", &off_ms.to_string())
            }
            Pattern::Heartbeat if self.heartbeat => self.write("trigger", "heartbeat"),
            _ => {
                self.soft = true;
                self.write("trigger", "none")
            }
        }
    }

    fn show(&mut self, pattern: Pattern, now_ms: u64) -> Result<(), Error> {
        if self.slot.update(pattern, now_ms)
            && let Err(err) = self.start(pattern)
        {
            // Try again from the start on the next tick.
            self.slot.forget();
            return Err(err);
        }
        if self.soft
            && let Some(level) = self.slot.level_change(now_ms)
        {
            let value = if level { self.max.as_str() } else { "0" };
            if let Err(err) = self.write("brightness", value) {
                self.slot.forget();
                return Err(err);
            }
        }
        Ok(())
    }
}

impl LedBackend for LedClass {
    fn kind(&self) -> &'static str {
        "led-class"
    }

    fn names(&self) -> Vec<String> {
        self.leds.iter().map(|led| led.name.clone()).collect()
    }

    fn show(&mut self, patterns: &[Pattern], now_ms: u64) -> Result<(), Error> {
        let mut first_err = None;
        for (led, &pattern) in self.leds.iter_mut().zip(patterns) {
            // One broken LED must not keep the others dark.
            if let Err(err) = led.show(pattern, now_ms) {
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Reads a sysfs attribute, without its trailing newline.
fn read_attr(path: &Path) -> Result<String, Error> {
    let read = || -> std::io::Result<String> {
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_ATTR_LEN)
            .read_to_string(&mut text)?;
        Ok(text.trim_end().to_string())
    };
    read().map_err(|source| Error::LedRead {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a sysfs attribute in one write(2). The file must exist: creating
/// one would hide a missing trigger or a wrong `led_class_dir`.
fn write_attr(path: &Path, value: &str) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
        file.write_all(value.as_bytes())
    };
    write().map_err(|source| Error::LedWrite {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
