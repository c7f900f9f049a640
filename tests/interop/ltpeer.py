#!/usr/bin/python3
"""A real libtorrent 2.0.8 peer (seeder or leecher) for swarmsync's swarm
tests and benchmarks.

Run it with Debian's /usr/bin/python3 (python3-libtorrent lives there). The
session is bound to 127.0.0.1 only, with DHT, LSD, UPnP, NAT-PMP, uTP and
encryption off, several connections per IP allowed and torrents not
auto-managed: loopback tests must not reach anything else, and libtorrent's
defaults (uTP, encryption) cost throughput on loopback.

  seed SAVE_PATH TORRENT... [--port P] [--peer HOST:PORT]... [--seed-mode]
       [--upload-limit BYTES_PER_S] [--timeout S] [--stay]
      Checks the data under SAVE_PATH (or trusts it with --seed-mode), then
      prints `port: N` (its listening port) and `ready`, and seeds. It
      connects to every --peer (and again every 2 s while not connected).
      Lines on stdin: `connect HOST:PORT [N]` connects every torrent (or
      the Nth, from 0, in the order given) to that peer, trying again every
      0.2 s for up to 30 s until it is connected once; `quit` ends it. It ends at stdin EOF (unless --stay), after
      --timeout seconds, or on SIGTERM; then prints `uploaded: BYTES`.
  leech SAVE_PATH TORRENT [--port P] [--peer HOST:PORT]... [--timeout S]
       [--recheck]
      Downloads into SAVE_PATH from the given peers (it also accepts
      incoming peers on its port, printed as `port: N`), then prints
      `seconds: S` (add to finished and written), `downloaded: BYTES` (payload) and, with
      --recheck, re-hashes everything and prints `pieces: valid/total`.
      Exits 0 only when complete (and, with --recheck, every piece valid).

Every failure is one `ltpeer.py: ...` line on stderr and a non-zero exit.
"""

import argparse
import os
import select
import signal
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:  # the tests must fail, not skip, without libtorrent
    sys.stderr.write(
        "ltpeer.py: cannot import libtorrent (%s); run tools/setup "
        "(python3-libtorrent) and use /usr/bin/python3\n" % e
    )
    sys.exit(2)

CHECKING = (
    lt.torrent_status.checking_files,
    lt.torrent_status.checking_resume_data,
)


def die(msg, code=1):
    sys.stderr.write("ltpeer.py: %s\n" % msg)
    sys.stderr.flush()
    os._exit(code)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % s)
    return (host.strip("[]"), int(port))


def session(port):
    disabled = 2  # settings_pack::pe_disabled
    s = lt.session(
        {
            "listen_interfaces": "127.0.0.1:%d" % port,
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
    return s


def listen_port(ses, deadline):
    """The TCP port the session listens on, once it does."""
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                die("cannot listen: %s" % a.message())
        p = ses.listen_port()
        if p:
            return p
        ses.wait_for_alert(50)
    die("the session did not start listening")


def add(ses, torrent, save_path, extra_flags=0):
    try:
        ti = lt.torrent_info(torrent)
    except Exception as e:  # libtorrent raises RuntimeError with its own message
        die("libtorrent cannot load %s: %s" % (torrent, e))
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.abspath(save_path)
    atp.flags = (
        (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused)
        | lt.torrent_flags.disable_dht
        | lt.torrent_flags.disable_lsd
        | lt.torrent_flags.disable_pex
        | extra_flags
    )
    h = ses.add_torrent(atp)
    # Not auto-managed: nothing else would take it out of checking/paused.
    h.resume()
    return h, ti


def check_errors(ses, handles):
    """Dies on an error alert or status; returns the other alerts."""
    rest = []
    for a in ses.pop_alerts():
        if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
            die("libtorrent error: %s" % a.message())
        rest.append(a)
    for h in handles:
        st = h.status()
        if st.errc.value() != 0:
            die("libtorrent error on %s: %s" % (st.name, st.errc.message()))
    return rest


def connected_to(h, peer):
    for p in h.get_peer_info():
        if tuple(p.ip) == peer or (p.ip[0] == peer[0] and p.ip[1] == peer[1]):
            return True
    return False


def connect(h, peer):
    try:
        h.connect_peer(peer)
    except Exception as e:
        sys.stderr.write("ltpeer.py: connect_peer %s:%d: %s\n" % (peer[0], peer[1], e))


def cmd_seed(a):
    deadline = time.monotonic() + a.timeout
    ses = session(a.port)
    flags = lt.torrent_flags.seed_mode if a.seed_mode else 0
    handles = [add(ses, t, a.save_path, flags)[0] for t in a.torrents]
    for h in handles:
        if a.upload_limit:
            h.set_upload_limit(a.upload_limit)
    port = listen_port(ses, deadline)
    checked = set()
    while True:
        for al in check_errors(ses, handles):
            if isinstance(al, lt.torrent_checked_alert):
                checked.add(str(al.handle.info_hashes().get_best()))
        sts = [h.status() for h in handles]
        if all(st.is_seeding and st.state not in CHECKING for st in sts):
            break
        for h, st in zip(handles, sts):
            if str(h.info_hashes().get_best()) in checked and st.state not in CHECKING and not st.is_seeding:
                die("%s: the data under %s is incomplete (%.1f%% valid)" % (st.name, a.save_path, st.progress * 100))
        if time.monotonic() > deadline:
            die("checking did not finish within %.0f s" % a.timeout)
        ses.wait_for_alert(50)
    say("port: %d" % port)
    say("ready")
    peers = list(a.peer)
    # One-shot `connect` commands: (handle, peer, first try) until connected
    # once (a downloader may not listen yet when it is named), for 30 s.
    pending = []
    last_try = 0.0
    last_pending = 0.0
    stdin_open = True
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop and time.monotonic() < deadline:
        check_errors(ses, handles)
        now = time.monotonic()
        if now - last_try >= 2.0:
            last_try = now
            for h in handles:
                for p in peers:
                    if not connected_to(h, p):
                        connect(h, p)
        if pending and now - last_pending >= 0.2:
            last_pending = now
            still = []
            for h, p, first in pending:
                if connected_to(h, p):
                    continue
                if now - first < 30:
                    connect(h, p)
                    still.append((h, p, first))
            pending = still
        if stdin_open:
            r, _, _ = select.select([sys.stdin], [], [], 0.05)
            if r:
                line = sys.stdin.readline()
                if not line:
                    stdin_open = False
                    if not a.stay:
                        break
                    continue
                words = line.split()
                if words[:1] == ["quit"]:
                    break
                if words[:1] == ["connect"] and len(words) in (2, 3):
                    p = addr(words[1])
                    which = handles if len(words) == 2 else [handles[int(words[2])]]
                    for h in which:
                        connect(h, p)
                        pending.append((h, p, time.monotonic()))
                    say("connecting: %s:%d" % p)
        else:
            time.sleep(0.1)
    up = sum(h.status().all_time_upload for h in handles)
    say("uploaded: %d" % up)
    os._exit(0)


def cmd_leech(a):
    deadline = time.monotonic() + a.timeout
    ses = session(a.port)
    started = time.monotonic()
    h, ti = add(ses, a.torrent, a.save_path)
    port = listen_port(ses, deadline)
    say("port: %d" % port)
    last_try = 0.0
    while True:
        check_errors(ses, [h])
        st = h.status()
        if st.is_finished and st.state not in CHECKING:
            break
        now = time.monotonic()
        if now > deadline:
            die("download not finished within %.0f s (%.1f%%, %d peers)" % (a.timeout, st.progress * 100, st.num_peers))
        if now - last_try >= 1.0 and st.state not in CHECKING:
            last_try = now
            for p in a.peer:
                if not connected_to(h, p):
                    connect(h, p)
        ses.wait_for_alert(20)
    # A passed hash check does not mean the block is written yet (libtorrent
    # hashes from its store buffer): wait until every disk job is done, or
    # an exit right now loses the last blocks.
    h.flush_cache()
    while True:
        if any(isinstance(al, lt.cache_flushed_alert) for al in check_errors(ses, [h])):
            break
        if time.monotonic() > deadline:
            die("the disk cache was not flushed within %.0f s" % a.timeout)
        ses.wait_for_alert(20)
    elapsed = time.monotonic() - started
    st = h.status()
    say("seconds: %.3f" % elapsed)
    say("downloaded: %d" % st.total_payload_download)
    if a.recheck:
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
        pieces = list(h.status().pieces)
        valid = sum(1 for p in pieces if p)
        say("pieces: %d/%d" % (valid, ti.num_pieces()))
        if valid != ti.num_pieces():
            die("%d of %d pieces invalid after the download" % (ti.num_pieces() - valid, ti.num_pieces()))
    os._exit(0)


def main():
    p = argparse.ArgumentParser(prog="ltpeer.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("save_path")
    s.add_argument("torrents", nargs="+")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--peer", type=addr, action="append", default=[])
    s.add_argument("--seed-mode", action="store_true")
    s.add_argument("--upload-limit", type=int, default=0)
    s.add_argument("--stay", action="store_true")
    s.add_argument("--timeout", type=float, default=120.0)
    s.set_defaults(fn=cmd_seed)
    l = sub.add_parser("leech")
    l.add_argument("save_path")
    l.add_argument("torrent")
    l.add_argument("--port", type=int, default=0)
    l.add_argument("--peer", type=addr, action="append", default=[])
    l.add_argument("--recheck", action="store_true")
    l.add_argument("--timeout", type=float, default=120.0)
    l.set_defaults(fn=cmd_leech)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
