#!/usr/bin/python3
"""A node fetching a tree of small files from a web seed over a long round
trip (a ship's satellite link, a school on the far end of a slow WAN), with
no peer to help: swarmsync against aria2c fetching the same files from the
same nginx through the same delay, in one run.

    /usr/bin/python3 tools/bench/webseed_rtt.py [--files 200] [--rtt-ms 300]
        [--swarmsync target/release/swarmsync] [--swarmsync-old BIN]

Without netem in the kernel, the round trip is made by a proxy on loopback
that holds every chunk it forwards for half the round trip, each way. It
adds latency, not a bandwidth limit: the figure is how well each client
hides round trips (keep-alive, requests in flight), which is what a tree of
small files costs on such a link. aria2c runs as `-j 1` (one file after
the other, as a sequential fetcher would) and `-j 4` (four at once, what
swarmsync's web seed is allowed). Prints a Markdown table on stdout.
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, children, cleanup, die, free_port, log, version  # noqa: E402
from download import same_tree  # noqa: E402
from serve import start_nginx  # noqa: E402
from sync import timed  # noqa: E402


def delay_proxy(listen_port, target_port, half_rtt):
    """Forwards 127.0.0.1:listen_port to 127.0.0.1:target_port, each chunk
    held for `half_rtt` seconds in each direction, in order. Runs in a
    daemon thread with its own event loop."""

    async def pump(reader, writer):
        queue = asyncio.Queue()

        async def later():
            while True:
                at, data = await queue.get()
                if data is None:
                    break
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.ensure_future(later())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + half_rtt, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((0, None))
        try:
            await task
        except (ConnectionError, OSError):
            pass

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump(creader, swriter), pump(sreader, cwriter))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()


def write_tree(root, files, seed):
    """`files` files of 1-16 KiB in a few directories, like a repository's
    small packages and metadata."""
    rng = random.Random(seed)
    total = 0
    names = []
    for i in range(files):
        rel = "tree/d%02d/f%05d.bin" % (i % 16, i)
        size = rng.randint(1024, 16 * 1024)
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        total += size
        names.append(rel)
    return names, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rtt-ms", type=int, default=300)
    ap.add_argument("--swarmsync", default=os.path.join(ROOT, "target", "release", "swarmsync"))
    ap.add_argument("--swarmsync-old", help="an older build, measured beside the current one")
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    for tool in ("nginx", "aria2c"):
        if not shutil.which(tool):
            die("%s not found: run tools/setup" % tool)
    if not os.access(args.swarmsync, os.X_OK):
        die("%s is not built (cargo build --release)" % args.swarmsync)

    scratch = tempfile.mkdtemp(prefix="ssync-wsrtt-")
    try:
        www = os.path.join(scratch, "www")
        names, total = write_tree(www, args.files, 7)
        nginx, nginx_port = start_nginx(scratch, www)
        children.append(nginx)
        proxy_port = free_port()
        delay_proxy(proxy_port, nginx_port, args.rtt_ms / 2000.0)
        base = "http://127.0.0.1:%d/" % proxy_port
        torrent = os.path.join(scratch, "t.torrent")
        subprocess.run([args.swarmsync, "torrent", "create", "--hybrid", "--web-seed", base,
                        "-o", torrent, os.path.join(www, "tree")], check=True,
                       capture_output=True)
        log("%d files, %d bytes, %d ms round trip through the proxy" % (args.files, total, args.rtt_ms))
        urls = os.path.join(scratch, "urls.txt")
        with open(urls, "w") as f:
            for rel in names:
                f.write("%s%s\n  out=%s\n" % (base, rel, rel))

        rows = []
        runs = [("swarmsync (web seed)", args.swarmsync)]
        if args.swarmsync_old:
            runs.append(("swarmsync, older build", args.swarmsync_old))
        for label, binary in runs:
            out = os.path.join(scratch, "ss-%d" % len(rows))
            secs, _, _, text, _ = timed([binary, "torrent", "download", torrent, "--dir", out],
                                        out + ".log", args.timeout)
            same_tree(www, out, "tree")
            m = re.search(r"(\d+) bytes downloaded", text)
            rows.append((label, version([binary, "--version"]), secs,
                         int(m.group(1)) if m else None))
            log("%s: %.1f s" % (label, secs))
        for j in (1, 4):
            out = os.path.join(scratch, "aria2-%d" % j)
            secs = timed(["aria2c", "-q", "-i", urls, "-d", out, "-j", str(j), "-x", "1",
                          "--allow-overwrite=true", "--auto-file-renaming=false",
                          "--file-allocation=none"], out + ".log", args.timeout)[0]
            same_tree(www, out, "tree")
            rows.append(("aria2c -j %d" % j, version(["aria2c", "--version"]), secs, None))
            log("aria2c -j %d: %.1f s" % (j, secs))

        ref = next(r[2] for r in rows if r[0] == "aria2c -j 4")
        print("%d files (%d bytes, 1-16 KiB each) from nginx through a %d ms round trip, "
              "no peers (`tools/bench/webseed_rtt.py --files %d --rtt-ms %d`):\n"
              % (args.files, total, args.rtt_ms, args.files, args.rtt_ms))
        print("| client | version | time | vs aria2c -j 4 | bytes downloaded |")
        print("|---|---|---:|---:|---:|")
        for label, ver, secs, down in rows:
            print("| %s | %s | %.1f s | %.2f× | %s |" % (
                label, ver, secs, secs / ref, "" if down is None else down))
    finally:
        cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
