//! Cron features of run mode: `--min-hold`, `--max-time`, `--jitter`, and `-v` log lines.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{RedisServer, catches, on, wait_for};

const SOON: Duration = Duration::from_secs(5);

#[test]
fn min_hold_keeps_the_lock_after_a_quick_command_so_a_late_host_skips() {
    let redis = RedisServer::start();
    on(&redis)
        .args(["-k", "nightly", "--min-hold", "3s", "--", "true"])
        .output()
        .assert_success();
    let pttl = redis.pttl("rlock:{nightly}");
    assert!(
        pttl > 1000 && pttl <= 3000,
        "held for the rest of --min-hold, not the TTL: {pttl} ms"
    );
    let late = on(&redis)
        .args(["-E", "0", "-k", "nightly", "--", "echo", "ran again"])
        .output();
    late.assert_success().assert_stderr_empty();
    assert_eq!(late.stdout, "", "the late host skipped the job");
}

#[test]
fn min_hold_shorter_than_the_command_releases_as_usual() {
    let redis = RedisServer::start();
    on(&redis)
        .args(["-k", "nightly", "--min-hold", "100ms", "-c", "sleep 0.3"])
        .output()
        .assert_success();
    assert!(!redis.exists("rlock:{nightly}"));
}

#[test]
fn max_time_stops_a_hung_command_releases_and_exits_124_saying_why() {
    let redis = RedisServer::start();
    let out = on(&redis)
        .args(["-k", "hung", "--max-time", "300ms", "--", "sleep", "300"])
        .output();
    out.assert_code(124)
        .assert_stderr_contains("ran longer than --max-time 300ms");
    assert!(
        !out.stderr.contains("lost lock"),
        "a time limit is not a lost lease: {out}"
    );
    assert!(out.elapsed < Duration::from_secs(3), "{out}");
    assert!(!redis.exists("rlock:{hung}"));
}

#[test]
fn a_signal_during_jitter_ends_rlock_before_it_takes_the_lock() {
    let redis = RedisServer::start();
    let mut run = on(&redis)
        .args(["-k", "spread", "--jitter", "1h", "--", "true"])
        .spawn();
    wait_for("rlock to catch SIGTERM", SOON, || {
        catches(run.pid(), Signal::SIGTERM as i32)
    });
    run.signal(Signal::SIGTERM);
    run.wait_timeout(SOON)
        .expect("rlock ends promptly")
        .assert_code(143);
    assert!(!redis.exists("rlock:{spread}"));
}

#[test]
fn jitter_delays_the_first_attempt_by_a_random_time_below_its_bound() {
    let redis = RedisServer::start();
    // Five runs at once, each on its own key. Without the delay all five would be done within a
    // few ms; with it, the chance that all five draw less than 200 ms of 2 s is 1 in 100,000.
    let runs: Vec<_> = (0..5)
        .map(|n| {
            on(&redis)
                .args(["-k", &format!("spread{n}"), "--jitter", "2s", "--", "true"])
                .spawn()
        })
        .collect();
    let took: Vec<Duration> = runs
        .into_iter()
        .map(|mut run| {
            let out = run.wait();
            out.assert_success();
            assert!(out.elapsed < Duration::from_secs(4), "{out}");
            out.elapsed
        })
        .collect();
    assert!(
        took.iter().any(|&t| t >= Duration::from_millis(200)),
        "no run waited: {took:?}"
    );
}

#[test]
fn verbose_lines_carry_a_timestamp_the_key_and_the_event() {
    let redis = RedisServer::start();
    let out = on(&redis)
        .args(["-v", "-t", "1s", "-k", "story", "-c", "sleep 0.5"])
        .output();
    out.assert_success();
    for line in out.stderr.lines() {
        let rest = line
            .strip_prefix("rlock: ")
            .unwrap_or_else(|| panic!("no prefix: {line}"));
        let (stamp, rest) = rest.split_once(' ').unwrap();
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(rest.starts_with("[story] "), "{line}");
    }
    for event in ["acquired with fence", "extended", "released on 1 node(s)"] {
        assert!(out.stderr.contains(event), "no '{event}' line:\n{out}");
    }
}
