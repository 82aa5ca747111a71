//! Leases by hand: `acquire`, `extend`, `release` and `status`, on one node and on three, and the
//! README's script example run exactly as written.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{RedisServer, rlock, temp_dir, wait_for};

const SOON: Duration = Duration::from_secs(5);

fn token_of(servers: &[RedisServer], key: &str, args: &[&str]) -> String {
    let out = rlock()
        .arg("acquire")
        .on(servers)
        .args(["-k", key])
        .args(args)
        .output();
    out.assert_success().assert_stderr_empty();
    out.stdout.trim().to_owned()
}

#[test]
fn acquire_prints_the_token_that_extend_and_release_take() {
    let redis = [RedisServer::start()];
    let token = token_of(&redis, "job", &[]);
    assert_eq!(token.len(), 32);
    assert_eq!(redis[0].get("rlock:{job}"), Some(token.clone()));
    rlock()
        .arg("extend")
        .on(&redis)
        .args(["-k", "job", "--token", &token])
        .output()
        .assert_success();
    rlock()
        .arg("release")
        .on(&redis)
        .args(["-k", "job", "--token", &token])
        .output()
        .assert_success();
    assert!(!redis[0].exists("rlock:{job}"));
}

#[test]
fn acquire_json_parses_and_names_the_nodes_without_passwords() {
    let redis = [RedisServer::start()];
    let out = rlock()
        .arg("acquire")
        .on(&redis)
        .args(["-k", "job", "-t", "10s", "--format", "json"])
        .output();
    out.assert_success();
    let v: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["key"], "job");
    assert_eq!(v["token"].as_str(), redis[0].get("rlock:{job}").as_deref());
    assert!(
        v["fence"]
            .as_str()
            .and_then(|f| f.parse::<u64>().ok())
            .is_some(),
        "the fence is a decimal string: {v}"
    );
    assert_eq!(v["ttl_ms"], 10_000);
    assert!(
        v["validity_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 5000 && ms < 10_000),
        "{v}"
    );
    assert_eq!(v["nodes"], serde_json::json!([redis[0].url()]));
}

#[test]
fn shell_output_survives_hostile_keys_without_executing_anything() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    let marker = dir.path().join("pwned");
    for key in [
        "it's".to_owned(),
        "two words".to_owned(),
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        "ünïcödé ✓".to_owned(),
        "\"double\" \\ back".to_owned(),
    ] {
        let acquired = rlock()
            .arg("acquire")
            .on(&redis)
            .args(["-k", &key, "--format", "shell"])
            .output();
        acquired.assert_success();
        let script = format!(
            "{}\nprintf '%s\\n' \"$RLOCK_KEY\" \"$RLOCK_TOKEN\" \"$RLOCK_FENCE\"",
            acquired.stdout
        );
        let shell = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        let printed = String::from_utf8_lossy(&shell.stdout);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.first().copied(), Some(key.as_str()), "{acquired}");
        assert_eq!(lines[1].len(), 32, "{printed}");
        assert!(lines[2].parse::<u64>().is_ok(), "{printed}");
        assert!(!marker.exists(), "the key was executed: {key}");
        rlock()
            .arg("release")
            .on(&redis)
            .args(["-k", &key, "--token", lines[1]])
            .output()
            .assert_success();
    }
}

#[test]
fn extend_keeps_a_lease_past_its_original_ttl() {
    let redis = [RedisServer::start()];
    let started = Instant::now();
    let token = token_of(&redis, "job", &["-t", "300ms"]);
    rlock()
        .arg("extend")
        .on(&redis)
        .args(["-k", "job", "-t", "10s", "--token", &token])
        .output()
        .assert_success();
    wait_for("the original TTL to pass", SOON, || {
        started.elapsed() > Duration::from_millis(400)
    });
    assert_eq!(
        redis[0].get("rlock:{job}"),
        Some(token.clone()),
        "still held after the original TTL"
    );
    assert!(redis[0].pttl("rlock:{job}") > 5000);
    assert!(
        redis[0].pttl("rlock:{job}:holder") > 5000,
        "the holder record is extended with it"
    );
}

#[test]
fn a_wrong_or_expired_token_neither_extends_nor_releases_the_current_holders_lock() {
    let redis = [RedisServer::start()];
    // 1s, not the shortest lease: a 100ms lease gives each request 10ms, which a loaded machine
    // can miss.
    let stale = token_of(&redis, "job", &["-t", "1s"]);
    wait_for("the first lease to expire", SOON, || {
        !redis[0].exists("rlock:{job}")
    });
    let current = token_of(&redis, "job", &["-t", "10s"]);
    let pttl_before = redis[0].pttl("rlock:{job}");

    for token in [stale.as_str(), "0123456789abcdef0123456789abcdef"] {
        rlock()
            .arg("extend")
            .on(&redis)
            .args(["-k", "job", "-t", "1h", "--token", token])
            .output()
            .assert_code(3)
            .assert_stderr_contains("rlock: cannot extend lock 'job'");
        rlock()
            .arg("release")
            .on(&redis)
            .args(["-k", "job", "--token", token])
            .output()
            .assert_code(3)
            .assert_stderr_contains("nothing was deleted");
    }
    assert_eq!(
        redis[0].get("rlock:{job}"),
        Some(current),
        "the current holder keeps its lock"
    );
    assert!(
        redis[0].pttl("rlock:{job}") <= pttl_before,
        "and its TTL was not extended"
    );
}

#[test]
fn status_reports_held_and_free_with_the_holder_but_never_the_token() {
    let redis = [RedisServer::start()];
    rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job"])
        .output()
        .assert_code(3);
    let token = token_of(&redis, "job", &["-t", "20s"]);

    let plain = rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job"])
        .output();
    plain.assert_success();
    assert!(plain.stdout.starts_with("lock 'job' is held\n"), "{plain}");
    assert!(
        plain
            .stdout
            .contains(&format!("pid {}", std::process::id())),
        "the holder is the caller: {plain}"
    );
    assert!(
        !plain.stdout.contains(&token),
        "status printed the token: {plain}"
    );

    let json = rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job", "--format", "json"])
        .output();
    json.assert_success();
    assert!(
        !json.stdout.contains(&token),
        "status printed the token: {json}"
    );
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["held"], true);
    assert_eq!(v["mine"], false);
    assert_eq!(v["holder"]["pid"], std::process::id());
    assert!(
        v["expires_in_ms"].as_u64().is_some_and(|ms| ms > 10_000),
        "{v}"
    );

    let mine = rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job", "--format", "json", "--token", &token])
        .output();
    assert_eq!(
        serde_json::from_str::<Value>(&mine.stdout).unwrap()["mine"],
        true
    );

    rlock()
        .arg("release")
        .on(&redis)
        .args(["-k", "job", "--token", &token])
        .output()
        .assert_success();
    let free = rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job"])
        .output();
    free.assert_code(3);
    assert!(free.stdout.starts_with("lock 'job' is free\n"), "{free}");
    rlock()
        .args(["status", "-r", "redis://127.0.0.1:1", "-k", "job"])
        .output()
        .assert_code(69);
}

#[test]
fn leases_by_hand_work_on_three_nodes() {
    let redis = RedisServer::start_many(3);
    let token = token_of(&redis, "job", &["-t", "10s"]);
    assert!(
        redis
            .iter()
            .all(|r| r.get("rlock:{job}").as_deref() == Some(token.as_str()))
    );
    rlock()
        .arg("extend")
        .on(&redis)
        .args(["-k", "job", "-t", "20s", "--token", &token])
        .output()
        .assert_success();
    assert!(redis.iter().all(|r| r.pttl("rlock:{job}") > 10_000));

    let status = rlock()
        .arg("status")
        .on(&redis)
        .args(["-k", "job", "--format", "json"])
        .output();
    status.assert_success();
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(3));

    rlock()
        .arg("acquire")
        .on(&redis)
        .args(["-k", "job"])
        .output()
        .assert_code(75);
    rlock()
        .arg("release")
        .on(&redis)
        .args(["-k", "job", "--token", &token])
        .output()
        .assert_success();
    assert!(redis.iter().all(|r| !r.exists("rlock:{job}")));
}

#[test]
fn a_command_under_rlock_run_can_extend_and_release_by_environment_alone() {
    let redis = [RedisServer::start()];
    let script = "$BIN extend -t 20s && $BIN status --format json && $BIN release";
    let out = rlock()
        .args(["-r", &redis[0].url(), "-k", "job", "-t", "5s", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_rlock"))
        .output();
    out.assert_success();
    assert!(
        out.stdout.contains("\"mine\":true"),
        "status saw the run's own lease: {out}"
    );
}

#[test]
fn the_readme_script_example_runs_as_written_and_stops_at_once_when_busy() {
    let redis = [RedisServer::start()];
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("<!-- readme-script")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has the marked script block");
    let dir = temp_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlock"), dir.path().join("rlock")).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_block = || {
        let out = std::process::Command::new("sh")
            .args(["-c", block])
            .env("PATH", &path)
            .env("RLOCK_REDIS", redis[0].url())
            .output()
            .expect("sh runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    let (code, stdout, stderr) = run_block();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(stdout.starts_with("extract with fence "), "{stdout}");
    assert!(!redis[0].exists("rlock:{nightly-etl}"), "released on exit");

    let token = token_of(&redis, "nightly-etl", &["-t", "30s"]);
    let (code, stdout, stderr) = run_block();
    assert_eq!(
        code,
        Some(75),
        "a busy lock ends the script: {stdout}\n{stderr}"
    );
    assert_eq!(stdout, "", "no step ran");
    assert_eq!(
        redis[0].get("rlock:{nightly-etl}"),
        Some(token),
        "the holder keeps its lock"
    );
}
