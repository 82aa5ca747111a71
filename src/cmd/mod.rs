//! One module per subcommand, each composing the pieces (lease, keeper, supervisor) for one job,
//! and what several of them share: the signal inbox, the lease's environment, and telling the user
//! a lock is busy. Taking a lease with `--wait` has a module of its own, `wait`.

pub mod acquire;
pub mod completions;
pub mod extend;
pub mod list;
mod nested;
pub mod release;
pub mod run;
pub mod status;
mod wait;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::LockSettings;
use crate::events::Event;
use crate::exit;
use crate::inbox::{self, Inbox};
use crate::lease::{Grant, LeaseError, Mode};
use crate::log::{self, Level};
use crate::signals::{self, Caught};

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
        ("RLOCK_MODE", s.mode.name().to_owned()),
    ];
    if let Some(limit) = s.mode.limit() {
        env.push(("RLOCK_SLOT", grant.slot.to_string()));
        env.push(("RLOCK_LIMIT", limit.to_string()));
    }
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

/// Says that lock `key`, taken in `mode`, is busy (unless `-q`, or `-E 0` asked for a silent
/// skip); returns `code`.
pub(crate) fn busy(key: &str, mode: Mode, expires_in: Option<Duration>, code: u8) -> u8 {
    if code != 0 && log::enabled(Level::Normal) {
        let left = |what: &str| {
            expires_in.map_or_else(String::new, |d| {
                format!(" ({what} {} more)", humantime::format_duration(round_ms(d)))
            })
        };
        let message = match mode {
            Mode::Exclusive => format!(
                "lock '{key}' is held by someone else{}",
                left("its lease runs for up to")
            ),
            Mode::Shared => format!(
                "lock '{key}' is held exclusively, or an exclusive waiter is next{}",
                left("for up to")
            ),
            Mode::Limit(n) => format!(
                "all {n} places of lock '{key}' are held{}",
                left("the first frees up in at most")
            ),
        };
        log::emit(Level::Normal, false, format_args!("{message}"));
    }
    code
}

/// This host's name, for holder records.
pub(crate) fn host_name() -> String {
    nix::unistd::gethostname().map_or_else(|_| "?".to_owned(), |h| h.to_string_lossy().into_owned())
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
