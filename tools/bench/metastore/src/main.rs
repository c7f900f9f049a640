//! metastore: redb vs sled on swarmsync's piece-index workload.
//!
//! ```text
//! metastore fill  --engine redb|sled --dir D [--records 1000000] [--batch 256]
//!                 [--cache-mib N] [--quick-repair] [--no-progress] [--seed S] [--sample-every 10]
//! metastore crash --engine redb|sled --dir D [--kills 50] [--min-ms 20] [--max-ms 400]
//!                 [--prefill RECORDS] [--cache-mib N] [--quick-repair] [--seed S]
//!                 [--no-sync]   # negative control: commits are not made durable
//! metastore table RESULTS.jsonl       # markdown tables from the JSON lines above
//! ```
//! `fill` and `crash` print one JSON object on stdout. `write` and `check` are
//! the child processes `crash` starts; they are not meant to be run by hand.
//! Background and results: docs/decisions/0001-metadata-store.md.

mod engines;
mod workload;

use engines::{Kind, Options, Result, Verified};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use workload::{Record, Workload, mix, splitmix};

const DEFAULT_SEED: u64 = 0x5357_4152_4d53_594e; // "SWARMSYN"

struct Args {
    cmd: String,
    named: HashMap<String, String>,
    flags: Vec<String>,
    positional: Vec<String>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut it = std::env::args().skip(1);
        let cmd = it
            .next()
            .ok_or("missing subcommand (fill | crash | table)")?;
        let (mut named, mut flags, mut positional) = (HashMap::new(), Vec::new(), Vec::new());
        let rest: Vec<String> = it.collect();
        let mut i = 0;
        while i < rest.len() {
            let a = &rest[i];
            if let Some(name) = a.strip_prefix("--") {
                if name == "quick-repair" || name == "no-progress" || name == "no-sync" {
                    flags.push(name.to_string());
                } else {
                    let v = rest
                        .get(i + 1)
                        .ok_or_else(|| format!("--{name} needs a value"))?;
                    named.insert(name.to_string(), v.clone());
                    i += 1;
                }
            } else {
                positional.push(a.clone());
            }
            i += 1;
        }
        Ok(Args {
            cmd,
            named,
            flags,
            positional,
        })
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.named.get(name) {
            Some(v) => v
                .parse::<T>()
                .map_err(|e| format!("--{name} {v}: {e}").into()),
            None => default.ok_or_else(|| format!("--{name} is required").into()),
        }
    }

    fn opt<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.named
            .get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| format!("--{name} {v}: {e}").into())
            })
            .transpose()
    }

    fn options(&self) -> Result<Options> {
        Ok(Options {
            kind: self.get::<Kind>("engine", None)?,
            cache_bytes: self.opt::<u64>("cache-mib")?.map(|m| m << 20),
            quick_repair: self.flags.iter().any(|f| f == "quick-repair"),
            no_progress: self.flags.iter().any(|f| f == "no-progress"),
            no_sync: self.flags.iter().any(|f| f == "no-sync"),
        })
    }

    fn dir(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.get::<String>("dir", None)?))
    }
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("metastore: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match args.cmd.as_str() {
        "fill" => fill(&args),
        "crash" => crash(&args),
        "write" => write_forever(&args),
        "check" => check(&args),
        "table" => table(&args),
        other => Err(format!("unknown subcommand {other:?} (fill | crash | table)").into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metastore {}: {e}", args.cmd);
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------ measuring

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// A field of /proc/self/io, in bytes.
fn io_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// (apparent bytes, allocated bytes) of everything under `p`.
fn disk_usage(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return (0, 0);
    };
    if md.is_dir() {
        let mut sum = (0, 0);
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let (a, b) = disk_usage(&e.path());
                sum = (sum.0 + a, sum.1 + b);
            }
        }
        sum
    } else {
        (md.len(), md.blocks() * 512)
    }
}

fn remove_db(dir: &Path, kind: Kind) -> Result<()> {
    let p = engines::db_path(dir, kind);
    if p.is_dir() {
        std::fs::remove_dir_all(&p)?;
    } else if p.exists() {
        std::fs::remove_file(&p)?;
    }
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------------ fill

#[derive(Serialize)]
struct FillReport {
    mode: &'static str,
    engine: &'static str,
    cache_mib: Option<u64>,
    quick_repair: bool,
    no_progress: bool,
    records: u64,
    batch: u64,
    commits: u64,
    fill_seconds: f64,
    records_per_second: u64,
    /// Peak resident set (VmHWM) while filling, MiB.
    fill_peak_rss_mib: f64,
    /// Largest anonymous resident memory seen while filling (sampled), MiB.
    fill_peak_rss_anon_mib: f64,
    /// Anonymous resident memory after the last commit, MiB.
    fill_end_rss_anon_mib: f64,
    close_seconds: f64,
    /// Bytes handed to write(2)/pwrite(2) during fill and close, MiB (/proc/self/io wchar).
    written_mib: f64,
    /// Bytes the process caused to be sent to the block layer, MiB (/proc/self/io write_bytes).
    device_written_mib: f64,
    disk_apparent_mib: f64,
    disk_allocated_mib: f64,
    reopen_seconds: f64,
    reads: u64,
    read_seconds: f64,
    read_missing: u64,
    read_damaged: u64,
    /// VmHWM over the whole run (fill, reopen, reads), MiB.
    peak_rss_mib: f64,
}

fn fill(args: &Args) -> Result<()> {
    let opts = args.options()?;
    let dir = args.dir()?;
    let records: u64 = args.get("records", Some(1_000_000))?;
    let batch: u64 = args.get("batch", Some(256))?;
    let seed: u64 = args.get("seed", Some(DEFAULT_SEED))?;
    let sample_every: u64 = args.get("sample-every", Some(10))?;
    if batch == 0 {
        return Err("--batch must be > 0".into());
    }
    std::fs::create_dir_all(&dir)?;
    remove_db(&dir, opts.kind)?;

    let (wchar0, wbytes0) = (io_bytes("wchar"), io_bytes("write_bytes"));
    let mut db = engines::open(&dir, &opts)?;
    let mut w = Workload::new(seed);
    let mut buf: Vec<Record> = Vec::with_capacity(batch as usize);
    let mut anon_peak = status_kib("RssAnon");
    let start = Instant::now();
    let mut commits = 0u64;
    while w.position() < records {
        buf.clear();
        while (buf.len() as u64) < batch && w.position() < records {
            buf.push(w.next_record());
        }
        db.commit(commits, &buf)?;
        commits += 1;
        if commits.is_multiple_of(32) {
            anon_peak = anon_peak.max(status_kib("RssAnon"));
        }
    }
    let fill_seconds = start.elapsed().as_secs_f64();
    let anon_end = status_kib("RssAnon");
    anon_peak = anon_peak.max(anon_end);
    let fill_hwm = status_kib("VmHWM");

    let t = Instant::now();
    db.close()?;
    let close_seconds = t.elapsed().as_secs_f64();
    let written = io_bytes("wchar") - wchar0;
    let device_written = io_bytes("write_bytes") - wbytes0;
    let (apparent, allocated) = disk_usage(&engines::db_path(&dir, opts.kind));

    let t = Instant::now();
    let db = engines::open(&dir, &opts)?;
    let reopen_seconds = t.elapsed().as_secs_f64();
    // Point reads of every `sample_every`-th record (chosen by hash, so spread
    // over the whole key space and the whole history).
    let salt = mix(seed ^ 0xDEAD_BEEF);
    let mut w = Workload::new(seed);
    let mut sample = std::iter::from_fn(|| (w.position() < records).then(|| w.next_record()))
        .enumerate()
        .filter(|(pos, _)| mix(*pos as u64 ^ salt).is_multiple_of(sample_every.max(1)))
        .map(|(_, r)| r);
    let t = Instant::now();
    let v = db.verify(&mut sample)?;
    let read_seconds = t.elapsed().as_secs_f64();
    db.close()?;

    let report = FillReport {
        mode: "fill",
        engine: opts.kind.name(),
        cache_mib: opts.cache_bytes.map(|b| b >> 20),
        quick_repair: opts.quick_repair,
        no_progress: opts.no_progress,
        records,
        batch,
        commits,
        fill_seconds: round3(fill_seconds),
        records_per_second: (records as f64 / fill_seconds).round() as u64,
        fill_peak_rss_mib: round3(mib(fill_hwm)),
        fill_peak_rss_anon_mib: round3(mib(anon_peak)),
        fill_end_rss_anon_mib: round3(mib(anon_end)),
        close_seconds: round3(close_seconds),
        written_mib: round3(written as f64 / (1 << 20) as f64),
        device_written_mib: round3(device_written as f64 / (1 << 20) as f64),
        disk_apparent_mib: round3(apparent as f64 / (1 << 20) as f64),
        disk_allocated_mib: round3(allocated as f64 / (1 << 20) as f64),
        reopen_seconds: round3(reopen_seconds),
        reads: v.present + v.missing + v.damaged,
        read_seconds: round3(read_seconds),
        read_missing: v.missing,
        read_damaged: v.damaged,
        peak_rss_mib: round3(mib(status_kib("VmHWM"))),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

// ------------------------------------------------------------ crash: the writer child

/// Opens the index, resumes at its recorded batch, and commits batches until
/// killed. Prints `ready` once open and `c <batch>` after each commit returned.
fn write_forever(args: &Args) -> Result<()> {
    let opts = args.options()?;
    let dir = args.dir()?;
    let batch: u64 = args.get("batch", Some(256))?;
    let seed: u64 = args.get("seed", Some(DEFAULT_SEED))?;
    let mut out = std::io::stdout().lock();
    let mut db = engines::open(&dir, &opts)?;
    let mut next = db.next_batch()?;
    writeln!(out, "ready {next}")?;
    out.flush()?;
    let mut w = Workload::new(seed);
    w.skip(next * batch);
    let mut buf = Vec::with_capacity(batch as usize);
    loop {
        buf.clear();
        buf.extend((0..batch).map(|_| w.next_record()));
        db.commit(next, &buf)?;
        writeln!(out, "c {next}")?;
        out.flush()?;
        next += 1;
    }
}

// ------------------------------------------------------------ crash: the checker child

#[derive(Serialize, serde::Deserialize, Default, Clone)]
struct CheckReport {
    opened: bool,
    error: Option<String>,
    open_seconds: f64,
    repaired: Option<bool>,
    next_batch: u64,
    /// Records checked one by one (new batches in full, plus a sample of old ones).
    checked: u64,
    /// Records of batches the writer had reported committed (or that the
    /// index itself says are committed) that are missing or damaged.
    lost: u64,
    /// 1 if the batch after the recorded resume point is partly or wholly
    /// present although its transaction is not recorded as committed.
    torn: u64,
}

/// Records at stream positions [from, to) that `keep` accepts.
fn records_in(
    seed: u64,
    from: u64,
    to: u64,
    keep: impl Fn(u64) -> bool,
) -> impl Iterator<Item = Record> {
    let mut w = Workload::new(seed);
    w.skip(from);
    std::iter::from_fn(move || {
        while w.position() < to {
            let pos = w.position();
            let r = w.next_record();
            if keep(pos) {
                return Some(r);
            }
        }
        None
    })
}

fn check(args: &Args) -> Result<()> {
    let opts = args.options()?;
    let dir = args.dir()?;
    let batch: u64 = args.get("batch", Some(256))?;
    let seed: u64 = args.get("seed", Some(DEFAULT_SEED))?;
    // Highest batch the writer reported committed, plus one (0 = none).
    let committed: u64 = args.get("committed", Some(0))?;
    // Batches below this were verified in full by an earlier check.
    let frontier: u64 = args.get("frontier", Some(0))?;
    let sample: u64 = args.get("sample", Some(2000))?;
    let salt: u64 = args.get("salt", Some(1))?;

    let t = Instant::now();
    let db = match engines::open(&dir, &opts) {
        Ok(db) => db,
        Err(e) => {
            let r = CheckReport {
                error: Some(e.to_string()),
                open_seconds: t.elapsed().as_secs_f64(),
                ..Default::default()
            };
            println!("{}", serde_json::to_string(&r)?);
            return Err(e);
        }
    };
    let open_seconds = t.elapsed().as_secs_f64();
    let next_batch = db.next_batch()?;
    let hi = next_batch.max(committed);
    let frontier = frontier.min(hi);

    let mut bad = Verified::default();
    let mut checked = 0u64;
    let mut add = |v: Verified| {
        checked += v.present + v.missing + v.damaged;
        bad.missing += v.missing;
        bad.damaged += v.damaged;
    };
    // Everything committed since the last check, record by record.
    add(
        db.verify(&mut records_in(seed, frontier * batch, hi * batch, |_| {
            true
        }))?,
    );
    // A sample of what earlier checks already saw.
    if sample > 0 && frontier > 0 {
        let old = frontier * batch;
        let threshold = ((sample as f64 / old as f64).min(1.0) * u64::MAX as f64) as u64;
        add(db.verify(&mut records_in(seed, 0, old, |pos| {
            mix(pos ^ salt) <= threshold
        }))?);
    }
    // The transaction in flight at the kill must be all or nothing: absent.
    let mut torn = 0;
    if committed <= next_batch {
        let v = db.verify(&mut records_in(
            seed,
            next_batch * batch,
            (next_batch + 1) * batch,
            |_| true,
        ))?;
        if v.present > 0 {
            torn = 1;
        }
    }
    let report = CheckReport {
        opened: true,
        error: None,
        open_seconds,
        repaired: db.repaired(),
        next_batch,
        checked,
        lost: bad.missing + bad.damaged,
        torn,
    };
    db.close()?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

// ------------------------------------------------------------ crash: the driver

#[derive(Serialize)]
struct CrashReport {
    mode: &'static str,
    engine: &'static str,
    cache_mib: Option<u64>,
    quick_repair: bool,
    no_progress: bool,
    no_sync: bool,
    /// Records written (and cleanly closed) before the first kill.
    prefill: u64,
    kills: u64,
    /// Kills that landed before the writer had opened the index (during open or repair).
    kills_during_open: u64,
    opens_ok: u64,
    /// Opens after a kill that returned an error.
    open_errors: u64,
    /// Opens after a kill where the checker died (panic, abort, signal).
    open_crashes: u64,
    /// Writer runs that ended by themselves (an error) before the kill.
    writer_failures: u64,
    committed_batches: u64,
    committed_records: u64,
    /// Sum over all checks of committed records missing or damaged.
    lost_committed_records: u64,
    /// Same, from one full check of every committed record at the end.
    lost_at_final_check: u64,
    torn_batches: u64,
    /// Opens that reported a repair (redb's repair callback; sled cannot tell).
    repairs: Option<u64>,
    repair_seconds_median: f64,
    repair_seconds_p90: f64,
    repair_seconds_max: f64,
    disk_allocated_mib: f64,
    seconds: f64,
    first_error: Option<String>,
}

fn child_args(args: &Args, opts: &Options, dir: &Path) -> Vec<String> {
    let mut v = vec![
        "--engine".into(),
        opts.kind.name().into(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    for k in ["batch", "seed", "cache-mib"] {
        if let Some(x) = args.named.get(k) {
            v.push(format!("--{k}"));
            v.push(x.clone());
        }
    }
    if opts.quick_repair {
        v.push("--quick-repair".into());
    }
    if opts.no_progress {
        v.push("--no-progress".into());
    }
    if opts.no_sync {
        v.push("--no-sync".into());
    }
    v
}

fn run_check(
    exe: &Path,
    base: &[String],
    extra: &[String],
    log: &Path,
) -> Result<(Option<CheckReport>, Option<String>)> {
    let errlog = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let out = Command::new(exe)
        .arg("check")
        .args(base)
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::from(errlog))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let report = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<CheckReport>(l).ok());
    let failure = (!out.status.success()).then(|| format!("checker {}", out.status));
    Ok((report, failure))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn crash(args: &Args) -> Result<()> {
    let opts = args.options()?;
    let dir = args.dir()?;
    let kills: u64 = args.get("kills", Some(50))?;
    let min_ms: u64 = args.get("min-ms", Some(20))?;
    let max_ms: u64 = args.get("max-ms", Some(400))?;
    let seed: u64 = args.get("seed", Some(DEFAULT_SEED))?;
    let sample: u64 = args.get("sample", Some(2000))?;
    let prefill: u64 = args.get("prefill", Some(0))?;
    let batch: u64 = args.get("batch", Some(256))?;
    std::fs::create_dir_all(&dir)?;
    remove_db(&dir, opts.kind)?;
    // Start from an index of realistic size: a full repair's cost grows with it.
    let mut prefilled = 0u64;
    if prefill > 0 {
        let mut db = engines::open(&dir, &opts)?;
        let mut w = Workload::new(seed);
        let mut buf = Vec::with_capacity(batch as usize);
        while prefilled * batch < prefill {
            buf.clear();
            buf.extend((0..batch).map(|_| w.next_record()));
            db.commit(prefilled, &buf)?;
            prefilled += 1;
        }
        db.close()?;
    }
    let exe = std::env::current_exe()?;
    let base = child_args(args, &opts, &dir);
    let tag = format!(
        "{}{}{}",
        opts.kind.name(),
        if opts.quick_repair {
            "-quick-repair"
        } else {
            ""
        },
        if opts.no_sync { "-no-sync" } else { "" }
    );
    let log = dir.join(format!("crash-{tag}.log"));
    let rounds_log = dir.join(format!("crash-{tag}-rounds.jsonl"));
    let mut rounds = std::fs::File::create(&rounds_log)?;
    let _ = std::fs::remove_file(&log);

    let mut rng = seed ^ 0xC0FF_EE00;
    let start = Instant::now();
    let mut rep = CrashReport {
        mode: "crash",
        engine: opts.kind.name(),
        cache_mib: opts.cache_bytes.map(|b| b >> 20),
        quick_repair: opts.quick_repair,
        no_progress: opts.no_progress,
        no_sync: opts.no_sync,
        prefill: 0,
        kills: 0,
        kills_during_open: 0,
        opens_ok: 0,
        open_errors: 0,
        open_crashes: 0,
        writer_failures: 0,
        committed_batches: 0,
        committed_records: 0,
        lost_committed_records: 0,
        lost_at_final_check: 0,
        torn_batches: 0,
        repairs: (opts.kind == Kind::Redb).then_some(0),
        repair_seconds_median: 0.0,
        repair_seconds_p90: 0.0,
        repair_seconds_max: 0.0,
        disk_allocated_mib: 0.0,
        seconds: 0.0,
        first_error: None,
    };
    rep.prefill = prefilled * batch;
    let mut committed = prefilled; // highest reported committed batch + 1
    let mut frontier = prefilled; // the first check samples the prefill
    let mut open_times = Vec::new();

    for round in 0..kills {
        let errlog = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut child = Command::new(&exe)
            .arg("write")
            .args(&base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errlog))
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let reader = std::thread::spawn(move || {
            let (mut ready, mut last) = (false, None::<u64>);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready") {
                    ready = true;
                } else if let Some(b) = line.strip_prefix("c ").and_then(|b| b.parse().ok()) {
                    last = Some(b);
                }
            }
            (ready, last)
        });
        let delay = min_ms + splitmix(&mut rng) % (max_ms.saturating_sub(min_ms) + 1);
        std::thread::sleep(Duration::from_millis(delay));
        let exited_early = child.try_wait()?.is_some();
        if exited_early {
            rep.writer_failures += 1;
        } else {
            child.kill()?; // SIGKILL
        }
        child.wait()?;
        let (ready, last) = reader.join().map_err(|_| "reader thread panicked")?;
        rep.kills += 1;
        if !ready {
            rep.kills_during_open += 1;
        }
        if let Some(b) = last {
            committed = committed.max(b + 1);
        }

        let extra = vec![
            "--committed".into(),
            committed.to_string(),
            "--frontier".into(),
            frontier.to_string(),
            "--sample".into(),
            sample.to_string(),
            "--salt".into(),
            round.to_string(),
        ];
        let (report, failure) = run_check(&exe, &base, &extra, &log)?;
        writeln!(
            rounds,
            "{}",
            serde_json::json!({"round": round, "delay_ms": delay, "writer_ready": ready,
                "writer_exited_early": exited_early, "committed": committed,
                "check": report.as_ref().map(serde_json::to_value).transpose()?, "failure": failure})
        )?;
        match (report, failure) {
            (Some(r), None) if r.opened => {
                rep.opens_ok += 1;
                rep.lost_committed_records += r.lost;
                rep.torn_batches += r.torn;
                if r.repaired == Some(true)
                    && let Some(n) = rep.repairs.as_mut()
                {
                    *n += 1;
                }
                open_times.push(r.open_seconds);
                frontier = r.next_batch;
                committed = committed.max(r.next_batch);
            }
            (Some(r), _) if !r.opened => {
                rep.open_errors += 1;
                rep.first_error.get_or_insert(r.error.unwrap_or_default());
                break; // the index is unusable: later rounds would say nothing new
            }
            (_, failure) => {
                rep.open_crashes += 1;
                rep.first_error
                    .get_or_insert(failure.unwrap_or_else(|| "checker printed nothing".into()));
                break;
            }
        }
    }

    if rep.open_errors == 0 && rep.open_crashes == 0 {
        let extra = vec![
            "--committed".into(),
            committed.to_string(),
            "--frontier".into(),
            "0".into(),
            "--sample".into(),
            "0".into(),
        ];
        let (report, failure) = run_check(&exe, &base, &extra, &log)?;
        match report {
            Some(r) if r.opened && failure.is_none() => rep.lost_at_final_check = r.lost,
            _ => {
                rep.first_error
                    .get_or_insert(failure.unwrap_or_else(|| "final check failed".into()));
            }
        }
    }
    open_times.sort_by(f64::total_cmp);
    rep.committed_batches = committed;
    rep.committed_records = committed * batch;
    rep.repair_seconds_median = round3(percentile(&open_times, 0.5));
    rep.repair_seconds_p90 = round3(percentile(&open_times, 0.9));
    rep.repair_seconds_max = round3(open_times.last().copied().unwrap_or(0.0));
    rep.disk_allocated_mib =
        round3(disk_usage(&engines::db_path(&dir, opts.kind)).1 as f64 / (1 << 20) as f64);
    rep.seconds = round3(start.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}

// ------------------------------------------------------------ table

fn table(args: &Args) -> Result<()> {
    let path = args
        .positional
        .first()
        .ok_or("usage: metastore table RESULTS.jsonl")?;
    let text = std::fs::read_to_string(path)?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let s = |v: &serde_json::Value, k: &str| -> String {
        match &v[k] {
            serde_json::Value::Null => "—".into(),
            serde_json::Value::String(x) => x.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        }
    };
    let label = |v: &serde_json::Value| {
        let mut l = s(v, "engine");
        match &v["cache_mib"] {
            serde_json::Value::Null => l.push_str(" (default cache)"),
            c => l.push_str(&format!(" (cache {c} MiB)")),
        }
        if v["quick_repair"] == serde_json::Value::Bool(true) {
            l.push_str(", quick-repair");
        }
        if v["no_progress"] == serde_json::Value::Bool(true) {
            l.push_str(", pieces only");
        }
        if v["no_sync"] == serde_json::Value::Bool(true) {
            l.push_str(", NOT durable (control)");
        }
        if let Some(b) = v["batch"].as_u64().filter(|b| *b != 256) {
            l.push_str(&format!(", {b} records per commit"));
        }
        l
    };
    let fills: Vec<_> = rows.iter().filter(|v| v["mode"] == "fill").collect();
    if !fills.is_empty() {
        let r0 = fills[0];
        println!(
            "Fill: {} records, one durable transaction per {} records ({} commits) unless noted, then {} point reads after a reopen. Written = bytes passed to write(2)/pwrite(2) while filling and closing.\n",
            s(r0, "records"),
            s(r0, "batch"),
            s(r0, "commits"),
            s(r0, "reads")
        );
        println!(
            "| engine | fill s | peak RSS MiB, fill (VmHWM) | RssAnon MiB, end of fill | peak RSS MiB, whole run | written MiB | disk MiB (allocated) | disk MiB (apparent) | reopen s | reads s | missing |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for v in &fills {
            let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
            println!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {} |",
                label(v),
                f("fill_seconds"),
                f("fill_peak_rss_mib"),
                f("fill_end_rss_anon_mib"),
                f("peak_rss_mib"),
                f("written_mib"),
                f("disk_allocated_mib"),
                f("disk_apparent_mib"),
                f("reopen_seconds"),
                f("read_seconds"),
                v["read_missing"].as_u64().unwrap_or(0) + v["read_damaged"].as_u64().unwrap_or(0),
            );
        }
        println!();
    }
    let crashes: Vec<_> = rows.iter().filter(|v| v["mode"] == "crash").collect();
    if !crashes.is_empty() {
        println!(
            "Crash: after a clean prefill, a writer committing {}-record transactions is SIGKILLed at a random moment, then the index is reopened and checked; repeated. Rows marked \"NOT durable (control)\" report commits that were never made durable, to show the checker catches losses.\n",
            s(
                rows.iter()
                    .find(|v| v["mode"] == "fill")
                    .unwrap_or(crashes[0]),
                "batch"
            )
            .replace('—', "256")
        );
        println!(
            "| engine | prefill | kills (during open) | opens OK | open errors / crashes | committed records | lost committed records (per check / final) | torn batches | repairs | open after kill s (median / p90 / max) | disk MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for v in &crashes {
            println!(
                "| {} | {} | {} ({}) | {} | {} / {} | {} | {} / {} | {} | {} | {} / {} / {} | {:.1} |",
                label(v),
                s(v, "prefill"),
                s(v, "kills"),
                s(v, "kills_during_open"),
                s(v, "opens_ok"),
                s(v, "open_errors"),
                s(v, "open_crashes"),
                s(v, "committed_records"),
                s(v, "lost_committed_records"),
                s(v, "lost_at_final_check"),
                s(v, "torn_batches"),
                s(v, "repairs"),
                s(v, "repair_seconds_median"),
                s(v, "repair_seconds_p90"),
                s(v, "repair_seconds_max"),
                v["disk_allocated_mib"].as_f64().unwrap_or(0.0),
            );
            if let Some(e) = v["first_error"].as_str() {
                println!("\n{}: first error: {e}\n", label(v));
            }
        }
    }
    Ok(())
}
