//! `swarmsync torrent create | show | verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use torrent::create::{Options, Plan, create as create_torrent};
use torrent::hash::to_hex;
use torrent::{Metainfo, Version};

use crate::progress::Progress;
use crate::tree::{DirSource, scan};

/// Largest .torrent file read (matches the bencode limit).
const MAX_TORRENT_FILE: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The directory (or file) to describe.
    dir: PathBuf,
    /// Where to write the .torrent.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// BitTorrent v1 only (for Transmission 3 and aria2).
    #[arg(long, group = "kind")]
    v1: bool,
    /// BitTorrent v2 only.
    #[arg(long, group = "kind")]
    v2: bool,
    /// v1 and v2 in one torrent (the default).
    #[arg(long, group = "kind")]
    hybrid: bool,
    /// Piece size in bytes: a power of two from 16384 (default: about 512 pieces, smaller for hybrids of many small files).
    #[arg(long, value_name = "BYTES")]
    piece_size: Option<u64>,
    /// BEP 19 web seed URL (repeatable).
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,
    /// Tracker announce URL (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub fn create(args: &CreateArgs) -> Result<ExitCode> {
    let version = if args.v1 {
        Version::V1
    } else if args.v2 {
        Version::V2
    } else {
        Version::Hybrid
    };
    let (base, single, files) = scan(&args.dir)?;
    let name = crate::tree::file_name(&args.dir)?;
    let opts = Options {
        version,
        piece_length: args.piece_size,
        trackers: args.trackers.clone(),
        web_seeds: args.web_seeds.clone(),
        creation_date: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
        created_by: Some(concat!("swarmsync/", env!("CARGO_PKG_VERSION")).to_owned()),
    };
    let plan = Plan::new(&name, single, files, &opts)
        .with_context(|| format!("cannot make a torrent of {}", args.dir.display()))?;
    let progress = Progress::new("hashing", plan.total_length());
    let source = DirSource { base };
    let (bytes, meta) = create_torrent(&plan, &opts, &source, threads(), &|n| progress.add(n))
        .with_context(|| format!("cannot make a torrent of {}", args.dir.display()))?;
    progress.finish();
    write_atomically(&args.output, &bytes)?;
    print_hashes(&meta)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes via a temporary file and rename, so a crash never leaves a
/// truncated torrent where a good one was.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("torrent.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn load(file: &Path) -> Result<Metainfo> {
    use std::io::Read;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        bail!("{}: larger than {MAX_TORRENT_FILE} bytes", file.display());
    }
    Metainfo::from_bytes(&bytes).with_context(|| format!("{}: not a valid torrent", file.display()))
}

fn hashes_text(meta: &Metainfo) -> String {
    let mut out = String::new();
    if let Some(h) = meta.info.v1_infohash {
        out += &format!("v1: {}\n", to_hex(&h));
    }
    if let Some(h) = meta.info.v2_infohash {
        out += &format!("v2: {}\n", to_hex(&h));
    }
    out
}

/// Writes to stdout; a closed pipe (`swarmsync torrent show F | head`) is
/// not an error, the reader simply wanted no more.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

fn print_hashes(meta: &Metainfo) -> Result<()> {
    emit(&hashes_text(meta))
}

pub fn show(file: &Path) -> Result<ExitCode> {
    use std::fmt::Write;
    let meta = load(file)?;
    let info = &meta.info;
    let kind = match info.version {
        Version::V1 => "v1",
        Version::V2 => "v2",
        Version::Hybrid => "hybrid (v1 + v2)",
    };
    let mut out = hashes_text(&meta);
    let _ = writeln!(out, "name: {}", info.name);
    let _ = writeln!(out, "kind: {kind}");
    let _ = writeln!(out, "piece length: {}", info.piece_length);
    let _ = writeln!(out, "pieces: {}", info.piece_count());
    let _ = writeln!(out, "total size: {}", info.total_length());
    if info.private {
        let _ = writeln!(out, "private: yes");
    }
    for tier in &meta.trackers {
        let _ = writeln!(out, "tracker: {}", tier.join(" "));
    }
    for ws in &meta.web_seeds {
        let _ = writeln!(out, "web seed: {ws}");
    }
    let real: Vec<_> = info.real_files().collect();
    let _ = writeln!(out, "files: {}", real.len());
    for f in real {
        let _ = match &f.symlink_target {
            Some(t) => writeln!(out, "  {} -> {}", f.display_path(), t),
            None => writeln!(out, "{:>14}  {}", f.length, f.display_path()),
        };
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(file: &Path, dir: &Path) -> Result<ExitCode> {
    let meta = load(file)?;
    let base = if meta.info.single_file {
        dir.to_path_buf()
    } else {
        dir.join(&meta.info.name)
    };
    if !base.exists() {
        bail!(
            "{} does not exist\n--dir is the folder that holds {}",
            base.display(),
            meta.info.name
        );
    }
    let source = DirSource { base };
    let progress = Progress::new("verifying", meta.info.total_length());
    let report = torrent::verify::verify(&meta, &source, threads(), &|n| progress.add(n));
    progress.finish();
    for f in &report.faults {
        if f.files.is_empty() {
            eprintln!("FAIL {}", f.reason);
        } else {
            eprintln!(
                "FAIL piece {}: {} (bytes {}..{}): {}",
                f.piece,
                f.files.join(", "),
                f.range.0,
                f.range.1,
                f.reason
            );
        }
    }
    if report.faults.is_empty() {
        println!(
            "ok: {} pieces of {} verified",
            report.pieces, meta.info.name
        );
        Ok(ExitCode::SUCCESS)
    } else {
        bail!(
            "{} does not match {}: {} bad piece(s)",
            source.base.display(),
            file.display(),
            report.faults.len()
        )
    }
}
