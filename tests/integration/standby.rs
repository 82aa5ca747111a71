//! Standby services: `rlock -k svc -w forever -- daemon` on several hosts, as under systemd's
//! `Restart=always` (`examples/standby.service`). One daemon runs, the other runners wait; when
//! the active rlock is killed or paused past its lease, its daemon is gone before a standby's
//! daemon starts, the standby takes over within the TTL and a small margin, and the new term's
//! fence is higher.
//!
//! The daemons keep their own records (start and stop times on the boot clock, pid, fence), and
//! each one checks at its start that no earlier daemon is still alive: the overlap is judged by
//! the daemons themselves, not by a test that might look too late. The tests print the takeover
//! times that the README quotes, including the one case with an overlap: a lock broken (or lost
//! by Redis) under a live holder, which only the fence tells apart. The README's own standby demo
//! runs here as written.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::support::{
    RedisServer, RunningRlock, Servers, on, process_gone, rlock, temp_dir, wait_for, wait_or_kill,
    without_rlock_env,
};

/// The lease's TTL in these tests: short, so that a takeover comes quickly.
const TTL: Duration = Duration::from_secs(2);
/// How late after the TTL a takeover may come: the waiter tries within 3 ms of the expiry it
/// was told, and then starts a shell, on a machine that other builds share.
const MARGIN: Duration = Duration::from_secs(1);
/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);
/// The lock every runner asks for.
const KEY: &str = "svc";

/// The stand-in daemon, `sh DAEMON LOG`. At its start it notes, for every daemon that `LOG` says
/// started before it, whether that one is still alive (a zombie is dead: it runs no code), then
/// appends `start UPTIME PID FENCE alive:PIDS`; on `SIGTERM` it appends `stop UPTIME PID` and
/// exits 0. Times are `/proc/uptime`, the boot clock (10 ms steps), which the test reads too.
const DAEMON: &str = r#"log=$1
now() { read -r up _ </proc/uptime; echo "$up"; }
alive=
for pid in $(awk '$1 == "start" { print $3 }' "$log" 2>/dev/null); do
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
  case $state in '' | Z | X) continue ;; esac
  # A pid can be reused: only a process running this script with this log is one of ours.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$log" && alive="$alive $pid"
done
echo "start $(now) $$ $RLOCK_FENCE alive:$alive" >>"$log"
trap 'echo "stop $(now) $$" >>"$log"; exit 0' TERM
sleep 300 &
wait
"#;

/// A daemon's start, as it recorded it.
#[derive(Debug, Clone)]
struct Start {
    /// Boot clock at its start, in seconds.
    at: f64,
    /// Its pid, which is also its process group (rlock starts the command as a group leader).
    pid: i32,
    /// The `RLOCK_FENCE` it was given.
    fence: u64,
    /// Earlier daemons it found still alive when it started: must be empty.
    alive: Vec<i32>,
}

/// The daemons of one test: the script, their shared log, and cleanup of any left running.
struct Daemons {
    /// Holds the script and the log; deleted on drop.
    dir: tempfile::TempDir,
}

impl Daemons {
    fn new() -> Self {
        let dir = temp_dir();
        fs::write(dir.path().join("daemon"), DAEMON).expect("write the daemon script");
        Self { dir }
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("daemon")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A standby runner: `rlock -k svc -w forever -t TTL -- sh DAEMON LOG`.
    fn runner(&self, redis: &(impl Servers + ?Sized)) -> RunningRlock {
        let ttl = format!("{}ms", TTL.as_millis());
        on(redis)
            .args(["-k", KEY, "-w", "forever", "-t", &ttl, "--", "sh"])
            .arg(self.script())
            .arg(self.log())
            .stdin_null()
            .spawn()
    }

    /// The log's lines, split into words.
    fn lines(&self) -> Vec<Vec<String>> {
        fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    /// Every start recorded so far, in order.
    fn starts(&self) -> Vec<Start> {
        self.lines()
            .iter()
            .filter(|w| w[0] == "start")
            .map(|w| Start {
                at: w[1].parse().expect("an uptime"),
                pid: w[2].parse().expect("a pid"),
                fence: w[3].parse().expect("a fence"),
                alive: w[4..]
                    .iter()
                    .map(|p| p.trim_start_matches("alive:"))
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().expect("a pid"))
                    .collect(),
            })
            .collect()
    }

    /// When daemon `pid` recorded its stop, if it did (one killed outright cannot). A daemon
    /// records each stop signal, and must get one at most: a second one would kill its trap's
    /// own commands half-way (a stop line without its time).
    #[track_caller]
    fn stopped_at(&self, pid: i32) -> Option<f64> {
        let pid = pid.to_string();
        let stops: Vec<Vec<String>> = self
            .lines()
            .into_iter()
            .filter(|w| w[0] == "stop" && w.last() == Some(&pid))
            .collect();
        assert!(
            stops.len() <= 1 && stops.iter().all(|w| w.len() == 3),
            "daemon {pid} got its stop signal more than once\n{}",
            self.shown()
        );
        stops.first().map(|w| w[1].parse().expect("an uptime"))
    }

    /// Waits until `n` daemons have started; returns the `n`th.
    #[track_caller]
    fn wait_for_start(&self, n: usize, timeout: Duration) -> Start {
        let what = format!("daemon {n} to start\n{}", self.shown());
        let mut starts = Vec::new();
        wait_for(&what, timeout, || {
            starts = self.starts();
            starts.len() >= n
        });
        starts.swap_remove(n - 1)
    }

    /// The log, for failure messages.
    fn shown(&self) -> String {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        format!("--- daemons' log ---\n{log}")
    }
}

impl Drop for Daemons {
    /// Kills the group of every daemon still running, whatever the test did before it failed.
    fn drop(&mut self) {
        let log = self.log().display().to_string();
        for start in self.starts() {
            let ours = fs::read(format!("/proc/{}/cmdline", start.pid))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&log));
            if ours && !process_gone(start.pid) {
                let _ = killpg(Pid::from_raw(start.pid), Signal::SIGKILL);
            }
        }
    }
}

/// The boot clock, as the daemons read it.
fn uptime() -> f64 {
    let text = fs::read_to_string("/proc/uptime").expect("read /proc/uptime");
    let secs = text.split_whitespace().next().expect("an uptime");
    secs.parse().expect("an uptime in seconds")
}

/// `to - from` on the boot clock, in whole milliseconds (negative if `to` is earlier).
#[allow(clippy::cast_possible_truncation)]
fn ms(from: f64, to: f64) -> i64 {
    ((to - from) * 1000.0).round() as i64
}

/// How many clients listen for releases of lock `key`: the runners that are waiting for it.
pub fn waiting(redis: &RedisServer, key: &str) -> i64 {
    match redis.cmd(&["PUBSUB", "NUMSUB", &format!("rlock:{{{key}}}:released")]) {
        redis::Value::Array(reply) => match reply.get(1) {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("PUBSUB NUMSUB answered {other:?}"),
        },
        other => panic!("PUBSUB NUMSUB answered {other:?}"),
    }
}

/// Waits until `n` runners are waiting for the lock.
#[track_caller]
fn wait_for_waiting(redis: &RedisServer, n: i64) {
    wait_for(&format!("{n} runner(s) to wait for the lock"), SOON, || {
        waiting(redis, KEY) == n
    });
}

/// Checks that `next` started with no earlier daemon alive and a higher fence than `previous`.
#[track_caller]
fn check_term(daemons: &Daemons, previous: &Start, next: &Start) {
    assert!(
        next.alive.is_empty(),
        "daemon {} started while {:?} still ran\n{}",
        next.pid,
        next.alive,
        daemons.shown()
    );
    assert!(
        next.fence > previous.fence,
        "the new term's fence {} is not above the old one's {}\n{}",
        next.fence,
        previous.fence,
        daemons.shown()
    );
}

/// The TTL plus [`MARGIN`], in milliseconds.
fn takeover_bound_ms() -> i64 {
    i64::try_from((TTL + MARGIN).as_millis()).expect("a small duration")
}

/// Two runners on `servers`; the active one's rlock gets `kill -9`.
fn killing_the_active_rlock_hands_the_service_to_a_standby(servers: &[RedisServer]) {
    let redis = &servers[0];
    let daemons = Daemons::new();
    let mut active = daemons.runner(servers);
    let first = daemons.wait_for_start(1, SOON);
    let mut standby = daemons.runner(servers);
    wait_for_waiting(redis, 1);

    let killed = uptime();
    active.signal(Signal::SIGKILL);
    let second = daemons.wait_for_start(2, TTL + SOON);
    check_term(&daemons, &first, &second);
    let stopped = daemons.stopped_at(first.pid).unwrap_or_else(|| {
        panic!(
            "the guardian stops the old daemon with SIGTERM, which it records\n{}",
            daemons.shown()
        )
    });
    assert!(
        stopped <= second.at,
        "the old daemon stopped after the new one started\n{}",
        daemons.shown()
    );
    let takeover = ms(killed, second.at);
    eprintln!(
        "standby after kill -9 (TTL {TTL:?}, {} node(s)): old daemon stopped {} ms after the \
         kill, new daemon started {takeover} ms after it",
        servers.len(),
        ms(killed, stopped)
    );
    assert!(
        takeover <= takeover_bound_ms(),
        "the standby took {takeover} ms to take over, more than TTL + {MARGIN:?}\n{}",
        daemons.shown()
    );
    let out = active.wait();
    assert_eq!(out.status.signal(), Some(9), "{out}");

    // systemctl stop on the new active host: its daemon stops and the lock is released.
    standby.signal(Signal::SIGTERM);
    standby
        .wait_timeout(SOON)
        .expect("rlock exits")
        .assert_success();
    assert!(
        daemons.stopped_at(second.pid).is_some(),
        "{}",
        daemons.shown()
    );
    for server in servers {
        assert!(!server.exists("rlock:{svc}"), "released on stop");
    }
}

#[test]
fn killing_the_active_rlock_hands_the_service_to_a_standby_within_the_ttl() {
    killing_the_active_rlock_hands_the_service_to_a_standby(&[RedisServer::start()]);
}

#[test]
fn killing_the_active_rlock_hands_the_service_to_a_standby_over_a_quorum() {
    killing_the_active_rlock_hands_the_service_to_a_standby(&RedisServer::start_many(3));
}

#[test]
fn a_paused_active_rlock_loses_its_daemon_to_the_guardian_and_the_standby_takes_over() {
    let redis = RedisServer::start();
    let daemons = Daemons::new();
    let mut active = daemons.runner(&redis);
    let first = daemons.wait_for_start(1, SOON);
    let mut standby = daemons.runner(&redis);
    wait_for_waiting(&redis, 1);

    let paused = uptime();
    active.signal(Signal::SIGSTOP);
    wait_for(
        "the guardian to kill the paused rlock's daemon",
        TTL + SOON,
        || process_gone(first.pid),
    );
    let gone = uptime();
    let second = daemons.wait_for_start(2, TTL + SOON);
    check_term(&daemons, &first, &second);
    assert!(
        daemons.stopped_at(first.pid).is_none(),
        "the guardian kills at the deadline (SIGKILL): no time for a stop record\n{}",
        daemons.shown()
    );
    let takeover = ms(paused, second.at);
    eprintln!(
        "standby after SIGSTOP (TTL {TTL:?}): old daemon gone {} ms after the pause, \
         new daemon started {takeover} ms after it",
        ms(paused, gone)
    );
    assert!(
        takeover <= takeover_bound_ms(),
        "the standby took {takeover} ms to take over, more than TTL + {MARGIN:?}\n{}",
        daemons.shown()
    );

    // Resumed, the old rlock finds its lease gone: it exits 124 and starts nothing.
    active.signal(Signal::SIGCONT);
    let out = active.wait_timeout(SOON).expect("rlock exits once resumed");
    out.assert_code(124)
        .assert_stderr_contains("rlock was stopped");
    assert_eq!(daemons.starts().len(), 2, "{}", daemons.shown());
    assert!(!process_gone(second.pid), "{}", daemons.shown());

    // systemd restarts it (here at once, with no RestartSec): it waits behind the new holder.
    wait_for_waiting(&redis, 0);
    let mut restarted = daemons.runner(&redis);
    wait_for_waiting(&redis, 1);
    assert_eq!(daemons.starts().len(), 2, "{}", daemons.shown());

    // systemctl stop on the active host hands the service back at once, with a higher fence.
    standby.signal(Signal::SIGTERM);
    standby
        .wait_timeout(SOON)
        .expect("rlock exits")
        .assert_success();
    let third = daemons.wait_for_start(3, SOON);
    check_term(&daemons, &second, &third);
    let stopped = daemons
        .stopped_at(second.pid)
        .expect("a stopped daemon's record");
    eprintln!(
        "standby after systemctl stop: new daemon started {} ms after the old one stopped",
        ms(stopped, third.at)
    );
    restarted.signal(Signal::SIGTERM);
    restarted
        .wait_timeout(SOON)
        .expect("rlock exits")
        .assert_success();
}

#[test]
fn a_broken_lock_starts_the_standby_at_once_and_stops_the_old_daemon_within_a_third_of_the_ttl() {
    let redis = RedisServer::start();
    let daemons = Daemons::new();
    let mut active = daemons.runner(&redis);
    let first = daemons.wait_for_start(1, SOON);
    let mut standby = daemons.runner(&redis);
    wait_for_waiting(&redis, 1);

    // An operator breaks the lock (or Redis loses it): nothing stops the old daemon until its
    // rlock's next extension, at most TTL/3 later, finds the lease gone.
    let broken = uptime();
    rlock()
        .args(["release", "-r", &redis.url(), "-k", KEY, "--force"])
        .output()
        .assert_success();
    let second = daemons.wait_for_start(2, SOON);
    assert!(
        second.fence > first.fence,
        "the new term's fence {} is not above the old one's {}\n{}",
        second.fence,
        first.fence,
        daemons.shown()
    );
    let out = active
        .wait_timeout(TTL + SOON)
        .expect("the old rlock exits");
    out.assert_code(124);
    let stopped = daemons
        .stopped_at(first.pid)
        .expect("the old daemon is stopped with SIGTERM, which it records");
    eprintln!(
        "standby after release --force (TTL {TTL:?}): new daemon started {} ms after the break, \
         old daemon stopped {} ms after it: {} ms of overlap",
        ms(broken, second.at),
        ms(broken, stopped),
        ms(second.at, stopped).max(0)
    );
    assert!(
        ms(broken, stopped) <= i64::try_from((TTL / 3 + MARGIN).as_millis()).unwrap(),
        "the old daemon outlived the break by more than TTL/3 + {MARGIN:?}\n{}",
        daemons.shown()
    );
    standby.signal(Signal::SIGTERM);
    standby
        .wait_timeout(SOON)
        .expect("rlock exits")
        .assert_success();
}

/// Kills a process group on drop: the shell and the runners it left in the background (their
/// guardians then stop the daemons), whatever the test did before it failed.
struct GroupKiller(Pid);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// The README's block marked `readme-standby`.
fn readme_block() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    readme
        .split("<!-- readme-standby")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has the marked standby block")
        .to_owned()
}

/// The numbers after `label` in `text`, in order.
fn numbers_after(text: &str, label: &str) -> Vec<u64> {
    text.split(label)
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a number")
        })
        .collect()
}

#[test]
fn the_readme_standby_demo_runs_as_written_and_hands_over_with_a_higher_fence() {
    let redis = RedisServer::start();
    let bin = temp_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlock"), bin.path().join("rlock")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stdout = tempfile::NamedTempFile::new().expect("a stdout file");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &readme_block()])
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(stdout.reopen().expect("reopen the stdout file"))
        .process_group(0);
    without_rlock_env(&mut cmd).env("RLOCK_REDIS", redis.url());
    let mut demo = cmd.spawn().expect("sh runs");
    let _runners = GroupKiller(Pid::from_raw(demo.id().try_into().unwrap()));
    let status = wait_or_kill(
        &mut demo,
        Duration::from_secs(30),
        "the README's standby demo",
    );
    assert!(status.success(), "{status}");
    // The second runner stops in the background after the block's last `kill`.
    wait_for("the last runner to release the lock", SOON, || {
        !redis.exists("rlock:{svc}")
    });
    let out = fs::read_to_string(stdout.path()).expect("read the demo's output");
    let fences = numbers_after(&out, ", fence ");
    // (The queue's line names the next waiter: not a holder.)
    let holders: Vec<u64> = out
        .lines()
        .filter(|l| !l.contains("waiting:"))
        .flat_map(|l| numbers_after(l, " pid "))
        .collect();
    let latest = numbers_after(&out, "latest fence: ");
    assert_eq!(fences.len(), 2, "two daemons, one after the other\n{out}");
    assert!(
        fences[1] > fences[0],
        "the new term's fence is higher\n{out}"
    );
    assert_eq!(latest, fences, "status shows each term's fence\n{out}");
    // Each daemon prints its own pid; status shows each holder's rlock, a different one.
    assert_eq!(holders.len(), 4, "{out}");
    assert_ne!(holders[1], holders[3], "status names the new holder\n{out}");
}
