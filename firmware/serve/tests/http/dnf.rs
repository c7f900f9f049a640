//! The real dnf against the server: `makecache` (repomd.xml, then the
//! hashed metadata files it names) and `download` of a package, from a
//! repository built here offline with rpmbuild and createrepo_c.
//!
//! dnf reads no system repository or configuration: its own `-c dnf.conf`
//! sets skip_if_unavailable=False (Debian's default turns a broken repository
//! into a warning), and the output must hold no error, warning or failure.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::Server;

fn run(cmd: &mut Command) -> Output {
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run tools/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build_rpm(work: &Path) -> std::path::PathBuf {
    let top = work.join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).expect("mkdir");
    let spec = top.join("SPECS/hello-swarm.spec");
    std::fs::write(
        &spec,
        "Name: hello-swarm\nVersion: 1.0\nRelease: 1\nSummary: swarmsync HTTP test package\n\
         License: MIT\nBuildArch: noarch\n%description\nTest data only.\n\
         %install\nmkdir -p %{buildroot}/usr/share/hello-swarm\n\
         seq 1 40000 > %{buildroot}/usr/share/hello-swarm/data\n\
         %files\n/usr/share/hello-swarm/data\n",
    )
    .expect("spec");
    run(Command::new("rpmbuild")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("-bb")
        .arg(&spec));
    top.join("RPMS/noarch/hello-swarm-1.0-1.noarch.rpm")
}

#[test]
fn dnf_makecache_and_download() {
    let work = tempfile::tempdir().expect("tmp");
    let work = work.path();
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let rpm = build_rpm(work);
    let name = "hello-swarm-1.0-1.noarch.rpm";
    std::fs::copy(&rpm, repo.join(name)).expect("copy rpm");
    run(Command::new("createrepo_c").arg("--quiet").arg(&repo));

    let server = Server::start(
        vec![serve::Mount::new("/fedora", &repo)],
        serve::Config::default(),
    );
    let empty = work.join("empty");
    let root = work.join("root");
    let dl = work.join("dl");
    for d in [&empty, &root, &dl] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let w = work.display();
    let conf = work.join("dnf.conf");
    std::fs::write(
        &conf,
        format!(
            "[main]\nskip_if_unavailable=False\ngpgcheck=0\ninstall_weak_deps=False\n\
             cachedir={w}/cache\nlogdir={w}/log\npersistdir={w}/persist\n\
             reposdir={w}/empty\npluginconfpath={w}/empty\n"
        ),
    )
    .expect("dnf.conf");
    let dnf = |args: &[&str]| {
        let out = run(Command::new("dnf")
            .env("LC_ALL", "C")
            .arg("-c")
            .arg(&conf)
            .arg("--installroot")
            .arg(&root)
            .args(["--releasever", "1"])
            .arg(format!("--setopt=reposdir={}", empty.display()))
            .arg(format!("--repofrompath=swarm,{}", server.url("/fedora")))
            .arg("--repo=swarm")
            .args(args));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            let l = line.to_ascii_lowercase();
            let bad = [
                "error", "warning", "failed", "cannot", "ignoring", "skipping",
            ]
            .iter()
            .any(|w| l.contains(w));
            assert!(!bad, "dnf {args:?}: {line}\n--- full output ---\n{text}");
        }
        text
    };
    let out = dnf(&["makecache"]);
    assert!(out.contains("Metadata cache created"), "{out}");
    let out = dnf(&[
        "download",
        "--destdir",
        &dl.display().to_string(),
        "hello-swarm",
    ]);
    assert!(out.contains(name), "{out}");
    assert!(
        std::fs::read(dl.join(name)).expect("downloaded") == std::fs::read(&rpm).expect("rpm"),
        "downloaded rpm differs"
    );
}
