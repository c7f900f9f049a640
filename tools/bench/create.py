#!/usr/bin/python3
"""Benchmarks of issue 3 "Foundation": torrent creation and hashing.

Run from the repository root with Debian's python (it has python3-libtorrent):

    /usr/bin/python3 tools/bench/create.py            # builds, then measures
    /usr/bin/python3 tools/bench/create.py --no-build # use existing release builds

1. `swarmsync torrent create --hybrid` of a 1 GiB tree of mixed file sizes vs
   libtorrent's create_torrent + set_piece_hashes (tests/interop/lt.py create)
   on the same tree, same piece size, same run; page cache warm (the tree is
   on tmpfs); each run 3 times, median; ratio = libtorrent / swarmsync
   (goal >= 1.0). swarmsync is timed as a whole process (start, walk, hash,
   write); libtorrent only inside its process (add_files, set_piece_hashes,
   generate, write; python start-up excluded), which favours libtorrent.
   Also on one core (`taskset -c 0`) to show how both scale.
2. SHA-256 throughput on one core (`taskset -c 0`): our hashing path
   (firmware/torrent/examples/sha256_speed.rs, torrent::hash::sha256 on 16 KiB
   blocks) vs `openssl speed -evp sha256 -bytes 16384` (goal >= 0.8x).
3. Peak RSS of `swarmsync torrent create` on a tree of 20,000 small files
   (goal < 32 MiB), from wait4()'s ru_maxrss of that child.

Everything is generated under /dev/shm (or --scratch) and removed afterwards.
Prints a Markdown summary at the end.
"""

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SWARMSYNC = os.path.join(ROOT, "target", "release", "swarmsync")
SHA_EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "sha256_speed")
LT_PY = os.path.join(ROOT, "tests", "interop", "lt.py")
PY = "/usr/bin/python3"
MIB = 1 << 20
GIB = 1 << 30


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.exit("bench: %s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def build():
    env = dict(os.environ)
    for cmd in (
        ["nice", "cargo", "build", "--release", "-p", "swarmsync"],
        ["nice", "cargo", "build", "--release", "-p", "swarmsync-torrent", "--example", "sha256_speed"],
    ):
        log(" ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True, env=env)


# --- trees -----------------------------------------------------------------------

def write_file(path, size, rnd):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(rnd.randbytes(n))
            left -= n


def gib_tree(parent):
    """1 GiB exactly: one 384 MiB file, two 128 MiB, eight 32 MiB, 96 files
    of 1 MiB + 1 byte ... and small files, in nested directories."""
    rnd = random.Random(1)
    root = os.path.join(parent, "gib")
    sizes = [384 * MIB, 128 * MIB, 128 * MIB] + [32 * MIB] * 8 + [MIB + 1] * 96
    small = []
    left = GIB - sum(sizes)
    while left > 0:
        n = min(left, rnd.choice([0, 1, 4096, 16383, 65536, 300_000]))
        small.append(n)
        left -= n
    sizes += small
    for i, size in enumerate(sizes):
        write_file(os.path.join(root, "d%02d" % (i % 13), "s%d" % (i % 5), "f%05d.bin" % i), size, rnd)
    assert sum(sizes) == GIB
    return root, len(sizes)


def small_tree(parent, count):
    """`count` files of 0..16 KiB in 200 directories."""
    rnd = random.Random(2)
    root = os.path.join(parent, "small")
    total = 0
    for i in range(count):
        size = rnd.randrange(0, 16 * 1024)
        path = os.path.join(root, "d%03d" % (i % 200), "f%05d.txt" % i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rnd.randbytes(size))
        total += size
    return root, total


def warm(root):
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                while f.read(8 * MIB):
                    pass


# --- measurements ------------------------------------------------------------------

def hashes(out):
    return {k: v for k, v in re.findall(r"^(v[12]): ([0-9a-f]+)$", out, re.M)}


def timed(cmd):
    """(wall s, CPU s = user + sys, peak RSS KiB, stdout) of one child, via wait4()."""
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=o, stderr=e)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        o.seek(0)
        e.seek(0)
        out, err = o.read().decode(), e.read().decode()
    if p.returncode != 0:
        sys.exit("bench: %s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode, out, err))
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out


def bench_create(tree, scratch, kind, piece, pin, reps):
    """Medians over `reps` alternating runs of both creators."""
    rows = {k: [] for k in ("ours", "ours_cpu", "lt", "lt_wall", "lt_cpu")}
    same = True
    for i in range(reps):
        # Alternate, so drift (thermal, other load) hits both alike.
        wall, cpu, _, out = timed(pin + [SWARMSYNC, "torrent", "create", tree, "-o",
                                         os.path.join(scratch, "ours.torrent"), kind,
                                         "--piece-size", str(piece)])
        rows["ours"].append(wall)
        rows["ours_cpu"].append(cpu)
        h_ours = hashes(out)
        wall, cpu, _, out = timed(pin + [PY, LT_PY, "create", tree, os.path.join(scratch, "lt.torrent"),
                                         kind, "--piece-size", str(piece)])
        inside = float(re.search(r"^seconds: ([0-9.]+)$", out, re.M).group(1))
        rows["lt"].append(inside)
        rows["lt_wall"].append(wall)
        rows["lt_cpu"].append(cpu)
        h_lt = hashes(out)
        same = same and h_ours == h_lt
        log("  %s piece %d KiB %s run %d: swarmsync %.3f s (cpu %.3f s), libtorrent %.3f s "
            "(%.3f s with python start, cpu %.3f s)%s"
            % (kind, piece // 1024, "cpu 0" if pin else "all cpus", i + 1, rows["ours"][-1],
               rows["ours_cpu"][-1], inside, wall, cpu, "" if h_ours == h_lt else ", infohashes differ"))
    out = {k: statistics.median(v) for k, v in rows.items()}
    out["same"] = same
    return out


def openssl_speed(alg):
    out = run(["taskset", "-c", "0", "openssl", "speed", "-seconds", "2", "-evp", alg, "-bytes", "16384"])
    # Last line: "sha256  1745123.33k" (thousands of bytes per second).
    line = [l for l in out.splitlines() if l.lower().startswith(alg)][-1]
    k = float(line.split()[-1].rstrip("k"))
    return k * 1000 / 1e6


def ours_speed():
    out = run(["taskset", "-c", "0", SHA_EXAMPLE, "2", "--sha1"])
    # Per CPU second, as `openssl speed` counts (user CPU time unless -elapsed).
    sha256 = float(re.search(r"^sha256 .*: ([0-9.]+) MB/s cpu", out, re.M).group(1))
    sha1 = float(re.search(r"^sha1 .*: ([0-9.]+) MB/s cpu", out, re.M).group(1))
    return sha256, sha1


def peak_rss_kib(cmd):
    """(peak RSS in KiB, wall seconds) of one child."""
    wall, _, rss, _ = timed(cmd)
    return rss, wall


def main():
    global SWARMSYNC, SHA_EXAMPLE
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--scratch", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pieces", default="2097152,262144",
                    help="piece sizes for the 1 GiB run (the first is the headline)")
    ap.add_argument("--small-files", type=int, default=20000)
    a = ap.parse_args()

    if not a.no_build:
        build()
    for f in (SWARMSYNC, SHA_EXAMPLE):
        if not os.access(f, os.X_OK):
            sys.exit("bench: %s missing (build it or drop --no-build)" % f)
    import platform
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    sha_ni = " sha_ni" in open("/proc/cpuinfo").read()
    log("%s, %d cpus, sha_ni=%s, %s" % (cpu, os.cpu_count(), sha_ni, platform.release()))

    scratch = tempfile.mkdtemp(prefix="swarmsync-bench-", dir=a.scratch)
    results = {}
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        # Private copies: a concurrent rebuild cannot swap them mid-run.
        for name in ("SWARMSYNC", "SHA_EXAMPLE"):
            dst = os.path.join(scratch, os.path.basename(globals()[name]))
            shutil.copy2(globals()[name], dst)
            globals()[name] = dst
        log("generating the 1 GiB tree in %s" % scratch)
        tree, nfiles = gib_tree(scratch)
        warm(tree)
        pieces = [int(x) for x in a.pieces.split(",")]
        sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs]
        padded = {pc: sum(-(-n // pc) * pc for n in sizes) for pc in pieces}
        for piece in pieces:
            for pin_name, pin in (("2 cpus", []), ("cpu 0 only", ["taskset", "-c", "0"])):
                results[("--hybrid", piece, pin_name)] = bench_create(
                    tree, scratch, "--hybrid", piece, pin, a.reps)
        # Where the time goes: SHA-1 only (v1) and SHA-256 only (v2).
        for kind in ("--v1", "--v2"):
            results[(kind, pieces[0], "2 cpus")] = bench_create(tree, scratch, kind, pieces[0], [], a.reps)
        shutil.rmtree(tree)

        log("SHA-256 and SHA-1 on one core, alternating, best of 3")
        ssl, ours, ssl1, ours1 = [], [], [], []
        for _ in range(3):
            ssl.append(openssl_speed("sha256"))
            o256, o1 = ours_speed()
            ours.append(o256)
            ours1.append(o1)
            ssl1.append(openssl_speed("sha1"))
        ssl, ours, ssl1, ours1 = max(ssl), max(ours), max(ssl1), max(ours1)

        log("generating %d small files" % a.small_files)
        small, small_total = small_tree(scratch, a.small_files)
        warm(small)
        rss = {}
        for kind in ("--hybrid", "--v2", "--v1"):
            rss[kind] = peak_rss_kib([SWARMSYNC, "torrent", "create", small, "-o",
                                      os.path.join(scratch, "small.torrent"), kind])
        rss_lt = peak_rss_kib([PY, LT_PY, "create", small, os.path.join(scratch, "lt-small.torrent"), "--hybrid"])
        rss_py = peak_rss_kib([PY, "-c", "import libtorrent"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    load_after = open("/proc/loadavg").read().split()[:3]
    print("## Foundation: torrent creation and hashing\n")
    print("Measured %s on %s (%d cpus, SHA extensions: %s), tree on tmpfs; "
          "load average %s before, %s after; `%s`.\n"
          % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpu, os.cpu_count(),
             "yes" if sha_ni else "no", " ".join(load_before), " ".join(load_after),
             "/usr/bin/python3 tools/bench/create.py"))
    print("### `torrent create` of 1 GiB (%d files) vs libtorrent 2.0.8 create_torrent, median of %d\n"
          % (nfiles, a.reps))
    print("Wall time: swarmsync as a whole process; libtorrent inside python (add_files, "
          "set_piece_hashes, generate, write), with the whole python process in brackets. "
          "CPU = user + sys of the process (libtorrent's includes python start-up, about 0.1 s). "
          "A hybrid hashes SHA-1 over the files plus their pad files: %s.\n"
          % ", ".join("%.0f MiB at %d KiB pieces" % (padded[pc] / MIB, pc // 1024) for pc in pieces))
    print("| torrent | piece size | cpus | swarmsync | libtorrent | libtorrent / swarmsync "
          "| swarmsync CPU | libtorrent CPU | same infohashes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (kind, piece, pin_name), r in results.items():
        same = "yes" if r["same"] else ("no (v1 file order)" if kind == "--v1" else "NO")
        print("| %s | %d KiB | %s | %.2f s | %.2f s (%.2f s) | **%.2f** | %.2f s | %.2f s | %s |"
              % (kind, piece // 1024, pin_name, r["ours"], r["lt"], r["lt_wall"], r["lt"] / r["ours"],
                 r["ours_cpu"], r["lt_cpu"], same))
    print("\n### Hashing, one core (`taskset -c 0`), 16 KiB blocks, best of 3\n")
    print("Both per CPU second: `openssl speed` times user CPU, `sha256_speed` its thread's CPU time.\n")
    print("| hash | ours (`torrent::hash`: SHA-256 ring, SHA-1 sha1 crate; `sha256_speed --sha1`) | `openssl speed -evp ALG -bytes 16384` | ours / openssl |")
    print("|---|---|---|---|")
    print("| SHA-256 | %.0f MB/s | %.0f MB/s | **%.2f** |" % (ours, ssl, ours / ssl))
    print("| SHA-1 | %.0f MB/s | %.0f MB/s | %.2f |" % (ours1, ssl1, ours1 / ssl1))
    print("\n### Peak RSS of `torrent create`, %d files (%.0f MiB, 0-16 KiB each)\n"
          % (a.small_files, small_total / MIB))
    print("| command (default piece size) | peak RSS (ru_maxrss) | wall time |")
    print("|---|---|---|")
    for kind, (kib, wall) in rss.items():
        print("| `swarmsync torrent create %s` | %.1f MiB | %.2f s |" % (kind, kib / 1024, wall))
    print("| libtorrent create_torrent, hybrid (python process; `import libtorrent` alone: %.1f MiB) "
          "| %.1f MiB | %.2f s |" % (rss_py[0] / 1024, rss_lt[0] / 1024, rss_lt[1]))


if __name__ == "__main__":
    main()
