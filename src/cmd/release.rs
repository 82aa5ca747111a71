//! `rlock release`: delete a lease the caller holds, and nothing else; or, with `--force`, break
//! a stuck lock whoever holds it.
//!
//! Breaking is an operator's action and says what it did: whose lease it ended, and the latest
//! fence, since that is what protects the resource from the old holder if it is still alive. It
//! never touches the fence counter, so every later grant carries a larger fence than the broken
//! lease's.

use std::fmt::Write as _;

use anyhow::Result;

use crate::cli::{ReleaseArgs, TokenArgs};
use crate::config;
use crate::exit;
use crate::lease::{Place, quorum};
use crate::log;
use crate::out;

/// Releases the lease (or breaks the lock with `--force`); exit 0, 3 when it was not the caller's
/// (nothing deleted), 69 when some nodes could not be asked and fewer than a majority released it.
pub fn release(args: &ReleaseArgs) -> Result<u8> {
    if args.force {
        return force(&args.lease);
    }
    let args = &args.lease;
    let s = config::lock(&args.lock)?;
    let token = config::token(args.token.as_deref())?;
    let mut lock = s.lock()?;
    let released = lock.release(&token);
    if !released.failures.is_empty() {
        if released.deleted >= quorum::majority(s.urls.len()) {
            log::warning!(
                "released lock '{}', but not everywhere ({}); it expires there by itself",
                s.key,
                released.failures
            );
            return Ok(0);
        }
        return Err(exit::error(
            exit::UNAVAILABLE,
            format!(
                "could not release lock '{}' on enough nodes: {}",
                s.key, released.failures
            ),
        ));
    }
    if released.deleted == 0 {
        return Err(exit::error(
            exit::NOT_HELD,
            format!(
                "lock '{}' is not held with this token (it expired, or another holder has it); nothing was deleted",
                s.key
            ),
        ));
    }
    log::info!("released lock '{}' on {} node(s)", s.key, released.deleted);
    Ok(0)
}

/// `--force`: ends every hold of the lock on every node and prints whose; exit 0, 3 when nothing
/// was held anywhere, 69 when fewer than a majority of the nodes could be asked.
fn force(args: &TokenArgs) -> Result<u8> {
    let s = config::lock(&args.lock)?;
    let mut lock = s.lock()?;
    let before = lock.status(None)?;
    let ended = lock.break_lock();
    let failures: Vec<String> = ended
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    let answered = ended.len() - failures.len();
    if answered < quorum::majority(ended.len()) {
        return Err(exit::error(
            exit::UNAVAILABLE,
            format!(
                "could not break lock '{}' on enough nodes: {}",
                s.key,
                failures.join("; ")
            ),
        ));
    }
    let holds: i64 = ended.iter().filter_map(|(_, r)| r.as_ref().ok()).sum();
    if holds == 0 {
        return Err(exit::error(
            exit::NOT_HELD,
            format!(
                "lock '{}' is not held on any node; nothing was deleted",
                s.key
            ),
        ));
    }
    let mut text = String::new();
    for o in &before.occupants {
        let place = match o.place {
            Place::Exclusive => String::new(),
            Place::Slot(i) => format!(" in slot {i}"),
            Place::Shared => " (shared)".to_owned(),
        };
        let _ = writeln!(
            text,
            "broke lock '{}': ended the lease{place} of {}",
            s.key,
            super::status::who(&o.holder)
        );
    }
    if before.occupants.is_empty() {
        let _ = writeln!(
            text,
            "broke lock '{}': cleared holds that no majority of nodes agreed on",
            s.key
        );
    }
    if let Some(fence) = before.fence {
        let _ = writeln!(
            text,
            "latest fence {fence}: a resource that checks fences refuses the old holder once a \
             later holder (fence above {fence}) has used it"
        );
    }
    out::print(&text);
    if !failures.is_empty() {
        log::warning!(
            "broke lock '{}', but not on every node ({}); it expires there by itself",
            s.key,
            failures.join("; ")
        );
    }
    Ok(0)
}
