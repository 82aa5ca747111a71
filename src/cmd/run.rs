//! `rlock run`: take the lease, run the command under it, release it.
//!
//! This is where the lease and the child meet, through one [`Inbox`](crate::inbox::Inbox) of
//! [`Event`]s: the signal thread and the keeper send, the supervisor receives. The lease is taken
//! before the command starts, kept by the [`Keeper`] while it runs, and released only once the
//! command's whole process group is gone; if the lease cannot be kept, the command is stopped and
//! rlock exits 124. The cron options fit around that: `--jitter` before the first attempt,
//! `--max-time` as a second limit for the supervisor, `--min-hold` in place of the release.

use std::time::Duration;

use anyhow::{Context, Result};

use super::wait::{self, Acquired};
use crate::clock::{self, Stamp};
use crate::config::RunSettings;
use crate::events::Event;
use crate::exit;
use crate::keeper::{Keeper, LeaseEvent};
use crate::lease::{Extension, Holder, Lock};
use crate::log;
use crate::supervise::{self, Outcome, Stopped, Wake};

/// Runs the command under the lock; returns the exit status.
pub fn run(settings: &RunSettings) -> Result<u8> {
    let s = &settings.lock;
    // Before any signal handler or thread: the command may take rlock's place.
    super::nested::pass_through(s, &settings.program, &settings.args)?;
    let (events, mut inbox) = super::events()?;
    if let Some(signal) = settings
        .jitter
        .and_then(|jitter| wait::sleep_jitter(jitter, &mut inbox))
    {
        return Ok(signal.exit_status());
    }
    let mut lock = s.lock()?;
    let holder = Holder {
        host: super::host_name(),
        pid: std::process::id(),
        command: std::path::Path::new(&settings.program)
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
    };

    let grant = match wait::take(&mut lock, &holder, settings.wait, &events, &mut inbox)? {
        Acquired::Granted(grant) => grant,
        Acquired::Busy(expires_in) => {
            return Ok(super::busy(
                &s.key,
                s.mode,
                expires_in,
                settings.conflict_exit_code,
            ));
        }
        Acquired::Interrupted(signal) => return Ok(signal.exit_status()),
    };
    log::info!(
        "acquired with fence {} on {} of {} node(s)",
        grant.fence,
        grant.granted,
        s.urls.len()
    );

    let env = super::lease_env(s, &grant);
    let keeper = Keeper::start(lock, &grant, move |event| {
        events.send(match event {
            LeaseEvent::Extended(deadline) => Event::Deadline(deadline),
            LeaseEvent::Lost(why) => Event::LeaseLost(why),
        });
    })
    .context("starting the lease keeper")?;
    let child = match supervise::spawn(
        &settings.program,
        &settings.args,
        &env,
        &super::LEASE_ENV_UNSET,
        settings.stop,
    ) {
        Ok(child) => child,
        Err(e) => {
            release(&mut keeper.stop(), &grant.token);
            return Err(e);
        }
    };
    let started = clock::now();
    log::info!("started the command (pid {})", child.pid());

    let time_limit = settings.max_time.map(|limit| started + limit);
    let outcome =
        supervise::supervise(child, &mut inbox, settings.stop, grant.deadline, time_limit);
    conclude(
        settings,
        &mut keeper.stop(),
        &grant.token,
        started,
        &outcome,
    )
}

/// Ends the lease as the command's `outcome` requires and turns it into rlock's exit status.
fn conclude(
    settings: &RunSettings,
    lock: &mut Lock,
    token: &str,
    started: Stamp,
    outcome: &Outcome,
) -> Result<u8> {
    let key = &settings.lock.key;
    let hold_until = settings.min_hold.map(|hold| started + hold);
    let why = match &outcome.stopped {
        None => {
            finish(lock, token, hold_until);
            log::info!("the command exited with status {}", outcome.status.code());
            return Ok(outcome.status.code());
        }
        Some(Stopped::TimeLimit) => {
            finish(lock, token, hold_until);
            let limit = humantime::format_duration(settings.max_time.unwrap_or_default());
            log::info!("the command ran past --max-time {limit}; stopped it");
            return Err(exit::error(
                exit::STOPPED,
                format!(
                    "the command ran longer than --max-time {limit}; it was stopped (lock '{key}')"
                ),
            ));
        }
        Some(Stopped::Deadline) => lost_why(
            None,
            outcome.last_wake,
            settings.lock.ttl,
            lock.last_failure(),
        ),
        Some(Stopped::LeaseLost(why)) => lost_why(
            Some(why),
            outcome.last_wake,
            settings.lock.ttl,
            lock.last_failure(),
        ),
    };
    release(lock, token);
    log::info!("lost: {why}; stopped the command");
    Err(exit::error(
        exit::STOPPED,
        format!("lost lock '{key}': {why}; the command was stopped"),
    ))
}

/// Why the lease was lost, in words. If rlock itself did not run (stopped, suspended, starved) from
/// before the deadline until after it, that is the reason, whatever the keeper found on waking:
/// no extension could have been sent meanwhile. Otherwise it is the reason the supervisor was
/// given (`requested`), or else that no extension succeeded in time, with the `last_failure`.
fn lost_why(
    requested: Option<&str>,
    last_wake: Option<Wake>,
    ttl: Duration,
    last_failure: Option<&str>,
) -> String {
    // Later than ordinary scheduling delays make a wake-up, even on a loaded machine.
    let paused = Duration::from_millis(250).max(ttl / 10);
    if let Some(wake) = last_wake.filter(|w| w.spans_deadline() && w.lateness() > paused) {
        return format!(
            "rlock was stopped, suspended or starved for {:.1}s, past the lease's deadline",
            wake.lateness().as_secs_f64()
        );
    }
    match (requested, last_failure) {
        (Some(why), _) => why.to_owned(),
        (None, Some(failure)) => {
            format!("no extension succeeded in time (last failure: {failure})")
        }
        (None, None) => "no extension succeeded in time (Redis unreachable or too slow)".to_owned(),
    }
}

/// Ends the lease after the command: releases it, or, until `hold_until` (`--min-hold`), leaves it
/// to expire then, so that a host whose cron fires late does not run the job again.
fn finish(lock: &mut Lock, token: &str, hold_until: Option<clock::Stamp>) {
    let left = hold_until.map_or(Duration::ZERO, clock::Stamp::remaining);
    if left.is_zero() {
        return release(lock, token);
    }
    match lock.extend_for(token, left) {
        Extension::Kept { .. } => log::info!(
            "keeping the lock for another {} (--min-hold)",
            humantime::format_duration(super::round_ms(left))
        ),
        Extension::Lost(why) | Extension::Unknown(why) => log::warning!(
            "could not hold lock '{}' for --min-hold ({why}); it expires by itself within {}",
            lock.key(),
            humantime::format_duration(lock.ttl())
        ),
    }
}

/// Releases the lease on every node; a failure is a warning, since the lease expires by itself.
fn release(lock: &mut Lock, token: &str) {
    let released = lock.release(token);
    if released.failures.is_empty() {
        log::info!("released on {} node(s)", released.deleted);
    } else {
        log::warning!(
            "could not release lock '{}' everywhere ({}); it expires by itself within {}",
            lock.key(),
            released.failures,
            humantime::format_duration(lock.ttl())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);

    /// A time `ms` milliseconds after an arbitrary origin.
    fn at(ms: u64) -> Stamp {
        Stamp::from_since_boot(Duration::from_secs(1000) + Duration::from_millis(ms))
    }

    /// A wake-up due at `due` ms that came at `woke` ms, with the deadline at `deadline` ms.
    fn wake(due: u64, woke: u64, deadline: u64) -> Wake {
        Wake {
            due: at(due),
            woke: at(woke),
            deadline: at(deadline),
        }
    }

    #[test]
    fn a_pause_across_the_deadline_is_the_reason_the_lease_was_lost() {
        let why = lost_why(None, Some(wake(1000, 4000, 2000)), TTL, Some("timed out"));
        assert_eq!(
            why,
            "rlock was stopped, suspended or starved for 3.0s, past the lease's deadline"
        );
        // It beats what the keeper found on waking, too late.
        let why = lost_why(
            Some("the lock is gone"),
            Some(wake(1000, 4000, 2000)),
            TTL,
            None,
        );
        assert!(why.starts_with("rlock was stopped"), "{why}");
    }

    #[test]
    fn a_pause_that_ended_before_the_deadline_is_not_the_reason() {
        let why = lost_why(None, Some(wake(100, 1500, 2000)), TTL, Some("timed out"));
        assert_eq!(
            why,
            "no extension succeeded in time (last failure: timed out)"
        );
    }

    #[test]
    fn a_wake_up_late_by_ordinary_scheduling_is_not_a_pause() {
        let why = lost_why(None, Some(wake(1990, 2100, 2000)), TTL, None);
        assert_eq!(
            why,
            "no extension succeeded in time (Redis unreachable or too slow)"
        );
        // Long TTLs allow a tenth of the TTL.
        let long = Duration::from_secs(60);
        let why = lost_why(None, Some(wake(0, 5000, 2000)), long, None);
        assert!(why.starts_with("no extension"), "{why}");
        let why = lost_why(None, Some(wake(0, 7000, 2000)), long, None);
        assert!(why.starts_with("rlock was stopped"), "{why}");
    }

    #[test]
    fn without_a_pause_the_lease_was_lost_for_the_reason_given() {
        assert_eq!(
            lost_why(Some("the lock is gone"), None, TTL, Some("timed out")),
            "the lock is gone"
        );
        assert_eq!(
            lost_why(None, None, TTL, Some("timed out")),
            "no extension succeeded in time (last failure: timed out)"
        );
    }
}
