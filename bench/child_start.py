#!/usr/bin/env python3
"""Time from launching a wrapper (rlock, flock) to the moment its command starts.

Whole-process timings of `rlock ... -- true` also include releasing the lease and exiting; what a
user waits for before their command runs is less. To see it, the wrapped command is
`date +%s%N`: it prints CLOCK_REALTIME in nanoseconds as soon as it starts, and this script
subtracts the same clock read just before it launched the wrapper. Both ends are the same
system-wide clock, so no handshake is needed; the figure includes starting the wrapper process
and `date` itself (flock's row shows that floor). The same runs also give the whole process's
time, from launch until the wrapper has exited and been reaped.

Usage: child_start.py --runs N [--warmup W] -- WRAPPER ... -- date +%s%N
Prints one JSON object: {"median_ms": ..., "runs": ..., "times_ms": [...],
"exit_median_ms": ..., "exit_times_ms": [...]}.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

# A run that takes longer than this is a hang, not a measurement.
RUN_TIMEOUT_S = 30


def once(command):
    """Launches `command` once; returns the ms from launch to the child's clock read, and to the
    wrapper's exit."""
    start = time.time_ns()
    done = subprocess.run(command, stdout=subprocess.PIPE, timeout=RUN_TIMEOUT_S, check=False)
    end = time.time_ns()
    if done.returncode != 0:
        sys.exit(f"child_start: {command[0]} exited {done.returncode}")
    child = int(done.stdout.split()[-1])
    return (child - start) / 1e6, (end - start) / 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or command[-2:] != ["date", "+%s%N"]:
        sys.exit("child_start: the command must end with: date +%s%N")

    runs = [once(command) for _ in range(args.warmup + args.runs)][args.warmup:]
    times = [started for started, _ in runs]
    exits = [exited for _, exited in runs]
    print(json.dumps({
        "median_ms": statistics.median(times),
        "runs": len(times),
        "times_ms": times,
        "exit_median_ms": statistics.median(exits),
        "exit_times_ms": exits,
    }))


if __name__ == "__main__":
    main()
