#!/usr/bin/env python3
"""The critical section of the fault suite, and the resource it changes.

    rlock -k KEY -- python3 resource.py DIR MODE ELEMENT SLEEP_MS RECORD

The resource is a set of integers in DIR/set. The critical section reads the set, sleeps SLEEP_MS
(the work; sometimes longer than the lease), adds ELEMENT and writes the set back: a
read-modify-write, which is only correct if no other holder writes in between. Each step is
atomic by itself (under flock on DIR/lock); the whole is protected only by the rlock lease.

MODE "unfenced" trusts the lease. MODE "fenced" also checks RLOCK_FENCE, on the read *and* on the
write. Checking only the write is not enough for a read-modify-write: holder A (fence 5) reads S
and stalls; B (fence 6) reads S; A writes S+a (accepted: 5 > 4); B writes S+b (accepted: 6 > 5),
and a is lost. So the resource registers the fence when it is read: a read or write with fence f is
refused if f is lower than the highest fence the resource has seen, and otherwise raises it to f.
A write with f equal to the highest is the same grant's own write (no two grants share a fence).

Exit 0: the add was written (acknowledged). Exit 3: a step was refused as stale.
Every step is appended to RECORD with its time on CLOCK_MONOTONIC (the harness's timeline):
    start PID FENCE TOKEN T | read T | stale-read T SEEN | write T | stale-write T SEEN | end T
"""

import fcntl
import os
import sys
import time


def main():
    directory, mode, element, sleep_ms, record = sys.argv[1:6]
    fence = int(os.environ["RLOCK_FENCE"])
    log = open(record, "a", buffering=1)
    log.write(f"start {os.getpid()} {fence} {os.environ['RLOCK_TOKEN']} {time.monotonic_ns()}\n")

    with locked(directory):
        seen = admit(directory, fence) if mode == "fenced" else None
        if seen is not None:
            log.write(f"stale-read {time.monotonic_ns()} {seen}\n")
            return 3
        items = read_set(directory)
        log.write(f"read {time.monotonic_ns()}\n")

    time.sleep(int(sleep_ms) / 1000)

    with locked(directory):
        seen = admit(directory, fence) if mode == "fenced" else None
        if seen is not None:
            log.write(f"stale-write {time.monotonic_ns()} {seen}\n")
            return 3
        items.add(int(element))
        replace(os.path.join(directory, "set"), "".join(f"{i}\n" for i in sorted(items)))
        log.write(f"write {time.monotonic_ns()}\n")
    log.write(f"end {time.monotonic_ns()}\n")
    return 0


def admit(directory, fence):
    """Registers FENCE with the resource; returns None, or the higher fence that makes it stale."""
    path = os.path.join(directory, "fence")
    try:
        with open(path) as f:
            seen = int(f.read())
    except FileNotFoundError:
        seen = 0
    if fence < seen:
        return seen
    if fence > seen:
        replace(path, str(fence))
    return None


def read_set(directory):
    try:
        with open(os.path.join(directory, "set")) as f:
            return {int(line) for line in f}
    except FileNotFoundError:
        return set()


def replace(path, text):
    """Writes PATH atomically: a crash leaves the old or the new contents, never a mix."""
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


class locked:
    """flock on DIR/lock: makes one step (check and read, or check and write) atomic."""

    def __init__(self, directory):
        self.file = open(os.path.join(directory, "lock"), "a")

    def __enter__(self):
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *_):
        self.file.close()


if __name__ == "__main__":
    sys.exit(main())
