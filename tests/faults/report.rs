//! The one table a run prints: what was injected, what the clients did, what the checkers found.
//! Markdown, so that a long run's table can be pasted into the docs as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::checker::Inside;
use crate::checker::{Findings, KillCheck};
use crate::nemesis::{Fault, FaultLog};
use crate::workload::{Acquisition, COHORT, LIMIT, Phase, Resource};

/// What the table is made of.
pub struct Report<'a> {
    pub command: &'a str,
    pub nodes: usize,
    pub clients: usize,
    pub ttl: Duration,
    pub calm: Duration,
    pub elapsed: Duration,
    pub faults: &'a FaultLog,
    pub runs: &'a [Acquisition],
    pub findings: &'a Findings,
    /// Lock keys found after the TTLs had passed, and stray processes.
    pub left_behind: (usize, usize),
    /// The rlock-process faults that ran (`FAULTS_RLOCK`).
    pub rlock_faults: &'a [Fault],
}

impl Report<'_> {
    /// The table, one row per measure.
    pub fn table(&self) -> String {
        let mut rows = self.setup_rows();
        rows.extend(self.fault_rows());
        rows.extend(self.outcome_rows());
        rows.push(self.stop_row());
        rows.extend(self.rlock_rows());
        rows.push((
            "left behind".to_owned(),
            format!(
                "{} lock keys after the TTLs, {} processes",
                self.left_behind.0, self.left_behind.1
            ),
        ));
        let mut out = String::from("| | |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out
    }

    fn setup_rows(&self) -> Vec<(String, String)> {
        vec![
            ("command".to_owned(), format!("`{}`", self.command)),
            (
                "setup".to_owned(),
                format!(
                    "{} redis-server nodes, {} clients per lock (fenced and unfenced), {} with \
                     --limit {LIMIT} (limited) and {} --shared or exclusive (shared), cohorts of \
                     {COHORT} queued runs on all nodes (queue) and on node 0 (queue1), --ttl {}",
                    self.nodes,
                    self.clients,
                    self.clients + 1,
                    self.clients + 1,
                    humantime::format_duration(self.ttl)
                ),
            ),
            (
                "duration".to_owned(),
                format!(
                    "{} (no-fault phase {})",
                    seconds(self.elapsed),
                    seconds(self.calm)
                ),
            ),
        ]
    }

    fn fault_rows(&self) -> Vec<(String, String)> {
        let mut by_kind: BTreeMap<Fault, usize> = BTreeMap::new();
        for (fault, _, _) in &self.faults.injected {
            *by_kind.entry(*fault).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind
            .iter()
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let mut rows = vec![(
            "faults injected".to_owned(),
            format!("{}: {}", self.faults.injected.len(), kinds.join(", ")),
        )];
        if !self.faults.skipped.is_empty() {
            let mut skipped: BTreeMap<(Fault, &str), usize> = BTreeMap::new();
            for (fault, why) in &self.faults.skipped {
                *skipped.entry((*fault, why.as_str())).or_default() += 1;
            }
            let text: Vec<String> = skipped
                .iter()
                .map(|((k, why), n)| format!("{} {n} ({why})", k.name()))
                .collect();
            rows.push(("faults skipped".to_owned(), text.join(", ")));
        }
        rows
    }

    fn outcome_rows(&self) -> Vec<(String, String)> {
        let f = self.findings;
        let count = |p: &dyn Fn(&Acquisition) -> bool| self.runs.iter().filter(|r| p(r)).count();
        let mut rows = vec![
            (
                "rlock runs".to_owned(),
                format!(
                    "{}: granted {}, busy (75) {}, unreachable (69) {}, lease lost (124) {}, \
                     killed by the harness {}",
                    self.runs.len(),
                    count(&|r| r.grant.is_some()),
                    count(&|r| r.code == Some(75)),
                    count(&|r| r.code == Some(69)),
                    count(&|r| r.lease_lost()),
                    count(&|r| r.harness_killed),
                ),
            ),
            (
                "stale accesses rejected (fenced)".to_owned(),
                format!(
                    "{} reads, {} writes ({} of which a check on writes alone would have accepted)",
                    f.stale_reads, f.stale_writes, f.caught_by_read
                ),
            ),
        ];
        for resource in Resource::ALL {
            let text: Vec<String> = [Phase::Calm, Phase::Faults]
                .iter()
                .filter_map(|&phase| {
                    let lost = f.lost.get(&(phase, resource))?;
                    Some(format!(
                        "{phase}: {} of {} acked",
                        lost.lost.len(),
                        lost.acked
                    ))
                })
                .collect();
            rows.push((
                format!("lost updates, {}", resource.name()),
                text.join("; "),
            ));
        }
        rows.push((
            "fence order violations".to_owned(),
            f.fence_violations.len().to_string(),
        ));
        let overlap: Vec<String> = f
            .overlap
            .iter()
            .filter(|((_, r), _)| matches!(r, Resource::Fenced | Resource::Unfenced))
            .map(|((phase, resource), n)| format!("{} {phase} {n}", resource.name()))
            .collect();
        rows.push(("max observed overlap".to_owned(), overlap.join(", ")));
        rows.extend(self.mode_rows());
        rows.extend(self.queue_rows());
        rows
    }

    /// The queued workload's rows, one per lock, phase by phase.
    fn queue_rows(&self) -> Vec<(String, String)> {
        let f = self.findings;
        let mut rows: Vec<(String, String)> = Resource::QUEUES
            .iter()
            .map(|&resource| {
                let text: Vec<String> = [Phase::Calm, Phase::Faults]
                    .iter()
                    .filter_map(|&phase| {
                        let q = f.queues.get(&(phase, resource))?;
                        Some(format!(
                            "{phase}: {} cohorts ({} with a node restarted empty mid-queue), {} runs, {} \
                             seen queued; granted {}, timed out (75) {}, unreachable (69) {}, \
                             gave up (SIGINT) {}, ended at the phase's end {}, stuck {}, \
                             still in the queue after exiting {}; \
                             out-of-order grants {} of {}, longest wait {}; max {} inside at \
                             once within rlock's assumptions ({} counting every run)",
                            q.cohorts,
                            q.crashed_mid_queue,
                            q.runs,
                            q.seen_queued,
                            q.granted,
                            q.timed_out,
                            q.unreachable,
                            q.gave_up,
                            q.ended,
                            q.stuck,
                            q.traces,
                            q.out_of_order,
                            q.judged,
                            ms(q.longest_wait_ms),
                            q.most_within,
                            q.most
                        ))
                    })
                    .collect();
                let nodes = if resource == Resource::Queue1 {
                    "node 0".to_owned()
                } else {
                    format!("{} nodes", self.nodes)
                };
                (format!("queued waiters ({}, {nodes})", resource.name()), text.join("; "))
            })
            .collect();
        rows.push((
            "queue violations".to_owned(),
            format!(
                "{} (two inside at once within rlock's assumptions, a waiter stuck past its \
                 --wait + TTL + 2 s; without faults, a run left in the queue or a grant out of \
                 order on node 0)",
                f.queue_violations.len()
            ),
        ));
        rows
    }

    /// Checker 7's rows: the limited lock and the shared one, phase by phase.
    fn mode_rows(&self) -> Vec<(String, String)> {
        let f = self.findings;
        let phases = |text: &dyn Fn(&Inside) -> String, resource: Resource| {
            [Phase::Calm, Phase::Faults]
                .iter()
                .filter_map(|&phase| {
                    let inside = f.inside.get(&(phase, resource))?;
                    Some(format!("{phase}: {}", text(inside)))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let limited = phases(
            &|i| {
                format!(
                    "{} granted, max {} inside at once within rlock's assumptions ({} counting \
                     runs outside them), two of one slot at once {} ({} outside), stale {}",
                    i.granted,
                    i.most_within,
                    i.most,
                    i.conflicts_within,
                    i.conflicts_outside,
                    i.stale
                )
            },
            Resource::Limited,
        );
        let shared = phases(
            &|i| {
                format!(
                    "{} granted ({} exclusive), max {} shared holders at once, exclusive not \
                     alone {} ({} with a run outside rlock's assumptions), stale {}, gave up \
                     waiting (75) {} ({} exclusive), longest exclusive wait {}",
                    i.granted,
                    i.exclusive,
                    i.most,
                    i.conflicts_within,
                    i.conflicts_outside,
                    i.stale,
                    i.busy,
                    i.busy_exclusive,
                    ms(i.longest_exclusive_wait_ms)
                )
            },
            Resource::Shared,
        );
        vec![
            (format!("never more than {LIMIT} inside (limited)"), limited),
            ("an exclusive holder is alone (shared)".to_owned(), shared),
            (
                "lock-mode violations".to_owned(),
                format!(
                    "{} (within rlock's assumptions: more than {LIMIT} inside, two of one slot, \
                     an exclusive holder not alone; or a wrong RLOCK_MODE, RLOCK_SLOT, \
                     RLOCK_LIMIT)",
                    f.mode_violations.len()
                ),
            ),
        ]
    }

    fn stop_row(&self) -> (String, String) {
        let stops = &self.findings.stops;
        let within: Vec<_> = stops.iter().filter(|s| s.outside.is_none()).collect();
        let margin = minimum(within.iter().filter_map(|s| s.margin_ms));
        let next = minimum(within.iter().filter_map(|s| s.before_next_ms));
        let unproven = within
            .iter()
            .filter(|s| s.margin_ms.is_none_or(|m| m <= 0.0))
            .count();
        let outside: Vec<_> = stops.iter().filter(|s| s.outside.is_some()).collect();
        let outside_late = outside
            .iter()
            .filter(|s| s.before_next_ms.is_some_and(|m| m <= 0.0))
            .count();
        (
            "stop before expiry".to_owned(),
            format!(
                "{} lost leases within rlock's assumptions: min margin to the lease's end {} \
                 ({} not proven by the samples), to the next holder's start {}; {} outside them \
                 (rlock paused or under libfaketime, or a node lost the lock early), {} of which \
                 outlived the next holder's start",
                within.len(),
                ms(margin),
                unproven,
                ms(next),
                outside.len(),
                outside_late
            ),
        )
    }
}

impl Report<'_> {
    /// The kills' and the blocked-stderr runs' rows.
    fn rlock_rows(&self) -> Vec<(String, String)> {
        let off = || "not injected (FAULTS_RLOCK)".to_owned();
        let kill = if self.rlock_faults.contains(&Fault::KillRlock) {
            self.kill_text()
        } else {
            off()
        };
        let b = &self.findings.blocked;
        let blocked = if self.rlock_faults.contains(&Fault::StderrBlocked) {
            format!(
                "{} runs with -v and a full stderr pipe nobody read, {} of them killed by the \
                 nemesis: {} of {} completed normally (as runs exit, within wait + critical \
                 section + 2 × TTL + 2 s); runs with a normal stderr that did not: {}",
                b.runs,
                b.killed,
                b.completed,
                b.runs - b.killed,
                b.control_failures
            )
        } else {
            off()
        };
        vec![
            ("kill -9 rlock".to_owned(), kill),
            ("rlock's stderr blocked".to_owned(), blocked),
        ]
    }

    fn kill_text(&self) -> String {
        let kills = &self.findings.kills;
        let within: Vec<_> = kills.iter().filter(|k| k.outside.is_none()).collect();
        let outside: Vec<_> = kills.iter().filter(|k| k.outside.is_some()).collect();
        let late = |ks: &[&KillCheck]| ks.iter().filter(|k| k.outlived_lease).count();
        format!(
            "{} kills of an rlock whose command ran ({} processes in their groups): max \
             kill→group-dead latency {}; {} within rlock's assumptions: min margin to the \
             lease's end {} ({} not proven by the samples), to the next holder's start {}, {} \
             left a process alive past the lease's end; {} outside them (a node lost the lock \
             early), {} of which left one",
            kills.len(),
            kills.iter().map(|k| k.members).sum::<usize>(),
            ms(kills.iter().filter_map(|k| k.latency_ms).reduce(f64::max)),
            within.len(),
            ms(minimum(within.iter().filter_map(|k| k.margin_ms))),
            within.iter().filter(|k| k.margin_ms.is_none()).count(),
            ms(minimum(within.iter().filter_map(|k| k.before_next_ms))),
            late(&within),
            outside.len(),
            late(&outside),
        )
    }
}

fn minimum(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.reduce(f64::min)
}

fn seconds(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} ms"))
}
