//! Messages that say what to do: a mistyped flag names the right one, a command without `--`
//! is told where to go, a flag beats the other option's environment variable, and `status`
//! prints numbers as JSON numbers.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{RedisServer, RunOutput, free_port, rlock, temp_dir, url_file};

/// Asserts that `out` is a usage error: exit 2 and exactly the one line `expected`.
#[track_caller]
fn refused_with(out: &RunOutput, expected: &str) {
    out.assert_code(2);
    assert_eq!(out.stderr, format!("{expected}\n"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn a_mistyped_flag_is_refused_naming_the_flag_it_resembles() {
    let out = rlock()
        .args(["--ttll", "5s", "-k", "x", "--", "true"])
        .output();
    refused_with(
        &out,
        "rlock: unexpected argument '--ttll'; did you mean '--ttl'?",
    );
    let out = rlock()
        .args(["status", "-k", "x", "--frmat", "json"])
        .output();
    refused_with(
        &out,
        "rlock: unexpected argument '--frmat'; did you mean '--format'?",
    );
}

#[test]
fn a_mistyped_value_or_subcommand_is_refused_naming_the_one_it_resembles() {
    let out = rlock()
        .args(["status", "-k", "x", "--format", "jsn"])
        .output();
    refused_with(
        &out,
        "rlock: invalid value 'jsn' for '--format <FORMAT>' [possible values: plain, json]; \
         did you mean 'json'?",
    );
    let out = rlock().args(["stauts", "-k", "x"]).output();
    refused_with(
        &out,
        "rlock: unexpected argument 'stauts'; did you mean 'rlock status'?",
    );
}

#[test]
fn a_command_without_the_double_dash_is_told_to_go_after_it() {
    for (argv, invoked) in [
        (&["-k", "x", "echo", "hi"][..], "rlock"),
        (&["run", "-k", "x", "echo", "hi"], "rlock run"),
    ] {
        let out = rlock().args(argv).output();
        refused_with(
            &out,
            &format!(
                "rlock: unexpected argument 'echo'; put the command after '--': \
                 {invoked} [OPTIONS] -- echo ..."
            ),
        );
    }
}

#[test]
fn a_subcommand_after_options_is_told_to_come_first() {
    let out = rlock().args(["-k", "x", "status"]).output();
    refused_with(
        &out,
        "rlock: unexpected argument 'status'; a subcommand comes first: rlock status [OPTIONS]",
    );
}

// A flag beats the other option's environment variable

#[test]
fn a_redis_flag_wins_over_rlock_redis_file() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let nowhere = url_file(dir.path(), &[format!("redis://127.0.0.1:{}", free_port())]);
    let out = rlock()
        .env("RLOCK_REDIS_FILE", &nowhere)
        .args(["-r", &redis.url(), "-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_success()
        .assert_stdout_eq("ran\n")
        .assert_stderr_empty();
    assert!(
        redis.exists("rlock:{job}:fence"),
        "the lease was taken on -r's node"
    );
}

#[test]
fn a_redis_file_flag_wins_over_rlock_redis() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let file = url_file(dir.path(), &[redis.url()]);
    let out = rlock()
        .env("RLOCK_REDIS", format!("redis://127.0.0.1:{}", free_port()))
        .arg("--redis-file")
        .arg(&file)
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_success()
        .assert_stdout_eq("ran\n")
        .assert_stderr_empty();
    assert!(
        redis.exists("rlock:{job}:fence"),
        "the lease was taken on the file's node"
    );
}

#[test]
fn both_redis_variables_or_both_redis_flags_are_refused_by_the_names_given() {
    let dir = temp_dir();
    let file = url_file(dir.path(), &["redis://127.0.0.1:1".to_owned()]);
    let out = rlock()
        .env("RLOCK_REDIS", "redis://127.0.0.1:1")
        .env("RLOCK_REDIS_FILE", &file)
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    refused_with(
        &out,
        "rlock: RLOCK_REDIS and RLOCK_REDIS_FILE are both set: unset one, or choose with \
         --redis or --redis-file",
    );
    let out = rlock()
        .args(["-r", "redis://127.0.0.1:1", "--redis-file"])
        .arg(&file)
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    refused_with(
        &out,
        "rlock: --redis and --redis-file cannot be used together: name the nodes one way",
    );
}

// status --format json: numbers as numbers

#[test]
fn status_json_gives_the_holders_pid_and_since_as_numbers() {
    let redis = RedisServer::start();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rlock()
        .args(["acquire", "-r", &redis.url(), "-k", "job", "-t", "30s"])
        .output()
        .assert_success();
    let out = rlock()
        .args([
            "status",
            "-r",
            &redis.url(),
            "-k",
            "job",
            "--format",
            "json",
        ])
        .output();
    out.assert_success().assert_stderr_empty();
    let v: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let holder = &v["holder"];
    // acquire names its caller as the holder: this test process.
    assert_eq!(
        holder["pid"].as_u64(),
        Some(u64::from(std::process::id())),
        "{v}"
    );
    let since = holder["since"]
        .as_u64()
        .unwrap_or_else(|| panic!("since is a number: {v}"));
    assert!(since >= before && since <= before + 60, "{v}");
    assert!(
        holder["host"].is_string() && holder["command"].is_string(),
        "{v}"
    );
    assert!(
        v["expires_in_ms"].as_u64().is_some_and(|ms| ms <= 30_000),
        "{v}"
    );
    assert!(
        v["nodes"][0]["ttl_ms"]
            .as_u64()
            .is_some_and(|ms| ms <= 30_000),
        "{v}"
    );
    assert!(v["held"].is_boolean() && v["mine"].is_boolean(), "{v}");
}

#[test]
fn json_gives_a_fence_beyond_2_to_the_53_exactly_as_a_string() {
    let redis = RedisServer::start();
    // A counter at 2^53, as a node whose clock once ran far ahead would leave it.
    redis.set("rlock:{job}:fence", "9007199254740992");
    let acquired = rlock()
        .args([
            "acquire",
            "-r",
            &redis.url(),
            "-k",
            "job",
            "--format",
            "json",
        ])
        .output();
    acquired.assert_success();
    let v: Value = serde_json::from_str(&acquired.stdout).expect("one JSON object");
    assert_eq!(v["fence"], "9007199254740993", "{v}");
    let out = rlock()
        .args([
            "status",
            "-r",
            &redis.url(),
            "-k",
            "job",
            "--format",
            "json",
        ])
        .output();
    out.assert_success();
    let v: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["fence"], "9007199254740993", "{v}");
    assert_eq!(v["nodes"][0]["fence"], "9007199254740993", "{v}");
}
