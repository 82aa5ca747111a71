//! Every exit status rlock can return, in one table.
//!
//! The codes follow what users of `flock(1)`, `timeout(1)` and the shell already know: the command's
//! own status passes through (128+N for a death by signal N), 124 says "stopped for time" as
//! `timeout(1)` does, 126/127 are the shell's "cannot execute" / "not found", and the lock's own
//! outcomes take the `sysexits.h` codes cron wrappers conventionally use (69 unavailable, 75 try
//! again). Nothing else in the crate returns a literal status: it names one of these constants.

use std::fmt::{self, Write as _};
use std::sync::LazyLock;

/// Not held: `extend`/`release` found the lease is not the caller's (it expired, or another holder
/// has the lock); `status` found the lock free; `list` found no lock held.
pub const NOT_HELD: u8 = 3;
/// Usage error: a bad flag, value or combination of options.
pub const USAGE: u8 = 2;
/// Redis could not be reached, or answered with an error, on enough nodes to decide anything.
pub const UNAVAILABLE: u8 = 69;
/// The lock is held by someone else (not acquired within `--wait`); `-E` changes it.
pub const BUSY: u8 = 75;
/// rlock stopped the command: its lease could not be kept, or it ran past `--max-time`.
pub const STOPPED: u8 = 124;
/// Any other failure of rlock itself.
pub const FAILURE: u8 = 125;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;

/// Every exit status and its meaning, in the order `--help` and the man page list them: the one
/// table both render. A `\n` in a meaning is where `--help` breaks the line.
pub const STATUSES: &[(&str, &str)] = &[
    (
        "N",
        "the command ran: its own exit status, or 128+N if it died of signal N",
    ),
    ("2", "usage error (bad option, value or combination)"),
    (
        "3",
        "extend, release: the lease is not yours (it expired, or another holder has the lock);\n\
         status: the lock is free; list: no lock is held",
    ),
    (
        "69",
        "Redis unreachable or answered with an error:\n\
         rlock could not tell whether the lock was free",
    ),
    (
        "75",
        "lock busy: not acquired within --wait (change it with -E)",
    ),
    (
        "124",
        "the lease could not be kept, or the command ran past --max-time: it was stopped",
    ),
    ("125", "other failure of rlock itself"),
    ("126", "the command was found but is not executable"),
    ("127", "the command was not found"),
];

/// The exit-status section of `--help`, rendered once from [`STATUSES`], the only copy of the text.
pub fn help() -> &'static str {
    /// Where the meanings start: two spaces, the code, padding.
    const INDENT: usize = 11;
    static HELP: LazyLock<String> = LazyLock::new(|| {
        let mut text = String::from("Exit status:");
        for (code, meaning) in STATUSES {
            let meaning = meaning.replace('\n', &format!("\n{:INDENT$}", ""));
            let _ = write!(text, "\n  {code:<width$}{meaning}", width = INDENT - 2);
        }
        text
    });
    &HELP
}

/// An error that carries the exit status it should end the process with.
///
/// It travels inside an `anyhow::Error` so that context added on the way up is kept, and
/// [`code_of`] finds it again at the top.
#[derive(Debug)]
pub struct Coded {
    /// The process exit status.
    pub code: u8,
    message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error ending rlock with `code`.
pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        message: message.into(),
    })
}

/// A usage error (exit 2) with `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    error(USAGE, message)
}

/// The status an error should end the process with: the innermost [`Coded`] in its chain, or
/// [`FAILURE`] for anything unforeseen.
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Coded>())
        .map_or(FAILURE, |coded| coded.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_coded_error_keeps_its_code_under_added_context() {
        let err = Err::<(), _>(error(UNAVAILABLE, "node down"))
            .context("acquiring lock 'job'")
            .unwrap_err();
        assert_eq!(code_of(&err), UNAVAILABLE);
        assert_eq!(format!("{err:#}"), "acquiring lock 'job': node down");
    }

    #[test]
    fn an_uncoded_error_is_a_failure_of_rlock_itself() {
        assert_eq!(code_of(&anyhow::anyhow!("surprise")), FAILURE);
    }

    #[test]
    fn the_table_documents_every_code() {
        for code in [
            NOT_HELD,
            USAGE,
            UNAVAILABLE,
            BUSY,
            STOPPED,
            FAILURE,
            NOT_EXECUTABLE,
            NOT_FOUND,
        ] {
            assert!(
                STATUSES.iter().any(|&(c, _)| c == code.to_string()),
                "exit code {code} is missing from exit::STATUSES"
            );
        }
    }

    #[test]
    fn the_help_text_lists_every_row_of_the_table_in_columns() {
        let help = help();
        let mut lines = help.lines();
        assert_eq!(lines.next(), Some("Exit status:"));
        for &(code, meaning) in STATUSES {
            let mut meaning = meaning.lines();
            let first = format!("  {code:<9}{}", meaning.next().unwrap_or_default());
            assert_eq!(lines.next(), Some(first.as_str()));
            for more in meaning {
                assert_eq!(lines.next(), Some(format!("{:11}{more}", "").as_str()));
            }
        }
        assert_eq!(lines.next(), None, "{help}");
    }
}
