//! Interactive use: under a real terminal (a pty that `script(1)` provides), the command can read
//! the terminal, Ctrl-C stops it and releases the lock, and Ctrl-Z stops rlock with it.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{
    RedisServer, proc_state, temp_dir, wait_for, wait_for_file, wait_or_kill, without_rlock_env,
};

/// Runs `rlock ARGS` inside a pty; returns the `script` process with its stdin (the keyboard).
fn in_terminal(redis: &RedisServer, args: &str) -> Child {
    let line = format!("{} -r {} {args}", env!("CARGO_BIN_EXE_rlock"), redis.url());
    in_pty(&line)
}

/// Runs the shell command `line` inside a pty; returns the `script` process with its stdin.
fn in_pty(line: &str) -> Child {
    let mut command = Command::new("script");
    command
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    without_rlock_env(&mut command)
        .spawn()
        .expect("script(1) from util-linux runs")
}

/// Waits for `child` with a deadline; returns its exit code and output.
fn finish(mut child: Child) -> (Option<i32>, String) {
    wait_or_kill(&mut child, Duration::from_secs(10), "the terminal session");
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

#[test]
fn ctrl_z_past_the_ttl_then_fg_says_rlock_was_stopped_not_that_redis_failed() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let ready = dir.path().join("ready");
    // An interactive shell with job control, as at a terminal.
    let mut session = in_pty("bash --norc --noprofile -i");
    let keyboard = session.stdin.as_mut().unwrap();
    // 2s, not 1s: with 1s the stop comes 740ms after the grant, and a loaded machine may not
    // have heard the first extension by then, which would make Redis the right one to blame.
    let line = format!(
        "{} -r {} -t 2s -k cz -- sh -c 'echo $$ $PPID > {}; exec sleep 30'\n",
        env!("CARGO_BIN_EXE_rlock"),
        redis.url(),
        ready.display()
    );
    keyboard.write_all(line.as_bytes()).unwrap();
    let pids = wait_for_file(&ready, Duration::from_secs(5));
    let [command, rlock]: [i32; 2] = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    keyboard.write_all(b"\x1a").unwrap();
    wait_for(
        "rlock to stop with its command",
        Duration::from_secs(5),
        || proc_state(rlock) == Some('T'),
    );
    // The guardian kills the command at the deadline; the stopped rlock cannot reap it.
    wait_for(
        "the guardian to kill the command",
        Duration::from_secs(5),
        || matches!(proc_state(command), None | Some('Z')),
    );
    // As a user would, leave rlock stopped a while longer before `fg`.
    std::thread::sleep(Duration::from_secs(1));
    keyboard.write_all(b"fg; exit $?\n").unwrap();
    let (code, out) = finish(session);
    assert_eq!(code, Some(124), "{out}");
    assert!(out.contains("lost lock 'cz': rlock was stopped"), "{out}");
    assert!(!out.contains("unreachable"), "{out}");
}
