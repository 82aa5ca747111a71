#!/usr/bin/env python3
"""Waiting at scale (section h): many rlock waiters on one lock, with the ordered queue and with
RLOCK_UNORDERED=1 (every waiter retries on every release), side by side in one run.

  scale  A holder `rlock -- sh -c 'echo ready; read go; exec stamp T0'` takes the lock. Waiters
         `rlock -w 5m -- stamp Ti` arrive one by one, --spacing ms apart (the next is launched
         only once the one before is seen waiting: PUBSUB NUMSUB of the lock's release channel
         has counted it on every node). Then the holder is told to go and the queue drains: each
         waiter's command stamps the clock as it starts and exits at once, its rlock releases,
         the next gets the lock. From one drain of W waiters:
           - W handoffs: the gaps between consecutive stamps (holder, then waiters in the order
             they were granted), each like f1's (exit, release, wake-up, grant, launch);
           - the grant order (the order of the stamps) against the arrival order: how many
             waiters were granted at another rank than they arrived at, and the largest
             displacement;
           - the requests every node served from the go until the last waiter had exited,
             per grant (INFO commandstats deltas, our own commands removed).
         The 1-waiter baseline is the same drain with one waiter (--singles of them per round).
         --rounds rounds, each running ordered and unordered, 1 waiter and W, the order reversed
         every other round, so that a load drifting on a shared machine weighs on both sides.
  kill   The head waiter dies: a holder, waiter A, then waiter B (seen waiting after A); A is
         killed with SIGKILL and the holder told to go at once. delay = B's command start - the
         holder's command end: A's heartbeat running out (3 s by the queue's contract, measured
         by the node) plus up to one 1 s backstop of B's, or just a handoff when unordered.

Each prints one JSON object on stdout. Standard library only; the RESP client, the stamp program
and the process helpers are bench/handoff.py's.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from handoff import (CHILDREN, POLL_S, Redis, await_line, build_stamp, fail, read_ns,
                     rlock_args, start, stop_children, summary, theirs)

# A drain of 100 unordered waiters takes seconds on a loaded 2-core machine; bound it well above.
DRAIN_TIMEOUT_S = 180
# The waiters' --wait: longer than any arrival and drain.
WAIT = "5m"
# Requests a client sends that no script can run (Lua refuses them): what rlock's processes ask
# of a node, as opposed to what their scripts do inside one request.
CLIENT_ONLY = {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro", "subscribe",
               "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe", "ping",
               "hello", "select", "auth", "quit", "reset", "multi", "exec", "watch", "script"}
MODES = ("ordered", "unordered")


def is_request(command):
    """Whether an INFO commandstats name counts client requests only."""
    base = command.partition("|")[0]
    return base in CLIENT_ONLY or base == "client"


def env_for(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLOCK_")}
    if mode == "unordered":
        env["RLOCK_UNORDERED"] = "1"
    return env


class Lock:
    """One lock's processes on the nodes behind `conns`."""

    def __init__(self, args, tmp, conns, key, mode):
        self.args, self.tmp, self.conns, self.key, self.mode = args, tmp, conns, key, mode
        self.env = env_for(mode)
        self.log = os.path.join(tmp, f"{key}.log")
        self.channel = f"rlock:{{{key}}}:released"

    def holder(self):
        """An rlock holding the lock until told to go; its command then stamps T0 and exits."""
        t0 = os.path.join(self.tmp, f"{self.key}-t0")
        proc = start(rlock_args(self.args.rlock, self.args.node, self.key)
                     + ["--", "sh", "-c", 'echo ready && read -r go && exec "$@"', "sh",
                        *self.args.stamp, t0],
                     self.log, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env)
        await_line(proc, f"the holder of {self.key}", self.log)
        return proc, t0

    def waiter(self, i):
        stamp = os.path.join(self.tmp, f"{self.key}-t{i + 1}")
        proc = start(rlock_args(self.args.rlock, self.args.node, self.key)
                     + ["-w", WAIT, "--", *self.args.stamp, stamp],
                     self.log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=self.env)
        return proc, stamp

    def waiting(self):
        """The fewest listeners on the release channel over the nodes."""
        return min(c.subscribers(self.channel) for c in self.conns)

    def wait_for(self, count, what, timeout=30):
        deadline = time.monotonic() + timeout
        while self.waiting() < count:
            if time.monotonic() > deadline:
                fail(f"timed out waiting until {what} ({self.key}, {self.mode})", self.log)
            time.sleep(POLL_S)

    def queued(self):
        """The queue's length on each node (the ordered queue's zset; 0 when unordered)."""
        return [c("ZCARD", f"rlock:{{{self.key}}}:queue") for c in self.conns]


def go(holder):
    holder.stdin.write(b"go\n")
    holder.stdin.close()


def reap(procs, log, what, timeout=DRAIN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            status = proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            fail(f"{what} did not finish within {timeout} s", log)
        CHILDREN.remove(proc)
        if proc.stdout:
            proc.stdout.close()
        if status != 0:
            fail(f"{what}: an rlock exited {status}, expected 0", log)


def snapshot(conns):
    # Our count is taken before the INFO: a command's stats are counted once it has run.
    return [(c.commandstats(), dict(c.sent)) for c in conns]


def drain(args, tmp, conns, key, mode, waiters):
    """One drain of `waiters` waiters on a fresh lock: handoffs, grant order, requests."""
    lock = Lock(args, tmp, conns, key, mode)
    holder, t0 = lock.holder()
    procs, stamps, seen = [], [], []
    launched = 0.0
    for i in range(waiters):
        # Arrivals `spacing` apart, and never before the previous one is seen waiting.
        time.sleep(max(0.0, launched + args.spacing / 1000 - time.monotonic()))
        launched = time.monotonic()
        proc, stamp = lock.waiter(i)
        procs.append(proc)
        stamps.append(stamp)
        lock.wait_for(i + 1, f"waiter {i + 1} waits")
        seen.append(time.monotonic())
    queued = lock.queued() if mode == "ordered" else []
    before = snapshot(conns)
    go(holder)
    reap([holder], lock.log, "the holder")
    reap(procs, lock.log, f"a drain of {waiters} waiters")
    after = snapshot(conns)

    times = [read_ns(t0, lock.log)] + [read_ns(s, lock.log) for s in stamps]
    granted = sorted(range(waiters), key=lambda i: times[i + 1])  # arrival ranks, grant order
    ordered_times = sorted(times)
    handoffs = [(b - a) / 1e6 for a, b in zip(ordered_times, ordered_times[1:])]
    displacement = [abs(rank - arrival) for rank, arrival in enumerate(granted)]
    per_node = []
    for b, a in zip(before, after):
        delta = theirs(b, a)
        delta.pop("total", None)
        per_node.append({k: v for k, v in delta.items() if is_request(k)})
    gaps = [(b - a) * 1000 for a, b in zip(seen, seen[1:])]
    return {"handoffs_ms": handoffs, "grant_order": granted,
            "out_of_order": sum(d > 0 for d in displacement),
            "max_displacement": max(displacement), "requests": per_node, "queued": queued,
            "arrival_gaps_ms": gaps}


def cmd_scale(args, tmp):
    conns = [Redis(p) for p in args.node]
    runs = {(mode, n): [] for mode in MODES for n in (1, args.waiters)}
    plan = [(mode, n) for n in (1, args.waiters) for mode in MODES]
    serial = 0
    # Uncounted: the first requests to a node load the scripts.
    for _ in range(args.warmup):
        for mode in MODES:
            serial += 1
            drain(args, tmp, conns, f"{args.key}-{serial}", mode, 1)
    for rnd in range(args.rounds):
        # Reversed every other round: neither side always runs first.
        for mode, n in plan if rnd % 2 == 0 else reversed(plan):
            for _ in range(args.singles if n == 1 else 1):
                serial += 1
                runs[(mode, n)].append(drain(args, tmp, conns, f"{args.key}-{serial}", mode, n))
    return {"nodes": len(args.node), "waiters": args.waiters, "rounds": args.rounds,
            "singles": args.singles, "spacing_ms": args.spacing, "stamp": args.stamp_kind,
            **{mode: {"single": combine(runs[(mode, 1)], len(args.node)),
                      "many": combine(runs[(mode, args.waiters)], len(args.node))}
               for mode in MODES}}


def combine(drains, nodes):
    """The drains of one kind pooled: handoffs, order, requests per grant per node."""
    handoffs = [t for d in drains for t in d["handoffs_ms"]]
    # The first half of each drain: handoffs while at least half the waiters still wait.
    first = [t for d in drains for t in d["handoffs_ms"][:max(1, len(d["handoffs_ms"]) // 2)]]
    grants = sum(len(d["grant_order"]) for d in drains)
    by_node = []
    for j in range(nodes):
        counts = {}
        for d in drains:
            for k, v in d["requests"][j].items():
                counts[k] = counts.get(k, 0) + v
        by_node.append(counts)
    gaps = [g for d in drains for g in d["arrival_gaps_ms"]]
    return {
        **summary(handoffs, first_half_median_ms=statistics.median(first)),
        "drains": len(drains),
        "grants": grants,
        "out_of_order": sum(d["out_of_order"] for d in drains),
        "max_displacement": max(d["max_displacement"] for d in drains),
        "mean_displacement": statistics.mean(
            abs(rank - arrival) for d in drains for rank, arrival in enumerate(d["grant_order"])),
        "requests_per_grant": [sum(c.values()) / grants for c in by_node],
        # Every process releases once, one request per node: the holder, then each waiter.
        "attempts_per_grant": [(sum(c.values()) - len(drains) - grants) / grants
                               for c in by_node],
        "requests_by_command": by_node,
        "queued_at_go": [d["queued"] for d in drains],
        "arrival_gap_ms": {"mean": statistics.mean(gaps), "min": min(gaps)} if gaps else None,
    }


def cmd_kill(args, tmp):
    conns = [Redis(p) for p in args.node]
    rng = random.Random()
    out = {}
    for mode in MODES:
        delays, since_kill = [], []
        for i in range(args.runs):
            lock = Lock(args, tmp, conns, f"{args.key}-{mode}-{i}", mode)
            holder, t0 = lock.holder()
            head, _ = lock.waiter(0)
            lock.wait_for(1, "the head waiter waits")
            time.sleep(args.spacing / 1000)
            nxt, t2 = lock.waiter(1)
            lock.wait_for(2, "the second waiter waits")
            # Anywhere in the head's 1 s heartbeat cycle, as a crash would be.
            time.sleep(rng.uniform(0, 1))
            killed = time.time_ns()
            head.kill()
            head.wait()
            CHILDREN.remove(head)
            go(holder)
            reap([holder], lock.log, "the holder")
            reap([nxt], lock.log, "the second waiter", timeout=60)
            end, granted = read_ns(t0, lock.log), read_ns(t2, lock.log)
            delays.append((granted - end) / 1e6)
            since_kill.append((granted - killed) / 1e6)
        out[mode] = summary(delays, since_kill_ms=since_kill)
    return {"nodes": len(args.node), "runs": args.runs, **out}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["scale", "kill"])
    p.add_argument("--rlock", required=True, help="the rlock binary")
    p.add_argument("--node", type=int, action="append", required=True, help="a Redis port")
    p.add_argument("--key", required=True, help="lock name prefix: each lock is KEY-N")
    p.add_argument("--waiters", type=int, default=100, help="waiters in a drain (scale)")
    p.add_argument("--rounds", type=int, default=2, help="counted rounds (scale)")
    p.add_argument("--warmup", type=int, default=1,
                   help="uncounted 1-waiter drains per side first (scale)")
    p.add_argument("--singles", type=int, default=10,
                   help="1-waiter drains per round and side (scale)")
    p.add_argument("--spacing", type=float, default=10.0, help="ms between arrivals")
    p.add_argument("--runs", type=int, default=3, help="kills per side (kill)")
    args = p.parse_args()
    # A TERM from bench/run must still stop our children: exit through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="rlock-waitqueue.") as tmp:
            args.stamp, args.stamp_kind = build_stamp(tmp)
            run = {"scale": cmd_scale, "kill": cmd_kill}[args.what]
            print(json.dumps(run(args, tmp)))
    finally:
        stop_children()


if __name__ == "__main__":
    main()
