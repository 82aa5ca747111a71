//! Nested runs: `rlock -k K -- cmd` started under a command that already holds K passes through.
//!
//! Scripts call scripts. A job under `rlock -k K` that runs a helper which itself says
//! `rlock -k K -- ...` would otherwise wait on its own lock, or skip it with exit 75. The outer
//! rlock gives its command the lease's key, token, nodes, prefix and mode; when they all match this
//! invocation's, and a majority of the nodes confirm that the token still holds the lock, the
//! command runs in rlock's place (`exec`): nothing is taken, extended or released. The outer rlock
//! keeps the lease, and if it loses it, stops this command with the rest of its process group. If
//! the token no longer holds the lock, nothing is pretended: the lock is taken as any other.
//!
//! `acquire` does not pass through: a script pairs it with `release`, which would end the outer
//! lease under the outer command's feet.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use anyhow::Result;

use crate::config::LockSettings;
use crate::exit;
use crate::log;

/// The outer lease's token, if the environment (read through `var`) describes the same lock, on
/// the same nodes, in the same mode, as `s`.
pub(crate) fn outer_token(
    s: &LockSettings,
    var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let same = |name: &str, value: &str| var(name).as_deref() == Some(value);
    let limit = s.mode.limit().map(|n| n.to_string());
    let same_lock = same("RLOCK_KEY", &s.key)
        && same("RLOCK_PREFIX", &s.prefix)
        && same("RLOCK_REDIS", &s.urls.join(","))
        && same("RLOCK_MODE", s.mode.name())
        && limit.as_deref().is_none_or(|n| same("RLOCK_LIMIT", n));
    same_lock
        .then(|| var("RLOCK_TOKEN"))
        .flatten()
        .filter(|token| !token.trim().is_empty())
}

/// Runs `program` in rlock's place if rlock was started under a holder of the same lock whose
/// token still holds it; returns only if it does not (`Ok`) or the program cannot be run (`Err`,
/// 126 or 127).
pub(crate) fn pass_through(s: &LockSettings, program: &OsString, args: &[OsString]) -> Result<()> {
    let Some(token) = outer_token(s, |name| std::env::var(name).ok()) else {
        return Ok(());
    };
    // Any failure to tell means: take the lock as any other, which reports it properly.
    let Ok(state) = s.lock().and_then(|mut lock| lock.status(Some(&token))) else {
        return Ok(());
    };
    if !state.occupants.iter().any(|o| o.mine) {
        log::info!("RLOCK_TOKEN no longer holds the lock: taking it as any other");
        return Ok(());
    }
    log::info!("the caller holds this lock (RLOCK_TOKEN): running the command in its lease");
    log::flush(Duration::from_secs(1));
    // exec returns only on failure; std resets the signal mask and SIGPIPE for the new program.
    let e = std::process::Command::new(program).args(args).exec();
    let name = program.to_string_lossy();
    Err(match e.kind() {
        std::io::ErrorKind::NotFound => {
            exit::error(exit::NOT_FOUND, format!("command not found: '{name}'"))
        }
        _ => exit::error(
            exit::NOT_EXECUTABLE,
            format!("cannot execute '{name}': {e}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::lease::{Mode, Tls};

    fn settings(mode: Mode) -> LockSettings {
        LockSettings {
            key: "job".to_owned(),
            prefix: "rlock:".to_owned(),
            mode,
            ordered: true,
            urls: vec!["redis://a".to_owned(), "redis://b".to_owned()],
            ttl: Duration::from_secs(30),
            tls: Tls::default(),
        }
    }

    fn outer(changes: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("RLOCK_KEY", "job"),
            ("RLOCK_PREFIX", "rlock:"),
            ("RLOCK_REDIS", "redis://a,redis://b"),
            ("RLOCK_MODE", "exclusive"),
            ("RLOCK_LIMIT", "1"),
            ("RLOCK_TOKEN", "t0k"),
        ]
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for &(k, v) in changes {
            env.insert(k.to_owned(), v.to_owned());
        }
        env
    }

    fn token(s: &LockSettings, env: &HashMap<String, String>) -> Option<String> {
        outer_token(s, |name| env.get(name).cloned())
    }

    #[test]
    fn the_same_lock_on_the_same_nodes_in_the_same_mode_passes_the_token_on() {
        let s = settings(Mode::Exclusive);
        assert_eq!(token(&s, &outer(&[])).as_deref(), Some("t0k"));
        let limited = outer(&[("RLOCK_MODE", "limit"), ("RLOCK_LIMIT", "3")]);
        assert_eq!(
            token(&settings(Mode::Limit(3)), &limited).as_deref(),
            Some("t0k")
        );
    }

    #[test]
    fn another_key_prefix_node_list_mode_or_limit_does_not() {
        let s = settings(Mode::Exclusive);
        for change in [
            ("RLOCK_KEY", "other"),
            ("RLOCK_PREFIX", "app:"),
            ("RLOCK_REDIS", "redis://a"),
            ("RLOCK_MODE", "shared"),
            ("RLOCK_TOKEN", ""),
        ] {
            assert_eq!(token(&s, &outer(&[change])), None, "{change:?}");
        }
        let limited = outer(&[("RLOCK_MODE", "limit"), ("RLOCK_LIMIT", "2")]);
        assert_eq!(token(&settings(Mode::Limit(3)), &limited), None);
        assert_eq!(token(&settings(Mode::Shared), &outer(&[])), None);
        let mut bare = outer(&[]);
        bare.remove("RLOCK_TOKEN");
        assert_eq!(token(&s, &bare), None);
    }
}
