//! Operating rlock (issue 17): breaking a stale lock with `release --force`, and nested runs of
//! the same lock passing through instead of waiting on themselves.

use std::time::{Duration, Instant};

use crate::support::{RedisServer, RunOutput, by_hand, fence_in, json_of, on, wait_for};

/// The rlock binary under test, for commands that call rlock themselves.
const RLOCK: &str = env!("CARGO_BIN_EXE_rlock");

fn release_force_ends_a_stale_lease_everywhere_wakes_waiters_and_keeps_the_fence(
    servers: &[RedisServer],
) {
    let acquired = by_hand(
        "acquire",
        servers,
        "nightly",
        &["-t", "10m", "--format", "json"],
    );
    acquired.assert_success();
    let stale = fence_in(&json_of(&acquired));
    let mut waiter = on(servers)
        .args(["-k", "nightly", "-w", "1m", "--", "true"])
        .spawn();
    // The waiter has subscribed once it has tried twice; give it a moment by polling its state.
    wait_for("the waiter to wait", Duration::from_secs(5), || {
        servers[0].cmd(&["PUBSUB", "NUMSUB", "rlock:{nightly}:released"])
            != redis::Value::Array(vec![
                redis::Value::BulkString(b"rlock:{nightly}:released".to_vec()),
                redis::Value::Int(0),
            ])
    });

    let broke = Instant::now();
    let out = by_hand("release", servers, "nightly", &["--force"]);
    out.assert_success();
    assert!(
        out.stdout
            .starts_with("broke lock 'nightly': ended the lease of "),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("latest fence {stale}")),
        "{out}"
    );
    waiter.wait().assert_success();
    assert!(
        broke.elapsed() < Duration::from_secs(3),
        "the waiter was woken by the break, not by the 10-minute TTL: {:?}",
        broke.elapsed()
    );
    for server in servers {
        assert!(!server.exists("rlock:{nightly}"), "deleted on every node");
        assert!(
            server.exists("rlock:{nightly}:fence"),
            "the fence counter is kept"
        );
    }
    let next = by_hand("acquire", servers, "nightly", &["--format", "json"]);
    assert!(
        fence_in(&json_of(&next)) > stale,
        "a later grant's fence is above the broken lease's"
    );
}

#[test]
fn release_force_ends_a_stale_lease_on_one_node() {
    let servers = [RedisServer::start()];
    release_force_ends_a_stale_lease_everywhere_wakes_waiters_and_keeps_the_fence(&servers);
}

#[test]
fn release_force_ends_a_stale_lease_on_every_node_of_a_quorum() {
    let servers = RedisServer::start_many(3);
    release_force_ends_a_stale_lease_everywhere_wakes_waiters_and_keeps_the_fence(&servers);
}

#[test]
fn release_force_ends_every_slot_and_shared_hold_and_exits_3_when_nothing_is_held() {
    let servers = [RedisServer::start()];
    for _ in 0..2 {
        by_hand("acquire", &servers, "nas", &["--limit", "3"]).assert_success();
    }
    by_hand("acquire", &servers, "dataset", &["--shared"]).assert_success();
    let out = by_hand("release", &servers, "nas", &["--force"]);
    out.assert_success();
    assert!(out.stdout.contains("in slot 0 of "), "{out}");
    assert!(out.stdout.contains("in slot 1 of "), "{out}");
    let out = by_hand("release", &servers, "dataset", &["--force"]);
    out.assert_success();
    assert!(out.stdout.contains(" (shared) of "), "{out}");
    assert_eq!(
        servers[0].keys("rlock:*"),
        servers[0].keys("rlock:*:fence"),
        "only fence counters are left"
    );
    by_hand("release", &servers, "nas", &["--force"])
        .assert_code(3)
        .assert_stderr_contains("rlock: lock 'nas' is not held on any node; nothing was deleted");
}

#[test]
fn without_force_release_still_deletes_only_its_own_token() {
    let servers = [RedisServer::start()];
    by_hand("acquire", &servers, "deploy", &[]).assert_success();
    by_hand("release", &servers, "deploy", &["--token", "not-the-token"]).assert_code(3);
    assert!(
        servers[0].exists("rlock:{deploy}"),
        "someone else's lease stays"
    );
}

/// An outer `rlock -k job` whose command runs `rlock -k job` and `rlock -k other` and prints what
/// each saw: `outer F`, `inner F STATUS`, `other F`.
fn nested_runs(servers: &[RedisServer], before_inner: &str) -> RunOutput {
    let script = format!(
        r#"echo "outer $RLOCK_FENCE"
{before_inner}
"$0" -v -k job -- sh -c 'echo "inner $RLOCK_FENCE"; exit 7'
echo "inner-status $?"
"$0" -k other -- sh -c 'echo "other $RLOCK_FENCE"'"#
    );
    on(servers)
        .args(["-k", "job", "--", "sh", "-c", &script, RLOCK])
        .output()
}

/// The number after `label ` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{label} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no '{label} N' line in {text}"))
}

fn a_nested_run_of_the_same_lock_passes_through(servers: &[RedisServer]) {
    let out = nested_runs(servers, "");
    out.assert_success();
    let outer = number_after(&out.stdout, "outer");
    assert_eq!(
        number_after(&out.stdout, "inner"),
        outer,
        "the nested run works in the outer lease\n{out}"
    );
    assert_eq!(number_after(&out.stdout, "inner-status"), 7, "{out}");
    assert_ne!(
        number_after(&out.stdout, "other"),
        outer,
        "another lock is taken\n{out}"
    );
    out.assert_stderr_contains("the caller holds this lock (RLOCK_TOKEN)");
    assert!(
        !servers[0].exists("rlock:{job}"),
        "the outer run released it\n{out}"
    );
}

#[test]
fn a_nested_run_of_the_same_lock_passes_through_on_one_node() {
    a_nested_run_of_the_same_lock_passes_through(&[RedisServer::start()]);
}

#[test]
fn a_nested_run_of_the_same_lock_passes_through_on_a_quorum() {
    a_nested_run_of_the_same_lock_passes_through(&RedisServer::start_many(3));
}

#[test]
fn a_nested_run_after_the_outer_lease_was_lost_takes_the_lock_anew() {
    let servers = [RedisServer::start()];
    // An operator breaks the outer lease just before the nested run asks.
    let breaking = format!(
        "\"$0\" release -r {} -k job --force >/dev/null",
        servers[0].url()
    );
    let out = nested_runs(&servers, &breaking);
    let outer = number_after(&out.stdout, "outer");
    assert!(
        number_after(&out.stdout, "inner") > outer,
        "not passed through: a grant of its own, with a later fence\n{out}"
    );
    out.assert_stderr_contains("RLOCK_TOKEN no longer holds the lock: taking it as any other");
}
