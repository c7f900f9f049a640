//! Checking a signed release (and unwrapping a gossip message around one)
//! must never panic on any bytes. Seeds: fuzz/seeds/release, valid releases
//! of the policy below (written by channel's `write_fuzz_seeds` test).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn policy() -> &'static channel::Policy {
    static POLICY: OnceLock<channel::Policy> = OnceLock::new();
    POLICY.get_or_init(|| channel::Policy {
        root: channel::SecretKey::from_seed([1; 32]).public(),
        channel: "stable".into(),
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = channel::accept(data, policy(), Some(3), 1_900_000_000);
    let _ = channel::parse_unverified(data);
    if let Ok(inner) = channel::gossip::decode(data) {
        let _ = channel::accept(inner, policy(), None, 1_900_000_000);
    }
});
