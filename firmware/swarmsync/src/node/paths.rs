//! Finding a release's files by path without a second copy of the paths.
//!
//! Why: a release of 20,000 files (42,000 entries with pad files) already
//! holds every path once, as components, in its parsed torrent. A
//! `HashMap<String, usize>` beside it, as the sync and fetch-on-miss used
//! to keep for the whole life of the engine, cost another 2 MiB of strings
//! and table on a board whose whole budget is 32 MiB. This index is the
//! file numbers sorted by path: 4 bytes a file, looked up by binary search
//! over the torrent's own components.

use std::cmp::Ordering;
use std::sync::Arc;

use torrent::metainfo::{FilePath, Metainfo};

/// The non-pad files of a torrent, sorted by path.
pub struct PathIndex {
    meta: Arc<Metainfo>,
    order: Vec<u32>,
}

impl PathIndex {
    pub fn new(meta: Arc<Metainfo>) -> PathIndex {
        let files = &meta.info.files;
        let mut order: Vec<u32> = (0..files.len())
            .filter(|&i| !files[i].attr.pad)
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        order.sort_unstable_by(|&a, &b| files[a as usize].path.cmp(&files[b as usize].path));
        // Two entries with one path (a torrent may say so): the first wins,
        // as the map this replaces kept the last; either names the path.
        order.dedup_by(|a, b| files[*a as usize].path == files[*b as usize].path);
        order.shrink_to_fit();
        PathIndex { meta, order }
    }

    /// The index in `meta.info.files` of the non-pad file at `path`
    /// ('/'-separated, relative to the torrent's root).
    pub fn get(&self, path: &str) -> Option<usize> {
        let files = &self.meta.info.files;
        self.order
            .binary_search_by(|&i| cmp_path(&files[i as usize].path, path))
            .ok()
            .map(|pos| self.order[pos] as usize)
    }
}

/// Orders as `FilePath` does (component by component), against a joined
/// path. Components never hold '/' (the metainfo parser refuses them), so
/// the split of `path` is exactly the components it was joined from.
fn cmp_path(file: &FilePath, path: &str) -> Ordering {
    file.components().cmp(path.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use torrent::create::{InputFile, Options, Plan, Source, create};
    use torrent::metainfo::Version;

    struct Zeros;

    impl Source for Zeros {
        type Reader = Cursor<Vec<u8>>;
        fn open(&self, f: &InputFile) -> std::io::Result<Cursor<Vec<u8>>> {
            Ok(Cursor::new(vec![0; f.length as usize]))
        }
    }

    fn meta(paths: &[&str]) -> Arc<Metainfo> {
        let files = paths
            .iter()
            .enumerate()
            .map(|(i, p)| InputFile {
                path: p.split('/').map(str::to_owned).collect(),
                length: 1000 + i as u64,
                executable: false,
                symlink_target: None,
            })
            .collect();
        let opts = Options {
            version: Version::Hybrid,
            piece_length: Some(16384),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        Arc::new(create(&plan, &opts, &Zeros, 1, &|_| {}).expect("create").1)
    }

    #[test]
    fn finds_every_file_and_nothing_else() {
        let paths = ["b/c", "a", "b/a/z", "b.c", "ab", "b/c0", "b-"];
        let m = meta(&paths);
        let idx = PathIndex::new(Arc::clone(&m));
        for p in paths {
            let i = idx.get(p).expect(p);
            assert_eq!(m.info.files[i].path.as_str(), p);
            assert!(!m.info.files[i].attr.pad);
        }
        for p in ["", "b", "b/", "/a", "b/a", "c", "b/c/d", "a/b", "b//c"] {
            assert_eq!(idx.get(p), None, "{p:?}");
        }
    }

    #[test]
    fn pad_files_are_not_found() {
        let m = meta(&["x", "y"]);
        assert!(m.info.files.iter().any(|f| f.attr.pad));
        let idx = PathIndex::new(Arc::clone(&m));
        for f in m.info.files.iter().filter(|f| f.attr.pad) {
            assert_eq!(idx.get(f.path.as_str()), None);
        }
    }
}
