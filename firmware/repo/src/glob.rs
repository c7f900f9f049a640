//! Include/exclude glob lists: `["*", "!*-dbgsym"]`.
//!
//! A pattern starting with `!` excludes; a name is selected when it matches
//! an include and no exclude. A list of only excludes means "everything
//! but", so `["!*-doc"]` reads as it is meant. globset compiles each list
//! into one automaton, so matching 60,000 package names costs one pass each.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::Error;
use crate::limits::{MAX_FIELD, MAX_PATTERNS};

#[derive(Debug, Clone)]
pub(crate) struct Patterns {
    include: GlobSet,
    exclude: GlobSet,
    everything: bool,
}

impl Patterns {
    /// Compiles `patterns` (the `what` field of the subset, for errors).
    /// With `paths`, `*` and `?` stop at `/` and `**` crosses directories.
    pub(crate) fn new(what: &str, patterns: &[String], paths: bool) -> Result<Self, Error> {
        if patterns.len() > MAX_PATTERNS {
            return Err(Error::Subset(format!(
                "{what}: more than {MAX_PATTERNS} patterns"
            )));
        }
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut includes = 0;
        for p in patterns {
            let (set, body) = match p.strip_prefix('!') {
                Some(rest) => (&mut exclude, rest),
                None => {
                    includes += 1;
                    (&mut include, p.as_str())
                }
            };
            if body.is_empty() || body.len() > MAX_FIELD {
                return Err(Error::Subset(format!(
                    "{what}: pattern {p:?} is empty or too long"
                )));
            }
            let glob = GlobBuilder::new(body)
                .literal_separator(paths)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Subset(format!("{what}: pattern {p:?}: {}", e.kind())))?;
            set.add(glob);
        }
        let build =
            |b: GlobSetBuilder| b.build().map_err(|e| Error::Subset(format!("{what}: {e}")));
        Ok(Patterns {
            include: build(include)?,
            exclude: build(exclude)?,
            everything: includes == 0,
        })
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        (self.everything || self.include.is_match(s)) && !self.exclude.is_match(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[&str], paths: bool) -> Patterns {
        let v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Patterns::new("packages", &v, paths).expect("compiles")
    }

    #[test]
    fn globs_and_excludes() {
        let x = p(&["lib*", "!*-dev", "zlib?g", "[ab]c"], false);
        assert!(x.matches("libc6"));
        assert!(!x.matches("libc6-dev"));
        assert!(x.matches("zlib1g"));
        assert!(x.matches("ac") && x.matches("bc") && !x.matches("cc"));
        assert!(!x.matches("bash"));
        let only_excludes = p(&["!*-doc"], false);
        assert!(only_excludes.matches("bash") && !only_excludes.matches("bash-doc"));
        let none = p(&[], false);
        assert!(none.matches("anything"));
    }

    #[test]
    fn path_globs() {
        let x = p(&["dists/**", "pool/main/*/*.deb", "!**/*.gz"], true);
        assert!(x.matches("dists/stable/Release"));
        assert!(x.matches("pool/main/h/a.deb"));
        assert!(!x.matches("pool/main/h/x/a.deb"));
        assert!(!x.matches("dists/stable/main/Packages.gz"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let e = Patterns::new("packages", &["a[".to_string()], false).expect_err("bad");
        assert!(e.to_string().contains("\"a[\""), "{e}");
        let e = Patterns::new("packages", &["!".to_string()], false).expect_err("empty");
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
