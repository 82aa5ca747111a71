//! `rlock acquire`: take the lease and print it, for scripts that release it themselves.
//!
//! Nothing keeps this lease alive: the caller extends it (`rlock extend`) and releases it
//! (`rlock release`). The holder record names the calling process (rlock's parent), since rlock
//! itself exits at once.

use anyhow::Result;
use serde_json::json;

use super::wait::{self, Acquired};
use crate::cli::{AcquireArgs, AcquireFormat};
use crate::config;
use crate::exit;
use crate::lease::{Grant, Holder, Lock};
use crate::out;

/// Takes the lease and prints it in the requested format; returns the exit status.
pub fn acquire(args: &AcquireArgs) -> Result<u8> {
    let s = config::lock(&args.lock)?;
    let (events, mut inbox) = super::events()?;
    let mut lock = s.lock()?;
    let parent = nix::unistd::getppid().as_raw();
    let holder = Holder {
        host: super::host_name(),
        pid: parent.unsigned_abs(),
        command: std::fs::read_to_string(format!("/proc/{parent}/comm"))
            .map_or_else(|_| String::new(), |c| c.trim().to_owned()),
    };
    let grant = match wait::take(&mut lock, &holder, args.wait.wait, &events, &mut inbox)? {
        Acquired::Granted(grant) => grant,
        Acquired::Busy(expires_in) => {
            return Ok(super::busy(
                &s.key,
                s.mode,
                expires_in,
                args.wait.conflict_exit_code,
            ));
        }
        Acquired::Interrupted(signal) => return Ok(signal.exit_status()),
    };
    let text = format!("{}\n", render(args.format, &s, &lock, &grant));
    if let Err(e) = out::hand_over(text, grant.deadline) {
        // The caller cannot have the token, so nobody could release the lease: do it now.
        let released = lock.release(&grant.token);
        let left = if released.failures.is_empty() {
            "released it".to_owned()
        } else {
            format!(
                "could not release it everywhere ({}): it expires by itself within {}",
                released.failures,
                humantime::format_duration(s.ttl)
            )
        };
        return Err(exit::error(
            exit::FAILURE,
            format!(
                "took lock '{}' but could not print its token ({e}); {left}",
                s.key
            ),
        ));
    }
    Ok(0)
}

/// The lease as `format` prints it.
fn render(format: AcquireFormat, s: &config::LockSettings, lock: &Lock, grant: &Grant) -> String {
    match format {
        AcquireFormat::Plain => grant.token.clone(),
        AcquireFormat::Json => json!({
            "key": s.key,
            "token": grant.token,
            "fence": super::fence_json(grant.fence),
            "ttl_ms": millis(s.ttl),
            "validity_ms": millis(grant.deadline.remaining()),
            "nodes": lock.names(),
            "granted": grant.granted,
            "mode": s.mode.name(),
            "slot": s.mode.limit().map(|_| grant.slot),
            "limit": s.mode.limit(),
        })
        .to_string(),
        AcquireFormat::Shell => super::LEASE_ENV_UNSET
            .iter()
            .map(|name| format!("unset {name}"))
            .chain(
                super::lease_env(s, grant)
                    .iter()
                    .map(|(name, value)| format!("export {name}={}", shell_quote(value))),
            )
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `text` as one single-quoted shell word: nothing inside is expanded or executed.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `d` in whole milliseconds.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quoting_keeps_every_character_literal() {
        assert_eq!(shell_quote("job"), "'job'");
        assert_eq!(
            shell_quote("it's $(rm -rf /) `x` \"y\""),
            r#"'it'\''s $(rm -rf /) `x` "y"'"#
        );
        assert_eq!(shell_quote(""), "''");
    }
}
