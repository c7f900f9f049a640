//! A torrent file's path, held as one string.
//!
//! Why: a release of 20,000 files (42,000 entries with pad files) holds
//! every path for the whole life of a node. As `Vec<String>` each path was
//! a vector plus one heap block per component, about 350 bytes a file,
//! 8.5 MiB of a board's 32 MiB budget. Components never hold '/' (the
//! parser refuses them), so joining them with '/' loses nothing, and the
//! joined string is what the store, the HTTP server and every message want
//! anyway.

use std::cmp::Ordering;
use std::fmt;

/// Validated components joined by '/' in one allocation. The empty path
/// has no components.
///
/// Invariant: no component is empty and none holds '/'; `new` is given
/// components the metainfo parser (or a caller building a torrent from a
/// directory walk) has already checked.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FilePath(Box<str>);

impl FilePath {
    /// Joins components with '/'.
    pub fn new<S: AsRef<str>>(components: impl IntoIterator<Item = S>) -> FilePath {
        let mut s = String::new();
        for c in components {
            if !s.is_empty() {
                s.push('/');
            }
            s.push_str(c.as_ref());
        }
        FilePath(s.into_boxed_str())
    }

    /// The components, in order.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path joined with '/' (relative, no leading '/').
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.components().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The last component (the file's name).
    pub fn last(&self) -> Option<&str> {
        self.components().next_back()
    }

    /// This path, a symlink's target (from the torrent's root, as BEP 47
    /// gives it), as the link at `link` must hold it: relative to the
    /// link's directory. The one rule for the origin's frozen tree, a
    /// downloaded directory and a node's snapshot.
    pub fn relative_from(&self, link: &FilePath) -> String {
        let up = link.len().saturating_sub(1);
        let mut parts: Vec<&str> = vec![".."; up];
        parts.extend(self.components());
        parts.join("/")
    }

    /// The components as owned strings, for code that builds paths.
    pub fn to_vec(&self) -> Vec<String> {
        self.components().map(str::to_owned).collect()
    }
}

/// Component by component, as `Vec<String>` orders: "a/x" sorts before
/// "a-b/x" although '-' sorts before '/'.
impl Ord for FilePath {
    fn cmp(&self, other: &FilePath) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for FilePath {
    fn partial_cmp(&self, other: &FilePath) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<S: AsRef<str>> FromIterator<S> for FilePath {
    fn from_iter<I: IntoIterator<Item = S>>(components: I) -> FilePath {
        FilePath::new(components)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_splits() {
        let p = FilePath::new(["pool", "main", "a.deb"]);
        assert_eq!(p.as_str(), "pool/main/a.deb");
        assert_eq!(
            p.components().collect::<Vec<_>>(),
            ["pool", "main", "a.deb"]
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p.last(), Some("a.deb"));
        assert_eq!(p.to_vec(), ["pool", "main", "a.deb"]);
        let e = FilePath::default();
        assert!(e.is_empty());
        assert_eq!(e.len(), 0);
        assert_eq!(e.components().next(), None);
    }

    #[test]
    fn link_targets_are_relative_to_the_link() {
        let target = FilePath::new(["dists", "bookworm"]);
        assert_eq!(
            target.relative_from(&FilePath::new(["dists", "stable"])),
            "../dists/bookworm"
        );
        assert_eq!(
            target.relative_from(&FilePath::new(["top"])),
            "dists/bookworm"
        );
    }

    #[test]
    fn orders_by_component() {
        let a = FilePath::new(["a", "x"]);
        let b = FilePath::new(["a-b", "x"]);
        assert!(a.as_str() > b.as_str());
        assert!(a < b);
        assert_eq!(
            a.cmp(&b),
            vec!["a".to_owned(), "x".into()].cmp(&vec!["a-b".to_owned(), "x".into()])
        );
    }
}
