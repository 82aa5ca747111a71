//! The Redis nodes under test: real `redis-server` processes that the nemesis pauses, kills and
//! restarts empty, and whose wall clocks it jumps.
//!
//! Each node runs without persistence (a crash-restart forgets every lock, as a power loss would)
//! on a free loopback port that it keeps across restarts, under the clock shim
//! (`clockshim.c`, compiled here with the system C compiler) with its own offset file. The
//! integration fixture `RedisServer` cannot be reused: it takes no environment for the shim.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::support::free_port;

/// How long a node may take to answer PING after a (re)start.
const STARTUP: Duration = Duration::from_secs(10);

/// Compiles `clockshim.c` into `dir` and returns the shared library's path.
pub fn build_shim(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/clockshim.c");
    let library = dir.join("clockshim.so");
    let out = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .output()
        .expect("run cc (the clock shim needs a C compiler: apt-get install gcc)");
    assert!(
        out.status.success(),
        "cc failed to build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    library
}

/// One `redis-server`, killed and reaped on drop.
pub struct Node {
    /// Position in the node list, as the report names it.
    pub index: usize,
    /// The TCP port, kept across crash-restarts.
    port: u16,
    /// The running process (`None` only between a crash and its restart).
    child: Option<Child>,
    /// Whether the process is stopped by `SIGSTOP`.
    paused: bool,
    /// The node's directory: its log, and the clock shim's offset file.
    dir: PathBuf,
    /// The clock shim library.
    shim: PathBuf,
}

impl Node {
    /// Starts node `index` in a directory of its own under `run_dir`.
    pub fn start(index: usize, run_dir: &Path, shim: &Path) -> Node {
        let dir = run_dir.join(format!("node{index}"));
        fs::create_dir_all(&dir).expect("create the node's directory");
        let mut node = Node {
            index,
            port: 0,
            child: None,
            paused: false,
            dir,
            shim: shim.to_owned(),
        };
        node.set_clock_offset(0);
        let mut failures = Vec::new();
        for _ in 0..5 {
            node.port = free_port();
            match node.launch() {
                Ok(()) => return node,
                Err(why) => failures.push(format!("port {}: {why}", node.port)),
            }
        }
        panic!(
            "redis-server failed to start:\n{}\n{}",
            failures.join("\n"),
            node.log()
        );
    }

    /// The node's own port (the monitor's way in; clients go through the proxy).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the running server.
    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("the node is running");
        i32::try_from(child.id()).expect("a pid fits in i32")
    }

    /// Freezes the server (`SIGSTOP`): connects still succeed, nothing is answered, and its keys
    /// keep expiring by its wall clock.
    pub fn pause(&mut self) {
        self.signal(Signal::SIGSTOP);
        self.paused = true;
    }

    /// Resumes a paused server; requests queued meanwhile run now.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal(Signal::SIGCONT);
            self.paused = false;
        }
    }

    /// `kill -9`, then a restart on the same port with no data: the node forgets every lock and
    /// fence counter it held, as after a power loss.
    pub fn crash_restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP;
        while let Err(why) = self.launch() {
            assert!(
                Instant::now() < deadline,
                "node {} does not restart on port {}: {why}\n{}",
                self.index,
                self.port,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the node's wall-clock offset; the shim picks it up within a millisecond.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        let (file, new) = (
            self.dir.join("clock-offset"),
            self.dir.join("clock-offset.new"),
        );
        fs::write(&new, offset_ms.to_string()).expect("write the clock offset");
        fs::rename(&new, &file).expect("replace the clock offset");
    }

    /// Spawns redis-server under the shim on `self.port` and waits until that process answers.
    fn launch(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .env("LD_PRELOAD", &self.shim)
            .env("CLOCKSHIM_FILE", self.dir.join("clock-offset"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot spawn redis-server ({e}); install it: apt-get install redis-server")
            })?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited early ({status})"));
            }
            // Check the pid: after a port race, another test's server may answer on this port.
            if answering_pid(self.port) == Some(child.id()) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no PING answer within {STARTUP:?}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` to the server.
    fn signal(&self, sig: Signal) {
        signal::kill(Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("{sig} to node {}: {e}", self.index));
    }

    /// Kills and reaps the server if it runs; never panics (used by `Drop`).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            if std::mem::take(&mut self.paused) {
                let _ = signal::kill(pid, Signal::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log, for panic messages.
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `process_id` of the server answering PING on `port`, if one does.
fn answering_pid(port: u16) -> Option<u32> {
    let timeout = Duration::from_millis(500);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut con = client.get_connection_with_timeout(timeout).ok()?;
    con.set_read_timeout(Some(timeout)).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    let pid = info.lines().find_map(|l| l.strip_prefix("process_id:"))?;
    pid.trim().parse().ok()
}
