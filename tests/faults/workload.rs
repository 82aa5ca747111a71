//! The clients: K loops per resource, each running `rlock` over the proxies around the critical
//! section in `resource.py`, again and again, and recording what happened.
//!
//! Every run is a real `rlock` process in a process group of its own (so that the nemesis can
//! stop it alone, or together with its command's group), with a seeded random sleep inside the
//! critical section: mostly short, sometimes up to twice the TTL, so that leases must be extended
//! and are lost when the faults prevent that. While a run lasts, its client loop watches the
//! command's pid (written first thing by the critical section) to bound when it died: the
//! stop-before-expiry checker compares that with the lease's end on the servers.
//!
//! The command has the shape of real cron jobs, a shell with a background job and a pipeline:
//! `sh -c 'sleep S & sleep S | cat & exec python3 resource.py ...'`, with S longer than the
//! critical section. So every run leaves descendants behind its leader that rlock must stop (or,
//! should rlock be killed, its guardian), and the leader is still the process group's leader.
//!
//! Besides the two exclusive locks of Jepsen's `lock-set` (fenced and unfenced), two workloads run
//! the lock modes: `limited`, whose loops (one more than the others) run `rlock --limit 2` around
//! a fenced read-modify-write of their slot's own set (`RLOCK_SLOT`), and `shared`, whose loops run
//! a `--shared` reader or, one run in four, an exclusive writer, on one key and one set.
//!
//! The queued workload (issue 18) runs cohorts instead of loops: on the lock `queue` (every node)
//! and on `queue1` (node 0 alone, a queue that one node decides), a driver spawns
//! [`COHORT`] runs one after another, each only once the previous one is seen in the lock's queue
//! on a node (or holds the lock), so their arrival order is known; the first holds the lock long
//! enough for the others to queue behind it. Now and then one queued waiter is interrupted
//! (`SIGINT`): it gives up and must leave the queue. The next cohort starts when all have exited.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::clock::{self, Nanos};
use crate::monitor::Watch;
use crate::procs::{self, FullPipe};
use crate::rng::Rng;
use crate::support::{process_gone, without_rlock_env};

/// How often a client loop looks at its rlock and its command.
const POLL: Duration = Duration::from_millis(5);

/// The limited workload's `--limit`: at most this many holders inside at once.
pub const LIMIT: usize = 2;

/// Runs per cohort of the queued workload: one holder and the waiters queued behind it.
pub const COHORT: usize = 5;

/// How long a cohort's driver looks for a new run in the queue (or holding the lock) before it
/// spawns the next one anyway, its arrival then unknown (a node paused or cut off).
const ARRIVAL: Duration = Duration::from_secs(1);

/// The resources, each behind its own lock key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Checks `RLOCK_FENCE` on every read and write.
    Fenced,
    /// Trusts the lease alone.
    Unfenced,
    /// `--limit` [`LIMIT`]: one fenced set per slot.
    Limited,
    /// `--shared` readers and exclusive writers of one fenced set.
    Shared,
    /// The queued workload over every node: cohorts of waiters, a fenced set.
    Queue,
    /// The queued workload on node 0 alone: a queue that one node decides.
    Queue1,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Fenced,
        Resource::Unfenced,
        Resource::Limited,
        Resource::Shared,
        Resource::Queue,
        Resource::Queue1,
    ];

    /// The queued workload's locks.
    pub const QUEUES: [Resource; 2] = [Resource::Queue, Resource::Queue1];

    /// The name: the lock key, `resource.py`'s mode and the resource directory.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Fenced => "fenced",
            Resource::Unfenced => "unfenced",
            Resource::Limited => "limited",
            Resource::Shared => "shared",
            Resource::Queue => "queue",
            Resource::Queue1 => "queue1",
        }
    }

    /// Whether this lock lives on node `node`: every node, but node 0 alone for `queue1`.
    pub fn on_node(self, node: usize) -> bool {
        self != Resource::Queue1 || node == 0
    }

    /// The nodes (indices) this lock lives on, of `n`.
    pub fn nodes(self, n: usize) -> std::ops::Range<usize> {
        if self == Resource::Queue1 { 0..1 } else { 0..n }
    }

    /// The Redis key of the lock (of its exclusive holder).
    pub fn redis_key(self) -> String {
        format!("rlock:{{{}}}", self.name())
    }

    /// The keys that hold this lock's holders' tokens, for the monitor.
    pub fn watches(self) -> Vec<Watch> {
        match self {
            Resource::Fenced | Resource::Unfenced | Resource::Queue | Resource::Queue1 => {
                vec![Watch::Token(self.redis_key())]
            }
            Resource::Limited => (0..LIMIT)
                .map(|i| Watch::Token(format!("{}:slot:{i}", self.redis_key())))
                .collect(),
            Resource::Shared => vec![
                Watch::Token(self.redis_key()),
                Watch::Readers(format!("{}:readers", self.redis_key())),
            ],
        }
    }

    /// Client loops on this lock, given the loops per exclusive lock: one more for the lock modes,
    /// so that a limit of 2 is contended and shared holders meet.
    fn loops(self, per_lock: usize) -> usize {
        match self {
            Resource::Fenced | Resource::Unfenced => per_lock,
            Resource::Limited | Resource::Shared => per_lock + 1,
            // One cohort driver each, not loops.
            Resource::Queue | Resource::Queue1 => 0,
        }
    }
}

/// How a run asks for its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No flag: an exclusive holder.
    Exclusive,
    /// `--shared`.
    Shared,
    /// `--limit` [`LIMIT`].
    Limit,
}

impl Mode {
    /// `RLOCK_MODE` as rlock should set it.
    pub fn env(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
            Mode::Limit => "limit",
        }
    }
}

/// The run's phases: the first without faults, to show that the workload itself is sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Calm,
    Faults,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Calm => "no-fault",
            Phase::Faults => "faults",
        })
    }
}

/// The clock an rlock process runs with (libfaketime, set by the nemesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClock {
    Honest,
    /// `FAKETIME="+0 x0.5"`.
    Slow,
    /// `FAKETIME="+0 x2"`.
    Fast,
}

/// How the clients run rlock.
pub struct Settings {
    /// The rlock binary under test.
    pub rlock: PathBuf,
    /// The proxies' URLs, one per node.
    pub urls: Vec<String>,
    /// The nodes' own ports, where a cohort's driver looks for its waiters in the queue.
    pub ports: Vec<u16>,
    pub ttl: Duration,
    /// `--wait`: long enough that contention alone rarely makes a client give up.
    pub wait: Duration,
    /// The queued workload's `--wait`: shorter, so that a queue held up by faults times out.
    pub queue_wait: Duration,
    /// libfaketime, if installed.
    pub faketime: Option<PathBuf>,
    /// Where records and resources live.
    pub dir: PathBuf,
}

/// One step of a critical section on the resource.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub at: Nanos,
    /// False: refused as stale (fenced resource only).
    pub accepted: bool,
}

/// What a critical section reported about its grant.
#[derive(Clone, Debug)]
pub struct Grant {
    pub fence: u64,
    pub token: String,
    pub pid: i32,
    /// When the critical section started.
    pub start: Nanos,
    /// `RLOCK_MODE`, `RLOCK_SLOT` and `RLOCK_LIMIT` as the command found them (`-`: unset).
    pub env_mode: String,
    pub env_slot: String,
    pub env_limit: String,
}

impl Grant {
    /// The slot the command was given, if `RLOCK_SLOT` was a number.
    pub fn slot(&self) -> Option<usize> {
        self.env_slot.parse().ok()
    }
}

/// One rlock run, as the checkers see it.
#[derive(Clone, Debug)]
pub struct Acquisition {
    pub id: u64,
    pub resource: Resource,
    /// How it asked for the lock.
    pub mode: Mode,
    pub phase: Phase,
    /// The element this run adds to the set (its id).
    pub element: u64,
    pub spawned: Nanos,
    /// When the client loop saw rlock exit.
    pub exited: Nanos,
    /// rlock's exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The client loop killed it for running far too long.
    pub harness_killed: bool,
    pub stderr: String,
    /// `None`: the command never started (busy, unreachable).
    pub grant: Option<Grant>,
    pub read: Option<Step>,
    pub write: Option<Step>,
    /// The critical section's last recorded step.
    pub last_step: Option<Nanos>,
    /// The last time the command was seen alive, and the first time it was seen gone.
    pub last_alive: Nanos,
    pub death: Option<Nanos>,
    pub clock: ClientClock,
    /// The nemesis stopped this rlock (alone or with its command) during the run.
    pub paused: bool,
    /// The critical section's planned sleep.
    pub sleep: Duration,
    /// rlock ran with `-v` and a stderr that was a full pipe nobody read.
    pub stderr_blocked: bool,
    /// When the nemesis killed this rlock with `SIGKILL` (see `nemesis::Kill` for what followed).
    pub killed: Option<Nanos>,
    /// Its `--wait`.
    pub wait: Duration,
    /// When the harness ended its wait with `SIGTERM` at the phase's end.
    pub terminated: Option<Nanos>,
    /// Its place in a cohort of the queued workload.
    pub cohort: Option<Cohort>,
}

/// A run's place in a cohort of the queued workload.
#[derive(Clone, Copy, Debug)]
pub struct Cohort {
    /// The cohort's number (per lock and phase).
    pub number: u64,
    /// Its place in the spawn order, which is the arrival order for runs with an `arrival`.
    pub place: usize,
    /// When its driver saw it in the queue (`queued`) or holding the lock; `None`: not within
    /// [`ARRIVAL`], so its arrival order is unknown.
    pub arrival: Option<Nanos>,
    pub queued: bool,
    /// When its driver interrupted it (`SIGINT`) while it waited: it gave up.
    pub interrupted: Option<Nanos>,
    /// Its rlock pid was still listed in the lock's queue on a node once the whole cohort had
    /// exited: it did not leave the queue (a node it could not reach keeps it until its
    /// heartbeat expires).
    pub trace: bool,
}

impl Acquisition {
    /// rlock exited 124 saying that the lease was lost.
    pub fn lease_lost(&self) -> bool {
        self.code == Some(124) && self.stderr.contains("rlock: lost lock")
    }

    /// The add was written: acknowledged to the client.
    pub fn acked(&self) -> bool {
        self.write.is_some_and(|w| w.accepted)
    }

    /// The latest moment the command is known to have been alive.
    pub fn alive_until(&self) -> Nanos {
        self.last_alive.max(self.last_step.unwrap_or(0))
    }

    /// An upper bound on when the command died: first seen gone, or rlock's exit (rlock exits
    /// only after its command's whole group is gone).
    pub fn dead_by(&self) -> Nanos {
        self.death.map_or(self.exited, |d| d.min(self.exited))
    }
}

/// A running rlock, as the nemesis sees it.
pub struct Active {
    pub rlock_pid: i32,
    /// The command's pid (= its process group), once it has started.
    pub child: Option<i32>,
    /// When the critical section's sleep should end, once the command has started.
    pub busy_until: Option<Nanos>,
    pub clock: ClientClock,
    pub paused: bool,
    /// When the nemesis killed it: it is not to be paused, nor killed again.
    pub killed: Option<Nanos>,
    /// The queued workload's lock whose queue its driver saw it in (it waits there until its
    /// command starts).
    pub queued: Option<Resource>,
}

impl Clients {
    /// The queue locks that have a waiter in their queue now (as their drivers saw).
    pub fn live_queues(&self) -> Vec<Resource> {
        let mut live: Vec<Resource> = lock(&self.active)
            .values()
            .filter(|a| a.child.is_none())
            .filter_map(|a| a.queued)
            .collect();
        live.sort_unstable();
        live.dedup();
        live
    }
}

/// What the client loops and the nemesis share.
#[derive(Default)]
pub struct Clients {
    /// Running rlocks by acquisition id. A client loop reaps its rlock only while holding this
    /// lock, so the nemesis never signals a reaped (and possibly reused) pid.
    pub active: Mutex<HashMap<u64, Active>>,
    /// The clock new rlock processes get.
    pub clock: Mutex<Option<ClientClock>>,
    /// New rlock processes get `-v` and a full pipe as stderr.
    pub stderr_blocked: AtomicBool,
    next_id: AtomicU64,
    /// The phase is over: finish the current run and stop.
    stop: AtomicBool,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Clients {
    /// Runs `per_resource` client loops on each exclusive lock (one more on the lock modes') for
    /// `duration`, then lets every loop finish its current run, and returns all runs.
    pub fn run_phase(
        self: &Arc<Self>,
        settings: &Arc<Settings>,
        phase: Phase,
        per_resource: usize,
        duration: Duration,
        rng: &mut Rng,
    ) -> Vec<Acquisition> {
        for resource in Resource::ALL {
            fs::create_dir_all(resource_dir(settings, phase, resource))
                .expect("create a resource directory");
        }
        fs::create_dir_all(settings.dir.join("records")).expect("create the records directory");
        self.stop.store(false, Ordering::SeqCst);
        let mut loops = Vec::new();
        for resource in Resource::ALL {
            for _ in 0..resource.loops(per_resource) {
                let (clients, settings) = (Arc::clone(self), Arc::clone(settings));
                let rng = Rng::new(rng.next_u64(), 0);
                loops.push(
                    thread::Builder::new()
                        .name(format!("client-{}", resource.name()))
                        .spawn(move || clients.client_loop(&settings, phase, resource, rng))
                        .expect("spawn a client loop"),
                );
            }
        }
        for resource in Resource::QUEUES {
            let (clients, settings) = (Arc::clone(self), Arc::clone(settings));
            let rng = Rng::new(rng.next_u64(), 0);
            loops.push(
                thread::Builder::new()
                    .name(format!("cohorts-{}", resource.name()))
                    .spawn(move || clients.cohorts(&settings, phase, resource, rng))
                    .expect("spawn a cohort driver"),
            );
        }
        let stopper = StopOnDrop(self);
        thread::sleep(duration); // the phase's length, not a synchronisation
        drop(stopper);
        // Join every loop before looking at any result, so that one loop's panic cannot leave the
        // others (and their rlock processes) running past the test.
        let joined: Vec<_> = loops.into_iter().map(thread::JoinHandle::join).collect();
        joined
            .into_iter()
            .flat_map(|l| l.expect("a client loop panicked"))
            .collect()
    }

    /// One client: rlock runs back to back until the phase ends.
    fn client_loop(
        &self,
        settings: &Settings,
        phase: Phase,
        resource: Resource,
        mut rng: Rng,
    ) -> Vec<Acquisition> {
        let mut done = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            let sleep = critical_sleep(&mut rng, settings.ttl);
            let mode = match resource {
                Resource::Fenced | Resource::Unfenced | Resource::Queue | Resource::Queue1 => {
                    Mode::Exclusive
                }
                Resource::Limited => Mode::Limit,
                Resource::Shared if rng.percent(25) => Mode::Exclusive,
                Resource::Shared => Mode::Shared,
            };
            done.push(self.run_once(settings, phase, resource, mode, sleep, None));
        }
        done
    }

    /// The queued workload on `resource`: cohorts of [`COHORT`] runs until the phase ends.
    fn cohorts(
        &self,
        settings: &Settings,
        phase: Phase,
        resource: Resource,
        mut rng: Rng,
    ) -> Vec<Acquisition> {
        let ports: Vec<u16> = resource
            .nodes(settings.ports.len())
            .map(|i| settings.ports[i])
            .collect();
        let mut queue = QueueWatch::new(&ports, resource);
        let mut done = Vec::new();
        let mut number = 0;
        while !self.stop.load(Ordering::SeqCst) {
            done.extend(self.cohort(settings, phase, resource, number, &mut queue, &mut rng));
            number += 1;
        }
        done
    }

    /// One cohort: spawns its runs one by one, each once the previous one has arrived; may
    /// interrupt one waiter; returns when all have exited.
    fn cohort(
        &self,
        settings: &Settings,
        phase: Phase,
        resource: Resource,
        number: u64,
        queue: &mut QueueWatch,
        rng: &mut Rng,
    ) -> Vec<Acquisition> {
        // The holder outlasts the others' arrivals (some 20-50 ms each); the waiters are brief.
        let sleeps: Vec<Duration> = (0..COHORT)
            .map(|place| {
                if place == 0 {
                    rng.millis(300, 600)
                } else {
                    rng.millis(20, 200)
                }
            })
            .collect();
        // One waiter in three cohorts gives up (Ctrl-C) after 0-300 ms in the queue.
        let last = u64::try_from(COHORT - 1).expect("small");
        let quitter = rng.percent(33).then(|| {
            let place = usize::try_from(rng.between(2, last)).expect("small");
            (place, rng.millis(0, 300))
        });
        let mut places: HashMap<u64, (Cohort, i32)> = HashMap::new();
        let mut runs = thread::scope(|scope| {
            let (tx, rx) = mpsc::channel();
            let mut handles = Vec::new();
            for (place, &sleep) in sleeps.iter().enumerate() {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                let tx = tx.clone();
                handles.push(scope.spawn(move || {
                    self.run_once(settings, phase, resource, Mode::Exclusive, sleep, Some(&tx))
                }));
                let Ok((id, pid)) = rx.recv() else { break };
                let (arrival, queued) = self.arrival(id, pid, resource, queue);
                let mut entry = Cohort {
                    number,
                    place,
                    arrival,
                    queued,
                    interrupted: None,
                    trace: false,
                };
                if let Some((_, after)) = quitter.filter(|&(q, _)| q == place && queued) {
                    thread::sleep(after); // how long it waits in the queue before giving up
                    entry.interrupted = self.interrupt_waiter(id, pid);
                }
                places.insert(id, (entry, pid));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("a cohort run panicked"))
                .collect::<Vec<_>>()
        });
        // Every run has exited (and none of the next cohort has started): none should be queued.
        for run in &mut runs {
            run.cohort = places.get(&run.id).map(|&(mut place, pid)| {
                place.trace = queue.holds(pid);
                place
            });
        }
        runs
    }

    /// Waits until run `id` (rlock `pid`) is in the lock's queue on every node (see
    /// [`QueueWatch::arrived`]), or its command has
    /// started, or it has exited, for at most [`ARRIVAL`]: when, and whether it was queued.
    fn arrival(
        &self,
        id: u64,
        pid: i32,
        resource: Resource,
        queue: &mut QueueWatch,
    ) -> (Option<Nanos>, bool) {
        let until = clock::now() + clock::nanos(ARRIVAL);
        while clock::now() < until {
            match lock(&self.active).get(&id).map(|a| a.child.is_some()) {
                Some(true) => return (Some(clock::now()), false),
                Some(false) => {}
                None => return (None, false),
            }
            if queue.arrived(pid) {
                if let Some(a) = lock(&self.active).get_mut(&id) {
                    a.queued = Some(resource);
                }
                return (Some(clock::now()), true);
            }
            thread::sleep(POLL);
        }
        (None, false)
    }

    /// Sends `SIGINT` to rlock `pid` (run `id`) if it still waits: it gives up, as at a Ctrl-C.
    fn interrupt_waiter(&self, id: u64, pid: i32) -> Option<Nanos> {
        let active = lock(&self.active);
        // Registered, so not reaped: the pid is this rlock's.
        let waiting = active.get(&id).is_some_and(|a| a.child.is_none());
        waiting.then(|| {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGINT);
            clock::now()
        })
    }

    /// Runs rlock once around the critical section and records the outcome.
    fn run_once(
        &self,
        settings: &Settings,
        phase: Phase,
        resource: Resource,
        mode: Mode,
        sleep: Duration,
        spawned_to: Option<&mpsc::Sender<(u64, i32)>>,
    ) -> Acquisition {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let record = settings.dir.join(format!("records/{id}"));
        let err = settings.dir.join(format!("records/{id}.err"));
        let clock = match (&settings.faketime, *lock(&self.clock)) {
            (Some(_), Some(clock)) => clock,
            _ => ClientClock::Honest,
        };
        // Under libfaketime too: rlock's bounded wait for a blocked stderr at exit once never
        // ended there (see Findings in tests/faults/README.md).
        let blocked = self
            .stderr_blocked
            .load(Ordering::SeqCst)
            .then(FullPipe::new);
        let mut cmd = rlock_command(settings, resource, mode, clock, blocked.is_some());
        // The shape of a cron job (see the module's doc): descendants that outlive the leader.
        let descendants = format!("{:.3}", (sleep + settings.ttl * 2).as_secs_f64());
        let stderr = fs::File::create(&err).expect("create a stderr file");
        if let Some(pipe) = &blocked {
            // Only rlock's stderr is under test: the command writes its own to the file.
            cmd.args(["sh", "-c", &format!("exec 2>>\"$1\"; shift; {SHAPE}"), "sh"])
                .arg(&err)
                .stderr(pipe.writer());
        } else {
            cmd.args(["sh", "-c", SHAPE, "sh"]).stderr(stderr);
        }
        cmd.arg(descendants)
            .arg(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/resource.py"))
            .arg(resource_dir(settings, phase, resource))
            .arg(match (resource, mode) {
                (Resource::Limited, _) => "slot",
                (Resource::Shared, Mode::Shared) => "reader",
                (Resource::Shared, _) => "writer",
                (Resource::Queue | Resource::Queue1, _) => "fenced",
                _ => resource.name(),
            })
            .arg(id.to_string())
            .arg(sleep.as_millis().to_string())
            .arg(&record);
        let spawned = clock::now();
        let child = cmd.spawn().expect("spawn rlock");
        drop(cmd); // its copies of the stderr handles, which only rlock needs now
        let mut run = Run {
            child,
            id,
            clients: self,
        };
        self.register(id, run.pid(), clock);
        if let Some(to) = spawned_to {
            let _ = to.send((id, run.pid()));
        }
        // Long enough for the wait, a critical section twice the TTL and the stop grace, with room
        // for a loaded machine; reached only if rlock hangs.
        let wait = settings.wait_for(resource);
        let cap = spawned + clock::nanos(wait + settings.ttl * 4 + Duration::from_secs(20));
        let watched = self.watch(&mut run, &record, cap, sleep);
        let exited = clock::now();
        drop(run);

        let (grant, read, write, last_step) = read_record(&record);
        let mut death = watched.death;
        if death.is_none() && grant.as_ref().is_some_and(|g| process_gone(g.pid)) {
            death = Some(exited);
        }
        let mut stderr = fs::read_to_string(&err).unwrap_or_default();
        let blocked_run = blocked.is_some();
        if let Some(pipe) = blocked {
            stderr.push_str(&pipe.drain());
        }
        if !watched.stuck.is_empty() {
            let _ = write!(stderr, "\n(harness: rlock's threads: {})", watched.stuck);
        }
        let _ = fs::remove_file(&err);
        let _ = fs::remove_file(&record);
        Acquisition {
            id,
            resource,
            mode,
            phase,
            element: id,
            spawned,
            exited,
            code: watched.status.code(),
            harness_killed: watched.harness_killed,
            stderr,
            grant,
            read,
            write,
            last_step,
            last_alive: watched.last_alive,
            death,
            clock,
            paused: watched.paused,
            sleep,
            stderr_blocked: blocked_run,
            killed: watched.killed,
            wait,
            terminated: watched.terminated,
            cohort: None,
        }
    }

    /// Registers a running rlock for the nemesis.
    fn register(&self, id: u64, rlock_pid: i32, clock: ClientClock) {
        let active = Active {
            rlock_pid,
            child: None,
            busy_until: None,
            clock,
            paused: false,
            killed: None,
            queued: None,
        };
        lock(&self.active).insert(id, active);
    }

    /// Polls `run` until rlock exits, watching its command's pid to bound when it died, ending a
    /// wait that outlasts the phase, and killing a run that passes `cap`.
    fn watch(&self, run: &mut Run<'_>, record: &Path, cap: Nanos, sleep: Duration) -> Watched {
        let mut command_pid = None::<i32>;
        let (mut last_alive, mut death) = (clock::now(), None);
        let (mut terminated, mut harness_killed) = (None, false);
        let mut stuck = String::new();
        loop {
            if let Some((status, active)) = run.try_reap() {
                return Watched {
                    status,
                    last_alive,
                    death,
                    harness_killed,
                    paused: active.paused,
                    killed: active.killed,
                    stuck,
                    terminated,
                };
            }
            let now = clock::now();
            if command_pid.is_none() {
                let grant = read_record(record).0;
                command_pid = grant.as_ref().map(|g| g.pid);
                if let (Some(grant), Some(active)) = (grant, lock(&self.active).get_mut(&run.id)) {
                    active.child = Some(grant.pid);
                    active.busy_until = Some(grant.start + clock::nanos(sleep));
                }
            }
            match command_pid {
                Some(pid) if death.is_none() => {
                    if process_gone(pid) {
                        death = Some(now);
                    } else {
                        last_alive = now;
                    }
                }
                // The phase is over and this run is still waiting: end the wait (exit 143).
                None if terminated.is_none() && self.stop.load(Ordering::SeqCst) => {
                    let _ = signal::kill(Pid::from_raw(run.pid()), Signal::SIGTERM);
                    terminated = Some(now);
                }
                _ => {}
            }
            if now > cap && !harness_killed {
                // What rlock was stuck in, for the report.
                stuck = procs::threads(run.pid());
                run.kill(command_pid);
                harness_killed = true;
            }
            thread::sleep(POLL);
        }
    }
}

/// What watching one rlock run found.
struct Watched {
    status: ExitStatus,
    last_alive: Nanos,
    death: Option<Nanos>,
    harness_killed: bool,
    paused: bool,
    killed: Option<Nanos>,
    /// What rlock's threads waited in when the harness killed it.
    stuck: String,
    /// When the harness ended its wait at the phase's end.
    terminated: Option<Nanos>,
}

impl Settings {
    /// The `--wait` of runs on `resource`.
    pub fn wait_for(&self, resource: Resource) -> Duration {
        if Resource::QUEUES.contains(&resource) {
            self.queue_wait
        } else {
            self.wait
        }
    }
}

/// Looks straight at the nodes (not through the proxies) for a waiter in a lock's queue: its
/// rlock pid in the `waiters` hash (`host TAB pid TAB command TAB since`).
struct QueueWatch {
    ports: Vec<u16>,
    key: String,
    conns: Vec<Option<redis::Connection>>,
}

impl QueueWatch {
    fn new(ports: &[u16], resource: Resource) -> QueueWatch {
        QueueWatch {
            ports: ports.to_vec(),
            key: format!("{}:waiters", resource.redis_key()),
            conns: ports.iter().map(|_| None).collect(),
        }
    }

    /// Whether any node lists rlock `pid` as a waiter.
    fn holds(&mut self, pid: i32) -> bool {
        self.listing(pid).0 > 0
    }

    /// Whether rlock `pid` has surely joined the queue: listed by every node that answered, and
    /// those are a majority. Over a quorum its ticket is the largest of the nodes' clocks at its
    /// first refusal, so a waiter seen on one node alone may still draw a ticket after the next.
    fn arrived(&mut self, pid: i32) -> bool {
        let (listed, answered) = self.listing(pid);
        listed == answered && listed > self.ports.len() / 2
    }

    /// How many nodes list rlock `pid` as a waiter, and how many answered. A node that does not
    /// answer within 100 ms (paused, restarting) is asked again next time.
    fn listing(&mut self, pid: i32) -> (usize, usize) {
        let pid = pid.to_string();
        let (mut listed, mut answered) = (0, 0);
        for (port, conn) in self.ports.iter().zip(&mut self.conns) {
            if conn.is_none() {
                *conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(100)))
                    .ok();
                if let Some(c) = conn {
                    let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
                    let _ = c.set_write_timeout(Some(Duration::from_millis(100)));
                }
            }
            let Some(c) = conn else { continue };
            match redis::cmd("HVALS").arg(&self.key).query::<Vec<String>>(c) {
                Ok(values) => {
                    answered += 1;
                    if values
                        .iter()
                        .any(|v| v.split('\t').nth(1) == Some(pid.as_str()))
                    {
                        listed += 1;
                    }
                }
                Err(_) => *conn = None,
            }
        }
        (listed, answered)
    }
}

/// The command around the critical section: `sh -c SHAPE sh S python3 resource.py ARGS`.
/// Background `sleep S` and `sleep S | cat` outlive the critical section, and `exec` keeps the
/// critical section the group's leader, with the pid it records.
const SHAPE: &str = r#"sleep "$1" & sleep "$1" | cat & shift; exec "$@""#;

/// `rlock -r URL... -k KEY [--limit N | --shared] --ttl T --wait W [-v] --`, in its own process
/// group, with no inherited `RLOCK_*` variables, under libfaketime if `clock` says so; the caller
/// appends the command.
fn rlock_command(
    settings: &Settings,
    resource: Resource,
    mode: Mode,
    clock: ClientClock,
    verbose: bool,
) -> Command {
    let mut cmd = Command::new(&settings.rlock);
    without_rlock_env(&mut cmd);
    for url in &settings.urls[resource.nodes(settings.urls.len())] {
        cmd.arg("-r").arg(url);
    }
    cmd.args(["-k", resource.name()]);
    match mode {
        Mode::Exclusive => {}
        Mode::Shared => {
            cmd.arg("--shared");
        }
        Mode::Limit => {
            cmd.arg("--limit").arg(LIMIT.to_string());
        }
    }
    cmd.arg("--ttl")
        .arg(humantime::format_duration(settings.ttl).to_string())
        .arg("--wait")
        .arg(humantime::format_duration(settings.wait_for(resource)).to_string())
        .args(verbose.then_some("-v"))
        .arg("--")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let (Some(faketime), ClientClock::Slow | ClientClock::Fast) = (&settings.faketime, clock) {
        let rate = if clock == ClientClock::Slow {
            "x0.5"
        } else {
            "x2"
        };
        cmd.env("LD_PRELOAD", faketime)
            .env("FAKETIME", format!("+0 {rate}"));
        // The critical section keeps honest time: only rlock's clock is under test.
        cmd.args(["env", "-u", "LD_PRELOAD", "-u", "FAKETIME"]);
    }
    cmd
}

/// Sets the stop flag when dropped, so that a panicking phase still ends its client loops.
struct StopOnDrop<'a>(&'a Clients);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// One rlock process; on drop (a panic) it and its command's group are resumed and killed.
struct Run<'a> {
    child: Child,
    id: u64,
    clients: &'a Clients,
}

impl Run<'_> {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in i32")
    }

    /// Reaps rlock if it has exited, and unregisters it (under the registry lock, see
    /// [`Clients::active`]).
    fn try_reap(&mut self) -> Option<(ExitStatus, Active)> {
        let mut active = lock(&self.clients.active);
        let status = self.child.try_wait().expect("try_wait on rlock")?;
        let entry = active
            .remove(&self.id)
            .expect("a running rlock is registered");
        Some((status, entry))
    }

    /// Resumes and kills rlock and, if known, its command's group.
    fn kill(&mut self, group: Option<i32>) {
        let _active = lock(&self.clients.active);
        if let Ok(None) = self.child.try_wait() {
            let pid = Pid::from_raw(self.pid());
            let _ = signal::kill(pid, Signal::SIGCONT);
            let _ = signal::kill(pid, Signal::SIGKILL);
        }
        if let Some(group) = group {
            let _ = signal::killpg(Pid::from_raw(group), Signal::SIGCONT);
            let _ = signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = lock(&self.clients.active)
                .get(&self.id)
                .and_then(|a| a.child);
            self.kill(group);
            let _ = self.child.wait();
            lock(&self.clients.active).remove(&self.id);
        }
    }
}

/// The directory of `resource` in `phase`: each phase starts from an empty set.
pub fn resource_dir(settings: &Settings, phase: Phase, resource: Resource) -> PathBuf {
    settings.dir.join(format!("{phase}-{}", resource.name()))
}

/// The elements in a resource's final set (the union of the slots' sets for a limited lock).
pub fn final_set(dir: &Path) -> Vec<u64> {
    let slots = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("slot-"))
        });
    std::iter::once(dir.to_owned())
        .chain(slots)
        .flat_map(|d| {
            fs::read_to_string(d.join("set"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.parse().expect("the set holds integers"))
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// The critical section's sleep: mostly short, at times long, now and then up to twice the TTL.
fn critical_sleep(rng: &mut Rng, ttl: Duration) -> Duration {
    let ttl_ms = u64::try_from(ttl.as_millis()).expect("a TTL in ms fits in u64");
    match rng.below(100) {
        0..60 => rng.millis(0, 100),
        60..85 => rng.millis(100, 800),
        _ => rng.millis(800, 2 * ttl_ms),
    }
}

/// The Python interpreter: Debian's own when present (a version manager's shim starts slowly).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Parses a record written by `resource.py` (see its docstring); tolerates a torn last line.
fn read_record(path: &Path) -> (Option<Grant>, Option<Step>, Option<Step>, Option<Nanos>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let (mut grant, mut read, mut write, mut last) = (None, None, None, None);
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match fields[0] {
            "start" if fields.len() == 8 => {
                if let (Some(pid), Some(fence), Some(start)) = (num(1), num(2), num(4)) {
                    grant = Some(Grant {
                        fence,
                        token: fields[3].to_owned(),
                        pid: i32::try_from(pid).expect("a pid fits in i32"),
                        start,
                        env_mode: fields[5].to_owned(),
                        env_slot: fields[6].to_owned(),
                        env_limit: fields[7].to_owned(),
                    });
                    last = Some(start);
                }
            }
            kind @ ("read" | "stale-read" | "write" | "stale-write" | "end") => {
                let Some(at) = num(1) else { continue };
                let step = Some(Step {
                    at,
                    accepted: !kind.starts_with("stale"),
                });
                match kind {
                    "read" | "stale-read" => read = step,
                    "write" | "stale-write" => write = step,
                    _ => {}
                }
                last = Some(at);
            }
            _ => {}
        }
    }
    (grant, read, write, last)
}
