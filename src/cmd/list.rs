//! `rlock list`: every lock held under the prefix, one line each, or one JSON object.
//!
//! Exit statuses follow `status`: 0 when some lock is held, 3 when none is, 69 when too few nodes
//! could be read to tell. A listing that may miss a held lock (a cluster primary that did not
//! answer, a scan cut short by its time budget) says so on stderr, and never ends with 3: "none
//! held" is said only when it is known.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::status::{as_json, duration, since};
use crate::cli::{ListArgs, StatusFormat};
use crate::config;
use crate::exit;
use crate::lease::scan::{Listed, Listing};
use crate::lease::{Hold, Occupant, Place};
use crate::log;
use crate::out;

/// Prints the locks held; returns 0 if any is, 3 if none is.
pub fn list(args: &ListArgs) -> Result<u8> {
    let s = config::list(args)?;
    let mut lock = s.lock.lock()?;
    let listing = lock.list(&s.lock.prefix, s.pattern.as_deref())?;
    let nodes = lock.node_count();
    match args.format {
        StatusFormat::Plain => out::print(&plain(
            &listing,
            nodes,
            &s.lock.prefix,
            s.pattern.as_deref(),
        )),
        StatusFormat::Json => out::print(&format!(
            "{}\n",
            as_list_json(&listing, &s.lock.prefix, s.pattern.as_deref())
        )),
    }
    let held = listing.locks.iter().any(Listed::held);
    if let Some(why) = &listing.incomplete {
        if !held {
            return Err(exit::error(
                exit::UNAVAILABLE,
                format!("cannot tell whether any lock is held: {why}"),
            ));
        }
        log::warning!("the list may miss locks: {why}");
    } else if !listing.unread.is_empty() {
        log::warning!(
            "not read: {}; a lock held only there is held by no majority, and not listed",
            listing.unread.join("; ")
        );
    }
    Ok(if held { 0 } else { exit::NOT_HELD })
}

/// One line per lock, under a header; the NODES column only when there are several nodes.
fn plain(listing: &Listing, nodes: usize, prefix: &str, pattern: Option<&str>) -> String {
    if listing.locks.is_empty() {
        if listing.incomplete.is_some() {
            // Nothing found is not "none held" here: the error says why it cannot tell.
            return String::new();
        }
        let matching = pattern.map_or_else(String::new, |p| format!(" matching '{p}'"));
        return format!("no lock is held under prefix '{prefix}'{matching}\n");
    }
    let mut rows =
        vec![["LOCK", "MODE", "HOLDER", "SINCE", "TTL", "FENCE", "NODES"].map(str::to_owned)];
    // Names and records come from Redis, where anyone with write access may have put control
    // characters: they must not move the reader's cursor or recolour their terminal.
    rows.extend(
        listing
            .locks
            .iter()
            .map(|l| row(l, nodes).map(|cell| cell.replace(char::is_control, "?"))),
    );
    let columns = if nodes > 1 { 7 } else { 6 };
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, width) in widths.iter().enumerate() {
            let _ = write!(line, "{:<width$}  ", r[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// One lock's columns: one holder stands for all (JSON lists every one).
fn row(listed: &Listed, nodes: usize) -> [String; 7] {
    let state = &listed.status;
    let occupants = &state.occupants;
    let mut mode = match occupants.first().map(|o| o.place) {
        None => "minority".to_owned(),
        Some(Place::Exclusive) => "exclusive".to_owned(),
        Some(Place::Shared) => format!("shared ({})", occupants.len()),
        Some(Place::Slot(_)) => {
            let limit = state
                .limit
                .map_or_else(|| "?".to_owned(), |n| n.to_string());
            format!("limit {limit} ({} held)", occupants.len())
        }
    };
    if state.waiting > 0 {
        let _ = write!(mode, ", {} waiting", state.waiting);
    }
    // A lock held on a minority is described by what a node that answered holds: who left it,
    // and how long until it lapses.
    let minority: Option<&Hold> = state
        .nodes
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok())
        .flat_map(|v| v.holds.iter())
        .max_by_key(|h| h.ttl);
    // The holder whose lease runs longest: when it ends, the lock is free for anyone.
    let longest = occupants.iter().max_by_key(|o| o.expires_in);
    let (holder, ttl) = match (longest, minority) {
        (
            Some(Occupant {
                holder, expires_in, ..
            }),
            _,
        ) => (holder.clone(), *expires_in),
        (None, Some(h)) => (h.holder.clone(), h.ttl),
        (None, None) => (Vec::new(), None),
    };
    let field = |name: &str| {
        holder
            .iter()
            .find(|(k, _)| k == name)
            .map_or("?", |(_, v)| v.as_str())
            .to_owned()
    };
    let mut who = if holder.is_empty() {
        "?".to_owned()
    } else {
        format!(
            "{} pid {} ({})",
            field("host"),
            field("pid"),
            field("command")
        )
    };
    if occupants.len() > 1 {
        let _ = write!(who, " +{} more", occupants.len() - 1);
    }
    [
        listed.key.clone(),
        mode,
        who,
        if holder.is_empty() {
            "?".to_owned()
        } else {
            since(&field("since"))
        },
        ttl.map_or_else(|| "-".to_owned(), |d| duration(rounded(d))),
        state
            .fence
            .map_or_else(|| "-".to_owned(), |f| f.to_string()),
        format!("{}/{nodes}", listed.agreeing()),
    ]
}

/// `d` to the second, or to the millisecond under one: a TTL at a glance.
fn rounded(d: Duration) -> Duration {
    if d < Duration::from_secs(1) {
        d
    } else {
        Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
    }
}

/// One JSON object: each lock as `status --format json` prints it, with `minority` (held by no
/// majority) and `agreeing`, and whether the listing is complete.
fn as_list_json(listing: &Listing, prefix: &str, pattern: Option<&str>) -> Value {
    let locks: Vec<Value> = listing
        .locks
        .iter()
        .map(|l| {
            let mut lock = as_json(&l.key, &l.status);
            lock["minority"] = Value::Bool(!l.held());
            lock["agreeing"] = Value::from(l.agreeing());
            lock
        })
        .collect();
    json!({
        "prefix": prefix,
        "pattern": pattern,
        "locks": locks,
        "complete": listing.incomplete.is_none(),
        "unread": listing.unread,
    })
}
