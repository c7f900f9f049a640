//! The two steps of a subset ([`metadata_paths`], [`plan`]) and their result.
//!
//! Both steps only ever select paths that are in the snapshot's file list:
//! a path named by an index but absent from the snapshot is counted as
//! missing (a broken mirror, or a package published elsewhere through
//! `xml:base`), never invented, so the node cannot be told to fetch a file
//! the torrent does not have.

use std::collections::{BTreeSet, HashMap};

use crate::glob::Patterns;
use crate::limits::MAX_FIELD;
use crate::{Error, Subset, apt, rpm};

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeFile {
    /// '/'-separated, relative to the snapshot root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a subset selects from a snapshot, and what it leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The selected paths (metadata and packages).
    pub selected: std::collections::BTreeSet<String>,
    /// Total size of `selected`.
    pub bytes: u64,
    /// Package files selected (for `paths` subsets: files selected).
    pub packages: u64,
    /// Metadata files selected.
    pub metadata: u64,
    /// Files of the snapshot not selected.
    pub skipped_files: u64,
    /// Their size.
    pub skipped_bytes: u64,
    /// Size of the selected package files.
    pub package_bytes: u64,
    /// Size of the selected metadata files.
    pub metadata_bytes: u64,
    /// Files the repository metadata names that the snapshot does not have.
    pub missing: u64,
    /// The subset's kind ("apt", "rpm", "paths"), or "all" for
    /// [`Plan::everything`].
    pub kind: &'static str,
}

/// The snapshot's file list, indexed by path.
pub(crate) struct Tree<'a> {
    sizes: HashMap<&'a str, u64>,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(files: &'a [TreeFile]) -> Self {
        Tree {
            sizes: files.iter().map(|f| (f.path.as_str(), f.size)).collect(),
        }
    }

    pub(crate) fn has(&self, path: &str) -> bool {
        self.sizes.contains_key(path)
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.sizes.keys().copied()
    }

    /// Inserts `path` into `out` if the snapshot has it.
    pub(crate) fn keep(&self, out: &mut BTreeSet<String>, path: String) {
        if self.has(&path) {
            out.insert(path);
        }
    }
}

/// The selection being built by [`plan`].
#[derive(Default)]
pub(crate) struct Selection {
    metadata: BTreeSet<String>,
    packages: BTreeSet<String>,
    pub(crate) missing: u64,
}

impl Selection {
    /// Selects a metadata file if the snapshot has it; optional files
    /// (Release.gpg, a by-hash copy) are simply absent.
    pub(crate) fn metadata(&mut self, tree: &Tree, path: String) -> bool {
        let has = tree.has(&path);
        if has {
            self.metadata.insert(path);
        }
        has
    }

    /// Selects a package file; counts it missing if the snapshot lacks it.
    pub(crate) fn package(&mut self, tree: &Tree, path: String) {
        if tree.has(&path) {
            self.packages.insert(path);
        } else {
            self.missing += 1;
        }
    }
}

/// Whether `p` is a plain relative path: no leading '/', no empty, `.` or
/// `..` segments, no control characters, not absurdly long.
pub(crate) fn valid_relative(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_FIELD
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Step 1: the repository metadata files this subset needs before it can
/// choose packages: for apt the suites' InRelease, Release and Release.gpg
/// and the `Packages` indexes of the selected components and architectures
/// (binary-all included); for rpm every `repodata/repomd.xml` (with its
/// `.asc` and `.key`) and the primary files beside it. Only paths present in
/// `files`; empty for `paths` subsets.
pub fn metadata_paths(subset: &Subset, files: &[TreeFile]) -> Vec<String> {
    let tree = Tree::new(files);
    let set = match subset {
        Subset::Apt {
            suites,
            components,
            architectures,
            ..
        } => apt::metadata_paths(suites, components, architectures, &tree),
        Subset::Rpm { .. } => rpm::metadata_paths(&tree),
        Subset::Paths { .. } => BTreeSet::new(),
    };
    set.into_iter().collect()
}

/// Step 2: the full selection, with the metadata files of step 1 readable
/// through `read` (snapshot path → the file's bytes as published).
pub fn plan(
    subset: &Subset,
    files: &[TreeFile],
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>,
) -> Result<Plan, Error> {
    subset.check()?;
    let tree = Tree::new(files);
    let mut sel = Selection::default();
    match subset {
        Subset::Apt {
            suites,
            components,
            architectures,
            packages,
        } => {
            let patterns = Patterns::new("packages", packages, false)?;
            apt::plan(
                suites,
                components,
                architectures,
                &patterns,
                &tree,
                read,
                &mut sel,
            )?;
        }
        Subset::Rpm {
            architectures,
            packages,
        } => {
            let patterns = Patterns::new("packages", packages, false)?;
            rpm::plan(architectures, &patterns, &tree, read, &mut sel)?;
        }
        Subset::Paths { include } => {
            let patterns = Patterns::new("include", include, true)?;
            for f in files {
                if patterns.matches(&f.path) {
                    sel.packages.insert(f.path.clone());
                }
            }
        }
    }
    Ok(Plan::build(subset.kind(), files, sel))
}

impl Plan {
    fn build(kind: &'static str, files: &[TreeFile], sel: Selection) -> Plan {
        let mut plan = Plan {
            kind,
            missing: sel.missing,
            ..Plan::default()
        };
        for f in files {
            if plan.selected.contains(&f.path) {
                continue; // a path listed twice counts once
            }
            if sel.metadata.contains(&f.path) {
                plan.metadata += 1;
                plan.metadata_bytes += f.size;
            } else if sel.packages.contains(&f.path) {
                plan.packages += 1;
                plan.package_bytes += f.size;
            } else {
                plan.skipped_files += 1;
                plan.skipped_bytes += f.size;
                continue;
            }
            plan.selected.insert(f.path.clone());
        }
        plan.bytes = plan.metadata_bytes + plan.package_bytes;
        plan
    }

    /// The plan of a node without a subset: every file.
    pub fn everything(files: &[TreeFile]) -> Plan {
        let sel = Selection {
            packages: files.iter().map(|f| f.path.clone()).collect(),
            ..Selection::default()
        };
        Plan::build("all", files, sel)
    }

    /// What `swarmsync subset` prints: counts and sizes in human units.
    pub fn summary(&self) -> String {
        let total = self.metadata + self.packages;
        let mut s = format!(
            "{} subset: {} {}, {} to fetch ahead (snapshot: {} files, {})\n",
            self.kind,
            count(total),
            plural(total, "file", "files"),
            bytes(self.bytes),
            count(total + self.skipped_files),
            bytes(self.bytes + self.skipped_bytes),
        );
        let rows: [(&str, u64, u64); 3] = if self.kind == "apt" || self.kind == "rpm" {
            [
                ("metadata", self.metadata, self.metadata_bytes),
                ("packages", self.packages, self.package_bytes),
                ("skipped", self.skipped_files, self.skipped_bytes),
            ]
        } else {
            [
                ("selected", total, self.bytes),
                ("skipped", self.skipped_files, self.skipped_bytes),
                ("", 0, 0),
            ]
        };
        for (label, n, b) in rows {
            if label.is_empty() {
                continue;
            }
            let tail = if label == "skipped" && n > 0 {
                "  (fetched on first request)"
            } else {
                ""
            };
            s.push_str(&format!(
                "  {label:<9} {:>9} {:<5} {:>10}{tail}\n",
                count(n),
                plural(n, "file", "files"),
                bytes(b)
            ));
        }
        if self.missing > 0 {
            s.push_str(&format!(
                "  warning: {} {} named by the repository metadata {} not in the snapshot\n",
                count(self.missing),
                plural(self.missing, "file", "files"),
                plural(self.missing, "is", "are"),
            ));
        }
        s
    }
}

fn plural<'s>(n: u64, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 { one } else { many }
}

/// 20100 → "20,100".
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Binary units with one decimal: "512 B", "1.5 KiB", "40.2 GiB".
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Vec<TreeFile> {
        list.iter()
            .map(|(p, s)| TreeFile {
                path: p.to_string(),
                size: *s,
            })
            .collect()
    }

    #[test]
    fn units() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(20_100), "20,100");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn paths_subset_and_summary() {
        let f = files(&[
            ("dists/stable/Release", 1000),
            ("pool/main/a/a.deb", 5_000_000),
            ("pool/main/b/b.deb", 1),
            ("README", 10),
        ]);
        let subset = Subset::Paths {
            include: vec!["pool/**".into(), "!**/b.deb".into()],
        };
        assert!(metadata_paths(&subset, &f).is_empty());
        let mut no_read = |p: &str| Err(Error::read(p, "not expected"));
        let p = plan(&subset, &f, &mut no_read).expect("plan");
        assert_eq!(p.selected.iter().collect::<Vec<_>>(), ["pool/main/a/a.deb"]);
        assert_eq!((p.packages, p.metadata, p.bytes), (1, 0, 5_000_000));
        assert_eq!((p.skipped_files, p.skipped_bytes), (3, 1011));
        let s = p.summary();
        assert!(
            s.starts_with(
                "paths subset: 1 file, 4.8 MiB to fetch ahead (snapshot: 4 files, 4.8 MiB)"
            ),
            "{s}"
        );
        assert!(s.contains("skipped"), "{s}");
        assert!(s.contains("(fetched on first request)"), "{s}");

        let all = Plan::everything(&f);
        assert_eq!(all.selected.len(), 4);
        assert_eq!(all.skipped_files, 0);
        assert!(
            all.summary().starts_with("all subset: 4 files"),
            "{}",
            all.summary()
        );
    }

    #[test]
    fn relative_paths() {
        for ok in ["pool/main/a/a_1.0+1_all.deb", "Packages/h/x.rpm", "a"] {
            assert!(valid_relative(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\nb",
        ] {
            assert!(!valid_relative(bad), "{bad:?}");
        }
    }
}
