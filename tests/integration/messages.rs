//! Messages that say what to do: a mistyped flag names the right one, a command without `--`
//! is told where to go, a flag beats the other option's environment variable, and `status`
//! prints numbers as JSON numbers.

use crate::support::{RunOutput, rlock};

/// Asserts that `out` is a usage error: exit 2 and exactly the one line `expected`.
#[track_caller]
fn refused_with(out: &RunOutput, expected: &str) {
    out.assert_code(2);
    assert_eq!(out.stderr, format!("{expected}\n"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn a_mistyped_flag_is_refused_naming_the_flag_it_resembles() {
    let out = rlock()
        .args(["--ttll", "5s", "-k", "x", "--", "true"])
        .output();
    refused_with(
        &out,
        "rlock: unexpected argument '--ttll'; did you mean '--ttl'?",
    );
    let out = rlock()
        .args(["status", "-k", "x", "--frmat", "json"])
        .output();
    refused_with(
        &out,
        "rlock: unexpected argument '--frmat'; did you mean '--format'?",
    );
}

#[test]
fn a_mistyped_value_or_subcommand_is_refused_naming_the_one_it_resembles() {
    let out = rlock()
        .args(["status", "-k", "x", "--format", "jsn"])
        .output();
    refused_with(
        &out,
        "rlock: invalid value 'jsn' for '--format <FORMAT>' [possible values: plain, json]; \
         did you mean 'json'?",
    );
    let out = rlock().args(["stauts", "-k", "x"]).output();
    refused_with(
        &out,
        "rlock: unexpected argument 'stauts'; did you mean 'rlock status'?",
    );
}

#[test]
fn a_command_without_the_double_dash_is_told_to_go_after_it() {
    for argv in [
        &["-k", "x", "echo", "hi"][..],
        &["run", "-k", "x", "echo", "hi"],
    ] {
        let out = rlock().args(argv).output();
        refused_with(
            &out,
            "rlock: unexpected argument 'echo'; put the command after '--': \
             rlock [OPTIONS] -- echo ...",
        );
    }
}

#[test]
fn a_subcommand_after_options_is_told_to_come_first() {
    let out = rlock().args(["-k", "x", "status"]).output();
    refused_with(
        &out,
        "rlock: unexpected argument 'status'; a subcommand comes first: rlock status [OPTIONS]",
    );
}
