//! The real apt-get against the server: `update` (signed InRelease,
//! compressed Packages fetched by-hash), `download` of a package whose version has a `+`
//! (apt asks for it as `%2b`), and a download resumed from a partial file
//! through Range + If-Range, plus its negative control (a stale partial file
//! must be replaced, not extended); and an `update` during which the node
//! switches snapshots between InRelease and the by-hash indexes (a proxy in
//! front of the server makes the switch at that moment).
//!
//! The repository is built here, offline: two tiny packages from
//! `dpkg-deb --build`, indexes from apt-ftparchive, InRelease signed with a
//! throwaway gpg key. apt reads no system configuration (APT_CONFIG points at
//! a generated file with its own Dir::Etc, state and cache), because the
//! machine's own configuration turns off checks; and apt exits 0 on many
//! fallbacks, so any `E:`, `W:`, `N:`, `Err:` or `Ign:` line fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

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

fn mkdirs(paths: &[&Path]) {
    for p in paths {
        std::fs::create_dir_all(p).expect("mkdir");
    }
}

/// A package with a data file of `size` bytes that compress poorly.
fn build_deb(work: &Path, name: &str, version: &str, size: usize, out: &Path) {
    let dir = work.join(format!("build-{name}"));
    mkdirs(&[&dir.join("DEBIAN"), &dir.join(format!("usr/share/{name}"))]);
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: swarmsync tests <tests@example.invalid>\n\
         Description: swarmsync HTTP test package\n test data only\n"
    );
    std::fs::write(dir.join("DEBIAN/control"), control).expect("control");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size as u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join(format!("usr/share/{name}/data")), data).expect("data");
    mkdirs(&[out.parent().expect("parent")]);
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&dir)
        .arg(out));
}

struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &self.home)
            .args(["--batch", "--quiet", "--no-tty"]);
        c
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

struct Apt {
    config: PathBuf,
}

impl Apt {
    fn new(work: &Path, url: &str, arch: &str, key: &Path) -> Apt {
        let a = work.join("apt");
        let etc = a.join("etc");
        mkdirs(&[
            &a.join("state/lists/partial"),
            &a.join("cache/archives/partial"),
            &etc.join("apt.conf.d"),
            &etc.join("sources.list.d"),
            &etc.join("preferences.d"),
            &etc.join("trusted.gpg.d"),
            &a.join("log"),
        ]);
        std::fs::write(a.join("state/status"), "").expect("status");
        std::fs::write(etc.join("sources.list"), "").expect("sources.list");
        let sources = format!(
            "Types: deb\nURIs: {url}\nSuites: stable\nComponents: main\nSigned-By: {}\n",
            key.display()
        );
        std::fs::write(etc.join("sources.list.d/test.sources"), sources).expect("sources");
        let a = a.display();
        let sandbox = if is_root() {
            "APT::Sandbox::User \"root\";\n"
        } else {
            ""
        };
        let config = format!(
            "Dir \"/\";\n\
             Dir::State \"{a}/state\";\nDir::State::status \"{a}/state/status\";\n\
             Dir::Cache \"{a}/cache\";\nDir::Log \"{a}/log\";\n\
             Dir::Etc \"{a}/etc\";\nDir::Etc::main \"/dev/null\";\nDir::Etc::parts \"{a}/etc/apt.conf.d\";\n\
             Dir::Etc::sourcelist \"{a}/etc/sources.list\";\nDir::Etc::sourceparts \"{a}/etc/sources.list.d\";\n\
             Dir::Etc::preferences \"{a}/etc/preferences\";\nDir::Etc::preferencesparts \"{a}/etc/preferences.d\";\n\
             Dir::Etc::trusted \"{a}/etc/trusted.gpg\";\nDir::Etc::trustedparts \"{a}/etc/trusted.gpg.d\";\n\
             APT::Architecture \"{arch}\";\nAPT::Architectures {{ \"{arch}\"; }};\n\
             Acquire::Languages \"none\";\nAcquire::http::Proxy \"DIRECT\";\nAcquire::Retries \"0\";\n\
             Acquire::http::Timeout \"20\";\n{sandbox}"
        );
        let path = work.join("apt.conf");
        std::fs::write(&path, config).expect("apt.conf");
        Apt { config: path }
    }

    /// Runs apt-get; fails on a non-zero exit or any warning-class line.
    fn get(&self, cwd: &Path, args: &[&str]) -> String {
        let out = run(Command::new("apt-get")
            .current_dir(cwd)
            .env("APT_CONFIG", &self.config)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            let l = line.trim_start();
            let bad = ["E:", "W:", "N:", "Err:", "Ign:"]
                .iter()
                .any(|p| l.starts_with(p));
            assert!(
                !bad,
                "apt-get {args:?}: {line}\n--- full output ---\n{text}"
            );
        }
        text
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
}

/// A throwaway signing key; returns it and the exported public key.
fn signing_key(work: &Path) -> (Gpg, PathBuf) {
    let gpg = Gpg {
        home: work.join("gnupg"),
    };
    mkdirs(&[&gpg.home]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gpg.home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    run(gpg.cmd().args([
        "--passphrase",
        "",
        "--pinentry-mode",
        "loopback",
        "--quick-gen-key",
        "swarmsync test repository <tests@example.invalid>",
        "ed25519",
        "sign",
        "1d",
    ]));
    let key = work.join("key.gpg");
    run(gpg.cmd().arg("--output").arg(&key).arg("--export"));
    (gpg, key)
}

fn host_arch() -> String {
    let arch_out = run(Command::new("dpkg").arg("--print-architecture"));
    String::from_utf8_lossy(&arch_out.stdout).trim().to_string()
}

/// A signed repository in `repo`: the packages `debs` (pool path, name,
/// version, size), indexes also by-hash, InRelease with Acquire-By-Hash.
fn make_repo(work: &Path, repo: &Path, arch: &str, gpg: &Gpg, debs: &[(&str, &str, &str, usize)]) {
    for (path, name, version, size) in debs {
        build_deb(work, name, version, *size, &repo.join(path));
    }
    // Indexes, Release and InRelease.
    let bin = repo.join(format!("dists/stable/main/binary-{arch}"));
    mkdirs(&[&bin]);
    let packages = run(Command::new("apt-ftparchive")
        .current_dir(repo)
        .args(["packages", "pool"]));
    std::fs::write(bin.join("Packages"), &packages.stdout).expect("Packages");
    run(Command::new("gzip")
        .args(["-9nk"])
        .arg(bin.join("Packages")));
    let release = run(Command::new("apt-ftparchive").current_dir(repo).args([
        "-o",
        "APT::FTPArchive::Release::Origin=swarmsync-test",
        // As Debian's archive: MD5Sum and SHA256 only, so SHA256 is the
        // strongest hash and the one apt asks for by-hash.
        "-o",
        "APT::FTPArchive::SHA512=false",
        "-o",
        "APT::FTPArchive::Release::Suite=stable",
        "-o",
        "APT::FTPArchive::Release::Codename=stable",
        "-o",
        &format!("APT::FTPArchive::Release::Architectures={arch}"),
        "-o",
        "APT::FTPArchive::Release::Components=main",
        "release",
        "dists/stable",
    ]));
    // by-hash: the indexes also under their SHA256 (as Debian's archive
    // publishes them), announced with Acquire-By-Hash; apt then asks only
    // for the by-hash paths, and silently falls back (an `Ign:` line) if
    // they are missing.
    let by_hash = bin.join("by-hash/SHA256");
    mkdirs(&[&by_hash]);
    for index in ["Packages", "Packages.gz"] {
        let sum = run(Command::new("sha256sum").arg(bin.join(index)));
        let sum = String::from_utf8_lossy(&sum.stdout);
        let hash = sum.split_whitespace().next().expect("sha256sum output");
        std::fs::copy(bin.join(index), by_hash.join(hash)).expect("by-hash copy");
    }
    let mut release = String::from_utf8(release.stdout).expect("Release is UTF-8");
    assert!(!release.contains("Acquire-By-Hash"), "{release}");
    release = release.replacen("\nDate:", "\nAcquire-By-Hash: yes\nDate:", 1);
    assert!(release.contains("Acquire-By-Hash: yes"), "{release}");
    std::fs::write(repo.join("dists/stable/Release"), release).expect("Release");
    run(gpg
        .cmd()
        .args([
            "--yes",
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "--output",
        ])
        .arg(repo.join("dists/stable/InRelease"))
        .arg(repo.join("dists/stable/Release")));
}

#[test]
fn apt_get_update_download_and_resume() {
    let work = tempfile::tempdir().expect("tmp");
    let work = work.path();
    let repo = work.join("repo");
    let arch = host_arch();
    let hello = "pool/main/h/hello-swarm/hello-swarm_1.0+1_all.deb";
    let (gpg, key) = signing_key(work);
    make_repo(
        work,
        &repo,
        &arch,
        &gpg,
        &[
            (hello, "hello-swarm", "1.0+1", 300_000),
            (
                "pool/main/o/other-swarm/other-swarm_2.0_all.deb",
                "other-swarm",
                "2.0",
                1_000,
            ),
        ],
    );

    let server = Server::start(
        vec![serve::Mount::new("/debian", &repo)],
        serve::Config::default(),
    );
    let apt = Apt::new(work, &server.url("/debian"), &arch, &key);

    let update = apt.get(work, &["-o", "Debug::Acquire::http=true", "update"]);
    assert!(update.contains("InRelease"), "{update}");
    assert!(update.contains("Packages"), "{update}");
    assert!(
        update.contains("/by-hash/SHA256/"),
        "apt did not use by-hash:\n{update}"
    );

    // Download: apt asks for `hello-swarm_1.0%2b1_all.deb`.
    let dl = work.join("dl");
    mkdirs(&[&dl]);
    let out = apt.get(
        &dl,
        &["-o", "Debug::Acquire::http=true", "download", "hello-swarm"],
    );
    assert!(
        out.to_ascii_lowercase().contains("%2b1_all.deb"),
        "apt did not percent-encode '+':\n{out}"
    );
    let original = std::fs::read(repo.join(hello)).expect("read deb");
    let name = "hello-swarm_1.0+1_all.deb";
    assert!(std::fs::read(dl.join(name)).expect("downloaded") == original);

    // Resume: an interrupted download leaves the head of the file in
    // archives/partial/, dated with the server's Last-Modified (apt's http
    // method dates it so); `apt-get install --download-only` continues it
    // with Range + If-Range. (`apt-get download` never resumes.)
    let modified = std::fs::metadata(repo.join(hello))
        .and_then(|m| m.modified())
        .expect("mtime");
    let archives = work.join("apt/cache/archives");
    let half = original.len() / 2;
    let partial = archives.join("partial").join(name);
    std::fs::write(&partial, &original[..half]).expect("partial");
    set_mtime(&partial, modified);
    let fetch = [
        "-o",
        "Debug::Acquire::http=true",
        "install",
        "--download-only",
        "-y",
        "hello-swarm",
    ];
    let out = apt.get(work, &fetch);
    let lower = out.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("range: bytes={half}-")),
        "apt sent no Range:\n{out}"
    );
    assert!(lower.contains("if-range:"), "apt sent no If-Range:\n{out}");
    assert!(
        lower.contains("http/1.1 206"),
        "the server did not resume:\n{out}"
    );
    assert!(
        std::fs::read(archives.join(name)).expect("resumed") == original,
        "resumed .deb differs"
    );

    // Negative control: a partial file from an older version of the file
    // (other bytes, older date) must not be extended: If-Range fails, the
    // server sends the whole file, and the hashes apt checks still match.
    std::fs::remove_file(archives.join(name)).expect("rm");
    std::fs::write(&partial, vec![0x55u8; half]).expect("stale partial");
    set_mtime(&partial, modified - Duration::from_secs(86_400));
    let out = apt.get(work, &fetch);
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("if-range:"), "apt sent no If-Range:\n{out}");
    assert!(
        lower.contains("http/1.1 200"),
        "a stale partial was not replaced:\n{out}"
    );
    assert!(
        !lower.contains("http/1.1 206"),
        "a stale partial was extended:\n{out}"
    );
    assert!(
        std::fs::read(archives.join(name)).expect("replaced") == original,
        "stale partial spliced"
    );
}

/// Forwards connections to `to`; just before the first request for a
/// by-hash path is passed on, runs `on_by_hash` once (a snapshot switch
/// between apt's InRelease and its indexes, at the worst moment).
fn switching_proxy(
    to: std::net::SocketAddr,
    on_by_hash: impl Fn() + Send + Sync + 'static,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
    let addr = listener.local_addr().expect("proxy addr");
    let switched = Arc::new(AtomicBool::new(false));
    let flag = switched.clone();
    let on_by_hash = Arc::new(on_by_hash);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = std::net::TcpStream::connect(to) else {
                return;
            };
            let (mut client_r, mut server_w) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (flag, on_by_hash) = (flag.clone(), on_by_hash.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut tail: Vec<u8> = Vec::new();
                loop {
                    let n = match client_r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    tail.extend_from_slice(&buf[..n]);
                    if !flag.load(Ordering::SeqCst) && tail.windows(9).any(|w| w == b"/by-hash/") {
                        on_by_hash();
                        flag.store(true, Ordering::SeqCst);
                    }
                    let keep = tail.len().saturating_sub(16);
                    tail.drain(..keep);
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, switched)
}

/// The race of design.md's "Consistency for clients", with the real apt:
/// the node switches to a new snapshot after apt has read InRelease and
/// before it asks for the indexes that InRelease names by hash. Pinning is
/// off, so only by-hash across snapshots can save the update: the new
/// snapshot does not have the old indexes, the old snapshot still does.
#[test]
fn apt_get_update_across_a_snapshot_switch() {
    let work = tempfile::tempdir().expect("tmp");
    let work = work.path();
    let arch = host_arch();
    let (gpg, key) = signing_key(work);
    let data = work.join("data");
    let hello = (
        "pool/main/h/hello-swarm/hello-swarm_1.0_all.deb",
        "hello-swarm",
        "1.0",
        2_000,
    );
    let newer = (
        "pool/main/n/new-swarm/new-swarm_1.0_all.deb",
        "new-swarm",
        "1.0",
        2_000,
    );
    make_repo(work, &data.join("snapshots/1"), &arch, &gpg, &[hello]);
    make_repo(
        work,
        &data.join("snapshots/2"),
        &arch,
        &gpg,
        &[hello, newer],
    );
    // A later publication has a later InRelease; built in the same second
    // here, apt's If-Modified-Since would get 304 for the new one.
    let later = SystemTime::now() + Duration::from_secs(60);
    set_mtime(&data.join("snapshots/2/dists/stable/InRelease"), later);
    let by_hash_dir = format!("dists/stable/main/binary-{arch}/by-hash/SHA256");
    let names = |seq: &str| -> Vec<String> {
        std::fs::read_dir(data.join("snapshots").join(seq).join(&by_hash_dir))
            .expect("by-hash dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    };
    let (old, new) = (names("1"), names("2"));
    assert!(
        old.iter().all(|h| !new.contains(h)),
        "the snapshots share an index"
    );
    std::os::unix::fs::symlink("snapshots/1", data.join("current")).expect("current");

    let config = serve::Config {
        sticky_grace: Duration::ZERO,
        ..serve::Config::default()
    };
    let server = Server::start(
        vec![serve::Mount::with_snapshots(
            "/debian",
            data.join("current"),
            data.join("snapshots"),
        )],
        config,
    );
    let switch_data = data.clone();
    let (proxy, switched) = switching_proxy(server.addr, move || {
        let next = switch_data.join("current.next");
        std::os::unix::fs::symlink("snapshots/2", &next).expect("symlink");
        std::fs::rename(&next, switch_data.join("current")).expect("switch");
    });
    let apt = Apt::new(work, &format!("http://{proxy}/debian"), &arch, &key);
    let update = apt.get(work, &["-o", "Debug::Acquire::http=true", "update"]);
    assert!(
        switched.load(std::sync::atomic::Ordering::SeqCst),
        "apt asked for no by-hash path:\n{update}"
    );
    assert!(
        old.iter().any(|h| update.contains(h.as_str())),
        "apt did not fetch the old snapshot's index by hash:\n{update}"
    );
    // apt holds snapshot 1's view, consistently.
    let lists = work.join("apt/state/lists");
    let packages_list = || -> String {
        std::fs::read_dir(&lists)
            .expect("lists")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
            .map(|e| std::fs::read_to_string(e.path()).expect("read list"))
            .collect()
    };
    let view = packages_list();
    assert!(view.contains("Package: hello-swarm"), "{view}");
    assert!(!view.contains("Package: new-swarm"), "{view}");
    // The next update sees the new snapshot.
    let second = apt.get(work, &["-o", "Debug::Acquire::http=true", "update"]);
    assert!(packages_list().contains("Package: new-swarm"), "{second}");
    let dl = work.join("dl");
    mkdirs(&[&dl]);
    apt.get(&dl, &["download", "new-swarm"]);
    assert!(dl.join("new-swarm_1.0_all.deb").is_file());
}
