//! Client-sticky snapshots: a client that fetched a release file keeps
//! being served that snapshot across a switch of `current`, other clients
//! see the switch at once, and the pin ends with the grace window, with the
//! next release-file fetch, or when the pinned snapshot is gone.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::util::{Server, get_from};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn switch(data: &Path, seq: &str) {
    let next = data.join("current.next");
    std::os::unix::fs::symlink(format!("snapshots/{seq}"), &next).expect("symlink");
    std::fs::rename(&next, data.join("current")).expect("rename");
}

fn body(from: Ipv4Addr, s: &Server, path: &str) -> String {
    let r = get_from(from, s.addr, path);
    assert_eq!(r.status, 200, "{path} from {from}");
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_client_keeps_its_snapshot_for_the_grace_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    for seq in ["1", "2"] {
        let dists = data.join(format!("snapshots/{seq}/dists/stable"));
        std::fs::create_dir_all(dists.join("main")).expect("mkdir");
        std::fs::write(dists.join("InRelease"), format!("R{seq}")).expect("InRelease");
        std::fs::write(dists.join("main/Packages"), format!("P{seq}")).expect("Packages");
    }
    switch(data, "1");
    let config = serve::Config {
        sticky_grace: Duration::from_millis(1500),
        ..serve::Config::default()
    };
    let s = Server::start(
        vec![serve::Mount::new("/debian", data.join("current"))],
        config,
    );
    let release = "/debian/dists/stable/InRelease";
    let packages = "/debian/dists/stable/main/Packages";

    // A reads InRelease, then the node switches snapshots mid-update.
    assert_eq!(body(A, &s, release), "R1");
    switch(data, "2");
    assert_eq!(
        body(A, &s, packages),
        "P1",
        "A must stay on the snapshot of its InRelease"
    );
    assert_eq!(body(B, &s, packages), "P2", "B has no pin");
    // The next update of A starts from the newest release.
    assert_eq!(body(A, &s, release), "R2");
    assert_eq!(body(A, &s, packages), "P2");

    // The pin ends with the grace window.
    switch(data, "1");
    assert_eq!(body(A, &s, packages), "P2");
    std::thread::sleep(Duration::from_millis(1700));
    assert_eq!(body(A, &s, packages), "P1");

    // A pinned snapshot that was removed falls back to current.
    assert_eq!(body(A, &s, release), "R1");
    switch(data, "2");
    std::fs::remove_dir_all(data.join("snapshots/1")).expect("rm");
    assert_eq!(body(A, &s, packages), "P2");
}

#[test]
fn a_download_in_flight_survives_a_switch_and_removal_of_its_snapshot() {
    // The open file keeps the old inode alive: a response that started in
    // one snapshot ends in it, even if the node switches `current` and
    // garbage-collects that snapshot meanwhile.
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let size = 8 * 1024 * 1024;
    for (seq, byte) in [("1", 0x11u8), ("2", 0x22u8)] {
        let dir = data.join(format!("snapshots/{seq}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("big.bin"), vec![byte; size]).expect("write");
    }
    switch(data, "1");
    let s = Server::start(
        vec![serve::Mount::new("/d", data.join("current"))],
        serve::Config::default(),
    );
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"GET /d/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut first = vec![0u8; 64 * 1024];
    c.read_exact(&mut first).expect("first bytes");
    switch(data, "2");
    std::fs::remove_dir_all(data.join("snapshots/1")).expect("rm");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("rest");
    first.extend_from_slice(&rest);
    let body_at = first
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    let body = &first[body_at..];
    assert_eq!(body.len(), size);
    assert!(
        body.iter().all(|&b| b == 0x11),
        "bytes from the new snapshot leaked into the old file"
    );
    // And the next request sees the new snapshot.
    assert!(
        get_from(A, s.addr, "/d/big.bin")
            .body
            .iter()
            .all(|&b| b == 0x22)
    );
}
