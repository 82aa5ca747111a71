//! The queued workload's checker (issue 18): cohorts of waiters on one lock, judged for safety,
//! liveness and order.
//!
//! 1. **Mutual exclusion** (hard): no two commands of a queue lock inside at once within rlock's
//!    assumptions, by the same spans and assumptions as the lock modes' checker (a node that lost
//!    the lock early counts only if it is one of the lock's nodes: node 0 for `queue1`).
//! 2. **No waiter stuck** (hard): every run that did not give up (interrupted by its driver,
//!    ended by the harness at the phase's end, killed by the nemesis) was granted within its
//!    `--wait` plus a slack of TTL + 2 s (the wait doubled for a slow client clock), or exited
//!    75 (timed out) or 69 (unreachable) within the same bound; a run that gave up exited within
//!    the slack of its `SIGINT`, with a status, not a signal.
//! 3. **Order** (measured; hard only without faults on `queue1`): among the runs of a cohort whose
//!    arrival its driver saw (each spawned only after the previous one was seen queued or holding
//!    the lock, so spawn order is arrival order), a grant is out of order if a run that arrived
//!    earlier was still waiting when the granted command started. Also the longest wait from
//!    arrival in the queue to the command's start, and the cohorts whose queue was live when one
//!    of the lock's nodes was restarted empty.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::checker::{most_at_once, outside};
use crate::clock::{self, Nanos};
use crate::nemesis::NodeEvent;
use crate::workload::{Acquisition, ClientClock, Phase, Resource};

/// What the queued workload did on one lock in one phase.
#[derive(Debug, Default, Clone)]
pub struct QueueCounts {
    pub cohorts: usize,
    /// Cohorts with waiters in the queue when one of the lock's nodes crashed and restarted empty.
    pub crashed_mid_queue: usize,
    pub runs: usize,
    /// Runs seen in the queue on a node, and of all runs those granted, timed out (75),
    /// unreachable (69), interrupted (gave up), ended by the harness at the phase's end.
    pub seen_queued: usize,
    pub granted: usize,
    pub timed_out: usize,
    pub unreachable: usize,
    pub gave_up: usize,
    pub ended: usize,
    /// Runs that broke checker 2.
    pub stuck: usize,
    /// Runs still listed in the queue on a node after their cohort had exited.
    pub traces: usize,
    /// Grants judged for order (their arrival was seen), and of them out of order.
    pub judged: usize,
    pub out_of_order: usize,
    /// The longest wait from arrival in the queue to the command's start.
    pub longest_wait_ms: Option<f64>,
    /// The most commands inside at once: every run, and within rlock's assumptions.
    pub most: usize,
    pub most_within: usize,
    /// The out-of-order grants and the runs left in the queue, one line each, for the details.
    pub notes: Vec<String>,
}

/// Checks the queued workload on `resource` in `phase`; pushes hard failures to `violations`.
pub fn check(
    runs: &[Acquisition],
    phase: Phase,
    resource: Resource,
    events: &[NodeEvent],
    ttl: Duration,
    violations: &mut Vec<String>,
) -> QueueCounts {
    let ours: Vec<&Acquisition> = runs
        .iter()
        .filter(|r| r.phase == phase && r.resource == resource && r.cohort.is_some())
        .collect();
    let name = resource.name();
    let mut q = QueueCounts {
        runs: ours.len(),
        seen_queued: ours.iter().filter(|r| place(r).queued).count(),
        granted: ours.iter().filter(|r| r.grant.is_some()).count(),
        timed_out: ours.iter().filter(|r| r.code == Some(75)).count(),
        unreachable: ours.iter().filter(|r| r.code == Some(69)).count(),
        gave_up: ours
            .iter()
            .filter(|r| place(r).interrupted.is_some())
            .count(),
        ended: ours.iter().filter(|r| r.terminated.is_some()).count(),
        traces: ours.iter().filter(|r| place(r).trace).count(),
        ..QueueCounts::default()
    };

    // 1. Mutual exclusion.
    let granted = || ours.iter().copied().filter(|r| r.grant.is_some());
    q.most = most_at_once(granted()).0;
    let (most, ids) = most_at_once(granted().filter(|r| outside(r, events).is_none()));
    q.most_within = most;
    if most > 1 {
        violations.push(format!(
            "{name} ({phase}): {most} commands inside at once within rlock's assumptions: runs \
             {ids:?}"
        ));
    }

    // 2. No waiter stuck, and none left in the queue: without faults every node could be told.
    let slack = ttl + Duration::from_secs(2);
    for r in ours.iter().filter(|r| place(r).trace) {
        let line = format!(
            "{name} ({phase}): run {} (cohort {}, exit {:?}) was still in the queue after its \
             cohort had exited",
            r.id,
            place(r).number,
            r.code
        );
        if phase == Phase::Calm {
            violations.push(line.clone());
        }
        q.notes.push(line);
    }
    for r in &ours {
        if let Some(why) = stuck(r, slack) {
            q.stuck += 1;
            violations.push(format!("{name} ({phase}): run {} {why}", r.id));
        }
    }

    // 3. Order, cohort by cohort.
    let mut cohorts: BTreeMap<u64, Vec<&Acquisition>> = BTreeMap::new();
    for r in &ours {
        cohorts.entry(place(r).number).or_default().push(r);
    }
    q.cohorts = cohorts.len();
    for members in cohorts.values() {
        let seen: Vec<&Acquisition> = members
            .iter()
            .copied()
            .filter(|r| place(r).arrival.is_some())
            .collect();
        for j in &seen {
            let (Some(g), None) = (&j.grant, place(j).interrupted) else {
                continue;
            };
            q.judged += 1;
            let passed: Vec<u64> = seen
                .iter()
                .filter(|i| place(i).place < place(j).place && waiting_at(i, g.start))
                .map(|i| i.id)
                .collect();
            if !passed.is_empty() {
                q.out_of_order += 1;
                let line = format!(
                    "{name} ({phase}): run {} (place {} of cohort {}) was granted while runs \
                     {passed:?}, seen queued before it, still waited",
                    j.id,
                    place(j).place,
                    place(j).number
                );
                if phase == Phase::Calm && resource == Resource::Queue1 {
                    violations.push(line.clone());
                }
                q.notes.push(line);
            }
            if place(j).queued {
                let arrival = place(j).arrival.expect("seen");
                let wait = clock::ms_between(g.start, arrival);
                q.longest_wait_ms = Some(q.longest_wait_ms.map_or(wait, |w| w.max(wait)));
            }
        }
        if crashed_mid_queue(members, events) {
            q.crashed_mid_queue += 1;
        }
    }
    q
}

fn place(r: &Acquisition) -> crate::workload::Cohort {
    r.cohort.expect("a run of the queued workload")
}

/// Whether run `i`, whose arrival was seen, was still waiting at `t`: not yet granted, not yet
/// timed out or unreachable, not yet interrupted by its driver or by the harness at the phase's
/// end (which signals every waiter of a cohort at once: who leaves the queue first is a race).
fn waiting_at(i: &Acquisition, t: Nanos) -> bool {
    let arrived = place(i).arrival.is_some_and(|a| a < t);
    let gone = place(i)
        .interrupted
        .or(i.terminated)
        .is_some_and(|x| x <= t);
    let until = match &i.grant {
        Some(g) => g.start,
        // Granted, but its lease was lost before its command recorded a start: when is unknown.
        None if i.code == Some(124) => return false,
        None => i.exited,
    };
    arrived && !gone && until > t
}

/// Why run `r` broke checker 2, if it did.
fn stuck(r: &Acquisition, slack: Duration) -> Option<String> {
    let stretch = if r.clock == ClientClock::Slow { 2 } else { 1 };
    let bound = r.spawned + clock::nanos(r.wait * stretch + slack);
    if let Some(x) = place(r).interrupted {
        return if r.code.is_none() && r.killed.is_none() {
            Some("died of a signal after its SIGINT".to_owned())
        } else if r.exited > x + clock::nanos(slack) {
            Some(format!(
                "exited {:.0} ms after its SIGINT",
                clock::ms_between(r.exited, x)
            ))
        } else {
            None
        };
    }
    if r.terminated.is_some() || r.killed.is_some() {
        return None;
    }
    if r.harness_killed {
        return Some("hung until the harness killed it".to_owned());
    }
    match (&r.grant, r.code) {
        (Some(g), _) if g.start > bound => Some(format!(
            "was granted {:.0} ms after its spawn, past its --wait {:?} + {slack:?}",
            clock::ms_between(g.start, r.spawned),
            r.wait * stretch
        )),
        (None, Some(69 | 75)) if r.exited > bound => Some(format!(
            "gave up {:.0} ms after its spawn, past its --wait {:?} + {slack:?}",
            clock::ms_between(r.exited, r.spawned),
            r.wait * stretch
        )),
        (Some(_), _) | (None, Some(69 | 75 | 124)) => None,
        (None, code) => Some(format!(
            "was never granted and exited {code:?}, neither timed out (75) nor unreachable (69)"
        )),
    }
}

/// Whether one of the cohort's lock's nodes restarted empty while a waiter was in its queue:
/// from the first arrival seen in the queue to the last queued run's grant or exit.
fn crashed_mid_queue(members: &[&Acquisition], events: &[NodeEvent]) -> bool {
    let queued: Vec<&&Acquisition> = members.iter().filter(|r| place(r).queued).collect();
    let Some(from) = queued.iter().filter_map(|r| place(r).arrival).min() else {
        return false;
    };
    let until = queued
        .iter()
        .map(|r| r.grant.as_ref().map_or(r.exited, |g| g.start))
        .max()
        .unwrap_or(from);
    events.iter().any(|e| match *e {
        NodeEvent::Crash { node, at } => {
            members[0].resource.on_node(node) && (from..=until).contains(&at)
        }
        NodeEvent::ClockJump { .. } => false,
    })
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::tests::inside;
    use crate::workload::{Acquisition, Cohort, Mode, Phase, Resource};

    const MS: u64 = 1_000_000;

    /// Run `id` at `place` of cohort 0 of `queue1`, seen queued at `arrival` ms, inside from
    /// `from` to `to` ms.
    fn waiter(id: u64, place: usize, arrival: u64, from: u64, to: u64) -> Acquisition {
        let mut r = inside(id, Resource::Queue1, Mode::Exclusive, "0", from, to);
        r.phase = Phase::Calm;
        r.spawned = arrival * MS - MS;
        r.cohort = Some(Cohort {
            number: 0,
            place,
            arrival: Some(arrival * MS),
            queued: place > 0,
            interrupted: None,
            trace: false,
        });
        r
    }

    fn judge(runs: &[Acquisition]) -> (super::QueueCounts, Vec<String>) {
        let mut violations = Vec::new();
        let q = check(
            runs,
            Phase::Calm,
            Resource::Queue1,
            &[],
            std::time::Duration::from_secs(2),
            &mut violations,
        );
        (q, violations)
    }

    #[test]
    fn waiters_granted_in_arrival_order_pass_and_one_that_jumps_the_queue_is_counted() {
        let in_order = [
            waiter(1, 0, 10, 20, 500),
            waiter(2, 1, 40, 510, 600),
            waiter(3, 2, 70, 610, 700),
        ];
        let (q, v) = judge(&in_order);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((q.judged, q.out_of_order, q.most_within), (3, 0, 1));
        assert_eq!(q.longest_wait_ms, Some(540.0));

        let jumped = [
            waiter(1, 0, 10, 20, 500),
            waiter(2, 1, 40, 610, 700),
            waiter(3, 2, 70, 510, 600),
        ];
        let (q, v) = judge(&jumped);
        assert_eq!(q.out_of_order, 1);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn a_waiter_that_gave_up_is_not_passed_over_and_a_hung_one_is_stuck() {
        let mut runs = [
            waiter(1, 0, 10, 20, 500),
            waiter(2, 1, 40, 510, 600),
            waiter(3, 2, 70, 610, 700),
        ];
        runs[1].grant = None;
        runs[1].code = Some(130);
        runs[1].exited = 300 * MS;
        runs[1].cohort.as_mut().expect("a cohort").interrupted = Some(250 * MS);
        let (q, v) = judge(&runs);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((q.gave_up, q.out_of_order), (1, 0));

        runs[1].cohort.as_mut().expect("a cohort").interrupted = None;
        runs[1].harness_killed = true;
        let (q, v) = judge(&runs);
        assert_eq!(q.stuck, 1, "{v:?}");
    }
}
