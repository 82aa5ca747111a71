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

The lock modes (`--limit`, `--shared`) use the same steps on resources of their own:

- MODE "slot" (under `--limit N`): each slot is a lock of its own, so the resource is kept per
  slot, in DIR/slot-$RLOCK_SLOT, and checked as "fenced" there: the highest fence seen per slot.
- MODE "writer" (an exclusive holder of a lock that also has shared holders): as "fenced", except
  that the resource also remembers the highest fence of an exclusive holder (DIR/fence-exclusive).
- MODE "reader" (`--shared`): reads the set only. Shared holders overlap and may carry any order
  of fences, so a reader is refused only if a later *exclusive* grant has been seen (its fence is
  lower than DIR/fence-exclusive); it registers its fence in DIR/fence, so that a stale writer that
  read before it cannot write after it.

Exit 0: the add was written (acknowledged), or a reader read. Exit 3: a step was refused as stale.
Every step is appended to RECORD with its time on CLOCK_MONOTONIC (the harness's timeline), the
start with what rlock put in the environment ("-" if unset):
    start PID FENCE TOKEN T RLOCK_MODE RLOCK_SLOT RLOCK_LIMIT
    read T | stale-read T SEEN | write T | stale-write T SEEN | end T
"""

import fcntl
import os
import sys
import time


def main():
    directory, mode, element, sleep_ms, record = sys.argv[1:6]
    fence = int(os.environ["RLOCK_FENCE"])
    env = [os.environ.get(name, "-") for name in ("RLOCK_MODE", "RLOCK_SLOT", "RLOCK_LIMIT")]
    log = open(record, "a", buffering=1)
    token = os.environ.get("RLOCK_TOKEN", "-")
    log.write(f"start {os.getpid()} {fence} {token} {time.monotonic_ns()} {' '.join(env)}\n")
    if mode == "slot":
        directory = os.path.join(directory, f"slot-{int(os.environ['RLOCK_SLOT'])}")
        os.makedirs(directory, exist_ok=True)
    exclusive = mode != "reader"

    with locked(directory):
        seen = admit(directory, fence, exclusive) if mode != "unfenced" else None
        if seen is not None:
            log.write(f"stale-read {time.monotonic_ns()} {seen}\n")
            return 3
        items = read_set(directory)
        log.write(f"read {time.monotonic_ns()}\n")

    time.sleep(int(sleep_ms) / 1000)
    if mode == "reader":
        log.write(f"end {time.monotonic_ns()}\n")
        return 0

    with locked(directory):
        seen = admit(directory, fence, exclusive) if mode != "unfenced" else None
        if seen is not None:
            log.write(f"stale-write {time.monotonic_ns()} {seen}\n")
            return 3
        items.add(int(element))
        replace(os.path.join(directory, "set"), "".join(f"{i}\n" for i in sorted(items)))
        log.write(f"write {time.monotonic_ns()}\n")
    log.write(f"end {time.monotonic_ns()}\n")
    return 0


def admit(directory, fence, exclusive):
    """Registers FENCE with the resource; returns None, or the higher fence that makes it stale.

    An exclusive holder is stale if any later grant was seen; a shared one only if a later
    exclusive grant was (DIR/fence-exclusive, which only "writer" holders raise)."""
    seen = read_fence(directory, "fence" if exclusive else "fence-exclusive")
    if fence < seen:
        return seen
    if fence > read_fence(directory, "fence"):
        replace(os.path.join(directory, "fence"), str(fence))
    if exclusive and fence > read_fence(directory, "fence-exclusive"):
        replace(os.path.join(directory, "fence-exclusive"), str(fence))
    return None


def read_fence(directory, name):
    try:
        with open(os.path.join(directory, name)) as f:
            return int(f.read())
    except FileNotFoundError:
        return 0


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
