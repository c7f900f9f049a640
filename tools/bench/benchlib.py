"""What the benchmark scripts (sync.py, download.py) share: paths, logging,
ports, /proc readings and the children to kill on the way out."""

import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LTPEER = os.path.join(ROOT, "tests", "interop", "ltpeer.py")
PY = "/usr/bin/python3"
MIB = 1 << 20
# Processes started by a benchmark; cleanup() kills what is left.
children = []


def log(msg):
    sys.stderr.write("%s: %s\n" % (os.path.basename(sys.argv[0]), msg))
    sys.stderr.flush()


def die(msg):
    log("error: " + msg)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon, RssFile in KiB from /proc/PID/status (empty
    when the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0])
    return out


def version(argv):
    """The first line a program prints for its version, or why not."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception as e:
        return "? (%s)" % e


def cleanup():
    for p in list(children):
        try:
            p.kill()
            p.wait(10)
        except Exception:
            pass
        children.remove(p)
