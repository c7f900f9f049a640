//! Records the build time as `BUILD_TIME`, the oldest "now" a node without
//! a real-time clock may assume (see `time_floor`).
//!
//! Sources, in order: `SOURCE_DATE_EPOCH` (reproducible builds), the commit
//! time of git's HEAD, a fixed date. A missing or broken git never fails the
//! build: a too-old floor is safe, it only lets an expired release through
//! for longer on a board that has no clock and has seen no newer release.
//! The script is not re-run on every commit (that would rebuild the binary
//! each time anyone commits); a stale floor is older, hence still safe.

use std::process::Command;

/// 2025-01-01T00:00:00Z.
const FALLBACK: u64 = 1_735_689_600;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let time = from_env().or_else(from_git).unwrap_or(FALLBACK);
    let out = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    let Some(out) = out else {
        panic!("cargo did not set OUT_DIR");
    };
    let code = format!(
        "/// Seconds since the Unix epoch when this binary was built (see build.rs).\n\
         pub const BUILD_TIME: u64 = {time};\n"
    );
    if let Err(e) = std::fs::write(out.join("build_time.rs"), code) {
        panic!("cannot write build_time.rs into {}: {e}", out.display());
    }
}

fn from_env() -> Option<u64> {
    let value = std::env::var("SOURCE_DATE_EPOCH").ok()?;
    match value.trim().parse::<u64>() {
        Ok(t) => Some(t),
        Err(_) => {
            println!(
                "cargo:warning=SOURCE_DATE_EPOCH={value:?} is not a number of seconds; ignored"
            );
            None
        }
    }
}

fn from_git() -> Option<u64> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}
