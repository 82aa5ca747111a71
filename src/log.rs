//! Diagnostics on stderr: one `rlock: ` prefix, a verbosity that `-q` and `-v` set once, and
//! never a wait for stderr itself.
//!
//! rlock's stderr is whatever its caller gave it: a terminal, cron's mail pipe, a closed pipe, or
//! a full pipe that nobody reads. The lease keeper logs, and a keeper blocked on a write stops
//! extending the lease; `eprintln!` panics on a closed pipe, and a panic aborts rlock with the
//! lease held. So no thread but one writes to stderr: [`emit`] formats the line and hands it to a
//! writer thread through a bounded queue without waiting. If that queue is full (stderr is
//! blocked), the line is dropped and counted, and the count is reported once stderr moves again.
//! Write errors (a closed pipe) are ignored. Only [`flush`], called by `main` before it exits,
//! waits for the writer, and for a bounded time.
//!
//! Errors are not printed along the way: they travel up as values and `main` prints the one line
//! with [`error`]. With `-v` every line also carries a UTC timestamp and the lock's name, so that
//! cron mail and `journalctl` tell a clear story of acquired, extended, lost, released.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

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

/// Lines waiting for the writer; more than this and stderr is not being read.
const QUEUE: usize = 256;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Normal as u8);
static KEY: OnceLock<String> = OnceLock::new();
/// Lines dropped because the queue was full, not yet reported.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The writer thread's queue, started with the first line.
static WRITER: OnceLock<Option<SyncSender<Message>>> = OnceLock::new();

/// What the writer thread receives.
enum Message {
    /// A whole line, newline included.
    Line(String),
    /// Everything sent before has been written (or failed): say so.
    Flushed(mpsc::Sender<()>),
}

/// Sets the process-wide verbosity, and the lock name that `-v` lines carry.
pub fn set_level(level: Level, key: &str) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let _ = KEY.set(key.to_owned());
}

/// Whether messages at `level` are printed.
pub fn enabled(level: Level) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// Prints one diagnostic line at `level` (`warning` marks a warning), without waiting.
pub fn emit(level: Level, warning: bool, message: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let kind = if warning { "warning: " } else { "" };
    if enabled(Level::Verbose) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let key = KEY.get().map_or("", String::as_str);
        send(format!("rlock: {now} [{key}] {kind}{message}\n"), None);
    } else {
        send(format!("rlock: {kind}{message}\n"), None);
    }
}

/// Prints the one error line `main` ends with (at every level), waiting at most `limit` for room
/// in the queue.
pub fn error(message: fmt::Arguments<'_>, limit: Duration) {
    send(format!("rlock: {message}\n"), Some(Instant::now() + limit));
}

/// How often to look for room in a full queue, or for the writer to have caught up.
const RETRY: Duration = Duration::from_millis(5);

/// Waits until every line sent so far is written, for at most `limit`: rlock must be able to
/// exit while its stderr is blocked.
pub fn flush(limit: Duration) {
    let Some(Some(writer)) = WRITER.get() else {
        return;
    };
    let until = Instant::now() + limit;
    let (done, written) = mpsc::channel();
    if !offer(writer, Message::Flushed(done), Some(until)) {
        return;
    }
    // Polled, not `recv_timeout`: that one hands the kernel an absolute deadline on the monotonic
    // clock, and a process whose clock reads are shifted (libfaketime, in the fault suite) would
    // wait for ever. Reading the clock and sleeping briefly in turn ends in time under any shift.
    while matches!(written.try_recv(), Err(mpsc::TryRecvError::Empty)) && Instant::now() < until {
        std::thread::sleep(RETRY);
    }
}

/// Queues `line` for the writer (waiting for room until `until`, if given), or counts it as
/// dropped.
fn send(line: String, until: Option<Instant>) {
    let writer = WRITER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Message>(QUEUE);
        std::thread::Builder::new()
            .name("rlock-stderr".to_owned())
            .spawn(move || write_all(&rx))
            .ok()
            .map(|_| tx)
    });
    let sent = writer
        .as_ref()
        .is_some_and(|w| offer(w, Message::Line(line), until));
    if !sent {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Puts `message` in the queue, retrying while it is full until `until` (if given).
fn offer(writer: &SyncSender<Message>, mut message: Message, until: Option<Instant>) -> bool {
    loop {
        match writer.try_send(message) {
            Ok(()) => return true,
            Err(TrySendError::Full(m)) if until.is_some_and(|u| Instant::now() < u) => {
                message = m;
                std::thread::sleep(RETRY);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// The writer thread: the only code that writes to stderr, and the only one that may block on it.
fn write_all(queue: &mpsc::Receiver<Message>) {
    let mut stderr = std::io::stderr();
    for message in queue {
        match message {
            Message::Line(line) => {
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let note = format!(
                        "rlock: warning: {dropped} message(s) dropped: stderr was not being read\n"
                    );
                    let _ = stderr.write_all(note.as_bytes());
                }
                // A closed stderr is the caller's choice; nothing to tell anyone.
                let _ = stderr.write_all(line.as_bytes());
            }
            Message::Flushed(done) => {
                let _ = done.send(());
            }
        }
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
