//! Diagnostics on stderr: one `rlock: ` prefix, and a verbosity that `-q` and `-v` set once.
//!
//! Errors are not printed here: they travel up as values and `main` prints the one line. This
//! module is for what happens along the way: warnings (silenced by `-q`) and progress (`-v`).

use std::sync::atomic::{AtomicU8, Ordering};

/// How much rlock says on stderr besides errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors only (`-q`).
    Quiet = 0,
    /// Errors and warnings (the default).
    Normal = 1,
    /// Also progress: acquired, extended, released (`-v`).
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Normal as u8);

/// Sets the process-wide verbosity.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages at `level` are printed.
pub fn enabled(level: Level) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// Prints a warning (not with `-q`).
macro_rules! warning {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Normal) {
            eprintln!("rlock: warning: {}", format_args!($($arg)*));
        }
    };
}

/// Prints a progress line (only with `-v`).
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Verbose) {
            eprintln!("rlock: {}", format_args!($($arg)*));
        }
    };
}

pub(crate) use {info, warning};
