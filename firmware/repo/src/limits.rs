//! The bounds every reader enforces on input from the network.
//!
//! They are far above what the largest real repositories need (Debian's
//! biggest `Packages` index decompresses to about 80 MB with 65,000
//! paragraphs; its longest lines are `Provides:` fields of Rust library
//! packages, some tens of KB), and low enough that a hostile or corrupt file
//! cannot make a 512 MiB board allocate without bound.

/// Decompressed size of one metadata file, checked while streaming.
pub const MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;
/// Length of one line of a deb822 file (Release, Packages), newline included.
pub const MAX_LINE: usize = 1024 * 1024;
/// Paragraphs in one `Packages` index; `<package>` elements in one primary.
pub const MAX_PACKAGES: u64 = 2_000_000;
/// Checksum lines in one Release file.
pub const MAX_RELEASE_ENTRIES: u64 = 1_000_000;
/// Size of a Release/InRelease file or a repomd.xml (they are read whole).
pub const MAX_INDEX_FILE: usize = 64 * 1024 * 1024;
/// Bytes of XML between two events (one tag, or one text node) in primary.xml.
pub const MAX_XML_EVENT: u64 = 4 * 1024 * 1024;
/// Length of a kept field value: package name, architecture, file path.
pub const MAX_FIELD: usize = 4096;
/// Memory the xz decoder may use, dictionary included. The decoder
/// allocates the dictionary a stream's header asks for before reading any
/// data, so this is what an 8 KB hostile file can cost; 24 MiB admits
/// `xz -7` (16 MiB dictionary) and below, which covers Debian's archive
/// (`xz -6`, 8 MiB) and createrepo_c, and keeps the board's 48 MiB peak.
pub const MAX_XZ_MEMORY_KIB: u32 = 24 * 1024;
/// zstd window size: `zstd -19` uses 8 MiB; `--long` and `--ultra` windows
/// beyond this are refused.
pub const MAX_ZSTD_WINDOW: u64 = 16 * 1024 * 1024;
/// Package globs or path globs in one subset.
pub const MAX_PATTERNS: usize = 4096;
