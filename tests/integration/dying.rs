//! rlock's own death and its own pipes: whatever happens to rlock, the command and everything it
//! started is dead before the lease can expire, and a lease is never left held because rlock could
//! not write a line.

use std::fs;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::support::{
    FullPipe, RedisServer, closed_pipe, on, proc_state, process_gone, rlock, temp_dir, wait_for,
    wait_for_file,
};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);

/// A command whose work outlives its leader's children: a background job that ignores the stop
/// signal, and a pipeline. It writes every pid to `dir/pids`, then `dir/ready`.
fn a_family(dir: &std::path::Path) -> String {
    format!(
        "(trap '' TERM; exec sleep 300) & echo $! >> {0}/pids; \
         sleep 301 | cat & echo $! >> {0}/pids; \
         echo $$ >> {0}/pids; echo ok > {0}/ready; wait",
        dir.display()
    )
}

/// The pids `a_family` wrote, once it is ready.
fn family_pids(dir: &std::path::Path) -> Vec<i32> {
    wait_for_file(dir.join("ready"), SOON);
    let pids: Vec<i32> = fs::read_to_string(dir.join("pids"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    pids
}

/// Kills rlock with `signal` while `a_family` runs; returns how long the family outlived it.
fn family_outlives_rlock_killed_by(signal: Signal) -> Duration {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let run = on(&redis)
        .args(["-t", "30s", "--kill-after", "300ms", "-k", "job"])
        .args(["-c", &a_family(dir.path())])
        .current_dir(dir.path()) // where a core dump would land
        .spawn();
    let pids = family_pids(dir.path());
    let killed = Instant::now();
    run.signal(signal);
    wait_for("every process of the command to die", SOON, || {
        pids.iter().all(|&pid| process_gone(pid))
    });
    assert!(
        redis.exists("rlock:{job}"),
        "a killed rlock cannot release: the lease runs out on the server"
    );
    killed.elapsed()
}

#[test]
fn killing_rlock_outright_stops_every_descendant_even_one_that_ignores_the_signal() {
    let outlived = family_outlives_rlock_killed_by(Signal::SIGKILL);
    assert!(
        outlived < Duration::from_secs(3),
        "the last descendant died {outlived:?} after rlock"
    );
}

#[test]
fn rlock_aborting_stops_every_descendant_too() {
    let outlived = family_outlives_rlock_killed_by(Signal::SIGABRT);
    assert!(
        outlived < Duration::from_secs(3),
        "the last descendant died {outlived:?} after rlock"
    );
}

#[test]
fn a_stopped_rlock_has_its_command_killed_before_the_lease_expires_on_the_server() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let mut run = on(&redis)
        .args(["-t", "1s", "-k", "job", "-c", &a_family(dir.path())])
        .spawn();
    let pids = family_pids(dir.path());
    run.signal(Signal::SIGSTOP);
    wait_for("the lease to expire on the server", SOON, || {
        !redis.exists("rlock:{job}")
    });
    for pid in &pids {
        assert!(
            process_gone(*pid),
            "process {pid} of the command outlived the lease of a stopped rlock"
        );
    }
    run.signal(Signal::SIGCONT);
    run.wait_timeout(SOON)
        .expect("rlock exits once resumed")
        .assert_code(124);
}

#[test]
fn rlock_stopped_past_the_deadline_says_so_rather_than_blaming_redis() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let ready = dir.path().join("ready");
    let mut run = on(&redis)
        .args(["-t", "1s", "-k", "cz", "--", "sh", "-c"])
        .arg(format!("sleep 30 & echo $$ > {}; wait", ready.display()))
        .spawn();
    let leader: i32 = wait_for_file(&ready, SOON).trim().parse().unwrap();
    run.signal(Signal::SIGSTOP);
    // The guardian kills the group at the deadline; the stopped rlock cannot reap the leader.
    wait_for("the guardian to kill the command", SOON, || {
        matches!(proc_state(leader), None | Some('Z'))
    });
    // As a user would, keep rlock stopped a while longer before resuming it.
    std::thread::sleep(Duration::from_secs(1));
    run.signal(Signal::SIGCONT);
    let out = run.wait_timeout(SOON).expect("rlock exits once resumed");
    out.assert_code(124)
        .assert_stderr_contains("lost lock 'cz': rlock was stopped")
        .assert_stderr_contains("the command was stopped");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("unreachable"), "{}", out.stderr);
    assert!(!out.stderr.contains("no extension"), "{}", out.stderr);
    assert_eq!(
        killpg(Pid::from_raw(leader), None),
        Err(Errno::ESRCH),
        "the command's group outlived rlock"
    );
}

#[test]
fn a_closed_stderr_neither_kills_rlock_nor_leaves_the_lease_held() {
    let redis = RedisServer::start();
    let out = on(&redis)
        .args(["-v", "-k", "job", "--", "true"])
        .stderr(closed_pipe())
        .output();
    out.assert_success();
    assert!(!redis.exists("rlock:{job}"), "the lease was left held");
}

#[test]
fn a_blocked_stderr_does_not_stop_the_lease_keeper() {
    let redis = RedisServer::start();
    let stderr = FullPipe::new();
    // -v logs every extension; with TTL 1s the keeper extends every ~333 ms while the command
    // runs three TTLs.
    let mut run = on(&redis)
        .args(["-v", "-t", "1s", "-k", "job", "--", "sleep", "3"])
        .stderr(stderr.writer())
        .spawn();
    let out = run
        .wait_timeout(Duration::from_secs(15))
        .expect("rlock exits although nobody reads its stderr");
    out.assert_success();
    assert!(!redis.exists("rlock:{job}"), "the lease was left held");
}

#[test]
fn acquire_that_cannot_print_its_token_releases_the_lease_and_says_so() {
    let redis = RedisServer::start();
    let out = rlock()
        .args(["acquire", "-r", &redis.url(), "-k", "job"])
        .stdout(closed_pipe())
        .output();
    out.assert_code(125)
        .assert_stderr_contains("could not print its token")
        .assert_stderr_contains("released it");
    assert!(
        !redis.exists("rlock:{job}"),
        "a lease whose token was lost was left held"
    );
}

#[test]
fn status_keeps_its_exit_status_when_nobody_reads_its_output() {
    let redis = RedisServer::start();
    rlock()
        .args(["acquire", "-r", &redis.url(), "-k", "job"])
        .output()
        .assert_success();
    for format in ["plain", "json"] {
        rlock()
            .args([
                "status",
                "-r",
                &redis.url(),
                "-k",
                "job",
                "--format",
                format,
            ])
            .stdout(closed_pipe())
            .output()
            .assert_code(0);
    }
}

/// A command that records every `SIGTERM` it gets in `dir/terms` and goes on (in `wait`, so
/// that its trap runs as each signal arrives), after writing its pid to `dir/ready`.
fn a_counter_of_stop_signals(dir: &std::path::Path) -> String {
    format!(
        "trap 'echo term >> {0}/terms' TERM; echo $$ > {0}/ready; \
         while :; do sleep 300 & wait; done",
        dir.display()
    )
}

/// The `SIGTERM`s `a_counter_of_stop_signals` recorded.
fn stop_signals(dir: &std::path::Path) -> usize {
    fs::read_to_string(dir.join("terms"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// The pid of rlock `rlock`'s guardian (`rlock __guard`, one of its children), once it runs.
fn guardian_of(rlock: i32, other_than: Option<i32>) -> i32 {
    let mut found = None;
    wait_for("rlock's guardian to run", SOON, || {
        found = fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            (parent == rlock && cmdline.starts_with(b"rlock\0__guard\0") && Some(pid) != other_than)
                .then_some(pid)
        });
        found.is_some()
    });
    found.expect("found")
}

#[test]
fn killing_rlock_sends_the_command_its_stop_signal_once_not_twice() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let run = on(&redis)
        .args(["-t", "30s", "--kill-after", "1s", "-k", "job"])
        .args(["-c", &a_counter_of_stop_signals(dir.path())])
        .spawn();
    let leader: i32 = wait_for_file(dir.path().join("ready"), SOON)
        .trim()
        .parse()
        .unwrap();
    run.signal(Signal::SIGKILL);
    wait_for(
        "the guardian to kill the command after its grace",
        SOON,
        || process_gone(leader),
    );
    // A second SIGTERM would end a trap's own commands half-way (they are in the group), and a
    // program that takes a second Ctrl-C as "quit now" would skip its cleanup.
    assert_eq!(
        stop_signals(dir.path()),
        1,
        "the command got --kill-signal more than once after rlock died"
    );
}

#[test]
fn a_guardian_killed_outright_is_replaced_and_still_stops_the_command_when_rlock_dies() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let run = on(&redis)
        .args(["-t", "30s", "--kill-after", "300ms", "-k", "job"])
        .args(["-c", &a_family(dir.path())])
        .spawn();
    let pids = family_pids(dir.path());
    let guardian = guardian_of(run.pid(), None);
    nix::sys::signal::kill(Pid::from_raw(guardian), Signal::SIGKILL).unwrap();
    let replacement = guardian_of(run.pid(), Some(guardian));
    assert!(!process_gone(replacement));
    wait_for("rlock to say its guardian was replaced", SOON, || {
        run.stderr_so_far()
            .contains("guardian process was killed; started another")
    });
    run.signal(Signal::SIGKILL);
    wait_for("every process of the command to die", SOON, || {
        pids.iter().all(|&pid| process_gone(pid))
    });
}
