//! Signals sent to rlock: none that would end a process may end rlock with the lease held and the
//! command running. Each is forwarded to the command's group, the lease is kept until the command
//! is gone, then released, and rlock exits as the command did (128+N for a death by signal N),
//! real-time signals included; a signal during an acquisition ends it with 128+N.

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::libc;
use nix::sys::signal::Signal;

use crate::support::{RedisServer, catches, on, process_gone, temp_dir, wait_for, wait_for_file};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);

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
        let mut run = on(&redis)
            .args(["-k", "job", "-c", &script])
            .current_dir(dir.path()) // where a core dump (SIGXCPU) would land
            .spawn();
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

#[test]
fn a_signal_during_a_slow_acquisition_wins_over_the_attempt_and_exits_128_plus_n() {
    let redis = RedisServer::start();
    // Connections are still accepted, but nothing is answered: the attempt waits for its deadline.
    redis.pause();
    let mut run = on(&redis).args(["-k", "job", "--", "true"]).spawn();
    wait_for("rlock to catch SIGTERM", SOON, || {
        catches(run.pid(), Signal::SIGTERM as i32)
    });
    wait_for("rlock's attempt to reach the server", SOON, || {
        connected_to(redis.port())
    });
    run.signal(Signal::SIGTERM);
    let out = run.wait_timeout(SOON).expect("rlock ends promptly");
    out.assert_code(died_of(libc::SIGTERM));
    assert!(
        !out.stderr.contains("Interrupted system call"),
        "the interrupted attempt was reported: {out}"
    );
}

/// Whether some TCP connection to 127.0.0.1:`port` is established (the test holds none itself).
fn connected_to(port: u16) -> bool {
    let table = fs::read_to_string(Path::new("/proc/net/tcp")).unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
    })
}
