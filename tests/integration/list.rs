//! `rlock list` (issue 17): every lock held under the prefix, found with `SCAN` and judged by
//! majority as `status` judges one lock; on one node, a Redlock set and every primary of a Cluster.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::servers::{Cluster, add_minimal_acl_user, cluster_unavailable};
use crate::support::{RedisServer, RunOutput, by_hand, json_of, rlock, skip};

/// `rlock SUBCOMMAND -r URL... ARGS...`, run to completion.
fn on_all(subcommand: &str, servers: &[RedisServer], args: &[&str]) -> RunOutput {
    rlock().arg(subcommand).on(servers).args(args).output()
}

/// Takes lock `key` on `servers` for a minute, with `args` (`--shared`, `--limit 3`).
#[track_caller]
fn take(servers: &[RedisServer], key: &str, args: &[&str]) {
    by_hand("acquire", servers, key, &[&["-t", "1m"], args].concat()).assert_success();
}

/// The one JSON object a `list --format json` run that ended with `code` printed (`json_of` is
/// for runs that succeed).
#[track_caller]
fn json_with(out: &RunOutput, code: i32) -> Value {
    out.assert_code(code);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("one JSON object ({e})\n{out}"))
}

/// The line of the plain listing about lock `key` (the first column is the name).
#[track_caller]
fn line_of<'o>(out: &'o RunOutput, key: &str) -> &'o str {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no line for {key}\n{out}"))
}

/// The locks' names in a JSON listing, in order.
fn names(v: &Value) -> Vec<String> {
    v["locks"]
        .as_array()
        .expect("a list of locks")
        .iter()
        .map(|l| l["key"].as_str().expect("a name").to_owned())
        .collect()
}

#[test]
fn exclusive_shared_and_limited_locks_are_listed_each_on_one_line() {
    let server = [RedisServer::start()];
    take(&server, "deploy", &[]);
    take(&server, "dataset", &["--shared"]);
    take(&server, "dataset", &["--shared"]);
    take(&server, "nas-backup", &["--limit", "3"]);
    server[0].set("rlock:{used-before}:fence", "12");
    server[0].set("unrelated", "x");

    let out = on_all("list", &server, &[]);
    out.assert_success().assert_stderr_empty();
    assert_eq!(
        out.stdout.lines().count(),
        4,
        "a header and three locks\n{out}"
    );
    assert!(out.stdout.starts_with("LOCK "), "{out}");
    let deploy = line_of(&out, "deploy");
    for field in ["exclusive", " pid ", "Z "] {
        assert!(deploy.contains(field), "{field:?} in {deploy:?}");
    }
    assert!(line_of(&out, "dataset").contains("shared (2)"), "{out}");
    assert!(
        line_of(&out, "nas-backup").contains("limit 3 (1 held)"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("used-before"),
        "a fence counter alone is no held lock\n{out}"
    );
    assert!(!out.stdout.contains("NODES"), "one node: no NODES column");
}

#[test]
fn a_pattern_lists_only_the_locks_whose_names_match() {
    let server = [RedisServer::start()];
    for key in ["nightly-report", "nightly-backup", "deploy"] {
        take(&server, key, &[]);
    }
    let out = on_all("list", &server, &["nightly-*", "--format", "json"]);
    out.assert_success();
    assert_eq!(names(&json_of(&out)), ["nightly-backup", "nightly-report"]);
    let out = on_all("list", &server, &["[d]eploy", "--format", "json"]);
    assert_eq!(names(&json_of(&out)), ["deploy"]);
    on_all("list", &server, &["weekly-*"])
        .assert_code(3)
        .assert_stdout_eq("no lock is held under prefix 'rlock:' matching 'weekly-*'\n");
}

#[test]
fn json_gives_every_holder_with_its_record_ttl_and_fence() {
    let server = [RedisServer::start()];
    take(&server, "dataset", &["--shared"]);
    take(&server, "dataset", &["--shared"]);
    let acquired = on_all(
        "acquire",
        &server,
        &["-k", "deploy", "-t", "1m", "--format", "json"],
    );
    let (fence, token) = (
        json_of(&acquired)["fence"].clone(),
        json_of(&acquired)["token"].clone(),
    );
    let token = token.as_str().expect("acquire prints the token").to_owned();

    let out = on_all("list", &server, &["--format", "json"]);
    out.assert_success();
    let v = json_of(&out);
    assert_eq!(v["complete"], true);
    assert_eq!(v["prefix"], "rlock:");
    let [dataset, deploy] = v["locks"].as_array().expect("locks").as_slice() else {
        panic!("two locks: {v}");
    };
    assert_eq!(dataset["mode"], "shared");
    assert_eq!(dataset["holders"].as_array().map(Vec::len), Some(2));
    assert_eq!(deploy["key"], "deploy");
    assert_eq!(deploy["held"], true);
    assert_eq!(deploy["minority"], false);
    assert_eq!(deploy["fence"], fence);
    assert!(deploy["holder"]["pid"].is_u64(), "{deploy}");
    assert!(
        deploy["expires_in_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 30_000)
    );
    assert!(!out.stdout.contains(&token), "no token is printed");
}

#[test]
fn with_no_lock_held_it_exits_3() {
    let server = [RedisServer::start()];
    server[0].set("rlock:{used-before}:fence", "12");
    server[0].set("other:{job}", "x");
    let out = on_all("list", &server, &[]);
    out.assert_code(3).assert_stderr_empty();
    assert_eq!(out.stdout, "no lock is held under prefix 'rlock:'\n");
    let out = on_all("list", &server, &["--format", "json"]);
    assert_eq!(json_with(&out, 3)["locks"], serde_json::json!([]));
    let other = on_all("list", &server, &["--prefix", "other:", "--format", "json"]);
    assert_eq!(
        names(&json_of(&other)),
        ["job"],
        "another prefix, other locks"
    );
}

#[test]
fn a_name_with_control_characters_cannot_reach_the_terminal_as_them() {
    let server = [RedisServer::start()];
    server[0].set("rlock:{evil\u{1b}[31m\nx}", "planted by hand");
    let out = on_all("list", &server, &[]);
    out.assert_success();
    assert!(!out.stdout.contains('\u{1b}'), "{out}");
    assert!(line_of(&out, "evil?[31m?x").contains("exclusive"), "{out}");
    let out = on_all("list", &server, &["--format", "json"]);
    assert_eq!(
        names(&json_of(&out)),
        ["evil\u{1b}[31m\nx"],
        "JSON escapes them"
    );
}

#[test]
fn thousands_of_unrelated_keys_are_scanned_in_small_steps_and_never_with_keys() {
    let server = [RedisServer::start()];
    let pairs: Vec<String> = (0..5000)
        .flat_map(|i| [format!("cache:{i}"), "x".to_owned()])
        .collect();
    let mut mset = vec!["MSET"];
    mset.extend(pairs.iter().map(String::as_str));
    server[0].cmd(&mset);
    take(&server, "deploy", &[]);
    take(&server, "nas-backup", &["--limit", "2"]);

    let out = on_all("list", &server, &["--format", "json"]);
    out.assert_success();
    assert_eq!(names(&json_of(&out)), ["deploy", "nas-backup"]);
    let stats = String::from_utf8_lossy(&match server[0].cmd(&["INFO", "commandstats"]) {
        redis::Value::BulkString(b) => b,
        other => panic!("INFO is text: {other:?}"),
    })
    .into_owned();
    let calls = |command: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
    };
    assert!(
        calls("scan").is_some_and(|n| n >= 40),
        "about 100 keys a SCAN call\n{stats}"
    );
    assert_eq!(calls("keys"), None, "never KEYS");
}

#[test]
fn redlock_lists_a_lock_held_on_a_minority_as_not_held() {
    let servers = RedisServer::start_many(3);
    take(&servers, "job", &[]);
    // One node lost its copy: the lock is still held, by two nodes of three.
    servers[2].del("rlock:{job}");
    // A lease on one node only, as a run with the wrong node list leaves it.
    take(&servers[1..2], "stale", &[]);

    let out = on_all("list", &servers, &[]);
    out.assert_success().assert_stderr_empty();
    let job = line_of(&out, "job");
    assert!(job.contains("exclusive") && job.ends_with("2/3"), "{out}");
    let stale = line_of(&out, "stale");
    assert!(
        stale.contains("minority") && stale.ends_with("1/3"),
        "{out}"
    );

    let only = on_all("list", &servers, &["stale", "--format", "json"]);
    let v = json_with(&only, 3);
    assert_eq!(v["locks"][0]["held"], false);
    assert_eq!(v["locks"][0]["minority"], true);
    assert_eq!(v["locks"][0]["agreeing"], 1);
}

#[test]
fn a_node_down_leaves_a_list_with_a_warning_and_a_majority_down_exits_69() {
    let mut servers = RedisServer::start_many(3);
    take(&servers, "job", &[]);
    servers[2].kill();
    let out = on_all("list", &servers, &[]);
    out.assert_success()
        .assert_stderr_contains("warning: not read: redis://127.0.0.1:");
    assert!(line_of(&out, "job").ends_with("2/3"), "{out}");

    servers[1].kill();
    let out = on_all("list", &servers, &[]);
    out.assert_code(69)
        .assert_stderr_contains("cannot read the locks on a majority of Redis nodes (1 of 3");
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn a_paused_node_costs_one_timeout_not_one_per_lock() {
    let servers = RedisServer::start_many(3);
    let keys: Vec<String> = (0..12).map(|i| format!("job-{i}")).collect();
    for key in &keys {
        take(&servers, key, &[]);
    }
    servers[2].pause();
    // One second a request (the default TTL's tenth): one for the scan, none per lock after it.
    let out = on_all("list", &servers, &["--format", "json"]);
    servers[2].resume();
    out.assert_success()
        .assert_stderr_contains("no answer within 1s");
    assert_eq!(names(&json_of(&out)).len(), keys.len(), "{out}");
    assert!(
        out.elapsed < std::time::Duration::from_secs(6),
        "12 locks would take 12 timeouts if each asked the paused node\n{out}"
    );
    let node = &json_of(&out)["locks"][0]["nodes"][2];
    assert!(
        node["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{node}"
    );
}

#[test]
fn in_a_cluster_the_locks_on_every_primary_are_found() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    let seed = cluster.seed().url();
    let mut expected: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| cluster.lock_name_on(node, "job"))
        .collect();
    for name in &expected {
        rlock()
            .args(["acquire", "-r", &seed, "-k", name, "-t", "1m"])
            .output()
            .assert_success();
    }
    expected.sort();
    let out = rlock()
        .args(["list", "-r", &seed, "--format", "json"])
        .output();
    out.assert_success().assert_stderr_empty();
    assert_eq!(names(&json_of(&out)), expected);

    // The README's ACL: the minimal one, and +cluster|slots to find the primaries.
    for node in &cluster.nodes {
        add_minimal_acl_user(node, "pw");
    }
    let as_user = format!("redis://rlock:pw@{}", cluster.seed().addr());
    let as_user = || rlock().arg("list").env("RLOCK_REDIS", &as_user);
    let out = as_user().output();
    out.assert_code(69)
        .assert_stderr_contains("permission denied");
    for node in &cluster.nodes {
        node.cmd(&["ACL", "SETUSER", "rlock", "+cluster|slots"]);
    }
    let out = as_user().args(["--format", "json"]).output();
    out.assert_success().assert_stderr_empty();
    assert_eq!(names(&json_of(&out)), expected);

    // A primary that does not answer: the others' locks are listed, with a warning that the list
    // may miss some; and "none held" is never said while a primary is unread.
    let paused = &cluster.nodes[2];
    let pid = Pid::from_raw(i32::try_from(paused.pid()).expect("a pid"));
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP a cluster node");
    let out = rlock()
        .args(["list", "-r", &seed, "--format", "json"])
        .output();
    let _ = kill(pid, Signal::SIGCONT);
    out.assert_success().assert_stderr_contains(&format!(
        "warning: the list may miss locks: redis://127.0.0.1:{}: no answer within",
        paused.port()
    ));
    let found = names(&json_of(&out));
    let on_paused = cluster.lock_name_on(paused, "job");
    assert!(
        found.len() == 2 && !found.contains(&on_paused),
        "{found:?}\n{out}"
    );
    assert_eq!(json_of(&out)["complete"], false);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP a cluster node");
    let out = rlock().args(["list", "-r", &seed, "weekly-*"]).output();
    let _ = kill(pid, Signal::SIGCONT);
    out.assert_code(69)
        .assert_stderr_contains("cannot tell whether any lock is held");
    assert_eq!(out.stdout, "", "no 'no lock is held' either\n{out}");
}
