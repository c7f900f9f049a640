//! Real HTTP clients resuming partial downloads: `curl -C -` and `wget -c`.

use std::process::Command;

use crate::util::{Server, Tree, big};

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{name} is not installed: run tools/setup");
    let mut c = Command::new(name);
    // Loopback only: never through a proxy from the environment.
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c
}

#[test]
fn curl_resumes_a_partial_file() {
    let tree = Tree::new();
    let s = Server::start(tree.mounts(), serve::Config::default());
    let data = big();
    let out = tree.tmp.path().join("curl-big.bin");
    std::fs::write(&out, &data[..300_000]).expect("partial");
    let o = tool("curl")
        .args(["-sS", "--fail", "-C", "-", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}"])
        .arg(s.url("/debian/big.bin"))
        .output()
        .expect("run curl");
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "206");
    assert!(
        std::fs::read(&out).expect("read") == data,
        "resumed file differs"
    );

    // Already complete: curl asks for the byte after the end, gets 416 and
    // treats the file as done.
    let o = tool("curl")
        .args(["-sS", "-C", "-", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}"])
        .arg(s.url("/debian/big.bin"))
        .output()
        .expect("run curl");
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "416");
    assert!(std::fs::read(&out).expect("read") == data);

    // Percent-encoded '+' as apt and curl users write it.
    let o = tool("curl")
        .args(["-sS", "--fail"])
        .arg(s.url("/debian/a%2Bb_1.0.deb"))
        .output()
        .expect("run curl");
    assert_eq!(o.stdout, b"plus");
}

#[test]
fn wget_continues_a_partial_file() {
    let tree = Tree::new();
    let s = Server::start(tree.mounts(), serve::Config::default());
    let data = big();
    let dir = tree.tmp.path().join("wget");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("big.bin"), &data[..123_457]).expect("partial");
    let o = tool("wget")
        .args(["-S", "-c", "--no-config", "-P"])
        .arg(&dir)
        .arg(s.url("/debian/big.bin"))
        .output()
        .expect("run wget");
    let log = String::from_utf8_lossy(&o.stderr).to_ascii_lowercase();
    assert!(o.status.success(), "wget: {log}");
    assert!(
        log.contains("http/1.1 206 partial content"),
        "wget did not resume:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "content-range: bytes 123457-{}/{}",
            data.len() - 1,
            data.len()
        )),
        "{log}"
    );
    assert!(
        std::fs::read(dir.join("big.bin")).expect("read") == data,
        "resumed file differs"
    );
}
