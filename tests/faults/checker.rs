//! The checkers: what must hold after a run, computed from the clients' records, the monitor's
//! samples and the nemesis's log.
//!
//! 1. Lost updates: every acknowledged add must be in the final set. Fenced: 0, always. Unfenced:
//!    0 without faults; under faults it is the measure of what fencing is for.
//! 2. Fence order: no two grants of a lock share a fence; a grant whose critical section started
//!    before another run was even spawned has the lower fence; and the fenced resource's accepted
//!    writes carry strictly rising fences in the order they happened.
//! 3. Stop before expiry: when rlock stops its command for a lost lease, the command was dead
//!    before the lease ended on the servers. The lease ends when fewer than a majority of nodes
//!    hold its token; per node, the monitor's samples give a lower bound for that (cut short by a
//!    crash or a forward clock jump on the node), so their majority-th latest is a lower bound for
//!    the lease's end. The command's death is bounded from above by the first time its client saw
//!    it gone. The difference is the margin. It is a promise only within rlock's assumptions: the
//!    rlock process was not paused and its clock was honest (paused or lied-to rlocks cannot act
//!    in time; the README says so), and no node lost the lock early during the run (Redlock
//!    tolerates that only when enough other nodes still hold it, which this bound cannot see).
//!    Within them, the hard check is the one a later holder would feel: the command was dead
//!    before the next holder's critical section began.
//! 4. Overlap: the most critical sections of one lock observed alive at once.
//! 5. No descendant of a dead rlock runs after its lease's end: for every rlock the nemesis
//!    killed with `SIGKILL`, the first moment its command's process group was seen empty (an
//!    upper bound of the last member's death) must come before the lease's end on the servers
//!    (the same lower bound as in 3: the lease is not released by anyone, it expires). Within
//!    the same assumptions as 3 (the nemesis kills only unpaused rlocks with honest clocks; a node
//!    that lost the lock early puts a kill outside them).
//! 6. Blocked stderr costs nothing: every rlock run with `-v` and a full stderr pipe that was not
//!    killed exits as runs do (the command's status, or one of rlock's outcomes, never a signal)
//!    and within the time its wait, its critical section and its lease allow.
//! 7. Never more than N inside (`--limit`): at no moment were more than [`LIMIT`] commands of the
//!    limited lock alive, nor two of one slot; and "an exclusive holder is alone" (`--shared`): no
//!    exclusive command of the shared lock was alive at the same moment as any other of its
//!    commands. A command is inside from the start its critical section recorded to the last time
//!    it was seen alive (its last step, or its client's last 5 ms poll that found its pid): both
//!    are moments it certainly lived, so two such spans that cross prove two commands inside at
//!    once, never more. A run counts only within rlock's assumptions (as in 3: not paused, an
//!    honest clock, no node lost the lock early from its spawn to its command's end); the others
//!    are counted apart. Alongside: the command saw the `RLOCK_MODE`, `RLOCK_SLOT` (below the
//!    limit) and `RLOCK_LIMIT` the contract gives it.
//!
//! Fences in the lock modes: conflicting holders (two exclusive ones, an exclusive and a shared
//! one, two of one slot) never share a fence; the real-time order of grants holds across the
//! whole key, every mode and slot; and each fenced resource (per slot for `--limit`) accepts
//! writes with strictly rising fences.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::clock::{self, Nanos};
use crate::monitor::Samples;
use crate::nemesis::{Kill, NodeEvent};
use crate::workload::{Acquisition, ClientClock, Grant, LIMIT, Mode, Phase, Resource};

/// Lost updates of one resource in one phase.
#[derive(Debug, Default, Clone)]
pub struct Lost {
    pub acked: usize,
    pub lost: Vec<u64>,
}

/// One lease lost and its command stopped by rlock.
#[derive(Debug, Clone)]
pub struct Stop {
    pub id: u64,
    /// Lower bound of the lease's end minus upper bound of the command's death, in ms.
    pub margin_ms: Option<f64>,
    /// The next holder's start minus the command's death, in ms (`None`: no next holder).
    pub before_next_ms: Option<f64>,
    /// Why rlock's promise did not apply, if it did not.
    pub outside: Option<&'static str>,
}

/// One rlock killed by the nemesis, measured.
#[derive(Debug, Clone)]
pub struct KillCheck {
    pub id: u64,
    /// The group's processes at the kill.
    pub members: usize,
    /// From `SIGKILL` to the group seen empty, in ms (`None`: still alive when the watch ended).
    pub latency_ms: Option<f64>,
    /// Lower bound of the lease's end minus upper bound of the group's death, in ms (`None`: the
    /// monitor never saw the lease on a majority).
    pub margin_ms: Option<f64>,
    /// A member may have been alive at the lease's end: the margin is not positive, or the group
    /// never died.
    pub outlived_lease: bool,
    /// The next holder's start minus the group's death, in ms.
    pub before_next_ms: Option<f64>,
    /// Why rlock's promise did not apply, if it did not.
    pub outside: Option<&'static str>,
}

/// The runs whose rlock had a blocked stderr.
#[derive(Debug, Default, Clone)]
pub struct Blocked {
    pub runs: usize,
    /// Of them, killed by the nemesis (not expected to complete).
    pub killed: usize,
    /// Of the others, those that exited normally and in time.
    pub completed: usize,
    /// What went wrong with the others, one line each.
    pub failures: Vec<String>,
    /// Runs with a normal stderr that the same rules would fail: the control group.
    pub control_failures: usize,
    /// What went wrong with those, one line each (for the details under the table).
    pub control: Vec<String>,
}

/// Holders inside one lock of a lock mode at once, in one phase (checker 7).
#[derive(Debug, Default, Clone)]
pub struct Inside {
    /// Commands granted; for the shared lock, the exclusive ones among them.
    pub granted: usize,
    pub exclusive: usize,
    /// Runs that gave up waiting (75), and of them exclusive ones.
    pub busy: usize,
    pub busy_exclusive: usize,
    /// The longest an exclusive run of the shared lock waited for its grant, in ms.
    pub longest_exclusive_wait_ms: Option<f64>,
    /// The most commands alive at once: all of them, and those within rlock's assumptions. For
    /// the shared lock, the most shared holders alone.
    pub most: usize,
    pub most_within: usize,
    /// Pairs that must not overlap (one slot; an exclusive holder and another) and did:
    /// within rlock's assumptions, and with a run outside them.
    pub conflicts_within: usize,
    pub conflicts_outside: usize,
    /// Runs whose command was refused as stale by the resource.
    pub stale: usize,
}

/// Everything the checkers found.
#[derive(Debug, Default)]
pub struct Findings {
    pub lost: BTreeMap<(Phase, Resource), Lost>,
    pub fence_violations: Vec<String>,
    pub overlap: BTreeMap<(Phase, Resource), usize>,
    pub stale_reads: usize,
    pub stale_writes: usize,
    /// Stale writes that a check on the write alone would have accepted: no higher fence had
    /// been *written* yet, only read (see `resource.py`).
    pub caught_by_read: usize,
    pub stops: Vec<Stop>,
    pub kills: Vec<KillCheck>,
    pub blocked: Blocked,
    /// Checker 7, per lock mode workload and phase.
    pub inside: BTreeMap<(Phase, Resource), Inside>,
    /// Checker 7's violations, one line each: more than N inside, two holders of one slot, an
    /// exclusive holder not alone (all within rlock's assumptions), or a wrong `RLOCK_*`.
    pub mode_violations: Vec<String>,
    /// The queued workload, per lock and phase (see `queue.rs`).
    pub queues: BTreeMap<(Phase, Resource), crate::queue::QueueCounts>,
    /// Its violations, one line each.
    pub queue_violations: Vec<String>,
}

impl Findings {
    /// Stops within rlock's assumptions where the command outlived the start of the next holder.
    pub fn late_stops(&self) -> Vec<&Stop> {
        self.stops
            .iter()
            .filter(|s| s.outside.is_none() && s.before_next_ms.is_some_and(|m| m <= 0.0))
            .collect()
    }

    /// Kills within rlock's assumptions after which a process of the command's group may have
    /// been alive at the lease's end.
    pub fn late_kills(&self) -> Vec<&KillCheck> {
        self.kills
            .iter()
            .filter(|k| k.outside.is_none() && k.outlived_lease)
            .collect()
    }
}

/// What the checkers read besides the runs.
pub struct Inputs<'a> {
    pub final_sets: &'a HashMap<(Phase, Resource), Vec<u64>>,
    pub samples: &'a Samples,
    pub node_events: &'a [NodeEvent],
    pub kills: &'a [Kill],
    /// The clients' `--ttl` and `--wait`.
    pub ttl: Duration,
    pub wait: Duration,
}

/// Runs every checker.
pub fn check(runs: &[Acquisition], inputs: &Inputs<'_>) -> Findings {
    let Inputs {
        final_sets,
        samples,
        node_events,
        ..
    } = *inputs;
    let mut findings = Findings::default();
    for (&(phase, resource), set) in final_sets {
        let in_set: HashSet<u64> = set.iter().copied().collect();
        let acked: Vec<&Acquisition> = runs
            .iter()
            .filter(|r| r.phase == phase && r.resource == resource && r.acked())
            .collect();
        let lost = acked
            .iter()
            .filter(|r| !in_set.contains(&r.element))
            .map(|r| r.element)
            .collect();
        findings.lost.insert(
            (phase, resource),
            Lost {
                acked: acked.len(),
                lost,
            },
        );
        findings
            .overlap
            .insert((phase, resource), max_overlap(runs, phase, resource));
    }
    for resource in Resource::ALL {
        check_fences(runs, resource, &mut findings.fence_violations);
    }
    let fenced = runs.iter().filter(|r| r.resource == Resource::Fenced);
    findings.stale_reads = fenced
        .clone()
        .filter(|r| r.read.is_some_and(|s| !s.accepted))
        .count();
    findings.stale_writes = fenced
        .filter(|r| r.write.is_some_and(|s| !s.accepted))
        .count();
    findings.caught_by_read = caught_by_read(runs);
    findings.stops = runs
        .iter()
        // A lease can be lost before the command recorded its start (python takes some 30 ms
        // to get there): nothing ran inside, so there is nothing to measure.
        .filter(|r| r.lease_lost() && r.grant.is_some())
        .map(|r| stop(r, runs, samples, node_events))
        .collect();
    findings.kills = inputs
        .kills
        .iter()
        .filter_map(|k| check_kill(k, runs, samples, node_events, inputs.ttl))
        .collect();
    findings.blocked = check_blocked(runs, inputs.ttl, inputs.wait);
    for phase in [Phase::Calm, Phase::Faults] {
        for resource in [Resource::Limited, Resource::Shared] {
            let inside = check_inside(runs, phase, resource, node_events, &mut findings);
            findings.inside.insert((phase, resource), inside);
        }
    }
    findings.mode_violations.extend(check_env(runs));
    for phase in [Phase::Calm, Phase::Faults] {
        for resource in Resource::QUEUES {
            let queued = crate::queue::check(
                runs,
                phase,
                resource,
                node_events,
                inputs.ttl,
                &mut findings.queue_violations,
            );
            findings.queues.insert((phase, resource), queued);
        }
    }
    findings
}

/// Whether runs `a` and `b` of one lock must never be inside at once: two holders of an
/// exclusive lock, two of one slot of a limited lock, an exclusive holder and any other.
fn conflicts(a: &Acquisition, b: &Acquisition) -> bool {
    let slot = |r: &Acquisition| r.grant.as_ref().and_then(Grant::slot);
    a.resource == b.resource
        && match a.resource {
            Resource::Fenced | Resource::Unfenced | Resource::Queue | Resource::Queue1 => true,
            Resource::Limited => slot(a).is_some() && slot(a) == slot(b),
            Resource::Shared => a.mode == Mode::Exclusive || b.mode == Mode::Exclusive,
        }
}

/// Why run `r` is outside rlock's assumptions (see checker 3), if it is: paused, under
/// libfaketime, or a node lost the lock early from its spawn until its command was last alive.
pub fn outside(r: &Acquisition, events: &[NodeEvent]) -> Option<&'static str> {
    if r.paused {
        Some("rlock was paused")
    } else if r.clock != ClientClock::Honest {
        Some("rlock ran under libfaketime")
    } else if lost_early(r, r.spawned, r.alive_until().max(r.dead_by()), events) {
        Some("a node lost the lock early")
    } else {
        None
    }
}

/// The span a granted run's command was certainly inside: from its recorded start to the last
/// moment it was known alive.
pub fn span(r: &Acquisition) -> Option<(Nanos, Nanos)> {
    let start = r.grant.as_ref()?.start;
    Some((start, r.alive_until().max(start)))
}

/// The most spans alive at one moment, and the runs alive at the first such moment.
pub fn most_at_once<'a>(runs: impl Iterator<Item = &'a Acquisition>) -> (usize, Vec<u64>) {
    let mut edges: Vec<(Nanos, i32, u64)> = Vec::new();
    // A command never seen alive after its start has an empty span: it proves nothing (and its
    // end would sort before its start).
    for (start, end, id) in runs
        .filter_map(|r| Some((span(r)?, r.id)))
        .map(|((s, e), id)| (s, e, id))
    {
        if start < end {
            edges.push((start, 1, id));
            edges.push((end, -1, id));
        }
    }
    // Ends before starts at the same instant: touching spans do not overlap.
    edges.sort_unstable();
    let (mut alive, mut most, mut at_most) = (Vec::new(), 0, Vec::new());
    for (_, delta, id) in edges {
        if delta > 0 {
            alive.push(id);
        } else {
            alive.retain(|&a| a != id);
        }
        if alive.len() > most {
            most = alive.len();
            at_most.clone_from(&alive);
        }
    }
    (most, at_most)
}

/// Checker 7 for one lock mode workload in one phase.
fn check_inside(
    runs: &[Acquisition],
    phase: Phase,
    resource: Resource,
    events: &[NodeEvent],
    findings: &mut Findings,
) -> Inside {
    let ours: Vec<&Acquisition> = runs
        .iter()
        .filter(|r| r.phase == phase && r.resource == resource)
        .collect();
    let granted: Vec<&Acquisition> = ours.iter().copied().filter(|r| r.grant.is_some()).collect();
    let within: Vec<&Acquisition> = granted
        .iter()
        .copied()
        .filter(|r| outside(r, events).is_none())
        .collect();
    let exclusive = |r: &&&Acquisition| r.mode == Mode::Exclusive;
    let mut inside = Inside {
        granted: granted.len(),
        exclusive: granted.iter().filter(exclusive).count(),
        busy: ours.iter().filter(|r| r.code == Some(75)).count(),
        busy_exclusive: ours
            .iter()
            .filter(|r| r.code == Some(75) && r.mode == Mode::Exclusive)
            .count(),
        longest_exclusive_wait_ms: granted
            .iter()
            .filter(|r| resource == Resource::Shared && exclusive(r))
            .filter_map(|r| Some(clock::ms_between(r.grant.as_ref()?.start, r.spawned)))
            .reduce(f64::max),
        stale: ours
            .iter()
            .filter(|r| r.read.is_some_and(|s| !s.accepted) || r.write.is_some_and(|s| !s.accepted))
            .count(),
        ..Inside::default()
    };
    let violations = &mut findings.mode_violations;
    if resource == Resource::Limited {
        inside.most = most_at_once(granted.iter().copied()).0;
        let (most, ids) = most_at_once(within.iter().copied());
        inside.most_within = most;
        if most > LIMIT {
            violations.push(format!(
                "limited ({phase}): {most} commands inside at once, more than --limit {LIMIT}, \
                 within rlock's assumptions: runs {ids:?}"
            ));
        }
    } else {
        let shared = granted.iter().copied().filter(|r| r.mode == Mode::Shared);
        inside.most = most_at_once(shared).0;
        let shared = within.iter().copied().filter(|r| r.mode == Mode::Shared);
        inside.most_within = most_at_once(shared).0;
    }
    // Pairs that must not overlap: two holders of one slot, an exclusive holder and another.
    for (i, a) in granted.iter().enumerate() {
        for b in &granted[i + 1..] {
            let (Some((a0, a1)), Some((b0, b1))) = (span(a), span(b)) else {
                continue;
            };
            if !(conflicts(a, b) && a0 < b1 && b0 < a1) {
                continue;
            }
            match (outside(a, events), outside(b, events)) {
                (None, None) => {
                    inside.conflicts_within += 1;
                    violations.push(format!(
                        "{} ({phase}): runs {} ({}) and {} ({}) were inside at once for {:.0} \
                         ms, within rlock's assumptions",
                        resource.name(),
                        a.id,
                        holder(a),
                        b.id,
                        holder(b),
                        clock::ms_between(a1.min(b1), a0.max(b0))
                    ));
                }
                _ => inside.conflicts_outside += 1,
            }
        }
    }
    inside
}

/// How a run held its lock, for a violation's line.
fn holder(r: &Acquisition) -> String {
    let g = r.grant.as_ref().expect("granted");
    match r.mode {
        Mode::Limit => format!("slot {}, fence {}", g.env_slot, g.fence),
        mode => format!("{}, fence {}", mode.env(), g.fence),
    }
}

/// The `RLOCK_*` variables each granted command saw, against the contract: `RLOCK_MODE` always,
/// `RLOCK_SLOT` below the limit and `RLOCK_LIMIT` with `--limit` (or slot 0 of 1 for an exclusive
/// holder), neither for a shared one.
fn check_env(runs: &[Acquisition]) -> Vec<String> {
    let mut wrong = Vec::new();
    for r in runs {
        let Some(g) = &r.grant else { continue };
        let slot_ok = match r.mode {
            Mode::Limit => g.slot().is_some_and(|s| s < LIMIT) && g.env_limit == LIMIT.to_string(),
            // The contract sets them with --limit only; rlock also gives an exclusive holder
            // slot 0 of 1 (its --help says so), which no resource can misread.
            Mode::Exclusive => matches!(
                (g.env_slot.as_str(), g.env_limit.as_str()),
                ("-", "-") | ("0", "1")
            ),
            Mode::Shared => g.env_slot == "-" && g.env_limit == "-",
        };
        if g.env_mode != r.mode.env() || !slot_ok {
            wrong.push(format!(
                "{}: run {} asked for {} and its command saw RLOCK_MODE={} RLOCK_SLOT={} \
                 RLOCK_LIMIT={} (\"-\": unset)",
                r.resource.name(),
                r.id,
                r.mode.env(),
                g.env_mode,
                g.env_slot,
                g.env_limit
            ));
        }
    }
    wrong
}

/// Measures one killed rlock: how fast its group died, and whether before the lease's end.
fn check_kill(
    kill: &Kill,
    runs: &[Acquisition],
    samples: &Samples,
    events: &[NodeEvent],
    ttl: Duration,
) -> Option<KillCheck> {
    let r = runs.iter().find(|r| r.id == kill.id)?;
    let grant = r.grant.as_ref()?;
    // Never died: the last time it was seen alive is all there is.
    let dead_by = kill.dead_by.unwrap_or(kill.last_alive);
    let end = lease_end(r, &grant.token, samples, events);
    let margin_ms = end.map(|end| clock::ms_between(end, dead_by));
    Some(KillCheck {
        id: kill.id,
        members: kill.members,
        latency_ms: kill.dead_by.map(|d| clock::ms_between(d, kill.at)),
        margin_ms,
        outlived_lease: kill.dead_by.is_none() || margin_ms.is_some_and(|m| m <= 0.0),
        before_next_ms: next_start(r, runs).map(|s| clock::ms_between(s, dead_by)),
        // From a TTL before the command's start (the grant's round may take that long), not
        // from the spawn: a crash while the run still waited cannot touch its lease. Up to the
        // group's death or the lease's end without early losses, whichever came first: a crash
        // after the lease had run out cannot excuse a process that outlived it.
        outside: lost_early(
            r,
            grant.start.saturating_sub(clock::nanos(ttl)),
            lease_end(r, &grant.token, samples, &[]).map_or(dead_by, |e| e.min(dead_by)),
            events,
        )
        .then_some("a node lost the lock early"),
    })
}

/// Checks that the runs with a blocked stderr ended as runs do, and in time.
fn check_blocked(runs: &[Acquisition], ttl: Duration, wait: Duration) -> Blocked {
    let mut blocked = Blocked::default();
    for r in runs {
        let problem = r
            .killed
            .is_none()
            .then(|| abnormal_end(r, ttl, wait))
            .flatten();
        if !r.stderr_blocked {
            if let Some(why) = &problem {
                blocked.control_failures += 1;
                blocked
                    .control
                    .push(format!("run {} ({}): {why}", r.id, r.resource.name()));
            }
            continue;
        }
        blocked.runs += 1;
        if r.killed.is_some() {
            blocked.killed += 1;
            continue;
        }
        match problem {
            None => blocked.completed += 1,
            Some(why) => blocked.failures.push(format!("run {}: {why}", r.id)),
        }
    }
    blocked
}

/// Why run `r` did not end as an rlock run should, if it did not: rlock killed by a signal or by
/// the harness, an exit status that is neither the command's (0 or 3) nor one of rlock's outcomes
/// (69, 75, 124, 143 for the harness's `SIGTERM` to a waiter at the phase's end, and 130 for a
/// queued waiter's `SIGINT`), or later
/// than its wait, its critical section and twice the TTL allow, with 2 s for a loaded machine
/// (doubled for a slow client clock, which stretches rlock's waits; plus the longest pause).
fn abnormal_end(r: &Acquisition, ttl: Duration, wait: Duration) -> Option<String> {
    if r.harness_killed {
        return Some("killed by the harness after hanging".to_owned());
    }
    let Some(code) = r.code else {
        return Some("rlock died of a signal".to_owned());
    };
    // 130: a queued waiter its driver interrupted (SIGINT) to give up.
    let interrupted = r.cohort.is_some_and(|c| c.interrupted.is_some()) && code == 130;
    if ![0, 3, 69, 75, 124, 143].contains(&code) && !interrupted {
        return Some(format!("exit status {code}"));
    }
    let stretch = if r.clock == ClientClock::Slow { 2 } else { 1 };
    let mut allowed = (wait + ttl * 2) * stretch + r.sleep + Duration::from_secs(2);
    if r.paused {
        allowed += ttl * 2;
    }
    let took = Duration::from_nanos(r.exited - r.spawned);
    (took > allowed).then(|| format!("took {took:.1?}, more than {allowed:.1?}"))
}

/// Checks fence uniqueness, grant order and accepted-write order for one lock.
fn check_fences(runs: &[Acquisition], resource: Resource, violations: &mut Vec<String>) {
    let granted: Vec<&Acquisition> = runs
        .iter()
        .filter(|r| r.resource == resource && r.grant.is_some())
        .collect();
    let fence = |r: &Acquisition| r.grant.as_ref().expect("granted").fence;
    let start = |r: &Acquisition| r.grant.as_ref().expect("granted").start;

    // Holders at once of two slots, or two shared holders, may share a fence (the contract).
    let mut by_fence: HashMap<u64, Vec<&Acquisition>> = HashMap::new();
    for r in &granted {
        let same = by_fence.entry(fence(r)).or_default();
        if let Some(other) = same.iter().find(|o| conflicts(o, r)) {
            violations.push(format!(
                "{}: runs {} and {} were both granted fence {}",
                resource.name(),
                other.id,
                r.id,
                fence(r)
            ));
        }
        same.push(r);
    }

    // Real-time order of grants: if A's critical section started before B was spawned, A's grant
    // came first, and its fence must be lower.
    let mut by_start = granted.clone();
    by_start.sort_by_key(|r| start(r));
    let mut by_spawn = granted.clone();
    by_spawn.sort_by_key(|r| r.spawned);
    let (mut next, mut highest) = (0, None::<&Acquisition>);
    for b in by_spawn {
        while next < by_start.len() && start(by_start[next]) < b.spawned {
            let a = by_start[next];
            if highest.is_none_or(|h| fence(a) > fence(h)) {
                highest = Some(a);
            }
            next += 1;
        }
        if let Some(a) = highest.filter(|a| fence(a) >= fence(b)) {
            violations.push(format!(
                "{}: run {} (fence {}) started its command before run {} was spawned, \
                 yet run {} got fence {}",
                resource.name(),
                a.id,
                fence(a),
                b.id,
                b.id,
                fence(b)
            ));
        }
    }

    // A fenced resource's accepted writes (each slot's, for a limited lock), in the order they
    // happened (under its flock).
    if resource != Resource::Unfenced {
        // Per slot for a limited lock only: rlock gives exclusive holders RLOCK_SLOT=0 too.
        let slot = |r: &Acquisition| {
            (r.resource == Resource::Limited)
                .then(|| r.grant.as_ref().and_then(Grant::slot))
                .flatten()
        };
        let mut resources: Vec<(Phase, Option<usize>)> = granted
            .iter()
            .map(|r| (r.phase, slot(r)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        resources.sort_unstable();
        for (phase, at) in resources {
            let mut writes: Vec<&Acquisition> = granted
                .iter()
                .copied()
                .filter(|r| r.phase == phase && slot(r) == at && r.acked())
                .collect();
            writes.sort_by_key(|r| r.write.expect("acked").at);
            let name = match at {
                Some(i) => format!("{} slot {i}", resource.name()),
                None => resource.name().to_owned(),
            };
            for pair in writes.windows(2) {
                if fence(pair[0]) >= fence(pair[1]) {
                    violations.push(format!(
                        "{name} ({phase}): accepted write of run {} (fence {}) came after run {} \
                         (fence {})",
                        pair[1].id,
                        fence(pair[1]),
                        pair[0].id,
                        fence(pair[0])
                    ));
                }
            }
        }
    }
}

/// Counts the fenced resource's refused writes whose fence was higher than every fence written
/// before them: a resource that checked only writes would have accepted them, and lost the adds
/// of the holders that had read in between.
fn caught_by_read(runs: &[Acquisition]) -> usize {
    let fence = |r: &Acquisition| r.grant.as_ref().map_or(0, |g| g.fence);
    [Phase::Calm, Phase::Faults]
        .into_iter()
        .map(|phase| {
            let fenced: Vec<&Acquisition> = runs
                .iter()
                .filter(|r| r.resource == Resource::Fenced && r.phase == phase)
                .collect();
            fenced
                .iter()
                .filter_map(|r| Some((r, r.write.filter(|w| !w.accepted)?)))
                .filter(|(r, refused)| {
                    let written = fenced
                        .iter()
                        .filter(|o| o.write.is_some_and(|w| w.accepted && w.at < refused.at))
                        .map(|o| fence(o))
                        .max()
                        .unwrap_or(0);
                    written < fence(r)
                })
                .count()
        })
        .sum()
}

/// The most critical sections of one lock in one phase that were alive at the same moment.
fn max_overlap(runs: &[Acquisition], phase: Phase, resource: Resource) -> usize {
    most_at_once(
        runs.iter()
            .filter(|r| r.phase == phase && r.resource == resource),
    )
    .0
}

/// Measures one lost-lease stop.
fn stop(r: &Acquisition, runs: &[Acquisition], samples: &Samples, events: &[NodeEvent]) -> Stop {
    let grant = r.grant.as_ref().expect("a lost lease was granted");
    let dead_by = r.dead_by();
    let early = lost_early(r, r.spawned, dead_by, events);
    let outside = if r.paused {
        Some("rlock was paused")
    } else if r.clock != ClientClock::Honest {
        Some("rlock ran under libfaketime")
    } else if early {
        Some("a node lost the lock early")
    } else {
        None
    };
    Stop {
        id: r.id,
        margin_ms: lease_end(r, &grant.token, samples, events)
            .map(|end| clock::ms_between(end, dead_by)),
        before_next_ms: next_start(r, runs).map(|s| clock::ms_between(s, dead_by)),
        outside,
    }
}

/// Whether a node of `r`'s lock lost the lock early (crashed, or its clock jumped forward)
/// between `from` and `until`.
pub fn lost_early(r: &Acquisition, from: Nanos, until: Nanos, events: &[NodeEvent]) -> bool {
    events.iter().any(|e| {
        let (node, at, ends_early) = match *e {
            NodeEvent::Crash { node, at } => (node, at, true),
            NodeEvent::ClockJump { node, at, by_ms } => (node, at, by_ms > 0),
        };
        ends_early && r.resource.on_node(node) && (from..=until).contains(&at)
    })
}

/// When the critical section of the next grant of `r`'s lock (a higher fence) that may not
/// overlap `r` started: of its slot for a limited lock, exclusive if `r` was shared.
fn next_start(r: &Acquisition, runs: &[Acquisition]) -> Option<Nanos> {
    let fence = r.grant.as_ref()?.fence;
    runs.iter()
        .filter(|o| conflicts(r, o))
        .filter_map(|o| o.grant.as_ref())
        .filter(|g| g.fence > fence)
        .map(|g| g.start)
        .min()
}

/// A lower bound for when fewer than a majority of the nodes of `r`'s lock held `token`, or
/// `None` if the monitor never saw it on a majority.
fn lease_end(
    r: &Acquisition,
    token: &str,
    samples: &Samples,
    events: &[NodeEvent],
) -> Option<Nanos> {
    let nodes = (0..samples.len())
        .filter(|&n| r.resource.on_node(n))
        .count();
    let majority = nodes / 2 + 1;
    let mut ends: Vec<Nanos> = samples
        .iter()
        .enumerate()
        .filter(|(node, _)| r.resource.on_node(*node))
        .filter_map(|(node, seen)| {
            let sample = seen.get(token)?;
            let mut end = sample.expiry();
            for e in events {
                match *e {
                    NodeEvent::Crash { node: n, at } if n == node && at > sample.sent => {
                        end = end.min(at);
                    }
                    NodeEvent::ClockJump { node: n, at, by_ms }
                        if n == node && by_ms > 0 && at > sample.sent =>
                    {
                        let jumped = end.saturating_sub(by_ms.unsigned_abs() * 1_000_000);
                        end = end.min(jumped.max(at));
                    }
                    _ => {}
                }
            }
            Some(end)
        })
        .collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    ends.get(majority - 1).copied()
}

#[cfg(test)]
pub mod tests {
    use std::time::Duration;

    use super::{Findings, check_inside};
    use crate::nemesis::NodeEvent;
    use crate::workload::{Acquisition, ClientClock, Grant, Mode, Phase, Resource};

    const MS: u64 = 1_000_000;

    /// A granted run whose command was inside from `from` to `to` ms.
    pub fn inside(
        id: u64,
        resource: Resource,
        mode: Mode,
        slot: &str,
        from: u64,
        to: u64,
    ) -> Acquisition {
        Acquisition {
            id,
            resource,
            mode,
            phase: Phase::Faults,
            element: id,
            spawned: from * MS - MS,
            exited: to * MS + MS,
            code: Some(0),
            harness_killed: false,
            stderr: String::new(),
            grant: Some(Grant {
                fence: id,
                token: format!("t{id}"),
                pid: 1,
                start: from * MS,
                env_mode: mode.env().to_owned(),
                env_slot: slot.to_owned(),
                env_limit: if mode == Mode::Limit { "2" } else { "-" }.to_owned(),
            }),
            read: None,
            write: None,
            last_step: None,
            last_alive: to * MS,
            death: Some(to * MS + MS),
            clock: ClientClock::Honest,
            paused: false,
            sleep: Duration::ZERO,
            stderr_blocked: false,
            killed: None,
            wait: Duration::from_secs(10),
            terminated: None,
            cohort: None,
        }
    }

    fn check(runs: &[Acquisition], resource: Resource, events: &[NodeEvent]) -> Findings {
        let mut findings = Findings::default();
        let inside = check_inside(runs, Phase::Faults, resource, events, &mut findings);
        findings.inside.insert((Phase::Faults, resource), inside);
        findings
    }

    #[test]
    fn three_limited_commands_inside_at_once_break_a_limit_of_two_but_touching_ones_do_not() {
        let limited =
            |id, slot, from, to| inside(id, Resource::Limited, Mode::Limit, slot, from, to);
        let touching = [
            limited(1, "0", 100, 200),
            limited(2, "1", 150, 300),
            limited(3, "0", 200, 300),
        ];
        let f = check(&touching, Resource::Limited, &[]);
        assert!(f.mode_violations.is_empty(), "{:?}", f.mode_violations);
        assert_eq!(f.inside[&(Phase::Faults, Resource::Limited)].most_within, 2);

        let crossing = [
            limited(1, "0", 100, 201),
            limited(2, "1", 150, 300),
            limited(3, "0", 200, 300),
        ];
        let f = check(&crossing, Resource::Limited, &[]);
        // Three inside, and slot 0 twice.
        assert_eq!(f.mode_violations.len(), 2, "{:?}", f.mode_violations);
    }

    #[test]
    fn an_overlap_with_a_paused_rlock_or_across_a_crash_is_counted_apart() {
        let limited =
            |id, slot, from, to| inside(id, Resource::Limited, Mode::Limit, slot, from, to);
        let mut runs = [
            limited(1, "0", 100, 400),
            limited(2, "1", 150, 300),
            limited(3, "0", 200, 300),
        ];
        runs[0].paused = true;
        let f = check(&runs, Resource::Limited, &[]);
        assert!(f.mode_violations.is_empty(), "{:?}", f.mode_violations);
        let counts = &f.inside[&(Phase::Faults, Resource::Limited)];
        assert_eq!(
            (counts.most, counts.most_within, counts.conflicts_outside),
            (3, 2, 1)
        );

        runs[0].paused = false;
        let crash = [NodeEvent::Crash {
            node: 0,
            at: 120 * MS,
        }];
        let f = check(&runs, Resource::Limited, &crash);
        assert!(f.mode_violations.is_empty(), "{:?}", f.mode_violations);
    }

    #[test]
    fn shared_holders_may_overlap_but_an_exclusive_one_must_be_alone() {
        let shared = |id, mode, from, to| inside(id, Resource::Shared, mode, "-", from, to);
        let readers = [
            shared(1, Mode::Shared, 100, 300),
            shared(2, Mode::Shared, 150, 250),
            shared(3, Mode::Exclusive, 300, 400),
        ];
        let f = check(&readers, Resource::Shared, &[]);
        assert!(f.mode_violations.is_empty(), "{:?}", f.mode_violations);
        assert_eq!(f.inside[&(Phase::Faults, Resource::Shared)].most, 2);

        let late_writer = [
            shared(1, Mode::Shared, 100, 300),
            shared(3, Mode::Exclusive, 299, 400),
        ];
        let f = check(&late_writer, Resource::Shared, &[]);
        assert_eq!(f.mode_violations.len(), 1, "{:?}", f.mode_violations);
    }
}
