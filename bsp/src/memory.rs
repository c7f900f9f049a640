//! The C allocator's settings, for a node that must live in 32 MiB.
//!
//! Why: with glibc's defaults a node that had synced a 2 GB release held
//! 52 MiB while its live heap was under 20 MiB. glibc gives every thread
//! that allocates its own arena (the disk thread, tokio's blocking pool),
//! returns memory only from the top of each, and raises its mmap and trim
//! thresholds after the first large free, so the multi-MB buffers of a
//! torrent's parse end up in the heap and stay. `mallopt` and
//! `malloc_trim` are glibc's documented answers, but they are C calls:
//! they live here, the one crate allowed `unsafe`, behind two safe
//! functions.
//!
//! The static musl builds (the board images) have neither call, and
//! musl's own allocator (mallocng) kept a synced node at 49.5 MiB, 42 MiB
//! of it anonymous, with no knob to give freed memory back. They use
//! mimalloc (its 2.x line; 3.x kept 4 MiB more in the same run) set to
//! purge freed pages at once rather than after a delay that a quiet,
//! seeding node may never reach, and collected after a sync. Figures and
//! commands: docs/benchmarks.md, "Node memory".
#![allow(unsafe_code)]

#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_t` (mimalloc.h of
/// libmimalloc-sys 0.1.49, pinned in Cargo.toml); the crate has no
/// constant for it.
#[cfg(target_env = "musl")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Arenas glibc may create: one for the main thread and one shared by the
/// rest, instead of up to eight per core.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 2;

/// Blocks from this size up are mmapped and given back on free; the free
/// top of a heap beyond it is trimmed. Fixed, so that freeing a large
/// block does not raise them (glibc's dynamic threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD: libc::c_int = 128 * 1024;

/// Sets the allocator up for a long-running process. Call first thing in
/// `main`, before any thread starts (glibc reads the arena limit when a
/// thread first allocates).
pub fn tune_allocator() {
    #[cfg(target_env = "musl")]
    // SAFETY: mi_option_set only stores an option value; mimalloc reads
    // it on its next purge.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's malloc parameters; it takes the
    // malloc lock itself and is safe to call at any time, from any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

/// Gives the free pages of every arena back to the kernel. Worth it after
/// a burst that freed a lot (a release synced, garbage collected); it walks
/// the arenas, so not on a hot path.
pub fn release_free_memory() {
    #[cfg(target_env = "musl")]
    // SAFETY: mi_collect(true) frees and purges the calling thread's empty
    // pages and the abandoned ones; blocks in use are not touched.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes each arena's lock and only madvises free
    // chunks away; no pointer the program holds is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_and_trimming_leave_allocation_working() {
        tune_allocator();
        let big: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 * 1024]).collect();
        drop(big);
        release_free_memory();
        let again = vec![7u8; 1 << 20];
        assert_eq!(again.iter().map(|&b| u64::from(b)).sum::<u64>(), 7 << 20);
    }
}
