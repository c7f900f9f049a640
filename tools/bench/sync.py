#!/usr/bin/python3
"""Benchmarks of issue 5 "Channels and sync": incremental re-publish and the
node's memory while it syncs, in one run, on one machine.

    /usr/bin/python3 tools/bench/sync.py > report.md            # 2 GB, 20,000 files
    /usr/bin/python3 tools/bench/sync.py --small > report.md    # 200 MB, 2,000 files

1. Re-publish. A tree shaped like a package mirror (file sizes log-normal:
   median about 13 KB, mean 100 KB, a few files of tens of MB; 0.1 % empty;
   one directory per four files; one suite symlink) is generated
   deterministically under --work, on the filesystem of the origin's
   --state. `swarmsync publish --once` publishes it (this fills the hash
   cache). Then, --reps times: 1 % of the files (a different set each time)
   get new content of the same size and a new mtime (rewritten in place, or
   written to a temporary file and renamed over with --change rename, as
   rsync does); `swarmsync publish --once` re-publishes, and
   `swarmsync torrent create --hybrid` makes the torrent of the whole tree
   with the piece size the release uses. Each is timed as a whole process;
   the bytes it read are rchar and read_bytes of /proc/PID/io, taken from
   the exited (not yet reaped) process, plus the "read N bytes" that
   publish prints. Page cache: warm for both (24 GB of RAM on the project
   VM), which favours the full create. Ratios: re-publish time / full
   create time, bytes read / tree size.
2. Node memory. A further 5 % of files and bytes are added under debug/
   (a part the node does not select), the tree is published once more,
   and a long-running `swarmsync publish` (loopback ports) serves it. A
   node (`swarmsync run --config`, poll_interval 1s, a paths subset
   ["!debug/**"] that selects the 2 GB / 20,000 files of step 1, data_dir
   under --work) syncs it from the origin (peer and web seed). VmRSS,
   VmHWM and RssAnon of the node are sampled every 200 ms from
   /proc/PID/status until its /-/status.json says channels[0].state ==
   "synced" with the release's seq, then for --steady seconds more
   (steady RSS = the median VmRSS of that window). The node is stopped,
   its store is checked with `swarmsync verify`, and its served snapshot
   is compared with the tree (every file's size, the content of 1 in 50).
   Peers to compare with, in the same run, from the same origin:
   `swarmsync torrent download` and libtorrent 2.0.8
   (tests/interop/ltpeer.py leech) of the release torrent (the whole
   tree, debug/ included, so 5 % more than the node). libtorrent maps the
   files it writes, so its RssAnon peak is its figure, as in download.py.

Needs: a release build (made here unless --no-build or --swarmsync),
python3-libtorrent for the libtorrent peer (--compare to change), and
about 3 x the tree size of free disk under --work (tree; node store; one
comparison download at a time). Removes everything it made unless --keep.
Prints a Markdown report on stdout, progress on stderr.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from benchlib import (
    LTPEER,
    MIB,
    PY,
    ROOT,
    children,
    cleanup,
    die,
    free_port,
    log,
    proc_status,
    version,
)

CHANNEL = "bench"


def mib(n):
    return n / MIB


# --- the tree ---------------------------------------------------------------


def content(seed, version, size):
    """Deterministic incompressible bytes, unique per (file, version)."""
    return hashlib.shake_128(b"swarmsync-bench:%d:%d" % (seed, version)).digest(size)


def plan_tree(files, total, seed, prefix, first_id):
    """[(relative path, size, id)] of `files` files summing to `total` bytes."""
    rnd = random.Random(seed)
    # Log-normal, sigma 2: mean = median * e^2. Scaled to the total below.
    sigma = 2.0
    mean = total / files
    mu = math.log(mean) - sigma * sigma / 2
    raw = [min(rnd.lognormvariate(mu, sigma), 400 * mean) for _ in range(files)]
    empties = set(rnd.sample(range(files), max(1, files // 1000)))
    for i in empties:
        raw[i] = 0.0
    scale = total / sum(raw)
    sizes = [int(r * scale) for r in raw]
    biggest = max(range(files), key=lambda i: sizes[i])
    sizes[biggest] += total - sum(sizes)
    out = []
    archs = ["amd64", "arm64", "armhf", "all"]
    for i, size in enumerate(sizes):
        pkg = "p%05d" % (i // 4)
        letter = "abcdefghijklmnopqrstuvwxyz"[(i // 4 * 7) % 26]
        name = "%s-%d_1.%d-1_%s.deb" % (pkg, i % 4, i % 7, archs[i % 4])
        out.append(("%s/%s/%s/%s" % (prefix, letter, pkg, name), size, first_id + i))
    return out


def write_tree(root, entries, version=0):
    t0 = time.monotonic()
    for rel, size, fid in entries:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content(fid, version, size))
    return time.monotonic() - t0


def change_files(root, entries, pct, rep, mode):
    """New content (same size) and a new mtime for pct % of the non-empty
    files, a different deterministic set per rep. Returns (count, bytes)."""
    rnd = random.Random(1000 + rep)
    candidates = [e for e in entries if e[1] > 0]
    n = max(1, round(len(entries) * pct / 100))
    chosen = rnd.sample(candidates, n)
    now = time.time_ns()
    for rel, size, fid in chosen:
        path = os.path.join(root, rel)
        data = content(fid, rep + 1, size)
        if mode == "rename":
            tmp = os.path.join(os.path.dirname(path), ".tmp." + os.path.basename(path))
            with open(tmp, "wb") as f:
                f.write(data)
            os.utime(tmp, ns=(now, now))
            os.rename(tmp, path)
        else:
            with open(path, "r+b") as f:
                f.write(data)
                f.truncate(size)
            os.utime(path, ns=(now, now))
    return n, sum(e[1] for e in chosen)


# --- processes --------------------------------------------------------------


def proc_io(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            return {k: int(v) for k, v in (l.split(": ") for l in f.read().splitlines())}
    except OSError:
        return {}


def timed(argv, log_path, timeout=3600, sample=None):
    """Runs argv to its end; returns wall seconds, /proc/PID/io of the
    exited process, rusage, the output and the sampled peaks (VmHWM and
    RssAnon, KiB) when `sample` is the interval."""
    out = open(log_path, "w+")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    children.append(p)
    peaks = {"VmHWM": 0, "RssAnon": 0}
    while True:
        if sample:
            for k, v in proc_status(p.pid).items():
                if k in peaks:
                    peaks[k] = max(peaks[k], v)
        # Wait without reaping, so /proc/PID/io still holds the totals.
        r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if r is not None:
            wall = time.monotonic() - t0
            break
        if time.monotonic() - t0 > timeout:
            p.kill()
            die("%s did not finish within %d s" % (" ".join(argv), timeout))
        time.sleep(sample or 0.005)
    io = proc_io(p.pid)
    _, st, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(st)
    children.remove(p)
    out.seek(0)
    text = out.read()
    out.close()
    if p.returncode != 0:
        die("%s exited with %d:\n%s" % (" ".join(argv), p.returncode, text[-3000:]))
    return wall, io, ru, text, peaks


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in children:
        children.remove(p)
    return p.returncode


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


# --- 1. re-publish ----------------------------------------------------------


def publish_once(a, bin_, work, tag):
    argv = [bin_, "publish", "--once", "--key", a.key, "--channel", CHANNEL, "--tree", a.tree,
            "--state", a.state, "--listen", a.listen, "--http", a.http, "--url", a.url,
            "--expires", "1d"]
    wall, io, ru, text, _ = timed(argv, os.path.join(work, "publish-%s.log" % tag))
    read = None
    for line in text.splitlines():
        if "published release" in line and "read " in line:
            read = int(line.split("read ", 1)[1].split()[0])
            seq = int(line.split("published release ", 1)[1].split()[0])
            break
    else:
        die("publish --once printed no release:\n" + text[-2000:])
    return {"wall": wall, "rchar": io.get("rchar", 0), "read_bytes": io.get("read_bytes", 0),
            "read": read, "seq": seq, "cpu": ru.ru_utime + ru.ru_stime,
            "maxrss_kib": ru.ru_maxrss}


def torrent_create(bin_, tree, out, piece, work):
    argv = [bin_, "torrent", "create", tree, "-o", out, "--hybrid", "--piece-size", str(piece)]
    if os.path.exists(out):
        os.remove(out)
    wall, io, ru, _, _ = timed(argv, os.path.join(work, "create.log"))
    return {"wall": wall, "rchar": io.get("rchar", 0), "read_bytes": io.get("read_bytes", 0),
            "cpu": ru.ru_utime + ru.ru_stime}


def piece_length(bin_, torrent):
    shown = subprocess.run([bin_, "torrent", "show", torrent], capture_output=True,
                           text=True, check=True).stdout
    for l in shown.splitlines():
        if l.startswith("piece length: "):
            return int(l.split(": ")[1].split()[0])
    die("torrent show printed no piece length")


def bench_republish(a, bin_, work, entries, total):
    log("first publish (fills the hash cache)...")
    first = publish_once(a, bin_, work, "first")
    log("  %.2f s, read %d bytes" % (first["wall"], first["read"]))
    torrent = os.path.join(a.state, CHANNEL, "torrents", "%d.torrent" % first["seq"])
    piece = piece_length(bin_, torrent)
    full_out = os.path.join(work, "full.torrent")
    # The first full create warms nothing the publish did not; run one
    # untimed to have the same page-cache state for every timed run.
    torrent_create(bin_, a.tree, full_out, piece, work)
    reps = []
    for rep in range(a.reps):
        n, changed = change_files(a.tree, entries, a.changed_pct, rep, a.change)
        order = ["publish", "create"] if rep % 2 == 0 else ["create", "publish"]
        r = {"changed_files": n, "changed_bytes": changed}
        for what in order:
            if what == "publish":
                r["publish"] = publish_once(a, bin_, work, "rep%d" % rep)
            else:
                r["create"] = torrent_create(bin_, a.tree, full_out, piece, work)
        log("rep %d: %d files (%d bytes) changed; re-publish %.2f s read %d (rchar %d); "
            "create %.2f s (rchar %d)" % (rep + 1, n, changed, r["publish"]["wall"],
                                           r["publish"]["read"], r["publish"]["rchar"],
                                           r["create"]["wall"], r["create"]["rchar"]))
        reps.append(r)
    return first, piece, reps


# --- 2. node memory ---------------------------------------------------------


class Origin:
    def __init__(self, a, bin_, work):
        self.log = open(os.path.join(work, "origin.log"), "w+")
        self.p = subprocess.Popen(
            [bin_, "publish", "--key", a.key, "--channel", CHANNEL, "--tree", a.tree,
             "--state", a.state, "--listen", a.listen, "--http", a.http, "--url", a.url,
             "--expires", "1d"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        children.append(self.p)
        feed = "%s/-/releases/%s" % (a.url, CHANNEL)
        deadline = time.monotonic() + 600
        while True:
            try:
                http_get(feed)
                break
            except Exception:
                pass
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                die("the origin did not come up:\n" + self.log.read()[-3000:])
            time.sleep(0.2)

    def stop(self):
        stop(self.p)
        self.log.seek(0)
        return self.log.read()


def bench_node(a, bin_, work, expect_seq, expect_files, expect_bytes, entries):
    data = os.path.join(work, "node")
    http_port = free_port()
    peer_port = free_port()
    config = os.path.join(work, "node.toml")
    with open(config, "w") as f:
        f.write(
            '[node]\ndata_dir = "%s"\npeer_listen = "127.0.0.1:%d"\nhttp_listen = "127.0.0.1:%d"\n'
            'poll_interval = "1s"\n\n'
            '[[channel]]\nname = "%s"\npublic_key = "%s"\nfeeds = ["%s/-/releases/%s"]\n\n'
            '[channel.subset]\nkind = "paths"\ninclude = ["!debug/**"]\n\n'
            '[network]\nlsd = false\n' % (data, peer_port, http_port, CHANNEL, a.public,
                                         a.url, CHANNEL))
    status_url = "http://127.0.0.1:%d/-/status.json" % http_port
    nlog = open(os.path.join(work, "node.log"), "w+")
    t0 = time.monotonic()
    wrapper = a.node_wrapper.split() if a.node_wrapper else []
    p = subprocess.Popen(wrapper + [bin_, "run", "--config", config], stdin=subprocess.DEVNULL,
                         stdout=nlog, stderr=subprocess.STDOUT)
    children.append(p)
    samples = []  # (t, VmRSS, VmHWM, RssAnon)
    synced_at = None
    last_status = {}
    next_status = 0.0
    ch = {}
    while True:
        now = time.monotonic() - t0
        s = proc_status(p.pid)
        if not s or p.poll() is not None:
            nlog.seek(0)
            die("the node exited:\n" + nlog.read()[-3000:])
        samples.append((now, s.get("VmRSS", 0), s.get("VmHWM", 0), s.get("RssAnon", 0)))
        if synced_at is None and now >= next_status:
            next_status = now + 1.0
            try:
                last_status = json.loads(http_get(status_url))
                ch = (last_status.get("channels") or [{}])[0]
                if ch.get("state") == "synced" and ch.get("seq") is not None:
                    if ch["seq"] != expect_seq:
                        die("the node synced release %s, not %d" % (ch["seq"], expect_seq))
                    synced_at = now
                    synced_status = ch
                    log("node synced release %d after %.1f s (%d files); steady window %d s"
                        % (expect_seq, now, ch.get("files_total", 0), a.steady))
                elif int(now) % 10 == 0:
                    log("node: %s %s/%s files, %.0f/%.0f MiB, RSS %.1f MiB" % (
                        ch.get("state"), ch.get("files_done"), ch.get("files_total"),
                        mib(ch.get("have_bytes", 0)), mib(ch.get("total_bytes", 0)),
                        s.get("VmRSS", 0) / 1024))
            except Exception as e:
                if now > 30:
                    log("status.json: %s" % e)
        if synced_at is not None and now - synced_at >= a.steady:
            break
        if now > a.timeout:
            die("the node did not sync within %d s (last status: %s)" % (a.timeout, ch))
        time.sleep(0.2)
    final = proc_status(p.pid)
    rc = stop(p)
    nlog.seek(0)
    node_log = nlog.read()
    nlog.close()
    if rc != 0:
        die("the node exited with %s on SIGTERM:\n%s" % (rc, node_log[-3000:]))
    sync_samples = [x for x in samples if x[0] <= synced_at]
    steady = [x for x in samples if x[0] > synced_at]
    res = {
        "sync_s": synced_at,
        "peak_hwm_kib": max(final.get("VmHWM", 0), max(x[2] for x in samples)),
        "peak_rss_sampled_kib": max(x[1] for x in sync_samples),
        "peak_anon_kib": max(x[3] for x in samples),
        "steady_rss_kib": statistics.median(x[1] for x in steady),
        "steady_rss_max_kib": max(x[1] for x in steady),
        "steady_anon_kib": statistics.median(x[3] for x in steady),
        "samples": len(samples),
        "files_total": synced_status.get("files_total"),
        "total_bytes": synced_status.get("total_bytes"),
        "downloaded": synced_status.get("downloaded"),
        # RSS at 25/50/75/100 % of the sync time: where it grows.
        "rss_timeline_mib": [round(sync_samples[min(len(sync_samples) - 1,
                                                   int(len(sync_samples) * q))][1] / 1024, 1)
                             for q in (0.25, 0.5, 0.75, 1.0)],
    }
    if synced_status.get("files_total") != expect_files:
        log("warning: the node's subset has %s non-empty files, expected %d"
            % (synced_status.get("files_total"), expect_files))
    # The store and the served snapshot.
    if not a.no_verify:
        v = subprocess.run([bin_, "verify", "--state", os.path.join(data, CHANNEL)],
                           capture_output=True, text=True)
        if v.returncode != 0:
            die("swarmsync verify failed: %s%s" % (v.stdout, v.stderr))
        res["verify"] = v.stdout.strip().splitlines()[-1] if v.stdout.strip() else ""
        log("verify: " + res["verify"])
    cur = os.path.join(data, CHANNEL, "current")
    bad = 0
    for i, (rel, size, _) in enumerate(entries):
        path = os.path.join(cur, rel)
        try:
            ok = os.path.getsize(path) == size
            if ok and i % 50 == 0:
                with open(path, "rb") as f1, open(os.path.join(a.tree, rel), "rb") as f2:
                    ok = f1.read() == f2.read()
        except OSError:
            ok = False
        bad += not ok
    if bad:
        die("%d files of the subset are missing or differ in the node's snapshot" % bad)
    # Empty files are always in a node's tree (node/sync.rs): count the rest.
    res["debug_entries"] = sum(
        os.path.getsize(os.path.join(d, f)) > 0
        for d, _, fs in os.walk(os.path.join(cur, "debug")) for f in fs)
    if res["debug_entries"]:
        log("warning: the node's snapshot has %d non-empty files under debug/, which its "
            "subset excludes" % res["debug_entries"])
    res["checked"] = len(entries)
    return res


def bench_peer(kind, bin_, a, torrent, work):
    dl = os.path.join(work, "dl-" + kind)
    shutil.rmtree(dl, ignore_errors=True)
    os.makedirs(dl)
    peer = a.listen
    if kind == "swarmsync":
        argv = [bin_, "torrent", "download", torrent, "--dir", dl, "--peer", peer]
    else:
        argv = [PY, LTPEER, "leech", dl, torrent, "--peer", peer, "--timeout", str(a.timeout)]
    log("comparison: %s downloads the release torrent..." % kind)
    wall, io, ru, text, peaks = timed(argv, dl + ".log", timeout=a.timeout + 60, sample=0.02)
    shutil.rmtree(dl, ignore_errors=True)
    os.remove(dl + ".log")
    r = {"wall": wall, "hwm_kib": peaks["VmHWM"], "anon_kib": peaks["RssAnon"],
         "cpu": ru.ru_utime + ru.ru_stime}
    log("  %.1f s, VmHWM %.1f MiB, RssAnon peak %.1f MiB" % (
        wall, r["hwm_kib"] / 1024, r["anon_kib"] / 1024))
    return r


# --- main -------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000, help="files in the tree (20000)")
    ap.add_argument("--size-mb", type=int, default=2000, help="tree size in MB, 10^6 (2000)")
    ap.add_argument("--small", action="store_true", help="2,000 files, 200 MB: a quick check")
    ap.add_argument("--changed-pct", type=float, default=1.0)
    ap.add_argument("--change", choices=["inplace", "rename"], default="inplace",
                    help="how changed files are rewritten (default: in place)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steady", type=int, default=20, help="seconds of RSS after the sync (20)")
    ap.add_argument("--timeout", type=int, default=1800, help="for one sync or download (s)")
    ap.add_argument("--only", default="publish,node", help="publish,node")
    ap.add_argument("--compare", default="swarmsync,libtorrent",
                    help="peers to compare the node with: swarmsync,libtorrent or none")
    ap.add_argument("--no-verify", action="store_true", help="skip `swarmsync verify`")
    ap.add_argument("--swarmsync", help="a release swarmsync binary (default: build one)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/swarmsync")
    ap.add_argument("--work", default="/var/tmp/swarmsync-bench-sync",
                    help="scratch directory (tree, origin state, node data: one filesystem)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--node-wrapper", help="run the node under this command, e.g. "
                    "\"heaptrack -o /tmp/node\" (its RSS figures are then the wrapper's)")
    a = ap.parse_args()
    if a.small:
        a.files, a.size_mb = 2000, 200
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    only = set(a.only.split(","))
    compare = [c for c in a.compare.split(",") if c and c != "none"]
    if "libtorrent" in compare and not os.path.exists(PY):
        die("%s is missing (python3-libtorrent): use --compare swarmsync" % PY)

    load0 = open("/proc/loadavg").read().split()[0]
    bin_ = a.swarmsync
    if not bin_:
        if not a.no_build:
            log("building swarmsync (release)...")
            subprocess.run(["nice", "cargo", "build", "--release", "-p", "swarmsync"],
                           cwd=ROOT, check=True)
        bin_ = os.path.join(ROOT, "target", "release", "swarmsync")
    bin_ = os.path.abspath(bin_)

    work = os.path.abspath(a.work)
    if os.path.exists(work):
        die("--work %s exists; remove it first" % work)
    os.makedirs(work)
    total = a.size_mb * 1000 * 1000
    free = shutil.disk_usage(work).free
    if free < 3.3 * total:
        shutil.rmtree(work)
        die("%s has %.1f GB free; this needs %.1f GB" % (work, free / 1e9, 3.3 * total / 1e9))

    try:
        return run(a, bin_, work, total, only, compare, load0)
    finally:
        cleanup()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(a, bin_, work, total, only, compare, load0):
    a.tree = os.path.join(work, "tree")
    a.state = os.path.join(work, "state")
    a.key = os.path.join(work, "origin.key")
    http_port, peer_port = free_port(), free_port()
    a.http = "127.0.0.1:%d" % http_port
    a.listen = "127.0.0.1:%d" % peer_port
    a.url = "http://127.0.0.1:%d" % http_port
    a.public = subprocess.run([bin_, "keygen", "--out", a.key], capture_output=True, text=True,
                              check=True).stdout.strip()

    entries = plan_tree(a.files, total, seed=5, prefix="pool/main", first_id=0)
    log("writing the tree: %d files, %.0f MB under %s..." % (a.files, total / 1e6, a.tree))
    gen_s = write_tree(a.tree, entries)
    os.makedirs(os.path.join(a.tree, "dists", "bookworm"), exist_ok=True)
    os.symlink("bookworm", os.path.join(a.tree, "dists", "stable"))
    sizes = sorted(e[1] for e in entries)
    log("  %.1f s; sizes: median %d B, largest %d B, %d files >= 1 MiB" % (
        gen_s, sizes[len(sizes) // 2], sizes[-1], sum(s >= MIB for s in sizes)))

    report = []
    out = report.append
    out("Tree: %d files, %.0f MB (%.2f GiB) under one directory per four files, sizes "
        "log-normal (median %.1f KB, mean %.1f KB, largest %.1f MB, %d files of 1 MiB or more, "
        "%d empty), one suite symlink; generated deterministically on the filesystem of "
        "the origin's --state." % (
            a.files, total / 1e6, total / (1 << 30), sizes[len(sizes) // 2] / 1e3,
            total / a.files / 1e3, sizes[-1] / 1e6, sum(s >= MIB for s in sizes),
            sum(s == 0 for s in sizes)))
    out("")

    first = None
    if "publish" in only:
        first, piece, reps = bench_republish(a, bin_, work, entries, total)
        med = lambda f: statistics.median(f(r) for r in reps)
        rp_wall = med(lambda r: r["publish"]["wall"])
        cr_wall = med(lambda r: r["create"]["wall"])
        rp_read = med(lambda r: r["publish"]["read"])
        rp_rchar = med(lambda r: r["publish"]["rchar"])
        cr_rchar = med(lambda r: r["create"]["rchar"])
        changed = med(lambda r: r["changed_bytes"])
        out("### Re-publish with %g %% of the files changed (%d files, median %.1f MB of "
            "content, rewritten %s)" % (a.changed_pct, reps[0]["changed_files"], changed / 1e6,
                                        "in place" if a.change == "inplace"
                                        else "by rename"))
        out("")
        out("Median of %d runs (a different set of files each run; the two commands "
            "alternate in order); hybrid torrents, piece size %d KiB (the release's); "
            "page cache warm." % (a.reps, piece // 1024))
        out("")
        out("| | wall s | CPU s | read (printed) | rchar | read_bytes | rchar / tree |")
        out("|---|---:|---:|---:|---:|---:|---:|")
        out("| first `publish --once` (empty hash cache) | %.2f | %.2f | %.1f MB | %.1f MB | "
            "%.1f MB | %.3f |" % (first["wall"], first["cpu"], first["read"] / 1e6,
                                   first["rchar"] / 1e6, first["read_bytes"] / 1e6,
                                   first["rchar"] / total))
        out("| re-publish `publish --once` | %.2f | %.2f | %.1f MB | %.1f MB | %.1f MB | "
            "%.4f |" % (rp_wall, med(lambda r: r["publish"]["cpu"]), rp_read / 1e6,
                         rp_rchar / 1e6, med(lambda r: r["publish"]["read_bytes"]) / 1e6,
                         rp_rchar / total))
        out("| full `torrent create --hybrid` | %.2f | %.2f | — | %.1f MB | %.1f MB | %.3f |" % (
            cr_wall, med(lambda r: r["create"]["cpu"]), cr_rchar / 1e6,
            med(lambda r: r["create"]["read_bytes"]) / 1e6, cr_rchar / total))
        out("")
        out("- **re-publish time / full create time: %.2f** (runs: %s)" % (
            rp_wall / cr_wall, ", ".join("%.2f / %.2f s" % (r["publish"]["wall"],
                                                           r["create"]["wall"]) for r in reps)))
        out("- **bytes read / tree size: %.4f** by publish's count (%.1f MB; the changed "
            "files are %.1f MB), %.4f by rchar (%.1f MB: every read() of the process, the "
            "hash cache and the previous torrent included)" % (
                rp_read / total, rp_read / 1e6, changed / 1e6, rp_rchar / total,
                rp_rchar / 1e6))
        out("- peak RSS (ru_maxrss): first publish %.1f MiB, re-publish %.1f MiB" % (
            first["maxrss_kib"] / 1024, med(lambda r: r["publish"]["maxrss_kib"]) / 1024))
        out("")

    if "node" in only:
        extra_files = max(1, a.files // 20)
        extra = plan_tree(extra_files, total // 20, seed=6, prefix="debug/pool/main",
                          first_id=10_000_000)
        log("adding debug/ (%d files, %.0f MB; not selected by the node)..." % (
            extra_files, total / 20 / 1e6))
        write_tree(a.tree, extra)
        pub = publish_once(a, bin_, work, "debug")
        log("  published release %d, read %d bytes" % (pub["seq"], pub["read"]))
        origin = Origin(a, bin_, work)
        try:
            log("node syncing...")
            node = bench_node(a, bin_, work, pub["seq"], sum(e[1] > 0 for e in entries), total,
                              entries)
            torrent = os.path.join(a.state, CHANNEL, "torrents", "%d.torrent" % pub["seq"])
            peers = {}
            for kind in compare:
                peers[kind] = bench_peer(kind, bin_, a, torrent, work)
            origin_hwm = proc_status(origin.p.pid).get("VmHWM", 0)
        finally:
            olog = origin.stop()
        if "error" in olog.lower() or "panick" in olog.lower():
            log("the origin logged errors:\n" + "\n".join(
                l for l in olog.splitlines() if "ERROR" in l or "panick" in l)[:3000])
        n = node
        out("### Node memory while syncing %d files, %.0f MB (paths subset `[\"!debug/**\"]` "
            "of a %d-file, %.0f MB release)" % (
                n["files_total"] or 0, (n["total_bytes"] or 0) / 1e6,
                a.files + extra_files + 1, (total + total // 20) / 1e6))
        out("")
        out("| | goal | measured | met |")
        out("|---|---:|---:|---|")
        peak = n["peak_hwm_kib"] / 1024
        steady = n["steady_rss_kib"] / 1024
        out("| peak RSS (VmHWM) | < 48 MiB | %.1f MiB | %s |" % (peak, "yes" if peak < 48 else
                                                                   "**no**"))
        out("| steady RSS after the sync (median VmRSS over %d s) | < 32 MiB | %.1f MiB | %s |" % (
            a.steady, steady, "yes" if steady < 32 else "**no**"))
        out("")
        out("- sync: %.1f s from `swarmsync run` to status \"synced\" (%.0f MB/s), "
            "downloaded %.1f MB from the origin (peer + web seed); RSS at 25/50/75/100 %% of "
            "that time: %s MiB; peak RssAnon %.1f MiB; steady RssAnon %.1f MiB, steady VmRSS "
            "max %.1f MiB; %d samples at 200 ms" % (
                n["sync_s"], (n["total_bytes"] or 0) / n["sync_s"] / 1e6,
                (n["downloaded"] or 0) / 1e6, " / ".join(str(x) for x in n["rss_timeline_mib"]),
                n["peak_anon_kib"] / 1024, n["steady_anon_kib"] / 1024,
                n["steady_rss_max_kib"] / 1024, n["samples"]))
        out("- checks: `swarmsync verify` of the node's store: %s; the served snapshot holds "
            "all %d files of the subset with their sizes (content compared for 1 in 50) and "
            "%d non-empty files under debug/ (empty files are always in a node's tree)." % (
                n.get("verify", "skipped"), n["checked"], n["debug_entries"]))
        out("- origin (long-running `swarmsync publish`, seeding and web seed) VmHWM at the "
            "end: %.1f MiB" % (origin_hwm / 1024))
        if peers:
            out("")
            out("Peers downloading the same release torrent from the same origin, same run "
                "(the whole tree: %d files, %.0f MB, 5 %% more than the node's subset):" % (
                    a.files + extra_files + 1, (total + total // 20) / 1e6))
            out("")
            out("| downloader | peak RSS MiB | node peak / this | RssAnon peak MiB | wall s | "
                "CPU s |")
            out("|---|---:|---:|---:|---:|---:|")
            out("| swarmsync node (`run`, subset) | %.1f | 1.00 | %.1f | %.1f | — |" % (
                peak, n["peak_anon_kib"] / 1024, n["sync_s"]))
            for kind, r in peers.items():
                label = {"swarmsync": "`swarmsync torrent download`",
                         "libtorrent": "libtorrent 2.0.8 (python, ltpeer.py leech)"}[kind]
                figure = r["anon_kib"] if kind == "libtorrent" else r["hwm_kib"]
                out("| %s | %.1f%s | %.2f | %.1f | %.1f | %.1f |" % (
                    label, figure / 1024, " (anon; VmHWM %.0f)" % (r["hwm_kib"] / 1024)
                    if kind == "libtorrent" else "", peak / (figure / 1024), r["anon_kib"] / 1024,
                    r["wall"], r["cpu"]))
        out("")

    cpu = platform.machine()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    fs = subprocess.run(["df", "-PT", work], capture_output=True, text=True).stdout.splitlines()
    fstype = fs[1].split()[1] if len(fs) > 1 else "?"
    out("Machine: %s, %d cores, %.0f GiB RAM, Linux %s, %s; load average %s before the run, "
        "%s after. %s." % (
            cpu, os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30),
            platform.release(), fstype, load0, open("/proc/loadavg").read().split()[0],
            version([bin_, "--version"])))
    print("\n".join(report))


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
