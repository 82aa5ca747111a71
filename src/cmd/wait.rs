//! Waiting for a busy lock: `--wait`, and `--jitter` before the first attempt.
//!
//! Polling a busy lock at a fixed rate is either slow to notice a release or loud on the nodes
//! while a long lease is held. So a waiter is woken by what it waits for, and bounded in what it
//! sends:
//! - **A queue.** The first busy answer puts the waiter in the lock's queue on every node (see
//!   `lease::scripts`): nodes grant only the first waiter in line, and a release wakes that one
//!   alone. The waiter only has to keep trying when woken; the nodes keep the order.
//! - **Pub/sub wake-ups.** After the first busy answer the waiter subscribes to its own channel and
//!   the lock's release channel on every node ([`Lock::watch`]) and then tries again at once, so
//!   that a release between the busy answer and the subscription is not missed.
//! - **The TTL hint.** A busy answer to the first in line carries the holder's remaining TTL, so
//!   the lock of a holder that crashed (and will never announce a release) is taken right after it
//!   expires.
//! - **A backstop and heartbeat.** Pub/sub is fire-and-forget: a waiter also tries once a second,
//!   so that a lost announcement costs latency, never correctness; each attempt also tells the
//!   nodes that the waiter is alive, and one that stops trying drops out of the queue.
//! - **Pacing.** Attempts come out of a small bucket ([`Pace`]): a release is answered at once, but
//!   a lock that changes hands all the time cannot make a waiter hammer the nodes.
//! - **Split-vote jitter.** Without the queue (`RLOCK_UNORDERED=1`), waiters woken by the same
//!   announcement in Redlock mode would ask the nodes in lockstep and could each win a minority of
//!   the votes; a few random milliseconds keep them apart. `--jitter` does the same at a larger
//!   scale for cron jobs that several hosts start at the same second.
//!
//! The decisions are pure functions of the time, tested with fake stamps: when to wake
//! ([`wake_at`]) and when the next attempt may go ([`Pace`]). [`take`] feeds them the boot clock,
//! the nodes' answers and the inbox.

use std::time::Duration;

use anyhow::Result;

use crate::cli::Wait;
use crate::clock::{self, Stamp};
use crate::events::Event;

use crate::inbox::{self, Inbox};
use crate::lease::watch::Watch;
use crate::lease::{Attempt, Grant, Holder, LeaseError, Lock};
use crate::log;
use crate::signals::SignalNumber;

/// The longest a waiter sleeps without trying: the backstop for a lost announcement.
const BACKSTOP: Duration = Duration::from_secs(1);
/// The pause before retrying nodes that did not answer: half of it, plus up to all of it at
/// random.
const RETRY_UNAVAILABLE: Duration = Duration::from_millis(100);
/// How long after the holder's lease runs out a waiter tries, at most: a random part of it, so
/// that waiters which all heard the same TTL do not arrive at the same instant.
const PAST_EXPIRY: Duration = Duration::from_millis(3);
/// How long a Redlock waiter woken by a release waits first, at most: a random part of it, so
/// that the waiters woken with it do not split the votes in lockstep.
const SPLIT_VOTE: Duration = Duration::from_millis(5);

/// How an acquisition ended.
pub(crate) enum Acquired {
    /// The lease is ours.
    Granted(Grant),
    /// Busy until `--wait` ran out; the holder's lease runs for at most this long.
    Busy(Option<Duration>),
    /// A signal asked rlock to give up; nothing is held. rlock exits 128+N for signal N.
    Interrupted(SignalNumber),
}

/// Tries to take the lease until it is granted or `wait` runs out, as the module doc describes. A
/// signal ends the wait at once, and one that arrives during an attempt wins over the attempt's
/// outcome: a grant is undone, a failure is not reported, since the caller gave up.
pub(crate) fn take(
    lock: &mut Lock,
    holder: &Holder,
    wait: Wait,
    events: &inbox::Sender<Event>,
    inbox: &mut Inbox<Event>,
) -> Result<Acquired> {
    let acquired = attempts(lock, holder, wait, events, inbox);
    if !matches!(acquired, Ok(Acquired::Granted(_))) {
        // An exclusive waiter that gives up, on any path, takes its mark back at once.
        lock.withdraw();
    }
    acquired
}

/// [`take`]'s attempts, until one is granted or the wait ends.
fn attempts(
    lock: &mut Lock,
    holder: &Holder,
    wait: Wait,
    events: &inbox::Sender<Event>,
    inbox: &mut Inbox<Event>,
) -> Result<Acquired> {
    let limit = match wait {
        Wait::Forever => None,
        Wait::For(d) => Some(clock::now() + d),
    };
    let mut watch: Option<Watch> = None;
    let mut pace = Pace::new(clock::now());
    let mut warned = false;
    loop {
        let attempt = lock.try_acquire(holder, wait != Wait::For(Duration::ZERO));
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

        let wake = wake_at(now, expires_in, failure.is_some(), limit, jitter);
        // A release announced during the attempt may be newer than the busy answer: go again.
        let released = heard_release
            || match pause(inbox, wake, true) {
                Woke::Signal(signal) => return Ok(Acquired::Interrupted(signal)),
                Woke::Released => true,
                Woke::Time => false,
            };
        let mut next = pace.next_attempt(clock::now());
        // In line, only the first waiter is woken: nobody to split the votes with.
        if released && lock.node_count() > 1 && !lock.ordered() {
            next = next.max(clock::now() + jitter(SPLIT_VOTE));
        }
        if let Woke::Signal(signal) = pause(inbox, next, false) {
            return Ok(Acquired::Interrupted(signal));
        }
    }
}

/// When a waiter that was turned away tries again, unless a release is announced first: right
/// after the holder's lease runs out (`expires_in`, from the busy answer), soon when nodes did not
/// answer (`unreachable`), after [`BACKSTOP`] at the latest, and never after the wait's own
/// `limit`; whichever comes first. `jitter(max)` is a random duration below `max`.
fn wake_at(
    now: Stamp,
    expires_in: Option<Duration>,
    unreachable: bool,
    limit: Option<Stamp>,
    mut jitter: impl FnMut(Duration) -> Duration,
) -> Stamp {
    let mut wake = now + BACKSTOP;
    if let Some(expires_in) = expires_in {
        wake = wake.min(now + expires_in + jitter(PAST_EXPIRY));
    }
    if unreachable {
        wake = wake.min(now + RETRY_UNAVAILABLE / 2 + jitter(RETRY_UNAVAILABLE));
    }
    if let Some(l) = limit {
        wake = wake.min(l);
    }
    wake
}

/// Why [`pause`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    Signal(SignalNumber),
    Released,
    Time,
}

/// Waits until `until`, or until a signal; with `on_release`, also until a release is announced.
/// Announcements that pile up while the waiter is busy count as one.
fn pause(inbox: &mut Inbox<Event>, until: Stamp, on_release: bool) -> Woke {
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
    /// Attempts the bucket holds now; below zero, attempts already promised a later time.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Stamp,
}

impl Pace {
    const RATE: f64 = 10.0;
    const BURST: f64 = 3.0;

    /// A full bucket at `now`.
    fn new(now: Stamp) -> Pace {
        Pace {
            tokens: Self::BURST,
            last: now,
        }
    }

    /// When the next attempt may go out (`now`, if the bucket has a token), taking that token.
    fn next_attempt(&mut self, now: Stamp) -> Stamp {
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

/// Sleeps a random time below `bound` (`--jitter`); returns the signal that cut it short, if one
/// did.
pub(crate) fn sleep_jitter(bound: Duration, inbox: &mut Inbox<Event>) -> Option<SignalNumber> {
    match pause(inbox, clock::now() + jitter(bound), false) {
        Woke::Signal(signal) => Some(signal),
        Woke::Released | Woke::Time => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` milliseconds into a test's fake time.
    fn at(ms: u64) -> Stamp {
        Stamp::from_since_boot(Duration::from_secs(1000) + Duration::from_millis(ms))
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Jitter at the low end of its range.
    fn least(_: Duration) -> Duration {
        Duration::ZERO
    }

    /// Jitter at the high end of its range.
    fn most(max: Duration) -> Duration {
        max
    }

    /// Equal up to the rounding of the bucket's floating-point arithmetic.
    #[track_caller]
    fn assert_close(got: Stamp, expected: Stamp) {
        let off = got.since(expected).max(expected.since(got));
        assert!(
            off < Duration::from_micros(1),
            "{got:?} is not {expected:?}"
        );
    }

    #[test]
    fn with_nothing_to_go_on_a_waiter_tries_again_after_the_backstop() {
        assert_eq!(wake_at(at(0), None, false, None, most), at(1000));
    }

    #[test]
    fn a_waiter_tries_right_after_the_holders_lease_runs_out() {
        assert_eq!(wake_at(at(0), Some(ms(250)), false, None, least), at(250));
        assert_eq!(wake_at(at(0), Some(ms(250)), false, None, most), at(253));
        assert_eq!(wake_at(at(0), Some(ms(0)), false, None, least), at(0));
    }

    #[test]
    fn a_long_lease_is_checked_on_once_a_second() {
        assert_eq!(
            wake_at(at(0), Some(ms(30_000)), false, None, most),
            at(1000)
        );
    }

    #[test]
    fn nodes_that_did_not_answer_are_retried_within_50_to_150_ms() {
        assert_eq!(wake_at(at(0), None, true, None, least), at(50));
        assert_eq!(wake_at(at(0), None, true, None, most), at(150));
        assert_eq!(wake_at(at(0), Some(ms(20)), true, None, least), at(20));
    }

    #[test]
    fn a_waiter_wakes_when_its_own_wait_runs_out_whatever_else_it_waits_for() {
        assert_eq!(wake_at(at(0), None, false, Some(at(400)), most), at(400));
        assert_eq!(
            wake_at(at(0), Some(ms(250)), true, Some(at(20)), most),
            at(20)
        );
        assert_eq!(wake_at(at(0), None, false, Some(at(5000)), most), at(1000));
    }

    #[test]
    fn a_release_announcement_ends_a_pause_at_once_and_a_pile_of_them_counts_once() {
        let (tx, mut inbox) = inbox::channel().unwrap();
        tx.send(Event::Released);
        tx.send(Event::Released);
        let start = clock::now();
        assert_eq!(
            pause(&mut inbox, start + Duration::from_secs(60), true),
            Woke::Released
        );
        assert!(clock::now().since(start) < Duration::from_secs(5));
        assert_eq!(inbox.try_recv(), None);
    }

    #[test]
    fn a_signal_wins_over_a_release_heard_with_it() {
        let (tx, mut inbox) = inbox::channel().unwrap();
        tx.send(Event::Released);
        tx.send(Event::Signal(SignalNumber(15)));
        let until = clock::now() + Duration::from_secs(60);
        assert_eq!(
            pause(&mut inbox, until, true),
            Woke::Signal(SignalNumber(15))
        );
    }

    #[test]
    fn a_pause_for_pacing_is_not_cut_short_by_a_release() {
        let (tx, mut inbox) = inbox::channel().unwrap();
        tx.send(Event::Released);
        let until = clock::now() + Duration::from_millis(20);
        assert_eq!(pause(&mut inbox, until, false), Woke::Time);
        assert!(clock::now() >= until);
    }

    #[test]
    fn a_waiter_turned_away_every_time_sends_a_burst_of_three_then_ten_a_second() {
        let mut pace = Pace::new(at(0));
        let mut now = at(0);
        let mut sent = Vec::new();
        for _ in 0..13 {
            now = now.max(pace.next_attempt(now));
            sent.push(now);
        }
        let expected = [0, 0, 0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000];
        for (got, expected) in sent.into_iter().zip(expected) {
            assert_close(got, at(expected));
        }
    }

    #[test]
    fn a_partly_refilled_bucket_lets_the_next_attempt_go_once_a_token_is_whole() {
        let mut pace = Pace::new(at(0));
        for _ in 0..3 {
            assert_eq!(pace.next_attempt(at(0)), at(0));
        }
        assert_close(pace.next_attempt(at(30)), at(100));
    }

    #[test]
    fn a_quiet_spell_refills_the_burst_but_no_more() {
        let mut pace = Pace::new(at(0));
        for _ in 0..5 {
            pace.next_attempt(at(0));
        }
        // Ten quiet seconds (a long lease waited out) earn three attempts at once, not a hundred.
        for _ in 0..3 {
            assert_eq!(pace.next_attempt(at(10_000)), at(10_000));
        }
        assert_close(pace.next_attempt(at(10_000)), at(10_100));
    }
}
