//! `swarmsync keygen`: the built binary writes 0600 keys, never overwrites
//! one, and makes delegated online keys whose releases nodes accept under
//! the root key it printed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use channel::{Policy, Release, SecretKey, Signer};

use crate::common::{Run, run_within};

fn keygen(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmsync"));
    cmd.arg("keygen").args(args);
    run_within(&mut cmd, Duration::from_secs(30))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn release(channel: &str) -> Release {
    Release {
        channel: channel.into(),
        seq: 1,
        created: now(),
        expires: now() + 3600,
        v2: [7; 32],
        ..Release::default()
    }
}

#[test]
fn keygen_writes_a_0600_key_and_prints_its_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("root.key");
    let out = keygen(&["--out", path.to_str().expect("utf-8")]).ok();
    let printed = out.stdout.trim();
    assert_eq!(out.stdout.lines().count(), 1, "one line: {:?}", out.stdout);
    assert_eq!(printed.len(), 64);
    assert!(
        printed
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(mode(&path), 0o600);
    let key = SecretKey::read_file(&path).expect("read key");
    assert_eq!(key.public().to_string(), printed);
    assert_eq!(
        printed.parse::<channel::PublicKey>().expect("parse"),
        key.public()
    );

    // A second run refuses to overwrite it: one line on stderr, key intact.
    let before = std::fs::read(&path).expect("read");
    let again = keygen(&["--out", path.to_str().expect("utf-8")]);
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(again.stderr.starts_with("swarmsync: "), "{}", again.stderr);
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn keygen_delegates_an_online_key_from_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root_path = dir.path().join("root.key");
    let online_path = dir.path().join("online.key");
    let root_hex = keygen(&["--out", root_path.to_str().expect("utf-8")])
        .ok()
        .stdout;
    let out = keygen(&[
        "--out",
        online_path.to_str().expect("utf-8"),
        "--delegate-from",
        root_path.to_str().expect("utf-8"),
        "--expires",
        "90d",
    ])
    .ok();
    assert_eq!(out.stdout, root_hex, "prints the ROOT key nodes configure");
    assert_eq!(mode(&online_path), 0o600);
    let delegation_path = dir.path().join("online.key.delegation");
    let delegation = channel::Delegation::read_file(&delegation_path).expect("delegation");
    let days = (delegation.expires() - now()) / 86_400;
    assert!((89..=90).contains(&days), "{days} days");
    assert_eq!(delegation.channel(), "*");

    // The origin signs with the online key; a node configured with the
    // root key accepts it.
    let signer = Signer::load(&online_path).expect("load signer");
    assert_eq!(signer.public().to_string(), root_hex.trim());
    let policy = Policy {
        root: root_hex.trim().parse().expect("root key"),
        channel: "stable".into(),
    };
    let bytes = signer.sign(&release("stable"));
    assert_eq!(
        channel::accept(&bytes, &policy, None, now()),
        Ok(release("stable"))
    );

    // A channel-limited delegation covers that channel only.
    let one_path = dir.path().join("one.key");
    keygen(&[
        "--out",
        one_path.to_str().expect("utf-8"),
        "--delegate-from",
        root_path.to_str().expect("utf-8"),
        "--expires",
        "1d",
        "--channel",
        "stable",
    ])
    .ok();
    let signer = Signer::load(&one_path).expect("load signer");
    let testing = Policy {
        channel: "testing".into(),
        ..policy.clone()
    };
    let bytes = signer.sign(&release("testing"));
    let refused = channel::accept(&bytes, &testing, None, now()).expect_err("refused");
    assert_eq!(refused.code(), "delegation_wrong_channel");
}

#[test]
fn keygen_refuses_bad_input_without_leaving_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let online = dir.path().join("online.key");
    let missing = dir.path().join("no-such-root.key");
    let run = keygen(&[
        "--out",
        online.to_str().expect("utf-8"),
        "--delegate-from",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no-such-root.key"), "{}", run.stderr);
    assert!(!online.exists(), "no online key without a root");

    let root = dir.path().join("root.key");
    keygen(&["--out", root.to_str().expect("utf-8")]).ok();
    let run = keygen(&[
        "--out",
        online.to_str().expect("utf-8"),
        "--delegate-from",
        root.to_str().expect("utf-8"),
        "--expires",
        "90 days",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("--expires"), "{}", run.stderr);
    assert!(!online.exists());

    // --expires only makes sense with --delegate-from.
    let run = keygen(&["--out", online.to_str().expect("utf-8"), "--expires", "1d"]);
    assert_ne!(run.code, Some(0));
    assert!(!online.exists());

    // A root "key" that is not one names the file.
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, "hello\n").expect("write");
    let run = keygen(&[
        "--out",
        online.to_str().expect("utf-8"),
        "--delegate-from",
        junk.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("junk.key"), "{}", run.stderr);
}
