//! The lease protocol over N independent Redis masters; one node is simply N = 1.
//!
//! Every step (acquire, extend, release) is one script sent to all nodes at once, each request with
//! its own deadline, and judged by majority: single-node mode needs its one node, Redlock mode a
//! strict majority. Time is measured from before the first send on the boot clock, and a lease is
//! trusted only until `sent + ttl - drift` (see [`quorum`]). A failed acquisition is undone on
//! every node that may have granted it, including nodes that timed out (their grant may have
//! landed); a failed extension deletes nothing, since someone may still rely on the lease.
//!
//! This module speaks in values: [`Attempt`], [`Extension`], [`Released`], [`LockStatus`], and a
//! [`LeaseError`] when the nodes give no answer. Which exit status each one means is the command
//! layer's business.
//!
//! Layout:
//! - this file: [`Lock`], one lock on its nodes, and the rounds that acquire, extend, release and
//!   read it;
//! - [`scripts`]: the Lua each round sends, and [`reply`]: decoding what the scripts answer;
//! - [`quorum`]: the pure arithmetic: majorities, validity, who holds a lock;
//! - [`fence`]: the fencing-token scheme and its argument;
//! - [`node`]: one node and its requests, [`endpoint`]: the ways to reach it, [`conn`]: the socket
//!   and its deadlines;
//! - [`watch`]: hearing about releases, so that waiters retry at once;
//! - [`scan`]: which locks exist on the nodes, for `list`.

pub mod conn;
pub mod endpoint;
pub mod fence;
pub mod node;
pub mod quorum;
pub mod reply;
pub mod scan;
pub mod scripts;
pub mod watch;

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::clock::{self, Stamp};
pub use endpoint::Tls;
pub use node::{Node, NodeError};
use quorum::Verdict;

/// The Redis keys a client names (see [`scripts`] for the contract; the scripts derive the rest
/// from `P{K}`).
#[derive(Clone, Debug)]
pub struct Keys {
    /// `P{K}`: holds the token.
    pub lock: String,
    /// `P{K}:fence`: the fencing counter.
    pub fence: String,
    /// `P{K}:released`: the pub/sub channel releases are announced on (not a key).
    pub released: String,
}

impl Keys {
    /// The keys of lock `key` under `prefix`.
    pub fn new(prefix: &str, key: &str) -> Keys {
        let lock = format!("{prefix}{{{key}}}");
        Keys {
            fence: format!("{lock}:fence"),
            released: format!("{lock}:released"),
            lock,
        }
    }
}

/// How a lock is held: what `--shared` and `--limit` choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One holder, excluding every other (the default).
    Exclusive,
    /// Shared holders coexist; an exclusive holder excludes them all.
    Shared,
    /// At most this many holders (at least 2), each in a slot of its own.
    Limit(u32),
}

impl Mode {
    /// The name the command's environment gets in `RLOCK_MODE`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
            Mode::Limit(_) => "limit",
        }
    }

    /// How many holders the lock admits at once in this mode (shared: unbounded, `None`).
    pub fn limit(self) -> Option<u32> {
        match self {
            Mode::Exclusive => Some(1),
            Mode::Shared => None,
            Mode::Limit(n) => Some(n),
        }
    }
}

/// Who takes a lease, recorded beside it for `status`.
#[derive(Clone, Debug)]
pub struct Holder {
    /// This machine's host name.
    pub host: String,
    /// The process that holds the lease.
    pub pid: u32,
    /// The program's name (only the name: arguments may hold secrets).
    pub command: String,
}

/// A lease the nodes granted us.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The value stored in the lock: 128 random bits, hex-encoded.
    pub token: String,
    /// The fencing token.
    pub fence: u64,
    /// Which of a limited lock's slots it holds (0 in the other modes).
    pub slot: u32,
    /// When the granting request was sent.
    pub sent: Stamp,
    /// Until when the lease is valid for us: `sent + ttl - drift`.
    pub deadline: Stamp,
    /// How many nodes granted it.
    pub granted: usize,
}

/// Why a lease operation gave no answer; `Display` is the message for the user.
///
/// Deliberately not a `std::error::Error`: the command layer gives each kind its exit status by
/// converting it into an `anyhow::Error` (see `cmd`), and a blanket conversion would skip that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// The nodes as given cannot make a lock: a URL that cannot be used, or one server listed
    /// twice. The user can fix it.
    Usage(String),
    /// Too few nodes answered to tell what the lock's state is: which did not, and why.
    Unreachable(String),
    /// The OS random source failed, so no token could be made.
    NoRandom(String),
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseError::Usage(why) | LeaseError::Unreachable(why) => f.write_str(why),
            LeaseError::NoRandom(why) => write!(f, "reading the OS random source: {why}"),
        }
    }
}

/// The outcome of one acquisition attempt that reached enough nodes to judge.
#[derive(Debug)]
pub enum Attempt {
    /// The lease is ours.
    Acquired(Grant),
    /// Someone else holds the lock; it expires in at most this long on the nodes that said so.
    Busy {
        /// The smallest remaining TTL a busy node reported, if any did.
        expires_in: Option<Duration>,
    },
}

/// The outcome of one extension round.
#[derive(Debug, PartialEq, Eq)]
pub enum Extension {
    /// A majority extended the lease; it is now valid until `deadline`.
    Kept {
        /// The new deadline.
        deadline: Stamp,
    },
    /// The lease is gone, and why.
    Lost(String),
    /// Not enough nodes answered; the lease may still be ours until its current deadline.
    Unknown(String),
}

/// The outcome of a release.
#[derive(Debug)]
pub struct Released {
    /// How many nodes deleted the lock (it held our token there).
    pub deleted: usize,
    /// The nodes that could not be asked, and why, as one message (empty if none).
    pub failures: String,
}

/// Where on a lock a holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// The exclusive lock.
    Exclusive,
    /// A slot of a limited lock.
    Slot(u32),
    /// Among the shared holders.
    Shared,
}

/// One hold on one node, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Where.
    pub place: Place,
    /// Its remaining TTL (`None` when it has no expiry).
    pub ttl: Option<Duration>,
    /// A digest of the holder's token (never the token).
    pub digest: String,
    /// Whether the token is the caller's.
    pub mine: bool,
    /// The holder record (`host`, `pid`, `command`, `since`), as stored.
    pub holder: Vec<(String, String)>,
}

/// What one node says about the lock, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node's fence counter.
    pub fence: Option<u64>,
    /// The limit stored with a limited lock.
    pub limit: Option<u32>,
    /// Whether an exclusive waiter holds back new shared holders.
    pub exclusive_waiting: bool,
    /// Every hold the node knows of: exclusive, slots, shared holders.
    pub holds: Vec<Hold>,
    /// How many live waiters are in the node's queue.
    pub waiting: u64,
    /// The first one's record (`host`, `pid`, `command`, `since`), if any.
    pub next: Vec<(String, String)>,
}

/// A holder a majority of the nodes agrees on, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupant {
    /// Where it holds the lock.
    pub place: Place,
    /// Whether it is the caller (its token was given).
    pub mine: bool,
    /// How long until fewer than a majority hold it (at most).
    pub expires_in: Option<Duration>,
    /// Its holder record, if recorded.
    pub holder: Vec<(String, String)>,
    /// A digest of its token, as the nodes compare holders (never the token).
    pub digest: String,
}

/// The lock's state across its nodes, for `status`.
#[derive(Clone, Debug)]
pub struct LockStatus {
    /// Every holder a majority agrees on: the exclusive one, each slot's, each shared one's.
    pub occupants: Vec<Occupant>,
    /// The limit of a limited lock, as most nodes that answered store it.
    pub limit: Option<u32>,
    /// Whether an exclusive waiter holds back new shared holders (on any node).
    pub exclusive_waiting: bool,
    /// The highest fence counter on any node: the latest fence handed out.
    pub fence: Option<u64>,
    /// How many waiters are queued, on the node that knows of the most.
    pub waiting: u64,
    /// The first waiter's record, on that node.
    pub next: Vec<(String, String)>,
    /// Each node's redacted URL and what it said.
    pub nodes: Vec<(String, Result<NodeView, NodeError>)>,
}

impl LockStatus {
    /// Whether anyone holds the lock.
    pub fn held(&self) -> bool {
        !self.occupants.is_empty()
    }

    /// Whether the caller is among its holders.
    pub fn mine(&self) -> bool {
        self.occupants.iter().any(|o| o.mine)
    }
}

/// One lock on its nodes: what acquire, extend and release work on.
pub struct Lock {
    /// The lock's name, as the user gave it.
    key: String,
    keys: Keys,
    mode: Mode,
    /// This client's mark while it waits for an exclusive lock that shared holders hold.
    waiter: String,
    /// Whether an attempt may have left that mark on a node (it was waiting and turned away).
    marked: bool,
    /// Whether waiters queue in arrival order (the default) or all try on every release.
    ordered: bool,
    /// Whether an attempt may have put this client in the lock's queue on a node.
    queued: bool,
    /// This client's place in the queue, the same on every node once known.
    ticket: Option<u64>,
    nodes: Vec<Node>,
    ttl: Duration,
    timeout: Duration,
    /// Why the last extension round that failed to reach enough nodes failed, for the message
    /// that ends a lease no extension could keep.
    last_failure: Option<String>,
}

impl Lock {
    /// The lock `key` (under `prefix`) on the nodes at `urls`, with leases of `ttl`. No I/O yet.
    pub fn new(
        key: &str,
        prefix: &str,
        mode: Mode,
        urls: &[String],
        ttl: Duration,
        tls: &Tls,
    ) -> Result<Lock, LeaseError> {
        let timeout = quorum::node_timeout(ttl);
        let mut nodes: Vec<Node> = Vec::with_capacity(urls.len());
        for url in urls {
            let node = Node::new(url, timeout, tls).map_err(LeaseError::Usage)?;
            if let Some(twin) = nodes
                .iter()
                .find(|n| n.addr().is_some() && n.addr() == node.addr())
            {
                return Err(LeaseError::Usage(format!(
                    "Redis node {} is listed twice (also as {}): each node must be an independent master",
                    node.name(),
                    twin.name()
                )));
            }
            nodes.push(node);
        }
        Ok(Lock {
            key: key.to_owned(),
            keys: Keys::new(prefix, key),
            mode,
            waiter: new_token()?,
            marked: false,
            ordered: true,
            queued: false,
            ticket: None,
            nodes,
            ttl,
            timeout,
            last_failure: None,
        })
    }

    /// Why the last extension that reached too few nodes failed (each node's error), if one did.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// The lock's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the lock is taken.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether waiters queue in arrival order (the default); without, every release wakes every
    /// waiter and one of them wins, as before the queue existed (kept for side-by-side benchmarks).
    pub fn set_ordered(&mut self, ordered: bool) {
        self.ordered = ordered;
    }

    /// Whether waiters queue in arrival order.
    pub fn ordered(&self) -> bool {
        self.ordered
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How many nodes the lock lives on.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes' redacted URLs, for output.
    pub fn names(&self) -> Vec<&str> {
        self.nodes.iter().map(Node::name).collect()
    }

    /// Tries once to take the lease. [`LeaseError::Unreachable`] when too few nodes answered to
    /// tell, [`LeaseError::Usage`] when the lock is in use with another limit. `waiting` says that
    /// the caller will try again if turned away: an exclusive waiter then marks its intent, so
    /// that no new shared holder is admitted until it had its turn.
    pub fn try_acquire(&mut self, holder: &Holder, waiting: bool) -> Result<Attempt, LeaseError> {
        let token = new_token()?;
        let n = self.nodes.len();
        let ttl_ms = millis(self.ttl).to_string();
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let pid = holder.pid.to_string();
        // A shared holder's record is stored as one tab-separated string.
        let plain = |text: &str| text.replace(['\t', '\n'], " ");
        let (host, command) = (plain(&holder.host), plain(&holder.command));
        let identify = if n > 1 { "1" } else { "0" };
        let (mode, limit) = match self.mode {
            Mode::Exclusive => ("x", String::new()),
            Mode::Shared => ("s", String::new()),
            Mode::Limit(n) => ("l", n.to_string()),
        };
        // The mark outlives the waiter's next attempt, which comes within a second (the backstop).
        let intent_ms = if waiting && self.mode == Mode::Exclusive {
            millis(self.ttl.max(INTENT_AT_LEAST)).to_string()
        } else {
            "0".to_owned()
        };
        // A waiter joins the queue with its first refusal, with a ticket from the node's clock;
        // over Redlock the largest of them is its ticket on every node from then on, so that all
        // nodes order the same waiters the same way.
        let join = waiting && self.ordered;
        let ticket = self.ticket.map_or_else(String::new, |t| t.to_string());
        let heartbeat_ms = millis(HEARTBEAT).to_string();
        let sent = clock::now();
        let deadline = sent + self.timeout;
        let Lock {
            keys,
            nodes,
            waiter,
            ..
        } = self;
        let replies = node::on_all(nodes, |_, node| {
            let keys = [keys.lock.as_str(), &keys.fence];
            let args = [
                token.as_str(),
                &ttl_ms,
                &host,
                &pid,
                &command,
                &since,
                identify,
                mode,
                &limit,
                &intent_ms,
                waiter.as_str(),
                if join { "1" } else { "0" },
                &ticket,
                &heartbeat_ms,
            ];
            Some(
                node.eval::<Value>(&scripts::ACQUIRE, &keys, &args, deadline)
                    .and_then(reply::acquire),
            )
        });

        let Answers {
            granted,
            busy,
            failures,
            ids,
            mismatch,
            tickets,
        } = Answers::of(replies);
        self.marked |= intent_ms != "0" && !busy.is_empty();
        self.queued |= join && !busy.is_empty();
        if self.ticket.is_none() {
            self.ticket = tickets.into_iter().max();
        }
        if let Err(e) = self.check_independent(&ids) {
            self.undo(&token, &busy);
            return Err(e);
        }
        if let Some(held) = mismatch {
            self.undo(&token, &busy);
            return Err(LeaseError::Usage(self.mismatch(&held)));
        }

        if let Some(grant) = self.judge_grant(&token, sent, &granted, &busy) {
            let others = still_queued(&busy, &failures);
            if std::mem::take(&mut self.queued) && !others.is_empty() {
                self.leave_queue(&others, false);
            }
            return Ok(Attempt::Acquired(grant));
        }
        let majority = quorum::majority(n);
        self.undo(&token, &busy);
        if granted.len() + busy.len() < majority {
            return Err(LeaseError::Unreachable(
                self.unreachable(&failures, granted.len() + busy.len()),
            ));
        }
        let expires_in = busy
            .iter()
            .filter_map(|&(_, pttl)| u64::try_from(pttl).ok())
            .min()
            .map(Duration::from_millis);
        Ok(Attempt::Busy { expires_in })
    }

    /// The grant a round of acquire answers makes, if a majority granted one slot with enough
    /// validity left (committing the fence first where needed); grants of other slots are undone.
    /// `None` leaves undoing the whole attempt to the caller.
    fn judge_grant(
        &mut self,
        token: &str,
        sent: Stamp,
        granted: &[(usize, u64, u32)],
        busy: &[(usize, i64)],
    ) -> Option<Grant> {
        // Nodes of a limited lock may grant different slots; only the slot a majority granted
        // counts, and the other grants are undone with the rest.
        let majority = quorum::majority(self.nodes.len());
        let slot = quorum::most_granted(granted.iter().map(|&(_, _, slot)| slot));
        let in_slot: Vec<(usize, u64)> = granted
            .iter()
            .filter(|&&(_, _, s)| Some(s) == slot)
            .map(|&(i, fence, _)| (i, fence))
            .collect();
        if let (Some(slot), true) = (slot, in_slot.len() >= majority) {
            let fence = in_slot
                .iter()
                .map(|&(_, f)| f)
                .max()
                .expect("a majority is not empty");
            // Phase two is needed only if fewer than a majority of nodes already hold the fence
            // (see `fence`): in steady state every counter is equal and it is skipped.
            let at_fence = in_slot.iter().filter(|&&(_, f)| f == fence).count();
            let committed =
                at_fence >= majority || self.commit_fence(token, fence, &in_slot) >= majority;
            let valid = quorum::validity(self.ttl, clock::now().since(sent));
            if committed && valid.is_some_and(|v| quorum::enough_validity(self.ttl, v)) {
                if in_slot.len() < granted.len() {
                    let keep: Vec<(usize, i64)> = in_slot.iter().map(|&(i, _)| (i, 0)).collect();
                    self.undo(token, &[busy, keep.as_slice()].concat());
                }
                return Some(Grant {
                    token: token.to_owned(),
                    fence,
                    slot,
                    sent,
                    deadline: sent + quorum::lifetime(self.ttl),
                    granted: in_slot.len(),
                });
            }
        }

        None
    }

    /// Takes back an exclusive waiter's mark, so that shared holders are admitted again at once
    /// when it gives up (best effort: the mark expires on its own).
    pub fn withdraw(&mut self) {
        let marked = std::mem::take(&mut self.marked);
        if !std::mem::take(&mut self.queued) && !marked {
            return;
        }
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.leave_queue(&all, true);
    }

    /// Leaves the queue (and takes back the exclusive waiter's mark) on the nodes `on`, by index;
    /// `wake`: the next in line, as a waiter that gives up does (not one that was granted).
    fn leave_queue(&mut self, on: &[usize], wake: bool) {
        let deadline = clock::now() + self.timeout;
        let Lock {
            keys,
            nodes,
            waiter,
            ..
        } = self;
        let keys_released = keys.released.as_str();
        node::on_all(nodes, |i, node| {
            if !on.contains(&i) {
                return None;
            }
            let keys = [keys.lock.as_str()];
            let _ = node.eval::<i64>(
                &scripts::WITHDRAW,
                &keys,
                &[waiter, keys_released, if wake { "1" } else { "0" }],
                deadline,
            );
            Some(())
        });
    }

    /// Extends the lease `token` on all nodes to the lock's TTL.
    pub fn extend(&mut self, token: &str) -> Extension {
        self.extend_for(token, self.ttl)
    }

    /// Sets the lease `token`'s remaining time to `ttl` on all nodes (it may shorten it).
    pub fn extend_for(&mut self, token: &str, ttl: Duration) -> Extension {
        let sent = clock::now();
        let deadline = sent + self.timeout;
        let ttl_ms = millis(ttl).max(1).to_string();
        let Lock { keys, nodes, .. } = self;
        let replies = node::on_all(nodes, |_, node| {
            let keys = [keys.lock.as_str()];
            Some(node.eval::<i64>(&scripts::EXTEND, &keys, &[token, &ttl_ms], deadline))
        });
        // Only the nodes that hold the token in one and the same place count as extending it.
        let place = quorum::most_granted(replies.iter().filter_map(|r| match r {
            Some(Ok(p)) if *p >= 0 => Some(*p),
            _ => None,
        }));
        let replies = replies
            .into_iter()
            .map(|r| r.map(|r| r.map(|p| i64::from(Some(p) == place))))
            .collect();
        let (yes, no, failures) = tally(&self.nodes, replies);
        let extension = match quorum::judge(self.nodes.len(), yes, no) {
            Verdict::Kept => match quorum::validity(ttl, clock::now().since(sent)) {
                Some(_) => Extension::Kept {
                    deadline: sent + quorum::lifetime(ttl),
                },
                None => Extension::Unknown("the extension came back too late to count".to_owned()),
            },
            Verdict::Lost if self.nodes.len() == 1 => Extension::Lost(
                "the lock does not hold this lease's token (it expired, or was released or deleted)"
                    .to_owned(),
            ),
            Verdict::Lost => Extension::Lost(format!(
                "{no} of {} nodes do not hold this lease's token, so no majority can",
                self.nodes.len()
            )),
            Verdict::Unknown => Extension::Unknown(failures),
        };
        if let Extension::Unknown(why) = &extension {
            self.last_failure = Some(why.clone());
        }
        extension
    }

    /// Releases the lease `token` on every node (compare-and-delete).
    pub fn release(&mut self, token: &str) -> Released {
        let deadline = clock::now() + self.timeout;
        let Lock { keys, nodes, .. } = self;
        let keys_released = keys.released.as_str();
        let replies = node::on_all(nodes, |_, node| {
            let keys = [keys.lock.as_str()];
            Some(node.eval::<i64>(
                &scripts::RELEASE,
                &keys,
                &[token, keys_released, "1"],
                deadline,
            ))
        });
        let (deleted, _, failures) = tally(&self.nodes, replies);
        Released { deleted, failures }
    }

    /// Breaks the lock: ends every hold of it on every node, whatever the token (`--force`).
    /// Returns how many holds each node ended, or its failure, node by node.
    pub fn break_lock(&mut self) -> Vec<(String, Result<i64, NodeError>)> {
        let deadline = clock::now() + self.timeout;
        let slots = self.mode.limit().unwrap_or(0).to_string();
        let Lock { keys, nodes, .. } = self;
        let channel = keys.released.as_str();
        let replies = node::on_all(nodes, |_, node| {
            let keys = [keys.lock.as_str()];
            Some(node.eval::<i64>(&scripts::BREAK, &keys, &[channel, &slots], deadline))
        });
        self.nodes
            .iter()
            .zip(replies)
            .map(|(node, reply)| (node.name().to_owned(), reply.expect("no node is skipped")))
            .collect()
    }

    /// Reads the lock's state on every node; `token`, if given, is recognised as the caller's.
    /// [`LeaseError::Unreachable`] when fewer than a majority answered.
    pub fn status(&mut self, token: Option<&str>) -> Result<LockStatus, LeaseError> {
        self.status_but(token, &[])
    }

    /// [`status`](Self::status), with the nodes in `failed` not asked: each counts as failing
    /// as it did. `list` reads many locks, and a node that did not answer its scan would
    /// otherwise cost a whole timeout for every one of them.
    fn status_but(
        &mut self,
        token: Option<&str>,
        failed: &[(usize, NodeError)],
    ) -> Result<LockStatus, LeaseError> {
        let deadline = clock::now() + self.timeout;
        let token = token.unwrap_or("");
        let slots = self.mode.limit().unwrap_or(0).to_string();
        let Lock { keys, nodes, .. } = self;
        let replies = node::on_all(nodes, |i, node| {
            if let Some((_, e)) = failed.iter().find(|(f, _)| *f == i) {
                return Some(Err(e.clone()));
            }
            let keys = [keys.lock.as_str(), &keys.fence];
            Some(
                node.eval::<Value>(&scripts::STATUS, &keys, &[token, &slots], deadline)
                    .and_then(reply::status),
            )
        });
        let views: Vec<(String, Result<NodeView, NodeError>)> = self
            .nodes
            .iter()
            .zip(replies)
            .map(|(node, reply)| (node.name().to_owned(), reply.expect("no node is skipped")))
            .collect();
        let majority = quorum::majority(views.len());
        let answered: Vec<&NodeView> = views.iter().filter_map(|(_, v)| v.as_ref().ok()).collect();
        if answered.len() < majority {
            let failures: Vec<(usize, NodeError)> = views
                .iter()
                .enumerate()
                .filter_map(|(i, (_, v))| v.clone().err().map(|e| (i, e)))
                .collect();
            return Err(LeaseError::Unreachable(
                self.unreachable(&failures, answered.len()),
            ));
        }
        let longest = answered.iter().copied().max_by_key(|v| v.waiting);
        Ok(LockStatus {
            occupants: quorum::occupants(views.len(), &answered),
            limit: quorum::most_granted(answered.iter().filter_map(|v| v.limit)),
            exclusive_waiting: answered.iter().any(|v| v.exclusive_waiting),
            fence: answered.iter().filter_map(|v| v.fence).max(),
            waiting: longest.map_or(0, |v| v.waiting),
            next: longest.map(|v| v.next.clone()).unwrap_or_default(),
            nodes: views,
        })
    }

    /// Phase two of a Redlock grant: raise the granting nodes' counters to `fence`. Returns how many
    /// confirmed while the lock still held our token.
    fn commit_fence(&mut self, token: &str, fence: u64, granted: &[(usize, u64)]) -> usize {
        let deadline = clock::now() + self.timeout;
        let fence = fence.to_string();
        let Lock { keys, nodes, .. } = self;
        let replies = node::on_all(nodes, |i, node| {
            granted.iter().any(|&(g, _)| g == i).then(|| {
                let keys = [keys.lock.as_str(), &keys.fence];
                node.eval::<i64>(&scripts::COMMIT_FENCE, &keys, &[token, &fence], deadline)
            })
        });
        tally(&self.nodes, replies).0
    }

    /// Deletes `token` wherever it may have landed: every node but those that answered "busy".
    fn undo(&mut self, token: &str, busy: &[(usize, i64)]) {
        let deadline = clock::now() + self.timeout;
        let Lock { keys, nodes, .. } = self;
        let keys_released = keys.released.as_str();
        node::on_all(nodes, |i, node| {
            (!busy.iter().any(|&(b, _)| b == i)).then(|| {
                let keys = [keys.lock.as_str()];
                // Best effort: a node that does not answer now lets the lease expire by its TTL.
                // Nothing anyone waited for was freed: announcing it would wake waiters for nothing.
                let _ = node.eval::<i64>(
                    &scripts::RELEASE,
                    &keys,
                    &[token, keys_released, "0"],
                    deadline,
                );
            })
        });
    }

    /// Fails if two listed nodes are the same server behind different addresses: such a pair would
    /// fake a majority. `ids` holds the `run_id` each node reported, by node index.
    fn check_independent(&self, ids: &[(usize, String)]) -> Result<(), LeaseError> {
        for (k, (a, x)) in ids.iter().enumerate() {
            if let Some((b, _)) = ids[k + 1..].iter().find(|(_, y)| y == x) {
                return Err(LeaseError::Usage(format!(
                    "Redis nodes {} and {} are the same server (run_id {x}): each node must be an \
                     independent master",
                    self.nodes[*a].name(),
                    self.nodes[*b].name()
                )));
            }
        }
        Ok(())
    }

    /// The message for a lock in use with another limit than ours (`held`, from a node: a limit,
    /// or `exclusive` / `shared` for a lock used without one).
    fn mismatch(&self, held: &str) -> String {
        let key = &self.key;
        let fix = "every user of a lock must give the same --limit";
        match (self.mode, held) {
            (Mode::Limit(n), "exclusive" | "shared") => format!(
                "lock '{key}' is held as a{} lock, not one limited to {n} holders: {fix}",
                if held == "shared" {
                    " shared"
                } else {
                    "n exclusive"
                }
            ),
            (Mode::Limit(n), m) => {
                format!("lock '{key}' is limited to {m} holders, not {n}: {fix}")
            }
            (mode, m) => format!(
                "lock '{key}' is limited to {m} holders, so it cannot be taken {}: {fix} (--limit {m})",
                if mode == Mode::Shared {
                    "--shared"
                } else {
                    "without --limit"
                }
            ),
        }
    }

    /// The message for an acquisition that too few nodes answered.
    fn unreachable(&self, failures: &[(usize, NodeError)], answered: usize) -> String {
        let list = failures
            .iter()
            .map(|(i, e)| format!("{}: {e}", self.nodes[*i].name()))
            .collect::<Vec<_>>()
            .join("; ");
        let answered_no = |e: &NodeError| {
            !matches!(
                e,
                NodeError::TimedOut(_) | NodeError::Refused | NodeError::Io(_)
            )
        };
        if self.nodes.len() == 1 && failures.iter().all(|(_, e)| answered_no(e)) {
            // It answered, so "cannot reach" would send the reader to the network for nothing.
            format!("Redis refused lock '{}': {list}", self.key)
        } else if self.nodes.len() == 1 {
            format!("cannot reach Redis for lock '{}': {list}", self.key)
        } else {
            format!(
                "cannot reach a majority of Redis nodes for lock '{}' ({answered} of {} answered, {} needed): {list}",
                self.key,
                self.nodes.len(),
                quorum::majority(self.nodes.len())
            )
        }
    }
}

/// One node's answer to an acquire request, with its `run_id` if asked for.
type AcquireReply = Result<(reply::Acquire, Option<String>), NodeError>;

/// What the nodes answered to one acquire request, node by node (by index).
#[derive(Default)]
struct Answers {
    /// The nodes that granted it: fence and slot.
    granted: Vec<(usize, u64, u32)>,
    /// The nodes that did not, with the holder's remaining TTL in ms (-1 when unknown).
    busy: Vec<(usize, i64)>,
    /// The nodes that gave no answer, and why.
    failures: Vec<(usize, NodeError)>,
    /// The servers' `run_id`s, in Redlock mode.
    ids: Vec<(usize, String)>,
    /// What another client's limit is, if a node said the lock is used with another one.
    mismatch: Option<String>,
    /// The tickets the nodes gave the caller in their queues.
    tickets: Vec<u64>,
}

impl Answers {
    fn of(replies: Vec<Option<AcquireReply>>) -> Answers {
        let mut answers = Answers::default();
        for (i, reply) in replies.into_iter().enumerate() {
            match reply.expect("no node is skipped") {
                Ok((reply, id)) => {
                    answers.ids.extend(id.map(|id| (i, id)));
                    match reply {
                        reply::Acquire::Granted(fence, slot) => {
                            answers.granted.push((i, fence, slot));
                        }
                        reply::Acquire::Busy(pttl, ticket) => {
                            answers.busy.push((i, pttl));
                            answers.tickets.extend(ticket);
                        }
                        reply::Acquire::Mismatch(held) => {
                            answers.busy.push((i, -1));
                            answers.mismatch = Some(held);
                        }
                    }
                }
                Err(e) => answers.failures.push((i, e)),
            }
        }
        answers
    }
}

/// The nodes where a granted waiter may still be queued: the granting nodes took it out of their
/// queues, but the others (those that refused, and those whose answer was lost) would keep it
/// first in line until its heartbeat lapses, holding everyone else up meanwhile. A node that timed
/// out is left to the heartbeat: asking it again would hold the command back by another timeout.
fn still_queued(busy: &[(usize, i64)], failures: &[(usize, NodeError)]) -> Vec<usize> {
    busy.iter()
        .map(|&(i, _)| i)
        .chain(
            failures
                .iter()
                .filter(|(_, e)| !matches!(e, NodeError::TimedOut(_)))
                .map(|&(i, _)| i),
        )
        .collect()
}

/// Counts a round's replies: (nodes that said 1, nodes that said 0, the failures as one message).
fn tally(nodes: &[Node], replies: Vec<Option<Result<i64, NodeError>>>) -> (usize, usize, String) {
    let (mut yes, mut no, mut failures) = (0, 0, Vec::new());
    for (node, reply) in nodes.iter().zip(replies) {
        match reply {
            Some(Ok(1)) => yes += 1,
            Some(Ok(_)) => no += 1,
            Some(Err(e)) => failures.push(format!("{}: {e}", node.name())),
            None => {}
        }
    }
    (yes, no, failures.join("; "))
}

/// A fresh lease token: 128 bits from the OS's secure random source, as hex.
fn new_token() -> Result<String, LeaseError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| LeaseError::NoRandom(e.to_string()))?;
    Ok(bytes.iter().fold(String::with_capacity(32), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// How long a waiter stays in a lock's queue after its last attempt, measured by the node: three
/// times the one-second backstop between a waiter's attempts, so a living waiter is never dropped,
/// and a dead one (killed, or paused) holds the queue up at most this long.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// How long an exclusive waiter's mark lasts at least (the lease TTL if longer): longer than the
/// waiter's one-second backstop between attempts, so that a living waiter keeps it up.
const INTENT_AT_LEAST: Duration = Duration::from_secs(3);

/// `d` in whole milliseconds, as Redis takes it.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("rlock:", "nightly");
        assert_eq!(k.lock, "rlock:{nightly}");
        assert_eq!(k.fence, "rlock:{nightly}:fence");
    }

    #[test]
    fn tokens_are_128_random_bits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_limit_mismatch_names_both_values_and_the_fix() {
        let lock = |mode| {
            let urls = ["redis://127.0.0.1:7001".to_owned()];
            Lock::new(
                "nas",
                "rlock:",
                mode,
                &urls,
                Duration::from_secs(1),
                &Tls::default(),
            )
            .unwrap()
        };
        assert_eq!(
            lock(Mode::Limit(4)).mismatch("3"),
            "lock 'nas' is limited to 3 holders, not 4: every user of a lock must give the same --limit"
        );
        assert_eq!(
            lock(Mode::Limit(4)).mismatch("shared"),
            "lock 'nas' is held as a shared lock, not one limited to 4 holders: every user of a \
             lock must give the same --limit"
        );
        assert!(
            lock(Mode::Exclusive)
                .mismatch("3")
                .ends_with("cannot be taken without --limit: every user of a lock must give the same --limit (--limit 3)")
        );
        assert!(
            lock(Mode::Shared)
                .mismatch("3")
                .contains("cannot be taken --shared")
        );
    }

    #[test]
    fn the_same_address_twice_is_refused() {
        let urls = [
            "redis://127.0.0.1:7001".to_owned(),
            "redis://127.0.0.1:7001/2".to_owned(),
        ];
        let err = Lock::new(
            "k",
            "rlock:",
            Mode::Exclusive,
            &urls,
            Duration::from_secs(1),
            &Tls::default(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(&err, LeaseError::Usage(why) if why.contains("listed twice")),
            "{err}"
        );
    }
}
