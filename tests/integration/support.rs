//! Shared fixtures for the `rlock` integration tests.
//!
//! `rlock` is only interesting against real Redis servers that expire keys,
//! crash, freeze and lose data, so tests start real `redis-server` processes
//! instead of mocks. Each server gets a free kernel-chosen port on 127.0.0.1
//! (never 6379: tests run in parallel and never touch a developer's Redis) and
//! its own temp directory with persistence off (no state survives a test or a
//! crash-restart). Every process spawned here, servers and `rlock` runs, is
//! killed *and reaped* on `Drop`, even when a test panics. `rlock` runs with all
//! inherited `RLOCK_*` variables removed. Synchronise only through the polling
//! helpers ([`wait_for`], [`wait_for_file`]), never through fixed sleeps.
//!
//! There is one of each helper, for both test binaries (the fault suite includes this file):
//! one server launcher ([`launch_redis`], behind [`RedisServer`] and `servers::Server`), one
//! `RLOCK_*` scrub ([`without_rlock_env`]), one wait with a deadline ([`wait_timeout`],
//! [`wait_or_kill`]), one builder of `rlock -r URL...` ([`on`]) and one way to skip ([`skip`]).

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use redis::ConnectionLike;

/// How long a freshly spawned server may take to answer PING (generous: CI shares its cores).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect/read/write timeout of connections made by [`RedisServer::conn`].
const CONN_TIMEOUT: Duration = Duration::from_secs(2);
/// Hard cap on a single `rlock` run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval of every polling loop in this module.
const POLL: Duration = Duration::from_millis(5);

/// Polls `cond` every ~5 ms until it is true; panics mentioning `what` after `timeout`.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        let now = Instant::now();
        assert!(
            now < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(POLL);
    }
}

/// Waits until `path` exists and is non-empty (a readiness handshake) and returns its contents.
#[track_caller]
pub fn wait_for_file(path: impl AsRef<Path>, timeout: Duration) -> String {
    let path = path.as_ref();
    let mut contents = String::new();
    wait_for(
        &format!("{} to be written", path.display()),
        timeout,
        || {
            contents = fs::read_to_string(path).unwrap_or_default();
            !contents.is_empty()
        },
    );
    contents
}

/// Says that the calling test checks nothing here because `reason` (a missing tool, named with
/// the package to install). The harness shows a passing test's stderr to nobody, so the line
/// `SKIPPED: reason` also goes straight to the terminal (`/dev/tty`) when there is one; and
/// with `CI` set a skip is a failure, since CI installs every tool (`.ci/run`).
#[track_caller]
pub fn skip(reason: &str) {
    use std::io::Write as _;
    let line = format!("SKIPPED: {reason}");
    assert!(
        std::env::var_os("CI").is_none(),
        "{line} (CI must run this test)"
    );
    eprintln!("{line}");
    if let Ok(mut tty) = File::options().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{line}");
    }
}

/// A fresh temporary directory, deleted when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Writes `urls`, one per line, to `DIR/redis-urls` with mode 0600, as `--redis-file` wants it.
pub fn url_file(dir: &Path, urls: &[String]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("redis-urls");
    fs::write(&path, urls.join("\n") + "\n").expect("write the URL file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod the URL file");
    path
}

/// True when process `pid` no longer exists or is a zombie (`kill -0` succeeds on zombies).
pub fn process_gone(pid: i32) -> bool {
    proc_state(pid).is_none_or(|state| state == 'Z' || state == 'X')
}

/// Whether process `pid` has a handler installed for signal number `signal` (its `SigCgt` mask
/// in /proc): the handshake before signalling a process that must not die of the signal.
pub fn catches(pid: i32, signal: i32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// The one-letter `State:` of process `pid` from `/proc/PID/status`; `None` if it is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let state = status.lines().find_map(|l| l.strip_prefix("State:"))?;
    state.trim_start().chars().next()
}

/// A real `redis-server` on 127.0.0.1 and a free port, killed and reaped on drop.
pub struct RedisServer {
    /// The running server process (`None` after [`RedisServer::kill`]).
    child: Option<Child>,
    /// PID of the current (or last) server process.
    pid: i32,
    /// The TCP port, kept across [`RedisServer::crash_restart`].
    port: u16,
    /// Whether the process is currently stopped by `SIGSTOP`.
    paused: AtomicBool,
    /// Working directory holding `redis.log` and `redis.out`.
    dir: tempfile::TempDir,
    /// Extra environment of the server process (the fault suite's clock shim).
    env: Vec<(OsString, OsString)>,
}

impl RedisServer {
    /// Starts a server on a free port, retrying 5 times with new ports; panics with its log.
    pub fn start() -> Self {
        Self::start_with_env(Vec::new())
    }

    /// [`RedisServer::start`] with `env` added to the server's environment, also on restarts.
    pub fn start_with_env(env: Vec<(OsString, OsString)>) -> Self {
        let (dir, paused) = (temp_dir(), AtomicBool::new(false));
        let mut server = Self {
            child: None,
            pid: 0,
            port: 0,
            paused,
            dir,
            env,
        };
        let mut failures = Vec::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(why) => failures.push(format!("port {}: {why}", server.port)),
            }
        }
        panic!(
            "redis-server failed to start:\n{}\n{}",
            failures.join("\n"),
            server.logs()
        );
    }

    /// Starts `n` servers concurrently (one thread each).
    pub fn start_many(n: usize) -> Vec<Self> {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..n).map(|_| scope.spawn(Self::start)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .expect("a redis-server failed to start (see its panic)")
                })
                .collect()
        })
    }

    /// The server's URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        url_for(self.port)
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the current (or, after `kill`, the last) server process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Freezes the server with SIGSTOP and waits until it is stopped (connects still succeed).
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        self.paused.store(true, Ordering::SeqCst);
        wait_for("redis-server to stop", STARTUP_TIMEOUT, || {
            matches!(proc_state(self.pid), Some('T') | None)
        });
    }

    /// Unfreezes the server with SIGCONT and waits until it runs again.
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
        self.paused.store(false, Ordering::SeqCst);
        wait_for("redis-server to continue", STARTUP_TIMEOUT, || {
            proc_state(self.pid) != Some('T')
        });
    }

    /// Simulates a crash: SIGKILL, reap, then start again on the same port with no data.
    pub fn crash_restart(&mut self) {
        self.stop();
        let _ = fs::remove_file(self.dir.path().join("dump.rdb"));
        // The old socket may linger for a moment; retry until the port is bindable again.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while let Err(why) = self.launch() {
            assert!(
                Instant::now() < deadline,
                "no restart on port {}: {why}\n{}",
                self.port,
                self.logs()
            );
            thread::sleep(POLL);
        }
    }

    /// SIGKILLs and reaps the server; it stays down (connections are refused).
    pub fn kill(&mut self) {
        self.stop();
    }

    /// A new connection with 2 s connect/read/write timeouts; panics if it cannot connect.
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("a valid redis URL");
        let con = client
            .get_connection_with_timeout(CONN_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()));
        con.set_read_timeout(Some(CONN_TIMEOUT))
            .expect("set read timeout");
        con.set_write_timeout(Some(CONN_TIMEOUT))
            .expect("set write timeout");
        con
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key))
    }

    /// `SET key val`.
    pub fn set(&self, key: &str, val: &str) {
        self.query::<()>(redis::cmd("SET").arg(key).arg(val));
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.query(redis::cmd("EXISTS").arg(key))
    }

    /// `PTTL key` (-2: no key, -1: no expiry).
    pub fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key))
    }

    /// `DEL key`.
    pub fn del(&self, key: &str) {
        self.query::<i64>(redis::cmd("DEL").arg(key));
    }

    /// `KEYS pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg(pattern));
        keys.sort();
        keys
    }

    /// Any command; error replies come back as `Value::ServerError`, I/O errors panic.
    pub fn cmd(&self, args: &[&str]) -> redis::Value {
        command(&mut self.conn(), args, &self.url())
    }

    /// Runs `cmd` on a fresh connection, panicking with context on any error.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query(&mut self.conn())
            .unwrap_or_else(|e| panic!("{cmd:?} on {}: {e}", self.url()))
    }

    /// Sends `sig` to the server process, panicking if that fails.
    fn signal(&self, sig: Signal) {
        assert!(
            self.child.is_some(),
            "redis-server on port {} is down",
            self.port
        );
        signal::kill(Pid::from_raw(self.pid), sig)
            .unwrap_or_else(|e| panic!("{sig} to redis-server {}: {e}", self.pid));
    }

    /// Spawns redis-server on `self.port` and waits until *that* process answers PING.
    fn launch(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = launch_redis(cmd, dir, &dir.join("redis.out"), &self.url())?;
        self.pid = child_pid(&child);
        self.child = Some(child);
        Ok(())
    }

    /// The server's log and stdout/stderr, for panic messages.
    fn logs(&self) -> String {
        let read = |name| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let (log, out) = (read("redis.log"), read("redis.out"));
        format!("--- redis.log ---\n{log}--- redis stdout/stderr ---\n{out}")
    }

    /// Kills and reaps the process if running, without ever panicking (used by `Drop`).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused.swap(false, Ordering::SeqCst) {
                let _ = signal::kill(Pid::from_raw(self.pid), Signal::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    /// Resumes the server if paused, then SIGKILLs and reaps it.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` (a `redis-server` with its arguments) in `dir` with stdout and stderr appended
/// to `out`, and waits until *that* process answers on `url`: the one launcher of every fixture
/// server. On failure the process is killed and reaped and the reason returned.
pub fn launch_redis(mut cmd: Command, dir: &Path, out: &Path, url: &str) -> Result<Child, String> {
    let out = File::options().create(true).append(true).open(out);
    let out = out.map_err(|e| format!("cannot open the server's output file: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("cannot dup: {e}"))?;
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            format!("cannot spawn redis-server ({e}); install it: apt-get install redis-server")
        })?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited early ({status})"));
        }
        // Check the PID: after a port race another test's server may answer here.
        if answering_pid(url) == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no answer within {STARTUP_TIMEOUT:?}"));
        }
        thread::sleep(POLL);
    }
}

/// Sends `args` (a command and its arguments) on `conn`; error replies come back as
/// `Value::ServerError`, I/O errors panic naming `server`.
#[track_caller]
pub fn command(conn: &mut redis::Connection, args: &[&str], server: &str) -> redis::Value {
    let (name, rest) = args.split_first().expect("a command needs a name");
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    conn.req_command(&cmd)
        .unwrap_or_else(|e| panic!("{args:?} on {server}: {e}"))
}

/// `redis://127.0.0.1:PORT`.
fn url_for(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A port that was free a moment ago (bind port 0, read it, release it); never 6379.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("listener address").port();
        if port != 6379 {
            return port;
        }
    }
}

/// The PID of a child process as the `i32` that `nix` and `/proc` use.
fn child_pid(child: &Child) -> i32 {
    i32::try_from(child.id()).expect("PID fits in i32")
}

/// The `process_id` of the server answering on `url`, or `None` if none answers.
fn answering_pid(url: &str) -> Option<u32> {
    let timeout = Duration::from_millis(500);
    let mut con = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(timeout)
        .ok()?;
    con.set_read_timeout(Some(timeout)).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    let pid = info.lines().find_map(|l| l.strip_prefix("process_id:"))?;
    pid.trim().parse().ok()
}

/// Builder for one run of the `rlock` binary under test, with no inherited `RLOCK_*` variables.
pub struct Rlock {
    /// The command being built.
    cmd: Command,
    /// Where stdout and stderr go instead of the temp files that [`RunOutput`] reads.
    stdio: (Option<Stdio>, Option<Stdio>),
    /// `KEY=VAL ` pieces set with [`Rlock::env`], for messages.
    shown_env: String,
    /// ` ARG` pieces, for messages.
    shown_args: String,
}

/// Removes from `cmd`'s environment every `RLOCK_*` variable the test runner inherited, so a
/// developer's own settings never reach a test; variables set on `cmd` afterwards stay.
pub fn without_rlock_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"RLOCK_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on a child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Waits up to `timeout` for `child` to exit; after that kills and reaps it and panics naming
/// `what`.
#[track_caller]
pub fn wait_or_kill(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    if let Some(status) = wait_timeout(child, timeout) {
        return status;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} still running after {timeout:?}; killed it");
}

/// Starts building an `rlock` invocation with every `RLOCK_*` variable removed.
pub fn rlock() -> Rlock {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rlock"));
    without_rlock_env(&mut cmd);
    let (shown_env, shown_args) = (String::new(), String::new());
    Rlock {
        cmd,
        stdio: (None, None),
        shown_env,
        shown_args,
    }
}

/// One or several fixture servers, as [`on`] takes them.
pub trait Servers {
    /// Their URLs, in order.
    fn urls(&self) -> Vec<String>;
}

impl Servers for RedisServer {
    fn urls(&self) -> Vec<String> {
        vec![self.url()]
    }
}

impl Servers for [RedisServer] {
    fn urls(&self) -> Vec<String> {
        self.iter().map(RedisServer::url).collect()
    }
}

impl Servers for Vec<RedisServer> {
    fn urls(&self) -> Vec<String> {
        self.as_slice().urls()
    }
}

impl<const N: usize> Servers for [RedisServer; N] {
    fn urls(&self) -> Vec<String> {
        self.as_slice().urls()
    }
}

/// `rlock -r URL...` on `servers` (one, or a Redlock set), with no inherited `RLOCK_*`.
pub fn on(servers: &(impl Servers + ?Sized)) -> Rlock {
    rlock().on(servers)
}

/// `s` as shown in messages: verbatim, or Rust-quoted if empty or containing odd characters.
fn shown(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("{s:?}")
    }
}

impl Rlock {
    /// Appends `-r URL` for each of `servers`: after a subcommand, `rlock().arg("acquire").on(..)`.
    pub fn on(self, servers: &(impl Servers + ?Sized)) -> Self {
        servers
            .urls()
            .into_iter()
            .fold(self, |cmd, url| cmd.arg("-r").arg(url))
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let _ = write!(self.shown_args, " {}", shown(arg.as_ref()));
        self.cmd.arg(arg);
        self
    }

    /// Sets an environment variable (may re-add an `RLOCK_*` one deliberately).
    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        let (k, v) = (key.as_ref().to_string_lossy(), shown(val.as_ref()));
        let _ = write!(self.shown_env, "{k}={v} ");
        self.cmd.env(key, val);
        self
    }

    /// Gives the process an empty stdin instead of inheriting the test's.
    pub fn stdin_null(mut self) -> Self {
        self.cmd.stdin(Stdio::null());
        self
    }

    /// Sends stdout elsewhere (a closed or full pipe); the output then shows it empty.
    pub fn stdout(mut self, to: impl Into<Stdio>) -> Self {
        self.stdio.0 = Some(to.into());
        self
    }

    /// Sends stderr elsewhere (a closed or full pipe); the output then shows it empty.
    pub fn stderr(mut self, to: impl Into<Stdio>) -> Self {
        self.stdio.1 = Some(to.into());
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs to completion (60 s cap, then kill and panic) and returns the output.
    pub fn output(self) -> RunOutput {
        self.spawn().wait()
    }

    /// Starts the process in the background; stdout/stderr go to temp files.
    pub fn spawn(mut self) -> RunningRlock {
        let stdout = tempfile::tempfile().expect("create stdout temp file");
        let stderr = tempfile::tempfile().expect("create stderr temp file");
        let (to_stdout, to_stderr) = self.stdio;
        self.cmd.stdout(
            to_stdout.unwrap_or_else(|| stdout.try_clone().expect("dup stdout temp file").into()),
        );
        self.cmd.stderr(
            to_stderr.unwrap_or_else(|| stderr.try_clone().expect("dup stderr temp file").into()),
        );
        let cmdline = format!("{}rlock{}", self.shown_env, self.shown_args);
        let started = Instant::now();
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{cmdline}`: {e}"));
        RunningRlock {
            child,
            stdout,
            stderr,
            started,
            cmdline,
            exit: None,
        }
    }
}

/// A running `rlock` process; killed (`SIGKILL`) and reaped on drop if still running.
pub struct RunningRlock {
    /// The process.
    child: Child,
    /// Temp file receiving its stdout.
    stdout: File,
    /// Temp file receiving its stderr.
    stderr: File,
    /// When it was spawned.
    started: Instant,
    /// Shell-like rendering of the invocation, for messages.
    cmdline: String,
    /// Exit status and elapsed time, once it has been reaped.
    exit: Option<(ExitStatus, Duration)>,
}

impl RunningRlock {
    /// The process ID.
    pub fn pid(&self) -> i32 {
        child_pid(&self.child)
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<RunOutput> {
        if self.exit.is_none() {
            let status = wait_timeout(&mut self.child, timeout)?;
            self.exit = Some((status, self.started.elapsed()));
        }
        let (status, elapsed) = self.exit.expect("exit recorded above");
        Some(RunOutput {
            status,
            stdout: read_all(&self.stdout),
            stderr: read_all(&self.stderr),
            elapsed,
            cmdline: self.cmdline.clone(),
        })
    }

    /// What it has written to stderr so far, while it runs.
    pub fn stderr_so_far(&self) -> String {
        read_all(&self.stderr)
    }

    /// Waits for exit; after 60 s kills the process and panics.
    #[track_caller]
    pub fn wait(&mut self) -> RunOutput {
        if let Some(out) = self.wait_timeout(RUN_TIMEOUT) {
            return out;
        }
        self.kill();
        panic!(
            "`{}` still running after {RUN_TIMEOUT:?}; killed it\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmdline,
            read_all(&self.stdout),
            read_all(&self.stderr)
        );
    }

    /// Sends `sig` to the process (which must not have been reaped yet).
    #[track_caller]
    pub fn signal(&self, sig: Signal) {
        assert!(
            self.exit.is_none(),
            "`{}` already exited; cannot send {sig}",
            self.cmdline
        );
        signal::kill(Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("{sig} to `{}`: {e}", self.cmdline));
    }

    /// Sends signal number `n` (a real-time one, say, which `Signal` cannot name) with kill(1).
    #[track_caller]
    pub fn signal_number(&self, n: i32) {
        assert!(
            self.exit.is_none(),
            "`{}` already exited; cannot send signal {n}",
            self.cmdline
        );
        let status = Command::new("kill")
            .arg(format!("-{n}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill(1): {e}"));
        assert!(status.success(), "kill -{n} `{}`: {status}", self.cmdline);
    }

    /// SIGKILLs and reaps the process unless already reaped; never panics.
    fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit = Some((status, self.started.elapsed()));
        }
    }
}

impl Drop for RunningRlock {
    /// Kills and reaps the process if it is still running.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything written to `file` so far (lossy UTF-8).
fn read_all(mut file: &File) -> String {
    let mut bytes = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The result of a finished `rlock` run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time from spawn to observed exit.
    pub elapsed: Duration,
    /// Shell-like rendering of the invocation.
    pub cmdline: String,
}

impl RunOutput {
    /// The exit code, or `None` if killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts the exit code is `expected`.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        let what = format!("expected exit code {expected}");
        self.check(self.code() == Some(expected), &what)
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        let what = format!("expected stderr to contain {needle:?}");
        self.check(self.stderr.contains(needle), &what)
    }

    /// Asserts stderr is empty.
    #[track_caller]
    pub fn assert_stderr_empty(&self) -> &Self {
        self.check(self.stderr.is_empty(), "expected empty stderr")
    }

    /// Asserts stdout is exactly `expected`.
    #[track_caller]
    pub fn assert_stdout_eq(&self, expected: &str) -> &Self {
        let what = format!("expected stdout {expected:?}");
        self.check(self.stdout == expected, &what)
    }

    /// Panics with `what` followed by the full run report unless `ok`.
    #[track_caller]
    fn check(&self, ok: bool, what: &str) -> &Self {
        assert!(ok, "{what}\n{self}");
        self
    }
}

impl fmt::Display for RunOutput {
    /// Command line, status, timing, stdout and stderr, for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.cmdline)?;
        writeln!(f, "status:  {} (after {:?})", self.status, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// The write end of a pipe whose read end is closed: every write fails with `EPIPE`.
pub fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    writer
}

/// A pipe already full, that nobody reads: every write blocks (until the reader is dropped).
pub struct FullPipe {
    /// Kept open and never read, so that the pipe stays full.
    _reader: std::io::PipeReader,
    writer: std::io::PipeWriter,
}

impl FullPipe {
    pub fn new() -> Self {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        use std::io::Write as _;
        let (reader, mut writer) = std::io::pipe().expect("create a pipe");
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("make the pipe non-blocking");
        while writer.write(&[b'x'; 4096]).is_ok() {}
        // Blocking again: whoever gets the pipe waits on it, as on a real stalled reader.
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::empty())).expect("make the pipe blocking");
        FullPipe {
            _reader: reader,
            writer,
        }
    }

    /// Another handle on the write end, to hand to a process.
    pub fn writer(&self) -> std::io::PipeWriter {
        self.writer.try_clone().expect("dup the pipe")
    }
}

/// `rlock SUBCOMMAND -r URL... -k KEY ARGS...`, run to completion.
pub fn by_hand(subcommand: &str, servers: &[RedisServer], key: &str, args: &[&str]) -> RunOutput {
    rlock()
        .arg(subcommand)
        .on(servers)
        .args(["-k", key])
        .args(args)
        .output()
}

/// The one JSON object a successful `--format json` run printed.
#[track_caller]
pub fn json_of(out: &RunOutput) -> serde_json::Value {
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("one JSON object ({e})\n{out}"))
}

/// The fence in an `acquire --format json` object (a decimal string).
#[track_caller]
pub fn fence_in(v: &serde_json::Value) -> u64 {
    v["fence"]
        .as_str()
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("the fence is a decimal string: {v}"))
}
