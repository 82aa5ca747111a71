//! Diagnostics on stderr: one `rlock: ` prefix, and a verbosity that `-q` and `-v` set once.
//!
//! Errors are not printed here: they travel up as values and `main` prints the one line. This
//! module is for what happens along the way: warnings (silenced by `-q`) and progress (`-v`). With
//! `-v` every line also carries a UTC timestamp and the lock's name, so that cron mail and
//! `journalctl` tell a clear story of acquired, extended, lost, released.

use std::fmt;
use std::sync::OnceLock;
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
static KEY: OnceLock<String> = OnceLock::new();

/// Sets the process-wide verbosity, and the lock name that `-v` lines carry.
pub fn set_level(level: Level, key: &str) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let _ = KEY.set(key.to_owned());
}

/// Whether messages at `level` are printed.
pub fn enabled(level: Level) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// Prints one diagnostic line at `level` (`warning` marks a warning).
pub fn emit(level: Level, warning: bool, message: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let kind = if warning { "warning: " } else { "" };
    if enabled(Level::Verbose) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let key = KEY.get().map_or("", String::as_str);
        eprintln!("rlock: {now} [{key}] {kind}{message}");
    } else {
        eprintln!("rlock: {kind}{message}");
    }
}

/// Prints a warning (not with `-q`).
macro_rules! warning {
    ($($arg:tt)*) => {
        $crate::log::emit($crate::log::Level::Normal, true, format_args!($($arg)*))
    };
}

/// Prints a progress line (only with `-v`).
macro_rules! info {
    ($($arg:tt)*) => {
        $crate::log::emit($crate::log::Level::Verbose, false, format_args!($($arg)*))
    };
}

pub(crate) use {info, warning};
