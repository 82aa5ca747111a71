//! One module per subcommand, each composing the pieces (lease, keeper, supervisor) for one job,
//! and what several of them share: taking a lease with `--wait`, and telling the user it is busy.

pub mod acquire;
pub mod completions;
pub mod extend;
pub mod release;
pub mod run;
pub mod status;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::Wait;
use crate::clock;
use crate::config::LockSettings;
use crate::events::Event;
use crate::exit;
use crate::inbox::{self, Inbox};
use crate::lease::watch::Watch;
use crate::lease::{Attempt, Grant, Holder, LeaseError, Lock};
use crate::log::{self, Level};
use crate::signals::{self, Caught, SignalNumber};

/// How an acquisition ended.
pub(crate) enum Acquired {
    /// The lease is ours.
    Granted(Grant),
    /// Busy until `--wait` ran out; the holder's lease runs for at most this long.
    Busy(Option<Duration>),
    /// A signal asked rlock to give up; nothing is held. rlock exits 128+N for signal N.
    Interrupted(SignalNumber),
}

/// Installs the signal handlers and returns the inbox their signals arrive in, with a sender for
/// other event sources.
pub(crate) fn events() -> Result<(inbox::Sender<Event>, Inbox<Event>)> {
    let (events, inbox) = inbox::channel::<Event>().context("creating the event channel")?;
    let to_inbox = events.clone();
    signals::listen(move |caught| {
        to_inbox.send(match caught {
            Caught::Forward(signal) => Event::Signal(signal),
            Caught::Child => Event::ChildChanged,
        });
    })
    .context("installing signal handlers")?;
    Ok((events, inbox))
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
pub(crate) fn acquire(
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

/// The environment a lease holder gets: what `rlock run` gives its command, and what
/// `rlock acquire --format shell` exports, so that `extend`, `release` and `status` need no
/// arguments there. TLS files are passed as absolute paths, so that a command that changes
/// directory still finds them.
pub(crate) fn lease_env(s: &LockSettings, grant: &Grant) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("RLOCK_KEY", s.key.clone()),
        ("RLOCK_TOKEN", grant.token.clone()),
        ("RLOCK_FENCE", grant.fence.to_string()),
        ("RLOCK_REDIS", s.urls.join(",")),
        ("RLOCK_PREFIX", s.prefix.clone()),
        ("RLOCK_TTL", humantime::format_duration(s.ttl).to_string()),
    ];
    let (cert, key) = s.tls.client.clone().unzip();
    for (name, path) in [
        ("RLOCK_TLS_CA", &s.tls.ca),
        ("RLOCK_TLS_CERT", &cert),
        ("RLOCK_TLS_KEY", &key),
    ] {
        if let Some(path) = path {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            env.push((name, path.display().to_string()));
        }
    }
    env
}

/// What a lease holder's environment must not inherit: `RLOCK_REDIS_FILE` would conflict with
/// the `RLOCK_REDIS` that [`lease_env`] sets, and `rlock` commands inside would refuse both.
pub(crate) const LEASE_ENV_UNSET: [&str; 1] = ["RLOCK_REDIS_FILE"];

/// Says that lock `key` is busy (unless `-q`, or `-E 0` asked for a silent skip); returns `code`.
pub(crate) fn busy(key: &str, expires_in: Option<Duration>, code: u8) -> u8 {
    if code != 0 && log::enabled(Level::Normal) {
        let until = expires_in.map_or_else(String::new, |d| {
            format!(
                " (its lease runs for up to {} more)",
                humantime::format_duration(round_ms(d))
            )
        });
        log::emit(
            Level::Normal,
            false,
            format_args!("lock '{key}' is held by someone else{until}"),
        );
    }
    code
}

/// This host's name, for holder records.
pub(crate) fn host_name() -> String {
    nix::unistd::gethostname().map_or_else(|_| "?".to_owned(), |h| h.to_string_lossy().into_owned())
}

/// A uniformly random number in [0, 1).
pub(crate) fn random_fraction() -> f64 {
    // Jitter only: if the OS source fails, a fixed midpoint is still a valid delay.
    let bits = getrandom::u64().unwrap_or(1 << 63);
    #[allow(clippy::cast_precision_loss)] // 53 bits of randomness are plenty for a delay
    let fraction = (bits >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

/// `d` rounded to milliseconds, for messages.
pub(crate) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fence as JSON prints it: a decimal string. A fence can pass 2^53 (a node whose clock once
/// ran far ahead seeds its counter beyond it), and readers that hold JSON numbers as doubles,
/// such as JavaScript and jq 1.6, would round it: two holders' fences could then compare equal.
pub(crate) fn fence_json(fence: u64) -> String {
    fence.to_string()
}

/// The lease layer's errors as rlock ends on them: the one place their exit statuses are chosen.
impl From<LeaseError> for anyhow::Error {
    fn from(err: LeaseError) -> anyhow::Error {
        let code = match err {
            LeaseError::Usage(_) => exit::USAGE,
            LeaseError::Unreachable(_) => exit::UNAVAILABLE,
            LeaseError::NoRandom(_) => exit::FAILURE,
        };
        exit::error(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_errors_end_rlock_with_their_documented_status_and_message() {
        for (err, code) in [
            (LeaseError::Usage("listed twice".to_owned()), exit::USAGE),
            (
                LeaseError::Unreachable("down".to_owned()),
                exit::UNAVAILABLE,
            ),
            (LeaseError::NoRandom("no entropy".to_owned()), exit::FAILURE),
        ] {
            let message = err.to_string();
            let err = anyhow::Error::from(err);
            assert_eq!(exit::code_of(&err), code, "{err}");
            assert_eq!(format!("{err:#}"), message);
        }
    }
}
