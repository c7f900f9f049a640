//! Store tests against real temporary directories, including a crash at
//! every single mutation of a workload (see `crash_disk`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use torrent::hash::Sha256;
use torrent::merkle::hash_bytes;

use crate::crash_disk::CrashDisk;
use crate::disk::FsDisk;
use crate::{Begin, Entry, Error, FileSpec, PieceOutcome, Store};

const P: u64 = 16 * 1024;

/// Deterministic file contents.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed % 31)) as u8
                ^ seed
        })
        .collect()
}

fn spec(data: &[u8], piece_len: u64) -> FileSpec {
    let h = hash_bytes(data, piece_len);
    FileSpec {
        root: h.root.expect("non-empty test file"),
        length: data.len() as u64,
        piece_len,
        piece_layer: h.piece_layer,
    }
}

fn pieces(data: &[u8], piece_len: u64) -> Vec<&[u8]> {
    data.chunks(piece_len as usize).collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Downloads a whole file in a scrambled order.
fn download(store: &mut Store, d: &[u8], piece_len: u64) -> Sha256 {
    let s = spec(d, piece_len);
    let root = s.root;
    store.begin_file(s).expect("begin");
    let ps = pieces(d, piece_len);
    let n = ps.len();
    for k in 0..n {
        let i = (k * 7 + 3) % n;
        let i = if n.is_multiple_of(7) { k } else { i };
        let out = store.write_piece(&root, i as u32, ps[i]).expect("write");
        assert_eq!(out, PieceOutcome::Verified, "piece {i}");
    }
    store.complete_file(&root).expect("complete");
    root
}

fn assert_clean(store: &Store) {
    let report = store.verify().expect("verify runs");
    assert!(report.is_clean(), "faults: {:#?}", report.faults);
}

#[test]
fn a_file_goes_from_pieces_to_object() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    for len in [
        1usize,
        100,
        P as usize,
        P as usize + 1,
        5 * P as usize + 17,
        64 * P as usize,
    ] {
        let d = data(len, len as u8);
        let root = download(&mut store, &d, P);
        assert!(store.has_object(&root));
        assert_eq!(fs::read(store.object_path(&root)).expect("read object"), d);
        let mode = fs::metadata(store.object_path(&root))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "objects are read-only");
        assert!(
            !dir.path()
                .join("partial")
                .join(format!("{}.part", torrent::hash::to_hex(&root)))
                .exists()
        );
    }
    let report = store.verify().expect("verify");
    assert!(report.is_clean(), "{:?}", report.faults);
    assert_eq!(report.objects, 6);
}

#[test]
fn bad_and_duplicate_pieces_are_refused() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(3 * P as usize + 5, 9);
    let s = spec(&d, P);
    let root = s.root;
    assert_eq!(store.begin_file(s.clone()).expect("begin"), Begin::Started);
    let ps = pieces(&d, P);
    let mut bad = ps[1].to_vec();
    bad[100] ^= 1;
    assert_eq!(
        store.write_piece(&root, 1, &bad).expect("w"),
        PieceOutcome::HashMismatch
    );
    assert_eq!(
        store.write_piece(&root, 1, ps[2]).expect("w"),
        PieceOutcome::HashMismatch
    );
    assert_eq!(
        store.write_piece(&root, 3, &ps[3][..4]).expect("w"),
        PieceOutcome::HashMismatch
    );
    assert!(matches!(
        store.write_piece(&root, 4, ps[3]),
        Err(Error::PieceOutOfRange {
            index: 4,
            pieces: 4,
            ..
        })
    ));
    assert_eq!(
        store.write_piece(&root, 1, ps[1]).expect("w"),
        PieceOutcome::Verified
    );
    assert_eq!(
        store.write_piece(&root, 1, ps[1]).expect("w"),
        PieceOutcome::AlreadyHave
    );
    assert_eq!(store.missing_pieces(&root).expect("missing"), vec![0, 2, 3]);
    assert!(store.verified_pieces(&root).expect("verified").is_empty());
    store.flush().expect("flush");
    assert_eq!(store.verified_pieces(&root).expect("verified"), vec![1]);
    assert_eq!(
        store.write_piece(&root, 1, ps[1]).expect("w"),
        PieceOutcome::AlreadyHave
    );
    assert!(matches!(
        store.complete_file(&root),
        Err(Error::Incomplete { missing: 3, .. })
    ));
    assert!(matches!(
        store.write_piece(&[0; 32], 0, b"x"),
        Err(Error::UnknownPartial { .. })
    ));
}

#[test]
fn inconsistent_specs_are_refused() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(4 * P as usize, 1);
    let good = spec(&d, P);
    let mut wrong_layer = good.clone();
    wrong_layer.piece_layer[2][0] ^= 1;
    let mut short_layer = good.clone();
    short_layer.piece_layer.pop();
    let mut odd_piece = good.clone();
    odd_piece.piece_len = 3 * P;
    let mut empty = good.clone();
    empty.length = 0;
    for bad in [wrong_layer, short_layer, odd_piece, empty] {
        assert!(matches!(
            store.begin_file(bad),
            Err(Error::InvalidSpec { .. })
        ));
    }
    assert_eq!(
        store.begin_file(good.clone()).expect("begin"),
        Begin::Started
    );
    let mut longer = good.clone();
    longer.length += 1;
    assert!(matches!(
        store.begin_file(longer),
        Err(Error::InvalidSpec { .. })
    ));
    assert_eq!(
        store.begin_file(good).expect("again"),
        Begin::Resumed { verified: 0 }
    );
}

#[test]
fn flushed_pieces_survive_a_restart_and_unflushed_ones_do_not() {
    let dir = tmp();
    let d = data(6 * P as usize, 4);
    let s = spec(&d, P);
    let root = s.root;
    let ps = pieces(&d, P);
    {
        let mut store = Store::open(dir.path()).expect("open");
        store.begin_file(s.clone()).expect("begin");
        for i in [0, 2, 5] {
            store.write_piece(&root, i, ps[i as usize]).expect("write");
        }
        store.flush().expect("flush");
        store.write_piece(&root, 3, ps[3]).expect("write");
        // Dropped without flush: piece 3 is not durable.
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.verified_pieces(&root).expect("v"), vec![0, 2, 5]);
    assert_eq!(store.missing_pieces(&root).expect("m"), vec![1, 3, 4]);
    assert_eq!(
        store.begin_file(s).expect("resume"),
        Begin::Resumed { verified: 3 }
    );
    for i in [1, 3, 4] {
        store.write_piece(&root, i, ps[i as usize]).expect("write");
    }
    store.complete_file(&root).expect("complete");
    assert_eq!(fs::read(store.object_path(&root)).expect("read"), d);
    assert_clean(&store);
}

#[test]
fn writes_are_coalesced_into_large_runs() {
    let dir = tmp();
    let disk = CrashDisk::new(u64::MAX);
    let mut store = Store::open_with(dir.path(), Box::new(disk.clone())).expect("open");
    let d = data(32 * P as usize, 5);
    let s = spec(&d, P);
    let root = s.root;
    store.begin_file(s).expect("begin");
    let ps = pieces(&d, P);
    let before = disk.ops();
    // Sixteen 16 KiB pieces, out of order: one 256 KiB write at the end.
    for i in (0..16).rev() {
        store.write_piece(&root, i, ps[i as usize]).expect("write");
    }
    assert_eq!(disk.ops() - before, 1, "one write for 256 KiB");
    let before = disk.ops();
    for i in [20, 17, 30] {
        store.write_piece(&root, i, ps[i as usize]).expect("write");
    }
    assert_eq!(disk.ops(), before, "short runs wait");
    store.flush().expect("flush");
    // Three runs written, one fsync, one commit.
    assert_eq!(disk.ops() - before, 5);
}

#[test]
fn write_out_makes_buffered_pieces_readable_without_recording_them() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(8 * P as usize, 9);
    let s = spec(&d, P);
    let root = s.root;
    store.begin_file(s).expect("begin");
    let ps = pieces(&d, P);
    for i in [0, 1, 5] {
        store.write_piece(&root, i, ps[i as usize]).expect("write");
    }
    store.write_out(&root).expect("write out");
    let part = std::fs::read(store.partial_path(&root)).expect("read .part");
    for i in [0usize, 1, 5] {
        let at = i * P as usize;
        assert_eq!(&part[at..at + P as usize], ps[i], "piece {i}");
    }
    // Readable, not durable: nothing recorded until a flush.
    assert!(store.verified_pieces(&root).expect("verified").is_empty());
    store.flush().expect("flush");
    assert_eq!(
        store.verified_pieces(&root).expect("verified"),
        vec![0, 1, 5]
    );
}

#[test]
fn a_partial_lost_from_disk_is_downloaded_again() {
    let dir = tmp();
    let d = data(3 * P as usize, 6);
    let s = spec(&d, P);
    let mut store = Store::open(dir.path()).expect("open");
    store.begin_file(s.clone()).expect("begin");
    store
        .write_piece(&s.root, 0, &d[..P as usize])
        .expect("write");
    store.flush().expect("flush");
    let part = dir
        .path()
        .join("partial")
        .join(format!("{}.part", torrent::hash::to_hex(&s.root)));
    fs::remove_file(&part).expect("rm");
    let report = store.verify().expect("verify");
    assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
    assert_eq!(
        store.begin_file(s.clone()).expect("resume"),
        Begin::Resumed { verified: 0 }
    );
    assert_eq!(store.missing_pieces(&s.root).expect("m"), vec![0, 1, 2]);
    assert_clean(&store);
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn snapshots_switch_and_gc_keeps_what_is_retained() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let (a, b, c) = (data(40_000, 1), data(70_000, 2), data(5, 3));
    let ra = download(&mut store, &a, P);
    let rb = download(&mut store, &b, P);
    store
        .build_snapshot(
            1,
            vec![
                (names(&["dists", "InRelease"]), Entry::File(ra)),
                (names(&["pool", "b.deb"]), Entry::File(rb)),
                (names(&["pool", "empty"]), Entry::Empty),
                (
                    names(&["dists", "stable"]),
                    Entry::Symlink("InRelease".into()),
                ),
            ],
        )
        .expect("build 1");
    assert_eq!(store.current().expect("current"), None);
    store.switch_current(1).expect("switch 1");
    assert_eq!(store.current().expect("current"), Some(1));
    let link = dir.path().join("current/pool/b.deb");
    assert_eq!(fs::read(&link).expect("read via current"), b);
    let ino = |p: &Path| fs::metadata(p).expect("stat").ino();
    assert_eq!(ino(&link), ino(&store.object_path(&rb)));

    // A GC before snapshot 2 exists must not eat c, completed for it.
    let rc = download(&mut store, &c, P);
    let report = store.gc(&[]).expect("gc");
    assert!(report.snapshots_removed.is_empty() && report.objects_removed == 0);
    store
        .build_snapshot(
            2,
            vec![
                (names(&["pool", "b.deb"]), Entry::File(rb)),
                (names(&["c"]), Entry::File(rc)),
            ],
        )
        .expect("build 2");
    // Idempotent.
    store.build_snapshot(2, Vec::new()).expect("build 2 again");
    store.switch_current(2).expect("switch 2");
    assert_clean(&store);
    let report = store.gc(&[2]).expect("gc");
    assert_eq!(report.snapshots_removed, vec![1]);
    assert_eq!(report.objects_removed, 1);
    assert_eq!(report.bytes_freed, a.len() as u64);
    assert!(!store.has_object(&ra) && store.has_object(&rb) && store.has_object(&rc));
    assert!(!store.snapshot_path(1).exists());
    assert_eq!(store.snapshots().expect("snapshots"), vec![2]);
    // current is never removed, whatever retain says.
    let report = store.gc(&[]).expect("gc");
    assert!(report.snapshots_removed.is_empty() && report.objects_removed == 0);
    assert_clean(&store);
}

#[test]
fn snapshot_entries_are_checked() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let cases: Vec<(Vec<String>, Entry)> = vec![
        (names(&[".."]), Entry::Empty),
        (names(&["a/b"]), Entry::Empty),
        (Vec::new(), Entry::Empty),
        (names(&["x"]), Entry::Symlink("/etc/passwd".into())),
        (names(&["x"]), Entry::Symlink("../../etc".into())),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let r = store.build_snapshot(i as u64 + 1, vec![case]);
        assert!(
            matches!(r, Err(Error::InvalidEntry { .. })),
            "case {i}: {r:?}"
        );
    }
    let r = store.build_snapshot(9, vec![(names(&["f"]), Entry::File([1; 32]))]);
    assert!(matches!(r, Err(Error::MissingObject { .. })), "{r:?}");
    let r = store.build_snapshot(
        10,
        vec![(names(&["f"]), Entry::Empty), (names(&["f"]), Entry::Empty)],
    );
    assert!(r.is_err(), "duplicate path");
    assert!(matches!(
        store.switch_current(9),
        Err(Error::UnknownSnapshot { seq: 9 })
    ));
    drop(store);
    // Failed builds leave nothing recorded, and open cleans their dirs.
    let store = Store::open(dir.path()).expect("reopen");
    assert!(store.snapshots().expect("snapshots").is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn verify_finds_corruption_and_names_the_file() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(3 * P as usize, 8);
    let root = download(&mut store, &d, P);
    store
        .build_snapshot(1, vec![(names(&["f"]), Entry::File(root))])
        .expect("build");
    store.switch_current(1).expect("switch");
    let e = data(4 * P as usize, 9);
    let se = spec(&e, P);
    store.begin_file(se.clone()).expect("begin");
    store
        .write_piece(&se.root, 2, &e[2 * P as usize..3 * P as usize])
        .expect("write");
    store.flush().expect("flush");
    assert_clean(&store);

    // Flip a byte of the object (through the read-only bit, as a bad card would).
    let obj = store.object_path(&root);
    fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut bytes = fs::read(&obj).expect("read");
    bytes[P as usize + 3] ^= 0x40;
    fs::write(&obj, &bytes).expect("write");
    // And a byte of the verified piece of the partial.
    let part = dir
        .path()
        .join("partial")
        .join(format!("{}.part", torrent::hash::to_hex(&se.root)));
    let mut pb = fs::read(&part).expect("read part");
    pb[2 * P as usize] ^= 1;
    fs::write(&part, &pb).expect("write part");
    // And point current somewhere bad.
    fs::remove_file(dir.path().join("current")).expect("rm");
    std::os::unix::fs::symlink("snapshots/7", dir.path().join("current")).expect("ln");

    let report = store.verify().expect("verify");
    let text: Vec<String> = report.faults.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].contains(&torrent::hash::to_hex(&root)[2..]) && text[0].contains("hashes to"));
    assert!(text[1].contains(".part") && text[1].contains("piece 2"));
    assert!(text[2].contains("current") && text[2].contains("snapshot 7"));
}

#[test]
fn verify_checks_snapshot_trees() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let (a, b) = (data(2000, 1), data(3000, 2));
    let (ra, rb) = (download(&mut store, &a, P), download(&mut store, &b, P));
    let tree = |x: u64| {
        vec![
            (names(&["a"]), Entry::File(ra)),
            (names(&["d", "b"]), Entry::File(rb)),
            (names(&["e"]), Entry::Empty),
            (names(&["l"]), Entry::Symlink(format!("d/b{x}"))),
        ]
    };
    store.build_snapshot(1, tree(1)).expect("build 1");
    store.build_snapshot(2, tree(2)).expect("build 2");
    store.switch_current(1).expect("switch");
    assert_clean(&store);
    let s1 = store.snapshot_path(1);
    // A copy is not a link, even with the right bytes.
    fs::remove_file(s1.join("a")).expect("rm");
    fs::write(s1.join("a"), &a).expect("copy");
    fs::write(s1.join("e"), b"not empty").expect("write");
    fs::remove_file(s1.join("l")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", s1.join("l")).expect("ln");
    fs::remove_file(s1.join("d/b")).expect("rm");
    fs::remove_dir_all(store.snapshot_path(2)).expect("rm -r");
    let report = store.verify().expect("verify");
    let text: Vec<String> = report.faults.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 5, "{text:#?}");
    for (fault, what) in text.iter().zip([
        "a: is not a link to object",
        "d/b: snapshot entry is missing",
        "e: should be an empty file",
        "l: should be a symlink to d/b1",
        "snapshots/2: recorded snapshot directory is missing",
    ]) {
        assert!(fault.contains(what), "{fault} lacks {what}");
    }
}

#[test]
fn open_removes_leftovers() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(1000, 1);
    let root = download(&mut store, &d, P);
    store
        .build_snapshot(3, vec![(names(&["f"]), Entry::File(root))])
        .expect("build");
    drop(store);
    let p = dir.path();
    fs::create_dir_all(p.join("snapshots/4.tmp/x")).expect("mk");
    fs::create_dir_all(p.join("snapshots/5")).expect("mk");
    std::os::unix::fs::symlink("snapshots/3", p.join("current.tmp")).expect("ln");
    fs::write(
        p.join("partial").join(format!("{}.part", "ab".repeat(32))),
        b"junk",
    )
    .expect("w");
    let store = Store::open(p).expect("reopen");
    let mut left: Vec<String> = fs::read_dir(p.join("snapshots"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["3"]);
    assert!(!p.join("current.tmp").exists());
    assert_eq!(fs::read_dir(p.join("partial")).expect("ls").count(), 0);
    assert_clean(&store);
}

#[test]
fn inspection_changes_nothing_and_refuses_writes() {
    let dir = tmp();
    let mut store = Store::open(dir.path()).expect("open");
    let d = data(2 * P as usize, 3);
    let root = download(&mut store, &d, P);
    store
        .build_snapshot(1, vec![(names(&["f"]), Entry::File(root))])
        .expect("build");
    drop(store);
    fs::create_dir_all(dir.path().join("snapshots/2.tmp")).expect("mk");
    let mut store = Store::open_inspect(dir.path()).expect("inspect");
    assert_clean(&store);
    assert!(
        dir.path().join("snapshots/2.tmp").exists(),
        "leftovers stay"
    );
    assert!(matches!(store.gc(&[]), Err(Error::InspectOnly { .. })));
    assert!(matches!(
        store.switch_current(1),
        Err(Error::InspectOnly { .. })
    ));
    assert!(matches!(store.flush(), Err(Error::InspectOnly { .. })));
    assert!(Store::open_inspect(dir.path().join("nothing")).is_err());
}

#[test]
fn a_second_process_is_locked_out() {
    let dir = tmp();
    let _store = Store::open(dir.path()).expect("open");
    // redb locks the file per open handle, so a second open in-process
    // behaves like another process.
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
}

/// The files of the crash workload: snapshot 1 = {a, b, e}, 2 = {b, c}.
struct Workload {
    files: Vec<(Vec<u8>, FileSpec)>,
}

impl Workload {
    fn new() -> Self {
        let files = [
            (5 * P as usize + 100, 1u8),
            (2 * P as usize, 2),
            (3000, 3),
            (4 * P as usize, 4),
        ]
        .iter()
        .map(|&(len, seed)| {
            let d = data(len, seed);
            let s = spec(&d, P);
            (d, s)
        })
        .collect();
        Self { files }
    }

    fn snapshot(&self, seq: u64) -> Vec<(Vec<String>, Entry)> {
        let f = |i: usize| Entry::File(self.files[i].1.root);
        match seq {
            1 => vec![
                (names(&["a"]), f(0)),
                (names(&["d", "b"]), f(1)),
                (names(&["d", "e"]), Entry::Empty),
                (names(&["d", "l"]), Entry::Symlink("b".into())),
            ],
            _ => vec![
                (names(&["d", "b"]), f(1)),
                (names(&["c"]), f(2)),
                (names(&["g"]), f(3)),
            ],
        }
    }

    /// Runs (or resumes) the workload to the end, or to the first error.
    fn run(&self, store: &mut Store) -> crate::Result<()> {
        for seq in 1..=2u64 {
            if store.current()?.is_some_and(|c| c >= seq) {
                continue;
            }
            for entry in self.snapshot(seq) {
                let Entry::File(root) = entry.1 else { continue };
                let Some((d, s)) = self.files.iter().find(|(_, s)| s.root == root) else {
                    continue;
                };
                if store.begin_file(s.clone())? == Begin::AlreadyComplete {
                    continue;
                }
                let ps = pieces(d, P);
                for (k, i) in store.missing_pieces(&root)?.into_iter().rev().enumerate() {
                    store.write_piece(&root, i, ps[i as usize])?;
                    if k % 2 == 1 {
                        store.flush()?;
                    }
                }
                store.complete_file(&root)?;
            }
            store.build_snapshot(seq, self.snapshot(seq))?;
            store.switch_current(seq)?;
            store.gc(&[seq.saturating_sub(1), seq])?;
        }
        Ok(())
    }

    /// Every piece the index calls verified holds the right bytes, and every
    /// object holds its file.
    fn check_pieces(&self, store: &Store) {
        for (d, s) in &self.files {
            if store.has_object(&s.root) {
                assert_eq!(&fs::read(store.object_path(&s.root)).expect("read"), d);
                // (A partial row may remain until open finishes the job.)
                continue;
            }
            let Ok(verified) = store.verified_pieces(&s.root) else {
                continue;
            };
            if verified.is_empty() {
                continue;
            }
            let part = fs::read(
                store
                    .dir()
                    .join("partial")
                    .join(format!("{}.part", torrent::hash::to_hex(&s.root))),
            )
            .expect("a partial with verified pieces has its file");
            for i in verified {
                let r = (i as usize * P as usize)..((i as usize + 1) * P as usize).min(d.len());
                assert_eq!(&part[r.clone()], &d[r], "piece {i}");
            }
        }
    }
}

/// A temporary directory in RAM when there is one: the crash double
/// simulates lost writes itself, so real fsyncs only cost time here.
fn ram_tmp() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| tempfile::tempdir_in(shm).ok())
        .flatten()
        .unwrap_or_else(tmp)
}

#[test]
fn power_cut_after_every_mutation_leaves_a_consistent_store() {
    let w = Workload::new();
    // How many mutations the whole workload makes.
    let total = {
        let dir = tmp();
        let disk = CrashDisk::new(u64::MAX);
        let mut store = Store::open_with(dir.path(), Box::new(disk.clone())).expect("open");
        w.run(&mut store).expect("clean run");
        disk.ops()
    };
    assert!(total > 40, "workload too small: {total}");
    eprintln!("power cut sweep: {total} mutations, two cuts each");
    for cut in 0..=total {
        let dir = ram_tmp();
        // A first cut anywhere in the workload, then a second one a few
        // mutations into the restart (recovery, or the resumed work).
        for (round, budget) in [(1, cut), (2, cut % 11)] {
            let disk = CrashDisk::new(budget);
            match Store::open_with(dir.path(), Box::new(disk.clone())) {
                Ok(mut store) => {
                    let r = w.run(&mut store);
                    assert!(r.is_err() == disk.is_dead(), "cut {cut}/{round}: {r:?}");
                }
                Err(_) => assert!(disk.is_dead()),
            }
            // Power back: the store must be consistent as found...
            if dir.path().join("index.redb").exists() {
                let store = Store::open_inspect(dir.path()).expect("inspect");
                let report = store.verify().expect("verify");
                assert!(
                    report.is_clean(),
                    "cut {cut}/{round}, as found: {:#?}",
                    report.faults
                );
                w.check_pieces(&store);
            }
        }
        // ...and after recovery...
        let mut store = Store::open_with(dir.path(), Box::new(FsDisk)).expect("reopen");
        let report = store.verify().expect("verify");
        assert!(report.is_clean(), "cut {cut}: {:#?}", report.faults);
        w.check_pieces(&store);
        // ...and finish the job.
        w.run(&mut store)
            .unwrap_or_else(|e| panic!("cut {cut}: resume failed: {e}"));
        assert_eq!(store.current().expect("current"), Some(2), "cut {cut}");
        assert_clean(&store);
        w.check_pieces(&store);
        store.gc(&[2]).expect("final gc");
        assert!(
            !store.has_object(&w.files[0].1.root),
            "cut {cut}: a is garbage by now"
        );
        assert_clean(&store);
    }
}

#[test]
fn the_store_can_move_to_a_blocking_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
}
