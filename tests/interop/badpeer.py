#!/usr/bin/python3
"""A misbehaving BitTorrent peer for swarmsync's swarm tests (raw BEP 3 over
TCP on 127.0.0.1; no libtorrent).

  badpeer.py MODE --pieces N [--timeout S] [--interval S]

It listens on 127.0.0.1 (an ephemeral port, printed as `port: N`), and for
every connection: reads the other side's handshake, answers with the same
infohash (so it needs no torrent), sends a bitfield claiming all N pieces
and unchokes. Then, by MODE:

  corrupt      answers every request with random bytes of the asked length
  oversized    announces a 256 MiB message and sends 64 KiB of it
  badbitfield  (instead of the right bitfield) sends one 3 bytes too long
  trickle      answers the first request with a piece message sent one byte
               every --interval seconds, forever (a peer that holds a
               block hostage); reads nothing else meanwhile

Event lines on stdout, flushed as they happen: `connected ADDR`,
`served INDEX BEGIN LENGTH`, `trickling INDEX BEGIN LENGTH`,
`closed ADDR REASON`. It ends at stdin EOF or
after --timeout seconds.
"""

import argparse
import os
import select
import socket
import struct
import sys
import threading
import time

PSTR = b"\x13BitTorrent protocol"
lock = threading.Lock()


def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def read_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError("closed by peer")
        buf += d
    return bytes(buf)


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def trickle(conn, body, interval):
    """Sends `body` one byte at a time until the other side hangs up."""
    for b in body:
        time.sleep(interval)
        conn.sendall(bytes([b]))
    # The whole block went out (only with a tiny block): hold on.
    while True:
        time.sleep(interval)
        conn.sendall(struct.pack(">I", 0))  # keep-alives


def serve(conn, peer, mode, pieces, interval):
    who = "%s:%d" % peer[:2]
    say("connected %s" % who)
    try:
        conn.settimeout(60)
        hs = read_exact(conn, 68)
        if hs[:20] != PSTR:
            raise ValueError("not a BitTorrent handshake")
        info_hash = hs[28:48]
        conn.sendall(PSTR + bytes(8) + info_hash + b"-XX0001-badpeer00000")
        nbytes = (pieces + 7) // 8
        bits = bytearray(b"\xff" * nbytes)
        if pieces % 8:
            bits[-1] = (0xFF << (8 - pieces % 8)) & 0xFF
        if mode == "badbitfield":
            bits += b"\xff\xff\xff"
        conn.sendall(msg(5, bytes(bits)) + msg(1))  # bitfield, unchoke
        if mode == "oversized":
            conn.sendall(struct.pack(">IB", 256 << 20, 7) + os.urandom(64 * 1024))
        while True:
            (n,) = struct.unpack(">I", read_exact(conn, 4))
            if n == 0:
                continue  # keep-alive
            if n > 1 << 20:
                raise ValueError("message of %d bytes" % n)
            body = read_exact(conn, n)
            if body[0] == 6 and n == 13 and mode == "corrupt":
                index, begin, length = struct.unpack(">III", body[1:13])
                if length > 1 << 17:
                    raise ValueError("request of %d bytes" % length)
                conn.sendall(msg(7, struct.pack(">II", index, begin) + os.urandom(length)))
                say("served %d %d %d" % (index, begin, length))
            if body[0] == 6 and n == 13 and mode == "trickle":
                index, begin, length = struct.unpack(">III", body[1:13])
                if length > 1 << 17:
                    raise ValueError("request of %d bytes" % length)
                say("trickling %d %d %d" % (index, begin, length))
                trickle(conn, msg(7, struct.pack(">II", index, begin) + os.urandom(length)), interval)
    except Exception as e:  # every way a connection ends is an event, not a crash
        say("closed %s %s" % (who, str(e).replace("\n", " ") or type(e).__name__))
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser(prog="badpeer.py")
    p.add_argument("mode", choices=["corrupt", "oversized", "badbitfield", "trickle"])
    p.add_argument("--pieces", type=int, required=True)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--interval", type=float, default=0.5)
    a = p.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    say("port: %d" % srv.getsockname()[1])
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([srv, sys.stdin], [], [], 0.2)
        if sys.stdin in r and not sys.stdin.readline():
            break
        if srv in r:
            conn, peer = srv.accept()
            threading.Thread(target=serve, args=(conn, peer, a.mode, a.pieces, a.interval), daemon=True).start()
    os._exit(0)


if __name__ == "__main__":
    main()
