//! The files in `examples/` do what they say: every rlock line of the crontab and the systemd
//! services' `ExecStart` run against a test Redis (with the job replaced by `echo ran`), the units
//! pass `systemd-analyze verify`, the standby service's exit statuses are the ones rlock gives,
//! `by-hand.sh` holds its lock across its steps, and `fenced-write.sh` refuses a stale holder's
//! write.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::standby::waiting;
use crate::support::{
    RedisServer, Rlock, RunOutput, rlock, skip, temp_dir, wait_for, wait_or_kill, without_rlock_env,
};

/// Hard cap on one run of an example.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What replaces the job in the examples' command lines: it shows that the job ran.
const JOB: &str = "echo ran";

/// The path of `examples/NAME`.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The text of `examples/NAME`.
fn read_example(name: &str) -> String {
    fs::read_to_string(example(name)).unwrap_or_else(|e| panic!("reading examples/{name}: {e}"))
}

/// A process run with the binary under test on PATH as `rlock`, as an installed rlock would be.
struct Run {
    /// The command being built.
    cmd: Command,
    /// Shell-like rendering, for messages.
    shown: String,
    /// Holds the `rlock` symlink; removed on drop.
    bin: tempfile::TempDir,
}

impl Run {
    /// `program args...` with no inherited `RLOCK_*` variables and `rlock` first on PATH.
    fn new(program: impl AsRef<Path>, args: &[&str]) -> Self {
        let bin = temp_dir();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlock"), bin.path().join("rlock"))
            .expect("symlink rlock into a temporary directory");
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args).stdin(Stdio::null());
        without_rlock_env(&mut cmd);
        let shown = format!("{} {}", program.as_ref().display(), args.join(" "));
        let mut run = Self { cmd, shown, bin };
        run.path(&std::env::var("PATH").unwrap_or_default());
        run
    }

    /// `sh -c script`, as cron and scripts run command lines.
    fn sh(script: &str) -> Self {
        Self::new("sh", &["-c", script])
    }

    /// Sets PATH to the directory holding `rlock`, then `path`.
    fn path(&mut self, path: &str) -> &mut Self {
        let bin = self.bin.path().display();
        self.cmd.env("PATH", format!("{bin}:{path}"));
        self
    }

    /// Sets an environment variable.
    fn env(&mut self, key: &str, val: &str) -> &mut Self {
        self.shown = format!("{key}={val} {}", self.shown);
        self.cmd.env(key, val);
        self
    }

    /// Runs to completion; after [`RUN_TIMEOUT`] kills it and panics.
    fn output(&mut self) -> RunOutput {
        let stdout = tempfile::tempfile().expect("create a stdout file");
        let stderr = tempfile::tempfile().expect("create a stderr file");
        self.cmd
            .stdout(stdout.try_clone().expect("dup the stdout file"))
            .stderr(stderr.try_clone().expect("dup the stderr file"));
        let started = Instant::now();
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", self.shown));
        let status = wait_or_kill(&mut child, RUN_TIMEOUT, &format!("`{}`", self.shown));
        RunOutput {
            status,
            stdout: read_all(stdout),
            stderr: read_all(stderr),
            elapsed: started.elapsed(),
            cmdline: self.shown.clone(),
        }
    }
}

/// Everything written to `file` (lossy UTF-8).
fn read_all(mut file: fs::File) -> String {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .expect("read an output file");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A command line of an example, cut at `--` into rlock's arguments and the job.
struct RlockLine {
    /// rlock's arguments, before `--`.
    args: Vec<String>,
}

impl RlockLine {
    /// Splits `line` (`PROGRAM ARGS... -- JOB...`, no quoting), checking that PROGRAM is `program`.
    fn parse(line: &str, program: &str) -> Self {
        assert!(
            !line.contains(['\'', '"', '\\', '%']),
            "quoting or % would need a real parser: {line}"
        );
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some(program), "not an rlock line: {line}");
        let args: Vec<String> = words
            .by_ref()
            .take_while(|&w| w != "--")
            .map(str::to_owned)
            .collect();
        assert!(words.next().is_some(), "no job after `--`: {line}");
        Self { args }
    }

    /// The line with the job replaced by [`JOB`].
    fn with_test_job(&self) -> String {
        format!("rlock {} -- {JOB}", self.args.join(" "))
    }

    /// The value of option `short` or `long`, if given.
    fn option(&self, short: &str, long: &str) -> Option<&str> {
        let at = self.args.iter().position(|a| a == short || a == long)?;
        self.args.get(at + 1).map(String::as_str)
    }
}

/// Takes lock `key` for 30 s on `redis`, unless it is held already.
fn hold(redis: &RedisServer, key: &str) {
    let out = rlock()
        .args(["acquire", "-r", &redis.url(), "-k", key, "-t", "30s"])
        .output();
    assert!(matches!(out.code(), Some(0 | 75)), "{out}");
}

/// A crontab: its `NAME=value` lines, and the command of each job line (after the time fields).
struct Crontab {
    /// The variables cron sets for the commands.
    env: Vec<(String, String)>,
    /// The jobs' command lines.
    lines: Vec<RlockLine>,
}

impl Crontab {
    /// `examples/crontab`.
    fn example() -> Self {
        let (mut env, mut lines) = (Vec::new(), Vec::new());
        for line in read_example("crontab").lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let Some((name, value)) = fields[0].split_once('=') {
                env.push((name.to_owned(), value.to_owned()));
                continue;
            }
            assert!(fields.len() > 5, "a crontab line without a command: {line}");
            lines.push(RlockLine::parse(&fields[5..].join(" "), "rlock"));
        }
        Self { env, lines }
    }

    /// Runs `line` as cron would, with the job replaced and its Redis at `redis`.
    fn run(&self, line: &RlockLine, redis: &RedisServer) -> RunOutput {
        let mut run = Run::sh(&line.with_test_job());
        for (name, value) in &self.env {
            match name.as_str() {
                "PATH" => run.path(value),
                "RLOCK_REDIS" => run.env(name, &redis.url()),
                _ => run.env(name, value),
            };
        }
        run.output()
    }
}

#[test]
fn the_crontab_shows_skip_wait_once_per_schedule_and_quiet_skip() {
    let cron = Crontab::example();
    let any = |short, long, value: Option<&str>| {
        cron.lines.iter().any(|l| {
            l.option(short, long)
                .is_some_and(|v| value.is_none_or(|want| v == want))
        })
    };
    let plain_skip = cron.lines.iter().any(|l| {
        l.option("-w", "--wait").is_none() && l.option("-E", "--conflict-exit-code").is_none()
    });
    assert!(plain_skip, "no line that skips with 75");
    assert!(any("-w", "--wait", None), "no line that waits");
    assert!(
        any("--min-hold", "--min-hold", None),
        "no once-per-schedule line"
    );
    assert!(
        any("-E", "--conflict-exit-code", Some("0")),
        "no quiet skip"
    );
}

#[test]
fn every_crontab_line_runs_its_job_and_skips_it_while_the_lock_is_busy() {
    let cron = Crontab::example();
    let redis = RedisServer::start();
    for line in &cron.lines {
        cron.run(line, &redis)
            .assert_success()
            .assert_stdout_eq("ran\n");
        if line.option("-w", "--wait").is_some() {
            continue; // a busy lock would make it wait that long
        }
        hold(&redis, line.option("-k", "--key").expect("a lock name"));
        let skipped = cron.run(line, &redis);
        let busy: i32 = line
            .option("-E", "--conflict-exit-code")
            .map_or(75, |code| code.parse().expect("a number"));
        skipped.assert_code(busy).assert_stdout_eq("");
        if busy == 0 {
            skipped.assert_stderr_empty();
        }
    }
}

#[test]
fn min_hold_in_the_crontab_makes_a_late_hosts_run_skip() {
    let cron = Crontab::example();
    let line = cron
        .lines
        .iter()
        .find(|l| l.option("--min-hold", "--min-hold").is_some())
        .expect("a --min-hold line");
    let redis = RedisServer::start();
    cron.run(line, &redis)
        .assert_success()
        .assert_stdout_eq("ran\n");
    // The job is done, but the lock stays: the late host skips though nobody runs the job.
    cron.run(line, &redis).assert_code(75).assert_stdout_eq("");
}

/// A systemd unit's `KEY=VALUE` settings, in order.
struct Unit(Vec<(String, String)>);

impl Unit {
    /// `examples/NAME`.
    fn example(name: &str) -> Self {
        let settings = read_example(name)
            .lines()
            .filter(|l| !l.starts_with(['#', '[']) && !l.trim().is_empty())
            .map(|l| {
                let (key, value) = l.split_once('=').expect("KEY=VALUE");
                (key.to_owned(), value.to_owned())
            })
            .collect();
        Self(settings)
    }

    /// Every value of `key`, in order.
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `key`.
    #[track_caller]
    fn one(&self, key: &str) -> &str {
        match self.all(key)[..] {
            [value] => value,
            ref values => panic!("{key}= given {} times, not once", values.len()),
        }
    }

    /// Whether exit status `code` is in the list that `key` holds.
    fn lists(&self, key: &str, code: i32) -> bool {
        let code = code.to_string();
        self.all(key)
            .iter()
            .any(|list| list.split_whitespace().any(|c| c == code))
    }

    /// The `ExecStart` line, which runs rlock where quickstart installs it.
    fn exec_start(&self) -> RlockLine {
        RlockLine::parse(self.one("ExecStart"), "/usr/local/bin/rlock")
    }

    /// Checks that the unit says where Redis is.
    #[track_caller]
    fn names_redis(&self) {
        assert!(
            self.all("Environment")
                .iter()
                .any(|e| e.starts_with("RLOCK_REDIS=")),
            "the unit says where Redis is"
        );
    }
}

#[test]
fn the_systemd_service_runs_its_exec_start_and_counts_a_skip_as_success() {
    let unit = Unit::example("rlock-nightly.service");
    let setting = |key: &str| unit.all(key);
    let line = unit.exec_start();
    unit.names_redis();
    let redis = RedisServer::start();
    let start = || {
        Run::sh(&line.with_test_job())
            .env("RLOCK_REDIS", &redis.url())
            .output()
    };
    start().assert_success().assert_stdout_eq("ran\n");
    let skipped = start();
    skipped.assert_stdout_eq("");
    let code = skipped.code().expect("an exit status").to_string();
    assert!(
        setting("SuccessExitStatus")
            .iter()
            .any(|s| s.split_whitespace().any(|c| c == code)),
        "a skipped run (exit {code}) must not fail the unit: add it to SuccessExitStatus"
    );
}

/// `examples/standby.service`, its `ExecStart` as `rlock ARGS -- job...` on `redis`.
fn standby(redis: &RedisServer, job: &[&str]) -> Rlock {
    let line = Unit::example("standby.service").exec_start();
    rlock()
        .args(&line.args)
        .arg("--")
        .args(job)
        .env("RLOCK_REDIS", redis.url())
        .stdin_null()
}

#[test]
fn the_standby_service_runs_its_daemon_at_once_or_when_the_holders_lease_ends() {
    let unit = Unit::example("standby.service");
    unit.names_redis();
    let line = unit.exec_start();
    assert_eq!(
        line.option("-w", "--wait"),
        Some("forever"),
        "a standby waits"
    );
    let redis = RedisServer::start();
    let start = || {
        Run::sh(&line.with_test_job())
            .env("RLOCK_REDIS", &redis.url())
            .output()
    };
    start().assert_success().assert_stdout_eq("ran\n");

    // Another host holds the lock (for 1 s, and dies): this one waits and then runs.
    let key = line.option("-k", "--key").expect("a lock name");
    rlock()
        .args(["acquire", "-r", &redis.url(), "-k", key, "-t", "1s"])
        .output()
        .assert_success();
    let held = Duration::from_millis(redis.pttl(&format!("rlock:{{{key}}}")).try_into().unwrap());
    let out = start();
    out.assert_success().assert_stdout_eq("ran\n");
    assert!(
        out.elapsed + Duration::from_millis(100) >= held,
        "it ran before the holder's lease ({held:?} left) ended\n{out}"
    );
}

#[test]
fn the_standby_service_restarts_what_can_recover_and_stops_cleanly() {
    let unit = Unit::example("standby.service");
    assert_eq!(unit.one("Restart"), "always");
    assert_eq!(unit.one("KillMode"), "mixed", "SIGTERM to rlock alone");
    let secs = |key: &str| {
        humantime::parse_duration(unit.one(key))
            .unwrap_or_else(|e| panic!("{key}={}: {e}", unit.one(key)))
    };
    assert!(
        secs("RestartSec") > Duration::from_secs(1),
        "a host that lost the lock comes back after a standby has noticed it free (1 s at most)"
    );
    let line = unit.exec_start();
    let kill_after = line
        .option("--kill-after", "--kill-after")
        .expect("--kill-after");
    let kill_after = humantime::parse_duration(kill_after).expect("a duration");
    assert!(
        secs("TimeoutStopSec") > kill_after,
        "systemd's SIGKILL comes after rlock's own"
    );
    for (code, what) in [
        (124, "the lease was lost"),
        (69, "Redis answered with an error"),
    ] {
        assert!(
            !unit.lists("RestartPreventExitStatus", code) && !unit.lists("SuccessExitStatus", code),
            "{what} ({code}): restart, and count it as a failure"
        );
    }
    for (code, what) in [(2, "a usage error"), (126, "a daemon that cannot run")] {
        assert!(
            unit.lists("RestartPreventExitStatus", code),
            "{what} ({code}) fails every time: no restart"
        );
    }

    let redis = RedisServer::start();
    let missing = standby(&redis, &["/nonexistent/svc-daemon"]).output();
    let code = missing.code().expect("an exit status");
    assert!(
        unit.lists("RestartPreventExitStatus", code),
        "a daemon that is not installed (exit {code}): no restart\n{missing}"
    );

    // systemctl stop on a standby, then on the active host: both are clean stops.
    let mut active = standby(&redis, &["sleep", "30"]).spawn();
    wait_for("the daemon to hold the lock", RUN_TIMEOUT, || {
        redis.exists("rlock:{svc}")
    });
    let mut standing_by = standby(&redis, &["sleep", "30"]).spawn();
    wait_for("the standby to wait", RUN_TIMEOUT, || {
        waiting(&redis, "svc") == 1
    });
    for run in [&mut standing_by, &mut active] {
        run.signal(Signal::SIGTERM);
        let out = run.wait();
        let code = out.code().expect("an exit status");
        assert!(
            unit.lists("SuccessExitStatus", code),
            "systemctl stop (exit {code}) is not a failure\n{out}"
        );
    }
    assert!(!redis.exists("rlock:{svc}"), "released on stop");
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    verify_units(Path::new(env!("CARGO_BIN_EXE_rlock")));
}

/// Runs `systemd-analyze verify` on the example units with their `ExecStart` pointed at `rlock`
/// (verify checks that the programs exist), failing on any complaint.
pub fn verify_units(rlock: &Path) {
    let dir = temp_dir();
    let service = read_example("rlock-nightly.service");
    assert!(
        service.contains("ExecStart=/usr/local/bin/rlock "),
        "the service runs rlock where quickstart installs it"
    );
    let service = service
        .replace("/usr/local/bin/rlock", &rlock.display().to_string())
        .replace("/usr/local/bin/nightly-job", "/bin/true");
    fs::write(dir.path().join("rlock-nightly.service"), service).unwrap();
    fs::copy(
        example("rlock-nightly.timer"),
        dir.path().join("rlock-nightly.timer"),
    )
    .unwrap();
    let standby = read_example("standby.service");
    assert!(
        standby.contains("ExecStart=/usr/local/bin/rlock "),
        "the service runs rlock where quickstart installs it"
    );
    let standby = standby
        .replace("/usr/local/bin/rlock", &rlock.display().to_string())
        .replace("/usr/local/bin/svc-daemon", "/bin/true");
    fs::write(dir.path().join("standby.service"), standby).unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(["./rlock-nightly.service", "./rlock-nightly.timer"])
        .arg("./standby.service")
        .current_dir(dir.path())
        .output()
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return skip("systemd-analyze is not installed (apt-get install systemd)");
        }
        out => out.expect("systemd-analyze runs"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn by_hand_sh_keeps_its_lock_across_steps_that_outlast_the_ttl_and_releases_it() {
    let redis = RedisServer::start();
    let out = Run::new(example("by-hand.sh"), &[])
        .env("RLOCK_REDIS", &redis.url())
        .env("RLOCK_TTL", "2s")
        .env("EXTEND_EVERY", "0.5")
        .output();
    out.assert_success();
    let steps: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(steps.len(), 3, "{out}");
    assert!(steps[0].starts_with("extract with fence "), "{out}");
    assert!(
        out.elapsed > Duration::from_secs(2),
        "outlasted the TTL: {out}"
    );
    assert!(!redis.exists("rlock:{nightly-etl}"), "released on exit");
}

#[test]
fn by_hand_sh_exits_75_without_working_when_the_lock_is_busy() {
    let redis = RedisServer::start();
    hold(&redis, "nightly-etl");
    let holder = redis.get("rlock:{nightly-etl}");
    Run::new(example("by-hand.sh"), &[])
        .env("RLOCK_REDIS", &redis.url())
        .output()
        .assert_code(75)
        .assert_stdout_eq("");
    assert_eq!(
        redis.get("rlock:{nightly-etl}"),
        holder,
        "the holder's lock is untouched"
    );
}

#[test]
fn fenced_write_sh_rejects_a_stale_holders_write_and_keeps_the_newer_value() {
    let redis = RedisServer::start();
    let resource = temp_dir();
    let dir = resource.path().to_str().expect("a UTF-8 temporary path");
    let read = |name: &str| fs::read_to_string(resource.path().join(name)).unwrap_or_default();
    let write = example("fenced-write.sh");
    let write = write.to_str().expect("a UTF-8 path");

    // Holder A takes a short lease (1s: a 100ms lease gives each request 10ms, which a loaded
    // machine can miss), then pauses past its end.
    let a = rlock()
        .args(["acquire", "-r", &redis.url()])
        .args(["-k", "publish", "-t", "1s", "--format", "json"])
        .output();
    a.assert_success();
    let stale: Value = serde_json::from_str(&a.stdout).expect("JSON");
    let stale = stale["fence"].as_str().expect("a fence").to_owned();
    wait_for("A's lease to expire", Duration::from_secs(5), || {
        !redis.exists("rlock:{publish}")
    });

    // Holder B takes the lock and writes, with a larger fence.
    Run::new("rlock", &["-k", "publish", "--", write, dir, "from B"])
        .env("RLOCK_REDIS", &redis.url())
        .output()
        .assert_success()
        .assert_stderr_empty();
    assert_eq!(read("value"), "from B\n");
    let newer: u64 = read("fence").trim().parse().expect("a stored fence");
    assert!(newer > stale.parse().unwrap());

    // A wakes up and writes with its old fence: rejected, and B's value stays.
    Run::new(write, &[dir, "from A"])
        .env("RLOCK_FENCE", &stale)
        .output()
        .assert_code(1)
        .assert_stderr_contains("write rejected");
    assert_eq!(read("value"), "from B\n");
    assert_eq!(read("fence").trim(), newer.to_string());

    // The same fence again is no newer: rejected too.
    Run::new(write, &[dir, "again"])
        .env("RLOCK_FENCE", &newer.to_string())
        .output()
        .assert_code(1);
    assert_eq!(read("value"), "from B\n");
}
