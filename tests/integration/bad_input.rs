//! Input that rlock must refuse before it takes anything: one line naming the value and the fix,
//! exit 2, at once and in bounded memory, whatever the value or the file behind it.

use crate::support::{RunOutput, rlock};

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
