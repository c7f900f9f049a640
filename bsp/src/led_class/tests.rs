//! The backend against a temporary tree with the files the kernel exposes,
//! checking exactly which files each pattern writes and with what.

use std::collections::BTreeMap;

use super::*;

const ATTRS: [&str; 5] = [
    "trigger",
    "brightness",
    "max_brightness",
    "delay_on",
    "delay_off",
];
const UNTOUCHED: &str = "-";

struct Fake {
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl Fake {
    /// LEDs like the BeagleBone's, with the given trigger list.
    fn new(count: usize, triggers: &str) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (0..count)
            .map(|i| format!("beaglebone:green:usr{i}"))
            .collect();
        for name in &names {
            let led = dir.path().join(name);
            std::fs::create_dir(&led).expect("mkdir");
            std::fs::write(led.join("trigger"), format!("{triggers}\n")).expect("write");
            std::fs::write(led.join("max_brightness"), "255\n").expect("write");
            for attr in ["brightness", "delay_on", "delay_off"] {
                std::fs::write(led.join(attr), "0\n").expect("write");
            }
        }
        Fake { dir, names }
    }

    fn open(&self) -> LedClass {
        LedClass::open(self.dir.path(), &self.names).expect("open")
    }

    /// Marks every writable attribute as not written.
    fn mark(&self) {
        for name in &self.names {
            for attr in ["trigger", "brightness", "delay_on", "delay_off"] {
                std::fs::write(self.dir.path().join(name).join(attr), UNTOUCHED).expect("mark");
            }
        }
    }

    /// The attributes of LED `i` written since the last mark, with their values.
    fn written(&self, i: usize) -> BTreeMap<&'static str, String> {
        ATTRS
            .into_iter()
            .filter(|&a| a != "max_brightness")
            .filter_map(|attr| {
                let value =
                    std::fs::read_to_string(self.dir.path().join(&self.names[i]).join(attr))
                        .expect("read");
                (value != UNTOUCHED).then_some((attr, value))
            })
            .collect()
    }
}

fn map(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    pairs.iter().map(|&(k, v)| (k, v.to_string())).collect()
}

const KERNEL_TRIGGERS: &str = "[none] kbd-scrolllock mmc0 timer oneshot heartbeat default-on";

#[test]
fn each_pattern_writes_what_the_kernel_expects() {
    let fake = Fake::new(1, KERNEL_TRIGGERS);
    let mut leds = fake.open();
    let cases: [(Pattern, &[(&str, &str)]); 4] = [
        (Pattern::On, &[("trigger", "none"), ("brightness", "255")]),
        (Pattern::Off, &[("trigger", "none"), ("brightness", "0")]),
        (
            Pattern::Blink {
                on_ms: 250,
                off_ms: 750,
            },
            &[
                ("trigger", "timer"),
                ("delay_on", "250"),
                ("delay_off", "750"),
            ],
        ),
        (Pattern::Heartbeat, &[("trigger", "heartbeat")]),
    ];
    let mut now = 0;
    for (pattern, want) in cases {
        fake.mark();
        leds.show(&[pattern], now).expect("show");
        assert_eq!(fake.written(0), map(want), "{pattern}");
        // The kernel blinks on its own: later ticks write nothing.
        fake.mark();
        for _ in 0..40 {
            now += 50;
            leds.show(&[pattern], now).expect("show");
        }
        assert_eq!(fake.written(0), map(&[]), "{pattern} after ticks");
    }
}

#[test]
fn error_codes_are_drawn_on_ticks() {
    let fake = Fake::new(1, KERNEL_TRIGGERS);
    let mut leds = fake.open();
    leds.show(&[Pattern::Heartbeat], 0).expect("show");
    fake.mark();
    leds.show(&[Pattern::Code(2)], 1000).expect("show");
    assert_eq!(
        fake.written(0),
        map(&[("trigger", "none"), ("brightness", "255")])
    );
    // Two pulses of 200 ms, then a pause of 1000 ms, then again.
    let mut levels = Vec::new();
    for t in (1050..1000 + 1800 + 450).step_by(50) {
        fake.mark();
        leds.show(&[Pattern::Code(2)], t).expect("show");
        let written = fake.written(0);
        assert!(!written.contains_key("trigger"), "trigger written once");
        if let Some(b) = written.get("brightness") {
            levels.push((t - 1000, b.clone()));
        }
    }
    let want: Vec<(u64, String)> = [
        (200, "0"),
        (400, "255"),
        (600, "0"),
        (1800, "255"),
        (2000, "0"),
        (2200, "255"),
    ]
    .iter()
    .map(|&(t, b)| (t, b.to_string()))
    .collect();
    assert_eq!(levels, want);
}

#[test]
fn missing_triggers_fall_back_to_software() {
    let fake = Fake::new(1, "[none] mmc0");
    let mut leds = fake.open();
    let blink = Pattern::Blink {
        on_ms: 100,
        off_ms: 100,
    };
    fake.mark();
    leds.show(&[blink], 0).expect("show");
    assert_eq!(
        fake.written(0),
        map(&[("trigger", "none"), ("brightness", "255")])
    );
    fake.mark();
    leds.show(&[blink], 100).expect("show");
    assert_eq!(fake.written(0), map(&[("brightness", "0")]));
    fake.mark();
    leds.show(&[Pattern::Heartbeat], 200).expect("show");
    assert_eq!(
        fake.written(0),
        map(&[("trigger", "none"), ("brightness", "255")])
    );
}

#[test]
fn four_leds_each_get_their_own_pattern() {
    let fake = Fake::new(4, KERNEL_TRIGGERS);
    let mut leds = fake.open();
    assert_eq!(leds.kind(), "led-class");
    assert_eq!(leds.names(), fake.names);
    fake.mark();
    leds.show(
        &[
            Pattern::Heartbeat,
            Pattern::On,
            health::SYNCING,
            Pattern::Off,
        ],
        0,
    )
    .expect("show");
    assert_eq!(fake.written(0), map(&[("trigger", "heartbeat")]));
    assert_eq!(
        fake.written(1),
        map(&[("trigger", "none"), ("brightness", "255")])
    );
    assert_eq!(
        fake.written(2),
        map(&[
            ("trigger", "timer"),
            ("delay_on", "250"),
            ("delay_off", "250")
        ])
    );
    assert_eq!(
        fake.written(3),
        map(&[("trigger", "none"), ("brightness", "0")])
    );
}

#[test]
fn read_state_reports_the_active_trigger() {
    let fake = Fake::new(1, KERNEL_TRIGGERS);
    let name = &fake.names[0];
    let led = fake.dir.path().join(name);
    std::fs::write(led.join("trigger"), "none mmc0 [timer] heartbeat\n").expect("write");
    std::fs::write(led.join("delay_on"), "250\n").expect("write");
    std::fs::write(led.join("delay_off"), "750\n").expect("write");
    let state = LedClass::read_state(fake.dir.path(), name).expect("read");
    assert_eq!(state.trigger, "timer");
    assert_eq!(state.delays, Some(("250".to_string(), "750".to_string())));
    assert_eq!(
        state.to_string(),
        format!("{name}: trigger timer, brightness 0/255, delay_on 250 ms, delay_off 750 ms")
    );
    std::fs::write(led.join("trigger"), "[heartbeat] timer\n").expect("write");
    let state = LedClass::read_state(fake.dir.path(), name).expect("read");
    assert_eq!(state.delays, None);
    assert_eq!(state.trigger, "heartbeat");
}

#[test]
fn errors_name_the_file() {
    let fake = Fake::new(1, KERNEL_TRIGGERS);
    let err = LedClass::open(fake.dir.path(), &["beaglebone:green:usr9".to_string()])
        .expect_err("missing LED")
        .to_string();
    assert!(err.contains("beaglebone:green:usr9/trigger"), "{err}");

    // A kernel that refuses the timer trigger's delay file.
    let mut leds = fake.open();
    std::fs::remove_file(fake.dir.path().join(&fake.names[0]).join("delay_on")).expect("rm");
    let err = leds
        .show(&[health::SYNCING], 0)
        .expect_err("no delay_on")
        .to_string();
    assert!(err.contains("delay_on"), "{err}");
    assert!(err.contains("250"), "{err}");
    // The next tick tries again rather than believing the LED blinks.
    std::fs::write(fake.dir.path().join(&fake.names[0]).join("delay_on"), "0").expect("write");
    fake.mark();
    leds.show(&[health::SYNCING], 50).expect("show");
    assert_eq!(
        fake.written(0).get("delay_on").map(String::as_str),
        Some("250")
    );

    let bad = Fake::new(1, KERNEL_TRIGGERS);
    std::fs::write(
        bad.dir.path().join(&bad.names[0]).join("max_brightness"),
        "0\n",
    )
    .expect("write");
    let err = LedClass::open(bad.dir.path(), &bad.names)
        .expect_err("zero max")
        .to_string();
    assert!(err.contains("max_brightness"), "{err}");
}

#[test]
fn restore_puts_back_what_was_read() {
    let fake = Fake::new(1, KERNEL_TRIGGERS);
    let name = &fake.names[0];
    let led = fake.dir.path().join(name);
    std::fs::write(led.join("trigger"), "none [timer] heartbeat\n").expect("write");
    std::fs::write(led.join("delay_on"), "30\n").expect("write");
    std::fs::write(led.join("delay_off"), "70\n").expect("write");
    let before = LedClass::read_state(fake.dir.path(), name).expect("read");
    let mut leds = fake.open();
    leds.show(&[Pattern::Heartbeat], 0).expect("show");
    fake.mark();
    LedClass::restore(fake.dir.path(), &before).expect("restore");
    assert_eq!(
        fake.written(0),
        map(&[
            ("trigger", "timer"),
            ("delay_on", "30"),
            ("delay_off", "70")
        ])
    );
    let off = LedState {
        trigger: "none".to_string(),
        brightness: "0".to_string(),
        delays: None,
        ..before
    };
    fake.mark();
    LedClass::restore(fake.dir.path(), &off).expect("restore");
    assert_eq!(
        fake.written(0),
        map(&[("trigger", "none"), ("brightness", "0")])
    );
}
