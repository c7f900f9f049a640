#!/usr/bin/python3
"""Download throughput of swarmsync against libtorrent, aria2c and
Transmission (issue 4's benchmark), all in one run, from one libtorrent
seeder on loopback.

    tools/bench/download.py [--runs N] [--size-mib N] [--swarmsync BIN] > report.md

What it does:
  * generates SIZE MiB of random data in four files under /dev/shm and makes
    a hybrid torrent of it (and a v1 torrent of the same data: Transmission
    3.00 cannot open hybrids and aria2 1.36 gets their v1 infohash wrong);
  * starts one libtorrent 2.0.8 seeder (tests/interop/ltpeer.py: 127.0.0.1
    only, uTP, encryption, DHT/LSD/UPnP off) for both torrents;
  * runs each downloader N times into /dev/shm, checks every downloaded
    file against the source, and measures wall time (process start to exit;
    for transmission-daemon, torrent added to 100 % done), peak resident
    memory and CPU seconds (user + system);
      - swarmsync (release build), hybrid torrent, `--peer` to the seeder;
      - libtorrent leecher (ltpeer.py leech), hybrid torrent;
      - aria2c, v1 torrent (the seeder connects to its listening port);
      - transmission-daemon, v1 torrent (the seeder connects to its peer
        port), a fresh daemon for each run;
  * prints a markdown table (median of the runs, and the best run's MB/s,
    which is the least disturbed one on a shared machine) with ratios
    against the fastest, the smallest and the cheapest, and the machine it
    ran on. Each run starts with the next downloader in turn.

Peak memory: VmHWM (ru_maxrss) for swarmsync, aria2c and transmission-daemon
(whose peak includes its idle ~12 MiB); for libtorrent the peak of RssAnon,
sampled every 20 ms from /proc/PID/status, because its RSS counts the
memory-mapped files it downloads into. RssAnon peaks are shown for all.

Needs root only for nothing; needs python3-libtorrent, aria2,
transmission-daemon, transmission-cli (tools/setup installs them) and
about 2 x SIZE + SIZE of free /dev/shm. Run it on a quiet machine: the
seeder and the downloader share the CPU.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

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


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


class Sampler:
    """Peaks of a process's memory, sampled on demand."""

    def __init__(self, pid):
        self.pid = pid
        self.hwm = 0
        self.anon = 0

    def sample(self):
        s = proc_status(self.pid)
        if s:
            self.hwm = max(self.hwm, s.get("VmHWM", 0))
            self.anon = max(self.anon, s.get("RssAnon", 0))


def run_process(argv, timeout, log_path, on_start=None):
    """Runs argv to its exit (output into log_path), sampling memory;
    returns wall seconds, rusage, sampler, output."""
    t0 = time.monotonic()
    out = open(log_path, "w+")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    children.append(p)
    s = Sampler(p.pid)
    started = False
    while True:
        s.sample()
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            wall = time.monotonic() - t0
            p.returncode = os.waitstatus_to_exitcode(st)
            break
        if on_start and not started and time.monotonic() - t0 > 0.05:
            started = True
            on_start()
        if time.monotonic() - t0 > timeout:
            p.kill()
            p.wait()
            die("%s did not finish within %d s" % (argv[0], timeout))
        time.sleep(0.02)
    children.remove(p)
    out.seek(0)
    text = out.read()
    out.close()
    if p.returncode != 0:
        die("%s exited with %d:\n%s" % (" ".join(argv), p.returncode, text[-3000:]))
    return wall, ru, s, text


def same_tree(src, dst, name):
    for dirpath, _, files in os.walk(os.path.join(src, name)):
        for f in files:
            a = os.path.join(dirpath, f)
            b = os.path.join(dst, os.path.relpath(a, src))
            r = subprocess.run(["cmp", a, b], capture_output=True, text=True)
            if r.returncode != 0:
                die("%s differs from the source: %s" % (b, (r.stdout + r.stderr).strip()))


def make_data(src, name, size_mib):
    """Four files of random data, SIZE MiB in all."""
    root = os.path.join(src, name)
    os.makedirs(root, exist_ok=True)
    parts = [size_mib // 2, size_mib // 4, size_mib * 3 // 16, 0]
    parts[3] = size_mib - sum(parts)
    for i, mib in enumerate(parts):
        path = os.path.join(root, "part%d.bin" % i)
        if os.path.exists(path) and os.path.getsize(path) == mib * MIB:
            continue
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MIB))
    return sum(parts) * MIB


class Seeder:
    def __init__(self, save, torrents):
        self.p = subprocess.Popen(
            [PY, LTPEER, "seed", save] + torrents + ["--timeout", "7200"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        children.append(self.p)
        self.port = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                die("the libtorrent seeder ended: %s" % self.p.stderr.read())
            if line.startswith("port: "):
                self.port = int(line.split()[1])
            if line.strip() == "ready":
                return
        die("the libtorrent seeder did not get ready")

    def connect(self, port, torrent):
        """Connects the Nth torrent (0 hybrid, 1 v1) to a local port."""
        self.p.stdin.write("connect 127.0.0.1:%d %d\n" % (port, torrent))
        self.p.stdin.flush()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


def bench_swarmsync(bin_, torrent, dl, seeder):
    wall, ru, s, _ = run_process(
        [bin_, "torrent", "download", torrent, "--dir", dl, "--peer", seeder.addr], 600,
        dl + ".log")
    return wall, ru.ru_maxrss, s.anon, ru.ru_utime + ru.ru_stime


def bench_libtorrent(torrent, dl, seeder):
    wall, ru, s, _ = run_process([PY, LTPEER, "leech", dl, torrent, "--peer", seeder.addr,
                                  "--timeout", "600"], 620, dl + ".log")
    return wall, ru.ru_maxrss, s.anon, ru.ru_utime + ru.ru_stime


def bench_aria2(torrent, dl, seeder):
    port = free_port()
    argv = [
        "aria2c", "--no-conf", "--disable-ipv6=true", "--interface=127.0.0.1",
        "--listen-port=%d" % port, "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--bt-require-crypto=false",
        "--bt-min-crypto-level=plain", "--bt-external-ip=127.0.0.1", "--seed-time=0",
        "--file-allocation=falloc", "--summary-interval=0", "--console-log-level=warn",
        "--stop=600", "--dir=%s" % dl, torrent,
    ]
    wall, ru, s, _ = run_process(argv, 620, dl + ".log", on_start=lambda: seeder.connect(port, 1))
    return wall, ru.ru_maxrss, s.anon, ru.ru_utime + ru.ru_stime


class Transmission:
    def __init__(self, work):
        self.cfg = os.path.join(work, "transmission")
        shutil.rmtree(self.cfg, ignore_errors=True)
        self.rpc = free_port()
        self.peer = free_port()
        self.p = subprocess.Popen(
            ["transmission-daemon", "-f", "-g", self.cfg, "-p", str(self.rpc), "-r", "127.0.0.1",
             "-T", "-P", str(self.peer), "-i", "127.0.0.1", "-I", "::1", "-O", "-Y",
             "--no-utp", "-M", "-et", "--log-error", "-w", os.path.join(work, "tr-default")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        children.append(self.p)
        deadline = time.monotonic() + 20
        while self.remote("-l", check=False) is None:
            if time.monotonic() > deadline or self.p.poll() is not None:
                die("transmission-daemon did not start")
            time.sleep(0.1)

    def remote(self, *args, check=True):
        r = subprocess.run(["transmission-remote", "127.0.0.1:%d" % self.rpc] + list(args),
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            if check:
                die("transmission-remote %s: %s" % (" ".join(args), r.stderr))
            return None
        return r.stdout

    def bench(self, torrent, dl, seeder):
        os.makedirs(dl, exist_ok=True)
        s = Sampler(self.p.pid)
        s.sample()
        cpu0 = cpu_seconds(self.p.pid)
        t0 = time.monotonic()
        self.remote("-a", torrent, "-w", dl)
        seeder.connect(self.peer, 1)
        ids = [l.split()[0].rstrip("*") for l in self.remote("-l").splitlines()[1:]
               if l.split() and l.split()[0].rstrip("*").isdigit()]
        tid = ids[-1]
        while True:
            s.sample()
            info = self.remote("-t", tid, "-i")
            if "Percent Done: 100%" in info and "Verifying" not in info:
                break
            if time.monotonic() - t0 > 1200:
                die("transmission did not finish within 1200 s")
            time.sleep(0.25)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(self.p.pid) - cpu0
        s.sample()
        self.remote("-t", tid, "-r")
        time.sleep(0.5)  # let it close the files
        return wall, s.hwm, s.anon, cpu

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()


def bench_transmission(work, torrent, dl, seeder):
    """A fresh daemon per run: the same torrent removed and added again in
    one daemon downloaded at half speed (12 against 22 MB/s)."""
    tr = Transmission(work)
    try:
        return tr.bench(torrent, dl, seeder)
    finally:
        tr.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--swarmsync", help="a release swarmsync binary (default: build one)")
    ap.add_argument("--work", default="/dev/shm/swarmsync-bench-download")
    ap.add_argument("--only", help="comma-separated subset: swarmsync,libtorrent,aria2c,transmission")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    for tool in ("aria2c", "transmission-daemon", "transmission-remote", "cmp"):
        if not shutil.which(tool):
            die("%s is missing: run tools/setup" % tool)
    if not os.path.exists(PY):
        die("%s is missing: run tools/setup (python3-libtorrent)" % PY)

    load = open("/proc/loadavg").read().split()[0]
    bin_ = a.swarmsync
    if not bin_:
        log("building swarmsync (release)...")
        subprocess.run(["nice", "cargo", "build", "--release", "--locked", "-p", "swarmsync"],
                       cwd=ROOT, check=True)
        bin_ = os.path.join(ROOT, "target", "release", "swarmsync")
    bin_ = os.path.abspath(bin_)

    work = a.work
    src = os.path.join(work, "src")
    name = "data"
    os.makedirs(src, exist_ok=True)
    log("generating %d MiB under %s..." % (a.size_mib, src))
    total = make_data(src, name, a.size_mib)
    hybrid = os.path.join(work, "hybrid.torrent")
    v1 = os.path.join(work, "v1.torrent")
    for t, kind in ((hybrid, "--hybrid"), (v1, "--v1")):
        subprocess.run([bin_, "torrent", "create", os.path.join(src, name), "-o", t, kind],
                       check=True, stdout=subprocess.DEVNULL)
    shown = subprocess.run([bin_, "torrent", "show", hybrid], capture_output=True, text=True).stdout
    piece = [l.split(": ")[1] for l in shown.splitlines() if l.startswith("piece length: ")][0]

    log("starting the libtorrent seeder (checks both torrents)...")
    seeder = Seeder(src, [hybrid, v1])
    only = set((a.only or "swarmsync,libtorrent,aria2c,transmission").split(","))
    clients = [
        ("swarmsync", "hybrid", lambda dl: bench_swarmsync(bin_, hybrid, dl, seeder)),
        ("libtorrent 2.0.8 (python)", "hybrid", lambda dl: bench_libtorrent(hybrid, dl, seeder)),
        ("aria2c 1.36", "v1", lambda dl: bench_aria2(v1, dl, seeder)),
        ("transmission-daemon 3.00", "v1", lambda dl: bench_transmission(work, v1, dl, seeder)),
    ]
    keys = ["swarmsync", "libtorrent", "aria2c", "transmission"]
    results = {}
    try:
        order = [(k, c) for k, c in zip(keys, clients) if k in only]
        for run in range(a.runs):
            # Each run starts with the next downloader, so a burst of load
            # from elsewhere does not always hit the same one.
            for key, (label, kind, fn) in order[run % len(order):] + order[:run % len(order)]:
                dl = os.path.join(work, "dl-" + key)
                shutil.rmtree(dl, ignore_errors=True)
                os.makedirs(dl)
                wall, hwm_kib, anon_kib, cpu = fn(dl)
                same_tree(src, dl, name)
                shutil.rmtree(dl, ignore_errors=True)
                if os.path.exists(dl + ".log"):
                    os.remove(dl + ".log")
                r = {"client": label, "torrent": kind, "run": run + 1, "seconds": round(wall, 3),
                     "mb_s": round(total / wall / 1e6, 1), "vmhwm_mib": round(hwm_kib / 1024, 1),
                     "rssanon_peak_mib": round(anon_kib / 1024, 1), "cpu_s": round(cpu, 2)}
                log(json.dumps(r))
                results.setdefault(key, []).append(r)
    finally:
        cleanup()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = []
    for key in keys:
        if key not in results:
            continue
        rs = results[key]
        med = lambda f: statistics.median(r[f] for r in rs)
        peak = med("rssanon_peak_mib") if key == "libtorrent" else med("vmhwm_mib")
        rows.append({
            "client": rs[0]["client"], "torrent": rs[0]["torrent"], "seconds": med("seconds"),
            "mb_s": total / med("seconds") / 1e6, "peak": peak, "anon": med("rssanon_peak_mib"),
            "best": max(r["mb_s"] for r in rs),
            "cpu": med("cpu_s"), "cpu_gib": med("cpu_s") / (total / (1 << 30)),
            "runs": ", ".join("%.1f" % r["mb_s"] for r in rs),
        })
    fastest = max(r["mb_s"] for r in rows)
    smallest = min(r["peak"] for r in rows)
    cheapest = min(r["cpu"] for r in rows)
    print("%d MiB in 4 files, piece length %s, from one libtorrent 2.0.8 seeder on 127.0.0.1; "
          "downloads into /dev/shm; median of %d run(s)." % (a.size_mib, piece, a.runs))
    print()
    best = max(r["best"] for r in rows)
    print("| downloader | torrent | MB/s | vs fastest | best MB/s | vs best | peak RSS MiB | vs smallest "
          "| RssAnon peak MiB | CPU s | CPU s/GiB | vs cheapest | MB/s per run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print("| %s | %s | %.0f | %.2f× | %.0f | %.2f× | %.1f%s | %.2f× | %.1f | %.2f | %.2f | %.2f× | %s |" % (
            r["client"], r["torrent"], r["mb_s"], r["mb_s"] / fastest, r["best"], r["best"] / best,
            r["peak"],
            " (anon)" if r["client"].startswith("libtorrent") else "", r["peak"] / smallest,
            r["anon"], r["cpu"], r["cpu_gib"], r["cpu"] / cheapest, r["runs"]))
    print()
    cpu = platform.machine()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print("Machine: %s, %d cores, Linux %s, load average before the run %s. %s; %s; %s." % (
        cpu, os.cpu_count(), platform.release(), load,
        version([bin_, "--version"]), version(["aria2c", "--version"]),
        version(["transmission-daemon", "-V"])))


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
