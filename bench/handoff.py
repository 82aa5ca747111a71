#!/usr/bin/env python3
"""Waiting for a busy lock: how fast rlock hands a lock over, takes over a crashed holder's, and
what a waiting rlock costs Redis.

  handoff   (f1, f2) A holder `rlock -- sh -c 'echo ready; read go; exec stamp T1'` takes the lock
            and says so; a waiter `rlock -w 30s -- stamp T2` starts, and once it is
            seen waiting (PUBSUB NUMSUB of the lock's release channel is 1 on every node) the
            holder's command is told to go. handoff = T2 - T1: the holder's command ending, its
            rlock releasing, the announcement, the waiter's grant and its command starting.
  takeover  (f3) The holder is `rlock acquire -t 1s`, which never releases (a SIGKILLed holder);
            the lease's server-side expiry is when its PTTL was read plus that PTTL. A waiter as
            above; takeover = T2 - expiry.
  load      (f4) The commands a waiting rlock sends to a node while a lease it cannot get is held
            (`rlock acquire -t 30s`): INFO commandstats deltas, our own commands removed.

`stamp FILE` writes the wall clock in nanoseconds to FILE and exits: a dozen lines of C compiled
here (statically if possible), so that the clock is read by the command itself as it starts and
as it ends, without a shell or `date` to launch in between. (Without a C compiler it falls back to
`sh -c 'date +%s%N >FILE'`, and says so.) handoff and takeover also time the waiter's command alone
(stamp launched from here, the same number of times): the part of each figure that is process
launching, not rlock.

Each prints one JSON object on stdout. The go comes a random 0-100 ms after the waiter is seen
waiting: rlock is woken by the release itself, so for it this should not matter, but a polling
waiter (bench/peer_redis_py.py, which reuses this file's helpers) tries every 100 ms, and a release
that always came right after one of its tries would show only its worst case.

Standard library only; RESP is written by hand.
"""

import argparse
import json
import math
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# Every wait is bounded, so that a hang fails the benchmark instead of stalling it.
STEP_TIMEOUT_S = 30
# How often the readiness conditions are polled (one round trip on an open connection each).
POLL_S = 0.001
# A polling waiter's period (redis-py's Lock sleeps 0.1 s between tries): the go is sent a random
# moment within one period after the waiter is seen waiting.
PHASE_S = 0.1
# Container commands that INFO commandstats counts per subcommand (Redis 7: `pubsub|numsub`).
CONTAINERS = {"client", "pubsub", "script", "config", "command", "object", "memory", "cluster"}

CHILDREN = []  # processes started here and not yet reaped, stopped on the way out


class Redis:
    """One connection to a node; counts the commands it sends, so that the load measurements can
    take them out of the server's totals."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.sent = {}

    def __call__(self, *args):
        name = str(args[0]).lower()
        if name in CONTAINERS and len(args) > 1:
            name += "|" + str(args[1]).lower()
        self.sent[name] = self.sent.get(name, 0) + 1
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts)
                          + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self.reply()

    def reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the connection to Redis closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"Redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply from Redis: {line!r}")

    def commandstats(self):
        """{command: calls} and "total" (total_commands_processed), from INFO."""
        counts = {}
        for line in self("INFO", "all").splitlines():
            if line.startswith("total_commands_processed:"):
                counts["total"] = int(line.split(":")[1])
            elif line.startswith("cmdstat_"):
                name, _, stats = line[len("cmdstat_"):].partition(":")
                counts[name] = int(stats.split(",")[0].split("=")[1])
        return counts

    def subscribers(self, channel):
        return self("PUBSUB", "NUMSUB", channel)[1]


def fail(message, *logs):
    """Ends the measurement, with the tail of the logs that say why."""
    for name in logs:
        try:
            with open(name) as f:
                tail = f.read()[-2000:]
        except OSError:
            continue
        if tail.strip():
            message += f"\n--- {name}:\n{tail.rstrip()}"
    sys.exit(f"{os.path.basename(sys.argv[0])}: {message}")


def start(command, log, **kwargs):
    """Starts `command` with its stderr in `log`; it is stopped on the way out if still running."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(command, stderr=err, **kwargs)
    CHILDREN.append(proc)
    return proc


def finish(proc, log, what, expect=0):
    """Waits for `proc` and checks its exit status."""
    try:
        status = proc.wait(STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        fail(f"{what} did not exit within {STEP_TIMEOUT_S} s", log)
    CHILDREN.remove(proc)
    if status != expect:
        fail(f"{what} exited {status}, expected {expect}", log)


def stop_children():
    for proc in CHILDREN:
        proc.terminate()
    for proc in CHILDREN:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    CHILDREN.clear()


def wait_until(condition, what, *logs):
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            fail(f"timed out waiting until {what}", *logs)
        time.sleep(POLL_S)


def await_line(proc, what, log):
    """Reads the line a holder prints once it holds the lock."""
    ready, _, _ = select.select([proc.stdout], [], [], STEP_TIMEOUT_S)
    if not ready or not os.read(proc.stdout.fileno(), 64).strip():
        fail(f"{what} did not report holding the lock", log)


def read_ns(path, log):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        fail(f"no timestamp in {path}", log)


def handoffs(runs, warmup, once):
    """Runs `once(i)` warmup + runs times; the measured handoffs in ms."""
    return [once(i) for i in range(warmup + runs)][warmup:]


def summary(times_ms, **extra):
    ordered = sorted(times_ms)
    return {
        "runs": len(ordered),
        "median_ms": statistics.median(ordered),
        # Nearest rank: with 30 samples this is the maximum.
        "p99_ms": ordered[math.ceil(0.99 * len(ordered)) - 1],
        "max_ms": ordered[-1],
        "times_ms": times_ms,
        **extra,
    }


def load_window(conn, start_waiter, is_waiting, settle_s, window_s, logs):
    """Counts what one waiter sends to the node behind `conn`: from before it starts until it is
    waiting ("setup"), then over `window_s` seconds of waiting, starting `settle_s` after it was
    seen waiting ("window"). Our own commands are taken out of both."""
    def snapshot():
        # Our count is taken before the INFO: a command's stats are counted once it has run.
        sent = dict(conn.sent)
        return conn.commandstats(), sent

    s0 = snapshot()
    waiter = start_waiter()
    wait_until(is_waiting, "the waiter waits", *logs)
    time.sleep(settle_s)
    s1 = snapshot()
    t0 = time.monotonic()
    time.sleep(window_s)
    t1 = time.monotonic()
    s2 = snapshot()
    if waiter.poll() is not None:
        fail(f"the waiter exited ({waiter.returncode}) while it should wait", *logs)
    waiter.terminate()
    waiter.wait(STEP_TIMEOUT_S)
    CHILDREN.remove(waiter)
    return {"setup": theirs(s0, s1), "window": theirs(s1, s2), "window_s": t1 - t0}


def theirs(before, after):
    """The server's command counts between two snapshots, less the commands we sent."""
    (b, ours_b), (a, ours_a) = before, after
    delta = {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}
    for name in set(ours_a):
        n = ours_a[name] - ours_b.get(name, 0)
        # Redis 6 counts a container command under its own name only.
        key = name if name in delta else name.partition("|")[0]
        delta[key] = delta.get(key, 0) - n
        delta["total"] -= n
    return {k: v for k, v in delta.items() if v}


# --- rlock ---------------------------------------------------------------------------------------

def rlock_args(rlock, ports, key, *subcommand):
    """`rlock [SUBCOMMAND...] -r URL... -k KEY`."""
    args = [rlock, *subcommand]
    for port in ports:
        args += ["-r", f"redis://127.0.0.1:{port}"]
    return args + ["-k", key]


STAMP_C = r"""
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    FILE *f = argc == 2 ? fopen(argv[1], "w") : NULL;
    if (!f) return 2;
    fprintf(f, "%lld%09ld\n", (long long)t.tv_sec, t.tv_nsec);
    return fclose(f) != 0;
}
"""


def build_stamp(tmp):
    """The command that writes the time: `[stamp]`, or a shell fallback; and what it is."""
    source, binary = os.path.join(tmp, "stamp.c"), os.path.join(tmp, "stamp")
    with open(source, "w") as f:
        f.write(STAMP_C)
    for flags, what in ((["-static"], "static C program"), ([], "C program")):
        built = subprocess.run(["cc", "-O2", *flags, "-o", binary, source],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=STEP_TIMEOUT_S, check=False)
        if built.returncode == 0:
            return [binary], what
    return ["sh", "-c", 'date +%s%N >"$1"', "sh"], "sh -c date (no C compiler)"


def rlock_waiter(args, ports, key, t2, log):
    """`rlock -w 30s -- stamp T2` on lock `key`."""
    return start(rlock_args(args.rlock, ports, key) + ["-w", "30s", "--", *args.stamp, t2],
                 log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def waiting_on(conns, key):
    """Whether a waiter listens for the release of lock `key` on every node."""
    channel = f"rlock:{{{key}}}:released"
    return lambda: all(c.subscribers(channel) >= 1 for c in conns)


def cmd_handoff(args, tmp):
    conns = [Redis(p) for p in args.node]
    rng = random.Random()
    holder_log, waiter_log = os.path.join(tmp, "holder.log"), os.path.join(tmp, "waiter.log")

    def once(i):
        key = f"{args.key}-{i}"
        t1, t2 = os.path.join(tmp, f"t1-{i}"), os.path.join(tmp, f"t2-{i}")
        holder = start(rlock_args(args.rlock, args.node, key)
                       + ["--", "sh", "-c", 'echo ready && read -r go && exec "$@"', "sh",
                          *args.stamp, t1],
                       holder_log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        await_line(holder, "the holder", holder_log)
        waiter = rlock_waiter(args, args.node, key, t2, waiter_log)
        wait_until(waiting_on(conns, key), "the waiter waits", waiter_log)
        time.sleep(rng.uniform(0, PHASE_S))
        holder.stdin.write(b"go\n")
        holder.stdin.close()
        finish(holder, holder_log, "the holder")
        holder.stdout.close()
        finish(waiter, waiter_log, "the waiter")
        return (read_ns(t2, waiter_log) - read_ns(t1, holder_log)) / 1e6

    times = handoffs(args.runs, args.warmup, once)
    return summary(times, nodes=len(args.node), stamp=args.stamp_kind,
                   launch=launch_floor(args.runs, args.stamp, tmp))


def launch_floor(runs, stamp, tmp):
    """What starting the waiter's command alone costs: from before launching `stamp T2` until it
    reads the clock. Part of every rlock handoff and takeover, it is here to set them against
    (python's launch, not rlock's, so only roughly the same)."""
    out = os.path.join(tmp, "floor")
    times = []
    for _ in range(runs):
        start_ns = time.time_ns()
        subprocess.run([*stamp, out], check=True, timeout=STEP_TIMEOUT_S)
        times.append((read_ns(out, out) - start_ns) / 1e6)
    return summary(times)


def cmd_takeover(args, tmp):
    conn = Redis(args.node[0])
    log = os.path.join(tmp, "takeover.log")
    times, margins = [], []
    for i in range(args.runs):
        key = f"{args.key}-{i}"
        t2 = os.path.join(tmp, f"t2-{i}")
        holder = start(rlock_args(args.rlock, args.node, key, "acquire") + ["-t", args.ttl],
                       log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        finish(holder, log, "rlock acquire")
        # The PTTL's moment is taken as the middle of its round trip.
        sent = time.time_ns()
        pttl = conn("PTTL", f"rlock:{{{key}}}")
        expiry = (sent + time.time_ns()) // 2 + pttl * 1_000_000
        if pttl <= 0:
            fail(f"rlock acquire left no lease with a TTL (PTTL {pttl})", log)
        waiter = rlock_waiter(args, args.node, key, t2, log)
        wait_until(waiting_on([conn], key), "the waiter waits", log)
        # A waiter that subscribed only after the expiry would be measuring its start, not a wait.
        margins.append((expiry - time.time_ns()) / 1e6)
        if margins[-1] <= 0:
            fail(f"the waiter was seen waiting only {-margins[-1]:.1f} ms after the expiry", log)
        finish(waiter, log, "the waiter")
        times.append((read_ns(t2, log) - expiry) / 1e6)
    return summary(times, ttl=args.ttl, min_margin_ms=min(margins), stamp=args.stamp_kind,
                   launch=launch_floor(args.runs, args.stamp, tmp))


def cmd_load(args, tmp):
    conn = Redis(args.node[0])
    key = args.key
    log = os.path.join(tmp, "load.log")
    holder = start(rlock_args(args.rlock, args.node, key, "acquire") + ["-t", args.ttl],
                   log, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    token = holder.communicate(timeout=STEP_TIMEOUT_S)[0].decode().strip()
    CHILDREN.remove(holder)
    if holder.returncode != 0 or not token:
        fail(f"rlock acquire exited {holder.returncode}", log)

    def waiter():
        return start(rlock_args(args.rlock, args.node, key) + ["-w", "60s", "--", "true"],
                     log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    # Half the 1 s backstop: both edges of the window are half a period away from any attempt.
    result = load_window(conn, waiter, waiting_on([conn], key), 0.5, args.window, [log])
    release = start(rlock_args(args.rlock, args.node, key, "release") + ["--token", token], log)
    finish(release, log, "rlock release")
    return {**result, "ttl": args.ttl}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["handoff", "takeover", "load"])
    p.add_argument("--rlock", required=True, help="the rlock binary")
    p.add_argument("--node", type=int, action="append", required=True, help="a Redis port")
    p.add_argument("--key", required=True, help="lock name prefix: each lock is KEY-N")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--ttl", default="1s", help="the lease the holder takes (takeover, load)")
    p.add_argument("--window", type=float, default=5.0, help="seconds counted (load)")
    args = p.parse_args()
    # A TERM from bench/run must still stop our children: exit through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="rlock-handoff.") as tmp:
            args.stamp, args.stamp_kind = build_stamp(tmp)
            run = {"handoff": cmd_handoff, "takeover": cmd_takeover, "load": cmd_load}[args.what]
            print(json.dumps(run(args, tmp)))
    finally:
        stop_children()


if __name__ == "__main__":
    main()
