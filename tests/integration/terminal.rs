//! Interactive use: under a real terminal (a pty that `script(1)` provides), the command can read
//! the terminal, and Ctrl-C stops it and releases the lock.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{RedisServer, temp_dir, wait_for_file};

/// Runs `rlock ARGS` inside a pty; returns the `script` process with its stdin (the keyboard).
fn in_terminal(redis: &RedisServer, args: &str) -> Child {
    let line = format!("{} -r {} {args}", env!("CARGO_BIN_EXE_rlock"), redis.url());
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"RLOCK_") {
            command.env_remove(key);
        }
    }
    command.spawn().expect("script(1) from util-linux runs")
}

/// Waits for `child` with a deadline; returns its exit code and output.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the terminal session did not end");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_command_can_read_the_terminal() {
    let redis = RedisServer::start();
    let mut session = in_terminal(&redis, "-k tty -- sh -c 'read answer; echo got:$answer'");
    session
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello\n")
        .unwrap();
    let (code, out) = finish(session);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("got:hello"), "{out}");
}

#[test]
fn ctrl_c_in_a_terminal_stops_the_command_and_releases_the_lock() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let ready = dir.path().join("ready");
    let args = format!(
        "-k tty -- sh -c 'echo ok > {}; exec sleep 300'",
        ready.display()
    );
    let mut session = in_terminal(&redis, &args);
    wait_for_file(&ready, Duration::from_secs(5));
    session.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let (code, out) = finish(session);
    assert_eq!(code, Some(130), "{out}");
    assert!(!redis.exists("rlock:{tty}"), "released after Ctrl-C");
}
