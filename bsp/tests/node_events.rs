//! A node's events, through HealthDriver, onto an LED class tree like the
//! BeagleBone Black's: the documented pattern is on the LEDs at once (the
//! issue asks for within 2 s of the event), with only the public API.

use std::path::Path;

use bsp::HealthDriver;
use bsp::config::{Backend, Leds};
use bsp::health::Event;

fn fake_tree(dir: &Path, config: &Leds) {
    for name in &config.names {
        let led = dir.join(name);
        std::fs::create_dir_all(&led).expect("mkdir");
        std::fs::write(led.join("trigger"), "[none] timer heartbeat mmc0\n").expect("write");
        for (attr, value) in [
            ("brightness", "0"),
            ("max_brightness", "1"),
            ("delay_on", "0"),
            ("delay_off", "0"),
        ] {
            std::fs::write(led.join(attr), value).expect("write");
        }
    }
}

fn attr(config: &Leds, led: usize, attr: &str) -> String {
    std::fs::read_to_string(config.led_class_dir.join(&config.names[led]).join(attr)).expect("read")
}

#[test]
fn link_loss_expiry_and_disk_error_show_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Leds {
        backend: Backend::LedClass,
        led_class_dir: dir.path().join("leds"),
        system_root: dir.path().to_path_buf(),
        ..Leds::default()
    };
    fake_tree(&config.led_class_dir, &config);
    let mut driver = HealthDriver::open(&config).expect("open");
    assert_eq!(driver.backend(), "led-class");
    assert!(
        driver.watchdog().is_none(),
        "no watchdog on a generic board"
    );
    for event in [
        Event::Booted,
        Event::LinkUp,
        Event::PeersFound(2),
        Event::ReleaseFresh,
    ] {
        driver.event(event).expect("event");
    }
    driver.tick_at(1000).expect("tick");
    assert_eq!(driver.summary(), "healthy");
    assert_eq!(attr(&config, 0, "trigger"), "heartbeat");
    assert_eq!(
        (attr(&config, 1, "trigger"), attr(&config, 1, "brightness")),
        ("none".to_string(), "1".to_string())
    );

    driver.event(Event::LinkDown).expect("event");
    assert_eq!(attr(&config, 1, "brightness"), "0", "USR1 off at once");
    assert_eq!(driver.summary(), "offline");

    driver.event(Event::ReleaseExpired).expect("event");
    assert_eq!(attr(&config, 2, "trigger"), "none");
    assert_eq!(attr(&config, 2, "brightness"), "1", "code 2 starts lit");
    driver.tick_at(1200).expect("tick");
    assert_eq!(attr(&config, 2, "brightness"), "0", "first pulse over");

    driver.event(Event::DiskError).expect("event");
    assert_eq!(attr(&config, 3, "brightness"), "1", "code 1 starts lit");
    assert_eq!(driver.summary(), "disk error");
    let states = driver.led_states();
    assert_eq!(
        states,
        [
            ("beaglebone:green:usr0".to_string(), "heartbeat".to_string()),
            ("beaglebone:green:usr1".to_string(), "off".to_string()),
            ("beaglebone:green:usr2".to_string(), "code 2".to_string()),
            ("beaglebone:green:usr3".to_string(), "code 1".to_string()),
        ]
    );

    driver.event(Event::Fatal).expect("event");
    for led in 0..4 {
        assert_eq!(attr(&config, led, "trigger"), "timer");
        assert_eq!(attr(&config, led, "delay_on"), "100");
    }
    driver.close().expect("close");
}
