//! rlock's fault suite: real Redis nodes, real rlock processes and a nemesis that breaks them,
//! in the spirit of Jepsen's `lock-set` workload, to test the README's safety claims.
//!
//! A run starts N `redis-server` nodes (under a clock shim, without persistence), one
//! fault-injecting proxy per node, and K client loops per lock that run `rlock` around a
//! read-modify-write of a set kept in files ([`workload`], `resource.py`): one lock guards a fenced
//! resource, the other an unfenced one; a third is taken with `--limit 2` (a fenced set per slot),
//! a fourth by `--shared` readers and exclusive writers. A first phase runs without faults; then
//! the [`nemesis`] pauses, kills and skews nodes, partitions and delays them, and pauses and skews
//! clients, while the [`monitor`] watches the lock keys on every node. At the end the [`checker`]
//! decides and the [`report`] prints one table.
//!
//! `cargo test` runs the short form (about half a minute, fixed seed, every fault kind); the long
//! form is `scripts/faults` (see `tests/faults/README.md`).
//!
//! Layout: `nodes` (redis-server + `clockshim.c`), `proxy`, `monitor`, `workload`, `nemesis`,
//! `checker`, `report`, and the small `clock` and `rng`. Every process is stopped on drop, so a
//! failing or panicking run leaves nothing behind.

#[path = "../integration/support.rs"]
mod support;

mod checker;
mod clock;
mod monitor;
mod nemesis;
mod nodes;
mod procs;
mod proxy;
mod queue;
mod report;
mod rng;
mod workload;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::monitor::Monitor;
use crate::nemesis::{Fault, Nemesis, Targets};
use crate::nodes::Node;
use crate::proxy::Proxy;
use crate::report::Report;
use crate::rng::Rng;
use crate::support::temp_dir;
use crate::workload::{Clients, Phase, Resource, Settings, final_set, resource_dir};

/// The lease TTL every client uses: short, so that faults outlast leases within seconds.
const TTL: Duration = Duration::from_secs(2);

/// One run's shape.
struct Config {
    nodes: usize,
    /// Client loops per lock.
    clients: usize,
    seed: u64,
    /// The no-fault phase, then the fault phase.
    calm: Duration,
    faults: Duration,
    /// Scales node-fault durations and gaps (below 1: denser faults in a short run).
    pace: f64,
    /// How to replay this run, for the report.
    command: String,
    /// The faults of the rlock process itself that the third nemesis thread deals (`FAULTS_RLOCK`).
    rlock_faults: Vec<Fault>,
}

impl Config {
    /// The form `cargo test` runs: fixed seed, 4 s without faults, 22 s with them.
    fn short() -> Config {
        Config {
            nodes: 5,
            clients: 3,
            seed: 7,
            calm: Duration::from_secs(4),
            faults: Duration::from_secs(22),
            pace: 0.6,
            command: "cargo test --test faults".to_owned(),
            rlock_faults: rlock_faults(),
        }
    }

    /// The long form, from the environment `scripts/faults` sets.
    fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let num = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            })
        };
        let seconds = num("FAULTS_SECONDS", 600);
        let seed = num("FAULTS_SEED", random_seed());
        let nodes = usize::try_from(num("FAULTS_NODES", 5)).expect("a small number");
        assert!(nodes == 3 || nodes == 5, "FAULTS_NODES must be 3 or 5");
        let calm = (seconds / 10).clamp(5, 60);
        Config {
            nodes,
            clients: usize::try_from(num("FAULTS_CLIENTS", 3)).expect("a small number"),
            seed,
            calm: Duration::from_secs(calm),
            faults: Duration::from_secs(seconds.saturating_sub(calm).max(10)),
            pace: 1.0,
            command: var("FAULTS_COMMAND").map_or_else(
                || format!("FAULTS_SEED={seed} cargo test --release --test faults -- --ignored"),
                |c| format!("{c} --seed {seed}"),
            ),
            rlock_faults: rlock_faults(),
        }
    }
}

/// The faults of the rlock process itself: both (the default, or `FAULTS_RLOCK=1`), none
/// (`FAULTS_RLOCK=0`), or one of them (`FAULTS_RLOCK=kill` or `FAULTS_RLOCK=stderr`).
fn rlock_faults() -> Vec<Fault> {
    match std::env::var("FAULTS_RLOCK").unwrap_or_default().as_str() {
        "" | "1" => vec![Fault::KillRlock, Fault::StderrBlocked],
        "0" => vec![],
        "kill" => vec![Fault::KillRlock],
        "stderr" => vec![Fault::StderrBlocked],
        other => panic!("FAULTS_RLOCK={other}: use 0, 1, kill or stderr"),
    }
}

/// The rlock under test: this build's, or `FAULTS_RLOCK_BIN` (another build, to compare).
fn rlock_binary() -> PathBuf {
    std::env::var_os("FAULTS_RLOCK_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rlock")), PathBuf::from)
}

#[test]
fn a_short_fault_mix_loses_no_fenced_update_and_keeps_fences_in_order() {
    run(&Config::short());
}

#[test]
#[ignore = "minutes long: run it with scripts/faults"]
fn a_long_fault_mix_loses_no_fenced_update_and_keeps_fences_in_order() {
    run(&Config::from_env());
}

/// Runs both phases, checks, prints the table, and asserts the hard properties.
fn run(config: &Config) {
    println!(
        "faults: seed {} ({} nodes, {} clients per lock); replay: {}",
        config.seed, config.nodes, config.clients, config.command
    );
    let rlock = rlock_binary();
    if rlock != std::path::Path::new(env!("CARGO_BIN_EXE_rlock")) {
        println!(
            "faults: rlock under test: {} (FAULTS_RLOCK_BIN)",
            rlock.display()
        );
    }
    let started = clock::now();
    let dir = temp_dir();
    let cluster = Cluster::start(config.nodes, dir.path());
    let faketime = find_faketime();
    if faketime.is_none() {
        println!(
            "faults: note: libfaketime is not installed (Debian package libfaketime): \
             the client clock faults are skipped"
        );
    }
    let settings = Arc::new(Settings {
        rlock,
        urls: cluster.proxies.iter().map(Proxy::url).collect(),
        ports: cluster.ports.clone(),
        ttl: TTL,
        wait: Duration::from_secs(10),
        queue_wait: Duration::from_secs(5),
        faketime: faketime.clone(),
        dir: dir.path().to_owned(),
    });
    let clients = Arc::new(Clients::default());
    let mut rng = Rng::new(config.seed, 0);

    let mut runs = clients.run_phase(
        &settings,
        Phase::Calm,
        config.clients,
        config.calm,
        &mut rng,
    );
    let nemesis = Nemesis::start(
        Targets {
            nodes: Arc::clone(&cluster.nodes),
            proxies: Arc::clone(&cluster.proxies),
            monitor: Arc::clone(&cluster.monitor),
            clients: Arc::clone(&clients),
            ttl: TTL,
            faketime: faketime.is_some(),
            pace: config.pace,
            rlock_faults: config.rlock_faults.clone(),
        },
        config.seed,
    );
    runs.extend(clients.run_phase(
        &settings,
        Phase::Faults,
        config.clients,
        config.faults,
        &mut rng,
    ));
    let faults = nemesis.finish();

    let keys_left = wait_for_expiry(&cluster.ports);
    let strays = strays(dir.path());
    let samples = cluster.monitor.finish();
    let mut final_sets = HashMap::new();
    for phase in [Phase::Calm, Phase::Faults] {
        for resource in Resource::ALL {
            let set = final_set(&resource_dir(&settings, phase, resource));
            final_sets.insert((phase, resource), set);
        }
    }
    note_kills(&mut runs, &faults.kills);
    let findings = checker::check(
        &runs,
        &checker::Inputs {
            final_sets: &final_sets,
            samples: &samples,
            node_events: &faults.node_events,
            kills: &faults.kills,
            ttl: TTL,
            wait: settings.wait,
        },
    );
    let elapsed = Duration::from_nanos(clock::now() - started);
    let report = Report {
        command: &config.command,
        nodes: config.nodes,
        clients: config.clients,
        ttl: TTL,
        calm: config.calm,
        elapsed,
        faults: &faults,
        runs: &runs,
        findings: &findings,
        left_behind: (keys_left.len(), strays.len()),
        rlock_faults: &config.rlock_faults,
    };
    println!("{}", report.table());
    println!("{}", details(&findings, &runs));

    assert_safe(config.seed, &findings, &keys_left, &strays, &runs);
}

/// A killed rlock's command outlives rlock's exit, which ends its client's watch: the command's
/// last sign of life is the one the nemesis saw.
fn note_kills(runs: &mut [workload::Acquisition], kills: &[nemesis::Kill]) {
    for kill in kills {
        if let Some(run) = runs.iter_mut().find(|r| r.id == kill.id) {
            run.last_alive = run.last_alive.max(kill.leader_last_alive);
        }
    }
}

/// The hard assertions: what must hold under every fault mix.
fn assert_safe(
    seed: u64,
    findings: &checker::Findings,
    keys_left: &[String],
    strays: &[String],
    runs: &[workload::Acquisition],
) {
    // Every resource but the unfenced one checks fences: the limited one per slot.
    let fenced_lost: usize = findings
        .lost
        .iter()
        .filter(|((_, r), _)| *r != Resource::Unfenced)
        .map(|(_, l)| l.lost.len())
        .sum();
    assert_eq!(fenced_lost, 0, "fenced lost updates (seed {seed})");
    assert!(
        findings.fence_violations.is_empty(),
        "fence order violations (seed {}):\n{}",
        seed,
        findings.fence_violations.join("\n")
    );
    let calm_unfenced = &findings.lost[&(Phase::Calm, Resource::Unfenced)];
    assert!(
        calm_unfenced.lost.is_empty(),
        "unfenced updates lost without faults (seed {}): {:?}",
        seed,
        calm_unfenced.lost
    );
    for resource in [
        Resource::Fenced,
        Resource::Unfenced,
        Resource::Queue,
        Resource::Queue1,
    ] {
        let overlap = findings.overlap[&(Phase::Calm, resource)];
        assert!(
            overlap <= 1,
            "{overlap} {} critical sections ran at once without faults (seed {seed})",
            resource.name()
        );
    }
    assert!(
        findings.mode_violations.is_empty(),
        "more than --limit holders inside, or an exclusive holder not alone, within rlock's \
         assumptions, or a wrong RLOCK_* (seed {}):\n{}",
        seed,
        findings.mode_violations.join("\n")
    );
    assert!(
        findings.queue_violations.is_empty(),
        "the queued workload: two inside at once within rlock's assumptions, a waiter stuck past \
         its --wait, or a grant out of arrival order on one node without faults (seed {}):\n{}",
        seed,
        findings.queue_violations.join("\n")
    );
    assert!(
        findings.late_stops().is_empty(),
        "a command stopped for a lost lease outlived the next holder's start, within rlock's \
         assumptions (seed {}): {:?}",
        seed,
        findings.late_stops()
    );
    assert!(
        findings.late_kills().is_empty(),
        "a process of a killed rlock's command was alive at its lease's end, within rlock's \
         assumptions (seed {}): {:?}",
        seed,
        findings.late_kills()
    );
    assert!(
        findings.blocked.failures.is_empty(),
        "rlock runs with a blocked stderr did not end normally (seed {}):\n{}",
        seed,
        findings.blocked.failures.join("\n")
    );
    assert!(keys_left.is_empty(), "lock keys left behind: {keys_left:?}");
    assert!(
        strays.is_empty(),
        "processes of this run still alive after it: {strays:?}"
    );
    let granted = runs.iter().filter(|r| r.grant.is_some()).count();
    assert!(granted > 0, "no run was ever granted the lock");
}

/// Processes of this run other than the nodes (rlock and its commands, whose arguments name the
/// run's directory and `resource.py`) that are still alive. Zombies have an empty command line.
/// Searched by command line rather than by the pids the runs recorded: over minutes, the kernel
/// reuses those pids for unrelated processes.
fn strays(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(dir.as_ref()) && cmdline.contains("resource.py"))
                .then(|| format!("{}: {cmdline}", entry.file_name().to_string_lossy()))
        })
        .collect()
}

/// The nodes, a proxy in front of each, and the monitor watching them.
struct Cluster {
    nodes: Arc<Vec<Mutex<Node>>>,
    ports: Vec<u16>,
    proxies: Arc<Vec<Proxy>>,
    monitor: Arc<Monitor>,
}

impl Cluster {
    /// Starts `n` nodes in `dir` (with the clock shim built there), their proxies and the monitor.
    fn start(n: usize, dir: &std::path::Path) -> Cluster {
        let shim = nodes::build_shim(dir);
        let nodes: Vec<Node> = (0..n).map(|i| Node::start(i, dir, &shim)).collect();
        let ports: Vec<u16> = nodes.iter().map(Node::port).collect();
        let proxies = Arc::new(ports.iter().map(|&p| Proxy::start(p)).collect());
        let keys = Resource::ALL.iter().flat_map(|r| r.watches()).collect();
        Cluster {
            monitor: Arc::new(Monitor::start(ports.clone(), keys)),
            nodes: Arc::new(nodes.into_iter().map(Mutex::new).collect()),
            ports,
            proxies,
        }
    }
}

/// Waits until no node holds a lock or holder key (fence counters stay by design) and returns
/// what is left when the wait gives up. A key without a TTL is reported at once.
fn wait_for_expiry(ports: &[u16]) -> Vec<String> {
    // The longest a key can legitimately live: a TTL stretched by the largest clock jump.
    let started = clock::now();
    let deadline = started + clock::nanos(TTL * 2 + Duration::from_secs(45));
    let mut told = false;
    loop {
        let mut left = Vec::new();
        for &port in ports {
            let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .unwrap_or_else(|e| panic!("cannot reach node on port {port}: {e}"));
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("rlock:*")
                .query(&mut con)
                .expect("KEYS");
            for key in keys.into_iter().filter(|k| !k.ends_with(":fence")) {
                let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).expect("PTTL");
                if pttl == -1 {
                    return vec![format!("{key} on port {port} has no TTL")];
                }
                if pttl >= 0 {
                    left.push(format!("{key} on port {port} (PTTL {pttl} ms)"));
                }
            }
        }
        if left.is_empty() || clock::now() > deadline {
            let waited = Duration::from_nanos(clock::now() - started);
            if told {
                println!("faults: waited {waited:.1?} for the lock keys to expire");
            }
            return left;
        }
        // Once: what outlives its TTL by seconds (a key set while its node's clock ran ahead).
        if !told && clock::now() > started + clock::nanos(TTL * 2 + Duration::from_secs(1)) {
            println!("faults: keys still there {TTL:?} × 2 + 1 s after the run: {left:?}");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines behind the table's numbers worth reading when something is off.
fn details(findings: &checker::Findings, runs: &[workload::Acquisition]) -> String {
    let mut out = String::new();
    for ((phase, resource), lost) in &findings.lost {
        if !lost.lost.is_empty() {
            let _ = writeln!(
                out,
                "lost from {} ({phase}): {:?}",
                resource.name(),
                lost.lost
            );
        }
    }
    for v in findings.fence_violations.iter().take(20) {
        let _ = writeln!(out, "fence: {v}");
    }
    for v in findings.mode_violations.iter().take(20) {
        let _ = writeln!(out, "modes: {v}");
    }
    for v in findings.queue_violations.iter().take(20) {
        let _ = writeln!(out, "queue: {v}");
    }
    for q in findings.queues.values() {
        for note in q.notes.iter().take(20) {
            let _ = writeln!(out, "queue, measured: {note}");
        }
    }
    for run in runs.iter().filter(|r| r.harness_killed) {
        let _ = writeln!(
            out,
            "run {} killed by the harness: clock {:?}, paused {}, granted {}; rlock said: {}",
            run.id,
            run.clock,
            run.paused,
            run.grant.is_some(),
            run.stderr.trim().replace('\n', " / ")
        );
    }
    // The kill with the least lease left, within the assumptions: the one to read when the
    // table's smallest margin looks low.
    let closest = findings
        .kills
        .iter()
        .filter(|k| k.outside.is_none() && !k.outlived_lease)
        .filter(|k| k.margin_ms.is_some())
        .min_by(|a, b| {
            a.margin_ms
                .partial_cmp(&b.margin_ms)
                .expect("margins are numbers")
        });
    for k in findings
        .kills
        .iter()
        .filter(|k| k.outlived_lease)
        .chain(closest)
    {
        let run = runs.iter().find(|r| r.id == k.id).expect("a kill is a run");
        let _ = writeln!(
            out,
            "kill of run {} ({}, {}): {} processes, dead {:?} ms after the kill, margin to lease \
             end {:?} ms, to next holder {:?} ms, {}",
            k.id,
            run.resource.name(),
            run.mode.env(),
            k.members,
            k.latency_ms,
            k.margin_ms,
            k.before_next_ms,
            k.outside.unwrap_or("within rlock's assumptions")
        );
    }
    for f in &findings.blocked.failures {
        let _ = writeln!(out, "blocked stderr: {f}");
    }
    for run in runs.iter().filter(|r| r.lease_lost() && r.grant.is_none()) {
        let _ = writeln!(
            out,
            "run {} ({}) lost its lease before its command recorded a start; rlock said: {}",
            run.id,
            run.resource.name(),
            run.stderr.trim().replace('\n', " / ")
        );
    }
    for f in &findings.blocked.control {
        let _ = writeln!(out, "normal stderr, same rules: {f}");
    }
    for s in &findings.stops {
        if s.margin_ms.is_none_or(|m| m <= 0.0) || s.before_next_ms.is_some_and(|m| m <= 0.0) {
            let run = runs.iter().find(|r| r.id == s.id).expect("a stop is a run");
            let _ = writeln!(
                out,
                "stop of run {}: margin to lease end {:?} ms, to next holder {:?} ms, {}; \
                 rlock said: {}",
                s.id,
                s.margin_ms,
                s.before_next_ms,
                s.outside.unwrap_or("within rlock's assumptions"),
                run.stderr.trim().replace('\n', " / ")
            );
        }
    }
    out
}

/// libfaketime's library, if Debian's `libfaketime` package (or a local build) is installed.
fn find_faketime() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.extend(["/usr/lib", "/usr/local/lib"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
}

/// A seed for a run that was given none: different every time, printed so it can be replayed.
fn random_seed() -> u64 {
    let mut bytes = [0; 8];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    u64::from_le_bytes(bytes) % 1_000_000_000
}
