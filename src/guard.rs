//! The guardian: a small process of its own that stops the command's whole process group when
//! rlock dies, by any means, and at the lease's deadline if rlock cannot.
//!
//! rlock stops the command before its lease can expire, but only while rlock runs. `kill -9`, a
//! fault, or a stop (`SIGSTOP`) ends or freezes that care, and `PR_SET_PDEATHSIG` reaches only the
//! direct child: a shell's background jobs and pipelines, or a child that traps the signal, would
//! go on writing during the next holder's critical section. So before the command starts, rlock
//! re-executes itself as `rlock __guard` in a process group of its own (signals for rlock's
//! group do not reach it) and keeps the write end of a pipe whose read end is the guardian's
//! stdin. Over it rlock names the group to guard and each new deadline; the kernel closes it when
//! rlock dies, and the guardian reads end-of-file:
//!
//! - rlock gone: the group gets `--kill-signal` at once, `SIGKILL` after the grace or at the
//!   deadline, whichever comes first, and the guardian exits when no live member is left.
//! - rlock alive but silent past the deadline (stopped, or starved): `SIGKILL` at the deadline,
//!   as rlock itself would send it. No earlier signal, so a healthy rlock's stop signal is never
//!   doubled.
//! - rlock says the group is gone (`x`): the guardian exits.
//!
//! The guardian is the only one to signal the group for a dead rlock. A parent-death signal
//! (`PR_SET_PDEATHSIG`) as well would give the leader its stop signal twice: a shell's trap would
//! run twice and have its own commands killed half-way by the second signal, and a program that
//! takes a second Ctrl-C as "quit now" would skip its cleanup. So the command names its group to
//! the guardian itself, before it execs (through its inherited copy of the pipe, closed by the
//! exec), and no moment exists in which a dying rlock leaves a command unknown to the guardian.
//! Should the guardian itself be killed (only `SIGKILL` or the OOM killer can), rlock starts
//! another and tells it the group and the deadline.
//!
//! What escapes: a process that leaves the group (`setsid`, or a daemon that double-forks into a
//! new session). cgroups would catch those; they need a delegated hierarchy that cron and plain
//! shells do not have.
//!
//! The decisions are [`step`], a pure function of what the guardian knows and the time; the
//! process, the pipe and the clock stay in [`serve_if_asked`].

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::unistd::Pid;

use crate::clock::{self, Stamp};
use crate::signals;

/// The first argument that makes `rlock` a guardian.
const ARG: &str = "__guard";

/// rlock's side: the pipe to its guardian.
pub struct Guard {
    pipe: io::PipeWriter,
    /// The guardian's pid, to know it when rlock reaps it.
    pid: Pid,
    /// What it sends to the group, and the grace before `SIGKILL`: for a replacement.
    signal: Signal,
    grace: Duration,
    /// The group it guards, once named.
    group: Option<Pid>,
    /// The latest deadline message, sent or not: for a replacement.
    deadline: Option<String>,
    /// The latest deadline, if the pipe had no room for it: sent before the next message.
    unsent: Option<String>,
}

/// What the command's process needs, between fork and exec, to name itself to the guardian.
#[derive(Clone, Copy, Debug)]
pub struct Announcer {
    /// The child's copy of the pipe's write end (close-on-exec).
    fd: RawFd,
}

impl Announcer {
    /// Tells the guardian that the calling process leads the group to guard. Async-signal-safe
    /// (no allocation, one `write`), for a `pre_exec` hook; an error means the guardian was not
    /// told, and the command must not start.
    #[allow(unsafe_code)] // borrowing the raw fd that the forked child inherited
    pub fn announce_self(self) -> io::Result<()> {
        let mut line = [0u8; 24];
        let n = group_line(nix::unistd::getpid().as_raw(), &mut line);
        // SAFETY: the fd is the child's copy of the guardian pipe, open until exec closes it.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        match nix::unistd::write(fd, &line[..n]) {
            Ok(written) if written == n => Ok(()),
            Ok(_) => Err(io::Error::other("the guardian's pipe took part of a line")),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes `g PID\n` into `buf` without allocating; returns its length.
fn group_line(pid: i32, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 12];
    let mut rest = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf[0] = b'g';
    buf[1] = b' ';
    for i in 0..len {
        buf[2 + i] = digits[len - 1 - i];
    }
    buf[2 + len] = b'\n';
    3 + len
}

impl Guard {
    /// Starts a guardian that will stop a group with `signal`, then `SIGKILL` after `grace`.
    pub fn start(signal: Signal, grace: Duration) -> Result<Guard> {
        let (reader, writer) = io::pipe().context("creating the guardian's pipe")?;
        // A guardian that stops reading must not block the supervisor: a lost deadline message
        // only makes the guardian's backstop earlier, never later.
        fcntl(writer.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .context("setting up the guardian's pipe")?;
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        // /proc/self/exe still runs this rlock if its file was replaced or deleted meanwhile.
        let proc_exe = std::path::Path::new("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe.to_owned()
        } else {
            std::env::current_exe().context("finding rlock's own executable")?
        };
        let guardian = std::process::Command::new(exe)
            .arg0("rlock")
            .args([ARG, &(signal as i32).to_string(), &grace_ms.to_string()])
            .stdin(Stdio::from(reader))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .env_clear()
            .spawn()
            .context("starting the guardian process")?;
        // Not waited for: rlock reaps every child it has (see supervise), the guardian included.
        let pid = Pid::from_raw(i32::try_from(guardian.id()).expect("pids fit in i32"));
        Ok(Guard {
            pipe: writer,
            pid,
            signal,
            grace,
            group: None,
            deadline: None,
            unsent: None,
        })
    }

    /// The guardian's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// What the command, once forked, uses to name its group ([`Announcer::announce_self`]).
    pub fn announcer(&self) -> Announcer {
        Announcer {
            fd: self.pipe.as_raw_fd(),
        }
    }

    /// Records the group that the command named to the guardian, for a replacement.
    pub fn guarding(&mut self, group: Pid) {
        self.group = Some(group);
    }

    /// The group must be dead by `deadline`.
    pub fn deadline(&mut self, deadline: Stamp) {
        let message = format!("d {}\n", deadline.since_boot().as_nanos());
        self.deadline = Some(message.clone());
        // Only the latest deadline matters: one that finds no room replaces any older one left.
        self.unsent = None;
        if !self.say(&message) {
            self.unsent = Some(message);
        }
    }

    /// The guardian died (rlock reaped it): starts another that guards the same group with the
    /// latest deadline.
    pub fn replace(&mut self) -> Result<()> {
        let mut next = Guard::start(self.signal, self.grace)?;
        if let Some(group) = self.group {
            next.group = Some(group);
            next.say(&format!("g {}\n", group.as_raw()));
        }
        if let Some(deadline) = self.deadline.take() {
            next.deadline = Some(deadline.clone());
            if !next.say(&deadline) {
                next.unsent = Some(deadline);
            }
        }
        *self = next;
        Ok(())
    }

    /// The group is gone: the guardian may exit.
    pub fn dismiss(mut self) {
        self.say("x\n");
    }

    /// Writes `message` without waiting; false if the pipe had no room. A full pipe means the
    /// guardian is not reading (stopped or starved): it acts on an older deadline then, which can
    /// only make it kill earlier, never later.
    fn say(&mut self, message: &str) -> bool {
        if let Some(unsent) = self.unsent.take()
            && !self.say(&unsent)
        {
            self.unsent = Some(unsent);
        }
        // Lines are far shorter than PIPE_BUF, so each lands whole or not at all.
        self.pipe.write(message.as_bytes()).is_ok()
    }
}

/// What the guardian knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// The group to guard, once rlock has named it.
    pub group: Option<i32>,
    /// The latest deadline rlock gave.
    pub deadline: Option<Stamp>,
    /// When the guardian found rlock gone.
    pub orphaned: Option<Stamp>,
    /// Whether the stop signal was sent.
    pub stopped: bool,
    /// Whether `SIGKILL` was sent.
    pub killed: bool,
}

/// What the guardian does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the stop signal to the group.
    Stop,
    /// Send `SIGKILL` to the group.
    Kill,
    /// Nothing now; look again at this time (or when rlock writes, if `None`).
    Wait(Option<Stamp>),
    /// The work is done: exit.
    Exit,
}

/// The guardian's decision at `now`, given what it knows and the grace between the stop signal
/// and `SIGKILL`. The caller applies `Stop` and `Kill` by setting `stopped`/`killed` and asks again.
pub fn step(w: &Watch, now: Stamp, grace: Duration) -> Action {
    let Some(_) = w.group else {
        // rlock died before naming a group: nothing was started to outlive it.
        return if w.orphaned.is_some() {
            Action::Exit
        } else {
            Action::Wait(None)
        };
    };
    let Some(orphaned) = w.orphaned else {
        // rlock lives: only its deadline, as a backstop for a stopped or starved rlock.
        return match w.deadline {
            Some(d) if now >= d && !w.killed => Action::Kill,
            Some(d) if !w.killed => Action::Wait(Some(d)),
            _ => Action::Wait(None),
        };
    };
    if w.killed {
        return Action::Exit;
    }
    let kill_at = match w.deadline {
        Some(d) => d.min(orphaned + grace),
        None => orphaned + grace,
    };
    if now >= kill_at {
        Action::Kill
    } else if !w.stopped {
        Action::Stop
    } else {
        Action::Wait(Some(kill_at))
    }
}

/// Runs the guardian if this process was started as one; returns its exit status then.
pub fn serve_if_asked() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(ARG.as_ref()) {
        return None;
    }
    let rest: Vec<OsString> = args.collect();
    let parsed = match rest.as_slice() {
        [signal, grace] => signal
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(|n| Signal::try_from(n).ok())
            .zip(grace.to_str().and_then(|g| g.parse::<u64>().ok())),
        _ => None,
    };
    let Some((signal, grace_ms)) = parsed else {
        return Some(ExitCode::from(crate::exit::USAGE));
    };
    serve(signal, Duration::from_millis(grace_ms));
    Some(ExitCode::SUCCESS)
}

/// The guardian's loop: read rlock's messages, act on [`step`]'s decisions.
fn serve(signal: Signal, grace: Duration) {
    ignore_signals();
    let Ok(timer) = TimerFd::new(ClockId::CLOCK_BOOTTIME, TimerFlags::TFD_CLOEXEC) else {
        return;
    };
    let mut stdin = io::stdin().lock();
    let mut w = Watch::default();
    let mut pending = Vec::new();
    loop {
        let now = clock::now();
        let wake = match step(&w, now, grace) {
            Action::Exit => return,
            Action::Stop => {
                w.stopped = true;
                send(w.group, signal);
                continue;
            }
            Action::Kill => {
                w.killed = true;
                send(w.group, Signal::SIGKILL);
                continue;
            }
            Action::Wait(wake) => wake,
        };
        if w.orphaned.is_some() && w.group.is_some_and(|g| !group_alive(g)) {
            return;
        }
        // Orphaned, the guardian also looks every few milliseconds whether the group is gone.
        let wake = match (wake, w.orphaned) {
            (Some(t), Some(_)) => Some(t.min(now + Duration::from_millis(10))),
            (t, _) => t,
        };
        if w.orphaned.is_some() {
            wait(None, &timer, wake);
            continue;
        }
        if wait(Some(&stdin), &timer, wake) {
            // A pipe's worth at once: after a stall, the newest deadline is read before any
            // decision is taken on an older one.
            let mut buf = vec![0u8; 1 << 16];
            match stdin.read(&mut buf) {
                Ok(0) => w.orphaned = Some(clock::now()),
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        if !apply(&mut w, &line) {
                            return; // dismissed
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => w.orphaned = Some(clock::now()),
            }
        }
    }
}

/// Applies one of rlock's messages; false when rlock dismissed the guardian.
fn apply(w: &mut Watch, line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|n| n.parse::<u128>().ok()),
    ) {
        (Some("g"), Some(pid)) => w.group = i32::try_from(pid).ok().filter(|&p| p > 1),
        (Some("d"), Some(nanos)) => {
            let since_boot = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            w.deadline = Some(Stamp::from_since_boot(since_boot));
        }
        (Some("x"), _) => return false,
        _ => {}
    }
    true
}

/// Waits until `input` is readable (true) or `wake` comes (false).
fn wait(input: Option<&io::StdinLock<'_>>, timer: &TimerFd, wake: Option<Stamp>) -> bool {
    let armed = wake.is_some_and(|t| {
        let at = Expiration::OneShot(TimeSpec::from_duration(t.since_boot()));
        timer.set(at, TimerSetTimeFlags::TFD_TIMER_ABSTIME).is_ok()
    });
    let timeout = wake.map_or(PollTimeout::NONE, |t| {
        let ms = t.remaining().as_millis().saturating_add(1);
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
    });
    let mut fds = Vec::with_capacity(2);
    if let Some(input) = input {
        fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
    }
    if armed {
        fds.push(PollFd::new(timer.as_fd(), PollFlags::POLLIN));
    }
    let ready = poll(&mut fds, timeout).is_ok_and(|n| n > 0)
        && input.is_some()
        && fds[0].revents().is_some_and(|r| !r.is_empty());
    if armed {
        let _ = timer.unset();
    }
    ready
}

/// Sends `signal` to `group`, if one was named.
fn send(group: Option<i32>, signal: Signal) {
    if let Some(group) = group {
        // A group already gone (ESRCH) is the good outcome; there is no one to tell of others.
        let _ = killpg(Pid::from_raw(group), signal);
    }
}

/// Whether any process of `group` is alive (zombies do not count: they run nothing).
fn group_alive(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killpg(Pid::from_raw(group), None).is_ok();
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(group) && state != "Z" && state != "X"
    })
}

/// The guardian must outlive everything that may end rlock and its command: terminal hang-ups,
/// Ctrl-C, a `kill` of rlock's group. A handler that does nothing keeps each from ending it: every
/// signal rlock itself catches ([`signals::terminating`], the one list), and those that would
/// stop the guardian or end it on a write. (`SIGKILL` and faults still end it: then rlock's own
/// supervision is all that is left.)
fn ignore_signals() {
    use signal_hook::consts::signal as s;
    let ignored = Arc::new(AtomicBool::new(false));
    let also = [s::SIGPIPE, s::SIGTSTP, s::SIGTTIN, s::SIGTTOU];
    for signal in signals::terminating().chain(also) {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    fn at(secs: u64) -> Stamp {
        Stamp::from_since_boot(Duration::from_secs(1000 + secs))
    }

    fn guarding(deadline: u64) -> Watch {
        Watch {
            group: Some(42),
            deadline: Some(at(deadline)),
            ..Watch::default()
        }
    }

    #[test]
    fn the_command_names_its_group_in_the_line_the_guardian_reads() {
        let mut buf = [0u8; 24];
        for pid in [1, 9, 10, 42, 4_194_304, i32::MAX] {
            let n = group_line(pid, &mut buf);
            assert_eq!(&buf[..n], format!("g {pid}\n").as_bytes());
            let mut w = Watch::default();
            assert!(apply(&mut w, &buf[..n]));
            assert_eq!(w.group, (pid > 1).then_some(pid));
        }
    }

    #[test]
    fn while_rlock_lives_the_guardian_only_kills_at_the_deadline() {
        let w = guarding(30);
        assert_eq!(step(&w, at(0), GRACE), Action::Wait(Some(at(30))));
        assert_eq!(step(&w, at(29), GRACE), Action::Wait(Some(at(30))));
        assert_eq!(step(&w, at(30), GRACE), Action::Kill);
        let killed = Watch { killed: true, ..w };
        assert_eq!(step(&killed, at(31), GRACE), Action::Wait(None));
    }

    #[test]
    fn rlock_dying_stops_the_group_at_once_and_kills_it_after_the_grace() {
        let w = Watch {
            orphaned: Some(at(0)),
            ..guarding(30)
        };
        assert_eq!(step(&w, at(0), GRACE), Action::Stop);
        let stopped = Watch { stopped: true, ..w };
        assert_eq!(step(&stopped, at(1), GRACE), Action::Wait(Some(at(5))));
        assert_eq!(step(&stopped, at(5), GRACE), Action::Kill);
        let killed = Watch {
            killed: true,
            ..stopped
        };
        assert_eq!(step(&killed, at(6), GRACE), Action::Exit);
    }

    #[test]
    fn the_deadline_cuts_the_grace_short() {
        let w = Watch {
            orphaned: Some(at(28)),
            stopped: true,
            ..guarding(30)
        };
        assert_eq!(step(&w, at(28), GRACE), Action::Wait(Some(at(30))));
        assert_eq!(step(&w, at(30), GRACE), Action::Kill);
    }

    #[test]
    fn a_deadline_already_past_when_rlock_dies_means_sigkill_without_a_stop_signal() {
        let w = Watch {
            orphaned: Some(at(40)),
            ..guarding(30)
        };
        assert_eq!(step(&w, at(40), GRACE), Action::Kill);
    }

    #[test]
    fn nothing_to_guard_before_a_group_is_named() {
        let w = Watch::default();
        assert_eq!(step(&w, at(0), GRACE), Action::Wait(None));
        let orphaned = Watch {
            orphaned: Some(at(0)),
            ..w
        };
        assert_eq!(step(&orphaned, at(0), GRACE), Action::Exit);
    }

    #[test]
    fn messages_name_the_group_move_the_deadline_and_dismiss() {
        let mut w = Watch::default();
        assert!(apply(&mut w, b"g 4242\n"));
        assert_eq!(w.group, Some(4242));
        assert!(apply(&mut w, b"d 5000000000\n"));
        assert_eq!(
            w.deadline,
            Some(Stamp::from_since_boot(Duration::from_secs(5)))
        );
        assert!(apply(&mut w, b"garbage\n"));
        assert!(apply(&mut w, b"g 1\n"), "never guard init");
        assert_eq!(w.group, None);
        assert!(!apply(&mut w, b"x\n"));
    }
}
