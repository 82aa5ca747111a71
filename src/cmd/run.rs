//! `rlock run`: take the lease, run the command under it, release it.
//!
//! This is where the lease and the child meet, through one [`Inbox`](crate::inbox::Inbox) of
//! [`Event`]s: the signal thread and the keeper send, the supervisor receives. The lease is taken
//! before the command starts, kept by the [`Keeper`] while it runs, and released only once the
//! command's whole process group is gone; if the lease cannot be kept, the command is stopped and
//! rlock exits 124.

use anyhow::{Context, Result};

use super::Acquired;
use crate::config::RunSettings;
use crate::exit;
use crate::keeper::{Keeper, LeaseEvent};
use crate::lease::{Holder, Lock};
use crate::log;
use crate::supervise::{self, Event, Stopped};

/// Runs the command under the lock; returns the exit status.
pub fn run(settings: &RunSettings) -> Result<u8> {
    let (events, mut inbox) = super::events()?;
    let s = &settings.lock;
    let mut lock = Lock::new(&s.key, &s.prefix, &s.urls, s.ttl)?;
    let holder = Holder {
        host: super::host_name(),
        pid: std::process::id(),
        command: std::path::Path::new(&settings.program)
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
    };

    let grant = match super::acquire(&mut lock, &holder, settings.wait, &mut inbox)? {
        Acquired::Granted(grant) => grant,
        Acquired::Busy(expires_in) => {
            return Ok(super::busy(&s.key, expires_in, settings.conflict_exit_code));
        }
        Acquired::Interrupted(signal) => return Ok(Acquired::signal_status(signal)),
    };
    log::info!(
        "acquired lock '{}' with fence {} on {} of {} node(s)",
        s.key,
        grant.fence,
        grant.granted,
        s.urls.len()
    );

    let env = [
        ("RLOCK_KEY", s.key.clone()),
        ("RLOCK_TOKEN", grant.token.clone()),
        ("RLOCK_FENCE", grant.fence.to_string()),
        ("RLOCK_REDIS", lock.urls()),
        ("RLOCK_PREFIX", s.prefix.clone()),
        ("RLOCK_TTL", humantime::format_duration(s.ttl).to_string()),
    ];
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
        format!("lost lock '{}': {why}; the command was stopped", s.key),
    ))
}

/// Releases the lease on every node; a failure is a warning, since the lease expires by itself.
fn release(lock: &mut Lock, token: &str) {
    let released = lock.release(token);
    if released.failures.is_empty() {
        log::info!(
            "released lock '{}' on {} node(s)",
            lock.key(),
            released.deleted
        );
    } else {
        log::warning!(
            "could not release lock '{}' everywhere ({}); it expires by itself within {}",
            lock.key(),
            released.failures,
            humantime::format_duration(lock.ttl())
        );
    }
}
