//! `rlock release`: delete a lease the caller holds, and nothing else.

use anyhow::Result;

use crate::cli::TokenArgs;
use crate::config;
use crate::exit;
use crate::lease::quorum;
use crate::log;

/// Releases the lease; exit 0, 3 when it was not the caller's (nothing deleted), 69 when some
/// nodes could not be asked and fewer than a majority released it.
pub fn release(args: &TokenArgs) -> Result<u8> {
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
