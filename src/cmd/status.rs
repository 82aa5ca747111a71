//! `rlock status`: whether the lock is held, by whom, until when, and the latest fence.
//!
//! Exit statuses fit scripts like `systemctl is-active`: 0 held, 3 free, 69 unreachable. It never
//! prints a token: nodes compare holders by a digest computed on the server.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};

use crate::cli::{StatusArgs, StatusFormat};
use crate::config;
use crate::exit;
use crate::lease::{LockStatus, Occupant, Place};
use crate::out;

/// Prints the lock's state; returns 0 if held, 3 if free.
pub fn status(args: &StatusArgs) -> Result<u8> {
    let s = config::lock(&args.lock)?;
    let mut lock = s.lock()?;
    let state = lock.status(args.token.as_deref())?;
    match args.format {
        StatusFormat::Plain => out::print(&plain(&s.key, &state)),
        StatusFormat::Json => out::print(&format!("{}\n", as_json(&s.key, &state))),
    }
    Ok(if state.held() { 0 } else { exit::NOT_HELD })
}

/// The only holder, if it holds the lock exclusively: then status prints as it always did.
fn exclusive(state: &LockStatus) -> Option<&Occupant> {
    match state.occupants.as_slice() {
        [only] if only.place == Place::Exclusive => Some(only),
        _ => None,
    }
}

/// Lines for people.
fn plain(key: &str, state: &LockStatus) -> String {
    let limit = state
        .limit
        .map_or_else(String::new, |n| format!(" (limit {n})"));
    let mut out = match (exclusive(state), state.occupants.len()) {
        (Some(o), _) => {
            let whose = if o.mine { " by you" } else { "" };
            format!("lock '{key}' is held{whose}\n")
        }
        (None, 0) => format!("lock '{key}' is free{limit}\n"),
        (None, n) => {
            let holders = if n == 1 { "holder" } else { "holders" };
            let you = if state.mine() { ", you among them" } else { "" };
            format!("lock '{key}' is held by {n} {holders}{limit}{you}\n")
        }
    };
    if let Some(o) = exclusive(state) {
        if let Some(d) = o.expires_in {
            let _ = writeln!(out, "  expires in:   {}", duration(d));
        }
        if !o.holder.is_empty() {
            let _ = writeln!(out, "  holder:       {}", who(&o.holder));
        }
    } else {
        for o in &state.occupants {
            let label = match o.place {
                Place::Slot(i) => format!("slot {i}:"),
                Place::Shared => "shared:".to_owned(),
                Place::Exclusive => "exclusive:".to_owned(),
            };
            let expires = o
                .expires_in
                .map_or_else(String::new, |d| format!(", expires in {}", duration(d)));
            let you = if o.mine { " (you)" } else { "" };
            let _ = writeln!(out, "  {label:<14}{}{expires}{you}", who(&o.holder));
        }
    }
    if state.exclusive_waiting {
        let _ = writeln!(out, "  an exclusive waiter holds back new shared holders");
    }
    if state.waiting > 0 {
        let next = if state.next.is_empty() {
            String::new()
        } else {
            format!(" (next: {})", who(&state.next))
        };
        let _ = writeln!(out, "  waiting:      {}{next}", state.waiting);
    }
    if let Some(fence) = state.fence {
        let _ = writeln!(out, "  latest fence: {fence}");
    }
    if state.nodes.len() > 1 {
        for (name, view) in &state.nodes {
            let line = match view {
                Ok(v) => match v.holds.as_slice() {
                    [] => "free".to_owned(),
                    [one] => match one.ttl {
                        Some(ttl) => format!("held, {} left", duration(ttl)),
                        None => "held, no expiry".to_owned(),
                    },
                    many => format!("held by {}", many.len()),
                },
                Err(e) => format!("unreachable: {e}"),
            };
            let _ = writeln!(out, "  {name}: {line}");
        }
    }
    out
}

/// A duration as status prints it.
pub(super) fn duration(d: Duration) -> String {
    humantime::format_duration(super::round_ms(d)).to_string()
}

/// A holder record in words: host, pid, command, since.
pub(crate) fn who(holder: &[(String, String)]) -> String {
    if holder.is_empty() {
        return "?".to_owned();
    }
    let field = |name: &str| {
        holder
            .iter()
            .find(|(k, _)| k == name)
            .map_or("?", |(_, v)| v.as_str())
    };
    format!(
        "{} pid {} ({}), since {}",
        field("host"),
        field("pid"),
        field("command"),
        since(field("since"))
    )
}

/// One JSON object. `holder` and `expires_in_ms` are those of an exclusive holder (null in the
/// other modes, where `holders` lists every holder).
pub(super) fn as_json(key: &str, state: &LockStatus) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let record = |holder: &[(String, String)]| {
        let map: serde_json::Map<String, Value> = holder
            .iter()
            .map(|(k, v)| (k.clone(), holder_field(k, v)))
            .collect();
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    let holders: Vec<Value> = state
        .occupants
        .iter()
        .map(|o| {
            let (mode, slot) = match o.place {
                Place::Exclusive => ("exclusive", None),
                Place::Shared => ("shared", None),
                Place::Slot(i) => ("limit", Some(i)),
            };
            json!({
                "mode": mode,
                "slot": slot,
                "mine": o.mine,
                "expires_in_ms": ms(o.expires_in),
                "holder": record(&o.holder),
            })
        })
        .collect();
    let mode = state.occupants.first().map(|o| match o.place {
        Place::Exclusive => "exclusive",
        Place::Shared => "shared",
        Place::Slot(_) => "limit",
    });
    let nodes: Vec<Value> = state
        .nodes
        .iter()
        .map(|(name, view)| match view {
            Ok(v) => json!({
                "url": name,
                "held": !v.holds.is_empty(),
                "holders": v.holds.len(),
                "ttl_ms": ms(v.holds.iter().find(|h| h.place == Place::Exclusive).and_then(|h| h.ttl)),
                "fence": v.fence.map(super::fence_json),
            }),
            Err(e) => json!({"url": name, "error": e.to_string()}),
        })
        .collect();
    let only = exclusive(state);
    json!({
        "key": key,
        "held": state.held(),
        "mine": state.mine(),
        "mode": mode,
        "limit": state.limit,
        "expires_in_ms": ms(only.and_then(|o| o.expires_in)),
        "holder": only.map_or(Value::Null, |o| record(&o.holder)),
        "holders": holders,
        "exclusive_waiting": state.exclusive_waiting,
        "queue": {"length": state.waiting, "head": record(&state.next)},
        "fence": state.fence.map(super::fence_json),
        "nodes": nodes,
    })
}

/// The holder record's fields that are numbers, though Redis stores every field as text.
const NUMERIC_HOLDER_FIELDS: [&str; 2] = ["pid", "since"];

/// One field of the holder record as JSON: `pid` and `since` (Unix seconds) as numbers, or null
/// if the record holds something else there, so that their type never changes.
fn holder_field(name: &str, text: &str) -> Value {
    if NUMERIC_HOLDER_FIELDS.contains(&name) {
        text.parse::<u64>().map_or(Value::Null, Value::from)
    } else {
        Value::String(text.to_owned())
    }
}

/// A holder's `since` (Unix seconds) as an RFC 3339 time, or as stored if it is not a number.
pub(super) fn since(text: &str) -> String {
    text.parse::<u64>().map_or_else(
        |_| text.to_owned(),
        |secs| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &[(&str, &str)]) -> LockStatus {
        LockStatus {
            occupants: vec![Occupant {
                place: Place::Exclusive,
                mine: false,
                expires_in: Some(Duration::from_millis(1500)),
                holder: holder
                    .iter()
                    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                digest: "d".to_owned(),
            }],
            limit: None,
            exclusive_waiting: false,
            fence: Some(7),
            waiting: 0,
            next: Vec::new(),
            nodes: Vec::new(),
        }
    }

    #[test]
    fn json_gives_the_holders_pid_and_since_as_numbers() {
        let v = as_json(
            "job",
            &held_by(&[
                ("host", "web1"),
                ("pid", "4242"),
                ("command", "backup"),
                ("since", "1764000000"),
            ]),
        );
        assert_eq!(
            v["holder"],
            json!({"host": "web1", "pid": 4242, "command": "backup", "since": 1_764_000_000})
        );
        assert_eq!(v["expires_in_ms"], 1500);
        assert_eq!(v["fence"], "7", "a string, exact beyond 2^53");
    }

    #[test]
    fn every_holder_of_a_limited_lock_gets_a_line_with_its_slot() {
        let mut state = held_by(&[("host", "web1"), ("pid", "1"), ("command", "backup")]);
        state.limit = Some(3);
        let mut other = state.occupants[0].clone();
        other.mine = true;
        other.place = Place::Slot(2);
        state.occupants[0].place = Place::Slot(0);
        state.occupants.push(other);
        let text = plain("nas", &state);
        assert!(
            text.starts_with("lock 'nas' is held by 2 holders (limit 3), you among them\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  slot 0:       web1 pid 1 (backup), since ?, expires in 1s 500ms\n"),
            "{text}"
        );
        assert!(
            text.contains("slot 2:") && text.contains("(you)\n"),
            "{text}"
        );
        let v = as_json("nas", &state);
        assert_eq!(v["holders"][1]["slot"], 2);
        assert_eq!(v["mode"], "limit");
        assert_eq!(v["holder"], Value::Null, "no single exclusive holder");
    }

    #[test]
    fn json_gives_null_for_a_holder_number_that_is_not_one() {
        let v = as_json("job", &held_by(&[("pid", "?"), ("since", "")]));
        assert_eq!(v["holder"], json!({"pid": null, "since": null}));
    }
}
