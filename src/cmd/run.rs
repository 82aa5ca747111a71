//! `rlock run`: take the lease, run the command under it, release it.
//!
//! This is where the lease and the child meet, through one channel of [`Event`]s: the signal
//! thread and the keeper send, the supervisor receives. The lease is taken before the command
//! starts, kept by the [`Keeper`] while it runs, and released only once the command's whole process
//! group is gone; if the lease cannot be kept, the command is stopped and rlock exits 124.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use crate::cli::Wait;
use crate::clock;
use crate::config::RunSettings;
use crate::exit;
use crate::inbox::{self, Inbox};
use crate::keeper::{Keeper, LeaseEvent};
use crate::lease::{Attempt, Grant, Holder, Lock};
use crate::log::{self, Level};
use crate::signals::{self, Caught};
use crate::supervise::{self, Event, Stopped};

/// Runs the command under the lock; returns the exit status.
pub fn run(settings: &RunSettings) -> Result<u8> {
    let (events, mut inbox) = inbox::channel::<Event>().context("creating the event channel")?;
    let to_supervisor = events.clone();
    signals::listen(move |caught| {
        let _ = to_supervisor.send(match caught {
            Caught::Forward(signal) => Event::Signal(signal),
            Caught::Child => Event::ChildChanged,
        });
    })
    .context("installing signal handlers")?;

    let s = &settings.lock;
    let mut lock = Lock::new(&s.key, &s.prefix, &s.urls, s.ttl)?;
    let holder = Holder {
        host: nix::unistd::gethostname()
            .map_or_else(|_| "?".to_owned(), |h| h.to_string_lossy().into_owned()),
        pid: std::process::id(),
        command: std::path::Path::new(&settings.program)
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
    };

    let grant = match acquire(&mut lock, &holder, settings.wait, &mut inbox)? {
        Acquired::Granted(grant) => grant,
        Acquired::Busy(expires_in) => {
            if settings.conflict_exit_code != 0 && log::enabled(Level::Normal) {
                let until = expires_in.map_or_else(String::new, |d| {
                    format!(
                        " (its lease runs for up to {} more)",
                        humantime::format_duration(round_ms(d))
                    )
                });
                eprintln!(
                    "rlock: lock '{}' is held by someone else{until}; not running the command",
                    s.key
                );
            }
            return Ok(settings.conflict_exit_code);
        }
        Acquired::Interrupted(signal) => return Ok(128u8.saturating_add(signal as u8)),
    };
    log::info!(
        "acquired lock '{}' with fence {} on {} of {} node(s)",
        s.key,
        grant.fence,
        grant.granted,
        s.urls.len()
    );
    // A signal that came while the grant was on its way means the caller gave up: honour it.
    while let Some(event) = inbox.try_recv() {
        if let Event::Signal(signal) = event {
            release(&mut lock, &grant.token);
            return Ok(128u8.saturating_add(signal as u8));
        }
    }

    let env = [
        ("RLOCK_KEY", s.key.clone()),
        ("RLOCK_TOKEN", grant.token.clone()),
        ("RLOCK_FENCE", grant.fence.to_string()),
        ("RLOCK_REDIS", lock.urls()),
        ("RLOCK_PREFIX", s.prefix.clone()),
        ("RLOCK_TTL", humantime::format_duration(s.ttl).to_string()),
    ];
    let key = s.key.clone();
    let keeper = Keeper::start(lock, &grant, move |event| {
        events.send(match event {
            LeaseEvent::Extended(deadline) => Event::Deadline(deadline),
            LeaseEvent::Lost(why) => Event::Stop(why),
        });
    })
    .context("starting the lease keeper")?;
    let child = match supervise::spawn(
        &settings.program,
        &settings.args,
        &env,
        settings.stop.signal,
    ) {
        Ok(child) => child,
        Err(e) => {
            release(&mut keeper.stop(), &grant.token);
            return Err(e);
        }
    };
    log::info!("started the command (pid {})", child.pid());

    let outcome = supervise::supervise(child, &mut inbox, settings.stop, Some(grant.deadline));
    release(&mut keeper.stop(), &grant.token);
    let why = match outcome.stopped {
        None => return Ok(outcome.status.code()),
        Some(Stopped::Deadline) => {
            "no extension succeeded in time (Redis unreachable or too slow)".to_owned()
        }
        Some(Stopped::Requested(why)) => why,
    };
    Err(exit::error(
        exit::LEASE_LOST,
        format!("lost lock '{key}': {why}; the command was stopped"),
    ))
}

/// How an acquisition ended.
enum Acquired {
    Granted(Grant),
    /// Busy until `--wait` ran out; the holder's lease runs for at most this long.
    Busy(Option<Duration>),
    /// A signal asked rlock to give up.
    Interrupted(Signal),
}

/// Tries to take the lease until it is granted or `wait` runs out, retrying after a random delay
/// (so that competing clients do not split a quorum's votes for ever) that never outlasts the
/// holder's remaining TTL. A signal ends the wait at once.
fn acquire(
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
            Ok(Attempt::Acquired(grant)) => return Ok(Acquired::Granted(grant)),
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

/// Releases the lease on every node; a failure is a warning, since the lease expires by itself.
fn release(lock: &mut Lock, token: &str) {
    match lock.release(token) {
        Ok(0) => log::info!("lock '{}' was no longer held at release", lock.key()),
        Ok(n) => log::info!("released lock '{}' on {n} node(s)", lock.key()),
        Err(failures) => log::warning!(
            "could not release lock '{}' everywhere ({failures}); it expires by itself within {}",
            lock.key(),
            humantime::format_duration(lock.ttl())
        ),
    }
}

/// A uniformly random number in [0, 1).
fn random_fraction() -> f64 {
    // Jitter only: if the OS source fails, a fixed midpoint is still a valid delay.
    let bits = getrandom::u64().unwrap_or(1 << 63);
    #[allow(clippy::cast_precision_loss)] // 53 bits of randomness are plenty for a delay
    let fraction = (bits >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

/// `d` rounded to milliseconds, for messages.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
