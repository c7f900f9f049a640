//! apt metadata from the network must never panic the reader nor make it
//! allocate without bound: a `Packages` index (plain, or gz/xz/zst by magic
//! bytes), a Release/InRelease, and the whole apt plan over a repository
//! whose index is the fuzz input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo::{Packages, Release, Subset, TreeFile};

const RELEASE: &[u8] = b"Suite: stable\nComponents: main\nArchitectures: amd64\n\
SHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1 main/binary-amd64/Packages.gz\n";

fuzz_target!(|data: &[u8]| {
    let _ = Packages::read_all("Packages", data, |p| {
        assert!(!p.package.is_empty());
        Ok(())
    });
    let _ = Release::parse("InRelease", data);

    let files: Vec<TreeFile> = [
        "dists/stable/Release",
        "dists/stable/main/binary-amd64/Packages.gz",
        "pool/main/a/a_1_amd64.deb",
    ]
    .iter()
    .map(|p| TreeFile {
        path: p.to_string(),
        size: 1,
    })
    .collect();
    let subset = Subset::Apt {
        suites: vec!["stable".into()],
        components: vec!["main".into()],
        architectures: vec!["amd64".into()],
        packages: vec!["*".into(), "!b*".into()],
    };
    let mut read = |p: &str| -> Result<Vec<u8>, repo::Error> {
        Ok(if p.ends_with("Release") {
            RELEASE.to_vec()
        } else {
            data.to_vec()
        })
    };
    if let Ok(plan) = repo::plan(&subset, &files, &mut read) {
        // Only paths of the tree are ever selected.
        assert!(
            plan.selected
                .iter()
                .all(|s| files.iter().any(|f| &f.path == s))
        );
        assert_eq!(
            plan.selected.len() as u64 + plan.skipped_files,
            files.len() as u64
        );
    }
});
