#!/usr/bin/python3
"""Real-libtorrent helper for swarmsync's interop tests and benchmarks.

Run it with Debian's /usr/bin/python3 (python3-libtorrent 2.0.8 lives there,
not in the pyenv python that comes first on PATH). Every subcommand prints
`key: value` lines on stdout and exits non-zero with one `lt.py: ...` line on
stderr when something is wrong.

  create DIR OUT (--v1|--v2|--hybrid) [--piece-size N] [--symlinks]
      libtorrent's create_torrent + set_piece_hashes of DIR (named after its
      last component); prints v1:/v2: infohashes and `seconds:` (time spent
      in add_files + set_piece_hashes + generate + write, inside this process).
      --symlinks stores symlinks (libtorrent's default follows them).
  info FILE
      loads FILE as libtorrent's torrent_info; prints v1:/v2: infohashes,
      name, piece length, pieces, files (pad files excluded) and `size path` lines.
  info-section FILE OUT
      writes the raw bencoded info dictionary libtorrent reads from FILE.
  dump FILE
      prints the decoded torrent (bytes longer than 64 shown as hex length).
  recheck FILE SAVE_PATH [--timeout S]
      adds FILE to a network-less libtorrent session with SAVE_PATH, forces a
      full recheck and reports `pieces: valid/total`; exits 1 unless every
      piece is valid (lists the first bad pieces).
"""

import argparse
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:  # the tests must fail, not skip, without libtorrent
    sys.stderr.write(
        "lt.py: cannot import libtorrent (%s); run tools/setup "
        "(python3-libtorrent) and use /usr/bin/python3\n" % e
    )
    sys.exit(2)


def die(msg):
    sys.stderr.write("lt.py: %s\n" % msg)
    sys.exit(1)


def hashes_of(ti):
    ih = ti.info_hashes()
    out = []
    if ih.has_v1():
        out.append("v1: %s" % ih.v1)
    if ih.has_v2():
        out.append("v2: %s" % ih.v2)
    return out


def cmd_create(a):
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[a.kind]
    src = os.path.abspath(a.dir)
    if not os.path.exists(src):
        die("%s does not exist" % src)
    start = time.perf_counter()
    fs = lt.file_storage()
    if a.symlinks:  # keep symlinks as symlinks (attr "l") instead of following them
        lt.add_files(fs, src, flags=lt.create_torrent.symlinks)
        flags = lt.create_torrent.symlinks if flags == 0 else flags | lt.create_torrent.symlinks
    else:
        lt.add_files(fs, src)
    if fs.num_files() == 0:
        die("%s has no files" % src)
    ct = lt.create_torrent(fs, a.piece_size, flags)
    ct.set_creator("lt.py (libtorrent %s)" % lt.__version__)
    lt.set_piece_hashes(ct, os.path.dirname(src))
    data = lt.bencode(ct.generate())
    with open(a.out, "wb") as f:
        f.write(data)
    elapsed = time.perf_counter() - start
    ti = lt.torrent_info(data)
    print("\n".join(hashes_of(ti)))
    print("piece length: %d" % ti.piece_length())
    print("seconds: %.6f" % elapsed)


def load(path):
    try:
        return lt.torrent_info(path)
    except Exception as e:  # libtorrent raises RuntimeError with its own message
        die("libtorrent cannot load %s: %s" % (path, e))


def cmd_info(a):
    ti = load(a.file)
    print("\n".join(hashes_of(ti)))
    print("name: %s" % ti.name())
    print("piece length: %d" % ti.piece_length())
    print("pieces: %d" % ti.num_pieces())
    fs = ti.files()
    real = [i for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]
    print("files: %d" % len(real))
    for i in real:
        print("%d %s" % (fs.file_size(i), fs.file_path(i)))


def cmd_info_section(a):
    ti = load(a.file)
    with open(a.out, "wb") as f:
        f.write(ti.info_section())


def show(v, indent=0):
    pad = "  " * indent
    if isinstance(v, dict):
        for k in sorted(v):
            key = k.decode("utf-8", "backslashreplace") if isinstance(k, bytes) else str(k)
            val = v[k]
            if isinstance(val, (dict, list)):
                print("%s%s:" % (pad, key))
                show(val, indent + 1)
            else:
                print("%s%s: %s" % (pad, key, scalar(val)))
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)):
                print("%s-" % pad)
                show(x, indent + 1)
            else:
                print("%s- %s" % (pad, scalar(x)))
    else:
        print("%s%s" % (pad, scalar(v)))


def scalar(x):
    if isinstance(x, bytes):
        if len(x) > 64:
            return "<%d bytes>" % len(x)
        try:
            return repr(x.decode("utf-8"))
        except UnicodeDecodeError:
            return "0x" + x.hex()
    return repr(x)


def cmd_dump(a):
    with open(a.file, "rb") as f:
        d = lt.bdecode(f.read())
    if d is None:
        die("%s is not bencoded" % a.file)
    show(d)


def cmd_recheck(a):
    ti = load(a.file)
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    }
    ses = lt.session(settings)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.abspath(a.save_path)
    atp.flags = (
        atp.flags
        & ~lt.torrent_flags.auto_managed
        & ~lt.torrent_flags.paused
    ) | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    atp.flags |= lt.torrent_flags.upload_mode  # never write into the checked tree
    h = ses.add_torrent(atp)
    deadline = time.monotonic() + a.timeout
    checking = (
        lt.torrent_status.checking_files,
        lt.torrent_status.checking_resume_data,
    )
    # The add itself checks the files; force_recheck makes the intent explicit
    # and guarantees a full hash check even if libtorrent believed it had state.
    h.force_recheck()
    done = False
    while time.monotonic() < deadline:
        for al in ses.pop_alerts():
            if isinstance(al, lt.torrent_error_alert) or isinstance(al, lt.file_error_alert):
                die("libtorrent error: %s" % al.message())
            if isinstance(al, lt.torrent_checked_alert):
                done = True
        st = h.status()
        if done and st.state not in checking:
            break
        ses.wait_for_alert(100)
    else:
        die("recheck did not finish within %.0f s" % a.timeout)
    st = h.status()
    if st.errc.value() != 0:
        die("libtorrent error: %s" % st.errc.message())
    pieces = list(st.pieces)
    valid = sum(1 for p in pieces if p)
    total = ti.num_pieces()
    print("pieces: %d/%d" % (valid, total))
    print("state: %s" % st.state)
    if valid != total or len(pieces) != total:
        bad = [i for i, p in enumerate(pieces) if not p][:20]
        die("%d of %d pieces invalid (first: %s)" % (total - valid, total, bad))


def main():
    p = argparse.ArgumentParser(prog="lt.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("dir")
    c.add_argument("out")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--v1", dest="kind", action="store_const", const="v1")
    g.add_argument("--v2", dest="kind", action="store_const", const="v2")
    g.add_argument("--hybrid", dest="kind", action="store_const", const="hybrid")
    c.add_argument("--piece-size", type=int, default=0)
    c.add_argument("--symlinks", action="store_true", help="store symlinks instead of following them")
    c.set_defaults(fn=cmd_create)
    i = sub.add_parser("info")
    i.add_argument("file")
    i.set_defaults(fn=cmd_info)
    s = sub.add_parser("info-section")
    s.add_argument("file")
    s.add_argument("out")
    s.set_defaults(fn=cmd_info_section)
    d = sub.add_parser("dump")
    d.add_argument("file")
    d.set_defaults(fn=cmd_dump)
    r = sub.add_parser("recheck")
    r.add_argument("file")
    r.add_argument("save_path")
    r.add_argument("--timeout", type=float, default=60.0)
    r.set_defaults(fn=cmd_recheck)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
