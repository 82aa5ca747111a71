//! The nemesis: a seeded scheduler that breaks things every few seconds, Jepsen-style.
//!
//! Three threads inject faults side by side: one against the nodes and the network (pauses of a
//! minority and, briefly, a majority; crash-restarts without data; wall-clock jumps; proxy delay,
//! partition and reset), one against the clients (an rlock process stopped alone while its command
//! runs on unsupervised; rlock and its command stopped together for longer than the TTL; rlock
//! started under a slow or fast clock), and one against the rlock process itself (`kill -9` of an
//! rlock whose command is mid-critical-section; rlock started with `-v` and a stderr that is a full
//! pipe nobody reads), which `FAULTS_RLOCK=0` leaves out. Each thread deals its kinds from a
//! shuffled deck, so that a short run sees every kind, and heals each fault before the next: at
//! most one fault of each thread is in force at a time. Everything is logged, with times on the
//! shared timeline, for the report and for the checkers (a crash or a forward clock jump ends a
//! lease early on that node; a killed rlock's group must be dead before its lease ends).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::clock::{self, Nanos};
use crate::monitor::Monitor;
use crate::nodes::Node;
use crate::procs::{self, Member};
use crate::proxy::{Mode, Proxy};
use crate::rng::Rng;
use crate::workload::{ClientClock, Clients, Resource, lock};

/// How long the nemesis watches a killed rlock's group before it kills what is left itself.
const KILL_WATCH: Duration = Duration::from_secs(10);
/// How often it looks at the group's members meanwhile.
const KILL_POLL: Duration = Duration::from_millis(2);

/// The kinds of fault, in the order the report lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    PauseMinority,
    PauseMajority,
    CrashRestart,
    ClockJump,
    ProxyDelay,
    ProxyPartition,
    ProxyReset,
    PauseRlock,
    PauseGroup,
    ClientClockSlow,
    ClientClockFast,
    KillRlock,
    StderrBlocked,
}

impl Fault {
    const NODE: [Fault; 7] = [
        Fault::PauseMinority,
        Fault::PauseMajority,
        Fault::CrashRestart,
        Fault::ClockJump,
        Fault::ProxyDelay,
        Fault::ProxyPartition,
        Fault::ProxyReset,
    ];
    const CLIENT: [Fault; 4] = [
        Fault::PauseRlock,
        Fault::PauseGroup,
        Fault::ClientClockSlow,
        Fault::ClientClockFast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::PauseMinority => "pause minority",
            Fault::PauseMajority => "pause majority",
            Fault::CrashRestart => "crash-restart",
            Fault::ClockJump => "node clock jump",
            Fault::ProxyDelay => "delay",
            Fault::ProxyPartition => "partition",
            Fault::ProxyReset => "reset",
            Fault::PauseRlock => "pause rlock",
            Fault::PauseGroup => "pause rlock+cmd",
            Fault::ClientClockSlow => "client clock x0.5",
            Fault::ClientClockFast => "client clock x2",
            Fault::KillRlock => "kill -9 rlock",
            Fault::StderrBlocked => "rlock's stderr blocked",
        }
    }
}

/// Something that ends a lease early on one node.
#[derive(Clone, Copy, Debug)]
pub enum NodeEvent {
    /// The node restarted empty.
    Crash { node: usize, at: Nanos },
    /// The node's wall clock moved by `by_ms` (forward if positive).
    ClockJump { node: usize, at: Nanos, by_ms: i64 },
}

/// One rlock killed with `SIGKILL`, and how its command's process group (the command and every
/// descendant that stayed in it) ended.
#[derive(Clone, Debug)]
pub struct Kill {
    /// The run (acquisition id).
    pub id: u64,
    /// When `SIGKILL` was sent.
    pub at: Nanos,
    /// The group's live processes just before the kill.
    pub members: usize,
    /// The last time a member was seen alive.
    pub last_alive: Nanos,
    /// The last time the command itself (the group's leader) was seen alive.
    pub leader_last_alive: Nanos,
    /// The first time every member was seen gone; `None`: some were alive after [`KILL_WATCH`]
    /// (then the nemesis killed them).
    pub dead_by: Option<Nanos>,
}

/// Everything the nemesis did.
#[derive(Default, Debug)]
pub struct FaultLog {
    /// Each injected fault, with what it hit.
    pub injected: Vec<(Fault, Nanos, String)>,
    pub node_events: Vec<NodeEvent>,
    pub kills: Vec<Kill>,
    /// Faults that could not be injected, and why.
    pub skipped: Vec<(Fault, String)>,
}

/// What the nemesis acts on.
pub struct Targets {
    pub nodes: Arc<Vec<Mutex<Node>>>,
    pub proxies: Arc<Vec<Proxy>>,
    pub monitor: Arc<Monitor>,
    pub clients: Arc<Clients>,
    pub ttl: Duration,
    /// Whether libfaketime is installed (else the client clock faults are skipped).
    pub faketime: bool,
    /// Scales node-fault durations and the gaps between faults (short runs use less than 1).
    pub pace: f64,
    /// The rlock-process faults to deal (kill -9, blocked stderr): a third thread if any.
    pub rlock_faults: Vec<Fault>,
}

/// The running nemesis.
pub struct Nemesis {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<FaultLog>>,
    threads: Vec<JoinHandle<()>>,
}

impl Nemesis {
    /// Starts the fault threads with streams of `seed`.
    pub fn start(targets: Targets, seed: u64) -> Nemesis {
        let (stop, log) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let targets = Arc::new(targets);
        let mut decks = vec![(Fault::NODE.to_vec(), 1), (Fault::CLIENT.to_vec(), 2)];
        if !targets.rlock_faults.is_empty() {
            decks.push((targets.rlock_faults.clone(), 3));
        }
        let threads = decks
            .into_iter()
            .map(|(kinds, stream)| {
                let mut worker = Worker {
                    targets: Arc::clone(&targets),
                    rng: Rng::new(seed, stream),
                    stop: Arc::clone(&stop),
                    log: Arc::clone(&log),
                };
                thread::Builder::new()
                    .name(format!("nemesis-{stream}"))
                    .spawn(move || worker.run(&kinds))
                    .expect("spawn a nemesis thread")
            })
            .collect();
        Nemesis { stop, log, threads }
    }

    /// Stops injecting, heals what is in force, and returns the log.
    pub fn finish(mut self) -> FaultLog {
        self.halt();
        std::mem::take(&mut *lock(&self.log))
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One fault thread.
struct Worker {
    targets: Arc<Targets>,
    rng: Rng,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<FaultLog>>,
}

impl Worker {
    fn run(&mut self, kinds: &[Fault]) {
        let mut deck = Vec::new();
        while !self.stopped() {
            if deck.is_empty() {
                deck.extend_from_slice(kinds);
                self.rng.shuffle(&mut deck);
            }
            let fault = deck.pop().expect("the deck was refilled");
            self.inject(fault);
            // A kill is over at once: a longer gap keeps kills from ending most leases early.
            let gap = if fault == Fault::KillRlock {
                self.paced(500, 2500)
            } else {
                self.paced(300, 1500)
            };
            self.hold(gap);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A duration in `lo..=hi` ms, scaled by the pace.
    fn paced(&mut self, lo: u64, hi: u64) -> Duration {
        self.rng.millis(lo, hi).mul_f64(self.targets.pace)
    }

    /// Sleeps `d`, or less if the nemesis is stopped meanwhile.
    fn hold(&self, d: Duration) {
        let until = clock::now() + clock::nanos(d);
        while !self.stopped() && clock::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn note(&self, fault: Fault, detail: String) {
        lock(&self.log).injected.push((fault, clock::now(), detail));
    }

    fn skip(&self, fault: Fault, why: &str) {
        lock(&self.log).skipped.push((fault, why.to_owned()));
    }

    fn event(&self, event: NodeEvent) {
        lock(&self.log).node_events.push(event);
    }

    /// Injects `fault`, holds it, and heals it.
    fn inject(&mut self, fault: Fault) {
        let t = Arc::clone(&self.targets);
        match fault {
            Fault::PauseMinority | Fault::PauseMajority => self.pause_nodes(fault),
            Fault::CrashRestart => {
                // In the middle of a queue (issue 18): a restart empty may cost order, never
                // safety. Node 0 half the time when `queue1`, which lives there alone, has one.
                let live = self.await_queue();
                let i = if live.contains(&Resource::Queue1) && self.rng.percent(50) {
                    0
                } else {
                    self.rng.choose(t.nodes.len(), 1)[0]
                };
                let at = clock::now();
                lock(&t.nodes[i]).crash_restart();
                self.event(NodeEvent::Crash { node: i, at });
                self.note(fault, format!("node {i}"));
            }
            Fault::ClockJump => self.jump_clock(),
            Fault::ProxyDelay | Fault::ProxyPartition | Fault::ProxyReset => self.disturb(fault),
            Fault::PauseRlock | Fault::PauseGroup => {
                let ttl_ms = u64::try_from(t.ttl.as_millis()).expect("small");
                // Longer than the TTL: the lease runs out while rlock cannot act.
                let d = self.rng.millis(ttl_ms + 200, 2 * ttl_ms);
                self.pause_client(fault, d);
            }
            Fault::ClientClockSlow | Fault::ClientClockFast => {
                if !t.faketime {
                    return self.skip(fault, "libfaketime is not installed");
                }
                let rate = if fault == Fault::ClientClockSlow {
                    ClientClock::Slow
                } else {
                    ClientClock::Fast
                };
                let d = self.paced(2000, 5000);
                *lock(&t.clients.clock) = Some(rate);
                self.note(fault, format!("rlock runs started within {d:?}"));
                self.hold(d);
                *lock(&t.clients.clock) = None;
            }
            Fault::KillRlock => self.kill_rlock(),
            Fault::StderrBlocked => {
                let d = self.paced(1000, 3000);
                t.clients.stderr_blocked.store(true, Ordering::SeqCst);
                self.note(fault, format!("rlock runs started within {d:?}"));
                self.hold(d);
                t.clients.stderr_blocked.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Waits up to 1.5 s (paced) until a waiter is in a queue lock's queue; returns the locks
    /// with one.
    fn await_queue(&mut self) -> Vec<Resource> {
        let until = clock::now() + clock::nanos(self.paced(1500, 1500));
        loop {
            let live = self.targets.clients.live_queues();
            if !live.is_empty() || self.stopped() || clock::now() > until {
                return live;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many nodes a minority fault hits: 1, or 1 or 2 of 5.
    fn minority(&mut self) -> usize {
        let n = self.targets.nodes.len();
        let most = u64::try_from(n - (n / 2 + 1)).expect("small");
        usize::try_from(self.rng.between(1, most)).expect("small")
    }

    /// `SIGSTOP` a minority of the nodes, or briefly a majority; then `SIGCONT`.
    fn pause_nodes(&mut self, fault: Fault) {
        let t = Arc::clone(&self.targets);
        let n = t.nodes.len();
        let (k, d) = if fault == Fault::PauseMajority {
            (n / 2 + 1, self.paced(500, 2500))
        } else {
            (self.minority(), self.paced(500, 3000))
        };
        let victims = self.rng.choose(n, k);
        for &i in &victims {
            // The last look at its keys: a paused node cannot be asked.
            t.monitor.sample_now(i);
            lock(&t.nodes[i]).pause();
        }
        self.note(fault, format!("nodes {victims:?} for {d:?}"));
        self.hold(d);
        for &i in &victims {
            lock(&t.nodes[i]).resume();
        }
    }

    /// Moves one node's wall clock by 10 to 40 s, forward or back, and later back to true time.
    fn jump_clock(&mut self) {
        let t = Arc::clone(&self.targets);
        let i = self.rng.choose(t.nodes.len(), 1)[0];
        let magnitude = i64::try_from(self.rng.between(10_000, 40_000)).expect("small");
        let by_ms = if self.rng.percent(50) {
            magnitude
        } else {
            -magnitude
        };
        let d = self.paced(1000, 4000);
        for (offset, by_ms) in [(by_ms, by_ms), (0, -by_ms)] {
            let node = lock(&t.nodes[i]);
            self.event(NodeEvent::ClockJump {
                node: i,
                at: clock::now(),
                by_ms,
            });
            node.set_clock_offset(offset);
            drop(node);
            if offset != 0 {
                self.note(
                    Fault::ClockJump,
                    format!("node {i} by {by_ms} ms for {d:?}"),
                );
                self.hold(d);
            }
        }
    }

    /// Delays, partitions (a minority, or now and then a majority) or resets nodes' proxies.
    fn disturb(&mut self, fault: Fault) {
        let t = Arc::clone(&self.targets);
        let n = t.nodes.len();
        let k = match fault {
            Fault::ProxyPartition if self.rng.percent(20) => n / 2 + 1,
            Fault::ProxyPartition => self.minority(),
            _ => 1,
        };
        let victims = self.rng.choose(n, k);
        let (mode, d) = match fault {
            Fault::ProxyDelay => (
                Mode::Delay(self.rng.millis(20, 400)),
                self.paced(1000, 3000),
            ),
            Fault::ProxyPartition => (Mode::Blackhole, self.paced(1000, 3000)),
            _ => (Mode::Reset, self.paced(200, 1500)),
        };
        for &i in &victims {
            t.proxies[i].set(mode);
        }
        self.note(fault, format!("nodes {victims:?} {mode:?} for {d:?}"));
        self.hold(d);
        for &i in &victims {
            t.proxies[i].set(Mode::Pass);
        }
    }

    /// Stops a running rlock whose command has started (and, for [`Fault::PauseGroup`], the
    /// command's group too) for `d`, then resumes the command first and rlock last.
    fn pause_client(&mut self, fault: Fault, d: Duration) {
        let t = Arc::clone(&self.targets);
        let until = clock::now() + clock::nanos(Duration::from_secs(3));
        let victim = loop {
            let mut active = lock(&t.clients.active);
            let mut running: Vec<_> = active
                .iter_mut()
                .filter(|(_, a)| a.child.is_some() && a.killed.is_none())
                .collect();
            running.sort_by_key(|(id, _)| **id);
            if !running.is_empty() {
                let pick = usize::try_from(self.rng.below(running.len() as u64)).expect("small");
                let (id, a) = running.swap_remove(pick);
                let (rlock, group) = (Pid::from_raw(a.rlock_pid), a.child.map(Pid::from_raw));
                let _ = signal::kill(rlock, Signal::SIGSTOP);
                if let (Fault::PauseGroup, Some(group)) = (fault, group) {
                    let _ = signal::killpg(group, Signal::SIGSTOP);
                }
                a.paused = true;
                break Some((*id, rlock, group));
            }
            drop(active);
            if self.stopped() || clock::now() > until {
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let Some((id, rlock, group)) = victim else {
            return self.skip(fault, "no rlock had started its command");
        };
        self.note(fault, format!("run {id} for {d:?}"));
        self.hold(d);
        // rlock cannot exit while stopped, so it is still registered and its pid still its own.
        let _active = lock(&t.clients.active);
        if let (Fault::PauseGroup, Some(group)) = (fault, group) {
            let _ = signal::killpg(group, Signal::SIGCONT);
        }
        let _ = signal::kill(rlock, Signal::SIGCONT);
    }
}

impl Worker {
    /// Kills (`SIGKILL`, rlock alone, not its group) a running rlock with an honest clock whose
    /// command is mid-critical-section (or, failing that for 1.5 s, any whose command runs), then
    /// watches the command's group until every member is gone, and logs a [`Kill`].
    fn kill_rlock(&mut self) {
        let t = Arc::clone(&self.targets);
        let started = clock::now();
        let victim = loop {
            let mut active = lock(&t.clients.active);
            let now = clock::now();
            let settled = now > started + clock::nanos(Duration::from_millis(1500));
            let mut running: Vec<_> = active
                .iter_mut()
                .filter(|(_, a)| {
                    a.child.is_some()
                        && !a.paused
                        && a.killed.is_none()
                        && a.clock == ClientClock::Honest
                })
                .filter(|(_, a)| {
                    // At least 100 ms of the critical section's sleep left.
                    settled
                        || a.busy_until
                            .is_some_and(|b| b > now + clock::nanos(Duration::from_millis(100)))
                })
                .collect();
            running.sort_by_key(|(id, _)| **id);
            if !running.is_empty() {
                let pick = usize::try_from(self.rng.below(running.len() as u64)).expect("small");
                let (id, a) = running.swap_remove(pick);
                let group = a.child.expect("filtered on a started command");
                let members = procs::group_members(group);
                if !members.is_empty() {
                    // Still registered, so not reaped: the pid is this rlock's.
                    let _ = signal::kill(Pid::from_raw(a.rlock_pid), Signal::SIGKILL);
                    let at = clock::now();
                    a.killed = Some(at);
                    break Some((*id, group, members, at));
                }
            }
            drop(active);
            if self.stopped() || clock::now() > started + clock::nanos(Duration::from_secs(3)) {
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let Some((id, group, members, at)) = victim else {
            return self.skip(Fault::KillRlock, "no rlock had started its command");
        };
        self.note(
            Fault::KillRlock,
            format!("run {id} (group {group} of {} processes)", members.len()),
        );
        let kill = watch_group(id, group, members, at);
        lock(&self.log).kills.push(kill);
    }
}

/// Watches the members of a killed rlock's group until all are gone, or for [`KILL_WATCH`], after
/// which it kills the rest itself.
fn watch_group(id: u64, group: i32, mut members: Vec<Member>, at: Nanos) -> Kill {
    let mut kill = Kill {
        id,
        at,
        members: members.len(),
        last_alive: at,
        leader_last_alive: at,
        dead_by: None,
    };
    loop {
        let now = clock::now();
        members.retain(|m| m.alive(group));
        if members.is_empty() {
            // A member may have forked since the first look: look at the whole group once more.
            members = procs::group_members(group);
            if members.is_empty() {
                kill.dead_by = Some(now);
                return kill;
            }
        }
        kill.last_alive = now;
        if members.iter().any(|m| m.pid == group) {
            kill.leader_last_alive = now;
        }
        if now > at + clock::nanos(KILL_WATCH) {
            let _ = signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
            return kill;
        }
        thread::sleep(KILL_POLL);
    }
}
