//! One module per subcommand, each composing the pieces (lease, keeper, supervisor) for one job,
//! and what several of them share: taking a lease with `--wait`, and telling the user it is busy.

pub mod acquire;
pub mod extend;
pub mod release;
pub mod run;
pub mod status;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use crate::cli::Wait;
use crate::clock;
use crate::exit;
use crate::inbox::{self, Inbox};
use crate::lease::{Attempt, Grant, Holder, Lock};
use crate::log::{self, Level};
use crate::signals::{self, Caught};
use crate::supervise::Event;

/// How an acquisition ended.
pub(crate) enum Acquired {
    /// The lease is ours.
    Granted(Grant),
    /// Busy until `--wait` ran out; the holder's lease runs for at most this long.
    Busy(Option<Duration>),
    /// A signal asked rlock to give up; nothing is held.
    Interrupted(Signal),
}

impl Acquired {
    /// The exit status for a signal that interrupted the wait, as a shell reports it.
    pub(crate) fn signal_status(signal: Signal) -> u8 {
        128u8.saturating_add(signal as u8)
    }
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

/// Tries to take the lease until it is granted or `wait` runs out, retrying after a random delay
/// (so that competing clients do not split a quorum's votes for ever) that never outlasts the
/// holder's remaining TTL. A signal ends the wait at once, and one that arrives while a grant is
/// on its way undoes the grant: the caller gave up.
pub(crate) fn acquire(
    lock: &mut Lock,
    holder: &Holder,
    wait: Wait,
    events: &mut Inbox<Event>,
) -> Result<Acquired> {
    /// The mean pause between attempts.
    const RETRY: Duration = Duration::from_millis(100);
    let started = Instant::now();
    let mut warned = false;
    loop {
        let (expires_in, failure) = match lock.try_acquire(holder) {
            Ok(Attempt::Acquired(grant)) => {
                while let Some(event) = events.try_recv() {
                    if let Event::Signal(signal) = event {
                        let _ = lock.release(&grant.token);
                        return Ok(Acquired::Interrupted(signal));
                    }
                }
                return Ok(Acquired::Granted(grant));
            }
            Ok(Attempt::Busy { expires_in }) => (expires_in, None),
            Err(e) if exit::code_of(&e) == exit::UNAVAILABLE => (None, Some(e)),
            Err(e) => return Err(e),
        };
        let left = match wait {
            Wait::Forever => Duration::MAX,
            Wait::For(limit) => limit.saturating_sub(started.elapsed()),
        };
        if left.is_zero() {
            return failure.map_or(Ok(Acquired::Busy(expires_in)), Err);
        }
        if let Some(e) = failure.as_ref().filter(|_| !warned) {
            log::warning!("{e:#}; retrying while --wait lasts");
            warned = true;
        }
        let jitter = RETRY / 2 + RETRY.mul_f64(random_fraction());
        let pause = jitter
            .min(left)
            .min(expires_in.map_or(Duration::MAX, |d| d + Duration::from_millis(1)));
        let until = clock::now() + pause;
        while let Some(event) = events.recv_until(Some(until)) {
            if let Event::Signal(signal) = event {
                return Ok(Acquired::Interrupted(signal));
            }
        }
    }
}

/// Says that lock `key` is busy (unless `-q`, or `-E 0` asked for a silent skip); returns `code`.
pub(crate) fn busy(key: &str, expires_in: Option<Duration>, code: u8) -> u8 {
    if code != 0 && log::enabled(Level::Normal) {
        let until = expires_in.map_or_else(String::new, |d| {
            format!(
                " (its lease runs for up to {} more)",
                humantime::format_duration(round_ms(d))
            )
        });
        eprintln!("rlock: lock '{key}' is held by someone else{until}");
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
