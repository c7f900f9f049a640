//! Checking files on disk against a torrent.
//!
//! Verification hashes the files with the torrent's own layout (through
//! [`crate::create::hash_pieces`], the same code that creates torrents, so
//! the two cannot drift apart) and compares piece by piece. v2 hashes are
//! per file, so a v2 or hybrid fault names exactly one file; a v1 piece may
//! straddle files, and then every file it touches is named.

use crate::create::{Plan, Source, hash_pieces};
use crate::metainfo::{Metainfo, Version};

/// One piece that did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Torrent-wide piece index.
    pub piece: u64,
    /// Files with bytes in this piece (path inside the torrent).
    pub files: Vec<String>,
    /// Byte range of the piece within the first named file.
    pub range: (u64, u64),
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub pieces: u64,
    pub faults: Vec<Fault>,
}

/// Verifies every piece of `meta` against `source`.
pub fn verify<S: Source>(
    meta: &Metainfo,
    source: &S,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let info = &meta.info;
    let pl = info.piece_length;
    let plan = Plan::from_info(info);
    // Hybrids are checked through their v2 hashes alone: they cover every
    // byte, name one file per fault, and halve the hashing work.
    let mut v2_plan = plan.clone();
    if info.version == Version::Hybrid {
        v2_plan.version = Version::V2;
    }
    let mut report = Report::default();
    for r in hash_pieces(&v2_plan, source, threads, false, progress) {
        match r {
            Ok(h) if info.version == Version::V1 => {
                for (k, got) in h.v1.iter().enumerate() {
                    let piece = h.first_piece + k as u64;
                    report.pieces += 1;
                    if info.pieces.get(piece as usize) != Some(got) {
                        report
                            .faults
                            .push(v1_fault(&plan, piece, pl, "hash mismatch"));
                    }
                }
            }
            Ok(h) => {
                let file = &plan.files[h.file];
                let tf = info
                    .real_files()
                    .find(|f| f.path.components().eq(file.path.iter().map(String::as_str)));
                for (k, got) in h.v2.iter().enumerate() {
                    let local = h.first_piece + k as u64;
                    report.pieces += 1;
                    let expected = tf.and_then(|tf| meta.v2_piece(tf, local));
                    if expected.map(|e| e.0) != Some(*got) {
                        report
                            .faults
                            .push(file_fault(&plan, h.file, local, pl, "hash mismatch"));
                    }
                }
            }
            Err(e) => {
                // Which pieces the failed run covered is not returned with
                // the error; name the file from the message instead.
                report.faults.push(Fault {
                    piece: u64::MAX,
                    files: Vec::new(),
                    range: (0, 0),
                    reason: e.to_string(),
                });
            }
        }
    }
    report
}

fn file_fault(plan: &Plan, file: usize, local: u64, pl: u64, reason: &str) -> Fault {
    let f = &plan.files[file];
    let start = local * pl;
    let end = (start + pl).min(f.length);
    Fault {
        piece: plan.offset(file) / pl + local,
        files: vec![f.path.join("/")],
        range: (start, end),
        reason: reason.to_owned(),
    }
}

fn v1_fault(plan: &Plan, piece: u64, pl: u64, reason: &str) -> Fault {
    let (ps, pe) = (piece * pl, (piece + 1) * pl);
    let mut files = Vec::new();
    let mut range = (0, 0);
    for (i, f) in plan.files.iter().enumerate() {
        let (fs, fe) = (plan.offset(i), plan.offset(i) + f.length);
        if fs < pe && fe > ps && f.length > 0 {
            if files.is_empty() {
                range = (ps.max(fs) - fs, pe.min(fe) - fs);
            }
            files.push(f.path.join("/"));
        }
    }
    Fault {
        piece,
        files,
        range,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{InputFile, MemSource, Options, Plan, create};
    use std::collections::BTreeMap;

    fn setup(version: Version) -> (Metainfo, MemSource) {
        let mut mem = BTreeMap::new();
        let mut files = Vec::new();
        for (name, len) in [("a", 40_000usize), ("b", 70_000), ("c", 5)] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            mem.insert(vec![name.to_owned()], data);
            files.push(InputFile {
                path: vec![name.to_owned()],
                length: len as u64,
                executable: false,
                symlink_target: None,
            });
        }
        let src = MemSource(mem);
        let opts = Options {
            version,
            piece_length: Some(16384),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        let (_, meta) = create(&plan, &opts, &src, 2, &|_| {}).expect("create");
        (meta, src)
    }

    #[test]
    fn clean_tree_verifies_and_a_flipped_byte_is_named() {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let (meta, mut src) = setup(version);
            let clean = verify(&meta, &src, 2, &|_| {});
            assert!(clean.faults.is_empty(), "{version:?}: {:?}", clean.faults);
            assert!(clean.pieces > 0);
            if let Some(b) = src.0.get_mut(&vec!["b".to_owned()]) {
                b[20_000] ^= 1;
            }
            let bad = verify(&meta, &src, 2, &|_| {});
            assert_eq!(bad.faults.len(), 1, "{version:?}");
            assert!(bad.faults[0].files.contains(&"b".to_owned()), "{version:?}");
        }
    }

    #[test]
    fn missing_file_is_reported_not_fatal() {
        let (meta, mut src) = setup(Version::Hybrid);
        src.0.remove(&vec!["a".to_owned()]);
        let r = verify(&meta, &src, 1, &|_| {});
        assert!(!r.faults.is_empty());
        assert!(r.faults.iter().any(|f| f.reason.contains("a:")));
    }
}
