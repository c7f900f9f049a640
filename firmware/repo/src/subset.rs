//! The `[channel.subset]` table of swarmsync.toml.
//!
//! Unknown keys are refused (a misspelt `architecture = …` must not silently
//! select every architecture), and [`Subset::check`] refuses empty lists and
//! patterns that do not compile, so a config error shows at load time rather
//! than after the metadata was fetched.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::glob::Patterns;

/// What a node fetches ahead of time from a channel's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Subset {
    /// An apt repository (a `dists/` tree and a pool).
    Apt {
        /// Suites (the directory names under `dists/`), e.g. `bookworm`.
        suites: Vec<String>,
        /// Components, e.g. `main`.
        components: Vec<String>,
        /// Debian architectures, e.g. `armhf`; `binary-all` always comes
        /// along when the suite has it.
        architectures: Vec<String>,
        /// Package name globs; `!pattern` excludes. Default: all.
        #[serde(default = "all")]
        packages: Vec<String>,
    },
    /// An rpm repository (one or more `repodata/` directories).
    Rpm {
        /// rpm architectures, e.g. `x86_64`; `noarch` always comes along.
        architectures: Vec<String>,
        /// Package name globs; `!pattern` excludes. Default: all.
        #[serde(default = "all")]
        packages: Vec<String>,
    },
    /// Any tree: path globs relative to the snapshot root (`**` crosses
    /// directories, `*` does not); `!pattern` excludes.
    Paths {
        /// The globs.
        include: Vec<String>,
    },
}

fn all() -> Vec<String> {
    vec!["*".to_string()]
}

/// The names of a list, checked: not empty, no empty or odd entries.
fn names(what: &str, list: &[String]) -> Result<(), Error> {
    if list.is_empty() {
        return Err(Error::Subset(format!("{what}: the list is empty")));
    }
    for name in list {
        let bad = name.is_empty()
            || name.len() > crate::limits::MAX_FIELD
            || name.starts_with('/')
            || name
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || name.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            return Err(Error::Subset(format!(
                "{what}: {name:?} is not a valid name"
            )));
        }
    }
    Ok(())
}

impl Subset {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Subset::Apt { .. } => "apt",
            Subset::Rpm { .. } => "rpm",
            Subset::Paths { .. } => "paths",
        }
    }

    /// Checks everything that can be checked without the repository: lists
    /// not empty, names plausible, globs compile.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            Subset::Apt {
                suites,
                components,
                architectures,
                packages,
            } => {
                names("suites", suites)?;
                names("components", components)?;
                names("architectures", architectures)?;
                Patterns::new("packages", packages, false).map(|_| ())
            }
            Subset::Rpm {
                architectures,
                packages,
            } => {
                names("architectures", architectures)?;
                Patterns::new("packages", packages, false).map(|_| ())
            }
            Subset::Paths { include } => {
                if include.is_empty() {
                    return Err(Error::Subset("include: the list is empty".into()));
                }
                Patterns::new("include", include, true).map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Subset, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn the_design_example_parses() {
        let s = parse(
            r#"kind = "apt"
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
architectures = ["armhf"]
packages = ["*"]"#,
        )
        .expect("parses");
        assert_eq!(
            s,
            Subset::Apt {
                suites: vec!["bookworm".into(), "bookworm-updates".into()],
                components: vec!["main".into()],
                architectures: vec!["armhf".into()],
                packages: vec!["*".into()],
            }
        );
        s.check().expect("valid");
        let r = parse("kind = \"rpm\"\narchitectures = [\"x86_64\"]").expect("rpm");
        assert_eq!(
            r,
            Subset::Rpm {
                architectures: vec!["x86_64".into()],
                packages: vec!["*".into()]
            }
        );
        let p = parse("kind = \"paths\"\ninclude = [\"dists/**\"]").expect("paths");
        p.check().expect("valid");
        assert_eq!(p.kind(), "paths");
        // And back.
        let back: Subset = toml::from_str(&toml::to_string(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_by_name() {
        let e = parse(
            "kind = \"apt\"\nsuites = [\"a\"]\ncomponents = [\"main\"]\narchitecture = [\"x\"]",
        )
        .expect_err("typo");
        assert!(e.to_string().contains("architecture"), "{e}");
        let e = parse("kind = \"rpm\"\narchitectures = [\"x\"]\nsuites = [\"a\"]").expect_err("x");
        assert!(e.to_string().contains("unknown field `suites`"), "{e}");
        let e = parse("kind = \"deb\"\nsuites = []").expect_err("kind");
        assert!(e.to_string().contains("deb"), "{e}");
    }

    #[test]
    fn check_refuses_empty_lists_bad_names_and_bad_globs() {
        let apt = |suites: &[&str], packages: &[&str]| Subset::Apt {
            suites: suites.iter().map(|s| s.to_string()).collect(),
            components: vec!["main".into()],
            architectures: vec!["amd64".into()],
            packages: packages.iter().map(|s| s.to_string()).collect(),
        };
        assert!(apt(&["bookworm"], &["*"]).check().is_ok());
        let e = apt(&[], &["*"]).check().expect_err("empty");
        assert!(e.to_string().contains("suites"), "{e}");
        for bad in ["../etc", "a b", "", "/abs", "a//b"] {
            assert!(apt(&[bad], &["*"]).check().is_err(), "{bad:?}");
        }
        // Old-style security suites have a slash.
        assert!(apt(&["bookworm/updates"], &["*"]).check().is_ok());
        let e = apt(&["bookworm"], &["lib[c"]).check().expect_err("glob");
        assert!(e.to_string().contains("lib[c"), "{e}");
        let e = Subset::Paths { include: vec![] }
            .check()
            .expect_err("empty");
        assert!(e.to_string().contains("include"), "{e}");
    }
}
