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
use crate::lease::LockStatus;
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
    Ok(if state.held { 0 } else { exit::NOT_HELD })
}

/// Lines for people.
fn plain(key: &str, state: &LockStatus) -> String {
    let mut out = if state.held {
        let whose = if state.mine { " by you" } else { "" };
        format!("lock '{key}' is held{whose}\n")
    } else {
        format!("lock '{key}' is free\n")
    };
    if let Some(d) = state.expires_in {
        let _ = writeln!(
            out,
            "  expires in:   {}",
            humantime::format_duration(super::round_ms(d))
        );
    }
    if !state.holder.is_empty() {
        let field = |name: &str| {
            state
                .holder
                .iter()
                .find(|(k, _)| k == name)
                .map_or("?", |(_, v)| v.as_str())
        };
        let _ = writeln!(
            out,
            "  holder:       {} pid {} ({}), since {}",
            field("host"),
            field("pid"),
            field("command"),
            since(field("since"))
        );
    }
    if let Some(fence) = state.fence {
        let _ = writeln!(out, "  latest fence: {fence}");
    }
    if state.nodes.len() > 1 {
        for (name, view) in &state.nodes {
            let line = match view {
                Ok(v) if v.digest.is_some() => match v.ttl {
                    Some(ttl) => format!(
                        "held, {} left",
                        humantime::format_duration(super::round_ms(ttl))
                    ),
                    None => "held, no expiry".to_owned(),
                },
                Ok(_) => "free".to_owned(),
                Err(e) => format!("unreachable: {e}"),
            };
            let _ = writeln!(out, "  {name}: {line}");
        }
    }
    out
}

/// One JSON object.
fn as_json(key: &str, state: &LockStatus) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let holder: serde_json::Map<String, Value> = state
        .holder
        .iter()
        .map(|(k, v)| (k.clone(), holder_field(k, v)))
        .collect();
    let nodes: Vec<Value> = state
        .nodes
        .iter()
        .map(|(name, view)| match view {
            Ok(v) => json!({"url": name, "held": v.digest.is_some(), "ttl_ms": ms(v.ttl), "fence": v.fence.map(super::fence_json)}),
            Err(e) => json!({"url": name, "error": e.to_string()}),
        })
        .collect();
    json!({
        "key": key,
        "held": state.held,
        "mine": state.mine,
        "expires_in_ms": ms(state.expires_in),
        "holder": if holder.is_empty() { Value::Null } else { Value::Object(holder) },
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
fn since(text: &str) -> String {
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
            held: true,
            mine: false,
            expires_in: Some(Duration::from_millis(1500)),
            holder: holder
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            fence: Some(7),
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
    fn json_gives_null_for_a_holder_number_that_is_not_one() {
        let v = as_json("job", &held_by(&[("pid", "?"), ("since", "")]));
        assert_eq!(v["holder"], json!({"pid": null, "since": null}));
    }
}
