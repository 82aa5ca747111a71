//! The quorum and time arithmetic of a lease, as pure functions.
//!
//! A lease is valid on the client from the moment its request was *sent* (the servers cannot
//! have started its TTL any earlier) until `ttl - drift` later, where the drift margin covers
//! servers whose clocks run a little fast: `ttl * 1% + 2 ms`, as in the Redlock description.

use std::time::Duration;

/// Nodes that must agree out of `n`: a strict majority.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The clock-drift margin subtracted from every lease: `ttl / 100 + 2 ms`.
pub fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// How long a lease stays valid for the client once its request was sent: `ttl - drift`.
pub fn lifetime(ttl: Duration) -> Duration {
    ttl.saturating_sub(drift(ttl))
}

/// The validity left after a request that took `elapsed` from its first send: `ttl - elapsed -
/// drift`, or `None` if nothing is left.
pub fn validity(ttl: Duration, elapsed: Duration) -> Option<Duration> {
    lifetime(ttl).checked_sub(elapsed).filter(|v| !v.is_zero())
}

/// An acquisition counts only if at least half the TTL is left: a grant that took longer than that
/// means something is badly slow, and a lease that starts half spent is not worth keeping.
pub fn enough_validity(ttl: Duration, validity: Duration) -> bool {
    validity >= ttl / 2
}

/// What one round of requests to all nodes says about a lease we hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A majority did what we asked.
    Kept,
    /// So many nodes say the lock is not ours that a majority can never agree again.
    Lost,
    /// Neither: too few answered. Try again while there is time.
    Unknown,
}

/// Judges a round on `n` nodes where `yes` nodes did what we asked and `no` refused because the
/// lock no longer holds our token.
pub fn judge(n: usize, yes: usize, no: usize) -> Verdict {
    if yes >= majority(n) {
        Verdict::Kept
    } else if no > n - majority(n) {
        Verdict::Lost
    } else {
        Verdict::Unknown
    }
}

/// How long a keeper waits between extensions: a third of the TTL, so two attempts fail before the
/// lease is in danger.
pub fn extend_every(ttl: Duration) -> Duration {
    ttl / 3
}

/// The per-request timeout on each node: small against the TTL (a tenth), at least 10 ms, at most
/// one second, so that a dead node costs little of the lease and a slow network still works.
pub fn node_timeout(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The pause before retrying an extension that failed for transport reasons: quick, bounded.
pub fn retry_after(ttl: Duration) -> Duration {
    (ttl / 20).clamp(Duration::from_millis(10), Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_majority_is_more_than_half() {
        assert_eq!([1, 2, 3, 4, 5, 7].map(majority), [1, 2, 2, 3, 3, 4]);
    }

    #[test]
    fn drift_is_one_percent_plus_two_ms() {
        assert_eq!(drift(Duration::from_secs(30)), 302 * MS);
        assert_eq!(drift(Duration::from_secs(1)), 12 * MS);
        assert_eq!(lifetime(Duration::from_secs(1)), 988 * MS);
    }

    #[test]
    fn validity_subtracts_elapsed_and_drift_and_ends_at_zero() {
        let ttl = Duration::from_secs(10);
        assert_eq!(validity(ttl, 1000 * MS), Some(8898 * MS));
        assert_eq!(validity(ttl, 9898 * MS), None);
        assert_eq!(validity(ttl, 20_000 * MS), None);
        assert!(enough_validity(ttl, 5000 * MS));
        assert!(!enough_validity(ttl, 4999 * MS));
    }

    #[test]
    fn a_round_is_kept_by_a_majority_and_lost_when_one_is_impossible() {
        assert_eq!(judge(1, 1, 0), Verdict::Kept);
        assert_eq!(judge(1, 0, 1), Verdict::Lost);
        assert_eq!(judge(1, 0, 0), Verdict::Unknown);
        assert_eq!(judge(5, 3, 0), Verdict::Kept);
        assert_eq!(judge(5, 2, 2), Verdict::Unknown);
        assert_eq!(judge(5, 2, 3), Verdict::Lost);
        assert_eq!(judge(5, 0, 2), Verdict::Unknown);
        assert_eq!(judge(3, 1, 2), Verdict::Lost);
    }

    #[test]
    fn timeouts_scale_with_the_ttl_within_bounds() {
        assert_eq!(node_timeout(Duration::from_secs(1)), 100 * MS);
        assert_eq!(
            node_timeout(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(node_timeout(50 * MS), 10 * MS);
        assert_eq!(retry_after(Duration::from_secs(1)), 50 * MS);
        assert_eq!(
            extend_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
    }
}
