//! rlock's own death and its own pipes: whatever happens to rlock, the command and everything it
//! started is dead before the lease can expire, and a lease is never left held because rlock could
//! not write a line.

use std::time::Duration;

use crate::support::{FullPipe, RedisServer, Rlock, closed_pipe, rlock};

/// `rlock -r <server>`.
fn on(redis: &RedisServer) -> Rlock {
    rlock().arg("-r").arg(redis.url())
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
