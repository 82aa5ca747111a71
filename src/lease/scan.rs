//! Which locks exist on a lock's nodes, for `rlock list`: found with `SCAN`, judged by `status`.
//!
//! `KEYS` would block a production Redis for as long as it walks the whole keyspace, so the keys
//! are found with `SCAN`, [`SCAN_COUNT`] keys a call, each call bounded by the node's deadline as
//! every other request is, and the whole listing by [`BUDGET`]: a Redis of a hundred million keys
//! yields a listing that says it stopped, never an rlock that runs for an hour.
//!
//! A lock's name comes from the keys of the [key contract](super::scripts) that show a hold:
//! `P{K}` (exclusive), `P{K}:slot:I` (a slot of a limited lock) and `P{K}:readers` (shared
//! holders). The other keys are not a hold: a fence counter never expires and outlives every
//! lease, and the holder records, limit and waiter mark live beside a hold. Each name found is
//! then judged by [`Lock::status`] exactly as `rlock status` judges it, so that a lock held on a
//! minority of the nodes shows as not held.
//!
//! In a Redis Cluster each primary holds only its own slots' keys, so the seed's `CLUSTER SLOTS`
//! names the primaries and each of them is scanned. A lock held by a majority of the nodes is on
//! at least one node of any majority, so a listing that scanned a majority of them to the end
//! misses no held lock; one that did not says so ([`Listing::incomplete`]).

use std::collections::BTreeSet;
use std::time::Duration;

use redis::{ConnectionAddr, FromRedisValue, Value};

use super::node::{self, Node, NodeError};
use super::{Keys, LeaseError, Lock, LockStatus, quorum};
use crate::clock::{self, Stamp};

/// How many keys one `SCAN` call looks at: a short step for the server each time.
pub const SCAN_COUNT: u32 = 100;

/// How long a whole listing may take, scanning and judging, before it stops and says so.
pub const BUDGET: Duration = Duration::from_secs(30);

/// What a listing found.
#[derive(Debug)]
pub struct Listing {
    /// Every lock that some node holds, in name order, with its state across the nodes.
    pub locks: Vec<Listed>,
    /// The nodes, or cluster primaries, that could not be read to the end, and why.
    pub unread: Vec<String>,
    /// Why the listing may miss a lock that a majority holds, if it may.
    pub incomplete: Option<String>,
}

/// One lock that some node holds.
#[derive(Debug)]
pub struct Listed {
    /// Its name.
    pub key: String,
    /// Its state, judged as `status` judges it.
    pub status: LockStatus,
}

impl Listed {
    /// Whether a majority of the nodes agrees on its holders.
    pub fn held(&self) -> bool {
        self.status.held()
    }

    /// On how many nodes it stands as judged: for a held lock, the nodes that hold exactly its
    /// holders (every node, unless some disagree); for one held on a minority only, the most nodes
    /// any one holder is on.
    pub fn agreeing(&self) -> usize {
        let views = self
            .status
            .nodes
            .iter()
            .filter_map(|(_, v)| v.as_ref().ok());
        if self.held() {
            let mut judged: Vec<_> = self
                .status
                .occupants
                .iter()
                .map(|o| (o.place, o.digest.as_str()))
                .collect();
            judged.sort_unstable();
            views
                .filter(|v| {
                    let mut there: Vec<_> = v
                        .holds
                        .iter()
                        .map(|h| (h.place, h.digest.as_str()))
                        .collect();
                    there.sort_unstable();
                    there == judged
                })
                .count()
        } else {
            let views: Vec<_> = views.collect();
            views
                .iter()
                .flat_map(|v| v.holds.iter())
                .map(|h| {
                    views
                        .iter()
                        .filter(|v| {
                            v.holds
                                .iter()
                                .any(|o| o.place == h.place && o.digest == h.digest)
                        })
                        .count()
                })
                .max()
                .unwrap_or(0)
        }
    }
}

impl Lock {
    /// Every lock under `prefix` whose name matches the glob `pattern` (all, if none) and that
    /// some node holds, each judged by [`Lock::status`] (but a node that failed its scan is taken
    /// to fail again, not asked once per lock). This lock's own name is not used; it is
    /// left pointing at the last lock read. [`LeaseError::Unreachable`] when fewer than a
    /// majority of the nodes could be read, or a lock could not be judged.
    pub fn list(&mut self, prefix: &str, pattern: Option<&str>) -> Result<Listing, LeaseError> {
        let end = clock::now() + BUDGET;
        let filter = format!("{}{{{}}}*", escape(prefix), pattern.unwrap_or("*"));
        let timeout = self.timeout;
        let scans = node::on_all(&mut self.nodes, |_, node| {
            Some(scan_node(node, &filter, prefix, timeout, end))
        });
        let (n, majority) = (self.nodes.len(), quorum::majority(self.nodes.len()));
        let (mut names, mut gaps, mut failures, mut whole) =
            (BTreeSet::new(), Vec::new(), Vec::new(), 0);
        let mut silent = Vec::new();
        for (i, (node, scan)) in self.nodes.iter().zip(scans).enumerate() {
            match scan.expect("no node is skipped") {
                Ok(found) => {
                    whole += usize::from(found.gaps.is_empty());
                    names.extend(found.names);
                    gaps.extend(found.gaps);
                }
                Err(e) => {
                    failures.push(format!("{}: {e}", node.name()));
                    silent.push((i, e));
                }
            }
        }
        if n - silent.len() < majority {
            let list = failures.join("; ");
            return Err(LeaseError::Unreachable(if n == 1 {
                format!("cannot read the locks on Redis: {list}")
            } else {
                format!(
                    "cannot read the locks on a majority of Redis nodes ({} of {n} answered, \
                     {majority} needed): {list}",
                    n - silent.len()
                )
            }));
        }
        failures.extend(gaps);
        let mut incomplete = (whole < majority).then(|| failures.join("; "));
        names.retain(|name: &String| pattern.is_none_or(|p| glob(p, name)));
        let mut locks = Vec::new();
        for (read, name) in names.iter().enumerate() {
            if clock::now() >= end {
                incomplete = Some(format!(
                    "stopped after {}: {} of the {} locks found were not read",
                    humantime::format_duration(BUDGET),
                    names.len() - read,
                    names.len()
                ));
                break;
            }
            self.key.clone_from(name);
            self.keys = Keys::new(prefix, name);
            let status = self.status_but(None, &silent)?;
            // Gone since the scan (released, expired), or shared holders whose leases all ran out.
            let any = status
                .nodes
                .iter()
                .any(|(_, v)| v.as_ref().is_ok_and(|v| !v.holds.is_empty()));
            if any {
                locks.push(Listed {
                    key: name.clone(),
                    status,
                });
            }
        }
        Ok(Listing {
            locks,
            unread: failures,
            incomplete,
        })
    }
}

/// What scanning one node (a whole cluster, for a cluster's seed) found.
#[derive(Default)]
struct Scanned {
    /// The lock names its keys show, unfiltered by the pattern (`MATCH` only narrows them).
    names: Vec<String>,
    /// The parts not scanned to the end, and why: a cluster primary, or the time budget.
    gaps: Vec<String>,
}

/// Scans `node` for keys that match `filter`, every primary of it if it is a cluster's node.
fn scan_node(
    node: &mut Node,
    filter: &str,
    prefix: &str,
    timeout: Duration,
    end: Stamp,
) -> Result<Scanned, NodeError> {
    let deadline = || clock::now() + timeout;
    let info: String = node.query(redis::cmd("INFO").arg("cluster"), deadline())?;
    let mut found = Scanned::default();
    if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
        if !scan_keys(node, filter, prefix, timeout, end, &mut found.names)? {
            found.gaps.push(stopped(node));
        }
        return Ok(found);
    }
    let slots: Value = node.query(redis::cmd("CLUSTER").arg("SLOTS"), deadline())?;
    let seed_host = match node.addr() {
        Some(ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. }) => host.clone(),
        _ => String::new(),
    };
    let primaries = primaries(slots);
    if primaries.is_empty() {
        found
            .gaps
            .push(format!("{}: the cluster names no primary", node.name()));
    }
    for (host, port) in primaries {
        // An empty address means "the one you asked" (cluster-preferred-endpoint-type).
        let host = if host.is_empty() { &seed_host } else { &host };
        let Some(mut primary) = node.at(host, port) else {
            found.gaps.push(format!(
                "cluster primary {host}:{port}: cannot be reached through {}",
                node.name()
            ));
            continue;
        };
        match scan_keys(&mut primary, filter, prefix, timeout, end, &mut found.names) {
            Ok(true) => {}
            Ok(false) => found.gaps.push(stopped(&primary)),
            Err(e) => found.gaps.push(format!("{}: {e}", primary.name())),
        }
    }
    Ok(found)
}

/// Walks `node`'s keyspace with `SCAN`, adding the lock names of the keys that match `filter`
/// to `names`; `false` if the budget ran out before the end.
fn scan_keys(
    node: &mut Node,
    filter: &str,
    prefix: &str,
    timeout: Duration,
    end: Stamp,
    names: &mut Vec<String>,
) -> Result<bool, NodeError> {
    let mut cursor = "0".to_owned();
    loop {
        if clock::now() >= end {
            return Ok(false);
        }
        let scan = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(filter)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .clone();
        let (next, keys): (String, Vec<Vec<u8>>) = node.query(&scan, clock::now() + timeout)?;
        names.extend(
            keys.iter()
                .filter_map(|k| std::str::from_utf8(k).ok())
                .filter_map(|k| lock_name(prefix, k))
                .map(str::to_owned),
        );
        if next == "0" {
            return Ok(true);
        }
        cursor = next;
    }
}

/// The gap a scan that ran out of time leaves.
fn stopped(node: &Node) -> String {
    format!(
        "{}: not scanned to the end within {}",
        node.name(),
        humantime::format_duration(BUDGET)
    )
}

/// The name of the lock whose hold `key` is, under `prefix`: `P{K}`, `P{K}:slot:I` or
/// `P{K}:readers`; `None` for every other key (fence counters, holder records, limits, marks).
fn lock_name<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('{')?;
    let name = if let Some(name) = rest.strip_suffix('}') {
        name
    } else if let Some(name) = rest.strip_suffix("}:readers") {
        name
    } else {
        let (name, slot) = rest.rsplit_once("}:slot:")?;
        (!slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit())).then_some(name)?
    };
    (!name.is_empty()).then_some(name)
}

/// `text` with the glob characters of `SCAN`'s `MATCH` quoted, so that a prefix is matched as is.
fn escape(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

/// The primaries' addresses in a `CLUSTER SLOTS` reply, each once, in slot order. Each entry is
/// `[first slot, last slot, [host, port, id, ...], replicas...]`.
fn primaries(reply: Value) -> Vec<(String, u16)> {
    let mut found: Vec<(String, u16)> = Vec::new();
    let Ok(ranges) = Vec::<Value>::from_redis_value(reply) else {
        return found;
    };
    for range in ranges {
        let Ok(range) = Vec::<Value>::from_redis_value(range) else {
            continue;
        };
        let Some(primary) = range.into_iter().nth(2) else {
            continue;
        };
        let Ok(addr) = Vec::<Value>::from_redis_value(primary) else {
            continue;
        };
        let mut addr = addr.into_iter();
        let (Some(host), Some(port)) = (addr.next(), addr.next()) else {
            continue;
        };
        if let (Ok(host), Ok(port)) = (String::from_redis_value(host), u16::from_redis_value(port))
            && !found.iter().any(|(h, p)| *h == host && *p == port)
        {
            found.push((host, port));
        }
    }
    found
}

/// Whether `text` matches the glob `pattern` as Redis's `MATCH` does: `*`, `?`, `[abc]`,
/// `[^a-z]`, and `\` to quote the next character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is tried at: on a mismatch, that star
    // takes one more character (linear backtracking, never exponential).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if p.get(pi) == Some(&'*') {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some(next) = one(&p, pi, t[ti]) {
            pi = next;
            ti += 1;
        } else if let Some((sp, st)) = star {
            star = Some((sp, st + 1));
            pi = sp + 1;
            ti = st + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the element at `pattern[at]` (a character, `?`, `\x` or a class) matches `c`; the
/// index after it if so.
fn one(pattern: &[char], at: usize, c: char) -> Option<usize> {
    match *pattern.get(at)? {
        '?' => Some(at + 1),
        '\\' if at + 1 < pattern.len() => (pattern[at + 1] == c).then_some(at + 2),
        '[' => {
            let mut next = at + 1;
            let negate = pattern.get(next) == Some(&'^');
            next += usize::from(negate);
            let mut hit = false;
            while next < pattern.len() && pattern[next] != ']' {
                if pattern[next] == '\\' && next + 1 < pattern.len() {
                    hit |= pattern[next + 1] == c;
                    next += 2;
                } else if next + 2 < pattern.len() && pattern[next + 1] == '-' {
                    let (from, to) = (pattern[next], pattern[next + 2]);
                    hit |= (from.min(to)..=from.max(to)).contains(&c);
                    next += 3;
                } else {
                    hit |= pattern[next] == c;
                    next += 1;
                }
            }
            // An unclosed class ends with the pattern, as in Redis.
            (hit != negate).then_some((next + 1).min(pattern.len()))
        }
        other => (other == c).then_some(at + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_come_from_the_keys_that_show_a_hold() {
        let name = |key| lock_name("rlock:", key);
        assert_eq!(name("rlock:{job}"), Some("job"));
        assert_eq!(name("rlock:{nas}:slot:12"), Some("nas"));
        assert_eq!(name("rlock:{data}:readers"), Some("data"));
        for other in [
            "rlock:{job}:fence",
            "rlock:{job}:holder",
            "rlock:{nas}:slot:1:holder",
            "rlock:{nas}:slot:",
            "rlock:{nas}:limit",
            "rlock:{data}:readers:holder",
            "rlock:{data}:intent",
            "rlock:{}",
            "other:{job}",
            "rlock:job",
        ] {
            assert_eq!(name(other), None, "{other}");
        }
        assert_eq!(
            name("rlock:{a}:slot:1}"),
            Some("a}:slot:1"),
            "a name may hold braces"
        );
    }

    #[test]
    fn a_prefix_is_matched_as_is() {
        assert_eq!(escape("rlock:"), "rlock:");
        assert_eq!(escape(r"a*b?[c]\"), r"a\*b\?\[c\]\\");
    }

    #[test]
    fn globs_match_as_redis_matches_them() {
        for (pattern, text) in [
            ("*", "anything"),
            ("*", ""),
            ("nightly-*", "nightly-report"),
            ("n?ghtly", "nightly"),
            ("*-*-*", "a-b-c"),
            ("[abc]x", "bx"),
            ("[^abc]x", "dx"),
            ("[a-c]x", "cx"),
            ("[c-a]x", "bx"),
            (r"a\*", "a*"),
            ("é*", "été"),
        ] {
            assert!(glob(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("nightly-*", "daily-report"),
            ("n?ghtly", "nghtly"),
            ("[abc]x", "dx"),
            ("[^abc]x", "ax"),
            (r"a\*", "ab"),
            ("job", "jobs"),
            ("", "x"),
        ] {
            assert!(!glob(pattern, text), "{pattern} {text}");
        }
        let long = "a".repeat(1000);
        assert!(!glob("*a*a*a*a*a*a*a*a*b", &long), "and in linear time");
    }

    /// A lock on three nodes whose holds are `views` (`None`: the node did not answer), judged
    /// as `status` judges it.
    fn listed(views: &[Option<Vec<(super::super::Place, &str)>>]) -> Listed {
        use super::super::{Hold, NodeView};
        let views: Vec<(String, Result<NodeView, NodeError>)> = views
            .iter()
            .map(|holds| {
                let view = holds.as_ref().map(|holds| NodeView {
                    fence: Some(1),
                    limit: None,
                    exclusive_waiting: false,
                    holds: holds
                        .iter()
                        .map(|&(place, digest)| Hold {
                            place,
                            ttl: Some(Duration::from_secs(1)),
                            digest: digest.to_owned(),
                            mine: false,
                            holder: Vec::new(),
                        })
                        .collect(),
                    waiting: 0,
                    next: Vec::new(),
                });
                ("node".to_owned(), view.ok_or(NodeError::Refused))
            })
            .collect();
        let answered: Vec<&super::super::NodeView> =
            views.iter().filter_map(|(_, v)| v.as_ref().ok()).collect();
        Listed {
            key: "job".to_owned(),
            status: LockStatus {
                occupants: quorum::occupants(views.len(), &answered),
                limit: None,
                exclusive_waiting: false,
                fence: Some(1),
                waiting: 0,
                next: Vec::new(),
                nodes: views,
            },
        }
    }

    #[test]
    fn agreeing_counts_the_nodes_that_hold_what_the_majority_holds() {
        use super::super::Place::{Exclusive, Shared};
        let held = listed(&[
            Some(vec![(Exclusive, "a")]),
            Some(vec![(Exclusive, "a")]),
            Some(vec![]),
        ]);
        assert!(held.held());
        assert_eq!(held.agreeing(), 2);
        let shared = listed(&[
            Some(vec![(Shared, "r1"), (Shared, "r2")]),
            Some(vec![(Shared, "r2"), (Shared, "r1")]),
            None,
        ]);
        assert_eq!((shared.held(), shared.agreeing()), (true, 2));
        let extra = listed(&[
            Some(vec![(Shared, "r1")]),
            Some(vec![(Shared, "r1"), (Shared, "r9")]),
            Some(vec![(Shared, "r1")]),
        ]);
        assert_eq!(
            extra.agreeing(),
            2,
            "a node with a holder of its own disagrees"
        );
        let minority = listed(&[
            Some(vec![(Exclusive, "a")]),
            Some(vec![(Exclusive, "b")]),
            Some(vec![]),
        ]);
        assert!(!minority.held());
        assert_eq!(
            minority.agreeing(),
            1,
            "the most nodes any one holder is on"
        );
    }

    #[test]
    fn the_primaries_are_read_from_cluster_slots_once_each() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |first, last, primary, replica| {
            Value::Array(vec![Value::Int(first), Value::Int(last), primary, replica])
        };
        let reply = Value::Array(vec![
            range(0, 100, node("10.0.0.1", 7001), node("10.0.0.4", 7004)),
            range(101, 200, node("", 7002), node("10.0.0.5", 7005)),
            range(201, 300, node("10.0.0.1", 7001), node("10.0.0.4", 7004)),
        ]);
        assert_eq!(
            primaries(reply),
            [("10.0.0.1".to_owned(), 7001), (String::new(), 7002)]
        );
    }
}
