#!/usr/bin/env python3
"""Turns the raw results bench/run left in its temp dir into the one table it prints.

Every ratio is computed here, from numbers of the same run. Inputs, all in DIR:
  meta.tsv                 key<TAB>value lines: the machine, the mode, the parameters
  overhead.json            hyperfine --export-json: rlock, flock, busy, and etcdctl (absent if
                           etcd was unavailable: meta.tsv then has etcd_unavailable)
  fanout.json              hyperfine --export-json: N=1, N=3, N=5, N=7, slow1, slow5
  start-*.json             child_start.py results: start-flock, start-rlock-{n1,n5,slow1,slow5},
                           start-crate-{n5,slow1,slow5} (absent if the redlock crate's harness was
                           unavailable: meta.tsv then has redlock_unavailable)
  rss-{rlock,flock}-*.txt  /usr/bin/time -v reports
  load-info-{0,1}.txt      INFO all before and after the counted window; load.stderr is rlock -v's
  wait-*.json              handoff.py results: handoff1, handoff3, takeover, load
  peer-*.json              peer_redis_py.py results: handoff, load (absent if the peer was
                           unavailable: meta.tsv then has peer_unavailable)
  modes-round-*.json       hyperfine --export-json, one per round: plain, limit and shared on 1
                           and 5 nodes, busy5 (3 of 4 slots held), and plain, busy, shared on 5
                           slow nodes
  modes-*.json             modes.py results: {plain,limit,shared}-{n1,n5}
  queue-*.json             waitqueue.py results: scale1 (1 node), scale3 (N = 3), kill

Usage: report.py DIR
"""

import glob
import json
import math
import os
import re
import statistics
import sys
import textwrap


class Results:
    """Reads the files of one run."""

    def __init__(self, d):
        self.d = d
        self.meta = {}
        with open(self.path("meta.tsv")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("\t")
                self.meta[key] = value

    def path(self, name):
        return os.path.join(self.d, name)

    def hyperfine(self, name):
        """{command name: median in ms} from a hyperfine JSON export."""
        with open(self.path(name)) as f:
            results = json.load(f)["results"]
        return {r["command"]: 1000 * (r.get("median") or statistics.median(r["times"]))
                for r in results}

    def hyperfine_rounds(self, pattern):
        """The runs of every hyperfine export matching `pattern`, pooled: {command name: (mean,
        median) in ms}, and how many runs that is per command."""
        times = {}
        for name in sorted(glob.glob(self.path(pattern))):
            with open(name) as f:
                for result in json.load(f)["results"]:
                    times.setdefault(result["command"], []).extend(result["times"])
        return ({k: (1000 * statistics.mean(v), 1000 * statistics.median(v))
                 for k, v in times.items()}, min(len(v) for v in times.values()))

    def json(self, name):
        with open(self.path(name)) as f:
            return json.load(f)

    def median_ms(self, name):
        """The median of a child_start.py or sequential.py result."""
        with open(self.path(name)) as f:
            return json.load(f)["median_ms"]

    def max_rss_kib(self, program):
        """The median over runs of GNU time's peak RSS for `program`."""
        values = []
        for name in sorted(glob.glob(self.path(f"rss-{program}-*.txt"))):
            with open(name) as f:
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
            if not m:
                sys.exit(f"report: no 'Maximum resident set size' in {name}")
            values.append(int(m.group(1)))
        return int(statistics.median(values)), len(values)

    def info(self, name):
        """total_commands_processed and each command's call count, from an INFO reply."""
        counts = {}
        with open(self.path(name)) as f:
            for line in f:
                line = line.strip()
                if line.startswith("total_commands_processed:"):
                    counts["total"] = int(line.split(":")[1])
                elif m := re.match(r"cmdstat_([^:]+):calls=(\d+)", line):
                    counts[m.group(1)] = int(m.group(2))
        return counts

    def count_lines(self, name, pattern):
        with open(self.path(name)) as f:
            return sum(bool(re.search(pattern, line)) for line in f)


def ms(v):
    return f"{v:.2f} ms" if abs(v) < 100 else f"{v:.1f} ms"


# Every command rlock's scripts run (scripts.rs); rlock itself sends only EVALSHA (EVAL, SCRIPT
# LOAD) and SUBSCRIBE, so these are what its requests cost inside Redis, not requests of their own.
RLOCK_SCRIPT_COMMANDS = {"set", "pttl", "exists", "incr", "time", "hset", "pexpire", "get", "del",
                         "publish", "info"}


def ratio(value, base):
    return f"{value / base:.2f}x" if base else ""


def ratio_target(value, base, limit):
    met = value / base <= limit
    return f"target <= {limit:.2f}x: {'met' if met else 'missed'}"


def target(value, limit, unit="ms", at_most=False):
    met = value <= limit if at_most else value < limit
    return f"target {'<=' if at_most else '<'} {limit:g} {unit}: {'met' if met else 'missed'}"


def counts(delta, only=None):
    """'2 EVALSHA, 1 SUBSCRIBE' for a commandstats delta, largest first."""
    items = sorted(((v, k) for k, v in delta.items()
                    if k != "total" and (only is None or only(k))), reverse=True)
    return ", ".join(f"{v} {k.upper()}" for v, k in items) or "nothing"


def load_rates(load, in_script):
    """(requests/s, commands/s incl. in scripts, requests in the window, the in-script part) for
    a load_window result; `in_script` tells a command run inside a script."""
    window = load["window"]
    seconds = load["window_s"]
    requests = {k: v for k, v in window.items() if k != "total" and not in_script(k)}
    inside = {k: v for k, v in window.items() if k != "total" and in_script(k)}
    return (sum(requests.values()) / seconds, window.get("total", 0) / seconds,
            counts(requests), counts(inside))


def build_rows(r):
    """The table: (group title, [(id, what, rlock, baseline, difference, ratio, note)])."""
    meta = r.meta
    rtt = 2 * float(meta["delay_ms"])
    runs = meta["runs"]

    def timed(rid, what, value, base_name, base, note=""):
        sign = "+" if value >= base else ""
        return (rid, what, ms(value), f"{base_name} {ms(base)}", sign + ms(value - base),
                f"{value / base:.2f}x", note)

    groups = []

    o = r.hyperfine("overhead.json")
    rows = [
        timed("a1", "rlock -- true, 1 node", o["rlock"], "flock", o["flock"],
              ratio_target(o["rlock"], o["flock"], 2.0)),
        timed("a2", "rlock -E 0 -- true, lock busy", o["busy"], "flock", o["flock"],
              "command not run"),
    ]
    if "etcdctl" in o:
        rows.append(timed("a3", "rlock -- true vs etcdctl lock", o["rlock"], "etcdctl",
                          o["etcdctl"], f"{ratio_target(o['rlock'], o['etcdctl'], 0.25)}; etcd "
                          f"{meta['etcd']}, 1 local member"))
    else:
        rows.append(("a3", "rlock -- true vs etcdctl lock", ms(o["rlock"]), "", "", "",
                     f"peer unavailable: {meta.get('etcd_unavailable', 'unknown')}"))
    groups.append((f"a. whole process (hyperfine median of {runs})", rows))

    rl, n = r.max_rss_kib("rlock")
    fl, _ = r.max_rss_kib("flock")
    groups.append((f"b. peak RSS (GNU time, median of {n})", [
        ("b1", f"-- sleep {meta['rss_sleep']}", f"{rl} KiB = {rl / 1024:.2f} MiB",
         f"flock {fl} KiB = {fl / 1024:.2f} MiB", f"{rl - fl:+d} KiB", f"{rl / fl:.2f}x",
         target(rl / 1024, 4, "MiB", at_most=True)),
    ]))

    f = r.hyperfine("fanout.json")
    rows = [("c1", "Redlock N=1", ms(f["N=1"]), "", "", "", "single-node mode")]
    rows += [timed(f"c{i}", f"Redlock N={n}", f[f"N={n}"], "N=1", f["N=1"],
                   "difference = fan-out cost")
             for i, n in ((2, 3), (3, 5), (4, 7))]
    slow = {"slow1": f"N=5, 1 node +{rtt:g} ms RTT", "slow5": f"N=5, 5 nodes +{rtt:g} ms RTT"}
    for rid, key in (("c5", "slow1"), ("c6", "slow5")):
        rows.append(timed(rid, slow[key], f[key], "N=5", f["N=5"],
                          f"{(f[key] - f['N=5']) / rtt:.1f} slow RTTs in series"))
    groups.append((f"c. Redlock fan-out, whole process (hyperfine median of {runs})", rows))

    crate = meta.get("redlock_crate")
    unavailable = meta.get("redlock_unavailable")
    name = "crate"

    def peer_row(rid, what):
        why = f": {unavailable}" if rid == "c7" else " (see c7)"
        return (rid, what, "", "", "", "", f"peer unavailable{why}")

    start = {k: r.json(f"start-rlock-{k}.json") for k in ("n1", "n5", "slow1", "slow5")}
    rows = []
    if unavailable:
        rows += [peer_row("c7", "whole process, N=5"),
                 peer_row("c8", f"whole process, {slow['slow5']}")]
    else:
        theirs = {k: r.json(f"start-crate-{k}.json") for k in ("n5", "slow1", "slow5")}
        ours_exit = {k: v["exit_median_ms"] for k, v in start.items()}
        their_exit = {k: v["exit_median_ms"] for k, v in theirs.items()}
        rows += [
            timed("c7", "whole process, N=5", ours_exit["n5"], name, their_exit["n5"],
                  "both: launch, grant, `date`, release, exit"),
            timed("c8", f"whole process, {slow['slow5']}", ours_exit["slow5"], name,
                  their_exit["slow5"],
                  f"{(ours_exit['slow5'] - ours_exit['n5']) / rtt:.1f} vs "
                  f"{(their_exit['slow5'] - their_exit['n5']) / rtt:.1f} slow RTTs in series"),
        ]
    start = {k: v["median_ms"] for k, v in start.items()}
    rows.append(timed("c9", "until the command starts, N=1", start["n1"], "flock",
                      r.median_ms("start-flock.json"), "both include a process launch"))
    if unavailable:
        rows += [peer_row("c10", "until the command starts, N=5"),
                 peer_row("c11", f"until start, {slow['slow1']}"),
                 peer_row("c12", f"until start, {slow['slow5']}")]
    else:
        theirs = {k: v["median_ms"] for k, v in theirs.items()}
        rows.append(timed("c10", "until the command starts, N=5", start["n5"], name,
                          theirs["n5"], "both include a process launch"))
        for rid, key in (("c11", "slow1"), ("c12", "slow5")):
            ours = (start[key] - start["n5"]) / rtt
            their = (theirs[key] - theirs["n5"]) / rtt
            rows.append(timed(rid, f"until start, {slow[key]}", start[key], name, theirs[key],
                              f"{ours:.1f} vs {their:.1f} slow RTTs"))
    title = (f"c. rlock vs the redlock crate {crate or ''} (sequential), both launched as "
             f"processes (median of {runs})").replace("  ", " ")
    groups.append((title, rows))

    before, after = r.info("load-info-0.txt"), r.info("load-info-1.txt")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    window = int(meta["load_window_ns"]) / 1e9
    ttl = int(meta["load_ttl_ms"]) / 1000
    # The first snapshot's own INFO is counted in the second; nothing else talks to this node.
    requests = delta.get("evalsha", 0) + delta.get("eval", 0)
    processed = delta.get("total", 0) - delta.get("info", 0)
    inside = ", ".join(f"{v} {k.upper()}" for k, v in sorted(delta.items())
                       if v and k not in ("total", "info", "evalsha", "eval"))
    expected = 3 / ttl
    title = f"d. Redis load while holding one lease (TTL {ttl:g}s, counted over {window:.2f} s)"
    groups.append((title, [
        ("d1", "requests/s (EVALSHA)", f"{requests / window:.2f} /s",
         f"3/TTL {expected:.2f} /s", "", f"{requests / window / expected:.2f}x",
         f"{requests} in the window"),
        ("d2", "commands/s, incl. in scripts", f"{processed / window:.2f} /s", "", "", "",
         f"+ {inside}" if inside else ""),
    ]))

    size = int(meta["binary_bytes"])
    groups.append(("e. binary", [
        ("e1", "target/release/rlock", f"{size} B = {size / 2**20:.2f} MiB", "", "", "", ""),
    ]))

    groups.append(waiting_rows(r))
    groups.append(modes_rows(r))
    groups.append(queue_rows(r))
    return groups


def waiting_rows(r):
    """Section f: handoff, takeover and waiting load, rlock's and redis-py's Lock's."""
    h1, h3 = r.json("wait-handoff1.json"), r.json("wait-handoff3.json")
    take, load = r.json("wait-takeover.json"), r.json("wait-load.json")
    launch = h1["launch"]

    def compare(value, base_name, base):
        sign = "+" if value >= base else ""
        return f"{base_name} {ms(base)}", sign + ms(value - base), f"{value / base:.2f}x"

    rows = [
        ("f1", "handoff, 1 node: median", ms(h1["median_ms"]),
         *compare(h1["median_ms"], "launch", launch["median_ms"]), target(h1["median_ms"], 2)),
        ("", "handoff, 1 node: p99", ms(h1["p99_ms"]), "", "", "",
         f"{target(h1['p99_ms'], 10)}; launch alone: p99 {ms(launch['p99_ms'])}"),
        ("f2", "handoff, Redlock N=3: median", ms(h3["median_ms"]),
         *compare(h3["median_ms"], "N=1", h1["median_ms"]),
         target(h3["median_ms"], 2) + " (0-5 ms wake-up delay by design)"),
        ("", "handoff, Redlock N=3: p99", ms(h3["p99_ms"]),
         *compare(h3["p99_ms"], "N=1", h1["p99_ms"]), target(h3["p99_ms"], 10)),
        ("f3", "takeover after expiry: median", ms(take["median_ms"]),
         *compare(take["median_ms"], "launch", take["launch"]["median_ms"]),
         target(take["median_ms"], 50)),
        ("", "takeover after expiry: max", ms(take["max_ms"]), "", "", "",
         f"{target(take['max_ms'], 50)}; launch alone: max {ms(take['launch']['max_ms'])}"),
    ]
    ours = load_rates(load, lambda k: k in RLOCK_SCRIPT_COMMANDS)
    seconds = f"{load['window_s']:.1f} s"
    rows += [
        ("f4", "waiting: requests/s", f"{ours[0]:.2f} /s", "", "", "",
         f"{target(ours[0], 10, '/s', at_most=True)}; {ours[2]} in {seconds}; before: "
         f"{counts(load['setup'], lambda k: k not in RLOCK_SCRIPT_COMMANDS)}"),
        ("", "waiting: commands/s, incl. in scripts", f"{ours[1]:.2f} /s", "", "", "",
         f"+ {ours[3]}"),
    ]

    title = (f"f. waiting for a busy lock, 1 node unless said (handoffs: {h1['runs']} each, "
             f"takeovers: {take['runs']})")
    unavailable = r.meta.get("peer_unavailable")
    if unavailable:
        rows.append(("f5", "redis-py Lock, same handoff", "", "", "", "",
                     f"peer unavailable: {unavailable}"))
        rows.append(("f6", "redis-py Lock, waiting load", "", "", "", "",
                     "peer unavailable (see f5)"))
        return title, rows

    peer, peer_load = r.json("peer-handoff.json"), r.json("peer-load.json")
    name = "redis-py"
    rows += [
        ("f5", "vs redis-py Lock: handoff median", ms(h1["median_ms"]),
         *compare(h1["median_ms"], name, peer["median_ms"]),
         f"redis-py {peer['redis_py']}, polls every 0.1 s"),
        ("", "vs redis-py Lock: handoff p99", ms(h1["p99_ms"]),
         *compare(h1["p99_ms"], name, peer["p99_ms"]), ""),
    ]
    theirs = load_rates(peer_load, lambda k: False)
    rows += [
        ("f6", "vs redis-py Lock: requests/s", f"{ours[0]:.2f} /s", f"{name} {theirs[0]:.2f} /s",
         f"{ours[0] - theirs[0]:+.2f} /s", ratio(ours[0], theirs[0]),
         f"redis-py: {theirs[2]} in {peer_load['window_s']:.1f} s; before: "
         f"{counts(peer_load['setup'])}"),
        ("", "vs redis-py: commands/s, incl. scripts", f"{ours[1]:.2f} /s",
         f"{name} {theirs[1]:.2f} /s", f"{ours[1] - theirs[1]:+.2f} /s",
         ratio(ours[1], theirs[1]), ""),
    ]
    return title, rows


def modes_rows(r):
    """Section g: --limit and --shared next to a plain lock; what a grant sends to each node."""
    meta = r.meta
    rtt = 2 * float(meta["delay_ms"])
    limit = int(meta["mode_limit"])
    others = limit - 1
    pooled, runs = r.hyperfine_rounds("modes-round-*.json")
    m = {k: mean for k, (mean, _) in pooled.items()}

    def timed(rid, what, name, base):
        value = m[name]
        sign = "+" if value >= m[base] else ""
        medians = pooled[name][1], pooled[base][1]
        return (rid, what, ms(value), f"plain {ms(m[base])}", sign + ms(value - m[base]),
                f"{value / m[base]:.2f}x", f"{ratio_target(value, m[base], 1.2)}; medians "
                f"{ms(medians[0])} vs {ms(medians[1])} = {medians[0] / medians[1]:.2f}x")

    def per_node(name, phase):
        """(mean, min, max) over the nodes of requests per round, the requests by command per
        round and node, and the commands their scripts ran per round and node."""
        d = r.json(f"modes-{name}.json")
        rounds, nodes = d["grants"], d["nodes"]
        each = [sum(n[phase]["requests"].values()) / rounds for n in nodes]
        by_command, script = {}, 0
        for n in nodes:
            for k, v in n[phase]["requests"].items():
                by_command[k] = by_command.get(k, 0) + v
            script += sum(n[phase]["script"].values())
        scale = rounds * len(nodes)
        words = ", ".join(f"{v / scale:.2f} {k.upper()}" for k, v in
                          sorted(by_command.items(), key=lambda kv: -kv[1])) or "nothing"
        return statistics.mean(each), min(each), max(each), words, script / scale, d

    def requests(rid, what, name, base):
        mean, low, high, words, script, d = per_node(name, "acquire")
        b_mean, _, _, _, b_script, _ = per_node(base, "acquire")
        run = per_node(name, "run")[0]
        b_run = per_node(base, "run")[0]
        spread = f" (nodes: {low:.2f}-{high:.2f})" if len(d["nodes"]) > 1 else ""
        note = (f"{target(high, 1, 'per node', at_most=True)}; {words}{spread}, running "
                f"{script:.1f} commands (plain {b_script:.1f}); whole run {run:.2f} "
                f"(plain {b_run:.2f})")
        if d["slots"]:
            note += f"; slot {', '.join(map(str, sorted(set(d['slots']))))}"
        return (rid, what, f"{mean:.2f} /node", f"plain {b_mean:.2f} /node",
                f"{mean - b_mean:+.2f}", ratio(mean, b_mean), note)

    def slow(rid, what, name, fast):
        ours = (m[name] - m[fast]) / rtt
        theirs = (m["plain-slow5"] - m["plain5"]) / rtt
        row = timed(rid, what, name, "plain-slow5")
        return row[:6] + (f"{ours:.1f} vs plain {theirs:.1f} slow RTTs in series",)

    lim = f"--limit {limit}"
    rows = [
        timed("g1", f"{lim} -- true, free slot, 1 node", "limit1", "plain1"),
        timed("g2", f"{lim} -- true, free slot, N=5", "limit5", "plain5"),
        requests("g3", f"{lim}, {others} busy: requests per grant, 1 node", "limit-n1",
                 "plain-n1"),
        requests("g4", f"{lim}, {others} busy: requests per grant, N=5", "limit-n5", "plain-n5"),
        slow("g5", f"{lim}, {others} busy, N=5 all +{rtt:g} ms RTT", "busy-slow5", "busy5"),
        timed("g6", f"--shared -- true, {others} shared holders, 1 node", "shared1", "plain1"),
        timed("g7", f"--shared -- true, {others} shared holders, N=5", "shared5", "plain5"),
        requests("g8", f"--shared, {others} holders: requests per grant, 1 node", "shared-n1",
                 "plain-n1"),
        requests("g9", f"--shared, {others} holders: requests per grant, N=5", "shared-n5",
                 "plain-n5"),
        slow("g10", f"--shared, {others} holders, N=5 all +{rtt:g} ms RTT", "shared-slow5",
             "shared5"),
    ]
    return (f"g. lock modes vs a plain lock, side by side (hyperfine mean of {runs} in "
            f"{meta['mode_rounds']} rounds; requests: {meta['mode_grants']} grants, MONITOR)", rows)


def queue_rows(r):
    """Section h: a queue of waiters drained, ordered and unordered; a dead head waiter."""
    s1, s3, kill = r.json("queue-scale1.json"), r.json("queue-scale3.json"), r.json(
        "queue-kill.json")

    def nodes(s):
        return "1 node" if s["nodes"] == 1 else f"N={s['nodes']}"

    def handoff(rid, s):
        o, u = s["ordered"]["single"], s["unordered"]["single"]
        return (rid, f"handoff, 1 waiter, {nodes(s)}: median", ms(o["median_ms"]),
                f"unordered {ms(u['median_ms'])}", signed_ms(o["median_ms"] - u["median_ms"]),
                ratio(o["median_ms"], u["median_ms"]),
                f"p99 {ms(o['p99_ms'])} vs {ms(u['p99_ms'])}; {o['runs']} handoffs each")

    def many(rid, s):
        w, o, u = s["waiters"], s["ordered"], s["unordered"]
        value, base = o["many"]["median_ms"], o["single"]["median_ms"]
        ubase = u["single"]["median_ms"]
        umany = u["many"]["median_ms"]
        return [
            (rid, f"handoff, {w} waiters, {nodes(s)}: median", ms(value),
             f"1 waiter {ms(base)}", signed_ms(value - base), ratio(value, base),
             f"{ratio_target(value, base, 1.5)}; first half of each drain "
             f"{ms(o['many']['first_half_median_ms'])}; p99 {ms(o['many']['p99_ms'])}; "
             f"{o['many']['runs']} handoffs"),
            ("", f"  {w} waiters, {nodes(s)}: vs unordered", ms(value),
             f"unordered {ms(umany)}", signed_ms(value - umany), ratio(value, umany),
             f"unordered: {umany / ubase:.2f}x its 1 waiter ({ms(ubase)}), first half "
             f"{ms(u['many']['first_half_median_ms'])}, p99 {ms(u['many']['p99_ms'])}"),
        ]

    def requests(rid, s):
        w, o, u = s["waiters"], s["ordered"]["many"], s["unordered"]["many"]
        ours, theirs = max(o["attempts_per_grant"]), max(u["attempts_per_grant"])
        spread = ""
        if s["nodes"] > 1:
            spread = ("; nodes " + ", ".join(f"{v:.2f}" for v in o["attempts_per_grant"])
                      + " vs " + ", ".join(f"{v:.2f}" for v in u["attempts_per_grant"]))
        by = {}
        for node in o["requests_by_command"]:
            for k, v in node.items():
                by[k] = by.get(k, 0) + v
        return (rid, f"{w} waiters, {nodes(s)}: requests per grant", f"{ours:.2f} /node",
                f"unordered {theirs:.2f} /node", f"{ours - theirs:+.2f}", ratio(ours, theirs),
                f"{target(ours, 3, 'per node', at_most=True)}; releases not counted (one per "
                f"process); with them {max(o['requests_per_grant']):.2f} vs "
                f"{max(u['requests_per_grant']):.2f}; {counts(by)} in {o['grants']} grants"
                f"{spread}")

    def order(rid, s, exact):
        w, o, u = s["waiters"], s["ordered"]["many"], s["unordered"]["many"]
        gap = o["arrival_gap_ms"]
        queued = sorted({n for d in o["queued_at_go"] for n in d})
        met = "met" if o["out_of_order"] == 0 else "missed"
        note = (f"target: arrival order exactly: {met}; " if exact else
                "report only (best-effort order over a quorum); ")
        note += (f"max rank displacement {o['max_displacement']} vs {u['max_displacement']}, "
                 f"mean {o['mean_displacement']:.1f} vs {u['mean_displacement']:.1f}; "
                 f"arrivals {gap['mean']:.1f} ms apart (min {gap['min']:.1f}); queue length "
                 f"seen at the go: {', '.join(map(str, queued))}")
        return (rid, f"order, {w} waiters, {nodes(s)}: out of order",
                f"{o['out_of_order']} of {o['grants']}",
                f"unordered {u['out_of_order']} of {u['grants']}", "", "", note)

    o, u = kill["ordered"], kill["unordered"]
    rows = [
        handoff("h1", s1), *many("h2", s1),
        handoff("h3", s3), *many("h4", s3),
        requests("h5", s1), requests("h6", s3),
        order("h7", s1, True), order("h8", s3, False),
        ("h9", "head waiter kill -9: next grant after release", ms(o["median_ms"]),
         f"unordered {ms(u['median_ms'])}", signed_ms(o["median_ms"] - u["median_ms"]),
         ratio(o["median_ms"], u["median_ms"]),
         f"target <= 4 s (3 s heartbeat + 1 s backstop): "
         f"{'met' if o['max_ms'] <= 4000 else 'missed'} (max {ms(o['max_ms'])}, unordered "
         f"{ms(u['max_ms'])}); {o['runs']} kills each"),
    ]
    return (f"h. waiting at scale: ordered queue vs RLOCK_UNORDERED=1, side by side "
            f"({s1['rounds']} rounds; {s1['waiters']} and {s3['waiters']} waiters"
            f"{', fewer in quick mode' if r.meta['mode'] == 'quick' else ''})", rows)


def signed_ms(v):
    return ("+" if v >= 0 else "") + ms(v)


def p99_rank(n):
    """Which sample nearest-rank p99 is, in words."""
    rank = math.ceil(0.99 * n)
    return f"of {n}, the maximum" if rank == n else f"the {rank}th of {n}"


def notes(r):
    meta = r.meta
    h1 = r.json("wait-handoff1.json")
    others = int(meta["mode_limit"]) - 1
    extensions = r.count_lines("load.stderr", r"\bextended\b")
    return [
        f"a: hyperfine -N, {meta['warmup']} warm-up runs, all rows of a in one batch. One run = "
        "start, connect, acquire, run `true`, release, exit. a2: another rlock holds the lock, so "
        "this is connect, refusal, exit. a3: `etcdctl lock bench true` against a throwaway "
        f"single-member etcd on loopback (data on {meta.get('etcd_data') or 'disk'}, as the Redis "
        "nodes keep nothing on disk either): gRPC connect, lease grant, lock, `true`, unlock.",
        "b: 'Maximum resident set size' of /usr/bin/time -v: the larger of the wrapper and its "
        "`sleep`.",
        f"c: slow nodes sit behind bench/delay_proxy.py (+{meta['delay_ms']} ms each way). A Redlock "
        "run has round trips in series, each costing the slowest node's RTT thanks to the parallel "
        "fan-out: the grant (whose script also returns the server's run_id, so spotting one server "
        "listed twice costs no round trip of its own) and, after the command, the release: ~2 per "
        "run (c5, c6), ~1 before the command starts (c11, c12). The fence commit, a second round "
        "before the command, is skipped when a majority of the granting nodes already returned the "
        "chosen fence, as they do once the counters are equal; a lock's first grant on fresh nodes "
        "pays it, here in the warm-up runs. 'crate' is the redlock crate from crates.io "
        "(bench/peer_redlock_rs: its lock(), the command, its unlock(), in a process of its own like "
        "rlock's, built with the same release profile; its Cargo.lock pins redis-rs too): it asks "
        "the nodes one after another on a fresh connection each, SET NX PX to lock and a "
        "compare-and-delete script to unlock, with no fence, no identity check and no lease "
        "keeper; and redis-rs 0.23.5, which it uses, sends CLIENT SETINFO on every new connection "
        "(an error on Redis < 7.2, ignored), so it pays 2 RTTs per node to lock. c7-c12 come from "
        "the same runs of bench/child_start.py (launching the program with `date +%s%N` as its "
        "command): c9-c12 until the command reads the clock, c7, c8 until the program has exited "
        "and been reaped. With one slow node both pay for it; with five the crate pays every one "
        "in turn, rlock the slowest once.",
        "d: INFO commandstats / total_commands_processed deltas, own INFO removed, over whole "
        f"extension intervals of an `rlock -t {ttl_text(meta)} -- sleep {meta['load_hold_s']}` "
        f"hold (scripts already loaded); rlock -v logged {extensions} extensions in the whole hold. "
        "Expected: one EVALSHA per TTL/3.",
        "f: handoff = from the holder's command reading the clock as it exits to the waiter's "
        "command reading it as it starts, both a tiny exec'd program that writes the clock "
        f"(stamp: {h1.get('stamp', 'sh -c date')}, built by bench/handoff.py): the holder's exit "
        "and release, the announcement, the waiter's grant, and its launch of stamp, which alone "
        "takes the 'launch' baseline (timed from python, the same count). The waiter is seen "
        "waiting (PUBSUB NUMSUB of its lock's release channel is 1 on every node) before the go, "
        "which comes a random 0-100 ms later so that it falls anywhere in a polling waiter's "
        f"cycle. p99 is the nearest rank: {p99_rank(h1['runs'])}. f2 adds Redlock's deliberate 0-5 ms wake-up delay (competing waiters must not vote "
        "in lockstep). f3: `rlock acquire -t 1s` never releases; expiry = when its PTTL was read "
        "(mid round trip) + PTTL; the waiter wakes at the PTTL it was told, +0-3 ms. f4: INFO "
        "commandstats deltas, our own commands removed, over "
        f"{r.json('wait-load.json')['window_s']:.1f} s of an rlock waiting on a 30 s lease, "
        "starting half a backstop period after it subscribed; 'before' counts from its launch "
        "until then. f5, f6: redis-py's Lock (bench/peer_redis_py.py) on both sides, timed "
        "in-process, so its handoff has no launch in it; it retries SET NX PX every 0.1 s.",
        f"g: plain and mode rows side by side in {meta['mode_rounds']} rounds of hyperfine runs "
        "(every command a few runs in turn, the order reversed every other round, the first "
        "round with the full warm-up), pooled: a load that drifts during the batch then weighs "
        "on both sides of a ratio alike. g1, g2: nothing else "
        f"holds the lock, so slot 0 is free. g5, g10 and the request counts: {others} other "
        f"leases held by hand (`rlock acquire --limit {meta['mode_limit']}` / `--shared`, "
        "-t 10m) all along, released after; g5, g10 go through the slow proxies to the same five "
        "nodes and count slow RTTs against their own fast runs, as c5, c6 do. Requests: "
        "bench/modes.py reads MONITOR on every node while `rlock acquire --format shell` grants, "
        "`rlock release` (in what acquire printed) releases, and `rlock -- true` runs, each after "
        "uncounted warm-up rounds: a line from a client is a request, a line from `lua` a command "
        "run inside its script. 'per grant' is the acquire alone; 'whole run' is grant and "
        "release. Target: one request per node per grant, with all slots judged in one script.",
        "h: bench/waitqueue.py. A holder takes the lock, then W waiters `rlock -w 5m -- stamp` "
        f"arrive {r.json('queue-scale1.json')['spacing_ms']:g} ms apart (each launched only once "
        "the one before listens on the release channel of every node), then the holder lets go "
        "and the queue drains: W handoffs, each from one command's stamp to the next's, like f1. "
        "The same drains give the grant order against the arrival order (a waiter granted at "
        "another rank than it arrived at is out of order; displacement = |grant rank - arrival "
        "rank|) and the requests each node served from the go until the last waiter exited "
        "(INFO commandstats: EVALSHA, EVAL, SUBSCRIBE and the like, which no script can run), "
        "per grant, less one release per process. 'unordered' runs the same drains with "
        "RLOCK_UNORDERED=1 (every waiter retries on every release); the two sides and the 1-"
        "waiter baseline alternate in rounds, the order reversed every other round. Quick mode "
        "drains fewer waiters (an unordered drain costs ~0.1 s per waiter), and the title says "
        "how many. h9: a holder, a head waiter and a second one; the head is killed with SIGKILL "
        "at a random point of its 1 s heartbeat cycle and the holder lets go at once; the delay "
        "runs from the holder's command's end to the second waiter's command's start.",
        "Loopback only, one shared machine: read ratios within a run, not absolute numbers across "
        "machines. a1 and c1 time the same command in two batches: their gap gauges this run's "
        "noise.",
    ]


def ttl_text(meta):
    millis = int(meta["load_ttl_ms"])
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def main():
    r = Results(sys.argv[1])
    meta = r.meta
    groups = build_rows(r)
    head = ("", "measurement", "rlock", "baseline", "difference", "ratio", "note")
    all_rows = [head] + [row for _, rows in groups for row in rows]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(head))]

    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    width = len(line(["x" * w for w in widths]))
    rule = "-" * width
    out = [
        f"rlock benchmark: {meta['mode']} run, {meta['date']}",
        f"machine: {meta['cpu']}, {meta['cores']} cores, {meta['kernel']}, "
        f"load average {meta['loadavg']} at start, {meta['loadavg_end']} at end",
        f"rlock {meta['commit']}; Redis {meta['redis']}; hyperfine {meta['hyperfine']}; "
        f"build {meta['build_s']} s, measurements {meta['measure_s']} s",
        rule,
        line(head),
    ]
    for title, rows in groups:
        out += [rule, title]
        out += [line(row) for row in rows]
    out.append(rule)
    for n in notes(r):
        out.append(textwrap.fill(n, width=max(width, 100), subsequent_indent="   "))
    print("\n".join(out))


if __name__ == "__main__":
    main()
