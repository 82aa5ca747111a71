//! The one clock lease time is measured on.
//!
//! A lease expires on the servers by *their* clocks while this machine may be suspended, so the
//! client must measure on a clock that keeps counting through suspend. `std::time::Instant` is
//! `CLOCK_MONOTONIC` on Linux, which stops during suspend; `CLOCK_BOOTTIME` does not. Waiting for
//! such a time is [`inbox`](crate::inbox)'s job.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// A point in time on `CLOCK_BOOTTIME` (time since boot, suspend included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

/// The current time on `CLOCK_BOOTTIME`.
pub fn now() -> Stamp {
    // CLOCK_BOOTTIME exists on every Linux since 2.6.39; failure here means a broken system.
    let ts = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is readable");
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

    /// Time since boot, for arming timers on `CLOCK_BOOTTIME` and telling other processes.
    pub fn since_boot(self) -> Duration {
        self.0
    }

    /// The stamp `since_boot` after boot: one that another process on this machine measured.
    pub fn from_since_boot(since_boot: Duration) -> Stamp {
        Stamp(since_boot)
    }
}

impl std::ops::Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(d))
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
        assert_eq!(
            (a + Duration::from_secs(1)).minus(Duration::from_secs(1)),
            a
        );
    }
}
