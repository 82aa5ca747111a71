#!/usr/bin/env python3
"""What a sequential lock client pays: SET NX PX on N nodes, one after another.

This is the baseline rlock's parallel fan-out is compared with. Each attempt opens a fresh
connection to every node in turn (as a new rlock process does), sends `SET key token NX PX ttl`
and waits for the reply before moving on, so its latency is the *sum* of the nodes' round trips.
The clock runs from before the first connect to the last reply. Each attempt takes a lock of
its own (`KEY:PID:N`) and leaves it to expire, so no clean-up traffic slows the run. Process
start-up is not counted, which flatters this client slightly against rlock (whose numbers include
launching a process).

Prints one JSON object: {"median_ms": ..., "runs": ..., "times_ms": [...]}.

Standard library only; RESP is written by hand.
"""

import argparse
import json
import os
import socket
import statistics
import sys
import time

# Per-request bound, so a dead node fails the benchmark instead of hanging it.
TIMEOUT_S = 5.0


def resp(*parts):
    """Encodes a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def read_line(sock):
    """Reads one RESP line (enough for SET's simple reply)."""
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("connection closed before the reply")
        buf += chunk
    return buf[:-2]


def request(host, port, *command):
    """One fresh connection, one command, one reply line."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(resp(*command))
        return read_line(s)


def attempt(nodes, key, ttl_ms):
    """One sequential acquisition; returns (seconds, nodes that granted)."""
    token = os.urandom(16).hex()
    granted = 0
    start = time.perf_counter()
    for host, port in nodes:
        if request(host, port, "SET", key, token, "NX", "PX", ttl_ms) == b"+OK":
            granted += 1
    return time.perf_counter() - start, granted


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", action="append", required=True, help="HOST:PORT, in order")
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--key", default="rlock-bench:sequential")
    p.add_argument("--ttl-ms", type=int, default=30000, help="how long each attempt's lock lives")
    args = p.parse_args()
    nodes = []
    for n in args.node:
        host, _, port = n.rpartition(":")
        nodes.append((host, int(port)))

    times = []
    for i in range(args.warmup + args.runs):
        elapsed, granted = attempt(nodes, f"{args.key}:{os.getpid()}:{i}", args.ttl_ms)
        if granted != len(nodes):
            sys.exit(f"sequential: only {granted} of {len(nodes)} nodes granted the lock")
        if i >= args.warmup:
            times.append(elapsed * 1000)
    print(json.dumps({
        "median_ms": statistics.median(times),
        "runs": len(times),
        "times_ms": times,
    }))


if __name__ == "__main__":
    main()
