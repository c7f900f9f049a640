//! The small-file cache of snapshot mounts: it serves what the current
//! snapshot holds, follows a switch at once, never answers a pinned client
//! from another snapshot, and keeps every header rule of a file response.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::util::{Server, get, get_from, method};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn switch(data: &Path, seq: &str) {
    let next = data.join("current.next");
    std::os::unix::fs::symlink(format!("snapshots/{seq}"), &next).expect("symlink");
    std::fs::rename(&next, data.join("current")).expect("rename");
}

fn start(data: &Path, config: serve::Config) -> Server {
    Server::start(
        vec![serve::Mount::with_snapshots(
            "/d",
            data.join("current"),
            data.join("snapshots"),
        )],
        config,
    )
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    for seq in ["1", "2"] {
        let dists = tmp.path().join(format!("snapshots/{seq}/dists"));
        std::fs::create_dir_all(&dists).expect("mkdir");
        std::fs::write(dists.join("InRelease"), format!("R{seq}")).expect("write");
        std::fs::write(dists.join("Packages"), format!("P{seq}")).expect("write");
        std::fs::write(dists.join("big"), vec![seq.as_bytes()[0]; 100_000]).expect("write");
    }
    switch(tmp.path(), "1");
    tmp
}

#[test]
fn cached_files_follow_the_current_snapshot() {
    let tmp = tree();
    let data = tmp.path();
    let s = start(data, serve::Config::default());
    assert_eq!(get(s.addr, "/d/dists/Packages", &[]).body, b"P1");
    // Served from memory now: even with the file gone from disk (which
    // never happens to a snapshot; here it shows the cache answered).
    std::fs::remove_file(data.join("snapshots/1/dists/Packages")).expect("rm");
    let r = get(s.addr, "/d/dists/Packages", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"P1"[..]));
    // Every header of a file response, conditionals and ranges too.
    for h in ["etag", "last-modified", "content-type", "accept-ranges"] {
        assert!(r.header(h).is_some(), "{h} missing");
    }
    let etag = r.header("etag").expect("etag").to_string();
    assert_eq!(
        get(s.addr, "/d/dists/Packages", &[("If-None-Match", &etag)]).status,
        304
    );
    let r = get(s.addr, "/d/dists/Packages", &[("Range", "bytes=1-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"1"[..]));
    let r = method(s.addr, "HEAD", "/d/dists/Packages", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("2")));
    // A switch is seen by the very next request.
    switch(data, "2");
    assert_eq!(get(s.addr, "/d/dists/Packages", &[]).body, b"P2");
    // Large files are not cached, and still correct.
    assert_eq!(get(s.addr, "/d/dists/big", &[]).body, vec![b'2'; 100_000]);
    // Off when the budget is zero: the removed file is gone.
    let off = start(
        data,
        serve::Config {
            small_file_cache: 0,
            ..serve::Config::default()
        },
    );
    switch(data, "1");
    assert_eq!(get(off.addr, "/d/dists/Packages", &[]).status, 404);
}

#[test]
fn pins_hold_with_the_cache() {
    let tmp = tree();
    let data = tmp.path();
    let s = start(data, serve::Config::default());
    // Fill the cache with snapshot 1, then A reads InRelease (from the
    // cache) and is pinned to 1; the node switches to 2.
    assert_eq!(get_from(B, s.addr, "/d/dists/InRelease").body, b"R1");
    assert_eq!(get_from(B, s.addr, "/d/dists/Packages").body, b"P1");
    assert_eq!(get_from(A, s.addr, "/d/dists/InRelease").body, b"R1");
    switch(data, "2");
    // B (pinned too by its InRelease) and A stay on 1; the cache now
    // fills with 2 for a client without a pin.
    assert_eq!(get_from(A, s.addr, "/d/dists/Packages").body, b"P1");
    assert_eq!(get_from(B, s.addr, "/d/dists/Packages").body, b"P1");
    let c = Ipv4Addr::new(127, 0, 0, 3);
    assert_eq!(get_from(c, s.addr, "/d/dists/Packages").body, b"P2");
    assert_eq!(get_from(c, s.addr, "/d/dists/Packages").body, b"P2");
    assert_eq!(get_from(A, s.addr, "/d/dists/Packages").body, b"P1");
    // A's next update moves it to 2.
    assert_eq!(get_from(A, s.addr, "/d/dists/InRelease").body, b"R2");
    assert_eq!(get_from(A, s.addr, "/d/dists/Packages").body, b"P2");
}
