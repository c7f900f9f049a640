//! `swarmsync demo`, the README's first command: an origin and three nodes
//! on loopback sync a tree, serve it byte for byte, and switch to a second
//! release; afterwards each node's store verifies.

use std::process::Command;
use std::time::Duration;

use crate::common::run_within;

#[test]
fn demo_syncs_serves_and_switches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let run = run_within(
        Command::new(env!("CARGO_BIN_EXE_swarmsync"))
            .args(["demo", "--exit-when-synced", "--dir"])
            .arg(&dir),
        Duration::from_secs(300),
    )
    .ok();
    let checked = run
        .stdout
        .matches("checked      every file of the tree")
        .count();
    assert_eq!(checked, 2, "{}", run.stdout);
    assert!(run.stdout.contains("read 300021 bytes"), "{}", run.stdout);
    for node in ["node1", "node2", "node3"] {
        run_within(
            Command::new(env!("CARGO_BIN_EXE_swarmsync"))
                .args(["verify", "--state"])
                .arg(dir.join(node).join("demo")),
            Duration::from_secs(60),
        )
        .ok();
    }
}
