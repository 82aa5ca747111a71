//! Runs the command as a process group and stops the whole group when told to.
//!
//! The command is started in a process group of its own, so that one signal reaches everything it
//! started. rlock becomes a child subreaper, so orphaned descendants are reparented to it and reaped
//! here instead of lingering as zombies (which still count as group members). When the command's
//! leader exits, whatever is left of its group is stopped (`--kill-signal`, then `SIGKILL` after
//! the grace) before control returns: the lease must not be released while part of the guarded work
//! still runs. A non-interactive shell starts background jobs with `SIGINT` ignored, so a forwarded
//! Ctrl-C alone can leave them behind. Should rlock itself die (`kill -9`, a fault) or stop, a
//! [`Guard`] process started before the command stops the group in its place.
//!
//! One thread owns the child: only [`supervise`] reaps and signals it, driven by [`Event`]s that
//! arrive on one [`Inbox`] (forwarded signals, child state changes, a deadline by which the command
//! must be dead, stop requests) whose origin this module does not know. It sends the stop signal
//! `--kill-after` before the deadline and `SIGKILL` at it, timed on the boot clock, and it never
//! waits on anything but the inbox, so only rlock itself not running (stopped, suspended, starved)
//! can make it late. For that case the [`Outcome`] tells how late its last wake-up before a stop
//! was, so that the caller can say so rather than blame the lease. The group is signalled only
//! while its leader is unreaped or other members exist, so its id cannot have been reused.
//!
//! What to send when, when to look again and why the command was stopped are decided by
//! [`decide`], a pure state machine unit-tested with fake time; [`supervise`] is the thin loop
//! around it that reaps, reads the clock, waits on the inbox and performs the decisions.
//!
//! In an interactive terminal the command's group is made the terminal's foreground group (as a
//! shell does), so that it can read the terminal and receives Ctrl-C directly; Ctrl-Z stops rlock
//! with it, and `fg` resumes both.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt as _};
use std::time::Duration;

use anyhow::Result;
use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, pthread_sigmask, raise};
use nix::unistd::{Pid, getpgrp, getpid, isatty, setpgid, tcgetpgrp, tcsetpgrp};

use crate::clock::{self, Stamp};
use crate::events::Event;
use crate::exit;
use crate::guard::Guard;
use crate::inbox::Inbox;
use crate::log;
use crate::signals::SignalNumber;

pub mod decide;

use decide::{Action, Machine, Next};

/// How to stop the command.
#[derive(Clone, Copy, Debug)]
pub struct StopPolicy {
    /// The first signal (`--kill-signal`).
    pub signal: Signal,
    /// The grace before `SIGKILL` (`--kill-after`).
    pub grace: Duration,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// It died of this signal (real-time ones included).
    Signaled(SignalNumber),
}

impl Status {
    /// The exit status a shell would report: the code, or 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            // Exit codes are 0..=255 on Unix; the mask only satisfies the type.
            Status::Exited(code) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
            Status::Signaled(signal) => signal.exit_status(),
        }
    }
}

/// Why rlock stopped the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Its deadline came (or was `--kill-after` away) and no later one arrived.
    Deadline,
    /// It ran past its time limit.
    TimeLimit,
    /// The lease was lost ([`Event::LeaseLost`]), for this reason.
    LeaseLost(String),
}

/// What [`supervise`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How the command's leader ended.
    pub status: Status,
    /// Why rlock stopped it, if it did.
    pub stopped: Option<Stopped>,
    /// The supervisor's last wake-up before it decided to stop the command, if it did: a late
    /// one means that rlock itself was not running (stopped, suspended or starved) meanwhile.
    pub last_wake: Option<Wake>,
}

/// One of the supervisor's wake-ups, with the time it was due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// When the supervisor asked to run again (or did, if an event came first).
    pub due: Stamp,
    /// When it ran again.
    pub woke: Stamp,
    /// The command's deadline then.
    pub deadline: Stamp,
}

impl Wake {
    /// How much later than due the supervisor ran.
    pub fn lateness(self) -> Duration {
        self.woke.since(self.due)
    }

    /// Whether the deadline came between the time due and the wake-up.
    pub fn spans_deadline(self) -> bool {
        self.due <= self.deadline && self.deadline <= self.woke
    }
}

/// A running command: the leader of its own process group.
pub struct Child {
    /// The leader's pid, which is also the group's id.
    pid: Pid,
    /// The guardian that stops the group should rlock die; dismissed once the group is gone.
    guard: Option<Guard>,
    /// The leader's status once reaped.
    status: Option<Status>,
    /// Whether the command was given the terminal (interactive use).
    interactive: bool,
}

/// Starts `program` with `args`, extra `env` and without the variables in `unset`, in a new
/// process group, under a [`Guard`] that stops the whole group (`policy`) should rlock die. Exit
/// 127 if the program is not found, 126 if it cannot be executed.
#[allow(unsafe_code)] // the `pre_exec` hook below
pub fn spawn(
    program: &OsString,
    args: &[OsString],
    env: &[(&str, String)],
    unset: &[&str],
    policy: StopPolicy,
) -> Result<Child> {
    prctl::set_child_subreaper(true)
        .map_err(|e| anyhow::anyhow!("becoming a child subreaper: {e}"))?;
    // Started first, so that no moment exists in which the command runs unguarded.
    let mut guard = Guard::start(policy.signal, policy.grace)?;
    let interactive = in_foreground();
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    for name in unset {
        command.env_remove(name);
    }
    let announcer = guard.announcer();
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls (setpgid, getpid, write, sigprocmask, tcsetpgrp); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            // Before any of the command's code runs, and whether or not rlock is still alive:
            // the guardian reads end-of-file only once this copy of its pipe closes at exec.
            announcer.announce_self()?;
            if interactive {
                with_sigttou_blocked(|| tcsetpgrp(io::stdin().as_fd(), getpid()))?;
            }
            Ok(())
        });
    }
    let name = program.to_string_lossy();
    let child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            exit::error(exit::NOT_FOUND, format!("command not found: '{name}'"))
        }
        _ => exit::error(
            exit::NOT_EXECUTABLE,
            format!("cannot execute '{name}': {e}"),
        ),
    })?;
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
    guard.guarding(pid);
    Ok(Child {
        pid,
        guard: Some(guard),
        status: None,
        interactive,
    })
}

impl Child {
    /// The leader's pid (= the group id).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Sends `signal` to the whole group; quietly nothing if the group is gone.
    fn signal(&self, signal: impl Into<SignalNumber>) {
        let signal = signal.into();
        match signal.send_to_group(self.pid) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => log::warning!("could not send {signal} to the command's process group: {e}"),
        }
    }

    /// Tells the guardian the group's new deadline.
    fn tell_guard(&mut self, deadline: Stamp) {
        if let Some(guard) = self.guard.as_mut() {
            guard.deadline(deadline);
        }
    }

    /// The group is gone: the guardian has nothing left to do.
    fn dismiss_guard(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.dismiss();
        }
    }

    /// The guardian died while the group lives (only `SIGKILL` or the OOM killer end it): start
    /// another, or say that the command now depends on rlock alone.
    fn replace_guard(&mut self) {
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        match guard.replace() {
            Ok(()) => log::warning!("rlock's guardian process was killed; started another"),
            Err(e) => {
                self.guard = None;
                log::warning!(
                    "rlock's guardian process was killed and no other could start ({e:#}): \
                     should rlock die too, nothing would stop the command"
                );
            }
        }
    }

    /// Whether any process of the group is left.
    fn group_alive(&self) -> bool {
        !matches!(killpg(self.pid, None), Err(Errno::ESRCH))
    }

    /// Reaps every exited child (the leader and adopted orphans). Returns whether the leader is
    /// stopped (job control).
    fn reap(&mut self) -> bool {
        let mut stopped = false;
        while let Some((pid, status)) = wait_any() {
            if self.guard.as_ref().is_some_and(|g| g.pid() == pid) {
                self.replace_guard();
                continue;
            }
            if pid != self.pid {
                continue; // an adopted orphan, now reaped
            }
            if let Some(code) = status.code() {
                self.status = Some(Status::Exited(code));
            } else if let Some(signal) = status.signal() {
                self.status = Some(Status::Signaled(SignalNumber(signal)));
            } else if status.stopped_signal().is_some() {
                stopped = true;
            }
        }
        stopped
    }

    /// The command's leader stopped (Ctrl-Z): stop rlock too, as a shell job, and resume the
    /// command when rlock is resumed.
    fn follow_job_control(&self) {
        if !self.interactive {
            return; // someone stopped the command on purpose; it is theirs to resume
        }
        self.take_terminal(getpgrp());
        let _ = raise(Signal::SIGTSTP);
        // Resumed. Give the terminal back only if the shell put us in the foreground (`fg`).
        if in_foreground() {
            self.take_terminal(self.pid);
        }
        self.signal(Signal::SIGCONT);
    }

    /// Does what the [`Machine`] decided.
    fn perform(&mut self, actions: &[Action], policy: StopPolicy) {
        for &action in actions {
            match action {
                Action::Signal(signal) => self.signal(signal),
                Action::StopSurvivors => {
                    log::info!("the command exited; stopping what is left of its process group");
                    self.signal(policy.signal);
                }
                Action::TellGuard(deadline) => self.tell_guard(deadline),
                Action::ReclaimTerminal => self.take_terminal(getpgrp()),
            }
        }
    }

    /// Makes `group` the terminal's foreground group, if the command was given the terminal.
    fn take_terminal(&self, group: Pid) {
        if self.interactive {
            let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin().as_fd(), group));
        }
    }
}

/// Supervises `child` until its whole group is gone, reacting to the `inbox`. The command must be
/// dead by `deadline` (until an [`Event::Deadline`] moves it), and is stopped (with the grace) when
/// `time_limit` comes. Returns how it ended.
///
/// The decisions are [`Machine`]'s; this loop only reaps, reads the clock, waits, and performs.
pub fn supervise(
    mut child: Child,
    inbox: &mut Inbox<Event>,
    policy: StopPolicy,
    deadline: Stamp,
    time_limit: Option<Stamp>,
) -> Outcome {
    let mut machine = Machine::new(policy, deadline, time_limit, clock::now());
    child.tell_guard(deadline);
    loop {
        if child.reap() {
            child.follow_job_control();
        }
        let alive = child.status.is_some() && child.group_alive();
        let (actions, next) = machine.look(clock::now(), child.status, alive);
        child.perform(&actions, policy);
        let wake = match next {
            Next::Wait(wake) => wake,
            Next::Done(outcome) => {
                child.dismiss_guard();
                return outcome;
            }
            Next::GiveUp(outcome) => {
                log::warning!(
                    "processes of the command's group survived SIGKILL; releasing the lock anyway"
                );
                child.dismiss_guard();
                return outcome;
            }
        };
        let event = inbox.recv_until(wake);
        let actions = machine.hear(clock::now(), event);
        child.perform(&actions, policy);
    }
}

/// Reaps one child that changed state, without waiting: its pid and raw status, or `None` if no
/// child changed. The status is decoded by the caller, since `nix` cannot decode a death by a
/// real-time signal (and the child would be reaped with its status lost).
#[allow(unsafe_code)] // waitpid with a raw status; see above
fn wait_any() -> Option<(Pid, std::process::ExitStatus)> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes one int through a pointer to a local that outlives the call.
        let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG | libc::WUNTRACED) };
        match pid {
            0 => return None,
            -1 if Errno::last() == Errno::EINTR => {}
            -1 => return None, // ECHILD: no child left
            pid => {
                return Some((
                    Pid::from_raw(pid),
                    std::process::ExitStatus::from_raw(status),
                ));
            }
        }
    }
}

/// Whether standard input is a terminal whose foreground group is rlock's own (interactive use).
fn in_foreground() -> bool {
    let stdin = io::stdin();
    let fd = stdin.as_fd();
    isatty(fd).unwrap_or(false) && tcgetpgrp(fd).is_ok_and(|group| group == getpgrp())
}

/// Runs `f` with `SIGTTOU` blocked in this thread: a process outside the terminal's foreground
/// group may then change it instead of being stopped for trying.
fn with_sigttou_blocked<T>(f: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))?;
    let result = f();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_shell_exit_codes() {
        assert_eq!(Status::Exited(0).code(), 0);
        assert_eq!(Status::Exited(3).code(), 3);
        assert_eq!(Status::Signaled(Signal::SIGINT.into()).code(), 130);
        assert_eq!(Status::Signaled(Signal::SIGKILL.into()).code(), 137);
        assert_eq!(Status::Signaled(Signal::SIGTERM.into()).code(), 143);
        let rt = libc::SIGRTMIN() + 3;
        assert_eq!(
            Status::Signaled(SignalNumber(rt)).code(),
            128 + u8::try_from(rt).unwrap()
        );
    }
}
