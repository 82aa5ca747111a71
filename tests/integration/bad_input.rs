//! Input that rlock must refuse before it takes anything: one line naming the value and the fix,
//! exit 2, at once and in bounded memory, whatever the value or the file behind it.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{RunOutput, rlock, temp_dir};

/// Asserts that `out` is a usage error: exit 2, one `rlock: ` line containing `needle`.
#[track_caller]
fn refused(out: &RunOutput, needle: &str) {
    out.assert_code(2).assert_stderr_contains(needle);
    assert!(out.stderr.starts_with("rlock: "), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out}");
}

#[test]
fn a_kill_signal_that_does_not_end_a_process_is_refused_naming_it_and_the_fix() {
    for (given, named) in [
        ("STOP", "SIGSTOP"),
        ("CONT", "SIGCONT"),
        ("SIGWINCH", "SIGWINCH"),
        ("chld", "SIGCHLD"),
        ("URG", "SIGURG"),
        ("TSTP", "SIGTSTP"),
        ("TTIN", "SIGTTIN"),
        ("22", "SIGTTOU"),
    ] {
        let out = rlock()
            .args(["-k", "x", "--kill-signal", given, "--", "true"])
            .output();
        refused(
            &out,
            &format!("--kill-signal {named} does not end a process; use TERM"),
        );
    }
}

#[test]
fn a_jitter_beyond_a_day_is_refused() {
    let out = rlock()
        .args(["-k", "x", "--jitter", "1000000000000h", "--", "true"])
        .output();
    refused(&out, "--jitter");
    assert!(out.stderr.contains("at most 1day"), "{out}");
}

/// Runs `rlock -k x -- true` with `RLOCK_REDIS_FILE=path`; it must be refused within 2 s.
fn with_redis_file(path: &Path) -> RunOutput {
    let mut run = rlock()
        .env("RLOCK_REDIS_FILE", path)
        .args(["-k", "x", "--", "true"])
        .spawn();
    run.wait_timeout(Duration::from_secs(2)).unwrap_or_else(|| {
        panic!(
            "rlock still reads --redis-file {} after 2 s",
            path.display()
        )
    })
}

/// Writes `contents` to a file only its owner can read, as a URL file must be.
fn private_file(dir: &Path, contents: &[u8]) -> PathBuf {
    let path = dir.join("urls");
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_redis_file_that_is_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
    let dir = temp_dir();
    let fifo = dir.path().join("urls");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused(
        &with_redis_file(&fifo),
        "is a FIFO; it must be a regular file",
    );
}

#[test]
fn a_redis_file_that_is_a_device_or_a_directory_is_refused_saying_what_it_is() {
    refused(
        &with_redis_file(Path::new("/dev/zero")),
        "--redis-file /dev/zero is a character device",
    );
    let dir = temp_dir();
    refused(&with_redis_file(dir.path()), "is a directory");
}

#[test]
fn a_large_redis_file_is_refused_without_reading_it_whole() {
    let dir = temp_dir();
    let line = format!("redis://:{}@127.0.0.1:1\n", "p".repeat(100));
    let path = private_file(dir.path(), line.repeat(10_000).as_bytes());
    assert!(fs::metadata(&path).unwrap().len() > 1_000_000);
    let out = with_redis_file(&path);
    refused(&out, "is larger than 64 KiB");
    assert!(out.stderr.len() < 300, "{out}");
}

#[test]
fn a_bad_line_in_a_redis_file_is_named_by_number_without_quoting_it() {
    let dir = temp_dir();
    let long = format!("\nredis://:{}@h:1\n", "hunter2".repeat(1000));
    let cases: [(&[u8], &str); 3] = [
        (
            b"# nodes\nredis://:hunter2@127.0.0.1:1\nhunter2 is the password\n",
            "line 3 of --redis-file",
        ),
        (long.as_bytes(), "line 2 of --redis-file"),
        (b"redis://h:1\n\xffhunter2\n", "line 2 of --redis-file"),
    ];
    for (contents, needle) in cases {
        let out = with_redis_file(&private_file(dir.path(), contents));
        refused(&out, needle);
        assert!(
            !out.stderr.contains("hunter2"),
            "the line was quoted: {out}"
        );
        assert!(out.stderr.len() < 300, "{out}");
    }
}
