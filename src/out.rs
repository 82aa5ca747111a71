//! Results on stdout, written so that a closed or stalled stdout cannot kill rlock or hang it with
//! a lease held.
//!
//! `println!` panics when stdout is a closed pipe (`rlock status | head -0`), and rlock's release
//! build aborts on a panic. What rlock prints for information (`status`) is written with errors
//! ignored: the exit status still says what happened. What it prints as a hand-over (`acquire`'s
//! token) is written within the lease's validity, and the caller learns whether it arrived, so
//! that a lease whose token was lost can be released instead of blocking everyone for its TTL.

use std::io::{self, Write};
use std::sync::mpsc;

use crate::clock::Stamp;

/// Writes `text` to stdout, ignoring a closed pipe: for output a reader may stop reading.
pub fn print(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes `text` to stdout by `deadline` (on the boot clock), or fails: for output that hands
/// something over. A write still stuck at the deadline is left to its thread.
pub fn hand_over(text: String, deadline: Stamp) -> io::Result<()> {
    let (done, result) = mpsc::channel();
    std::thread::Builder::new()
        .name("rlock-stdout".to_owned())
        .spawn(move || {
            let mut stdout = io::stdout().lock();
            let _ = done.send(
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush()),
            );
        })?;
    result
        .recv_timeout(deadline.remaining())
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "stdout took no output while the lease was valid",
            ))
        })
}
