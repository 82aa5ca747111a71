#!/usr/bin/env python3
"""A polling peer beside rlock's waiting: redis-py's `Lock`, which retries SET NX PX every 0.1 s.

  setup --venv DIR  (bench's python3, standard library) makes a venv at DIR with redis-py in it,
                    unless one is there already; prints its python. Fails with one line saying
                    why, which bench/run prints as 'peer unavailable: ...'.
  handoff           (f5, with the venv's python) f1's handoff with redis-py on both sides: a holder
                    process takes `r.lock(K, timeout=30)`, says so, and on the go writes T1 and
                    releases; a waiter process blocks in `acquire()` (`blocking_timeout=30`, the
                    default `sleep=0.1`), then writes T2. The waiter counts as waiting once the
                    server has run a SET from its connection (CLIENT LIST: the lock was busy, so it
                    failed). handoff = T2 - T1.
  load              (f6) The commands one waiting redis-py Lock sends while the lock is held.

Both timestamps are taken in-process (time.time_ns()), so unlike rlock's they include no process
launch. The orchestration is bench/handoff.py's, so both tools are measured the same way.
"""

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time

import handoff
from handoff import Redis

# Lock timeout of the holders, and how long a waiter waits at most.
LOCK_TIMEOUT_S = 30
WAITER = "rlock-bench-waiter"  # the waiter's CLIENT SETNAME prefix
# pip must give up instead of retrying for minutes on a machine without a network.
PIP_TIMEOUT_S = 300


def setup(venv):
    """Makes sure `venv` has redis-py; returns its python."""
    python = os.path.join(venv, "bin", "python")
    try:
        os.makedirs(os.path.dirname(venv), exist_ok=True)
        lock = open(venv + ".lock", "w")
    except OSError as e:
        sys.exit(f"cannot make the venv's directory: {e}")
    # Two runs at once must not build the same venv at once.
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if usable(python):
            return python
        import venv as venv_module
        try:
            venv_module.EnvBuilder(with_pip=True, clear=True).create(venv)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"python3 -m venv {venv} failed ({e}); on Debian: apt-get install "
                     "python3-venv")
        try:
            done = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--timeout", "15", "--retries", "1", "redis"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S,
                check=False)
        except subprocess.TimeoutExpired:
            sys.exit(f"pip install redis took more than {PIP_TIMEOUT_S} s")
        if done.returncode != 0 or not usable(python):
            lines = done.stdout.decode(errors="replace").strip().splitlines() or ["no output"]
            sys.exit(f"pip install redis failed: {lines[-1]}")
    return python


def usable(python):
    return os.access(python, os.X_OK) and subprocess.run(
        [python, "-c", "import redis.lock"], stderr=subprocess.DEVNULL, check=False
    ).returncode == 0


# --- The two roles, run as processes of their own ---------------------------------------------

def holder(args):
    import redis
    lock = redis.Redis(port=args.node, client_name="rlock-bench-holder").lock(
        args.key, timeout=LOCK_TIMEOUT_S)
    if not lock.acquire(blocking=False):
        sys.exit(f"peer holder: lock {args.key} is busy")
    print("ready", flush=True)
    sys.stdin.readline()
    with open(args.stamp, "w") as f:
        f.write(f"{time.time_ns()}\n")
    lock.release()


def waiter(args):
    import redis
    if args.on_cue:
        sys.stdin.readline()
    lock = redis.Redis(port=args.node, client_name=args.name).lock(
        args.key, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S)
    if not lock.acquire():
        sys.exit(f"peer waiter: lock {args.key} still busy after {LOCK_TIMEOUT_S} s")
    with open(args.stamp, "w") as f:
        f.write(f"{time.time_ns()}\n")
    lock.release()


# --- Orchestration -------------------------------------------------------------------------------

def role(what, args, key, stamp, log, **kwargs):
    """Starts this script as a holder or waiter process."""
    command = [sys.executable, __file__, what, "--node", str(args.node), "--key", key,
               "--stamp", stamp, "--name", kwargs.pop("name", WAITER)]
    if kwargs.pop("cue", False):
        command.append("--on-cue")
    return handoff.start(command, log, **kwargs)


def waiting(conn, name):
    """Whether the client called `name` has had a SET run (and, the lock being held, refused)."""
    def check():
        return any(f" name={name} " in f" {line} " and " cmd=set " in f" {line} "
                   for line in conn("CLIENT", "LIST").splitlines())
    return check


def cmd_handoff(args, tmp):
    conn = Redis(args.node)
    rng = handoff.random.Random()
    holder_log, waiter_log = os.path.join(tmp, "holder.log"), os.path.join(tmp, "waiter.log")

    def once(i):
        key, name = f"{args.key}-{i}", f"{WAITER}-{i}"
        t1, t2 = os.path.join(tmp, f"t1-{i}"), os.path.join(tmp, f"t2-{i}")
        held = role("holder", args, key, t1, holder_log,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # The waiter starts alongside (importing redis takes a quarter of a second) and begins
        # to wait on its cue, once the holder holds the lock.
        wait = role("waiter", args, key, t2, waiter_log, name=name, cue=True,
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        handoff.await_line(held, "the redis-py holder", holder_log)
        wait.stdin.write(b"start\n")
        wait.stdin.close()
        handoff.wait_until(waiting(conn, name), "the redis-py waiter waits", waiter_log)
        time.sleep(rng.uniform(0, handoff.PHASE_S))
        held.stdin.write(b"go\n")
        held.stdin.close()
        handoff.finish(held, holder_log, "the redis-py holder")
        held.stdout.close()
        handoff.finish(wait, waiter_log, "the redis-py waiter")
        return (handoff.read_ns(t2, waiter_log) - handoff.read_ns(t1, holder_log)) / 1e6

    return handoff.summary(handoff.handoffs(args.runs, args.warmup, once), redis_py=version())


def cmd_load(args, tmp):
    conn = Redis(args.node)
    log = os.path.join(tmp, "load.log")
    # The holder need not be redis-py: any value under the key keeps a Lock waiting.
    conn("SET", args.key, "held-by-the-benchmark", "PX", LOCK_TIMEOUT_S * 1000)

    def start_waiter():
        return role("waiter", args, args.key, os.path.join(tmp, "t2"), log,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    # Half a poll period: the window's edges fall between two tries.
    result = handoff.load_window(conn, start_waiter, waiting(conn, WAITER), handoff.PHASE_S / 2,
                                 args.window, [log])
    conn("DEL", args.key)
    return {**result, "redis_py": version()}


def version():
    from importlib.metadata import version as installed
    return installed("redis")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["setup", "handoff", "load", "holder", "waiter"])
    p.add_argument("--venv", help="where the venv with redis-py lives (setup)")
    p.add_argument("--node", type=int, help="the Redis port")
    p.add_argument("--key", help="the lock's name; handoff uses KEY-N")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--window", type=float, default=5.0, help="seconds counted (load)")
    p.add_argument("--stamp", help="where a holder or waiter writes its timestamp")
    p.add_argument("--name", default=WAITER, help="a waiter's client name")
    p.add_argument("--on-cue", action="store_true", help="a waiter starts on a line on stdin")
    args = p.parse_args()
    if args.what == "setup":
        print(setup(os.path.abspath(args.venv)))
        return
    if args.what in ("holder", "waiter"):
        (holder if args.what == "holder" else waiter)(args)
        return
    handoff.signal.signal(handoff.signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="rlock-peer.") as tmp:
            run = {"handoff": cmd_handoff, "load": cmd_load}[args.what]
            print(json.dumps(run(args, tmp)))
    finally:
        handoff.stop_children()


if __name__ == "__main__":
    main()
