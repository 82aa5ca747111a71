//! Fencing tokens: a number that rises with every grant, for the protected resource to check.
//!
//! A lease can end while its holder still believes in it (a paused process, a delayed packet, a
//! node whose clock jumped). Timing cannot prevent that; a fence can make it harmless: the
//! resource remembers the highest fence it accepted and refuses writes carrying a lower one.
//!
//! # One node
//! The acquire script increments the key's counter (`P{K}:fence`) in the same atomic step that
//! grants the lock, so grants on one node get strictly increasing fences. A counter that is
//! missing (first use, or a node that restarted without its data) starts from the node's `TIME`
//! in microseconds, which exceeds any earlier fence as long as that node's clock moved forward and
//! fewer than a million grants per second were made before.
//!
//! # A quorum of nodes (Redlock)
//! Per-node counters alone are not monotonic: with A's counter at 1000 and B, C at 5, a grant on
//! {A, B} yields 1001 and a later grant on {B, C} yields 7. So a grant takes two phases:
//! 1. each granting node returns its next counter value, and the client takes the maximum over a
//!    granting majority as the fence;
//! 2. the client asks the granting nodes to raise their counter to that fence, if the lock still
//!    holds its token ([`COMMIT_FENCE`](super::scripts::COMMIT_FENCE)); the lease counts only if a
//!    majority confirms.
//!
//! Why later grants then carry larger fences: take a committed grant G1 (fence f1, committed on
//! majority M1) and a grant G2 whose fence was taken over a granting majority M2. The majorities
//! share a node X. On X, G1's lock was present from G1's grant through G1's commit, so G2's grant on
//! X (which needs the lock absent) came either before G1's grant there, or after G1's commit there.
//! In the second case, which is what "G2 is later" means, X's counter was at least f1 when G2 was
//! granted, so G2's value from X, and hence f2, is at least f1 + 1. No clock enters the argument:
//! it holds through client pauses and node clock jumps.
//!
//! Phase two can be skipped when a majority of the granting nodes already returned the chosen
//! fence: their counters hold it already, set in the same atomic step that granted the lock, so
//! the argument above holds with "commit" read as "grant". After one commit all counters are equal
//! and every grant increments each of them alike, so in steady state a Redlock grant costs one
//! round trip, as on a single node.
//!
//! # Lock modes
//! One counter serves every mode and slot of a lock. The argument above needs only this: on the
//! shared node X, the later grant G2 was refused while G1's hold was present. That is true whenever
//! G1 and G2 *conflict*: the same slot of a limited lock, an exclusive grant and any other, since
//! the acquire script refuses a slot that is held, an exclusive grant while a shared holder is live,
//! and a shared grant while the exclusive lock is held. Phase two confirms the token still holds
//! its place on X ([`COMMIT_FENCE`](super::scripts::COMMIT_FENCE) looks for it in every mode). So
//! a grant that follows a conflicting one carries a larger fence. Holds that do not conflict (two
//! slots, two shared holders) may overlap in time, so "later" means nothing for them: on one node
//! their fences differ (one `INCR` each), over a quorum they may be equal. A resource therefore
//! checks fences per slot, or, for shared locks, exclusive accesses against every access and shared
//! accesses against exclusive ones (the README's table).
//!
//! Its assumption: a node does not lose acknowledged writes. A node that restarts empty recovers
//! through the `TIME` floor only if its clock has moved forward past the fences it handed out.

/// A fence as Redis returned it (a decimal string), parsed; `None` if it is not a number.
pub fn parse(text: &str) -> Option<u64> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_parse_exactly_beyond_float_precision() {
        assert_eq!(parse("1764000000123457"), Some(1_764_000_000_123_457));
        assert_eq!(parse("9007199254740993"), Some(9_007_199_254_740_993));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("x"), None);
    }
}
