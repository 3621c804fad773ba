#!/usr/bin/env python3
"""hostile_peers.py -- SPOP peers that misbehave, for benchmarks/soak.sh --hostile.

    hostile_peers.py HOST PORT SECONDS

Until SECONDS have passed, opens in turns, each on its own connection:
  trickle   HELLO, then a NOTIFY one byte every 0.5 s (a frame that never ends)
  noread    HELLO, then NOTIFYs of the soak script's "bigack" message (large ACKs)
            sent for 3 s while never reading a byte
  fragment  HELLO with fragmentation, then a first fragment that is never finished
  garbage   random bytes instead of HELLO
  abrupt    HELLO and 20 pipelined NOTIFYs, then a reset before reading the ACKs
Each peer is bounded in time (at most 8 s) and the whole run ends by itself.
Prints one line per kind: how many connections were opened and how the agent
ended them (closed by the agent, still open when we gave up, refused).
"""
import os
import random
import socket
import struct
import sys
import threading
import time


def varint(v):
    if v < 240:
        return bytes([v])
    out = bytearray([(v & 0xFF) | 0xF0])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0xFF) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def rawstr(b):
    return varint(len(b)) + b


def kv_string(name, value):
    return rawstr(name) + b"\x08" + rawstr(value)


def frame(ftype, stream, fid, payload, flags=1):
    body = bytes([ftype]) + struct.pack(">I", flags) + varint(stream) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


def hello(capabilities=b"pipelining"):
    payload = (kv_string(b"supported-versions", b"2.0")
               + rawstr(b"max-frame-size") + b"\x03" + varint(16380)
               + kv_string(b"capabilities", capabilities))
    return frame(1, 0, 0, payload)


def notify(stream, fid, message=b"bigack"):
    # One message with one string argument "kind".
    payload = rawstr(message) + b"\x01" + rawstr(b"kind") + b"\x08" + rawstr(b"peer")
    return frame(3, stream, fid, payload)


def connect(host, port):
    s = socket.create_connection((host, port), timeout=8)
    s.settimeout(8)
    return s


def closed_by_agent(s, wait):
    """True if the agent closes the connection within `wait` seconds."""
    s.settimeout(wait)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


def trickle(host, port):
    s = connect(host, port)
    s.sendall(hello())
    s.recv(65536)
    data = notify(1, 1)
    start = time.monotonic()
    for b in data:
        if time.monotonic() - start > 6:
            break
        try:
            s.sendall(bytes([b]))
        except OSError:
            return "closed"
        if closed_by_agent(s, 0.5):
            return "closed"
    return "open"


def noread(host, port):
    s = connect(host, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(hello())
    s.settimeout(1)
    end = time.monotonic() + 3
    fid = 1
    while time.monotonic() < end:
        try:
            s.sendall(notify(fid, fid))
        except (socket.timeout, TimeoutError):
            continue       # the agent stopped reading from us: what we want
        except OSError:
            return "closed"
        fid += 1
    return "closed" if closed_by_agent(s, 0.1) else "open"


def fragment(host, port):
    s = connect(host, port)
    s.sendall(hello(b"pipelining,fragmentation"))
    s.recv(65536)
    payload = rawstr(b"bigack") + b"\x01" + rawstr(b"kind") + b"\x08" + rawstr(b"x" * 8000)
    s.sendall(frame(3, 1, 1, payload[:4000], flags=0))
    return "closed" if closed_by_agent(s, 6) else "open"


def garbage(host, port):
    s = connect(host, port)
    s.sendall(os.urandom(random.randint(1, 2000)))
    return "closed" if closed_by_agent(s, 6) else "open"


def abrupt(host, port):
    s = connect(host, port)
    s.sendall(hello())
    s.recv(65536)
    s.sendall(b"".join(notify(i, i) for i in range(1, 21)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return "reset"


KINDS = [trickle, noread, fragment, garbage, abrupt]


def main():
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    end = time.monotonic() + seconds
    counts = {k.__name__: {} for k in KINDS}
    lock = threading.Lock()

    def run(kind):
        while time.monotonic() < end:
            try:
                result = kind(host, port)
            except OSError as e:
                result = "refused" if isinstance(e, ConnectionRefusedError) else "error"
            with lock:
                c = counts[kind.__name__]
                c[result] = c.get(result, 0) + 1
            time.sleep(0.5)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in KINDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 20)
    for name, c in counts.items():
        print("hostile-peer %s %s" % (name, " ".join("%s=%d" % kv for kv in sorted(c.items()))))


if __name__ == "__main__":
    main()
