//! The one clock lease deadlines are measured on, and a sleep that honours it.
//!
//! A lease expires on the servers by *their* clocks while this machine may be suspended, so the
//! client must measure on a clock that keeps counting through suspend. `std::time::Instant` is
//! `CLOCK_MONOTONIC` on Linux, which stops during suspend; `CLOCK_BOOTTIME` does not. Sleeping has
//! the same trap: a plain timed wait is armed on the monotonic clock and would oversleep a suspend
//! by its whole length, so [`Sleeper`] arms a `timerfd` on `CLOCK_BOOTTIME`, which fires right
//! after resume when its time has passed.

use std::io::Read;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::ClockId as TimeClockId;
use nix::time::clock_gettime;

/// A point in time on `CLOCK_BOOTTIME` (time since boot, suspend included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

/// The current time on `CLOCK_BOOTTIME`.
pub fn now() -> Stamp {
    // CLOCK_BOOTTIME exists on every Linux since 2.6.39; failure here means a broken system.
    let ts = clock_gettime(TimeClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is readable");
    Stamp(Duration::from(ts))
}

impl Stamp {
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Time from now until `self`, zero if it has passed.
    pub fn remaining(self) -> Duration {
        self.since(now())
    }

    /// `self` moved back by `d` (never before boot).
    #[must_use]
    pub fn minus(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_sub(d))
    }
}

impl std::ops::Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(d))
    }
}

/// Why [`Sleeper::sleep_until`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Woke {
    /// The requested time came.
    OnTime,
    /// The paired [`Waker`] asked the sleeper to return (or was dropped).
    Woken,
}

/// Sleeps until a [`Stamp`], or until its [`Waker`] calls: the only way a thread waits for lease time.
pub struct Sleeper {
    timer: TimerFd,
    wake: std::io::PipeReader,
}

/// Interrupts a [`Sleeper`] from another thread, by closing its end of a pipe.
pub struct Waker {
    /// Held only to be dropped: the sleeper sees end-of-file.
    _pipe: std::io::PipeWriter,
}

impl Waker {
    /// Makes the sleeper's current and every later sleep return [`Woke::Woken`].
    pub fn wake(self) {
        drop(self);
    }
}

/// A sleeper and the waker that interrupts it.
pub fn sleeper() -> std::io::Result<(Sleeper, Waker)> {
    let (reader, writer) = std::io::pipe()?;
    let timer = TimerFd::new(ClockId::CLOCK_BOOTTIME, TimerFlags::TFD_CLOEXEC)?;
    Ok((
        Sleeper {
            timer,
            wake: reader,
        },
        Waker { _pipe: writer },
    ))
}

impl Sleeper {
    /// Sleeps until `when` on `CLOCK_BOOTTIME`, or until woken.
    pub fn sleep_until(&mut self, when: Stamp) -> Woke {
        loop {
            if now() >= when {
                return Woke::OnTime;
            }
            let at = Expiration::OneShot(TimeSpec::from_duration(when.0));
            if self
                .timer
                .set(at, TimerSetTimeFlags::TFD_TIMER_ABSTIME)
                .is_err()
            {
                // Cannot happen for a valid absolute time; degrade to a short monotonic nap.
                std::thread::sleep(when.remaining().min(Duration::from_millis(10)));
                continue;
            }
            let mut fds = [
                PollFd::new(self.timer.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue; // EINTR: look at the clock again
            }
            let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
            if woken {
                // The writer is dropped, never written, so this is EOF: nothing to drain.
                let _ = self.wake.read(&mut [0u8; 1]);
                return Woke::Woken;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now().since(a) >= Duration::from_millis(2));
        assert_eq!(a.since(now()), Duration::ZERO);
    }

    #[test]
    fn a_sleeper_returns_on_time() {
        let (mut s, _w) = sleeper().unwrap();
        let start = now();
        assert_eq!(
            s.sleep_until(start + Duration::from_millis(20)),
            Woke::OnTime
        );
        assert!(now().since(start) >= Duration::from_millis(20));
    }

    #[test]
    fn a_waker_interrupts_a_long_sleep() {
        let (mut s, w) = sleeper().unwrap();
        let start = now();
        let t = std::thread::spawn(move || s.sleep_until(start + Duration::from_secs(60)));
        w.wake();
        assert_eq!(t.join().unwrap(), Woke::Woken);
        assert!(now().since(start) < Duration::from_secs(5));
    }
}
