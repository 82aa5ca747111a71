//! Waiting for a busy lock: `--wait`, and `--jitter` before the first attempt.
//!
//! Polling a busy lock at a fixed rate is either slow to notice a release or loud on the nodes
//! while a long lease is held. So a waiter is woken by what it waits for, and bounded in what it
//! sends:
//! - **Pub/sub wake-ups.** After the first busy answer the waiter subscribes to the lock's release
//!   channel on every node ([`Lock::watch`]) and then tries again at once, so that a release
//!   between the busy answer and the subscription is not missed; later releases wake it.
//! - **The TTL hint.** A busy answer carries the holder's remaining TTL, so the lock of a holder
//!   that crashed (and will never announce a release) is taken right after it expires.
//! - **A backstop.** Pub/sub is fire-and-forget: a waiter also tries once a second, so that a lost
//!   announcement costs latency, never correctness.
//! - **Pacing.** Attempts come out of a small bucket ([`Pace`]): a release is answered at once, but
//!   a lock that changes hands all the time cannot make a waiter hammer the nodes.
//! - **Split-vote jitter.** Waiters woken by the same announcement in Redlock mode would ask the
//!   nodes in lockstep and could each win a minority of the votes; a few random milliseconds keep
//!   them apart. `--jitter` does the same at a larger scale for cron jobs that several hosts start
//!   at the same second.

use std::time::Duration;

use anyhow::Result;

use crate::cli::Wait;
use crate::clock;
use crate::events::Event;

use crate::inbox::{self, Inbox};
use crate::lease::watch::Watch;
use crate::lease::{Attempt, Grant, Holder, LeaseError, Lock};
use crate::log;
use crate::signals::SignalNumber;

/// How an acquisition ended.
pub(crate) enum Acquired {
    /// The lease is ours.
    Granted(Grant),
    /// Busy until `--wait` ran out; the holder's lease runs for at most this long.
    Busy(Option<Duration>),
    /// A signal asked rlock to give up; nothing is held. rlock exits 128+N for signal N.
    Interrupted(SignalNumber),
}

/// Tries to take the lease until it is granted or `wait` runs out. A signal ends the wait at once,
/// and one that arrives during an attempt wins over the attempt's outcome: a grant is undone, a
/// failure is not reported, since the caller gave up.
///
/// Waiting is event-driven: after the first busy answer the waiter subscribes to the lock's release
/// channel on every node ([`Lock::watch`]) and tries again at once, so that no release is missed;
/// then it sleeps until a release is announced, the holder's TTL runs out (a crashed holder is
/// taken over right after its lease expires), or a backstop period passes, whichever is first.
/// Attempts are paced (see [`Pace`]), and in Redlock mode a wake-up waits a few random
/// milliseconds so that competing waiters do not split the votes in lockstep.
pub(crate) fn take(
    lock: &mut Lock,
    holder: &Holder,
    wait: Wait,
    events: &inbox::Sender<Event>,
    inbox: &mut Inbox<Event>,
) -> Result<Acquired> {
    /// The longest a waiter sleeps without trying: the backstop for a lost announcement.
    const BACKSTOP: Duration = Duration::from_secs(1);
    /// The pause before retrying nodes that did not answer.
    const RETRY_UNAVAILABLE: Duration = Duration::from_millis(100);
    let limit = match wait {
        Wait::Forever => None,
        Wait::For(d) => Some(clock::now() + d),
    };
    let mut watch: Option<Watch> = None;
    let mut pace = Pace::new();
    let mut warned = false;
    loop {
        let attempt = lock.try_acquire(holder);
        // A signal that came during the attempt wins over its outcome, whatever it was: the
        // caller gave up. A failed attempt has undone what it may have taken; a grant is undone
        // here. (A signal can also be what failed it: a read interrupted on a socket.)
        let mut heard_release = false;
        while let Some(event) = inbox.try_recv() {
            match event {
                Event::Signal(signal) => {
                    if let Ok(Attempt::Acquired(grant)) = &attempt {
                        let _ = lock.release(&grant.token);
                    }
                    return Ok(Acquired::Interrupted(signal));
                }
                Event::Released => heard_release = true,
                _ => {}
            }
        }
        let (expires_in, failure) = match attempt {
            Ok(Attempt::Acquired(grant)) => return Ok(Acquired::Granted(grant)),
            Ok(Attempt::Busy { expires_in }) => (expires_in, None),
            Err(e @ LeaseError::Unreachable(_)) => (None, Some(anyhow::Error::from(e))),
            Err(e) => return Err(e.into()),
        };
        let now = clock::now();
        if limit.is_some_and(|l| now >= l) {
            return failure.map_or(Ok(Acquired::Busy(expires_in)), Err);
        }
        if let Some(e) = failure.as_ref().filter(|_| !warned) {
            log::warning!("{e:#}; retrying while --wait lasts");
            warned = true;
        }
        if watch.is_none() {
            let events = events.clone();
            watch = Some(lock.watch(move || {
                events.send(Event::Released);
            }));
            continue; // listening now: try again, in case the release came before we listened
        }

        let mut wake = now + BACKSTOP;
        if let Some(expires_in) = expires_in {
            wake = wake.min(now + expires_in + jitter(Duration::from_millis(3)));
        }
        if failure.is_some() {
            wake = wake.min(now + RETRY_UNAVAILABLE / 2 + jitter(RETRY_UNAVAILABLE));
        }
        if let Some(l) = limit {
            wake = wake.min(l);
        }
        // A release announced during the attempt may be newer than the busy answer: go again.
        let released = heard_release
            || match pause(inbox, wake, true) {
                Woke::Signal(signal) => return Ok(Acquired::Interrupted(signal)),
                Woke::Released => true,
                Woke::Time => false,
            };
        let mut next = pace.next_attempt();
        if released && lock.node_count() > 1 {
            next = next.max(clock::now() + jitter(Duration::from_millis(5)));
        }
        if let Woke::Signal(signal) = pause(inbox, next, false) {
            return Ok(Acquired::Interrupted(signal));
        }
    }
}

/// Why [`pause`] returned.
enum Woke {
    Signal(SignalNumber),
    Released,
    Time,
}

/// Waits until `until`, or until a signal; with `on_release`, also until a release is announced.
/// Announcements that pile up while the waiter is busy count as one.
fn pause(inbox: &mut Inbox<Event>, until: clock::Stamp, on_release: bool) -> Woke {
    while let Some(event) = inbox.recv_until(Some(until)) {
        match event {
            Event::Signal(signal) => return Woke::Signal(signal),
            Event::Released if on_release => {
                while let Some(event) = inbox.try_recv() {
                    if let Event::Signal(signal) = event {
                        return Woke::Signal(signal);
                    }
                }
                return Woke::Released;
            }
            _ => {}
        }
    }
    Woke::Time
}

/// Paces a waiter's attempts: a bucket of [`Pace::BURST`] attempts that refills at
/// [`Pace::RATE`] per second, so a waiter answers a release at once but sends at most `RATE`
/// attempts (one request per node each) per second however often the lock changes hands.
struct Pace {
    tokens: f64,
    last: clock::Stamp,
}

impl Pace {
    const RATE: f64 = 10.0;
    const BURST: f64 = 3.0;

    fn new() -> Pace {
        Pace {
            tokens: Self::BURST,
            last: clock::now(),
        }
    }

    /// When the next attempt may go out (now, if the bucket has a token), taking that token.
    fn next_attempt(&mut self) -> clock::Stamp {
        let now = clock::now();
        self.tokens =
            (self.tokens + now.since(self.last).as_secs_f64() * Self::RATE).min(Self::BURST);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / Self::RATE)
        }
    }
}

/// A random duration in [0, `max`).
fn jitter(max: Duration) -> Duration {
    max.mul_f64(random_fraction())
}

/// A uniformly random number in [0, 1).
fn random_fraction() -> f64 {
    // Jitter only: if the OS source fails, a fixed midpoint is still a valid delay.
    let bits = getrandom::u64().unwrap_or(1 << 63);
    #[allow(clippy::cast_precision_loss)] // 53 bits of randomness are plenty for a delay
    let fraction = (bits >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

/// Sleeps a random time below `jitter` (`--jitter`); returns the signal that cut it short, if one
/// did.
pub(crate) fn sleep_jitter(jitter: Duration, inbox: &mut Inbox<Event>) -> Option<SignalNumber> {
    let until = clock::now() + jitter.mul_f64(random_fraction());
    while let Some(event) = inbox.recv_until(Some(until)) {
        if let Event::Signal(signal) = event {
            return Some(signal);
        }
    }
    None
}
