//! LEDs on GPIO lines, through the GPIO character device.
//!
//! For boards whose LEDs are not in the kernel's LED class (the MinnowBoard)
//! and for external LEDs named in the config. The lines are requested once,
//! with the consumer name `swarmsync`, and held for the life of the process;
//! patterns are drawn in software by [`crate::PinLeds`] through
//! embedded-hal's `OutputPin`, so the same code drives any HAL's pins. The
//! kernel resets the lines when the process exits, so the LEDs go dark with
//! it: a dead node is visible.

use std::path::Path;

use gpiocdev::line::Value;
use gpiocdev::request::Request;
use gpiocdev_embedded_hal::OutputPin;

use crate::{Error, PinLeds};

/// Consumer name shown by `gpioinfo` for the requested lines.
pub const CONSUMER: &str = "swarmsync";

/// Requests `lines` of `chip` as outputs, low (dark), one pin per LED.
pub fn open(chip: &Path, lines: &[u32], active_low: bool) -> Result<PinLeds<OutputPin>, Error> {
    let mut pins = Vec::with_capacity(lines.len());
    for &line in lines {
        let pin = request(chip, line, active_low).map_err(|source| Error::Gpio {
            chip: chip.to_path_buf(),
            line,
            source,
        })?;
        pins.push((format!("{}:{line}", chip.display()), pin));
    }
    Ok(PinLeds::new("gpio", pins))
}

fn request(
    chip: &Path,
    line: u32,
    active_low: bool,
) -> Result<OutputPin, gpiocdev_embedded_hal::Error> {
    let mut builder = Request::builder();
    builder
        .on_chip(chip)
        .with_consumer(CONSUMER)
        .with_line(line)
        .as_output(Value::Inactive);
    if active_low {
        builder.as_active_low();
    }
    // Inactive: dark until the first pattern arrives.
    OutputPin::try_from(builder.request()?)
}

/// One line as the kernel reports it, for `swarmsync leds show`.
pub fn describe(chip: &Path, line: u32) -> Result<String, Error> {
    let info = gpiocdev::Chip::from_path(chip)
        .and_then(|c| c.line_info(line))
        .map_err(|source| Error::Gpio {
            chip: chip.to_path_buf(),
            line,
            source: source.into(),
        })?;
    let consumer = if info.used {
        format!("used by {:?}", info.consumer)
    } else {
        "unused".to_string()
    };
    Ok(format!(
        "{}:{line}: {:?}, {consumer}{}",
        chip.display(),
        info.direction,
        if info.active_low { ", active low" } else { "" }
    ))
}
