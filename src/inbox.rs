//! A channel whose receiver can wait for a message *or* a time on the boot clock.
//!
//! The supervisor must stop the command at lease deadlines measured on `CLOCK_BOOTTIME` while
//! also reacting at once to signals and lease news from other threads. A plain
//! `mpsc::Receiver::recv_timeout` cannot do that: its timeout runs on the monotonic clock, which
//! stops during suspend, so after a resume it would oversleep a deadline by the whole suspend. So
//! every send also rings a bell (one byte into a pipe), and the receiver `poll`s the bell together
//! with a `timerfd` armed on `CLOCK_BOOTTIME`, which fires right after resume when its time has
//! passed.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, mpsc};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::clock::{self, Stamp};

/// The sending half; clone it for every thread that sends.
pub struct Sender<T> {
    tx: mpsc::Sender<T>,
    bell: Arc<io::PipeWriter>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            bell: Arc::clone(&self.bell),
        }
    }
}

/// The receiving half.
pub struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    bell: io::PipeReader,
    timer: TimerFd,
}

/// A new channel.
pub fn channel<T>() -> io::Result<(Sender<T>, Inbox<T>)> {
    let (reader, writer) = io::pipe()?;
    for fd in [reader.as_fd(), writer.as_fd()] {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    let timer = TimerFd::new(ClockId::CLOCK_BOOTTIME, TimerFlags::TFD_CLOEXEC)?;
    let (tx, rx) = mpsc::channel();
    Ok((
        Sender {
            tx,
            bell: Arc::new(writer),
        },
        Inbox {
            rx,
            bell: reader,
            timer,
        },
    ))
}

impl<T> Sender<T> {
    /// Sends `message`; false if the inbox is gone.
    pub fn send(&self, message: T) -> bool {
        if self.tx.send(message).is_err() {
            return false;
        }
        // A full pipe already holds a ring the receiver has not heard: nothing is lost.
        let _ = (&*self.bell).write(&[1]);
        true
    }
}

impl<T> Inbox<T> {
    /// The next message, waiting for it until `until` on the boot clock (or for ever if `None`).
    /// `None` when that time comes first, or when every sender is gone.
    pub fn recv_until(&mut self, until: Option<Stamp>) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(message) => return Some(message),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if until.is_some_and(|t| clock::now() >= t) {
                return None;
            }
            self.wait(until);
        }
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Blocks until the bell rings or `until` comes; either way, the caller looks again.
    fn wait(&mut self, until: Option<Stamp>) {
        let armed = until.is_some_and(|t| {
            let at = Expiration::OneShot(TimeSpec::from_duration(t.since_boot()));
            self.timer
                .set(at, TimerSetTimeFlags::TFD_TIMER_ABSTIME)
                .is_ok()
        });
        let mut fds = [
            PollFd::new(self.bell.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.timer.as_fd(), PollFlags::POLLIN),
        ];
        let slots = if armed { &mut fds[..] } else { &mut fds[..1] };
        // poll's own timeout bounds the wait too, should the timer not fire: it could not be
        // armed, or an LD_PRELOAD clock faker (libfaketime, in the fault suite) translates
        // absolute timer times wrongly. It runs on the monotonic clock, which stops during
        // suspend; the timer covers that case.
        let timeout = until.map_or(PollTimeout::NONE, |t| {
            let ms = t.remaining().as_millis().saturating_add(1);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        });
        // EINTR and spurious wake-ups are fine: the caller re-checks the channel and the clock.
        let _ = poll(slots, timeout);
        let mut drain = [0u8; 64];
        while matches!((&self.bell).read(&mut drain), Ok(n) if n > 0) {}
        if armed {
            let _ = self.timer.unset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_message_wakes_a_long_wait() {
        let (tx, mut inbox) = channel().unwrap();
        let start = clock::now();
        std::thread::spawn(move || tx.send(7));
        assert_eq!(
            inbox.recv_until(Some(start + Duration::from_secs(60))),
            Some(7)
        );
        assert!(clock::now().since(start) < Duration::from_secs(5));
    }

    #[test]
    fn the_time_comes_when_nothing_is_sent() {
        let (_tx, mut inbox) = channel::<()>().unwrap();
        let start = clock::now();
        assert_eq!(
            inbox.recv_until(Some(start + Duration::from_millis(20))),
            None
        );
        assert!(clock::now().since(start) >= Duration::from_millis(20));
    }

    #[test]
    fn messages_arrive_in_order_and_none_is_lost() {
        let (tx, mut inbox) = channel().unwrap();
        for i in 0..10_000 {
            tx.send(i);
        }
        for i in 0..10_000 {
            assert_eq!(inbox.recv_until(None), Some(i));
        }
    }
}
