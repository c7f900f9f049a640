#!/usr/bin/python3
"""A real libtorrent 2.0.8 leecher that starts from a magnet link only, for
swarmsync's BEP 9 / BEP 52 interop tests (metadata and piece-layer serving).

Run it with Debian's /usr/bin/python3 (python3-libtorrent lives there). The
session is bound to 127.0.0.1 with DHT, LSD, UPnP, NAT-PMP, uTP and
encryption off, like ltpeer.py.

  leech SAVE_PATH MAGNET --peer HOST:PORT [--peer ...] [--timeout S]
      Adds MAGNET, connects to every --peer (again every second while not
      connected), waits for the metadata and the download, then re-hashes
      everything (v2: against the piece layers it fetched with hash
      requests) and prints `name: NAME`, `downloaded: BYTES` and
      `pieces: valid/total`. Exits 0 only when every piece is valid.

Every failure is one `ltmagnet.py: ...` line on stderr and a non-zero exit.
"""

import argparse
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:  # the tests must fail, not skip, without libtorrent
    sys.stderr.write(
        "ltmagnet.py: cannot import libtorrent (%s); run tools/setup "
        "(python3-libtorrent) and use /usr/bin/python3\n" % e
    )
    sys.exit(2)

CHECKING = (
    lt.torrent_status.checking_files,
    lt.torrent_status.checking_resume_data,
)


def die(msg):
    sys.stderr.write("ltmagnet.py: %s\n" % msg)
    sys.stderr.flush()
    os._exit(1)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % s)
    return (host.strip("[]"), int(port))


def errors(ses, h):
    for a in ses.pop_alerts():
        if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
            die("libtorrent error: %s" % a.message())
    st = h.status()
    if st.errc.value() != 0:
        die("libtorrent error: %s" % st.errc.message())
    return st


def cmd_leech(a):
    deadline = time.monotonic() + a.timeout
    disabled = 2  # settings_pack::pe_disabled
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "out_enc_policy": disabled,
            "in_enc_policy": disabled,
            "allow_multiple_connections_per_ip": True,
            "alert_mask": lt.alert.category_t.status_notification
            | lt.alert.category_t.error_notification,
        }
    )
    try:
        atp = lt.parse_magnet_uri(a.magnet)
    except Exception as e:
        die("libtorrent cannot parse the magnet link: %s" % e)
    atp.save_path = os.path.abspath(a.save_path)
    atp.flags = (
        (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused)
        | lt.torrent_flags.disable_dht
        | lt.torrent_flags.disable_lsd
        | lt.torrent_flags.disable_pex
    )
    h = ses.add_torrent(atp)
    h.resume()
    last_try = 0.0
    while True:
        st = errors(ses, h)
        if st.has_metadata and st.is_finished and st.state not in CHECKING:
            break
        now = time.monotonic()
        if now > deadline:
            die(
                "not finished within %.0f s (metadata: %s, %.1f%%, %d peers)"
                % (a.timeout, st.has_metadata, st.progress * 100, st.num_peers)
            )
        if now - last_try >= 1.0:
            last_try = now
            connected = {(p.ip[0], p.ip[1]) for p in h.get_peer_info()}
            for p in a.peer:
                if p not in connected:
                    try:
                        h.connect_peer(p)
                    except Exception as e:
                        sys.stderr.write("ltmagnet.py: connect_peer %s:%d: %s\n" % (p[0], p[1], e))
        ses.wait_for_alert(20)
    st = h.status()
    ti = h.torrent_file()
    say("name: %s" % st.name)
    say("downloaded: %d" % st.total_payload_download)
    h.force_recheck()
    h.resume()
    checked = False
    while True:
        for al in ses.pop_alerts():
            if isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                die("libtorrent error: %s" % al.message())
            if isinstance(al, lt.torrent_checked_alert):
                checked = True
        st = h.status()
        if checked and st.state not in CHECKING:
            break
        if time.monotonic() > deadline:
            die("recheck not finished within %.0f s" % a.timeout)
        ses.wait_for_alert(50)
    valid = sum(1 for p in h.status().pieces if p)
    say("pieces: %d/%d" % (valid, ti.num_pieces()))
    if valid != ti.num_pieces():
        die("%d of %d pieces invalid after the download" % (ti.num_pieces() - valid, ti.num_pieces()))
    os._exit(0)


def main():
    p = argparse.ArgumentParser(prog="ltmagnet.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("leech")
    l.add_argument("save_path")
    l.add_argument("magnet")
    l.add_argument("--peer", type=addr, action="append", default=[])
    l.add_argument("--timeout", type=float, default=120.0)
    l.set_defaults(fn=cmd_leech)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
