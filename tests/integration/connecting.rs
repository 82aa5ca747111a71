//! Connecting to real deployments (issue 9): TLS with a private CA and mutual TLS, ACL users and
//! passwords, database numbers, URLs kept out of `ps` through `RLOCK_REDIS` and `--redis-file`,
//! Unix sockets, Sentinel (following a failover) and Cluster (following `MOVED` and `ASK`).
//!
//! Each test reads like the README's Connecting section: the URL an operator would write, the
//! outcome they would see. The servers come from `servers.rs`; the lock is always checked on the
//! server itself (through the fixture's own plain connection), so a test cannot pass by talking
//! to the wrong node. Every test that handles a password also asserts that rlock never prints it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::servers::{
    Cluster, SentinelSet, Server, TlsServer, UnixServer, acl_log, add_acl_user_without,
    add_minimal_acl_user, cluster_unavailable, minimal_acl_rules, plain_server, tls_unavailable,
};
use crate::support::{
    RedisServer, Rlock, RunOutput, RunningRlock, free_port, rlock, skip, temp_dir, wait_for_file,
};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(10);

/// The password of every password-protected fixture: distinctive, so a leak cannot hide.
const PASSWORD: &str = "Pa55-w0rd-xyzzy";

/// A command that saves `$RLOCK_TOKEN` and `$RLOCK_FENCE`, says it is ready, and sleeps until
/// stopped.
fn hold(dir: &Path) -> String {
    format!(
        "echo $RLOCK_TOKEN > {0}/token; echo $RLOCK_FENCE > {0}/fence; echo ok > {0}/ready; \
         exec sleep 300",
        dir.display()
    )
}

/// Waits until the command of [`hold`] is ready; returns its token and fence.
fn held(dir: &Path) -> (String, u64) {
    wait_for_file(dir.join("ready"), SOON);
    let read = |name: &str| fs::read_to_string(dir.join(name)).expect("written before ready");
    let fence = read("fence").trim().parse().expect("a numeric fence");
    (read("token").trim().to_owned(), fence)
}

/// Stops a holder spawned with [`hold`]: it exits 143 and releases.
fn stop(mut holder: RunningRlock) {
    holder.signal(Signal::SIGTERM);
    holder.wait().assert_code(143);
}

/// Asserts that `secret` appears in neither stdout nor stderr.
#[track_caller]
fn assert_hidden(out: &RunOutput, secret: &str) {
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "the password {secret:?} was printed\n{out}"
    );
}

/// Asserts that stderr is exactly one `rlock: ` line.
#[track_caller]
fn assert_one_line(out: &RunOutput) {
    assert!(
        out.stderr.starts_with("rlock: ") && out.stderr.lines().count() == 1,
        "expected one rlock: line on stderr\n{out}"
    );
}

/// `rlock SUBCOMMAND` with `RLOCK_REDIS=url` (the way to keep a password out of `ps`).
fn with_env_url(subcommand: &str, url: &str) -> Rlock {
    rlock().arg(subcommand).env("RLOCK_REDIS", url)
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn a_rediss_url_with_the_private_ca_runs_the_command_under_the_lock() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(false, None);
    let dir = temp_dir();
    let holder = rlock()
        .args(["-r", &tls.url(), "--tls-ca"])
        .arg(tls.certs.ca())
        .args(["-k", "job", "-c", &hold(dir.path())])
        .spawn();
    let (token, _) = held(dir.path());
    assert_eq!(tls.server.get("rlock:{job}"), Some(token));
    stop(holder);
    assert!(!tls.server.exists("rlock:{job}"), "released over TLS");
}

#[test]
fn tls_options_are_accepted_by_every_subcommand_and_from_the_environment() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(false, None);
    let ca = tls.certs.ca();
    let acquired = rlock()
        .args(["acquire", "-r", &tls.url(), "-k", "job", "--tls-ca"])
        .arg(&ca)
        .output();
    acquired.assert_success().assert_stderr_empty();
    let token = acquired.stdout.trim();
    assert_eq!(tls.server.get("rlock:{job}").as_deref(), Some(token));

    let by_env = |subcommand: &str| {
        with_env_url(subcommand, &tls.url())
            .env("RLOCK_TLS_CA", &ca)
            .args(["-k", "job", "--token", token])
            .output()
    };
    by_env("extend").assert_success().assert_stderr_empty();
    let status = by_env("status");
    status.assert_success();
    assert!(status.stdout.starts_with("lock 'job' is held"), "{status}");
    by_env("release").assert_success().assert_stderr_empty();
    assert!(!tls.server.exists("rlock:{job}"));
    rlock()
        .args(["status", "-r", &tls.url(), "-k", "job", "--tls-ca"])
        .arg(&ca)
        .output()
        .assert_code(3);
}

#[test]
fn a_certificate_from_an_untrusted_ca_exits_69_with_one_line_naming_the_node() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(false, Some(PASSWORD));
    let url = tls.url_with_password(PASSWORD);
    let shown = format!("rediss://:***@127.0.0.1:{}", tls.tls_port());
    // The system's roots (no --tls-ca), then an unrelated private CA.
    for ca in [None, Some(tls.certs.other_ca())] {
        let mut run = with_env_url("run", &url);
        if let Some(ca) = &ca {
            run = run.arg("--tls-ca").arg(ca);
        }
        let out = run.args(["-k", "job", "--", "echo", "ran"]).output();
        out.assert_code(69).assert_stderr_contains(&shown);
        assert_one_line(&out);
        assert!(
            out.stderr.to_lowercase().contains("certificate"),
            "the message says the certificate is the problem\n{out}"
        );
        assert_eq!(out.stdout, "", "the command must not run");
        assert_hidden(&out, PASSWORD);
    }
    assert!(!tls.server.exists("rlock:{job}"));
}

#[test]
fn mutual_tls_presents_the_client_certificate_and_fails_69_without_it() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(true, None);
    let (ca, cert, key) = (
        tls.certs.ca(),
        tls.certs.client_cert(),
        tls.certs.client_key(),
    );
    rlock()
        .args(["-r", &tls.url(), "-k", "job"])
        .arg("--tls-ca")
        .arg(&ca)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--", "echo", "ran"])
        .output()
        .assert_success()
        .assert_stdout_eq("ran\n");
    assert!(
        tls.server.exists("rlock:{job}:fence"),
        "it ran on this server"
    );
    with_env_url("status", &tls.url())
        .env("RLOCK_TLS_CA", &ca)
        .env("RLOCK_TLS_CERT", &cert)
        .env("RLOCK_TLS_KEY", &key)
        .args(["-k", "job"])
        .output()
        .assert_code(3);

    let refused = rlock()
        .args(["-r", &tls.url(), "-k", "job", "--tls-ca"])
        .arg(&ca)
        .args(["--", "echo", "ran"])
        .output();
    refused.assert_code(69);
    assert_one_line(&refused);
    assert_eq!(refused.stdout, "", "the command must not run");
}

#[test]
fn tls_insecure_connects_without_verifying_and_warns_unless_quiet() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(false, None);
    let out = rlock()
        .args([
            "-r",
            &tls.url(),
            "--tls-insecure",
            "-k",
            "job",
            "--",
            "echo",
            "ran",
        ])
        .output();
    out.assert_success()
        .assert_stdout_eq("ran\n")
        .assert_stderr_contains("--tls-insecure");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("rlock: warning:") && l.contains("--tls-insecure")),
        "{out}"
    );
    rlock()
        .args([
            "-q",
            "-r",
            &tls.url(),
            "--tls-insecure",
            "-k",
            "job",
            "--",
            "true",
        ])
        .output()
        .assert_success()
        .assert_stderr_empty();
}

// ---------------------------------------------------------------------------------------------
// ACL users, passwords and database numbers

/// `redis://rlock:PASSWORD@127.0.0.1:PORT`: the user of [`crate::servers::MINIMAL_ACL`].
fn acl_url(server: &Server) -> String {
    format!("redis://rlock:{PASSWORD}@127.0.0.1:{}", server.port())
}

#[test]
fn the_minimal_acl_lets_run_wait_acquire_extend_release_and_status_work() {
    let (server, _dir) = plain_server(None);
    add_minimal_acl_user(&server, PASSWORD);
    let url = acl_url(&server);

    let ran = with_env_url("run", &url)
        .args(["-k", "job", "-c", "echo $RLOCK_FENCE"])
        .output();
    ran.assert_success().assert_stderr_empty();
    assert!(ran.stdout.trim().parse::<u64>().is_ok(), "{ran}");

    let acquired = with_env_url("acquire", &url).args(["-k", "job"]).output();
    acquired.assert_success().assert_stderr_empty();
    let token = acquired.stdout.trim();
    assert_eq!(server.get("rlock:{job}").as_deref(), Some(token));
    let by_hand = |subcommand: &str, extra: &[&str]| {
        with_env_url(subcommand, &url)
            .args(["-k", "job", "--token", token])
            .args(extra)
            .output()
    };
    by_hand("extend", &["-t", "1m"]).assert_success();
    by_hand("status", &[]).assert_success();
    by_hand("status", &["--format", "json"]).assert_success();
    by_hand("release", &[]).assert_success();
    by_hand("status", &[]).assert_code(3);

    // --wait subscribes to the release channel, and wakes when the holder releases.
    let dir = temp_dir();
    let holder = with_env_url("run", &url)
        .args(["-k", "job", "-c", &hold(dir.path())])
        .spawn();
    held(dir.path());
    let mut waiter = with_env_url("run", &url)
        .args(["-k", "job", "-w", "30s", "--", "echo", "ran"])
        .spawn();
    wait_for_subscriber(&server, "rlock:{job}:released");
    stop(holder);
    waiter.wait().assert_success().assert_stdout_eq("ran\n");

    let denied = acl_log(&server);
    assert!(denied.is_empty(), "nothing was denied: {denied:?}");
}

/// Waits until some client has subscribed to `channel` on `server`.
fn wait_for_subscriber(server: &Server, channel: &str) {
    crate::support::wait_for("a subscriber to the release channel", SOON, || {
        let counts: Vec<redis::Value> = server.query(&["PUBSUB", "NUMSUB", channel]);
        counts.get(1) == Some(&redis::Value::Int(1))
    });
}

#[test]
fn the_minimal_acl_is_enough_for_redlock_over_three_nodes() {
    let servers: Vec<(Server, tempfile::TempDir)> = (0..3).map(|_| plain_server(None)).collect();
    for (server, _) in &servers {
        add_minimal_acl_user(server, PASSWORD);
    }
    let urls: Vec<String> = servers.iter().map(|(s, _)| acl_url(s)).collect();
    let urls = urls.join(",");
    with_env_url("run", &urls)
        .args(["-k", "job", "--", "true"])
        .output()
        .assert_success()
        .assert_stderr_empty();
    let acquired = with_env_url("acquire", &urls).args(["-k", "job"]).output();
    acquired.assert_success();
    let token = acquired.stdout.trim();
    for (server, _) in &servers {
        assert_eq!(server.get("rlock:{job}").as_deref(), Some(token));
    }
    with_env_url("release", &urls)
        .args(["-k", "job", "--token", token])
        .output()
        .assert_success();
    for (server, _) in &servers {
        let denied = acl_log(server);
        assert!(denied.is_empty(), "nothing was denied: {denied:?}");
    }
}

/// Uses lock `key` through `urls` the way rlock's users do: a shared lease by hand (listed with
/// `list`), two runs (a new fence counter, then an increment), a lease by hand (acquire, status,
/// extend), and a run that waits for it with `--wait`. Stops at the first step that fails.
fn exercise(urls: &str, key: &str) {
    let step = |subcommand: &str, args: &[&str]| {
        with_env_url(subcommand, urls)
            .args(["-k", key])
            .args(args)
            .output()
    };
    // Shared holders first, with leases that outlast a loaded machine's slowness: a sorted set of
    // leases and a hash of their records.
    let shared = step("acquire", &["--shared", "-t", "10s"]);
    let token = shared.stdout.trim();
    if shared.code() != Some(0)
        || step("status", &[]).code() != Some(0)
        || with_env_url("list", urls).arg(key).output().code() != Some(0)
        || step("extend", &["-t", "10s", "--token", token]).code() != Some(0)
        || step("release", &["--token", token]).code() != Some(0)
    {
        return;
    }
    for _ in 0..2 {
        if step("run", &["--", "true"]).code() != Some(0) {
            return;
        }
    }
    let acquired = step("acquire", &["-t", "300ms"]);
    let token = acquired.stdout.trim();
    if acquired.code() != Some(0)
        || step("status", &[]).code() != Some(0)
        || step("extend", &["-t", "300ms", "--token", token]).code() != Some(0)
    {
        return;
    }
    // Busy: the waiter subscribes, then takes the lock when the lease runs out.
    step("run", &["-w", "5s", "--", "true"]);
}

#[test]
fn every_rule_of_the_minimal_acl_is_needed() {
    let servers: Vec<(Server, tempfile::TempDir)> = (0..3).map(|_| plain_server(None)).collect();
    // UNSUBSCRIBE and PUNSUBSCRIBE are sent as a wait ends, often as rlock exits: not reliably
    // seen here, but granted so that a wait that ends in time is not logged as a denial.
    let rules: Vec<&str> = minimal_acl_rules()
        .into_iter()
        .filter(|rule| !["+unsubscribe", "+punsubscribe"].contains(rule))
        .collect();
    let users: Vec<String> = (0..rules.len()).map(|i| format!("without{i}")).collect();
    for (server, _) in &servers {
        for (user, rule) in users.iter().zip(&rules) {
            add_acl_user_without(server, user, rule, PASSWORD);
        }
    }
    let urls_of = |user: &str| {
        let urls: Vec<String> = servers
            .iter()
            .map(|(s, _)| format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", s.port()))
            .collect();
        urls.join(",")
    };
    // Without SCRIPT LOAD, only a server that has never seen the scripts shows the need: that
    // user goes first, alone; the others then run at once.
    let load = rules
        .iter()
        .position(|r| *r == "+script|load")
        .expect("+script|load is a rule");
    exercise(&urls_of(&users[load]), &users[load]);
    std::thread::scope(|scope| {
        for user in users.iter().filter(|u| **u != users[load]) {
            let urls = urls_of(user);
            scope.spawn(move || exercise(&urls, user));
        }
    });
    let denied: Vec<_> = servers.iter().flat_map(|(s, _)| acl_log(s)).collect();
    for (user, rule) in users.iter().zip(&rules) {
        assert!(
            denied.iter().any(|d| d.username == *user),
            "rlock worked without {rule}: the minimal ACL can lose it\ndenials: {denied:?}"
        );
    }
}

#[test]
fn a_requirepass_password_and_a_database_number_put_the_lock_in_that_database() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/2", server.port());
    let acquired = with_env_url("acquire", &url).args(["-k", "job"]).output();
    acquired.assert_success().assert_stderr_empty();
    let token = acquired.stdout.trim();
    assert_eq!(
        server.get_in_db(2, "rlock:{job}").as_deref(),
        Some(token),
        "the lock is in database 2"
    );
    assert!(!server.exists("rlock:{job}"), "and not in database 0");
    with_env_url("release", &url)
        .args(["-k", "job", "--token", token])
        .output()
        .assert_success();
    assert_eq!(server.get_in_db(2, "rlock:{job}"), None);
}

#[test]
fn a_wrong_or_missing_password_exits_69_and_is_never_printed() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    add_minimal_acl_user(&server, PASSWORD);
    let port = server.port();
    let wrong = "Wr0ng-pa55-plugh";
    for (url, shown) in [
        (
            format!("redis://:{wrong}@127.0.0.1:{port}"),
            format!("redis://:***@127.0.0.1:{port}"),
        ),
        (
            format!("redis://rlock:{wrong}@127.0.0.1:{port}"),
            format!("redis://rlock:***@127.0.0.1:{port}"),
        ),
        (
            format!("redis://127.0.0.1:{port}"),
            format!("redis://127.0.0.1:{port}"),
        ),
    ] {
        for subcommand in ["run", "status"] {
            let out = with_env_url(subcommand, &url)
                .args(["-k", "job"])
                .args(if subcommand == "run" {
                    &["--", "echo", "ran"][..]
                } else {
                    &[]
                })
                .output();
            out.assert_code(69).assert_stderr_contains(&shown);
            assert_one_line(&out);
            assert_hidden(&out, wrong);
            assert_hidden(&out, PASSWORD);
            assert_eq!(out.stdout, "", "nothing ran and no status was shown");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keeping passwords out of argv, and out of every message

/// Writes `lines` to `DIR/redis-urls` with `mode`; returns the path.
fn redis_file(dir: &Path, lines: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("redis-urls");
    fs::write(&path, lines).expect("write the URL file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod the URL file");
    path
}

#[test]
fn a_redis_file_readable_by_group_or_others_is_refused_with_exit_2() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    for mode in [0o644, 0o640, 0o604] {
        let file = redis_file(dir.path(), &format!("{}\n", redis.url()), mode);
        let out = rlock()
            .arg("--redis-file")
            .arg(&file)
            .args(["-k", "job", "--", "echo", "ran"])
            .output();
        out.assert_code(2).assert_stderr_contains("chmod 600");
        assert_one_line(&out);
        assert_eq!(out.stdout, "", "the command must not run");
    }
    assert!(!redis.exists("rlock:{job}:fence"), "nothing was acquired");
}

#[test]
fn a_private_redis_file_with_several_urls_gives_redlock_and_ignores_comments() {
    let redis = RedisServer::start_many(3);
    let dir = temp_dir();
    let text = format!(
        "# the lock's masters\n{}\n\n   \n# a comment between\n{}\n{}\n",
        redis[0].url(),
        redis[1].url(),
        redis[2].url()
    );
    let file = redis_file(dir.path(), &text, 0o600);
    let holder = rlock()
        .arg("--redis-file")
        .arg(&file)
        .args(["-k", "job", "-c", &hold(dir.path())])
        .spawn();
    let (token, _) = held(dir.path());
    for server in &redis {
        assert_eq!(server.get("rlock:{job}").as_deref(), Some(token.as_str()));
    }
    stop(holder);
    assert!(redis.iter().all(|r| !r.exists("rlock:{job}")));
}

#[test]
fn a_password_in_a_redis_file_or_rlock_redis_gives_no_warning() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let dir = temp_dir();
    let file = redis_file(dir.path(), &format!("{url}\n"), 0o600);
    rlock()
        .env("RLOCK_REDIS_FILE", &file)
        .args(["-k", "job", "--", "echo", "ran"])
        .output()
        .assert_success()
        .assert_stdout_eq("ran\n")
        .assert_stderr_empty();
    with_env_url("run", &url)
        .args(["-k", "job", "--", "echo", "ran"])
        .output()
        .assert_success()
        .assert_stdout_eq("ran\n")
        .assert_stderr_empty();
    assert!(
        server.exists("rlock:{job}:fence"),
        "both ran on this server"
    );
}

#[test]
fn a_command_under_run_reaches_its_lock_by_environment_when_the_urls_come_from_a_file() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let dir = temp_dir();
    let file = redis_file(dir.path(), &format!("{url}\n"), 0o600);
    // As in a systemd unit or crontab that sets RLOCK_REDIS_FILE for every rlock it runs.
    let out = rlock()
        .env("RLOCK_REDIS_FILE", &file)
        .env("BIN", env!("CARGO_BIN_EXE_rlock"))
        .args(["-k", "job", "-c", "\"$BIN\" extend && \"$BIN\" status"])
        .output();
    out.assert_success();
    assert!(out.stdout.starts_with("lock 'job' is held"), "{out}");
    assert_hidden(&out, PASSWORD);
}

#[test]
fn a_url_that_does_not_parse_is_refused_without_printing_its_password() {
    // Unescaped '/', '?' and '#' in a password are a common mistake; the message must still
    // mask the password, wherever the URL parser gave up.
    for password in ["Pa55/w0rd-xyzzy", "Pa55?w0rd-xyzzy", "Pa55#w0rd-xyzzy"] {
        let url = format!("redis://rlock:{password}@127.0.0.1:6380");
        let out = with_env_url("run", &url)
            .args(["-k", "job", "--", "echo", "ran"])
            .output();
        out.assert_code(2);
        assert_one_line(&out);
        assert_hidden(&out, password);
        assert_hidden(&out, "w0rd-xyzzy");
    }
}

#[test]
fn a_password_on_the_command_line_works_with_a_warning_that_ps_shows_it() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let out = rlock()
        .args(["-r", &url, "-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_success().assert_stdout_eq("ran\n");
    assert_one_line(&out);
    out.assert_stderr_contains("rlock: warning:")
        .assert_stderr_contains("ps");
    assert!(
        out.stderr.contains("RLOCK_REDIS") || out.stderr.contains("--redis-file"),
        "the warning says what to use instead\n{out}"
    );
    assert_hidden(&out, PASSWORD);
}

#[test]
fn a_connect_failure_never_prints_the_password() {
    let port = free_port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let shown = format!("redis://:***@127.0.0.1:{port}");
    for subcommand in ["run", "acquire", "status"] {
        let out = with_env_url(subcommand, &url)
            .args(["-k", "job"])
            .args(if subcommand == "run" {
                &["--", "true"][..]
            } else {
                &[]
            })
            .output();
        out.assert_code(69).assert_stderr_contains(&shown);
        assert_hidden(&out, PASSWORD);
    }
    // Redlock lists every failed node.
    let (second, third) = (free_port(), free_port());
    let urls = format!(
        "{url},redis://u:{PASSWORD}@127.0.0.1:{second},redis://:{PASSWORD}@127.0.0.1:{third}"
    );
    let out = with_env_url("run", &urls)
        .args(["-k", "job", "--", "true"])
        .output();
    out.assert_code(69).assert_stderr_contains(&shown);
    assert_hidden(&out, PASSWORD);
}

#[test]
fn verbose_logs_and_json_outputs_never_print_the_password() {
    let (server, _dir) = plain_server(Some(PASSWORD));
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());

    let verbose = with_env_url("run", &url)
        .args(["-v", "-k", "job", "--", "true"])
        .output();
    verbose.assert_success();
    assert!(verbose.stderr.contains("acquired"), "{verbose}");
    assert_hidden(&verbose, PASSWORD);

    let acquired = with_env_url("acquire", &url)
        .args(["-v", "-k", "job", "--format", "json"])
        .output();
    acquired.assert_success();
    assert_hidden(&acquired, PASSWORD);
    let v: Value = serde_json::from_str(&acquired.stdout).expect("one JSON object");
    let node = v["nodes"][0].as_str().unwrap_or_default().to_owned();
    assert!(
        node.contains(&format!("127.0.0.1:{}", server.port())),
        "{v}"
    );

    let status = with_env_url("status", &url)
        .args(["-v", "-k", "job", "--format", "json"])
        .output();
    status.assert_success();
    assert_hidden(&status, PASSWORD);
    let plain = with_env_url("status", &url).args(["-k", "job"]).output();
    plain.assert_success();
    assert_hidden(&plain, PASSWORD);
}

// ---------------------------------------------------------------------------------------------
// Unix sockets

/// Runs a command under the lock through `url` that itself asks `rlock status` (through the
/// `RLOCK_REDIS` the run hands it), and checks that the lock was held, then released.
fn run_and_status_through(unix: &UnixServer, url: &str) {
    let out = rlock()
        .args(["-r", url, "-k", "job", "-c", "\"$BIN\" status"])
        .env("BIN", env!("CARGO_BIN_EXE_rlock"))
        .output();
    out.assert_success();
    assert!(
        out.stdout.starts_with("lock 'job' is held"),
        "status through the socket saw the run's lock\n{out}"
    );
    assert!(
        unix.server.exists("rlock:{job}:fence"),
        "it ran on this server"
    );
    assert!(!unix.server.exists("rlock:{job}"), "released");
    let free = rlock().args(["status", "-r", url, "-k", "job"]).output();
    free.assert_code(3);
    assert!(free.stdout.starts_with("lock 'job' is free"), "{free}");
}

#[test]
fn a_redis_unix_url_runs_the_command_and_status_sees_its_lock() {
    let unix = UnixServer::start();
    let url = format!("redis+unix://{}", unix.socket().display());
    run_and_status_through(&unix, &url);
}

#[test]
fn a_unix_url_runs_the_command_and_status_sees_its_lock() {
    let unix = UnixServer::start();
    let url = format!("unix://{}", unix.socket().display());
    run_and_status_through(&unix, &url);
}

// ---------------------------------------------------------------------------------------------
// Sentinel

#[test]
fn a_sentinel_url_takes_the_lease_on_the_primary_it_names() {
    let set = SentinelSet::start(None);
    let dir = temp_dir();
    let holder = rlock()
        .args(["-r", &set.url(None), "-k", "job", "-c", &hold(dir.path())])
        .spawn();
    let (token, _) = held(dir.path());
    assert_eq!(set.primary.get("rlock:{job}"), Some(token));
    stop(holder);
    assert!(
        !set.primary.exists("rlock:{job}"),
        "released on the primary"
    );
}

#[test]
fn after_a_sentinel_failover_the_next_run_locks_the_new_primary_with_a_higher_fence() {
    let set = SentinelSet::start(None);
    let url = set.url(None);
    let first = rlock()
        .args(["-r", &url, "-k", "job", "-c", "echo $RLOCK_FENCE"])
        .output();
    first.assert_success();
    let first: u64 = first.stdout.trim().parse().expect("a fence");
    // A graceful failover keeps what reached the replica: let the fence counter get there first.
    let counter = set.primary.get("rlock:{job}:fence");
    crate::support::wait_for("the fence counter to replicate", SOON, || {
        set.replica.get("rlock:{job}:fence") == counter
    });

    set.fail_over();
    let dir = temp_dir();
    let holder = rlock()
        .args(["-r", &url, "-k", "job", "-c", &hold(dir.path())])
        .spawn();
    let (token, fence) = held(dir.path());
    assert_eq!(
        set.replica.get("rlock:{job}"),
        Some(token),
        "the lock is on the new primary"
    );
    assert!(
        fence > first,
        "fence after failover {fence} must exceed {first}"
    );
    stop(holder);
    assert!(
        !set.replica.exists("rlock:{job}"),
        "released on the new primary"
    );
}

#[test]
fn a_sentinel_url_with_several_sentinels_skips_one_that_is_down() {
    let set = SentinelSet::start(None);
    let down = free_port();
    let url = format!(
        "redis+sentinel://127.0.0.1:{down},{}/{}",
        set.sentinel.addr(),
        crate::servers::SERVICE
    );
    let acquired = rlock().args(["acquire", "-r", &url, "-k", "job"]).output();
    acquired.assert_success().assert_stderr_empty();
    assert_eq!(
        set.primary.get("rlock:{job}").as_deref(),
        Some(acquired.stdout.trim())
    );
}

#[test]
fn a_sentinel_urls_password_is_the_primarys() {
    let set = SentinelSet::start(Some(PASSWORD));
    let url = set.url(Some(&format!(":{PASSWORD}")));
    let acquired = with_env_url("acquire", &url).args(["-k", "job"]).output();
    acquired.assert_success().assert_stderr_empty();
    let token = acquired.stdout.trim();
    assert_eq!(set.primary.get("rlock:{job}").as_deref(), Some(token));
    let status = with_env_url("status", &url)
        .args(["-k", "job", "--format", "json"])
        .output();
    status.assert_success();
    assert_hidden(&status, PASSWORD);
    with_env_url("release", &url)
        .args(["-k", "job", "--token", token])
        .output()
        .assert_success();
    assert!(!set.primary.exists("rlock:{job}"));
}

// ---------------------------------------------------------------------------------------------
// Cluster

#[test]
fn one_seed_url_runs_commands_for_keys_whose_slots_live_on_every_primary() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    let seed = cluster.seed().url();
    let dirs: Vec<_> = cluster.nodes.iter().map(|_| temp_dir()).collect();
    let mut holders = Vec::new();
    for (node, dir) in cluster.nodes.iter().zip(&dirs) {
        let name = cluster.lock_name_on(node, "job");
        let holder = rlock()
            .args(["-r", &seed, "-k", &name, "-c", &hold(dir.path())])
            .spawn();
        holders.push((node, name, dir, holder));
    }
    for (node, name, dir, holder) in holders {
        let key = format!("rlock:{{{name}}}");
        let (token, _) = held(dir.path());
        assert_eq!(
            node.get(&key),
            Some(token),
            "{key} is on the node that owns its slot"
        );
        stop(holder);
        assert!(!node.exists(&key), "{key} released");
    }
}

#[test]
fn status_acquire_extend_and_release_follow_the_slot_to_its_owner() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    let seed = cluster.seed().url();
    let owner = &cluster.nodes[2];
    let name = cluster.lock_name_on(owner, "job");
    let key = format!("rlock:{{{name}}}");
    let on_seed = |subcommand: &str| rlock().args([subcommand, "-r", &seed, "-k", &name]);

    on_seed("status").output().assert_code(3);
    let acquired = on_seed("acquire").output();
    acquired.assert_success().assert_stderr_empty();
    let token = acquired.stdout.trim();
    assert_eq!(owner.get(&key).as_deref(), Some(token));
    let status = on_seed("status").output();
    status.assert_success();
    assert!(
        status.stdout.starts_with(&format!("lock '{name}' is held")),
        "{status}"
    );
    on_seed("extend")
        .args(["-t", "1m", "--token", token])
        .output()
        .assert_success();
    assert!(
        owner.query::<i64>(&["PTTL", &key]) > 30_000,
        "extended on the owner"
    );
    on_seed("release")
        .args(["--token", token])
        .output()
        .assert_success();
    assert!(!owner.exists(&key), "released on the owner");
    on_seed("status").output().assert_code(3);
}

#[test]
fn limited_and_shared_leases_live_on_the_owner_of_the_locks_slot() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    let seed = cluster.seed().url();
    let owner = &cluster.nodes[1];
    let name = cluster.lock_name_on(owner, "job");
    let on_seed = |subcommand: &str, args: &[&str]| {
        rlock()
            .args([subcommand, "-r", &seed, "-k", &name])
            .args(args)
            .output()
    };

    // The slot keys are named inside the scripts; the hash tag keeps them on the same node.
    let tokens: Vec<String> = (0..2)
        .map(|_| {
            let out = on_seed("acquire", &["--limit", "2"]);
            out.assert_success();
            out.stdout.trim().to_owned()
        })
        .collect();
    assert_eq!(
        owner.get(&format!("rlock:{{{name}}}:slot:1")).as_ref(),
        Some(&tokens[1])
    );
    on_seed("acquire", &["--limit", "2"]).assert_code(75);
    for token in &tokens {
        on_seed("release", &["--token", token]).assert_success();
    }

    let readers: Vec<String> = (0..2)
        .map(|_| {
            let out = on_seed("acquire", &["--shared"]);
            out.assert_success();
            out.stdout.trim().to_owned()
        })
        .collect();
    on_seed("run", &["--", "true"]).assert_code(75);
    let status = on_seed("status", &[]);
    status.assert_success();
    assert!(status.stdout.contains("held by 2 holders"), "{status}");
    for token in &readers {
        on_seed("release", &["--token", token]).assert_success();
    }
    on_seed("run", &["--", "true"]).assert_success();
}

#[test]
fn a_lock_whose_slot_is_migrating_is_shown_extended_and_released_through_ask() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    let seed = cluster.seed().url();
    let (owner, target) = (&cluster.nodes[1], &cluster.nodes[2]);
    let name = cluster.lock_name_on(owner, "job");
    let on_seed = |subcommand: &str| rlock().args([subcommand, "-r", &seed, "-k", &name]);
    let acquired = on_seed("acquire").output();
    acquired.assert_success();
    let token = acquired.stdout.trim();

    // Resharding moves the lock's keys to `target`; until it ends, `owner` answers ASK for them.
    let (lock, holder, fence) = (
        format!("rlock:{{{name}}}"),
        format!("rlock:{{{name}}}:holder"),
        format!("rlock:{{{name}}}:fence"),
    );
    cluster.migrate_keys(&[&lock, &holder, &fence], owner, target);
    let asked = owner.cmd(&["GET", &lock]);
    assert!(format!("{asked:?}").contains("ASK"), "{asked:?}");
    assert_eq!(target.get_after_asking(&lock).as_deref(), Some(token));

    let status = on_seed("status").output();
    status.assert_success();
    assert!(
        status.stdout.starts_with(&format!("lock '{name}' is held")),
        "{status}"
    );
    on_seed("extend")
        .args(["-t", "1m", "--token", token])
        .output()
        .assert_success();
    on_seed("release")
        .args(["--token", token])
        .output()
        .assert_success();
    assert_eq!(
        target.get_after_asking(&lock),
        None,
        "released on the node the slot is moving to"
    );
}
