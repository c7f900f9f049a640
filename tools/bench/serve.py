#!/usr/bin/python3
"""Benchmarks of issue 6 "LAN HTTP server": swarmsync-serve against nginx-light.

Run from the repository root:

    /usr/bin/python3 tools/bench/serve.py              # builds, then measures
    /usr/bin/python3 tools/bench/serve.py --no-build   # use the existing release build

Same run, same files (on /dev/shm, so the page cache is warm for both):

1. wrk -t2 against each server: requests/s for a 1 KiB file (goal >= 0.8x
   nginx) and MB/s for a 16 MiB file (goal >= 1.0x nginx). nginx runs with
   one worker, sendfile on, access log off; swarmsync-serve is the
   `serve_dir` example on a single-threaded tokio runtime (file reads go to
   tokio's blocking pool, at most 8 threads). The files lie as in a node's
   store: www/bench is a symlink to www/snapshots/1 (the node's `current`),
   and swarmsync-serve mounts it as the node does (Mount::with_snapshots:
   small files of the current snapshot are cached in memory); the 1 KiB
   case is also measured on a plain mount of the same directory (no cache,
   one trip to the blocking pool per request). Runs alternate between the
   servers, --runs times each; the medians are compared.
2. Peak RSS of a fresh swarmsync-serve process with 256 concurrent
   connections fetching the 16 MiB file, above its RSS after one request
   (goal < 16 MiB), from /proc VmHWM - VmRSS.

Everything runs on 127.0.0.1 and is removed afterwards. Prints Markdown.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVE = os.path.join(ROOT, "target", "release", "examples", "serve_dir")
MIB = 1 << 20


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    until = time.time() + 10
    while time.time() < until and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: server on port %d did not start" % port)


def start_nginx(scratch, root):
    d = os.path.join(scratch, "nginx")
    os.makedirs(os.path.join(d, "tmp"))
    port = free_port()
    conf = f"""daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  default_type application/octet-stream; sendfile on; tcp_nopush on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}
}}
"""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p, port


def start_serve(root, plain=False):
    port = free_port()
    mount = "/bench=%s" % os.path.join(root, "bench")
    if not plain:
        mount += "," + os.path.join(root, "snapshots")
    p = subprocess.Popen([SERVE, "127.0.0.1:%d" % port, mount],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p, port


UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def wrk(url, conns, secs):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--timeout", "30s", url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit("bench: wrk failed:\n" + out.stdout + out.stderr)
    if "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        sys.exit("bench: wrk saw errors:\n" + out.stdout)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?)B", out.stdout)
    bps = float(m.group(1)) * UNITS[m.group(2)]
    return rps, bps


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--scratch", default="/dev/shm")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is not installed: run tools/setup" % tool)
    if not args.no_build:
        log("building the serve_dir example (release)")
        subprocess.run(["cargo", "build", "--release", "-p", "swarmsync-serve", "--example", "serve_dir"],
                       cwd=ROOT, check=True)
    scratch = tempfile.mkdtemp(prefix="serve-bench.", dir=args.scratch)
    procs = []
    try:
        root = os.path.join(scratch, "www")
        snapshot = os.path.join(root, "snapshots", "1")
        os.makedirs(snapshot)
        os.symlink("snapshots/1", os.path.join(root, "bench"))
        with open(os.path.join(snapshot, "small.bin"), "wb") as f:
            f.write(os.urandom(1024))
        with open(os.path.join(snapshot, "large.bin"), "wb") as f:
            f.write(os.urandom(16 * MIB))
        nginx, nport = start_nginx(scratch, root)
        procs.append(nginx)
        serve, sport = start_serve(root)
        procs.append(serve)
        plain, pport = start_serve(root, plain=True)
        procs.append(plain)
        # Runs alternate between the servers, so a change in machine load
        # hits all alike; the median of each is compared.
        runs = {}
        for f in ("small.bin", "large.bin"):
            servers = [("nginx", nport), ("swarmsync", sport)]
            if f == "small.bin":
                servers.append(("swarmsync-plain", pport))
            for name, port in servers:
                wrk("http://127.0.0.1:%d/bench/%s" % (port, f), args.connections, 1)  # warm-up
            for _ in range(args.runs):
                for name, port in servers:
                    r = wrk("http://127.0.0.1:%d/bench/%s" % (port, f), args.connections, args.seconds)
                    runs.setdefault((name, f), []).append(r)
                    log("%s %s: %.0f req/s, %.1f MB/s" % (name, f, r[0], r[1] / 1e6))
        results = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
        # Memory on a fresh process: RSS after one request, then the peak
        # while 256 connections fetch the large file.
        serve.terminate()
        serve.wait()
        serve, sport = start_serve(root)
        procs.append(serve)
        wrk("http://127.0.0.1:%d/bench/small.bin" % sport, 2, 1)
        idle = status_kib(serve.pid, "VmRSS")
        wrk("http://127.0.0.1:%d/bench/large.bin" % sport, 256, args.seconds)
        peak = status_kib(serve.pid, "VmHWM")
        small = results[("swarmsync", "small.bin")][0] / results[("nginx", "small.bin")][0]
        small_plain = results[("swarmsync-plain", "small.bin")][0] / results[("nginx", "small.bin")][0]
        large = results[("swarmsync", "large.bin")][1] / results[("nginx", "large.bin")][1]
        print("| case | nginx-light | swarmsync-serve | ratio | goal |")
        print("|---|---|---|---|---|")
        print("| 1 KiB file, requests/s (wrk -t2 -c%d) | %.0f | %.0f | %.2fx | >= 0.8x |" % (
            args.connections, results[("nginx", "small.bin")][0], results[("swarmsync", "small.bin")][0], small))
        print("| 1 KiB file, plain mount (no cache), requests/s | %.0f | %.0f | %.2fx | |" % (
            results[("nginx", "small.bin")][0], results[("swarmsync-plain", "small.bin")][0], small_plain))
        print("| 16 MiB file, MB/s (wrk -t2 -c%d) | %.0f | %.0f | %.2fx | >= 1.0x |" % (
            args.connections, results[("nginx", "large.bin")][1] / 1e6, results[("swarmsync", "large.bin")][1] / 1e6, large))
        print("| swarmsync-serve RSS: idle %.1f MiB, peak with 256 connections %.1f MiB | | | +%.1f MiB | < 16 MiB |" % (
            idle / 1024, peak / 1024, (peak - idle) / 1024))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
