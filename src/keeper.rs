//! Keeps a lease alive while the command runs, and says when it cannot.
//!
//! The keeper owns the [`Lock`] in a thread of its own, extends the lease every TTL/3 (so two
//! attempts can fail before the lease is in danger), retries quickly when an extension fails for
//! transport reasons, and reports each new deadline ([`LeaseEvent::Extended`]) or the nodes' word
//! that the lease is gone ([`LeaseEvent::Lost`]). It never touches processes, and it does not
//! keep time for them: whoever stops the command holds the deadline and acts on it, so a network
//! round that stalls here cannot delay a kill. It never deletes the lock on a failed round either:
//! only the holder's release or the TTL ends a lease.

use std::thread::JoinHandle;

use crate::clock::{self, Stamp};
use crate::inbox;
use crate::lease::{Extension, Grant, Lock, quorum};
use crate::log;

/// What the keeper reports about the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The lease was extended; it is now valid for us until this time.
    Extended(Stamp),
    /// The nodes say the lease is no longer ours, for this reason.
    Lost(String),
}

/// A running keeper; [`Keeper::stop`] ends it and hands the lock back for release.
pub struct Keeper {
    stop: inbox::Sender<()>,
    thread: JoinHandle<Lock>,
}

impl Keeper {
    /// Starts keeping `grant` on `lock`; `report` receives the keeper's events.
    pub fn start(
        mut lock: Lock,
        grant: &Grant,
        mut report: impl FnMut(LeaseEvent) + Send + 'static,
    ) -> std::io::Result<Keeper> {
        let (stop, mut inbox) = inbox::channel::<()>()?;
        let token = grant.token.clone();
        let mut next = grant.sent + quorum::extend_every(lock.ttl());
        let thread = std::thread::Builder::new()
            .name("rlock-keeper".to_owned())
            .spawn(move || {
                while inbox.recv_until(Some(next)).is_none() {
                    match lock.extend(&token) {
                        Extension::Kept { deadline } => {
                            log::info!("extended");
                            report(LeaseEvent::Extended(deadline));
                            next = clock::now() + quorum::extend_every(lock.ttl());
                        }
                        Extension::Lost(why) => {
                            report(LeaseEvent::Lost(why));
                            inbox.recv_until(None);
                            break;
                        }
                        Extension::Unknown(why) => {
                            log::warning!(
                                "could not extend lock '{}' (retrying): {why}",
                                lock.key()
                            );
                            next = clock::now() + quorum::retry_after(lock.ttl());
                        }
                    }
                }
                lock
            })?;
        Ok(Keeper { stop, thread })
    }

    /// Stops keeping the lease (the lease itself is untouched) and returns the lock.
    pub fn stop(self) -> Lock {
        self.stop.send(());
        match self.thread.join() {
            Ok(lock) => lock,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
