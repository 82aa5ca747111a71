//! The Redis nodes under test: real `redis-server` processes that the nemesis pauses, kills and
//! restarts empty, and whose wall clocks it jumps.
//!
//! Each node runs without persistence (a crash-restart forgets every lock, as a power loss would)
//! on a free loopback port that it keeps across restarts, under the clock shim
//! (`clockshim.c`, compiled here with the system C compiler) with its own offset file. The
//! server itself is the integration fixture `support::RedisServer`, given the shim's environment.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::RedisServer;

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

/// One `redis-server` under the clock shim, killed and reaped on drop.
pub struct Node {
    /// The server: the integration fixture, with the shim in its environment.
    server: RedisServer,
    /// The node's directory, holding the clock shim's offset file.
    dir: PathBuf,
}

impl Node {
    /// Starts node `index` with its clock offset file in a directory of its own under `run_dir`.
    pub fn start(index: usize, run_dir: &Path, shim: &Path) -> Node {
        let dir = run_dir.join(format!("node{index}"));
        fs::create_dir_all(&dir).expect("create the node's directory");
        set_clock_offset(&dir, 0);
        let env = vec![
            (OsString::from("LD_PRELOAD"), shim.as_os_str().to_owned()),
            (
                OsString::from("CLOCKSHIM_FILE"),
                dir.join("clock-offset").into_os_string(),
            ),
        ];
        let server = RedisServer::start_with_env(env);
        Node { server, dir }
    }

    /// The node's own port (the monitor's way in; clients go through the proxy).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Freezes the server (`SIGSTOP`): connects still succeed, nothing is answered, and its keys
    /// keep expiring by its wall clock.
    pub fn pause(&mut self) {
        self.server.pause();
    }

    /// Resumes a paused server; requests queued meanwhile run now.
    pub fn resume(&mut self) {
        self.server.resume();
    }

    /// `kill -9`, then a restart on the same port with no data: the node forgets every lock and
    /// fence counter it held, as after a power loss.
    pub fn crash_restart(&mut self) {
        self.server.crash_restart();
    }

    /// Sets the node's wall-clock offset; the shim picks it up within a millisecond.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        set_clock_offset(&self.dir, offset_ms);
    }
}

/// Writes the offset file in `dir` atomically (the shim must never read half a number).
fn set_clock_offset(dir: &Path, offset_ms: i64) {
    let (file, new) = (dir.join("clock-offset"), dir.join("clock-offset.new"));
    fs::write(&new, offset_ms.to_string()).expect("write the clock offset");
    fs::rename(&new, &file).expect("replace the clock offset");
}
