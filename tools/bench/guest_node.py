#!/usr/bin/python3
"""Node memory on the board's architecture: the static armv7 binary in an
emulated ARM machine with the BeagleBone Black's 512 MiB, next to the
static x86_64 binary in an emulated PC with the same memory, both syncing
the same release from the same origin in one run.

    tools/bench/guest_node.py [--files N] [--size-mib N] [--arches arm,x86_64] > report.md

Why: sync.py measures the node on the build host. The board runs the
armv7 musl build, whose pointers and allocator pages differ, and
qemu-user's RSS counts qemu itself. A guest kernel counts only the node.

What it does:
  * writes a mirror-shaped tree (sync.py's generator: log-normal sizes,
    --files files, --size-mib MiB in all) and starts a long-running
    `swarmsync publish` of it on the host (127.0.0.1), whose release names
    http://10.0.2.2:PORT as its web seed: qemu's user network maps that
    address to the host's loopback, so the guests reach the origin and
    nothing leaves the machine;
  * for each architecture boots Debian bookworm's kernel (the same kernel
    and busybox packages tests/qemu/run fetches, cached in target/qemu)
    with an initramfs holding busybox, the static swarmsync and an init
    that brings the network up, starts `swarmsync run` with a node
    config (data_dir on the guest's tmpfs, the whole tree selected,
    LSD off), samples VmRSS, VmHWM and RssAnon of the node from
    /proc/PID/status every second until /-/status.json says "synced",
    then for --steady seconds more, runs `swarmsync verify`, and powers
    off;
  * prints a Markdown table: peak (VmHWM), steady (median VmRSS of the
    steady window), RssAnon peak and steady, and the sync time, which is
    emulation time and says nothing about the board's speed.

The node dials the origin's peer address, which the release gives as
127.0.0.1 and which inside the guest is the guest itself, so the guests
sync from the origin's web seed (HTTP) alone.

Needs: the static binaries (tools/cross; default the release-small builds
under target/cross), a host build for the origin (--origin-bin, default
target/release/swarmsync), qemu-system-arm/-x86_64, dpkg-deb, cpio, kmod
(tools/setup), and the kernels that tests/qemu/run downloads (run it once,
or this script runs its fetch through apt-get the same way). Takes a few
minutes per guest.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import ROOT, children, cleanup, die, free_port, log, version
from sync import plan_tree, write_tree

CHANNEL = "bench"

GUEST_INIT = r"""#!/bin/busybox sh
# PID 1 of the benchmark guest: network, node, samples, poweroff.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o size=90% tmp /data
for m in $(cat /modules/order); do insmod /modules/$m.ko 2>/dev/null; done
ip link set lo up
for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
echo "GUEST-MEM $(grep MemTotal /proc/meminfo)"
/bin/swarmsync run --config /etc/node.toml >/data/node.log 2>&1 &
pid=$!
t=0
synced=
while [ $t -lt @TIMEOUT@ ]; do
    if [ ! -e /proc/$pid/status ]; then echo "GUEST-EXITED"; tail -n 30 /data/node.log; break; fi
    s=$(awk '/^VmRSS|^VmHWM|^RssAnon/ {printf "%s ", $2}' /proc/$pid/status)
    echo "GUEST-SAMPLE $t $s"
    if [ $((t % 30)) -eq 0 ] && [ -z "$synced" ]; then
        wget -q -O - http://127.0.0.1:8080/-/status.json 2>/dev/null | grep -E '"(state|files_done|files_total|peers|downloaded)"' | tr -d '\n' | sed 's/^/GUEST-PROGRESS /'
        echo
        tail -n 2 /data/node.log | sed 's/^/GUEST-NODELOG /'
    fi
    if [ -z "$synced" ]; then
        if wget -q -O - http://127.0.0.1:8080/-/status.json 2>/dev/null | grep -q '"state": *"synced"'; then
            synced=$t
            echo "GUEST-SYNCED $t"
        fi
    elif [ $((t - synced)) -ge @STEADY@ ]; then
        break
    fi
    sleep 1
    t=$((t + 1))
done
wget -q -O - http://127.0.0.1:8080/-/status.json 2>/dev/null | sed 's/^/GUEST-STATUS /'
echo
kill $pid
for i in $(seq 30); do [ -e /proc/$pid/status ] || break; sleep 1; done
grep -E "WARN|ERROR" /data/node.log | head -n 20 | sed 's/^/GUEST-LOG /'
[ -n "$synced" ] || tail -n 60 /data/node.log | sed 's/^/GUEST-TAIL /'
/bin/swarmsync verify --state /data/node/@CHANNEL@ 2>&1 | tail -n 3 | sed 's/^/GUEST-VERIFY /'
echo "GUEST-DONE"
poweroff -f
"""

NODE_TOML = """[node]
data_dir = "/data/node"
peer_listen = "0.0.0.0:6881"
http_listen = "127.0.0.1:8080"
poll_interval = "1s"

[[channel]]
name = "@CHANNEL@"
public_key = "@KEY@"
feeds = ["http://10.0.2.2:@PORT@/-/releases/@CHANNEL@"]

[network]
lsd = false
"""

ARCHES = {
    # deb arch, kernel package, qemu, machine args, console, network device, modules
    "arm": ("armhf", "linux-image-armmp", "qemu-system-arm",
            ["-M", "virt", "-cpu", "cortex-a15"], "ttyAMA0",
            "virtio-net-device", "armv7-unknown-linux-musleabihf"),
    "x86_64": ("amd64", "linux-image-amd64", "qemu-system-x86_64",
               ["-M", "pc"], "ttyS0", "virtio-net-pci", "x86_64-unknown-linux-musl"),
}


def fetch(cache, arch, meta):
    """The kernel and busybox-static .debs of Debian arch `arch`, as
    tests/qemu/run keeps them under `cache`."""
    d = os.path.join(cache, arch)
    debs = os.path.join(d, "debs")

    def found():
        names = os.listdir(debs) if os.path.isdir(debs) else []
        k = sorted(n for n in names if n.startswith("linux-image-") and n.endswith("_%s.deb" % arch))
        b = [n for n in names if n.startswith("busybox-static_")]
        return (os.path.join(debs, k[-1]), os.path.join(debs, b[0])) if k and b else None

    if found():
        return found()
    log("fetching the %s kernel and busybox (as tests/qemu/run does)" % arch)
    o = ["-oAPT::Architecture=" + arch, "-oAPT::Architectures=" + arch,
         "-oDir::State::Lists=" + os.path.join(d, "lists"), "-oDPkg::Lock::Timeout=600", "-q"]
    os.makedirs(os.path.join(d, "lists", "partial"), exist_ok=True)
    os.makedirs(debs, exist_ok=True)
    subprocess.run(["apt-get"] + o + ["update"], capture_output=True)
    deps = subprocess.run(["apt-cache"] + o + ["depends", meta], capture_output=True,
                          text=True).stdout
    m = re.search(r"Depends: (linux-image-[0-9.-]+-[a-z0-9]+)$", deps, re.M)
    if not m:
        die("cannot resolve %s for %s" % (meta, arch))
    r = subprocess.run(["apt-get"] + o + ["download", m.group(1), "busybox-static"], cwd=debs,
                       capture_output=True, text=True)
    if r.returncode != 0 or not found():
        die("download of the %s kernel failed: %s" % (arch, r.stderr[-2000:]))
    return found()


def initramfs(work, kdeb, bbdeb, binary, key, port):
    """vmlinuz and initrd.gz for a guest that runs the benchmark node."""
    kern = os.path.join(work, "kern")
    bb = os.path.join(work, "bb")
    root = os.path.join(work, "root")
    subprocess.run(["dpkg-deb", "-x", kdeb, kern], check=True)
    subprocess.run(["dpkg-deb", "-x", bbdeb, bb], check=True)
    kver = os.listdir(os.path.join(kern, "lib", "modules"))[0]
    subprocess.run(["depmod", "-b", kern, kver], check=True)
    for d in ("bin", "modules", "etc", "proc", "sys", "dev", "data"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(os.path.join(bb, "bin", "busybox"), os.path.join(root, "bin", "busybox"))
    shutil.copy(binary, os.path.join(root, "bin", "swarmsync"))
    # virtio-net and what it needs, in load order (modprobe says which).
    order = []
    for m in ("virtio_mmio", "virtio_pci", "virtio_net"):
        out = subprocess.run(["modprobe", "-d", kern, "-S", kver, "--show-depends", m],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            w = line.split()
            if len(w) >= 2 and w[0] == "insmod":
                name = os.path.basename(w[1])
                if not name.endswith(".ko"):
                    die("compressed module %s is not handled" % name)
                if name[:-3] not in order:
                    shutil.copy(w[1], os.path.join(root, "modules", name))
                    order.append(name[:-3])
    with open(os.path.join(root, "modules", "order"), "w") as f:
        f.write("\n".join(order) + "\n")
    with open(os.path.join(root, "init"), "w") as f:
        f.write(GUEST_INIT.replace("@TIMEOUT@", str(ARGS.timeout))
                .replace("@STEADY@", str(ARGS.steady)).replace("@CHANNEL@", CHANNEL))
    with open(os.path.join(root, "etc", "node.toml"), "w") as f:
        f.write(NODE_TOML.replace("@CHANNEL@", CHANNEL).replace("@KEY@", key)
                .replace("@PORT@", str(port)))
    os.chmod(os.path.join(root, "init"), 0o755)
    os.chmod(os.path.join(root, "bin", "swarmsync"), 0o755)
    vmlinuz = os.path.join(work, "vmlinuz")
    shutil.copy(os.path.join(kern, "boot", "vmlinuz-" + kver), vmlinuz)
    initrd = os.path.join(work, "initrd.gz")
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files,
                          capture_output=True, check=True).stdout
    with open(initrd, "wb") as f:
        f.write(subprocess.run(["gzip", "-1"], input=cpio, capture_output=True,
                               check=True).stdout)
    return vmlinuz, initrd, kver


def run_guest(name, work, key, port):
    deb_arch, meta, qemu, machine, console, netdev, triple = ARCHES[name]
    binary = getattr(ARGS, name + "_bin") or os.path.join(
        ROOT, "target", "cross", triple, ARGS.profile, "swarmsync")
    if not os.access(binary, os.X_OK):
        die("%s missing: run tools/cross %s" % (binary, triple))
    kdeb, bbdeb = fetch(ARGS.qemu_cache, deb_arch, meta)
    gdir = os.path.join(work, name)
    os.makedirs(gdir)
    vmlinuz, initrd, kver = initramfs(gdir, kdeb, bbdeb, binary, key, port)
    argv = [qemu] + machine + [
        "-m", str(ARGS.guest_mib), "-smp", "1", "-nographic", "-no-reboot",
        "-kernel", vmlinuz, "-initrd", initrd,
        "-append", "console=%s panic=-1 quiet %s" % (console, ARGS.guest_env),
        "-netdev", "user,id=n0", "-device", "%s,netdev=n0" % netdev]
    log("%s: booting kernel %s, %d MiB, node %s" % (name, kver, ARGS.guest_mib, binary))
    t0 = time.monotonic()
    console = os.path.join(work, name + ".console")
    with open(console, "wb") as f:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                       timeout=ARGS.timeout + 300)
    wall = time.monotonic() - t0
    with open(console, "rb") as f:
        out = f.read().decode("utf-8", "replace")
    samples, synced, status, verify, warn = [], None, "", [], []
    for line in out.replace("\r", "").splitlines():
        w = line.split()
        if line.startswith("GUEST-SAMPLE ") and len(w) >= 5:
            samples.append(tuple(int(x) for x in w[1:5]))  # t, VmHWM, VmRSS, RssAnon (file order)
        elif line.startswith("GUEST-SYNCED "):
            synced = int(w[1])
        elif line.startswith("GUEST-STATUS "):
            status += line[len("GUEST-STATUS "):]
        elif line.startswith("GUEST-VERIFY "):
            verify.append(line[len("GUEST-VERIFY "):])
        elif line.startswith("GUEST-LOG "):
            warn.append(line[len("GUEST-LOG "):])
    if synced is None or not samples:
        sys.stderr.write(out[-4000:])
        die("%s: the node did not sync (console above, and in %s.console)" % (name, name))
    # /proc/PID/status lists VmHWM before VmRSS, and RssAnon after them.
    steady = [s for s in samples if s[0] > synced]
    res = {
        "binary": os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary,
        "version": version([binary, "--version"]) if name == "x86_64" else "",
        "kernel": kver,
        "sync_s": synced,
        "peak_kib": max(s[1] for s in samples),
        "steady_kib": statistics.median(s[2] for s in steady) if steady else 0,
        "anon_peak_kib": max(s[3] for s in samples),
        "anon_steady_kib": statistics.median(s[3] for s in steady) if steady else 0,
        "verify": verify[-1] if verify else "(no output)",
        "warnings": warn,
        "wall": wall,
        "status": status,
    }
    try:
        ch = (json.loads(status).get("channels") or [{}])[0]
    except ValueError:
        ch = {}
    res["files"] = "%s / %s" % (ch.get("files_done"), ch.get("files_total"))
    res["downloaded"] = ch.get("downloaded", 0)
    log("%s: synced after %d s, peak %.1f MiB, steady %.1f MiB; verify: %s" % (
        name, synced, res["peak_kib"] / 1024, res["steady_kib"] / 1024, res["verify"]))
    return res


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--arches", default="arm,x86_64")
    ap.add_argument("--arm-bin")
    ap.add_argument("--x86_64-bin", dest="x86_64_bin")
    ap.add_argument("--profile", default="release-small")
    ap.add_argument("--origin-bin", default=os.path.join(ROOT, "target", "release", "swarmsync"))
    ap.add_argument("--qemu-cache", default=os.path.join(ROOT, "target", "qemu"))
    ap.add_argument("--guest-mib", type=int, default=512)
    ap.add_argument("--steady", type=int, default=20)
    ap.add_argument("--timeout", type=int, default=1500)
    ap.add_argument("--work", default=None)
    ap.add_argument("--guest-env", default="",
                    help="NAME=VALUE words for the guest's init (e.g. SWARMSYNC_LOG=debug)")
    ARGS = ap.parse_args()
    arches = [a for a in ARGS.arches.split(",") if a]
    for a in arches:
        if a not in ARCHES:
            die("unknown architecture %s (arm or x86_64)" % a)
    work = ARGS.work or tempfile.mkdtemp(prefix="swarmsync-guest-")
    os.makedirs(work, exist_ok=True)
    try:
        tree = os.path.join(work, "tree")
        entries = plan_tree(ARGS.files, ARGS.size_mib << 20, 1, "pool", 0)
        log("writing %d files, %d MiB" % (ARGS.files, ARGS.size_mib))
        write_tree(tree, entries)
        key = os.path.join(work, "key")
        public = subprocess.run([ARGS.origin_bin, "keygen", "--out", key], capture_output=True,
                                text=True, check=True).stdout.split()[-1]
        http, peer = free_port(), free_port()
        olog = open(os.path.join(work, "origin.log"), "w+")
        origin = subprocess.Popen(
            [ARGS.origin_bin, "publish", "--key", key, "--channel", CHANNEL, "--tree", tree,
             "--state", os.path.join(work, "state"), "--listen", "127.0.0.1:%d" % peer,
             "--http", "127.0.0.1:%d" % http, "--url", "http://10.0.2.2:%d" % http,
             "--expires", "1d"], stdin=subprocess.DEVNULL, stdout=olog, stderr=subprocess.STDOUT)
        children.append(origin)
        deadline = time.monotonic() + 900
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/-/releases/%s" % (http, CHANNEL),
                                       timeout=5).read()
                break
            except Exception:
                pass
            if origin.poll() is not None or time.monotonic() > deadline:
                olog.seek(0)
                die("the origin did not come up:\n" + olog.read()[-3000:])
            time.sleep(0.5)
        log("origin up")
        results = {a: run_guest(a, work, public, http) for a in arches}
    finally:
        cleanup()
        if not ARGS.work:
            shutil.rmtree(work, ignore_errors=True)
    print("Node memory in %d MiB guests, %d files / %d MiB synced from the origin's web seed "
          "(tools/bench/guest_node.py --files %d --size-mib %d):\n" % (
              ARGS.guest_mib, ARGS.files, ARGS.size_mib, ARGS.files, ARGS.size_mib))
    print("| guest | binary | peak (VmHWM) | steady (median VmRSS) | RssAnon peak / steady "
          "| files done / wanted | downloaded | sync (emulated) | verify |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for a, r in results.items():
        print("| %s (kernel %s) | `%s` | %.1f MiB | %.1f MiB | %.1f / %.1f MiB | %s | %.1f MB "
              "| %d s | %s |" % (
                  a, r["kernel"], r["binary"], r["peak_kib"] / 1024, r["steady_kib"] / 1024,
                  r["anon_peak_kib"] / 1024, r["anon_steady_kib"] / 1024, r["files"],
                  r["downloaded"] / 1e6, r["sync_s"], r["verify"]))
    if "arm" in results and "x86_64" in results and results["x86_64"]["peak_kib"]:
        print("\narmv7 / x86_64: peak %.2f×, steady %.2f×" % (
            results["arm"]["peak_kib"] / results["x86_64"]["peak_kib"],
            results["arm"]["steady_kib"] / max(1, results["x86_64"]["steady_kib"])))
    for a, r in results.items():
        for w in r["warnings"]:
            print("\n%s node warning: %s" % (a, w))


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
