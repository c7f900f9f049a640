//! by-hash across snapshots: a `by-hash/<ALGO>/<hex>` file missing from the
//! client's snapshot comes from another retained snapshot, newest first,
//! and nothing else changes (other missing files stay 404, nothing outside
//! a snapshot is reachable, a mount without a snapshots directory is as
//! before).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::util::{Server, get, get_from};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn switch(data: &Path, seq: &str) {
    let next = data.join("current.next");
    std::os::unix::fs::symlink(format!("snapshots/{seq}"), &next).expect("symlink");
    std::fs::rename(&next, data.join("current")).expect("rename");
}

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn by_hash(n: u8) -> String {
    format!(
        "/debian/dists/stable/main/binary-armhf/by-hash/SHA256/{}",
        hash(n)
    )
}

/// snapshots/1 has by-hash file 1, snapshots/2 file 2, snapshots/3 files 2
/// and 3 (file 2 with content "2 from 3"); current -> 1.
fn data() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let put = |seq: &str, n: u8, content: &str| {
        let dir = data.join(format!(
            "snapshots/{seq}/dists/stable/main/binary-armhf/by-hash/SHA256"
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(hash(n)), content).expect("write");
        let dists = data.join(format!("snapshots/{seq}/dists/stable"));
        std::fs::write(dists.join("InRelease"), format!("R{seq}")).expect("InRelease");
        std::fs::write(dists.join("main/binary-armhf/Packages"), format!("P{seq}"))
            .expect("Packages");
    };
    put("1", 1, "one");
    put("2", 2, "two");
    put("3", 3, "three");
    put("3", 2, "2 from 3");
    switch(data, "1");
    // Outside every snapshot: a secret by-hash file, reachable only through
    // a symlinked "snapshot" and a symlink inside a snapshot.
    let outside = data.join("outside/dists/stable/main/binary-armhf/by-hash/SHA256");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join(hash(9)), crate::util::SECRET).expect("secret");
    std::os::unix::fs::symlink("../outside", data.join("snapshots/99")).expect("symlink");
    std::os::unix::fs::symlink(
        data.join("outside/dists/stable/main/binary-armhf/by-hash/SHA256")
            .join(hash(9)),
        data.join("snapshots/2/dists/stable/main/binary-armhf/by-hash/SHA256")
            .join(hash(8)),
    )
    .expect("symlink");
    tmp
}

#[test]
fn by_hash_files_come_from_any_snapshot() {
    let tmp = data();
    let data = tmp.path();
    let s = Server::start(
        vec![serve::Mount::with_snapshots(
            "/debian",
            data.join("current"),
            data.join("snapshots"),
        )],
        serve::Config::default(),
    );
    let body = |path: &str| {
        let r = get(s.addr, path, &[]);
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    // current is 1: its own file, then the newer snapshots' (newest first).
    assert_eq!(body(&by_hash(1)), (200, "one".into()));
    assert_eq!(body(&by_hash(2)), (200, "2 from 3".into()));
    assert_eq!(body(&by_hash(3)), (200, "three".into()));
    // HEAD and ranges work on a file found elsewhere as on any other.
    let r = crate::util::method(s.addr, "HEAD", &by_hash(3), &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    let r = get(s.addr, &by_hash(3), &[("Range", "bytes=1-2")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"hr"[..]));
    // After a switch to 2, the old snapshot's file is still served.
    switch(data, "2");
    assert_eq!(body(&by_hash(1)), (200, "one".into()));
    assert_eq!(
        body(&by_hash(2)),
        (200, "two".into()),
        "current's own copy first"
    );
    // Only by-hash names are looked up elsewhere.
    assert_eq!(
        body("/debian/dists/stable/main/binary-armhf/Packages").1,
        "P2"
    );
    assert_eq!(
        body("/debian/dists/stable/main/binary-armhf/Packages.xz").0,
        404
    );
    assert_eq!(body(&by_hash(7)).0, 404);
    let wrong_algo = by_hash(1).replace("SHA256", "SHA384");
    assert_eq!(body(&wrong_algo).0, 404);
    // Nothing outside a snapshot: not through a symlinked snapshot, not
    // through a by-hash symlink that leads out of its snapshot.
    for n in [9, 8] {
        let r = get(s.addr, &by_hash(n), &[]);
        assert_eq!(r.status, 404, "by-hash {n}");
        assert!(
            !r.raw
                .windows(crate::util::SECRET.len())
                .any(|w| w == crate::util::SECRET)
        );
    }
}

#[test]
fn a_pinned_client_gets_new_by_hash_files() {
    // apt read InRelease of snapshot 1, the node moved to 3, and apt asks
    // for a file only 3 has (or 1 no longer has): by-hash still answers,
    // while other paths keep following the pin.
    let tmp = data();
    let data = tmp.path();
    let s = Server::start(
        vec![serve::Mount::with_snapshots(
            "/debian",
            data.join("current"),
            data.join("snapshots"),
        )],
        serve::Config::default(),
    );
    let r = get_from(A, s.addr, "/debian/dists/stable/InRelease");
    assert_eq!(r.body, b"R1");
    switch(data, "3");
    let r = get_from(A, s.addr, "/debian/dists/stable/main/binary-armhf/Packages");
    assert_eq!(r.body, b"P1", "pinned");
    let r = get_from(A, s.addr, &by_hash(1));
    assert_eq!(r.body, b"one");
    let r = get_from(A, s.addr, &by_hash(3));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"three"[..]));
    // Snapshot 1 removed: its by-hash file is gone everywhere.
    std::fs::remove_dir_all(data.join("snapshots/1")).expect("rm");
    assert_eq!(get(s.addr, &by_hash(1), &[]).status, 404);
    assert_eq!(get(s.addr, &by_hash(2), &[]).body, b"2 from 3");
}

#[test]
fn without_a_snapshots_directory_nothing_changes() {
    let tmp = data();
    let data = tmp.path();
    let s = Server::start(
        vec![serve::Mount::new("/debian", data.join("current"))],
        serve::Config::default(),
    );
    assert_eq!(get(s.addr, &by_hash(1), &[]).status, 200);
    assert_eq!(get(s.addr, &by_hash(2), &[]).status, 404);
    // A relative snapshots directory is refused at start.
    let rel = serve::Server::new(
        vec![serve::Mount::with_snapshots(
            "/d",
            data.join("current"),
            "snapshots",
        )],
        serve::Config::default(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        rel.run(listener, std::future::ready(())).await
    });
    assert!(matches!(result, Err(serve::Error::RelativeRoot(_))));
}
