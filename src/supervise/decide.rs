//! The supervisor's decisions, as a pure state machine: no process, no inbox, no clock.
//!
//! These are the decisions that keep the command from outliving its lease, so they are kept where
//! fake time can test them. [`Machine::look`] decides at a time what the group is sent and when to
//! look again; [`Machine::hear`] applies what arrived in the inbox. The caller
//! ([`supervise`](super::supervise)) reaps, signals, reads the clock and waits, and performs the
//! [`Action`]s these return, in order.
//!
//! The two are timed apart on purpose: an event is heard when the wait returns, the next look comes
//! after reaping, which can stop rlock itself (Ctrl-Z follows the command). A wake-up is due at the
//! earlier time and counted as made at the later, so a stop there shows up as a late [`Wake`].

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Outcome, Status, StopPolicy, Stopped, Wake};
use crate::clock::Stamp;
use crate::events::Event;
use crate::signals::SignalNumber;

/// How often to look whether the group is empty once the leader is gone (a member whose parent is
/// not rlock dies without telling us).
pub const POLL: Duration = Duration::from_millis(10);
/// How long to wait for a group to vanish after `SIGKILL` before giving up on it.
pub const AFTER_KILL: Duration = Duration::from_secs(2);

/// How far stopping the command's group has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The leader runs and nothing was sent to stop it.
    Running,
    /// The stop signal went to the group at `since`; `SIGKILL` follows after the grace, or at the
    /// deadline if that comes first.
    Stopping {
        /// When the stop signal was sent.
        since: Stamp,
    },
    /// `SIGKILL` went to the group at `at`; only the leader's exit is awaited.
    Killed {
        /// When `SIGKILL` was sent.
        at: Stamp,
    },
    /// The leader exited with `status`; what is left of its group was sent the stop signal (at
    /// `since`), and gets `SIGKILL` (sent at `killed`) if it outlives the grace or the deadline.
    Draining {
        /// How the leader ended.
        status: Status,
        /// When the stop signal was sent (or `SIGKILL`, if that came first).
        since: Stamp,
        /// When `SIGKILL` was sent, if it was.
        killed: Option<Stamp>,
    },
}

/// Something for the caller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this signal to the command's group: a forwarded one, the stop signal or `SIGKILL`.
    Signal(SignalNumber),
    /// The leader exited and others of its group are left: say so, and send them the stop signal.
    StopSurvivors,
    /// Tell the guardian the group's new deadline.
    TellGuard(Stamp),
    /// The leader is gone: take the terminal back for rlock's own group.
    ReclaimTerminal,
}

/// What comes after the actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for an event, or until this time.
    Wait(Option<Stamp>),
    /// The whole group is gone: dismiss the guardian and return this.
    Done(Outcome),
    /// Members of the group survived `SIGKILL` for [`AFTER_KILL`]: warn, dismiss the guardian and
    /// return this anyway.
    GiveUp(Outcome),
}

/// Everything the supervisor knows, and its decisions.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The stop signal and the grace before `SIGKILL`.
    policy: StopPolicy,
    /// How far stopping the group has gone.
    phase: Phase,
    /// When the command must be dead (the latest one given).
    deadline: Stamp,
    /// When `--max-time` runs out, if it was given.
    time_limit: Option<Stamp>,
    /// Why the command is (or was) stopped, once that is known. The first reason wins. Kept apart
    /// from the phase: a command that exits by itself past its deadline was stopped by nobody,
    /// yet ran unguarded.
    stopped: Option<Stopped>,
    /// The wake-up last asked of the caller.
    asked: Option<Stamp>,
    /// When the supervisor was due to run again after its last wait: the time it asked for, or an
    /// event's arrival if that came first; for the first look, the start of the supervision. Only
    /// until it decides to stop the command.
    due: Option<Stamp>,
    /// The last wake-up recorded from `due`.
    last_wake: Option<Wake>,
}

impl Machine {
    /// A command just started that must be dead by `deadline`, and is stopped at `time_limit`;
    /// its supervision starts at `now`, when the first look is due.
    ///
    /// That first look is a wake-up like the others: the command may already be stopped then
    /// (Ctrl-Z typed as it started), and rlock stops with it before the look.
    pub fn new(
        policy: StopPolicy,
        deadline: Stamp,
        time_limit: Option<Stamp>,
        now: Stamp,
    ) -> Machine {
        Machine {
            policy,
            phase: Phase::Running,
            deadline,
            time_limit,
            stopped: None,
            asked: None,
            due: Some(now),
            last_wake: None,
        }
    }

    /// The decision at `now`, once the caller has reaped: `leader` is the leader's status if it
    /// has exited, and `group_alive` whether any member of its group is left then.
    pub fn look(
        &mut self,
        now: Stamp,
        leader: Option<Status>,
        group_alive: bool,
    ) -> (Vec<Action>, Next) {
        if let Some(due) = self.due.take() {
            self.last_wake = Some(Wake {
                due,
                woke: now,
                deadline: self.deadline,
            });
        }
        if now >= self.deadline {
            // Whatever ended the command, its lease may have ended first: the guardian's SIGKILL
            // while rlock was stopped, or an exit that came too late.
            self.stopped.get_or_insert(Stopped::Deadline);
        }
        let mut actions = Vec::new();
        if let Some(status) = leader
            && let Some(next) = self.drain(now, status, group_alive, &mut actions)
        {
            return (actions, next);
        }
        let stop = self.policy.signal.into();
        let kill = Signal::SIGKILL.into();
        if self.phase == Phase::Running && self.time_limit.is_some_and(|t| now >= t) {
            self.stopped.get_or_insert(Stopped::TimeLimit);
            actions.push(Action::Signal(stop));
            self.phase = Phase::Stopping { since: now };
        }
        // The deadline: the stop signal a grace before it, SIGKILL at it.
        if now >= self.deadline.minus(self.policy.grace) {
            self.stopped.get_or_insert(Stopped::Deadline);
            if self.phase == Phase::Running {
                actions.push(Action::Signal(stop));
                self.phase = Phase::Stopping { since: now };
            }
        }
        if self.kill_at().is_some_and(|k| now >= k) {
            actions.push(Action::Signal(kill));
            self.phase = match self.phase {
                Phase::Draining { status, since, .. } => Phase::Draining {
                    status,
                    since,
                    killed: Some(now),
                },
                _ => Phase::Killed { at: now },
            };
        }
        let wake = self.wake(now);
        self.asked = wake;
        (actions, Next::Wait(wake))
    }

    /// Applies `event` (or a wake-up without one, if `None`), which arrived at `at`.
    pub fn hear(&mut self, at: Stamp, event: Option<Event>) -> Vec<Action> {
        // Only a wake-up before the decision to stop can explain that decision.
        self.due = self
            .stopped
            .is_none()
            .then(|| self.asked.map_or(at, |asked| asked.min(at)));
        match event {
            Some(Event::Signal(signal)) => vec![Action::Signal(signal)],
            Some(Event::Deadline(d)) => {
                self.deadline = d;
                vec![Action::TellGuard(d)]
            }
            Some(Event::LeaseLost(why)) => {
                self.stopped.get_or_insert(Stopped::LeaseLost(why));
                if self.phase == Phase::Running {
                    self.phase = Phase::Stopping { since: at };
                    vec![Action::Signal(self.policy.signal.into())]
                } else {
                    Vec::new()
                }
            }
            Some(Event::ChildChanged | Event::Released) | None => Vec::new(),
        }
    }

    /// The leader exited with `status`: stops what is left of its group, and ends once nothing is
    /// (or `SIGKILL` did not help).
    fn drain(
        &mut self,
        now: Stamp,
        status: Status,
        group_alive: bool,
        actions: &mut Vec<Action>,
    ) -> Option<Next> {
        if !matches!(self.phase, Phase::Draining { .. }) {
            actions.push(Action::ReclaimTerminal);
        }
        let (since, killed) = match self.phase {
            Phase::Draining { since, killed, .. } => (since, killed),
            Phase::Running if group_alive => {
                actions.push(Action::StopSurvivors);
                (now, None)
            }
            Phase::Running => (now, None),
            Phase::Stopping { since } => (since, None),
            Phase::Killed { at } => (at, Some(at)),
        };
        self.phase = Phase::Draining {
            status,
            since,
            killed,
        };
        let outcome = || Outcome {
            status,
            stopped: self.stopped.clone(),
            last_wake: self.last_wake,
        };
        if !group_alive {
            return Some(Next::Done(outcome()));
        }
        if killed.is_some_and(|k| now.since(k) >= AFTER_KILL) {
            return Some(Next::GiveUp(outcome()));
        }
        None
    }

    /// When `SIGKILL` is due, if it has not been sent.
    fn kill_at(&self) -> Option<Stamp> {
        let since = match self.phase {
            Phase::Stopping { since }
            | Phase::Draining {
                since,
                killed: None,
                ..
            } => since,
            Phase::Running | Phase::Killed { .. } | Phase::Draining { .. } => return None,
        };
        Some(self.deadline.min(since + self.policy.grace))
    }

    /// When to look again after `now`, if nothing happens first.
    fn wake(&self, now: Stamp) -> Option<Stamp> {
        match self.phase {
            Phase::Running => {
                let stop = self.deadline.minus(self.policy.grace);
                Some(self.time_limit.map_or(stop, |t| t.min(stop)))
            }
            Phase::Stopping { .. } => self.kill_at(),
            // Only the leader's exit is awaited, and a child's exit is an event.
            Phase::Killed { .. } => None,
            Phase::Draining { .. } => {
                Some(self.kill_at().map_or(now + POLL, |k| k.min(now + POLL)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(1);

    /// A time `ms` milliseconds after an arbitrary origin.
    fn at(ms: u64) -> Stamp {
        Stamp::from_since_boot(Duration::from_secs(1000) + Duration::from_millis(ms))
    }

    fn term() -> Action {
        Action::Signal(Signal::SIGTERM.into())
    }

    fn kill() -> Action {
        Action::Signal(Signal::SIGKILL.into())
    }

    /// A command that must be dead at 10 s, with `SIGTERM` and a grace of 1 s, and a time limit.
    fn machine(time_limit: Option<u64>) -> Machine {
        let policy = StopPolicy {
            signal: Signal::SIGTERM,
            grace: GRACE,
        };
        Machine::new(policy, at(10_000), time_limit.map(at), at(0))
    }

    fn wait(ms: u64) -> Next {
        Next::Wait(Some(at(ms)))
    }

    #[test]
    fn the_stop_signal_goes_a_grace_before_the_deadline_and_sigkill_at_it() {
        let mut m = machine(None);
        assert_eq!(m.look(at(0), None, false), (vec![], wait(9000)));
        assert_eq!(m.hear(at(9000), None), vec![]);
        assert_eq!(m.look(at(9000), None, false), (vec![term()], wait(10_000)));
        assert_eq!(m.phase, Phase::Stopping { since: at(9000) });
        assert_eq!(m.hear(at(10_000), None), vec![]);
        assert_eq!(
            m.look(at(10_000), None, false),
            (vec![kill()], Next::Wait(None))
        );
        assert_eq!(m.phase, Phase::Killed { at: at(10_000) });
        let killed = Status::Signaled(Signal::SIGKILL.into());
        let (actions, next) = m.look(at(10_005), Some(killed), false);
        assert_eq!(actions, vec![Action::ReclaimTerminal]);
        let Next::Done(outcome) = next else {
            panic!("{next:?}")
        };
        assert_eq!(outcome.status, killed);
        assert_eq!(outcome.stopped, Some(Stopped::Deadline));
    }

    #[test]
    fn a_deadline_already_passed_gets_both_signals_at_once() {
        let mut m = machine(None);
        assert_eq!(
            m.look(at(10_000), None, false),
            (vec![term(), kill()], Next::Wait(None))
        );
        assert_eq!(m.stopped, Some(Stopped::Deadline));
    }

    #[test]
    fn a_later_deadline_before_the_stop_postpones_it() {
        let mut m = machine(None);
        m.look(at(0), None, false);
        assert_eq!(
            m.hear(at(5000), Some(Event::Deadline(at(20_000)))),
            vec![Action::TellGuard(at(20_000))]
        );
        assert_eq!(m.look(at(5000), None, false), (vec![], wait(19_000)));
        m.hear(at(9000), None);
        assert_eq!(m.look(at(9000), None, false), (vec![], wait(19_000)));
        assert_eq!((m.phase, m.stopped), (Phase::Running, None));
    }

    #[test]
    fn a_later_deadline_after_the_stop_does_not_call_it_off() {
        let mut m = machine(None);
        m.look(at(9000), None, false);
        assert_eq!(
            m.hear(at(9500), Some(Event::Deadline(at(20_000)))),
            vec![Action::TellGuard(at(20_000))]
        );
        // SIGKILL still comes a grace after the stop signal.
        assert_eq!(m.look(at(9500), None, false), (vec![], wait(10_000)));
        assert_eq!(
            m.look(at(10_000), None, false),
            (vec![kill()], Next::Wait(None))
        );
        assert_eq!(m.stopped, Some(Stopped::Deadline));
    }

    #[test]
    fn an_earlier_deadline_after_the_stop_brings_sigkill_forward() {
        let mut m = machine(Some(5000));
        assert_eq!(m.look(at(5000), None, false), (vec![term()], wait(6000)));
        m.hear(at(5200), Some(Event::Deadline(at(5500))));
        assert_eq!(m.look(at(5200), None, false), (vec![], wait(5500)));
        assert_eq!(
            m.look(at(5500), None, false),
            (vec![kill()], Next::Wait(None))
        );
    }

    #[test]
    fn max_time_stops_the_command_with_the_grace() {
        let mut m = machine(Some(5000));
        assert_eq!(m.look(at(0), None, false), (vec![], wait(5000)));
        assert_eq!(m.look(at(5000), None, false), (vec![term()], wait(6000)));
        assert_eq!(m.stopped, Some(Stopped::TimeLimit));
        assert_eq!(
            m.look(at(6000), None, false),
            (vec![kill()], Next::Wait(None))
        );
        // The deadline passing later does not change why.
        assert_eq!(m.look(at(10_000), None, false), (vec![], Next::Wait(None)));
        assert_eq!(m.stopped, Some(Stopped::TimeLimit));
    }

    #[test]
    fn max_time_while_draining_survivors_is_not_a_reason() {
        let mut m = machine(Some(1500));
        let (actions, next) = m.look(at(1000), Some(Status::Exited(0)), true);
        assert_eq!(
            actions,
            vec![Action::ReclaimTerminal, Action::StopSurvivors]
        );
        assert_eq!(next, wait(1010));
        assert_eq!(
            m.look(at(1500), Some(Status::Exited(0)), true),
            (vec![], wait(1510))
        );
        assert_eq!(
            m.look(at(2000), Some(Status::Exited(0)), true),
            (vec![kill()], wait(2010))
        );
        let (_, next) = m.look(at(2010), Some(Status::Exited(0)), false);
        let Next::Done(outcome) = next else {
            panic!("{next:?}")
        };
        assert_eq!(outcome.stopped, None);
    }

    #[test]
    fn survivors_of_the_leader_get_the_stop_signal_then_sigkill_after_the_grace() {
        let mut m = machine(None);
        let exited = Some(Status::Exited(3));
        assert_eq!(
            m.look(at(1000), exited, true),
            (
                vec![Action::ReclaimTerminal, Action::StopSurvivors],
                wait(1010)
            )
        );
        assert_eq!(m.look(at(1010), exited, true), (vec![], wait(1020)));
        assert_eq!(m.look(at(2000), exited, true), (vec![kill()], wait(2010)));
        assert_eq!(
            m.phase,
            Phase::Draining {
                status: Status::Exited(3),
                since: at(1000),
                killed: Some(at(2000))
            }
        );
        // Some survive SIGKILL (a process stuck in the kernel): rlock gives up on them.
        assert_eq!(m.look(at(3990), exited, true), (vec![], wait(4000)));
        let (actions, next) = m.look(at(4000), exited, true);
        assert_eq!(actions, vec![]);
        assert!(
            matches!(next, Next::GiveUp(Outcome { stopped: None, .. })),
            "{next:?}"
        );
    }

    #[test]
    fn survivors_near_the_deadline_get_sigkill_at_it() {
        let mut m = machine(None);
        let exited = Some(Status::Exited(0));
        m.look(at(9500), exited, true);
        assert_eq!(m.look(at(9990), exited, true), (vec![], wait(10_000)));
        assert_eq!(
            m.look(at(10_000), exited, true),
            (vec![kill()], wait(10_010))
        );
        assert_eq!(m.stopped, Some(Stopped::Deadline));
    }

    #[test]
    fn a_leader_that_exits_alone_ends_the_supervision() {
        let mut m = machine(None);
        m.look(at(0), None, false);
        m.hear(at(100), Some(Event::ChildChanged));
        let (actions, next) = m.look(at(100), Some(Status::Exited(0)), false);
        assert_eq!(actions, vec![Action::ReclaimTerminal]);
        assert_eq!(
            next,
            Next::Done(Outcome {
                status: Status::Exited(0),
                stopped: None,
                last_wake: Some(Wake {
                    due: at(100),
                    woke: at(100),
                    deadline: at(10_000)
                }),
            })
        );
    }

    #[test]
    fn a_command_that_ends_past_its_deadline_was_stopped_by_it() {
        // rlock slept through the deadline (stopped, or starved) and woke to find the command
        // gone: the guardian's SIGKILL, or an exit that came too late.
        let mut m = machine(None);
        assert_eq!(m.look(at(0), None, false), (vec![], wait(9000)));
        m.hear(at(12_000), Some(Event::ChildChanged));
        let killed = Some(Status::Signaled(Signal::SIGKILL.into()));
        let (actions, next) = m.look(at(12_000), killed, false);
        assert_eq!(actions, vec![Action::ReclaimTerminal]);
        let Next::Done(outcome) = next else {
            panic!("{next:?}")
        };
        assert_eq!(outcome.stopped, Some(Stopped::Deadline));
        let wake = outcome.last_wake.unwrap();
        assert_eq!(wake.due, at(9000));
        assert_eq!(wake.woke, at(12_000));
        assert!(wake.spans_deadline());
    }

    #[test]
    fn a_stop_before_the_first_look_is_a_late_first_wake() {
        // Ctrl-Z typed as the command started: the first reap finds it stopped, and rlock stops
        // with it before its first look, resumed (`fg`) only past the deadline. No wait came
        // before, so the start of the supervision is when that look was due.
        let mut m = machine(None);
        let killed = Some(Status::Signaled(Signal::SIGKILL.into()));
        let (actions, next) = m.look(at(12_000), killed, false);
        assert_eq!(actions, vec![Action::ReclaimTerminal]);
        let Next::Done(outcome) = next else {
            panic!("{next:?}")
        };
        assert_eq!(outcome.stopped, Some(Stopped::Deadline));
        assert_eq!(
            outcome.last_wake,
            Some(Wake {
                due: at(0),
                woke: at(12_000),
                deadline: at(10_000)
            })
        );
        assert!(outcome.last_wake.unwrap().spans_deadline());
    }

    #[test]
    fn the_last_wake_before_the_stop_is_kept() {
        let mut m = machine(None);
        m.look(at(0), None, false);
        // An event earlier than asked: due when it came.
        m.hear(at(3000), Some(Event::Deadline(at(10_000))));
        m.look(at(3001), None, false);
        assert_eq!(
            m.last_wake,
            Some(Wake {
                due: at(3000),
                woke: at(3001),
                deadline: at(10_000)
            })
        );
        // A wake-up 2.5 s late, across the deadline: the stop is decided then.
        m.hear(at(11_000), None);
        assert_eq!(
            m.look(at(11_500), None, false),
            (vec![term(), kill()], Next::Wait(None))
        );
        let late = Wake {
            due: at(9000),
            woke: at(11_500),
            deadline: at(10_000),
        };
        assert_eq!(m.last_wake, Some(late));
        // Later wake-ups, after the decision, cannot explain it and are not recorded.
        m.hear(at(20_000), Some(Event::ChildChanged));
        m.look(at(20_000), None, false);
        assert_eq!(m.last_wake, Some(late));
    }

    #[test]
    fn signals_are_forwarded_in_every_phase_and_a_second_one_too() {
        let int = Action::Signal(Signal::SIGINT.into());
        let signal = || Some(Event::Signal(Signal::SIGINT.into()));
        let mut m = machine(None);
        m.look(at(0), None, false);
        // Running: forwarded, twice; what a second Ctrl-C means is the command's business.
        assert_eq!(m.hear(at(100), signal()), vec![int]);
        assert_eq!(m.look(at(100), None, false), (vec![], wait(9000)));
        assert_eq!(m.hear(at(200), signal()), vec![int]);
        assert_eq!(m.look(at(200), None, false), (vec![], wait(9000)));
        assert_eq!((m.phase, m.stopped.clone()), (Phase::Running, None));
        // Stopping: forwarded, and SIGKILL stays when it was due.
        m.look(at(9000), None, false);
        assert_eq!(m.hear(at(9100), signal()), vec![int]);
        assert_eq!(m.look(at(9100), None, false), (vec![], wait(10_000)));
        // Killed: forwarded all the same (it cannot do harm).
        m.look(at(10_000), None, false);
        assert_eq!(m.hear(at(10_001), signal()), vec![int]);
        assert_eq!(m.phase, Phase::Killed { at: at(10_000) });
        // Draining: forwarded to the survivors.
        let mut m = machine(None);
        m.look(at(0), Some(Status::Exited(0)), true);
        assert_eq!(m.hear(at(5), signal()), vec![int]);
        assert_eq!(
            m.look(at(5), Some(Status::Exited(0)), true),
            (vec![], wait(15))
        );
        assert_eq!(m.stopped, None);
    }

    #[test]
    fn a_stop_request_sends_the_stop_signal_once_and_names_the_reason() {
        let mut m = machine(None);
        m.look(at(0), None, false);
        let stop = |why: &str| Some(Event::LeaseLost(why.to_owned()));
        assert_eq!(m.hear(at(100), stop("the lock is gone")), vec![term()]);
        assert_eq!(m.look(at(100), None, false), (vec![], wait(1100)));
        // A second request adds nothing: neither a signal nor a reason.
        assert_eq!(m.hear(at(200), stop("again")), vec![]);
        assert_eq!(
            m.look(at(1100), None, false),
            (vec![kill()], Next::Wait(None))
        );
        assert_eq!(
            m.stopped,
            Some(Stopped::LeaseLost("the lock is gone".to_owned()))
        );
    }

    #[test]
    fn a_stop_request_while_draining_changes_only_the_reason() {
        let mut m = machine(None);
        let exited = Some(Status::Exited(0));
        m.look(at(0), exited, true);
        assert_eq!(
            m.hear(at(5), Some(Event::LeaseLost("lost".to_owned()))),
            vec![]
        );
        let (actions, next) = m.look(at(5), exited, false);
        assert_eq!(actions, vec![]);
        let Next::Done(outcome) = next else {
            panic!("{next:?}")
        };
        assert_eq!(outcome.stopped, Some(Stopped::LeaseLost("lost".to_owned())));
    }

    #[test]
    fn a_leader_killed_by_rlock_ends_once_its_group_is_gone() {
        let mut m = machine(None);
        m.look(at(10_000), None, false);
        let killed = Some(Status::Signaled(Signal::SIGKILL.into()));
        // A survivor outlives the leader: rlock waits for it, but sends nothing again.
        assert_eq!(
            m.look(at(10_001), killed, true),
            (vec![Action::ReclaimTerminal], wait(10_011))
        );
        assert!(matches!(
            m.look(at(12_000), killed, true).1,
            Next::GiveUp(_)
        ));
    }

    #[test]
    fn max_time_after_a_stop_request_sends_nothing_more() {
        let mut m = machine(Some(500));
        m.look(at(0), None, false);
        assert_eq!(
            m.hear(at(100), Some(Event::LeaseLost("lost".to_owned()))),
            vec![term()]
        );
        assert_eq!(m.look(at(500), None, false), (vec![], wait(1100)));
        assert_eq!(m.stopped, Some(Stopped::LeaseLost("lost".to_owned())));
    }

    #[test]
    fn an_earlier_deadline_while_draining_brings_sigkill_forward() {
        let mut m = machine(None);
        let exited = Some(Status::Exited(0));
        m.look(at(0), exited, true);
        assert_eq!(
            m.hear(at(5), Some(Event::Deadline(at(300)))),
            vec![Action::TellGuard(at(300))]
        );
        assert_eq!(m.look(at(295), exited, true), (vec![], wait(300)));
        assert_eq!(m.look(at(300), exited, true), (vec![kill()], wait(310)));
        assert_eq!(m.stopped, Some(Stopped::Deadline));
    }
}
