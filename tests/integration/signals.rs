//! Signals sent to rlock: none that would end a process may end rlock with the lease held and the
//! command running. Each is forwarded to the command's group, the lease is kept until the command
//! is gone, then released, and rlock exits as the command did (128+N for a death by signal N),
//! real-time signals included; a signal during an acquisition ends it with 128+N.

use std::fs;
use std::time::Duration;

use nix::libc;

use crate::support::{RedisServer, Rlock, process_gone, rlock, temp_dir, wait_for_file};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);

/// `rlock -r <server>`.
fn on(redis: &RedisServer) -> Rlock {
    rlock().arg("-r").arg(redis.url())
}

/// 128+N, the status of a death by signal `n`.
fn died_of(n: i32) -> i32 {
    128 + n
}

/// The signal number of `SIGRTMIN+k`.
fn rt(k: i32) -> i32 {
    libc::SIGRTMIN() + k
}

#[test]
fn signals_that_would_end_rlock_are_forwarded_and_the_lock_released_once_the_group_is_gone() {
    let redis = RedisServer::start();
    for signal in [
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGXCPU,
        libc::SIGUSR1,
        rt(0),
        rt(3),
        libc::SIGRTMAX(),
    ] {
        let dir = temp_dir();
        let script = format!(
            "sleep 30 & echo $! > {0}/bg; echo ok > {0}/ready; wait",
            dir.path().display()
        );
        let mut run = on(&redis).args(["-k", "job", "-c", &script]).spawn();
        wait_for_file(dir.path().join("ready"), SOON);
        let background: i32 = fs::read_to_string(dir.path().join("bg"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        run.signal_number(signal);
        let out = run
            .wait_timeout(SOON)
            .unwrap_or_else(|| panic!("rlock still runs {SOON:?} after signal {signal}"));
        out.assert_code(died_of(signal));
        assert!(
            process_gone(background),
            "signal {signal}: the command's background job outlived rlock"
        );
        assert!(
            !redis.exists("rlock:{job}"),
            "signal {signal}: the lock was left held: {out}"
        );
    }
}

#[test]
fn a_real_time_signal_the_command_traps_leaves_the_lock_held_until_the_command_exits() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let signal = rt(3);
    let script = format!(
        "trap 'echo got > {0}/log' {signal}; echo ok > {0}/ready; \
         while [ ! -e {0}/done ]; do sleep 0.01; done; exit 7",
        dir.path().display()
    );
    let mut run = on(&redis).args(["-k", "job", "-c", &script]).spawn();
    wait_for_file(dir.path().join("ready"), SOON);
    run.signal_number(signal);
    wait_for_file(dir.path().join("log"), SOON);
    assert!(
        redis.exists("rlock:{job}"),
        "the lock is kept while the command runs on"
    );
    fs::write(dir.path().join("done"), "").unwrap();
    run.wait_timeout(SOON)
        .expect("rlock exits with its command")
        .assert_code(7);
    assert!(!redis.exists("rlock:{job}"));
}

#[test]
fn a_command_that_dies_of_a_real_time_signal_is_reported_at_once_as_128_plus_n() {
    let redis = RedisServer::start();
    let signal = rt(3);
    let mut run = on(&redis)
        .args(["-k", "job", "-c", &format!("kill -{signal} $$")])
        .spawn();
    let out = run
        .wait_timeout(SOON)
        .expect("rlock sees its command die of a real-time signal");
    out.assert_code(died_of(signal));
    assert!(!redis.exists("rlock:{job}"), "{out}");
}
