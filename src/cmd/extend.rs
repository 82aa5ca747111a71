//! `rlock extend`: push out the expiry of a lease the caller holds.

use anyhow::Result;

use crate::cli::TokenArgs;
use crate::config;
use crate::exit;
use crate::lease::Extension;
use crate::log;

/// Extends the lease; exit 0, 3 when it is not the caller's, 69 when too few nodes answered.
pub fn extend(args: &TokenArgs) -> Result<u8> {
    let s = config::lock(&args.lock)?;
    let token = config::token(args.token.as_deref())?;
    let mut lock = s.lock()?;
    match lock.extend(&token) {
        Extension::Kept { .. } => {
            log::info!(
                "extended lock '{}' to {}",
                s.key,
                humantime::format_duration(s.ttl)
            );
            Ok(0)
        }
        Extension::Lost(why) => Err(exit::error(
            exit::NOT_HELD,
            format!("cannot extend lock '{}': {why}", s.key),
        )),
        Extension::Unknown(why) => Err(exit::error(
            exit::UNAVAILABLE,
            format!(
                "could not extend lock '{}' on a majority of nodes: {why}",
                s.key
            ),
        )),
    }
}
