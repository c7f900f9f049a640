//! `swarmsync leds test | show`: the LEDs without the node.
//!
//! `test` is for the person installing a board: it lights each LED alone so
//! they can be told apart, then walks every pattern of docs/leds.md on all
//! of them, saying on stdout what should be visible, and finally puts the
//! LED class triggers back as it found them. `show` reads back what the
//! kernel's LED class holds (trigger, brightness, delays), which is what a
//! running node last set, so it answers "what is it showing?" over ssh.
//!
//! Only the `[leds]` table of the config is read, so these commands work on
//! a config whose other tables are still being written.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bsp::config::{Backend, Leds};
use bsp::health::{self, Event, Led, Pattern};
use bsp::{Board, HealthDriver, LedBackend, LedClass, LedState};
use clap::{Args, Subcommand};

/// What `swarmsync leds` does.
#[derive(Subcommand)]
pub enum LedsCommand {
    /// Light each LED alone, then walk every pattern on all of them.
    Test(TestArgs),
    /// Print each LED's current trigger, brightness and delays.
    Show(ConfigArg),
    /// Arm the configured watchdog, ping it for a while with the LEDs
    /// showing "healthy", then disarm it.
    Watchdog(WatchdogArgs),
}

/// Arguments of `swarmsync leds watchdog`.
#[derive(Args)]
pub struct WatchdogArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How long to keep pinging, in seconds (at most a day).
    #[arg(long, value_name = "S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(..=86_400))]
    seconds: u64,
}

/// The config file whose `[leds]` table is used.
#[derive(Args)]
pub struct ConfigArg {
    /// Config file (only its [leds] table is read); without it, the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Arguments of `swarmsync leds test`.
#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How long each step is shown, in milliseconds (at most an hour).
    #[arg(long, value_name = "MS", default_value_t = 2500,
          value_parser = clap::value_parser!(u64).range(..=3_600_000))]
    step_ms: u64,
}

/// Runs `swarmsync leds …`.
pub fn run(command: &LedsCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        LedsCommand::Test(args) => {
            let config = load(&args.config)?;
            test(&config, Duration::from_millis(args.step_ms), &mut out)?;
        }
        LedsCommand::Show(args) => show(&load(args)?, &mut out)?,
        LedsCommand::Watchdog(args) => watchdog(
            &load(&args.config)?,
            Duration::from_secs(args.seconds),
            &mut out,
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

fn load(arg: &ConfigArg) -> Result<Leds> {
    match &arg.config {
        Some(path) => Ok(Leds::from_file(path)?),
        None => Ok(Leds::default()),
    }
}

/// Every pattern of docs/leds.md, with what it means there.
const WALK: [(Pattern, &str); 11] = [
    (Pattern::Off, "off"),
    (Pattern::On, "on (USR1 peers, USR2 release fresh)"),
    (Pattern::Heartbeat, "heartbeat (USR0 alive)"),
    (health::NO_PEERS, "slow blink (USR1 link but no peers)"),
    (health::SYNCING, "fast blink (USR2 syncing)"),
    (health::STALE, "short flash (USR2 release stale)"),
    (health::SERVING, "flicker (USR3 serving)"),
    (health::CODE_DISK, "code 1 (USR3 disk error)"),
    (health::CODE_EXPIRED, "code 2 (USR2 release expired)"),
    (health::CODE_REJECTED, "code 3 (USR2 release rejected)"),
    (health::FATAL, "very fast blink on all (fatal)"),
];

fn test(config: &Leds, step: Duration, out: &mut impl Write) -> Result<()> {
    let board = Board::detect(&config.system_root);
    let backend = bsp::resolve_backend(config);
    let mut leds = bsp::open_leds(config).context("failed to open the LEDs")?;
    if leds.names().is_empty() {
        bail!("{}", no_leds(config, backend));
    }
    writeln!(out, "board: {board}, LED backend: {}", leds.kind())?;
    // Put the board's own triggers back afterwards.
    let saved: Vec<LedState> = if backend == Backend::LedClass {
        leds.names()
            .iter()
            .map(|name| LedClass::read_state(&config.led_class_dir, name))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let result = walk(leds.as_mut(), step, out);
    for state in &saved {
        LedClass::restore(&config.led_class_dir, state)
            .with_context(|| format!("failed to restore LED {}", state.name))?;
    }
    if !saved.is_empty() {
        writeln!(out, "restored the LEDs' previous triggers")?;
    }
    result
}

fn walk(leds: &mut dyn LedBackend, step: Duration, out: &mut impl Write) -> Result<()> {
    let start = Instant::now();
    let names = leds.names();
    // At most four LEDs are driven (the config is validated); zip, not index.
    for (name, led) in names.iter().zip(Led::ALL) {
        writeln!(
            out,
            "{} ({name}, {}): on, the others off",
            led.name(),
            led.role()
        )?;
        out.flush()?;
        let mut patterns = [Pattern::Off; health::LED_COUNT];
        patterns[led.index()] = Pattern::On;
        hold(leds, &patterns, start, step)?;
    }
    for (pattern, meaning) in WALK {
        writeln!(out, "all LEDs: {pattern}: {meaning}")?;
        out.flush()?;
        hold(leds, &[pattern; health::LED_COUNT], start, step)?;
    }
    hold(
        leds,
        &[Pattern::Off; health::LED_COUNT],
        start,
        Duration::ZERO,
    )?;
    writeln!(out, "done: every pattern shown on {} LED(s)", names.len())?;
    Ok(())
}

/// Shows `patterns` for `step`, ticking so software patterns are drawn.
fn hold(
    leds: &mut dyn LedBackend,
    patterns: &[Pattern],
    start: Instant,
    step: Duration,
) -> Result<()> {
    let until = Instant::now() + step;
    loop {
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        leds.show(patterns, now_ms)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(HealthDriver::TICK));
    }
}

fn show(config: &Leds, out: &mut impl Write) -> Result<()> {
    let board = Board::detect(&config.system_root);
    let backend = bsp::resolve_backend(config);
    writeln!(out, "board: {board}, LED backend: {}", backend.name())?;
    match backend {
        Backend::LedClass => {
            for name in &config.names {
                let state = LedClass::read_state(&config.led_class_dir, name)?;
                writeln!(out, "{state}")?;
            }
        }
        Backend::Gpio => {
            for &line in &config.gpio_lines {
                writeln!(out, "{}", bsp::gpio::describe(&config.gpio_chip, line)?)?;
            }
        }
        Backend::Auto | Backend::None => writeln!(out, "{}", no_leds(config, backend))?,
    }
    Ok(())
}

/// Runs the health driver as a healthy node would, for `duration`: the
/// watchdog is pinged on every tick, then disarmed by the magic close.
fn watchdog(config: &Leds, duration: Duration, out: &mut impl Write) -> Result<()> {
    let mut driver = HealthDriver::open(config).context("failed to open LEDs and watchdog")?;
    let Some(dog) = driver.watchdog() else {
        bail!(
            "no watchdog: [leds] watchdog is {:?} on a {} board\nset [leds] watchdog = \"/dev/watchdog\"",
            config.watchdog,
            driver.board()
        );
    };
    writeln!(
        out,
        "watchdog {} armed; pinging for {} s",
        dog.path().display(),
        duration.as_secs()
    )?;
    if dog.is_stalled() {
        writeln!(
            out,
            "{}=1 (test only): not pinging, expect a reset",
            bsp::watchdog::STALL_ENV
        )?;
    }
    out.flush()?;
    for event in [
        Event::Booted,
        Event::LinkUp,
        Event::PeersFound(1),
        Event::ReleaseFresh,
    ] {
        driver.event(event)?;
    }
    let until = Instant::now() + duration;
    while Instant::now() < until {
        driver.tick()?;
        std::thread::sleep(HealthDriver::TICK);
    }
    writeln!(out, "LEDs: {}", describe(&driver.led_states()))?;
    driver.close()?;
    writeln!(out, "watchdog disarmed")?;
    Ok(())
}

fn describe(states: &[(String, String)]) -> String {
    let parts: Vec<String> = states
        .iter()
        .map(|(name, pattern)| format!("{name} {pattern}"))
        .collect();
    parts.join(", ")
}

fn no_leds(config: &Leds, backend: Backend) -> String {
    if config.backend == Backend::None {
        return "no LEDs: [leds] backend is \"none\"".to_string();
    }
    debug_assert_eq!(backend, Backend::None);
    let first = config.names.first().map_or("", String::as_str);
    format!(
        "no LEDs found: {} does not exist and no gpio_lines are set\nset [leds] led_class_dir and names, or gpio_chip and gpio_lines",
        config.led_class_dir.join(first).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary LED class tree like the BeagleBone Black's.
    fn fake_leds() -> (tempfile::TempDir, Leds) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Leds {
            led_class_dir: dir.path().join("leds"),
            system_root: dir.path().to_path_buf(),
            ..Leds::default()
        };
        for (i, name) in config.names.iter().enumerate() {
            let led = config.led_class_dir.join(name);
            std::fs::create_dir_all(&led).expect("mkdir");
            let triggers = ["[heartbeat]", "[mmc0]", "[cpu0]", "[mmc1]"][i];
            std::fs::write(led.join("trigger"), format!("none {triggers} timer\n")).expect("write");
            for (attr, value) in [
                ("brightness", "0"),
                ("max_brightness", "255"),
                ("delay_on", "0"),
                ("delay_off", "0"),
            ] {
                std::fs::write(led.join(attr), value).expect("write");
            }
        }
        (dir, config)
    }

    #[test]
    fn test_walks_every_pattern_and_restores() {
        let (_dir, config) = fake_leds();
        let mut out = Vec::new();
        test(&config, Duration::from_millis(1), &mut out).expect("test");
        let out = String::from_utf8(out).expect("utf8");
        assert!(
            out.contains("usr3 (beaglebone:green:usr3, disk): on"),
            "{out}"
        );
        for (pattern, _) in WALK {
            assert!(out.contains(&format!("all LEDs: {pattern}:")), "{out}");
        }
        assert!(
            out.ends_with("restored the LEDs' previous triggers\n"),
            "{out}"
        );
        let usr1 =
            std::fs::read_to_string(config.led_class_dir.join(&config.names[1]).join("trigger"))
                .expect("read");
        assert_eq!(usr1, "mmc0");
    }

    #[test]
    fn show_reads_back_the_led_class() {
        let (_dir, config) = fake_leds();
        let mut out = Vec::new();
        show(&config, &mut out).expect("show");
        let out = String::from_utf8(out).expect("utf8");
        assert!(
            out.starts_with("board: generic, LED backend: led-class\n"),
            "{out}"
        );
        assert!(
            out.contains("beaglebone:green:usr0: trigger heartbeat, brightness 0/255\n"),
            "{out}"
        );
    }

    #[test]
    fn watchdog_pings_then_disarms() {
        let (dir, mut config) = fake_leds();
        let dev = dir.path().join("watchdog");
        std::fs::write(&dev, "").expect("create");
        config.watchdog = dev.display().to_string();
        let mut out = Vec::new();
        watchdog(&config, Duration::from_millis(120), &mut out).expect("watchdog");
        let out = String::from_utf8(out).expect("utf8");
        assert!(
            out.contains("beaglebone:green:usr0 heartbeat, beaglebone:green:usr1 on"),
            "{out}"
        );
        let written = std::fs::read(&dev).expect("read");
        if std::env::var_os(bsp::watchdog::STALL_ENV).is_none() {
            assert!(written.len() >= 3, "pings then V: {written:?}");
            assert_eq!(written.last(), Some(&b'V'));
        }
        config.watchdog = "off".to_string();
        let err = watchdog(&config, Duration::ZERO, &mut Vec::new()).expect_err("off");
        assert!(format!("{err:#}").contains("no watchdog"));
    }

    #[test]
    fn no_leds_is_an_error_for_test_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Leds {
            led_class_dir: dir.path().join("leds"),
            system_root: dir.path().to_path_buf(),
            ..Leds::default()
        };
        let err = test(&config, Duration::ZERO, &mut Vec::new()).expect_err("no LEDs");
        assert!(format!("{err:#}").contains("beaglebone:green:usr0 does not exist"));
        let mut out = Vec::new();
        show(&config, &mut out).expect("show");
        assert!(
            String::from_utf8(out)
                .expect("utf8")
                .contains("no LEDs found")
        );
    }
}
