//! Ordered waiting (issue 18): `rlock -k K -w 1h -- job` from many clients is a queue. Waiters
//! are granted in the order they arrived, one at a time, with rising fences; a dead head waiter
//! costs the queue at most its heartbeat (3 s on the node's clock); a waiter that gives up leaves
//! nothing in Redis; a run without `--wait` never jumps the queue; `status` shows the queue; and a
//! node that restarts empty in the middle of a queue costs order, never safety.
//!
//! The commands under the lock keep the record: each appends `start N FENCE TIME` when it starts
//! and `end N TIME` when it ends to one log (`O_APPEND`, one write a line), so the log's line order
//! is the order in which things happened, with no clock to compare; TIME (`date +%s%6N`, µs) only
//! measures delays, against the node's `TIME` on the same host. Arrival order is made, not hoped
//! for: each waiter starts only once the one before it is in `P{K}:queue` on every node.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use redis::FromRedisValue;
use serde_json::Value;

use crate::support::{
    RedisServer, Rlock, RunningRlock, by_hand, json_of, on, proc_state, temp_dir, wait_for,
};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);
/// How long a waiter stays queued after its last heartbeat (the contract's HEARTBEAT).
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How late after the heartbeat's expiry the next waiter may start: a waiter retries at least
/// once a second even if no release wakes it, then starts a shell on a shared machine.
const SLACK: Duration = Duration::from_millis(1500);

/// The Redis key `rlock:{KEY}:PART` (`PART` empty: the lock itself).
fn key_of(key: &str, part: &str) -> String {
    if part.is_empty() {
        format!("rlock:{{{key}}}")
    } else {
        format!("rlock:{{{key}}}:{part}")
    }
}

/// The reply to `args` on `server`, converted to `T`; panics on an error reply.
#[track_caller]
fn ask<T: FromRedisValue>(server: &RedisServer, args: &[&str]) -> T {
    T::from_redis_value(server.cmd(args))
        .unwrap_or_else(|e| panic!("{args:?} on {}: unexpected reply: {e}", server.url()))
}

/// The node's clock (`TIME`) in µs since the epoch: the clock that ages heartbeats.
fn node_time_us(server: &RedisServer) -> u128 {
    let time: Vec<String> = ask(server, &["TIME"]);
    let part = |i: usize| {
        time[i]
            .parse::<u128>()
            .expect("TIME answers in whole numbers")
    };
    part(0) * 1_000_000 + part(1)
}

/// The score of `id` in the sorted set `zset` on `server` (whole milliseconds), if it is there.
fn score(server: &RedisServer, zset: &str, id: &str) -> Option<u128> {
    let score: Option<String> = ask(server, &["ZSCORE", zset, id]);
    score.map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("a score in whole ms: {s}"))
    })
}

/// How many waiters are queued for lock `key` on `server` (`ZCARD P{K}:queue`).
fn queue_len(server: &RedisServer, key: &str) -> usize {
    ask(server, &["ZCARD", &key_of(key, "queue")])
}

/// The ids queued for lock `key` on `server`, head first.
fn queue_ids(server: &RedisServer, key: &str) -> Vec<String> {
    ask(server, &["ZRANGE", &key_of(key, "queue"), "0", "-1"])
}

/// The waiter records of lock `key` on `server`: id -> `host\tpid\tcommand\tsince`.
fn records(server: &RedisServer, key: &str) -> BTreeMap<String, String> {
    ask(server, &["HGETALL", &key_of(key, "waiters")])
}

/// The pid in waiter record `record`.
fn pid_in(record: &str) -> Option<i32> {
    record.split('\t').nth(1)?.parse().ok()
}

/// The queue id of the waiter whose rlock is `pid`, found through its record.
#[track_caller]
fn id_of(server: &RedisServer, key: &str, pid: i32) -> String {
    let records = records(server, key);
    records
        .iter()
        .find_map(|(id, record)| (pid_in(record) == Some(pid)).then(|| id.clone()))
        .unwrap_or_else(|| panic!("no waiter record of pid {pid}: {records:?}"))
}

/// The rlock pids queued for lock `key` on `server`, head first.
fn queued_pids(server: &RedisServer, key: &str) -> Vec<Option<i32>> {
    let records = records(server, key);
    queue_ids(server, key)
        .iter()
        .map(|id| records.get(id).and_then(|r| pid_in(r)))
        .collect()
}

/// Every waiter trace of lock `key` on `server`: the members of `:queue`, `:alive` and `:waiters`.
fn traces(server: &RedisServer, key: &str) -> [Vec<String>; 3] {
    let mut alive: Vec<String> = ask(server, &["ZRANGE", &key_of(key, "alive"), "0", "-1"]);
    alive.sort();
    let mut queue = queue_ids(server, key);
    queue.sort();
    [queue, alive, records(server, key).into_keys().collect()]
}

/// Asserts that the only waiter left in the queue keys of `key` on `server` is `only`.
#[track_caller]
fn assert_only_trace_is(server: &RedisServer, key: &str, only: &str, after: &str) {
    let [queue, alive, waiters] = traces(server, key);
    let only = vec![only.to_owned()];
    assert!(
        queue == only && alive == only && waiters == only,
        "{after}, the queue keys hold only the bystander {only:?}: \
         queue {queue:?}, alive {alive:?}, waiters {waiters:?}"
    );
}

/// Waits until `len` waiters are queued for `key` on every one of `servers`.
#[track_caller]
fn wait_queued(servers: &[RedisServer], key: &str, len: usize) {
    let mut seen = Vec::new();
    let lens = |seen: &mut Vec<usize>| {
        *seen = servers.iter().map(|s| queue_len(s, key)).collect();
        seen.iter().all(|&n| n == len)
    };
    let deadline = Instant::now() + SOON;
    while !lens(&mut seen) {
        assert!(
            Instant::now() < deadline,
            "{len} waiters never queued for '{key}' on every node; queue lengths: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to HEARTBEAT and SOON) until no node has a queue key of lock `key`.
#[track_caller]
fn assert_queue_keys_go(servers: &[RedisServer], key: &str) {
    let parts = ["queue", "alive", "waiters"].map(|part| key_of(key, part));
    let left = || -> Vec<String> {
        servers
            .iter()
            .flat_map(|s| parts.iter().filter(|k| s.exists(k)).cloned())
            .collect()
    };
    let deadline = Instant::now() + HEARTBEAT + SOON;
    wait_for("the queue keys to go", HEARTBEAT + 2 * SOON, || {
        let left = left();
        assert!(
            left.is_empty() || Instant::now() < deadline,
            "queue keys outlived every waiter by more than the heartbeat: {left:?}"
        );
        left.is_empty()
    });
}

/// `rlock acquire -k KEY -t 30s` on `servers`: the holder the queue forms behind. Returns the token.
fn hold(servers: &[RedisServer], key: &str) -> String {
    let out = by_hand("acquire", servers, key, &["-t", "30s"]);
    out.assert_success();
    out.stdout.trim().to_owned()
}

/// Releases the holder's lease taken by [`hold`].
fn release(servers: &[RedisServer], key: &str, token: &str) {
    by_hand("release", servers, key, &["--token", token]).assert_success();
}

/// One waiter's turn under the lock, as its command recorded it.
#[derive(Debug, Clone, Copy)]
struct Grant {
    /// The waiter's arrival rank (0 = first).
    n: usize,
    /// `RLOCK_FENCE`.
    fence: u64,
    /// When the command started and ended (µs since the epoch).
    start: u128,
    end: u128,
}

/// Waiters whose commands log their turns to one file (see the module doc).
struct Log {
    dir: tempfile::TempDir,
}

impl Log {
    fn new() -> Self {
        Log { dir: temp_dir() }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn text(&self) -> String {
        fs::read_to_string(self.path()).unwrap_or_default()
    }

    /// `rlock -k KEY -w 60s -t 2s -- sh -c ...` on `servers`: waiter `n`, whose command logs its
    /// start and end and holds the lock for `hold_s` seconds in between.
    fn waiter(&self, servers: &[RedisServer], key: &str, n: usize, hold_s: &str) -> Rlock {
        let log = self.path();
        let log = log.display();
        let script = format!(
            "echo \"start {n} $RLOCK_FENCE $(date +%s%6N)\" >> {log}; sleep {hold_s}; \
             echo \"end {n} $(date +%s%6N)\" >> {log}"
        );
        on(servers).args([
            "-k", key, "-w", "60s", "-t", "2s", "--", "sh", "-c", &script,
        ])
    }

    /// Starts waiters `0..n` in that order, each only once the one before is queued everywhere.
    fn queue_up(
        &self,
        servers: &[RedisServer],
        key: &str,
        n: usize,
        hold_s: &str,
    ) -> Vec<RunningRlock> {
        (0..n)
            .map(|i| {
                let waiter = self.waiter(servers, key, i, hold_s).spawn();
                wait_queued(servers, key, i + 1);
                waiter
            })
            .collect()
    }

    /// How many commands have started so far.
    fn starts(&self) -> usize {
        self.text()
            .lines()
            .filter(|l| l.starts_with("start "))
            .count()
    }

    /// The turns in the order they happened. Panics unless every start is followed by the end of
    /// the same command before the next start: two commands inside at once.
    #[track_caller]
    fn grants(&self) -> Vec<Grant> {
        let text = self.text();
        let fields = |line: &str| -> Vec<u128> {
            line.split(' ')
                .skip(1)
                .map(|f| f.parse().unwrap_or_else(|_| panic!("a number in {line:?}")))
                .collect()
        };
        let mut grants = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            assert!(
                line.starts_with("start "),
                "a start first: {line:?}\n{text}"
            );
            let start = fields(line);
            let n = usize::try_from(start[0]).expect("a rank");
            let end = lines
                .next()
                .unwrap_or_else(|| panic!("{n} never ended\n{text}"));
            assert!(
                end.starts_with(&format!("end {n} ")),
                "two commands inside at once: {line:?} then {end:?}\n{text}"
            );
            grants.push(Grant {
                n,
                fence: u64::try_from(start[1]).expect("a fence"),
                start: start[2],
                end: fields(end)[1],
            });
        }
        grants
    }
}

/// Asserts that each of the `n` waiters was granted exactly once; returns the arrival ranks in
/// grant order.
#[track_caller]
fn each_got_in_once(grants: &[Grant], n: usize) -> Vec<usize> {
    let order: Vec<usize> = grants.iter().map(|g| g.n).collect();
    let mut everyone = order.clone();
    everyone.sort_unstable();
    assert_eq!(
        everyone,
        (0..n).collect::<Vec<_>>(),
        "each waiter got in once"
    );
    order
}

/// Asserts that `grants` are one at a time by the clock too, and that their fences rise.
#[track_caller]
fn assert_one_at_a_time_with_rising_fences(grants: &[Grant]) {
    for pair in grants.windows(2) {
        let [a, b] = pair else { unreachable!() };
        assert!(
            b.start >= a.end,
            "{} started before {} ended: {pair:?}",
            b.n,
            a.n
        );
        assert!(b.fence > a.fence, "fences rise with every grant: {pair:?}");
    }
}

/// The grant order's distance from the arrival order: (largest, mean) of |grant rank - arrival|.
fn displacement(order: &[usize]) -> (usize, f64) {
    let moves: Vec<usize> = order
        .iter()
        .enumerate()
        .map(|(r, &n)| r.abs_diff(n))
        .collect();
    let max = moves.iter().copied().max().unwrap_or(0);
    let total = u32::try_from(moves.iter().sum::<usize>()).expect("small");
    let count = u32::try_from(moves.len().max(1)).expect("small");
    (max, f64::from(total) / f64::from(count))
}

/// Fifty waiters queue up in a known order behind a holder, which then releases: each gets the
/// lock once, one at a time, with rising fences. Returns the grant order.
fn fifty_waiters_behind_a_holder(servers: &[RedisServer], key: &str) -> Vec<usize> {
    let log = Log::new();
    let token = hold(servers, key);
    let began = Instant::now();
    let mut waiters = log.queue_up(servers, key, 50, "0.01");
    let queued = began.elapsed();
    if let [one] = servers {
        let pids: Vec<Option<i32>> = waiters.iter().map(|w| Some(w.pid())).collect();
        assert_eq!(
            queued_pids(one, key),
            pids,
            "the node queues them by arrival"
        );
    }
    let released = Instant::now();
    release(servers, key, &token);
    for waiter in &mut waiters {
        waiter.wait().assert_success().assert_stderr_empty();
    }
    let through = released.elapsed();
    let grants = log.grants();
    assert_one_at_a_time_with_rising_fences(&grants);
    let order = each_got_in_once(&grants, 50);
    assert_queue_keys_go(servers, key);
    eprintln!(
        "50 waiters on {} node(s): queued in {queued:?}, all through {through:?} after the release",
        servers.len()
    );
    order
}

#[test]
fn fifty_waiters_are_granted_in_arrival_order_one_at_a_time_on_one_node() {
    let redis = [RedisServer::start()];
    let order = fifty_waiters_behind_a_holder(&redis, "train");
    assert_eq!(order, (0..50).collect::<Vec<_>>(), "granted by arrival");
}

#[test]
fn fifty_waiters_all_get_through_one_at_a_time_on_three_nodes() {
    let redis = RedisServer::start_many(3);
    let order = fifty_waiters_behind_a_holder(&redis, "train");
    let (max, mean) = displacement(&order);
    eprintln!(
        "50 waiters on 3 nodes: rank displacement max {max}, mean {mean:.2}; order {order:?}"
    );
}

#[test]
fn a_head_waiter_killed_by_sigkill_holds_the_queue_up_for_its_heartbeat_at_most() {
    let redis = [RedisServer::start()];
    let key = "gpu";
    let log = Log::new();
    let token = hold(&redis, key);
    let mut waiters = log.queue_up(&redis, key, 5, "0.01");
    let head = &mut waiters[0];
    let head_id = id_of(&redis[0], key, head.pid());
    assert_eq!(
        queue_ids(&redis[0], key)[0],
        head_id,
        "the first arrival heads the queue"
    );
    head.signal(Signal::SIGKILL);
    head.wait();
    // Read after the kill: nobody renews it any more, so this is when the node may drop it.
    let heartbeat = score(&redis[0], &key_of(key, "alive"), &head_id)
        .unwrap_or_else(|| panic!("the dead head is still in {}", key_of(key, "alive")));
    let heartbeat_us = heartbeat * 1000;

    let released = node_time_us(&redis[0]);
    release(&redis, key, &token);
    for waiter in &mut waiters[1..] {
        waiter.wait().assert_success().assert_stderr_empty();
    }
    let grants = log.grants();
    assert_one_at_a_time_with_rising_fences(&grants);
    let order: Vec<usize> = grants.iter().map(|g| g.n).collect();
    assert_eq!(
        order,
        [1, 2, 3, 4],
        "the rest keep their order; the dead head never runs"
    );
    let next = grants[0].start;
    assert!(
        next >= released,
        "the next waiter started before the release"
    );
    // Scores are whole milliseconds, and the node drops a waiter once its score has passed.
    assert!(
        next + 5_000 >= heartbeat_us,
        "the next waiter started {} ms before the dead head's heartbeat expired",
        (heartbeat_us - next) / 1000
    );
    let delay = Duration::from_micros(u64::try_from(next - released).expect("sane"));
    assert!(
        delay < HEARTBEAT + SLACK,
        "the next grant came {delay:?} after the release"
    );
    let after_expiry = next.saturating_sub(heartbeat_us) / 1000;
    eprintln!(
        "head killed by SIGKILL: next grant {delay:?} after the release, {after_expiry} ms after \
         the head's heartbeat expired"
    );
    assert_queue_keys_go(&redis, key);
}

#[test]
fn waiters_that_time_out_or_are_interrupted_leave_no_trace() {
    let redis = [RedisServer::start()];
    let key = "deploy";
    let token = hold(&redis, key);
    // A bystander queued first shows that each waiter takes away its own traces and no others.
    let mut bystander = on(&redis)
        .args(["-k", key, "-w", "60s", "--", "true"])
        .spawn();
    wait_queued(&redis, key, 1);
    let bystander_id = id_of(&redis[0], key, bystander.pid());

    let mut timed_out = on(&redis)
        .args(["-k", key, "-w", "300ms", "--", "echo", "ran"])
        .spawn();
    let mut seen_queued = false;
    wait_for("the 300 ms waiter to end", SOON, || {
        seen_queued |= queue_len(&redis[0], key) == 2;
        timed_out.wait_timeout(Duration::ZERO).is_some()
    });
    let out = timed_out.wait();
    out.assert_code(75).assert_stdout_eq("");
    assert!(seen_queued, "the 300 ms waiter joined the queue\n{out}");
    assert_only_trace_is(&redis[0], key, &bystander_id, "after a wait ran out");

    for (signal, status) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut waiter = on(&redis)
            .args(["-k", key, "-w", "60s", "--", "echo", "ran"])
            .spawn();
        wait_queued(&redis, key, 2);
        id_of(&redis[0], key, waiter.pid());
        waiter.signal(signal);
        waiter.wait().assert_code(status).assert_stdout_eq("");
        assert_only_trace_is(&redis[0], key, &bystander_id, &format!("after {signal}"));
    }

    // A waiter killed by SIGKILL cannot clean up: its traces expire with its heartbeat.
    let mut killed = on(&redis)
        .args(["-k", key, "-w", "60s", "--", "true"])
        .spawn();
    wait_queued(&redis, key, 2);
    killed.signal(Signal::SIGKILL);
    killed.wait();
    bystander.signal(Signal::SIGTERM);
    bystander.wait().assert_code(143);
    release(&redis, key, &token);
    assert_queue_keys_go(&redis, key);
    on(&redis)
        .args(["-k", key, "--", "true"])
        .output()
        .assert_success();
}

#[test]
fn a_run_without_wait_is_refused_while_the_free_lock_is_the_head_waiters_turn() {
    let redis = [RedisServer::start()];
    let key = "deploy";
    let log = Log::new();
    let token = hold(&redis, key);
    let mut waiters = log.queue_up(&redis, key, 2, "0.01");
    let head_id = id_of(&redis[0], key, waiters[0].pid());
    // Frozen, the head cannot take its turn, and its last heartbeat stays good for 2 s at least.
    waiters[0].signal(Signal::SIGSTOP);
    wait_for("the head waiter to stop", SOON, || {
        proc_state(waiters[0].pid()) == Some('T')
    });
    let paused = Instant::now();
    release(&redis, key, &token);
    assert!(!redis[0].exists(&key_of(key, "")), "the lock is free");

    on(&redis)
        .args(["-k", key, "--", "echo", "jumped"])
        .output()
        .assert_code(75)
        .assert_stdout_eq("");
    by_hand("acquire", &redis, key, &["-t", "2s"]).assert_code(75);

    // The premise, checked after the fact: the head was still queued and alive, nobody held.
    let heartbeat = score(&redis[0], &key_of(key, "alive"), &head_id);
    let now_ms = node_time_us(&redis[0]) / 1000;
    assert!(
        heartbeat.is_some_and(|ms| ms > now_ms),
        "the frozen head's heartbeat lasts ({heartbeat:?} ms, now {now_ms} ms)"
    );
    assert!(!redis[0].exists(&key_of(key, "")), "nobody took the lock");
    assert_eq!(log.starts(), 0, "no waiter ran while the head was frozen");

    let frozen = paused.elapsed();
    waiters[0].signal(Signal::SIGCONT);
    for waiter in &mut waiters {
        waiter.wait().assert_success();
    }
    let grants = log.grants();
    assert_one_at_a_time_with_rising_fences(&grants);
    // Within 1.5 s the head's heartbeat (3 s, renewed at least every second) has not expired.
    if frozen < Duration::from_millis(1500) {
        let order: Vec<usize> = grants.iter().map(|g| g.n).collect();
        assert_eq!(
            order,
            [0, 1],
            "the head resumes its turn (frozen {frozen:?})"
        );
    }
    assert_queue_keys_go(&redis, key);
}

#[test]
fn status_shows_the_queue_length_and_its_head() {
    let redis = [RedisServer::start()];
    let key = "deploy";
    let status = |format: &str| by_hand("status", &redis, key, &["--format", format]);
    let token = hold(&redis, key);
    let plain = status("plain");
    plain.assert_success();
    assert!(!plain.stdout.contains("waiting:"), "nobody waits\n{plain}");
    let v = json_of(&status("json"));
    assert_eq!(
        v["queue"],
        serde_json::json!({"length": 0, "head": null}),
        "{v}"
    );

    let since = node_time_us(&redis[0]) / 1_000_000;
    let mut waiters: Vec<RunningRlock> = ["true", "sleep"]
        .iter()
        .enumerate()
        .map(|(i, program)| {
            let waiter = on(&redis)
                .args(["-k", key, "-w", "60s", "--", program, "0"])
                .spawn();
            wait_queued(&redis, key, i + 1);
            waiter
        })
        .collect();
    let host = nix::unistd::gethostname()
        .expect("the host name")
        .to_string_lossy()
        .into_owned();
    let shows_head = |length: usize, pid: i32, program: &str| {
        let plain = status("plain");
        plain.assert_success();
        let line = plain
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("waiting:"))
            .unwrap_or_else(|| panic!("a waiting line\n{plain}"));
        let expected =
            format!("  waiting:      {length} (next: {host} pid {pid} ({program}), since ");
        assert!(
            line.starts_with(&expected) && line.ends_with(')'),
            "expected {expected:?}...\n{plain}"
        );
        let v = json_of(&status("json"));
        let queue = &v["queue"];
        assert_eq!(queue["length"], length, "{v}");
        let head = &queue["head"];
        assert_eq!(head["host"], host.as_str(), "{v}");
        assert_eq!(head["pid"], pid, "{v}");
        assert_eq!(head["command"], program, "{v}");
        let now = node_time_us(&redis[0]) / 1_000_000;
        assert!(
            head["since"]
                .as_u64()
                .is_some_and(|s| u128::from(s) + 1 >= since && u128::from(s) <= now),
            "since is when it started waiting, in Unix seconds: {v}"
        );
    };
    shows_head(2, waiters[0].pid(), "true");

    waiters[0].signal(Signal::SIGTERM);
    waiters[0].wait().assert_code(143);
    shows_head(1, waiters[1].pid(), "sleep");

    release(&redis, key, &token);
    waiters[1].wait().assert_success();
    let free = status("json");
    free.assert_code(3);
    let v: Value =
        serde_json::from_str(&free.stdout).unwrap_or_else(|e| panic!("JSON ({e})\n{free}"));
    assert_eq!(
        v["queue"],
        serde_json::json!({"length": 0, "head": null}),
        "{v}"
    );
}

#[test]
fn nodes_restarted_empty_in_the_middle_of_a_queue_cost_order_at_most() {
    let mut redis = RedisServer::start_many(3);
    let key = "train";
    let log = Log::new();
    let token = hold(&redis, key);
    let mut waiters = log.queue_up(&redis, key, 12, "0.1");
    release(&redis, key, &token);
    // Two nodes in turn: after the second restart only one node still has the first queue.
    let mut served = Vec::new();
    for (node, after) in [(1, 3), (0, 7)] {
        wait_for(&format!("{after} waiters to get in"), SOON, || {
            log.starts() >= after
        });
        redis[node].crash_restart();
        served.push(log.starts());
    }
    assert!(
        served[1] < 12,
        "the restarts came in the middle of the queue: after {served:?} grants"
    );
    let mut report = String::new();
    for waiter in &mut waiters {
        let out = waiter.wait();
        if out.code() != Some(0) {
            let _ = writeln!(report, "{out}");
        }
    }
    assert!(report.is_empty(), "every waiter gets through:\n{report}");
    let grants = log.grants();
    assert_one_at_a_time_with_rising_fences(&grants);
    let order = each_got_in_once(&grants, 12);
    let (max, mean) = displacement(&order);
    eprintln!(
        "nodes restarted after {served:?} of 12 grants: rank displacement max {max}, \
         mean {mean:.2}; order {order:?}"
    );
    assert_queue_keys_go(&redis, key);
}
