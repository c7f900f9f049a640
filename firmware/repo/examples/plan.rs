//! Prints the subset plan of a repository tree on disk, as `swarmsync
//! subset` will, for trying a `[channel.subset]` table on a real mirror:
//!
//! ```text
//! cargo run -p swarmsync-repo --example plan -- /srv/debian \
//!     'kind = "apt"
//!      suites = ["bookworm"]
//!      components = ["main"]
//!      architectures = ["armhf"]'
//! ```
//! With `--list` it also prints the selected paths.

use std::path::Path;
use std::process::ExitCode;

use repo::{Subset, TreeFile};

fn walk(root: &Path, dir: &Path, out: &mut Vec<TreeFile>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_dir() {
            walk(root, &e.path(), out)?;
        } else if let Ok(rel) = e.path().strip_prefix(root)
            && let Some(rel) = rel.to_str()
        {
            out.push(TreeFile {
                path: rel.to_string(),
                size: meta.len(),
            });
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--list").collect();
    let [dir, table] = args.as_slice() else {
        eprintln!("usage: plan DIR SUBSET_TOML [--list]");
        return ExitCode::from(2);
    };
    let subset: Subset = match toml::from_str(table) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("plan: subset: {e}");
            return ExitCode::from(2);
        }
    };
    let root = Path::new(dir.as_str());
    let mut files = Vec::new();
    if let Err(e) = walk(root, root, &mut files) {
        eprintln!("plan: {dir}: {e}");
        return ExitCode::FAILURE;
    }
    let mut read = |p: &str| std::fs::read(root.join(p)).map_err(|e| repo::Error::read(p, e));
    match repo::plan(&subset, &files, &mut read) {
        Ok(plan) => {
            if list {
                for p in &plan.selected {
                    println!("{p}");
                }
            }
            print!("{}", plan.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plan: {e}");
            ExitCode::FAILURE
        }
    }
}
