//! The quorum and time arithmetic of a lease, as pure functions.
//!
//! A lease is valid on the client from the moment its request was *sent* (the servers cannot
//! have started its TTL any earlier) until `ttl - drift` later, where the drift margin covers
//! servers whose clocks run a little fast: `ttl * 1% + 2 ms`, as in the Redlock description.
//! Who holds a lock is judged the same way: by the holder a majority of all nodes agrees on.

use std::time::Duration;

use super::NodeView;

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

/// Who holds a lock, judged from what the nodes that answered say (for `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// No node that answered holds the lock.
    Free,
    /// Some nodes hold it, but no one holder on a majority: nobody can use it until it expires.
    Split,
    /// A majority of the nodes hold it for one holder (the same token digest).
    Held {
        /// Whether every node of that majority says the token is the caller's.
        mine: bool,
        /// How long until fewer than a majority hold it: the majority-th longest TTL among them.
        expires_in: Option<Duration>,
        /// The holder record, from the first of those nodes that has one.
        holder: Vec<(String, String)>,
    },
}

/// Judges who holds a lock on `n` nodes from the views of those that answered: the holder is the
/// token digest a majority of all `n` nodes shares, so silent nodes count against it.
pub fn holding(n: usize, answered: &[&NodeView]) -> Holding {
    let majority = majority(n);
    let holds = |v: &NodeView, digest: &str| v.digest.as_deref() == Some(digest);
    let Some(digest) = answered
        .iter()
        .filter_map(|v| v.digest.as_deref())
        .find(|d| answered.iter().filter(|v| holds(v, d)).count() >= majority)
    else {
        return if answered.iter().any(|v| v.digest.is_some()) {
            Holding::Split
        } else {
            Holding::Free
        };
    };
    let group: Vec<&NodeView> = answered
        .iter()
        .copied()
        .filter(|v| holds(v, digest))
        .collect();
    let mut ttls: Vec<Duration> = group.iter().filter_map(|v| v.ttl).collect();
    ttls.sort_unstable_by(|a, b| b.cmp(a));
    Holding::Held {
        mine: group.iter().all(|v| v.mine),
        expires_in: ttls.get(majority - 1).copied(),
        holder: group
            .iter()
            .map(|v| v.holder.clone())
            .find(|h| !h.is_empty())
            .unwrap_or_default(),
    }
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

    /// A node holding the lock for `digest` with `ttl_ms` left.
    fn held(digest: &str, ttl_ms: u64, mine: bool) -> NodeView {
        NodeView {
            ttl: Some(Duration::from_millis(ttl_ms)),
            digest: Some(digest.to_owned()),
            mine,
            fence: Some(1),
            holder: vec![("host".to_owned(), format!("host-of-{digest}"))],
        }
    }

    fn free() -> NodeView {
        NodeView {
            ttl: None,
            digest: None,
            mine: false,
            fence: Some(1),
            holder: Vec::new(),
        }
    }

    #[test]
    fn one_node_holds_the_lock_or_it_is_free() {
        let a = held("a", 900, true);
        let Holding::Held {
            mine, expires_in, ..
        } = holding(1, &[&a])
        else {
            panic!("one node holding it is a majority of one");
        };
        assert!(mine);
        assert_eq!(expires_in, Some(900 * MS));
        assert_eq!(holding(1, &[&free()]), Holding::Free);
    }

    #[test]
    fn the_holder_is_the_one_a_majority_agrees_on() {
        let (a1, a2, b) = (
            held("a", 500, false),
            held("a", 800, false),
            held("b", 900, false),
        );
        let Holding::Held {
            expires_in, holder, ..
        } = holding(3, &[&b, &a1, &a2])
        else {
            panic!("two of three nodes agree on a");
        };
        assert_eq!(holder, [("host".to_owned(), "host-of-a".to_owned())]);
        assert_eq!(expires_in, Some(500 * MS), "the majority-th longest TTL");
    }

    #[test]
    fn holders_without_a_majority_leave_the_lock_split_and_silent_nodes_count_against() {
        let (a, b) = (held("a", 500, false), held("b", 500, false));
        assert_eq!(holding(3, &[&a, &b, &free()]), Holding::Split);
        assert_eq!(holding(5, &[&a, &a, &b, &b, &free()]), Holding::Split);
        assert_eq!(
            holding(3, &[&a]),
            Holding::Split,
            "two of three did not answer"
        );
        assert_eq!(holding(3, &[&free(), &free()]), Holding::Free);
    }

    #[test]
    fn the_lease_is_mine_only_if_every_node_of_the_majority_says_so() {
        let (mine, theirs) = (held("a", 500, true), held("a", 500, false));
        let judged = |views: &[&NodeView]| match holding(3, views) {
            Holding::Held { mine, .. } => mine,
            other => panic!("{other:?}"),
        };
        assert!(judged(&[&mine, &mine, &free()]));
        assert!(!judged(&[&mine, &theirs, &free()]));
    }
}
