//! Software blinking: patterns drawn by toggling a level on ticks.
//!
//! Used for every pattern a GPIO line shows, and for the patterns the
//! kernel's LED triggers cannot draw (error codes; timer or heartbeat when
//! the kernel lacks those triggers). Each LED's pattern restarts when it
//! changes, so an error code always begins with its first pulse.

use embedded_hal::digital::OutputPin;
use health::Pattern;

use crate::{Error, LedBackend};

/// One LED's pattern and when it started.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    pattern: Option<Pattern>,
    since_ms: u64,
    level: Option<bool>,
}

impl Slot {
    /// Takes the pattern for this tick; true when it differs from the last.
    pub(crate) fn update(&mut self, pattern: Pattern, now_ms: u64) -> bool {
        if self.pattern == Some(pattern) {
            return false;
        }
        self.pattern = Some(pattern);
        self.since_ms = now_ms;
        self.level = None;
        true
    }

    /// The level to show now, if it differs from the level last shown.
    pub(crate) fn level_change(&mut self, now_ms: u64) -> Option<bool> {
        let pattern = self.pattern?;
        let level = pattern.level_at(now_ms.saturating_sub(self.since_ms));
        if self.level == Some(level) {
            return None;
        }
        self.level = Some(level);
        Some(level)
    }

    /// Forgets what was shown, so the next tick writes again.
    pub(crate) fn forget(&mut self) {
        *self = Slot::default();
    }
}

/// LEDs on embedded-hal output pins, blinked in software.
pub struct PinLeds<P> {
    kind: &'static str,
    leds: Vec<(String, P, Slot)>,
}

impl<P: OutputPin + Send> PinLeds<P> {
    /// LEDs on `pins`, named for messages and the status page. `kind` is the
    /// backend name reported by [`LedBackend::kind`].
    pub fn new(kind: &'static str, pins: Vec<(String, P)>) -> Self {
        PinLeds {
            kind,
            leds: pins
                .into_iter()
                .map(|(name, pin)| (name, pin, Slot::default()))
                .collect(),
        }
    }
}

impl<P: OutputPin + Send> LedBackend for PinLeds<P> {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn names(&self) -> Vec<String> {
        self.leds.iter().map(|(name, _, _)| name.clone()).collect()
    }

    fn show(&mut self, patterns: &[Pattern], now_ms: u64) -> Result<(), Error> {
        for ((name, pin, slot), &pattern) in self.leds.iter_mut().zip(patterns) {
            slot.update(pattern, now_ms);
            if let Some(level) = slot.level_change(now_ms) {
                let result = if level { pin.set_high() } else { pin.set_low() };
                if let Err(err) = result {
                    slot.forget();
                    return Err(Error::Pin {
                        led: name.clone(),
                        message: format!("{:?}", embedded_hal::digital::Error::kind(&err)),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A pin that records every level set on it.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<bool>>>);

    impl embedded_hal::digital::ErrorType for Recorder {
        type Error = Infallible;
    }

    impl OutputPin for Recorder {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.lock().expect("lock").push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.lock().expect("lock").push(true);
            Ok(())
        }
    }

    #[test]
    fn pins_follow_the_pattern_and_write_only_changes() {
        let pin = Recorder::default();
        let mut leds = PinLeds::new("test", vec![("a".to_string(), pin.clone())]);
        let blink = Pattern::Blink {
            on_ms: 100,
            off_ms: 100,
        };
        for now in (1000..1400).step_by(50) {
            leds.show(&[blink], now).expect("show");
        }
        assert_eq!(
            *pin.0.lock().expect("lock"),
            [true, false, true, false],
            "one write per level change"
        );
        // A new pattern starts at its beginning.
        leds.show(&[Pattern::Code(2)], 1400).expect("show");
        leds.show(&[Pattern::Code(2)], 1450).expect("show");
        leds.show(&[Pattern::Off], 1500).expect("show");
        leds.show(&[Pattern::Off], 1550).expect("show");
        assert_eq!(
            *pin.0.lock().expect("lock"),
            [true, false, true, false, true, false]
        );
    }
}
