//! rpm metadata from the network must never panic the reader nor make it
//! allocate without bound: primary.xml (plain, or gz/xz/zst by magic bytes),
//! repomd.xml, and the whole rpm plan over a repository whose primary is
//! the fuzz input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo::{Subset, TreeFile};

const REPOMD: &[u8] =
    br#"<repomd><data type="primary"><location href="repodata/p-primary.xml.gz"/></data></repomd>"#;

fuzz_target!(|data: &[u8]| {
    let _ = repo::parse_primary("primary.xml", data, |p| {
        assert!(!p.name.is_empty() && !p.arch.is_empty());
        Ok(())
    });
    let _ = repo::parse_repomd("repomd.xml", data);

    let files: Vec<TreeFile> = [
        "repodata/repomd.xml",
        "repodata/p-primary.xml.gz",
        "Packages/a.rpm",
    ]
    .iter()
    .map(|p| TreeFile {
        path: p.to_string(),
        size: 1,
    })
    .collect();
    let subset = Subset::Rpm {
        architectures: vec!["x86_64".into()],
        packages: vec!["*".into()],
    };
    let mut read = |p: &str| -> Result<Vec<u8>, repo::Error> {
        Ok(if p.ends_with("repomd.xml") {
            REPOMD.to_vec()
        } else {
            data.to_vec()
        })
    };
    if let Ok(plan) = repo::plan(&subset, &files, &mut read) {
        assert!(
            plan.selected
                .iter()
                .all(|s| files.iter().any(|f| &f.path == s))
        );
    }
});
