//! Keeps a lease alive while the command runs, and says when it cannot.
//!
//! The keeper owns the [`Lock`] in a thread of its own, extends the lease every TTL/3, retries
//! quickly when an extension fails for transport reasons, and reports to whoever started it:
//! [`LeaseEvent::Lost`] when the nodes say the lease is no longer ours, [`LeaseEvent::Expiring`]
//! at `deadline - kill_after` and [`LeaseEvent::Expired`] at the deadline itself, so that the
//! command can be stopped *before* the lease can lapse on the servers. It never touches processes,
//! and it never deletes the lock on a failed round: only the holder's release or the TTL ends a
//! lease. All waiting is on the boot clock ([`clock::Sleeper`]), and no network round outlasts the
//! next alarm, so a resumed or stalled keeper reports a passed deadline at once.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{self, Stamp, Woke};
use crate::lease::{Extension, Grant, Lock, quorum};
use crate::log;

/// What the keeper reports about the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The nodes say the lease is no longer ours: stop the command now.
    Lost(String),
    /// No extension succeeded and the deadline is `kill_after` away: start stopping the command.
    Expiring(String),
    /// The deadline has come: the command must be dead now.
    Expired(String),
}

/// A running keeper; [`Keeper::stop`] ends it and hands the lock back for release.
pub struct Keeper {
    waker: clock::Waker,
    thread: JoinHandle<Lock>,
}

impl Keeper {
    /// Starts keeping `grant` on `lock`; `report` receives the keeper's events (at most one of
    /// each kind).
    pub fn start(
        lock: Lock,
        grant: &Grant,
        kill_after: Duration,
        report: impl FnMut(LeaseEvent) + Send + 'static,
    ) -> std::io::Result<Keeper> {
        let (sleeper, waker) = clock::sleeper()?;
        let next_extension = grant.sent + quorum::extend_every(lock.ttl());
        let state = State {
            lock,
            token: grant.token.clone(),
            deadline: grant.deadline,
            next_extension,
            kill_after,
            warned: false,
            report: Box::new(report),
        };
        let thread = std::thread::Builder::new()
            .name("rlock-keeper".to_owned())
            .spawn(move || state.run(sleeper))?;
        Ok(Keeper { waker, thread })
    }

    /// Stops keeping the lease (the lease itself is untouched) and returns the lock.
    pub fn stop(self) -> Lock {
        self.waker.wake();
        match self.thread.join() {
            Ok(lock) => lock,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

struct State {
    lock: Lock,
    token: String,
    /// Until when the lease is valid for us (boot clock).
    deadline: Stamp,
    /// When to send the next extension.
    next_extension: Stamp,
    kill_after: Duration,
    /// Whether `Expiring` was reported.
    warned: bool,
    report: Box<dyn FnMut(LeaseEvent) + Send>,
}

impl State {
    fn run(mut self, mut sleeper: clock::Sleeper) -> Lock {
        loop {
            let expiring_at = self.deadline.minus(self.kill_after);
            let alarm = if self.warned {
                self.deadline
            } else {
                expiring_at
            };
            if sleeper.sleep_until(self.next_extension.min(alarm)) == Woke::Woken {
                return self.lock;
            }
            let now = clock::now();
            if now >= self.deadline {
                (self.report)(LeaseEvent::Expired(NO_EXTENSION.to_owned()));
                return park(sleeper, self.lock);
            }
            if now >= expiring_at && !self.warned {
                self.warned = true;
                (self.report)(LeaseEvent::Expiring(NO_EXTENSION.to_owned()));
            }
            if now >= self.next_extension {
                // The round must end before the next alarm, so that the alarm is never late.
                let limit = if self.warned {
                    self.deadline
                } else {
                    expiring_at
                };
                match self.lock.extend(&self.token, limit) {
                    Extension::Kept { deadline } => {
                        log::info!("extended lock '{}'", self.lock.key());
                        self.deadline = deadline;
                        self.next_extension = now + quorum::extend_every(self.lock.ttl());
                    }
                    Extension::Lost(why) => {
                        (self.report)(LeaseEvent::Lost(why));
                        return park(sleeper, self.lock);
                    }
                    Extension::Unknown(why) => {
                        log::warning!(
                            "could not extend lock '{}' (will retry): {why}",
                            self.lock.key()
                        );
                        self.next_extension = clock::now() + quorum::retry_after(self.lock.ttl());
                    }
                }
            }
        }
    }
}

/// Why a lease ran out without the nodes saying it was lost.
const NO_EXTENSION: &str = "no extension succeeded in time (Redis unreachable or too slow)";

/// Waits, doing nothing more, until the keeper is stopped: the outcome has been reported.
fn park(mut sleeper: clock::Sleeper, lock: Lock) -> Lock {
    let far = clock::now() + Duration::from_secs(365 * 24 * 3600);
    while sleeper.sleep_until(far) == Woke::OnTime {}
    lock
}
