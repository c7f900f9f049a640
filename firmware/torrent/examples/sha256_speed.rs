//! SHA-256 throughput of swarmsync's hashing path (`torrent::hash::sha256`,
//! i.e. ring), in 16 KiB blocks (the BEP 52 merkle leaf), on one thread.
//!
//! Compare with `openssl speed -evp sha256 -bytes 16384`; tools/bench/create.py
//! runs both pinned to one core (`taskset -c 0`).
//!
//!     cargo run --release -p swarmsync-torrent --example sha256_speed [SECONDS] [--sha1]
//!
//! Prints `sha256 16384-byte blocks: C MB/s cpu, W MB/s wall` (and with
//! --sha1 the same for SHA-1, the v1 half of a hybrid); MB = 10^6 bytes as
//! openssl counts them. `cpu` divides by this thread's CPU time (from
//! /proc/thread-self/schedstat), which is what `openssl speed` reports too
//! (it times user CPU unless given -elapsed), so a busy machine skews
//! neither; `wall` divides by elapsed time.

use std::time::{Duration, Instant};

const BLOCK: usize = 16 * 1024;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    // 1 MiB of varied data, hashed block by block, so the input is not one
    // cached 16 KiB buffer.
    let buf: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let blocks: Vec<&[u8]> = buf.chunks(BLOCK).collect();
    let limit = Duration::from_secs_f64(secs);
    let (cpu, wall) = speed(&blocks, limit, |b| torrent::hash::sha256(b)[0]);
    println!("sha256 {BLOCK}-byte blocks: {cpu:.1} MB/s cpu, {wall:.1} MB/s wall");
    if std::env::args().any(|a| a == "--sha1") {
        let (cpu, wall) = speed(&blocks, limit, |b| torrent::hash::sha1(b)[0]);
        println!("sha1 {BLOCK}-byte blocks: {cpu:.1} MB/s cpu, {wall:.1} MB/s wall");
    }
}

/// This thread's CPU time so far (Linux), or None elsewhere.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// (MB per CPU second, MB per wall second) of `hash` over `blocks`, looped
/// for about `limit` of CPU time.
fn speed(blocks: &[&[u8]], limit: Duration, hash: impl Fn(&[u8]) -> u8) -> (f64, f64) {
    let mut sink = 0u8;
    let mut hashed = 0u64;
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let used = || match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => start.elapsed(),
    };
    while used() < limit {
        for b in blocks {
            sink ^= hash(b);
            hashed += b.len() as u64;
        }
    }
    let cpu = used().as_secs_f64();
    let wall = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    (hashed as f64 / cpu / 1e6, hashed as f64 / wall / 1e6)
}
