//! `swarmsync verify --state DIR`: re-verify the whole store.
//!
//! It inspects the store exactly as it finds it, typically right after a
//! power cut: nothing is recovered or cleaned up (that is the daemon's job
//! on its next start), so a pass means the crash itself left a sound store.
//! Leftovers the daemon would remove are not faults. The index is opened
//! writable all the same, because redb must repair its own file after a
//! crash before it can be read; so verify refuses to run while a daemon
//! holds the store.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use store::Store;

/// Verifies the store at `state`. Prints a summary on stdout; on faults,
/// one line naming the first on stderr and exit status 1.
pub fn run(state: &Path) -> Result<ExitCode> {
    if !state.join("index.redb").is_file() {
        bail!(
            "no store at {}: index.redb is missing\nis --state the node's data_dir?",
            state.display()
        );
    }
    let store = Store::open_inspect(state)
        .with_context(|| format!("failed to open store {}", state.display()))?;
    let report = store
        .verify()
        .with_context(|| format!("failed to verify store {}", state.display()))?;
    let current = report
        .current
        .map_or_else(|| "none".to_string(), |seq| seq.to_string());
    println!(
        "objects: {} ({} bytes), partial files: {} ({} verified pieces), snapshots: {} ({} entries), current: {current}",
        report.objects,
        report.object_bytes,
        report.partials,
        report.partial_pieces,
        report.snapshots,
        report.entries,
    );
    let Some(first) = report.faults.first() else {
        println!("store {} is sound", state.display());
        return Ok(ExitCode::SUCCESS);
    };
    for fault in &report.faults {
        println!("fault: {fault}");
    }
    let total = report.faults.len() as u64 + report.faults_omitted;
    eprintln!(
        "swarmsync: store {} has {total} fault(s), first: {first}",
        state.display()
    );
    Ok(ExitCode::from(1))
}
