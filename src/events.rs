//! What rlock's main thread waits for: one enum for every source, so that one
//! [`Inbox`](crate::inbox::Inbox) serves both waiting for a lock and supervising the command.
//!
//! Sources: the signal thread (`Signal`, `ChildChanged`), the keeper (`Deadline`, `LeaseLost`), and
//! the release watchers (`Released`). Each consumer ignores what is not its business.

use crate::clock::Stamp;
use crate::signals::SignalNumber;

/// Something that happened, for the main thread to react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A signal to pass on to the command's group (or, while waiting for the lock, to give up).
    Signal(SignalNumber),
    /// A child changed state: reap and look.
    ChildChanged,
    /// The command must be dead by this time; it replaces the previous deadline.
    Deadline(Stamp),
    /// The lease is lost: stop the command now (stop signal, then `SIGKILL` after the grace).
    /// The text says why.
    LeaseLost(String),
    /// A node announced that the lock was released: a waiter should try again now.
    Released,
}
