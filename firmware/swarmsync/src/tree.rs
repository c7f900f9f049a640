//! Turning a directory into a torrent's file list, and reading it back.
//!
//! Symlinks are carried as symlinks (BEP 47) when they point inside the
//! tree, as Debian mirrors' `dists/stable -> bookworm` do; a link that
//! points outside is skipped with a warning and never followed, like
//! `rsync --safe-links`. Devices, sockets and fifos are skipped.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use torrent::create::{InputFile, Source};

/// Reads files relative to a base directory.
pub struct DirSource {
    pub base: PathBuf,
}

impl DirSource {
    pub fn path_of(&self, file: &[String]) -> PathBuf {
        let mut p = self.base.clone();
        p.extend(file);
        p
    }
}

impl Source for DirSource {
    type Reader = File;
    fn open(&self, file: &InputFile) -> std::io::Result<File> {
        File::open(self.path_of(&file.path))
    }
}

/// Lists `root` (a directory, or a single file). Returns the base directory
/// the paths are relative to, whether it is a single file, and the files.
pub fn scan(root: &Path) -> Result<(PathBuf, bool, Vec<InputFile>)> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if meta.is_file() {
        let name = file_name(root)?;
        let base = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = InputFile {
            path: vec![name],
            length: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
            symlink_target: None,
        };
        return Ok((base, true, vec![file]));
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("cannot walk {}", root.display()))?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .context("walk left the tree")?;
        let path = components(rel)?;
        if ft.is_symlink() {
            match link_target(root, entry.path(), &path) {
                Some(target) => files.push(InputFile {
                    path,
                    length: 0,
                    executable: false,
                    symlink_target: Some(target),
                }),
                None => tracing::warn!(
                    "skipping symlink {} (it points outside the tree)",
                    entry.path().display()
                ),
            }
            continue;
        }
        if !ft.is_file() {
            tracing::warn!("skipping {} (not a regular file)", entry.path().display());
            continue;
        }
        let m = entry
            .metadata()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        files.push(InputFile {
            path,
            length: m.len(),
            executable: m.permissions().mode() & 0o111 != 0,
            symlink_target: None,
        });
    }
    Ok((root.to_path_buf(), false, files))
}

pub fn file_name(p: &Path) -> Result<String> {
    let canon =
        std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?;
    match canon.file_name().and_then(|n| n.to_str()) {
        Some(n) => Ok(n.to_owned()),
        None => bail!("{} has no UTF-8 file name", p.display()),
    }
}

fn components(rel: &Path) -> Result<Vec<String>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(s) => s
                .to_str()
                .map(str::to_owned)
                .with_context(|| format!("{} is not valid UTF-8", rel.display())),
            _ => bail!("unexpected path component in {}", rel.display()),
        })
        .collect()
}

/// The link's target as components from the tree root, if it stays inside.
fn link_target(root: &Path, link: &Path, link_path: &[String]) -> Option<Vec<String>> {
    let target = std::fs::read_link(link).ok()?;
    if target.is_absolute() {
        return None;
    }
    let mut out: Vec<String> = link_path[..link_path.len().saturating_sub(1)].to_vec();
    for c in target.components() {
        match c {
            Component::Normal(s) => out.push(s.to_str()?.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            _ => return None,
        }
    }
    // It must name something that exists in the tree.
    let mut p = root.to_path_buf();
    p.extend(&out);
    (!out.is_empty() && std::fs::symlink_metadata(&p).is_ok()).then_some(out)
}
