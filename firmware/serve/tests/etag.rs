//! The strong ETag from the content hash: a file carrying the pieces root
//! the store records (`user.swarmsync.root`) is tagged with it, whatever
//! its inode, so two copies (two nodes) give the same tag; conditionals and
//! If-Range work with it, from disk and from the small-file cache alike;
//! a file without it keeps the inode-size-mtime tag.

#[allow(dead_code)]
#[path = "http/util.rs"]
mod util;

use std::path::Path;

use rustix::fs::{XattrFlags, setxattr};
use util::{Server, get};

const XATTR: &str = "user.swarmsync.root";

fn root_of(seed: char) -> String {
    std::iter::repeat_n(seed, 64).collect()
}

/// `<data>/snapshots/1/dists/{Packages,big,plain}` with `current` pointing
/// at it; Packages and big carry roots. `None` when the filesystem refuses
/// user xattrs.
fn store_like(data: &Path) -> Option<()> {
    let dists = data.join("snapshots/1/dists");
    std::fs::create_dir_all(&dists).expect("mkdir");
    std::fs::write(dists.join("Packages"), b"Package: a\n").expect("write");
    std::fs::write(dists.join("big"), vec![7u8; 100_000]).expect("write");
    std::fs::write(dists.join("plain"), b"no root").expect("write");
    std::os::unix::fs::symlink("snapshots/1", data.join("current")).expect("symlink");
    for (name, seed) in [("Packages", 'a'), ("big", 'b')] {
        let value = root_of(seed);
        if let Err(e) = setxattr(
            dists.join(name),
            XATTR,
            value.as_bytes(),
            XattrFlags::empty(),
        ) {
            eprintln!("skipped: {} refuses user xattrs: {e}", data.display());
            return None;
        }
    }
    Some(())
}

fn start(data: &Path) -> Server {
    Server::start(
        vec![serve::Mount::with_snapshots(
            "/d",
            data.join("current"),
            data.join("snapshots"),
        )],
        serve::Config::default(),
    )
}

#[test]
fn the_recorded_root_is_the_etag_everywhere() {
    let one = tempfile::tempdir().expect("tmp");
    let two = tempfile::tempdir().expect("tmp");
    if store_like(one.path()).is_none() || store_like(two.path()).is_none() {
        return;
    }
    let (s1, s2) = (start(one.path()), start(two.path()));
    for (path, seed) in [("/d/dists/Packages", 'a'), ("/d/dists/big", 'b')] {
        let want = format!("\"{}\"", root_of(seed));
        // Twice: the small file comes from the cache the second time.
        for _ in 0..2 {
            for s in [&s1, &s2] {
                let r = get(s.addr, path, &[]);
                assert_eq!(r.status, 200, "{path}");
                assert_eq!(r.header("etag"), Some(want.as_str()), "{path}");
            }
        }
        for s in [&s1, &s2] {
            let r = get(s.addr, path, &[("If-None-Match", &want)]);
            assert_eq!(r.status, 304, "{path}");
            assert_eq!(r.header("etag"), Some(want.as_str()), "{path}");
            // A resume validated on one node holds on the other.
            let r = get(s.addr, path, &[("Range", "bytes=2-4"), ("If-Range", &want)]);
            assert_eq!((r.status, r.body.len()), (206, 3), "{path}");
            let other = format!("\"{}\"", root_of('c'));
            let r = get(
                s.addr,
                path,
                &[("Range", "bytes=2-4"), ("If-Range", &other)],
            );
            assert_eq!(r.status, 200, "{path}");
            let r = get(s.addr, path, &[("If-Match", &other)]);
            assert_eq!(r.status, 412, "{path}");
        }
    }
    // The cache carries the same validators: with the file gone from disk
    // (it never goes from a snapshot; here it shows the cache answered).
    std::fs::remove_file(one.path().join("snapshots/1/dists/Packages")).expect("rm");
    let r = get(s1.addr, "/d/dists/Packages", &[]);
    let want = format!("\"{}\"", root_of('a'));
    assert_eq!((r.status, r.header("etag")), (200, Some(want.as_str())));
    assert_eq!(
        get(s1.addr, "/d/dists/Packages", &[("If-None-Match", &want)]).status,
        304
    );
    // Without the attribute: the per-node inode-size-mtime tag, still
    // strong and still working.
    let r1 = get(s1.addr, "/d/dists/plain", &[]);
    let r2 = get(s2.addr, "/d/dists/plain", &[]);
    let (e1, e2) = (
        r1.header("etag").expect("etag"),
        r2.header("etag").expect("etag"),
    );
    assert!(e1.starts_with('"') && e1.matches('-').count() == 2, "{e1}");
    assert_ne!(e1, e2, "different inodes");
    assert_eq!(
        get(s1.addr, "/d/dists/plain", &[("If-None-Match", e1)]).status,
        304
    );
    let r = get(
        s1.addr,
        "/d/dists/plain",
        &[("Range", "bytes=0-1"), ("If-Range", e1)],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &b"no"[..]));
}
