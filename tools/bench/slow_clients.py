#!/usr/bin/env python3
"""slow_clients.py — one misbehaving client against a running `dre serve`: it opens N
connections (from its own loopback address, 127.0.0.2 by default), sends on each a request
line, headers and one byte of a 100 kB body, and never finishes; meanwhile a second client
(127.0.0.1) asks /search and /health every half second. Then the first client closes every
connection and the second asks /health again.

Prints one line a run: connections the slow client opened and how many the server still
held at the end, the normal client's worst /search and /health times while they were held
(a time-out counts as the time-out, a refused connection as the time it took) and how many
got no answer, and /health's time after the slow client left.

  python3 tools/bench/slow_clients.py --port 8080 --connections 1000 3000 5100 [--hold 10]
(the standard library only; raise `ulimit -n` above the connection count)
"""
import argparse
import http.client
import json
import resource
import socket
import time


def timed(port, method, path, body=None, timeout=5.0, source="127.0.0.1"):
    """Seconds a request took, and its status: 0 when the connection was closed or refused
    (then the seconds say how soon), or when it timed out (then the seconds are timeout)."""
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                       source_address=(source, 0))
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        status = c.getresponse().status
        c.close()
    except socket.timeout:
        return timeout, 0
    except OSError:
        return time.monotonic() - t0, 0
    return time.monotonic() - t0, status


def open_slow(port, n, source):
    socks = []
    head = (b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{")
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2.0)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(head)
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def still_open(socks):
    """Connections the server has not closed (a read that would block)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            n += s.recv(1) != b""
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def run(port, n, hold, source):
    socks = open_slow(port, n, source)
    worst_search = worst_health = 0.0
    failures = 0
    query = json.dumps({"query": "speeding up diffusion transformers", "k": 3})
    end = time.monotonic() + hold
    while time.monotonic() < end:
        t, st = timed(port, "POST", "/search", query)
        worst_search, failures = max(worst_search, t), failures + (st != 200)
        t, st = timed(port, "GET", "/health")
        worst_health, failures = max(worst_health, t), failures + (st != 200)
        time.sleep(0.5)
    held = still_open(socks)
    for s in socks:
        s.close()
    after, st = timed(port, "GET", "/health", timeout=10.0)
    print(f"slow_connections={len(socks)} held_at_end={held} search_worst_ms={worst_search * 1e3:.0f} "
          f"health_worst_ms={worst_health * 1e3:.0f} failed={failures} "
          f"health_after_ms={after * 1e3:.0f} health_after_status={st}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--connections", type=int, nargs="+", default=[1000, 3000, 5100])
    ap.add_argument("--hold", type=float, default=10.0, help="seconds to hold them")
    ap.add_argument("--source", default="127.0.0.2", help="the slow client's address")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for n in args.connections:
        run(args.port, n, args.hold, args.source)


if __name__ == "__main__":
    main()
