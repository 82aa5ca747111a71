//! `rlock run` on one Redis node: the command runs under the lease, and every way the lease or
//! the command can end is reported by exit status and one line on stderr.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{RedisServer, on, process_gone, rlock, temp_dir, wait_for, wait_for_file};
use crate::waiting::listeners;

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);

/// A command that writes its pid to `dir/pid`, signals readiness with `dir/ready`, then sleeps.
fn ready_then_sleep(dir: &std::path::Path) -> String {
    format!(
        "echo $$ > {0}/pid; echo ok > {0}/ready; exec sleep 300",
        dir.display()
    )
}

fn pid_in(dir: &std::path::Path) -> i32 {
    wait_for_file(dir.join("pid"), SOON)
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn token_and_fence_reach_the_command_and_success_is_silent() {
    let redis = RedisServer::start();
    let out = on(&redis)
        .args([
            "-k",
            "job",
            "-c",
            "echo $RLOCK_KEY $RLOCK_TOKEN $RLOCK_FENCE $RLOCK_REDIS",
        ])
        .output();
    out.assert_success().assert_stderr_empty();
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!(fields[0], "job");
    assert_eq!(fields[1].len(), 32, "token is 128 bits of hex: {out}");
    assert!(fields[2].parse::<u64>().is_ok(), "fence is a number: {out}");
    assert_eq!(fields[3], redis.url());
}

#[test]
fn the_lock_holds_the_commands_token_while_it_runs_and_is_released_after() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let script = format!(
        "echo $RLOCK_TOKEN > {0}/token; echo ok > {0}/ready; exec sleep 300",
        dir.path().display()
    );
    let mut holder = on(&redis).args(["-k", "job", "-c", &script]).spawn();
    wait_for_file(dir.path().join("ready"), SOON);
    let token = fs::read_to_string(dir.path().join("token")).unwrap();
    assert_eq!(redis.get("rlock:{job}").as_deref(), Some(token.trim()));
    let holder_record = redis.cmd(&["HGET", "rlock:{job}:holder", "command"]);
    assert_eq!(holder_record, redis::Value::BulkString(b"sh".to_vec()));
    holder.signal(Signal::SIGTERM);
    holder.wait().assert_code(143);
    assert!(!redis.exists("rlock:{job}"), "released on exit");
    assert!(
        !redis.exists("rlock:{job}:holder"),
        "holder record deleted with the lock"
    );
    on(&redis)
        .args(["-k", "job", "--", "true"])
        .output()
        .assert_success();
}

#[test]
fn fences_rise_across_runs_and_across_a_restart_that_lost_the_data() {
    let mut redis = RedisServer::start();
    let fence = |redis: &RedisServer| -> u64 {
        let out = on(redis)
            .args(["-k", "job", "-c", "echo $RLOCK_FENCE"])
            .output();
        out.assert_success();
        out.stdout.trim().parse().expect("a fence")
    };
    let first = fence(&redis);
    let second = fence(&redis);
    let third = fence(&redis);
    assert!(first < second && second < third, "{first} {second} {third}");
    redis.crash_restart();
    assert!(
        !redis.exists("rlock:{job}:fence"),
        "the restart lost the counter"
    );
    let after = fence(&redis);
    assert!(
        after > third,
        "fence after data loss {after} must exceed {third}"
    );
}

#[test]
fn the_commands_exit_status_passes_through() {
    let redis = RedisServer::start();
    on(&redis)
        .args(["-k", "a", "--", "sh", "-c", "exit 3"])
        .output()
        .assert_code(3);
    on(&redis)
        .args(["-k", "a", "-c", "kill -TERM $$"])
        .output()
        .assert_code(143);
    on(&redis)
        .args(["-k", "a", "-c", "kill -KILL $$"])
        .output()
        .assert_code(137);
}

#[test]
fn a_missing_command_exits_127_and_a_non_executable_one_126() {
    let redis = RedisServer::start();
    on(&redis)
        .args(["-k", "a", "--", "no-such-command-rlock"])
        .output()
        .assert_code(127)
        .assert_stderr_contains("rlock: command not found: 'no-such-command-rlock'");
    let dir = temp_dir();
    let file = dir.path().join("script");
    fs::write(&file, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    on(&redis)
        .args(["-k", "a", "--"])
        .arg(&file)
        .output()
        .assert_code(126)
        .assert_stderr_contains("cannot execute");
    assert!(
        !redis.exists("rlock:{a}"),
        "the lock is released when the command cannot start"
    );
}

#[test]
fn a_busy_lock_exits_75_at_once_and_e_changes_the_code() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let _holder = on(&redis)
        .args(["-k", "job", "-c", &ready_then_sleep(dir.path())])
        .spawn();
    wait_for_file(dir.path().join("ready"), SOON);

    let busy = on(&redis).args(["-k", "job", "--", "echo", "ran"]).output();
    busy.assert_code(75)
        .assert_stderr_contains("rlock: lock 'job' is held by someone else");
    assert_eq!(busy.stdout, "", "the command must not run");
    assert!(
        busy.elapsed < Duration::from_secs(2),
        "busy should fail fast: {busy}"
    );

    on(&redis)
        .args(["-E", "0", "-k", "job", "--", "true"])
        .output()
        .assert_code(0)
        .assert_stderr_empty();
    on(&redis)
        .args(["-E", "9", "-k", "job", "--", "true"])
        .output()
        .assert_code(9);
    on(&redis)
        .args(["-q", "-k", "job", "--", "true"])
        .output()
        .assert_code(75)
        .assert_stderr_empty();
}

#[test]
fn a_waiter_gets_the_lock_when_the_holder_exits() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let mut holder = on(&redis)
        .args(["-k", "job", "-c", &ready_then_sleep(dir.path())])
        .spawn();
    wait_for_file(dir.path().join("ready"), SOON);
    let mut waiter = on(&redis)
        .args(["-k", "job", "-w", "20s", "--", "echo", "ran"])
        .spawn();
    // Once the waiter listens, only the holder's release announcement can wake it this soon: its
    // next try of its own is a second away.
    wait_for("the waiter to listen", SOON, || {
        listeners(&redis, "job") == 1
    });
    let exiting = Instant::now();
    holder.signal(Signal::SIGTERM);
    holder.wait().assert_code(143);
    waiter.wait().assert_success().assert_stdout_eq("ran\n");
    assert!(
        exiting.elapsed() < Duration::from_millis(600),
        "the waiter got the lock {:?} after the holder was told to exit",
        exiting.elapsed()
    );
}

#[test]
fn deleting_the_key_stops_the_whole_process_group_and_exits_124() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let script = format!(
        "sleep 300 & echo $! > {0}/bg; echo $$ > {0}/pid; echo ok > {0}/ready; wait",
        dir.path().display()
    );
    let mut run = on(&redis)
        .args(["-t", "1s", "-k", "job", "-c", &script])
        .spawn();
    wait_for_file(dir.path().join("ready"), SOON);
    let background: i32 = fs::read_to_string(dir.path().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let shell = pid_in(dir.path());
    redis.del("rlock:{job}");
    let out = run
        .wait_timeout(SOON)
        .expect("rlock notices the loss within a few extensions");
    out.assert_code(124)
        .assert_stderr_contains("rlock: lost lock 'job'");
    assert!(process_gone(shell), "the command was stopped");
    assert!(
        process_gone(background),
        "its background job was stopped too"
    );
}

#[test]
fn a_paused_redis_gets_the_command_killed_before_the_lease_expires_on_the_server() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let mut run = on(&redis)
        .args(["-t", "2s", "-k", "job", "-c", &ready_then_sleep(dir.path())])
        .spawn();
    let child = pid_in(dir.path());
    wait_for_file(dir.path().join("ready"), SOON);
    // The server's expiry as it stands; with the server paused, no extension can move it.
    let pttl = u64::try_from(redis.pttl("rlock:{job}")).expect("the lock has a TTL");
    let server_expiry = Instant::now() + Duration::from_millis(pttl);
    redis.pause();
    wait_for("the command to be stopped", SOON, || process_gone(child));
    let stopped_at = Instant::now();
    assert!(
        stopped_at < server_expiry,
        "the command outlived the lease by {:?}",
        stopped_at - server_expiry
    );
    let out = run
        .wait_timeout(SOON)
        .expect("rlock exits after stopping the command");
    out.assert_code(124)
        .assert_stderr_contains("no extension succeeded in time");
}

#[test]
fn signals_are_forwarded_and_the_lock_is_kept_until_the_command_exits() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let script = format!(
        "trap 'echo usr1 >> {0}/log' USR1; trap 'echo term >> {0}/log; exit 7' TERM; \
         echo ok > {0}/ready; while :; do sleep 0.01; done",
        dir.path().display()
    );
    let mut run = on(&redis).args(["-k", "job", "-c", &script]).spawn();
    wait_for_file(dir.path().join("ready"), SOON);
    run.signal(Signal::SIGUSR1);
    wait_for("the command to see USR1", SOON, || {
        fs::read_to_string(dir.path().join("log")).is_ok_and(|l| l.contains("usr1"))
    });
    assert!(
        redis.exists("rlock:{job}"),
        "still held after a forwarded signal"
    );
    run.signal(Signal::SIGTERM);
    let out = run.wait();
    out.assert_code(7);
    assert!(
        !out.stderr.contains("rlock:"),
        "rlock itself says nothing: {out}"
    );
    assert!(!redis.exists("rlock:{job}"));
}

#[test]
fn leftover_background_jobs_are_stopped_before_the_release() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    // The leftover ignores TERM, so only the SIGKILL after --kill-after stops it.
    let script = format!(
        "(trap '' TERM; exec sleep 300) & echo $! > {}/bg; exit 0",
        dir.path().display()
    );
    let out = on(&redis)
        .args([
            "-t",
            "2s",
            "--kill-after",
            "200ms",
            "-k",
            "job",
            "-c",
            &script,
        ])
        .output();
    out.assert_success();
    let background: i32 = fs::read_to_string(dir.path().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        process_gone(background),
        "the leftover was killed before rlock exited"
    );
    assert!(!redis.exists("rlock:{job}"));
}

#[test]
fn an_unreachable_redis_exits_69_at_once_naming_the_node() {
    let out = rlock()
        .args(["-r", "redis://127.0.0.1:1", "-k", "job", "--", "true"])
        .output();
    out.assert_code(69).assert_stderr_contains(
        "rlock: cannot reach Redis for lock 'job': redis://127.0.0.1:1: connection refused",
    );
    assert!(out.elapsed < Duration::from_secs(2), "{out}");
}

#[test]
fn a_redis_that_accepts_but_never_answers_exits_69_in_bounded_time() {
    let redis = RedisServer::start();
    redis.pause();
    let out = on(&redis).args(["-k", "job", "--", "true"]).output();
    out.assert_code(69)
        .assert_stderr_contains("no answer within 1s");
    // One request timeout (1 s for the default 30 s TTL), then one for the undo of a grant that
    // may have landed.
    assert!(out.elapsed < Duration::from_secs(3), "{out}");
}

#[test]
fn a_wrong_password_exits_69_without_printing_it() {
    let redis = RedisServer::start();
    redis.cmd(&["CONFIG", "SET", "requirepass", "right-pass"]);
    let url = format!("redis://:wrong-pass@127.0.0.1:{}", redis.port());
    let out = rlock()
        .args(["-r", &url, "-k", "job", "--", "true"])
        .output();
    out.assert_code(69)
        .assert_stderr_contains("authentication failed");
    assert!(out.stderr.contains("redis://:***@127.0.0.1"), "{out}");
    assert!(!out.stderr.contains("wrong-pass"), "password leaked: {out}");
}

#[test]
fn bad_input_is_one_line_naming_the_value_and_exit_2() {
    let long_key = "k".repeat(1025);
    let cases: &[(&[&str], &str)] = &[
        (&["-k", "x", "--ttl", "banana", "--", "true"], "'banana'"),
        (&["-k", "x", "--ttl", "0s", "--", "true"], "--ttl 0s"),
        (&["-k", "x", "--ttl", "1000d", "--", "true"], "out of range"),
        (&["-k", "", "--", "true"], "lock name"),
        (&["-k", &long_key, "--", "true"], "1025 bytes"),
        (
            &["-k", "x", "--kill-signal", "NOPE", "--", "true"],
            "'NOPE'",
        ),
        (&["-k", "x"], "no command given"),
        (
            &["-k", "x", "-r", "http://h:1", "--", "true"],
            "'http://h:1'",
        ),
        (
            &["-k", "x", "-t", "2s", "--kill-after", "5s", "--", "true"],
            "--kill-after 5s does not fit",
        ),
        (
            &["-k", "x", "--no-such-flag", "--", "true"],
            "--no-such-flag",
        ),
    ];
    for (args, needle) in cases {
        let out = rlock().args(*args).output();
        out.assert_code(2).assert_stderr_contains(needle);
        assert!(out.stderr.starts_with("rlock: "), "{out}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out}");
    }
}
