//! The one timeline the checkers compare: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! Everything runs on one machine, so the harness, the critical sections (Python's
//! `time.monotonic_ns()` reads the same clock) and the Redis monitor stamp events on one clock that
//! no fault moves: the node clock jumps shift only `CLOCK_REALTIME` inside redis-server, and the
//! critical sections never run under libfaketime.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub type Nanos = u64;

/// The current time on the shared timeline.
pub fn now() -> Nanos {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is readable");
    Nanos::try_from(Duration::from(ts).as_nanos()).expect("nanoseconds since boot fit in u64")
}

/// `d` in nanoseconds.
pub fn nanos(d: Duration) -> Nanos {
    Nanos::try_from(d.as_nanos()).expect("a test duration fits in u64 nanoseconds")
}

/// A signed difference `a - b` in milliseconds, for reports.
#[allow(clippy::cast_precision_loss)] // differences of a few minutes, far below 2^52 ns
pub fn ms_between(a: Nanos, b: Nanos) -> f64 {
    (a as f64 - b as f64) / 1e6
}
