//! A real rpm repository (rpmbuild + createrepo_c) synced origin → node
//! through swarmsync, read by the real dnf (issue 5's rpm acceptance
//! point): the subset holds one architecture plus `noarch` (which always
//! comes along, firmware/repo), `makecache` and `download` work against the
//! node, a republish moves only the changed files, and `makecache` keeps
//! working while the node switches snapshots under it.
//!
//! dnf reads no system repository or configuration: its own `-c dnf.conf`
//! with skip_if_unavailable=False (Debian's default turns a broken
//! repository into a warning), and any error, warning or failure line
//! fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::run_within;
use crate::sync_apt::{
    ChannelSpec, Swarm, changed, check_incremental, link_tree, run_ok, walk_files,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/fixtures");

fn rpm_fixture(out: &Path, generation: u8) {
    run_ok(
        Command::new("bash")
            .arg(format!("{FIXTURES}/rpm-repo.sh"))
            .arg(out)
            .arg("gz")
            .arg(generation.to_string()),
        Duration::from_secs(300),
    );
}

const RPM_SPEC: ChannelSpec = ChannelSpec {
    name: "fedora",
    mount: "/fedora",
    subset: "kind = \"rpm\"\narchitectures = [\"x86_64\"]",
};

/// A dnf with its own configuration, cache and install root, reading only
/// the node's repository.
struct Dnf {
    conf: PathBuf,
    root: PathBuf,
    empty: PathBuf,
    url: String,
    dl: PathBuf,
}

impl Dnf {
    fn new(dir: &Path, url: &str) -> Dnf {
        let (empty, root, dl) = (dir.join("empty"), dir.join("root"), dir.join("dl"));
        for d in [&empty, &root, &dl] {
            std::fs::create_dir_all(d).expect("mkdir dnf dirs");
        }
        let d = dir.display();
        let conf = dir.join("dnf.conf");
        std::fs::write(
            &conf,
            format!(
                "[main]\nskip_if_unavailable=False\ngpgcheck=0\ninstall_weak_deps=False\n\
                 cachedir={d}/cache\nlogdir={d}/log\npersistdir={d}/persist\n\
                 reposdir={d}/empty\npluginconfpath={d}/empty\nretries=1\ntimeout=20\n"
            ),
        )
        .expect("dnf.conf");
        Dnf {
            conf,
            root,
            empty,
            url: url.to_owned(),
            dl,
        }
    }

    /// Runs dnf; the combined output, or why it is not clean.
    fn try_run(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("dnf");
        cmd.env("LC_ALL", "C")
            .arg("-c")
            .arg(&self.conf)
            .arg("--installroot")
            .arg(&self.root)
            .args(["--releasever", "1", "--forcearch", "x86_64"])
            .arg(format!("--setopt=reposdir={}", self.empty.display()))
            .arg(format!("--repofrompath=swarm,{}", self.url))
            .arg("--repo=swarm")
            .args(args);
        for var in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        let run = run_within(&mut cmd, Duration::from_secs(120));
        let text = format!("{}{}", run.stdout, run.stderr);
        if run.code != Some(0) {
            return Err(format!("dnf {args:?} exited {:?}\n{text}", run.code));
        }
        let bad = text.lines().find(|l| {
            let l = l.to_ascii_lowercase();
            [
                "error", "warning", "failed", "cannot", "ignoring", "skipping", "mismatch",
            ]
            .iter()
            .any(|w| l.contains(w))
        });
        match bad {
            Some(line) => Err(format!("dnf {args:?}: {line}\n{text}")),
            None => Ok(text),
        }
    }

    fn run(&self, args: &[&str], swarm: &Swarm) -> String {
        self.try_run(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", swarm.logs()))
    }

    fn download(&self, packages: &[&str], swarm: &Swarm) -> String {
        let dest = self.dl.display().to_string();
        let mut args = vec![
            "download",
            "--arch=x86_64,noarch",
            "--destdir",
            dest.as_str(),
        ];
        args.extend_from_slice(packages);
        self.run(&args, swarm)
    }
}

/// Whether the fixture's `rel` is the same file as what `dnf download`
/// left in `dl`.
fn same_as_tree(tree: &Path, rel: &str, dl: &Path) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let got =
        std::fs::read(dl.join(name)).unwrap_or_else(|e| panic!("dnf download left no {name}: {e}"));
    got == std::fs::read(tree.join(rel)).expect("tree rpm")
}

/// Publish, sync an x86_64 (+ noarch) subset, dnf makecache + download
/// from the node; then republish with a package added and one removed and
/// count the bytes.
#[test]
fn rpm_subset_sync_then_incremental_republish() {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path();
    let tree = work.join("tree");
    rpm_fixture(&tree, 1);

    let (mut swarm, first) = Swarm::start(work, &tree, &RPM_SPEC);
    let seq1 = first.seq.expect("installed release");

    // x86_64 and noarch packages are on the node's disk; aarch64 ones are not.
    let stored = swarm.stored_contents();
    let mut inside = 0;
    for (rel, path) in walk_files(&tree) {
        if !rel.ends_with(".rpm") {
            continue;
        }
        let content = std::fs::read(path).expect("read tree file");
        if rel.ends_with(".aarch64.rpm") {
            assert!(
                !stored.contains(&content),
                "{rel} is outside the subset but on the node's disk"
            );
        } else {
            inside += 1;
            assert!(
                stored.contains(&content),
                "{rel} is in the subset but not stored"
            );
        }
    }
    assert_eq!(inside, 5, "the fixture's x86_64 and noarch packages");
    let served = swarm.served_tree();
    assert!(
        !served.keys().any(|p| p.ends_with(".aarch64.rpm")),
        "the snapshot holds aarch64 packages: {:?}",
        served.keys().collect::<Vec<_>>()
    );

    let dnf = Dnf::new(&work.join("dnf"), &swarm.url());
    let out = dnf.run(&["makecache"], &swarm);
    assert!(out.contains("Metadata cache created"), "{out}");
    dnf.download(&["hello-swarm", "swarm-tool", "swarm-data"], &swarm);
    for rel in [
        "Packages/h/hello-swarm-1.1-1.x86_64.rpm",
        "Packages/s/swarm-tool-2.0-1.x86_64.rpm",
        "Packages/s/swarm-data-1.0-1.noarch.rpm",
    ] {
        assert!(
            same_as_tree(&tree, rel, &dnf.dl),
            "{rel} from the node differs"
        );
    }

    // Generation 2: swarm-newcomer (noarch) added, swarm-docs removed.
    let before = swarm.status().expect("status").downloaded;
    rpm_fixture(&tree, 2);
    swarm.publish_once();
    let second = swarm.wait_switch(seq1);
    let new_served = swarm.served_tree();
    let c = changed(&served, &new_served);
    let moved = second.downloaded.saturating_sub(before);
    swarm.print_downloads();
    check_incremental(
        "rpm",
        &swarm.store(),
        seq1,
        second.seq.expect("installed release"),
        first.downloaded,
        moved,
        &c,
    );
    assert!(
        !new_served.keys().any(|p| p.contains("swarm-docs")),
        "the removed package is still served"
    );
    dnf.run(&["--refresh", "makecache"], &swarm);
    dnf.download(&["swarm-newcomer"], &swarm);
    assert!(
        same_as_tree(&tree, "Packages/s/swarm-newcomer-1.0-1.noarch.rpm", &dnf.dl),
        "swarm-newcomer from the node differs"
    );
    swarm.check_web_seed_clean();
    // Outside the subset: fetched from the swarm when a client asks.
    swarm.check_fetch_on_miss(&tree, "Packages/s/swarm-tool-2.0-1.aarch64.rpm");
}

/// Switches the node runs through while dnf makecache loops.
const SWITCHES: u64 = 100;

/// `dnf --refresh makecache` in a loop while the origin republishes
/// (two package sets in turn): repomd.xml and the primary it names must
/// always agree.
#[test]
fn rpm_makecache_loop_across_switches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path();
    let generations = [work.join("gen1"), work.join("gen2")];
    rpm_fixture(&generations[0], 1);
    rpm_fixture(&generations[1], 2);
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir tree");
    link_tree(&generations[0], &tree, &["Packages", "repodata"]);

    let (mut swarm, first) = Swarm::start(work, &tree, &RPM_SPEC);
    let dnf = Arc::new(Dnf::new(&work.join("dnf"), &swarm.url()));
    dnf.run(&["makecache"], &swarm);

    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (dnf, stop) = (Arc::clone(&dnf), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut runs = 0u32;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                runs += 1;
                if let Err(e) = dnf.try_run(&["--refresh", "makecache"]) {
                    failures.push(e);
                }
            }
            (runs, failures)
        })
    };
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(Arc::clone(&stop));

    let started = Instant::now();
    let mut seq = first.seq.expect("installed release");
    for i in 0..SWITCHES {
        let from = &generations[usize::from(i % 2 == 0)];
        link_tree(from, &tree, &["Packages", "repodata"]);
        swarm.publish_once();
        seq = swarm.wait_switch(seq).seq.expect("installed release");
    }
    let took = started.elapsed();
    drop(stopper);
    let (runs, failures) = looper.join().expect("dnf loop thread");
    eprintln!(
        "dnf loop: {SWITCHES} switches in {:.1} s, {runs} dnf makecache runs during them",
        took.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} dnf makecache runs failed; the first:\n{}\n{}",
        failures.len(),
        failures[0],
        swarm.logs()
    );
    assert!(
        runs >= 10,
        "only {runs} dnf makecache runs during the switches"
    );
    swarm.check_web_seed_clean();
}
