//! What one LED shows.
//!
//! A pattern is a description, not a drive signal: a backend that can let the
//! kernel blink (the Linux LED class `timer` and `heartbeat` triggers) hands
//! the description over and stops caring, while a backend that drives a bare
//! GPIO line asks [`Pattern::level_at`] on every tick. Both show the same
//! thing, so the table in docs/leds.md holds for every board.

use core::fmt;

/// Length of one pulse of an error code, lit and dark, in milliseconds.
pub const CODE_PULSE_MS: u32 = 200;
/// Dark pause after the last pulse of an error code, in milliseconds.
pub const CODE_PAUSE_MS: u32 = 1000;
/// The highest error code: more pulses than this cannot be counted at a glance.
pub const CODE_MAX: u8 = 5;

/// The heartbeat: two short pulses, then a long pause (the kernel's
/// `heartbeat` trigger at idle load looks the same).
const HEARTBEAT: [(bool, u32); 4] = [(true, 70), (false, 180), (true, 70), (false, 930)];

/// What one LED shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Dark.
    Off,
    /// Lit steadily.
    On,
    /// Lit for `on_ms`, dark for `off_ms`, repeating. Both are at least 1.
    Blink {
        /// Lit time per period, milliseconds.
        on_ms: u16,
        /// Dark time per period, milliseconds.
        off_ms: u16,
    },
    /// Two short pulses per 1.25 s, like a beating heart.
    Heartbeat,
    /// An error code: `n` pulses of [`CODE_PULSE_MS`], then a pause of
    /// [`CODE_PAUSE_MS`]; `n` is between 1 and [`CODE_MAX`].
    Code(u8),
}

impl Pattern {
    /// Length of one period in milliseconds (1 for the steady patterns).
    pub fn period_ms(self) -> u32 {
        match self {
            Pattern::Off | Pattern::On => 1,
            Pattern::Blink { on_ms, off_ms } => u32::from(on_ms) + u32::from(off_ms),
            Pattern::Heartbeat => HEARTBEAT.iter().map(|&(_, ms)| ms).sum(),
            Pattern::Code(n) => u32::from(n) * 2 * CODE_PULSE_MS + CODE_PAUSE_MS,
        }
    }

    /// Whether the LED is lit `elapsed_ms` after the pattern started.
    /// Every pattern starts lit, except `Off`.
    pub fn level_at(self, elapsed_ms: u64) -> bool {
        let period = u64::from(self.period_ms().max(1));
        // The remainder is below the period, which fits in a u32.
        let t = u32::try_from(elapsed_ms % period).unwrap_or(0);
        match self {
            Pattern::Off => false,
            Pattern::On => true,
            Pattern::Blink { on_ms, .. } => t < u32::from(on_ms),
            Pattern::Heartbeat => {
                let mut start = 0;
                for (lit, ms) in HEARTBEAT {
                    if t < start + ms {
                        return lit;
                    }
                    start += ms;
                }
                false
            }
            Pattern::Code(n) => {
                t < u32::from(n) * 2 * CODE_PULSE_MS && (t / CODE_PULSE_MS).is_multiple_of(2)
            }
        }
    }

    /// Whether the pattern is well formed: blink times not zero, codes in range.
    pub fn is_valid(self) -> bool {
        match self {
            Pattern::Off | Pattern::On | Pattern::Heartbeat => true,
            Pattern::Blink { on_ms, off_ms } => on_ms > 0 && off_ms > 0,
            Pattern::Code(n) => (1..=CODE_MAX).contains(&n),
        }
    }

    /// Whether the pattern changes over time (a backend must then either hand
    /// it to the kernel or toggle the LED on ticks).
    pub fn is_steady(self) -> bool {
        matches!(self, Pattern::Off | Pattern::On)
    }
}

/// The words used on the status page and by `swarmsync leds`:
/// `off`, `on`, `blink 250/250`, `heartbeat`, `code 2`.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Off => f.write_str("off"),
            Pattern::On => f.write_str("on"),
            Pattern::Blink { on_ms, off_ms } => write!(f, "blink {on_ms}/{off_ms}"),
            Pattern::Heartbeat => f.write_str("heartbeat"),
            Pattern::Code(n) => write!(f, "code {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit_ms(p: Pattern) -> u32 {
        (0..p.period_ms())
            .filter(|&t| p.level_at(u64::from(t)))
            .count() as u32
    }

    #[test]
    fn blink_is_lit_for_on_ms_then_dark() {
        let p = Pattern::Blink {
            on_ms: 100,
            off_ms: 300,
        };
        assert!(p.level_at(0));
        assert!(p.level_at(99));
        assert!(!p.level_at(100));
        assert!(!p.level_at(399));
        assert!(p.level_at(400));
        assert_eq!(lit_ms(p), 100);
    }

    #[test]
    fn code_counts_its_pulses() {
        for n in 1..=CODE_MAX {
            let p = Pattern::Code(n);
            let mut rises = 0;
            let mut last = false;
            for t in 0..p.period_ms() {
                let level = p.level_at(u64::from(t));
                if level && !last {
                    rises += 1;
                }
                last = level;
            }
            assert_eq!(rises, u32::from(n), "code {n}");
            assert_eq!(lit_ms(p), u32::from(n) * CODE_PULSE_MS);
            // The pause is dark and ends the period.
            assert!(!p.level_at(u64::from(p.period_ms() - 1)));
        }
    }

    #[test]
    fn heartbeat_has_two_pulses() {
        let p = Pattern::Heartbeat;
        assert_eq!(p.period_ms(), 1250);
        assert_eq!(lit_ms(p), 140);
        assert!(p.level_at(0));
        assert!(!p.level_at(100));
        assert!(p.level_at(260));
        assert!(!p.level_at(400));
    }

    #[test]
    fn steady_patterns_never_change() {
        for t in [0, 1, 999, u64::MAX] {
            assert!(Pattern::On.level_at(t));
            assert!(!Pattern::Off.level_at(t));
        }
    }

    #[test]
    fn display_words() {
        use std::string::ToString;
        for (p, want) in [
            (Pattern::Off, "off"),
            (Pattern::On, "on"),
            (
                Pattern::Blink {
                    on_ms: 250,
                    off_ms: 750,
                },
                "blink 250/750",
            ),
            (Pattern::Heartbeat, "heartbeat"),
            (Pattern::Code(3), "code 3"),
        ] {
            assert_eq!(p.to_string(), want);
        }
    }
}
