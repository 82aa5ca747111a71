//! The quorum and time arithmetic of a lease, as pure functions.
//!
//! A lease is valid on the client from the moment its request was *sent* (the servers cannot
//! have started its TTL any earlier) until `ttl - drift` later, where the drift margin covers
//! servers whose clocks run a little fast: `ttl * 1% + 2 ms`, as in the Redlock description.
//! Who holds a lock is judged the same way: by the holder a majority of all nodes agrees on.

use std::time::Duration;

use super::{Hold, NodeView, Occupant, Place};

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

/// Who holds one place of a lock (the exclusive lock, one slot of a limited lock, or one shared
/// holder), judged from what the nodes that answered say (for `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// No node that answered holds it.
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
        /// The digest of the holder's token.
        digest: String,
    },
}

/// Judges who holds one place on `n` nodes from what each node that answered holds there (`None`:
/// nothing): the holder is the token digest a majority of all `n` nodes shares, so silent nodes
/// count against it.
pub fn holding(n: usize, answered: &[Option<&Hold>]) -> Holding {
    let majority = majority(n);
    let holds = |h: Option<&Hold>, digest: &str| h.is_some_and(|h| h.digest == digest);
    let Some(digest) = answered
        .iter()
        .flatten()
        .map(|h| h.digest.as_str())
        .find(|d| answered.iter().filter(|h| holds(**h, d)).count() >= majority)
    else {
        return if answered.iter().any(Option::is_some) {
            Holding::Split
        } else {
            Holding::Free
        };
    };
    let group: Vec<&Hold> = answered
        .iter()
        .flatten()
        .copied()
        .filter(|h| h.digest == digest)
        .collect();
    let mut ttls: Vec<Duration> = group.iter().filter_map(|h| h.ttl).collect();
    ttls.sort_unstable_by(|a, b| b.cmp(a));
    Holding::Held {
        mine: group.iter().all(|h| h.mine),
        expires_in: ttls.get(majority - 1).copied(),
        holder: group
            .iter()
            .map(|h| h.holder.clone())
            .find(|h| !h.is_empty())
            .unwrap_or_default(),
        digest: digest.to_owned(),
    }
}

/// The value most items share (the lowest of those tied), if there are any: the slot most nodes
/// granted, or the limit most nodes store.
pub fn most_granted<T: Copy + Ord>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_unstable();
    items
        .chunk_by(|a, b| a == b)
        .map(|run| (run.len(), std::cmp::Reverse(run[0])))
        .max()
        .map(|(_, std::cmp::Reverse(value))| value)
}

/// Every holder a majority of `n` nodes agrees on, judged place by place from the views of the
/// nodes that answered: the exclusive lock, each slot, and each shared holder (by token digest).
pub fn occupants(n: usize, answered: &[&NodeView]) -> Vec<Occupant> {
    let mut places: Vec<(Place, Option<&str>)> = answered
        .iter()
        .flat_map(|v| v.holds.iter())
        .map(|h| match h.place {
            Place::Shared => (Place::Shared, Some(h.digest.as_str())),
            place => (place, None),
        })
        .collect();
    places.sort_unstable();
    places.dedup();
    places
        .into_iter()
        .filter_map(|(place, digest)| {
            let there: Vec<Option<&Hold>> = answered
                .iter()
                .map(|v| {
                    v.holds
                        .iter()
                        .find(|h| h.place == place && digest.is_none_or(|d| h.digest == d))
                })
                .collect();
            match holding(n, &there) {
                Holding::Held {
                    mine,
                    expires_in,
                    holder,
                    digest,
                } => Some(Occupant {
                    place,
                    mine,
                    expires_in,
                    holder,
                    digest,
                }),
                Holding::Free | Holding::Split => None,
            }
        })
        .collect()
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
    fn held(digest: &str, ttl_ms: u64, mine: bool) -> Hold {
        Hold {
            place: super::super::Place::Exclusive,
            ttl: Some(Duration::from_millis(ttl_ms)),
            digest: digest.to_owned(),
            mine,
            holder: vec![("host".to_owned(), format!("host-of-{digest}"))],
        }
    }

    /// A node that answered and does not hold it.
    const FREE: Option<&Hold> = None;

    #[test]
    fn one_node_holds_the_lock_or_it_is_free() {
        let a = held("a", 900, true);
        let Holding::Held {
            mine, expires_in, ..
        } = holding(1, &[Some(&a)])
        else {
            panic!("one node holding it is a majority of one");
        };
        assert!(mine);
        assert_eq!(expires_in, Some(900 * MS));
        assert_eq!(holding(1, &[FREE]), Holding::Free);
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
        } = holding(3, &[Some(&b), Some(&a1), Some(&a2)])
        else {
            panic!("two of three nodes agree on a");
        };
        assert_eq!(holder, [("host".to_owned(), "host-of-a".to_owned())]);
        assert_eq!(expires_in, Some(500 * MS), "the majority-th longest TTL");
    }

    #[test]
    fn holders_without_a_majority_leave_the_lock_split_and_silent_nodes_count_against() {
        let (a, b) = (held("a", 500, false), held("b", 500, false));
        assert_eq!(holding(3, &[Some(&a), Some(&b), FREE]), Holding::Split);
        assert_eq!(
            holding(5, &[Some(&a), Some(&a), Some(&b), Some(&b), FREE]),
            Holding::Split
        );
        assert_eq!(
            holding(3, &[Some(&a)]),
            Holding::Split,
            "two of three did not answer"
        );
        assert_eq!(holding(3, &[FREE, FREE]), Holding::Free);
    }

    #[test]
    fn the_slot_most_nodes_granted_wins_and_ties_go_to_the_lowest() {
        assert_eq!(most_granted([2, 0, 2].into_iter()), Some(2));
        assert_eq!(most_granted([1, 0].into_iter()), Some(0));
        assert_eq!(most_granted(std::iter::empty::<u32>()), None);
    }

    #[test]
    fn every_place_a_majority_agrees_on_is_an_occupant() {
        let hold = |place, digest: &str| Hold {
            place,
            ..held(digest, 500, false)
        };
        let view = |holds: Vec<Hold>| NodeView {
            fence: Some(1),
            limit: Some(3),
            exclusive_waiting: false,
            holds,
            waiting: 0,
            next: Vec::new(),
        };
        // Slot 0 agreed by all three, slot 1 by one node only, two shared holders by two nodes.
        let a = view(vec![
            hold(Place::Slot(0), "a"),
            hold(Place::Slot(1), "b"),
            hold(Place::Shared, "r1"),
        ]);
        let b = view(vec![
            hold(Place::Slot(0), "a"),
            hold(Place::Shared, "r1"),
            hold(Place::Shared, "r2"),
        ]);
        let c = view(vec![hold(Place::Slot(0), "a"), hold(Place::Shared, "r2")]);
        let found: Vec<Place> = occupants(3, &[&a, &b, &c])
            .iter()
            .map(|o| o.place)
            .collect();
        assert_eq!(found, [Place::Slot(0), Place::Shared, Place::Shared]);
    }

    #[test]
    fn the_lease_is_mine_only_if_every_node_of_the_majority_says_so() {
        let (mine, theirs) = (held("a", 500, true), held("a", 500, false));
        let judged = |views: &[Option<&Hold>]| match holding(3, views) {
            Holding::Held { mine, .. } => mine,
            other => panic!("{other:?}"),
        };
        assert!(judged(&[Some(&mine), Some(&mine), FREE]));
        assert!(!judged(&[Some(&mine), Some(&theirs), FREE]));
    }
}
