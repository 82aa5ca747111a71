#!/usr/bin/env python3
"""Lock modes (section g): what one grant sends to each node, as the nodes themselves see it.

  requests  `rlock acquire [--limit N | --shared] --format shell`, then `rlock release` in the
            environment it printed, then `rlock [--limit N | --shared] -- true`, --grants times
            after --warmup uncounted rounds, while a MONITOR connection to every node lists what
            the node runs. bench/run holds the other leases (3 of 4 slots, or 3 shared holders)
            before and releases them after.

MONITOR shows every command a node runs, in order: a line from a client's address is a request
(one round trip's worth, unless pipelined), a line from `lua` is a command the preceding request's
script ran. That tells requests from the work inside them without a list of which commands
scripts use, and it sees any request rlock sends, expected or not. After each rlock process a
second connection sends `ECHO <mark>`; the lines before the mark are that process's. A line
belongs to the phase (acquire, release, run) in which its connection was first seen, so that a
request that a Redlock process leaves in flight to a slow node still counts where it was sent.

Prints one JSON object: {"grants": M, "slots": [RLOCK_SLOT values acquire printed], "nodes":
[{"port": P, "acquire": {"requests": {cmd: n}, "script": {cmd: n}}, "release": {...},
"run": {...}}]}, the counts summed over the M counted rounds.

Standard library only; the RESP client is bench/handoff.py's.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile

from handoff import CONTAINERS, STEP_TIMEOUT_S, Redis, fail, rlock_args

# "1796527641.524597 [0 127.0.0.1:47982] "EVALSHA" "7ecd..." ...": the client, then the words.
MONITOR_LINE = re.compile(r'^[\d.]+ \[\d+ ([^\]]+)\] (.*)$')
WORD = re.compile(r'"((?:[^"\\]|\\.)*)"')
PHASES = ("acquire", "release", "run")


class Monitor:
    """MONITOR on one node, read up to a mark sent on a second connection."""

    def __init__(self, port):
        self.port = port
        self.feed = Redis(port)
        self.control = Redis(port)
        host, own_port = self.control.sock.getsockname()[:2]
        self.own = f"{host}:{own_port}"
        if self.feed("MONITOR") != "OK":
            fail(f"MONITOR refused on port {port}")
        self.marks = 0
        self.phase_of = {}  # client address -> the phase it was first seen in (None: not counted)
        self.last = None  # the last request's client: the `lua` lines after it are its script's
        self.counts = {p: {"requests": {}, "script": {}} for p in PHASES}

    def sync(self, phase):
        """Reads what the node ran since the last sync; `phase` is what ran (None: not counted)."""
        self.marks += 1
        mark = f"rlock-bench-mark-{self.marks}"
        self.control("ECHO", mark)
        while True:
            line = self.feed.reply()
            m = MONITOR_LINE.match(line or "")
            if not m:
                fail(f"unexpected MONITOR line from port {self.port}: {line!r}")
            client, words = m.group(1), WORD.findall(m.group(2))
            if client == self.own:
                if words[1:] == [mark]:
                    return
                continue
            name = words[0].lower() if words else "?"
            if name in CONTAINERS and len(words) > 1:
                name += "|" + words[1].lower()
            if client == "lua":
                kind, client = "script", self.last
            else:
                kind, self.last = "requests", client
            counted = self.phase_of.setdefault(client, phase)
            if counted:
                bucket = self.counts[counted][kind]
                bucket[name] = bucket.get(name, 0) + 1


def run(command, log, env=None):
    """Runs an rlock command to its end; its stdout, or the end of the benchmark if it fails."""
    with open(log, "ab") as err:
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, env=env,
                                  stdin=subprocess.DEVNULL, timeout=STEP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            fail(f"{shlex.join(command)} did not exit within {STEP_TIMEOUT_S} s", log)
    if done.returncode != 0:
        fail(f"{shlex.join(command)} exited {done.returncode}", log)
    return done.stdout.decode()


def lease_env(exports):
    """The environment `eval "$(rlock acquire --format shell)"` leaves behind."""
    env = dict(os.environ)
    for line in exports.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                env[name] = value
        elif words[:1] == ["unset"]:
            for name in words[1:]:
                env.pop(name, None)
    return env


def cmd_requests(args, tmp):
    mode = ["--limit", str(args.limit)] if args.limit else ["--shared"] if args.shared else []
    acquire = rlock_args(args.rlock, args.node, args.key, "acquire") + mode + [
        "--format", "shell"]
    release = [args.rlock, "release", "-q"]
    whole = rlock_args(args.rlock, args.node, args.key) + mode + ["--", "true"]
    log = os.path.join(tmp, "rlock.log")
    monitors = [Monitor(p) for p in args.node]
    slots = []

    def step(phase, command, env=None):
        out = run(command, log, env)
        for m in monitors:
            m.sync(phase)
        return out

    for i in range(args.warmup + args.grants):
        counted = i >= args.warmup
        env = lease_env(step(counted and "acquire", acquire))
        if counted and "RLOCK_SLOT" in env:
            slots.append(int(env["RLOCK_SLOT"]))
        step(counted and "release", release, env)
        step(counted and "run", whole)
    return {"grants": args.grants, "slots": slots,
            "nodes": [{"port": m.port, **m.counts} for m in monitors]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["requests"])
    p.add_argument("--rlock", required=True, help="the rlock binary")
    p.add_argument("--node", type=int, action="append", required=True, help="a Redis port")
    p.add_argument("--key", required=True, help="the lock's name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--limit", type=int, help="rlock's --limit N")
    which.add_argument("--shared", action="store_true", help="rlock's --shared")
    p.add_argument("--grants", type=int, default=10, help="rounds counted")
    p.add_argument("--warmup", type=int, default=2, help="rounds not counted (script loads)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="rlock-modes.") as tmp:
        print(json.dumps({"requests": cmd_requests}[args.what](args, tmp)))


if __name__ == "__main__":
    main()
