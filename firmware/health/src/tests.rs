//! The state machine against every event sequence up to a bounded length,
//! and against long pseudo-random ones.

use std::vec::Vec;

use super::*;

/// One step of a test sequence: an event, or time passing.
#[derive(Clone, Copy, Debug)]
enum Step {
    Event(Event),
    Wait(u64),
}

/// Every event, with a few parameter values, plus time passing.
const ALPHABET: [Step; 18] = [
    Step::Event(Event::Booted),
    Step::Event(Event::LinkUp),
    Step::Event(Event::LinkDown),
    Step::Event(Event::PeersFound(0)),
    Step::Event(Event::PeersFound(3)),
    Step::Event(Event::ReleaseFresh),
    Step::Event(Event::ReleaseStale),
    Step::Event(Event::ReleaseExpired),
    Step::Event(Event::ReleaseRejected),
    Step::Event(Event::SyncProgress { done: 1, total: 4 }),
    Step::Event(Event::SyncProgress { done: 9, total: 0 }),
    Step::Event(Event::SyncDone),
    Step::Event(Event::Serving),
    Step::Event(Event::DiskError),
    Step::Event(Event::DiskOk),
    Step::Event(Event::Fatal),
    Step::Wait(600),
    Step::Wait(0),
];

/// The events that make any non-fatal node healthy again.
const RECOVERY: [Event; 6] = [
    Event::Booted,
    Event::LinkUp,
    Event::PeersFound(1),
    Event::ReleaseFresh,
    Event::SyncDone,
    Event::DiskOk,
];

const HEALTHY: [Pattern; LED_COUNT] = [Pattern::Heartbeat, Pattern::On, Pattern::On, Pattern::Off];

fn apply(h: &mut Health, step: Step) {
    match step {
        Step::Event(e) => h.handle(e),
        Step::Wait(ms) => {
            let now = h.now_ms() + ms;
            h.tick(now);
        }
    }
}

/// The rules that hold in every state reached by `steps`.
fn check(steps: &[Step]) {
    let mut h = Health::new();
    let mut fatal_seen = false;
    for (i, &step) in steps.iter().enumerate() {
        apply(&mut h, step);
        fatal_seen |= matches!(step, Step::Event(Event::Fatal));
        let patterns = h.patterns();
        // Exactly one pattern per LED, and a well-formed one.
        assert_eq!(patterns.len(), LED_COUNT);
        for led in Led::ALL {
            assert!(
                h.pattern(led).is_valid(),
                "{steps:?}: invalid {:?}",
                h.pattern(led)
            );
            assert_eq!(h.pattern(led), patterns[led.index()]);
        }
        // Fatal always wins, whatever followed it.
        if fatal_seen {
            assert_eq!(patterns, [FATAL; LED_COUNT], "{steps:?}");
            assert_eq!(h.summary(), Summary::Fatal);
            assert!(!h.watchdog_ok());
            continue;
        }
        assert!(h.watchdog_ok());
        assert_ne!(h.summary(), Summary::Fatal);
        assert!(!patterns.contains(&FATAL), "{steps:?}");
        // The documented pattern follows each event at once.
        if let Step::Event(e) = step {
            check_immediate(&h, e, &steps[..=i]);
        }
        // The summary and the LEDs agree.
        let healthy = h.summary() == Summary::Healthy;
        let looks_healthy = patterns[0] == Pattern::Heartbeat
            && patterns[1] != Pattern::Off
            && patterns[2] == Pattern::On
            && matches!(patterns[3], Pattern::Off | SERVING);
        assert_eq!(healthy, looks_healthy, "{steps:?}: {patterns:?}");
        // Recovery returns to healthy.
        let mut r = h.clone();
        for e in RECOVERY {
            r.handle(e);
        }
        r.tick(r.now_ms() + SERVE_WINDOW_MS);
        assert_eq!(r.patterns(), HEALTHY, "{steps:?}");
        assert_eq!(r.summary(), Summary::Healthy);
    }
    // Deterministic: the same steps give the same state.
    let mut again = Health::new();
    for &step in steps {
        apply(&mut again, step);
    }
    assert_eq!(again, h);
}

fn check_immediate(h: &Health, e: Event, steps: &[Step]) {
    let p = h.patterns();
    match e {
        Event::Booted => assert_eq!(p[0], Pattern::Heartbeat, "{steps:?}"),
        Event::LinkDown => assert_eq!(p[1], Pattern::Off, "{steps:?}"),
        Event::ReleaseExpired => assert_eq!(p[2], CODE_EXPIRED, "{steps:?}"),
        Event::ReleaseRejected => assert_eq!(p[2], CODE_REJECTED, "{steps:?}"),
        Event::DiskError => assert_eq!(p[3], CODE_DISK, "{steps:?}"),
        Event::Serving => assert!(matches!(p[3], SERVING | CODE_DISK), "{steps:?}"),
        _ => {}
    }
}

#[test]
fn every_sequence_up_to_length_5() {
    let n = ALPHABET.len();
    let mut steps = Vec::with_capacity(4);
    for len in 0..=5u32 {
        for mut code in 0..n.pow(len) {
            steps.clear();
            for _ in 0..len {
                steps.push(ALPHABET[code % n]);
                code /= n;
            }
            check(&steps);
        }
    }
}

#[test]
fn long_pseudo_random_sequences() {
    // xorshift64: reproducible without a dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut steps = Vec::new();
    for _ in 0..3000 {
        steps.clear();
        let len = 5 + (next() % 40) as usize;
        for _ in 0..len {
            // Fatal rarely, so most sequences stay recoverable.
            let mut i = (next() % ALPHABET.len() as u64) as usize;
            if matches!(ALPHABET[i], Step::Event(Event::Fatal)) && next() % 8 != 0 {
                i = 0;
            }
            steps.push(ALPHABET[i]);
        }
        check(&steps);
    }
}

#[test]
fn new_node_is_booting() {
    let h = Health::new();
    assert_eq!(h.summary(), Summary::Booting);
    assert_eq!(
        h.patterns(),
        [Pattern::On, Pattern::Off, Pattern::Off, Pattern::Off]
    );
}

#[test]
fn serving_flickers_for_the_window_only() {
    let mut h = Health::new();
    h.tick(5000);
    h.handle(Event::Serving);
    assert_eq!(h.pattern(Led::Usr3), SERVING);
    h.tick(5000 + SERVE_WINDOW_MS - 1);
    assert_eq!(h.pattern(Led::Usr3), SERVING);
    h.tick(5000 + SERVE_WINDOW_MS);
    assert_eq!(h.pattern(Led::Usr3), Pattern::Off);
    // Time does not run backwards.
    h.tick(0);
    assert_eq!(h.now_ms(), 5000 + SERVE_WINDOW_MS);
}

#[test]
fn summary_phrases() {
    use std::string::ToString;
    let mut h = Health::new();
    for e in [Event::Booted, Event::LinkUp, Event::ReleaseFresh] {
        h.handle(e);
    }
    assert_eq!(h.summary().to_string(), "healthy");
    h.handle(Event::SyncProgress {
        done: 42,
        total: 100,
    });
    assert_eq!(h.summary().to_string(), "syncing 42%");
    assert_eq!(h.summary().name(), "syncing");
    h.handle(Event::SyncProgress {
        done: u64::MAX,
        total: u64::MAX - 1,
    });
    assert_eq!(h.summary().to_string(), "syncing 100%");
    h.handle(Event::LinkDown);
    assert_eq!(h.summary().to_string(), "offline");
    h.handle(Event::ReleaseExpired);
    assert_eq!(h.summary().to_string(), "release expired");
    h.handle(Event::DiskError);
    assert_eq!(h.summary().to_string(), "disk error");
}

#[test]
fn led_names_and_roles() {
    let names: Vec<_> = Led::ALL.iter().map(|l| (l.name(), l.role())).collect();
    assert_eq!(
        names,
        [
            ("usr0", "alive"),
            ("usr1", "network"),
            ("usr2", "release"),
            ("usr3", "disk")
        ]
    );
}
