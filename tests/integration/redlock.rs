//! `rlock run` over several independent Redis masters (Redlock): the lease is judged by majority,
//! so a minority of nodes may be paused, stalled or skewed without costing the lease; losing the
//! majority stops the command before the lease can expire; a grant that lands late is released
//! like any other; and the fence keeps rising across quorums that share only one node.
//!
//! Pausing a node is `SIGSTOP`: connects still succeed, nothing is answered, so every such request
//! costs rlock its full per-node timeout, clamp(ttl / 10, 10ms, 1s).

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::support::{
    RedisServer, Rlock, RunOutput, on, process_gone, rlock, temp_dir, wait_for, wait_for_file,
};

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);
/// The Redis keys of the lock every test takes (`-k job`).
const LOCK: &str = "rlock:{job}";
const FENCE: &str = "rlock:{job}:fence";
const HOLDER: &str = "rlock:{job}:holder";

/// `rlock -r URL...`.
fn on_urls(urls: impl IntoIterator<Item = String>) -> Rlock {
    urls.into_iter()
        .fold(rlock(), |cmd, url| cmd.arg("-r").arg(url))
}

/// A command that writes its pid and token to `dir`, signals readiness with `dir/ready`, then
/// sleeps until stopped.
fn ready_then_sleep(dir: &Path) -> String {
    format!(
        "echo $$ > {0}/pid; echo $RLOCK_TOKEN > {0}/token; echo ok > {0}/ready; exec sleep 300",
        dir.display()
    )
}

/// The token the command wrote (after its readiness file appeared).
fn token_in(dir: &Path) -> String {
    wait_for_file(dir.join("ready"), SOON);
    fs::read_to_string(dir.join("token"))
        .expect("the command wrote its token")
        .trim()
        .to_owned()
}

/// The pid the command wrote.
fn pid_in(dir: &Path) -> i32 {
    wait_for_file(dir.join("pid"), SOON)
        .trim()
        .parse()
        .expect("a pid")
}

/// The fence a command printed with `echo $RLOCK_FENCE`.
#[track_caller]
fn fence_of(out: &RunOutput) -> u64 {
    out.assert_success();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the command printed a fence\n{out}"))
}

/// A node's fence counter.
#[track_caller]
fn counter(server: &RedisServer) -> u64 {
    let text = server.get(FENCE).expect("the node has a fence counter");
    text.parse()
        .unwrap_or_else(|_| panic!("fence counter '{text}' on port {}", server.port()))
}

/// Asserts that no node holds the lock or its holder record.
#[track_caller]
fn assert_free(servers: &[RedisServer]) {
    for server in servers {
        assert!(
            !server.exists(LOCK) && !server.exists(HOLDER),
            "node {} still holds the lock {:?}",
            server.url(),
            server.get(LOCK)
        );
    }
}

#[test]
fn acquires_and_runs_with_all_five_nodes() {
    let servers = RedisServer::start_many(5);
    let dir = temp_dir();
    let script = format!(
        "echo $RLOCK_TOKEN > {0}/token; echo ok > {0}/ready; \
         while [ ! -e {0}/go ]; do sleep 0.01; done; echo $RLOCK_FENCE $RLOCK_REDIS",
        dir.path().display()
    );
    let mut run = on(&servers).args(["-k", "job", "-c", &script]).spawn();
    let token = token_in(dir.path());
    for server in &servers {
        assert_eq!(
            server.get(LOCK).as_deref(),
            Some(token.as_str()),
            "node {} holds the command's token while it runs",
            server.url()
        );
    }
    fs::write(dir.path().join("go"), "go").expect("write the go file");

    let out = run.wait();
    out.assert_success().assert_stderr_empty();
    let (fence, urls) = out
        .stdout
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("the command printed a fence and the URLs\n{out}"));
    let all: Vec<String> = servers.iter().map(RedisServer::url).collect();
    assert_eq!(urls, all.join(","), "RLOCK_REDIS lists every node in order");
    // Each fresh counter starts at its node's TIME reading; the highest is the fence, and the
    // commit phase raised every granting node to it.
    let fence: u64 = fence.parse().expect("a numeric fence");
    for server in &servers {
        assert_eq!(counter(server), fence, "counter on {}", server.url());
    }
    assert_free(&servers);
}

#[test]
fn two_of_five_paused_still_acquires_in_about_one_timeout() {
    /// The per-node timeout for `-t 5s`.
    const TIMEOUT: Duration = Duration::from_millis(500);
    let servers = RedisServer::start_many(5);
    for server in &servers[3..] {
        server.pause();
    }
    // The command prints when it started (the wall clock, which the child shares with us).
    let spawned = SystemTime::now();
    let out = on(&servers)
        .args(["-t", "5s", "-k", "job", "--", "date", "+%s%N"])
        .output();
    out.assert_success();
    let started: u64 = out.stdout.trim().parse().expect("date printed nanoseconds");
    let acquired_in = (UNIX_EPOCH + Duration::from_nanos(started))
        .duration_since(spawned)
        .expect("the command started after rlock");

    // The acquire round waits for every node's reply or its deadline, which all nodes share: the
    // two paused nodes cost one timeout together, not one each. The fence commit then goes only to
    // the three granting nodes, which answer at once.
    assert!(
        acquired_in >= TIMEOUT,
        "the round cannot end before the paused nodes time out: {acquired_in:?}\n{out}"
    );
    assert!(
        acquired_in < 2 * TIMEOUT,
        "acquisition took about one timeout, not one per paused node: {acquired_in:?}\n{out}"
    );
    // The release asks every node again (a paused node may hold a late grant) and waits one more
    // timeout for the paused ones: about 2 timeouts = 1 s in all, plus process start-up.
    assert!(
        out.elapsed < Duration::from_millis(2500),
        "one timeout to acquire and one to release: {out}"
    );
    assert_free(&servers[..3]);
}

#[test]
fn three_of_five_paused_exits_69_naming_the_nodes_and_leaves_no_key() {
    let servers = RedisServer::start_many(5);
    let (up, paused) = servers.split_at(2);
    for server in paused {
        server.pause();
    }
    let out = on(&servers)
        .args(["-t", "2s", "-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_code(69).assert_stderr_contains(
        "rlock: cannot reach a majority of Redis nodes for lock 'job' (2 of 5 answered, 3 needed)",
    );
    for server in paused {
        out.assert_stderr_contains(&format!("{}: no answer within 200ms", server.url()));
    }
    for server in up {
        let named = format!("{}:", server.url());
        assert!(
            !out.stderr.contains(&named),
            "only failed nodes are named\n{out}"
        );
    }
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
    // One 200 ms timeout for the acquire round, one for undoing the grant on every node that may
    // hold it (the paused ones included): about 0.4 s.
    assert!(out.elapsed < Duration::from_secs(2), "{out}");
    // The two reachable nodes granted; the undo took their grants back.
    assert_free(up);
}

#[test]
fn losing_the_majority_during_a_run_stops_the_command_before_validity_ends_and_exits_124() {
    /// A lock PTTL this low (of 2000 ms) was last set or extended more than 300 ms ago.
    const AGED: i64 = 1700;
    /// A lock PTTL this high was set or extended less than 150 ms ago.
    const FRESH: i64 = 1850;
    let servers = RedisServer::start_many(5);
    let (kept, lost) = servers.split_at(2);
    let dir = temp_dir();
    let mut run = on(&servers)
        .args(["-t", "2s", "--kill-after", "200ms", "-k", "job"])
        .args(["-c", &ready_then_sleep(dir.path())])
        .spawn();
    let child = pid_in(dir.path());
    token_in(dir.path());

    // When does the lease end? Another client can be granted the lock once a majority (3) of nodes
    // no longer hold our key: at the third-smallest of the five expiries. The two reachable nodes
    // keep being extended by the retrying keeper, so that is the *latest* expiry among the three
    // paused nodes. rlock promises more: its deadline is the send time of its last good round plus
    // ttl - drift, and every node ran that round after it was sent, so the command must be dead
    // before the lease ends on *any* node. We check that stronger promise, against the *earliest*
    // paused expiry. With -t 2s: rounds every 667 ms, deadline = sent + 1978 ms, and the stop
    // signal 200 ms before it, so a deadline more than ~0.2 s late fails this test.
    //
    // A node's expiry is at least (time we asked) + PTTL, and it must not move after we read it:
    // so read right after an extension round (not the grant: the keeper is what is under test)
    // landed on all three, and pause them at once; the next round is more than 500 ms away.
    wait_for("the lease to age", SOON, || lost[0].pttl(LOCK) < AGED);
    let mut expiries = Vec::new();
    wait_for("a fresh extension on the nodes to pause", SOON, || {
        expiries = lost
            .iter()
            .map(|server| (Instant::now(), server.pttl(LOCK)))
            .collect();
        expiries.iter().all(|&(_, pttl)| pttl >= FRESH)
    });
    for server in lost {
        server.pause();
    }
    let earliest = expiries
        .iter()
        .map(|&(asked, pttl)| asked + Duration::from_millis(pttl.unsigned_abs()))
        .min()
        .expect("three expiries");

    wait_for("the command to be stopped", SOON, || process_gone(child));
    let stopped_at = Instant::now();
    assert!(
        stopped_at < earliest,
        "the command outlived the lease on a paused node by {:?}",
        stopped_at - earliest
    );
    let out = run
        .wait_timeout(SOON)
        .expect("rlock exits after stopping the command");
    out.assert_code(124)
        .assert_stderr_contains("could not extend lock 'job'")
        .assert_stderr_contains("rlock: lost lock 'job': no extension succeeded in time");
    assert_free(kept);
}

#[test]
fn fences_stay_monotonic_across_a_skewed_quorum() {
    let servers = RedisServer::start_many(5);
    let (a, bc, de) = (&servers[0], &servers[1..3], &servers[3..]);
    // An absent counter would start at the node's TIME in microseconds and hide the skew.
    a.set(FENCE, "1000");
    for server in &servers[1..] {
        server.set(FENCE, "5");
    }
    let fence = || {
        let out = on(&servers)
            .args(["-t", "2s", "-k", "job", "-c", "echo $RLOCK_FENCE"])
            .output();
        fence_of(&out)
    };

    for server in de {
        server.pause();
    }
    let first = fence();
    assert_eq!(
        first, 1001,
        "A, B and C granted; A's counter was the highest"
    );
    for server in bc {
        assert!(
            counter(server) >= first,
            "the commit raised {} to the fence {first}, not {}",
            server.url(),
            counter(server)
        );
    }

    for server in de {
        server.resume();
    }
    a.pause();
    // B, C, D and E grant: B and C share the first quorum, and their counters carry its fence.
    let second = fence();
    assert!(
        second > first,
        "a later grant got a lower fence: {second} after {first}"
    );
    for server in &servers[1..] {
        assert!(counter(server) >= second, "counter on {}", server.url());
    }
}

#[test]
fn release_removes_the_key_from_a_node_that_timed_out_on_acquire() {
    let servers = RedisServer::start_many(5);
    let late = &servers[4];
    let relay = Relay::new(late.port());
    let urls: Vec<String> = servers[..4]
        .iter()
        .map(RedisServer::url)
        .chain([relay.url()])
        .collect();
    // rlock sends a script as EVALSHA and loads it only after a NOSCRIPT reply, so a held request
    // can land late only on a node that knows the script: one run loads them on every node.
    on_urls(urls.clone())
        .args(["-k", "warm-up", "--", "true"])
        .output()
        .assert_success();

    relay.stall();
    let dir = temp_dir();
    let mut run = on_urls(urls)
        .args(["-t", "5s", "-k", "job", "-c", &ready_then_sleep(dir.path())])
        .spawn();
    let token = token_in(dir.path());
    for server in &servers[..4] {
        assert_eq!(server.get(LOCK).as_deref(), Some(token.as_str()));
    }
    assert!(
        !late.exists(LOCK),
        "the stalled node's grant has not landed yet"
    );
    relay.unstall();
    wait_for("the late grant to land", SOON, || {
        late.get(LOCK).as_deref() == Some(token.as_str())
    });

    run.signal(Signal::SIGTERM);
    run.wait().assert_code(143);
    assert_free(&servers);
}

#[test]
fn duplicates_and_aliases_are_rejected() {
    let servers = RedisServer::start_many(2);
    let (a, b) = (&servers[0], &servers[1]);
    let out = on_urls([a.url(), b.url(), a.url()])
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_code(2)
        .assert_stderr_contains(&format!("Redis node {} is listed twice", a.url()));
    assert_eq!(out.stdout, "", "the command must not run\n{out}");

    // The same server under two names is found by its run_id, after the acquire round.
    let alias = format!("redis://localhost:{}", a.port());
    let out = on_urls([a.url(), alias.clone(), b.url()])
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    out.assert_code(2).assert_stderr_contains(&format!(
        "Redis nodes {} and {alias} are the same server",
        a.url()
    ));
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
    assert_free(&servers);
}

#[test]
fn two_nodes_warn_and_an_even_count_warns() {
    let servers = RedisServer::start_many(4);
    let run = |nodes: &[RedisServer], quiet: bool| {
        let out = on(nodes)
            .args(quiet.then_some("-q"))
            .args(["-k", "job", "--", "true"])
            .output();
        out.assert_success();
        out
    };
    let two = run(&servers[..2], false);
    two.assert_stderr_contains("rlock: warning: 2 Redis nodes tolerate no failure");
    assert_eq!(two.stderr.lines().count(), 1, "one warning\n{two}");
    let four = run(&servers, false);
    four.assert_stderr_contains(
        "rlock: warning: 4 Redis nodes tolerate as many failures as 3; 5 would tolerate one more",
    );
    assert_eq!(four.stderr.lines().count(), 1, "one warning\n{four}");
    run(&servers[..2], true).assert_stderr_empty();
    run(&servers, true).assert_stderr_empty();
    run(&servers[..3], false).assert_stderr_empty();
}

#[test]
fn a_busy_redlock_exits_75_at_once() {
    let servers = RedisServer::start_many(3);
    let dir = temp_dir();
    let mut holder = on(&servers)
        .args(["-k", "job", "-c", &ready_then_sleep(dir.path())])
        .spawn();
    let token = token_in(dir.path());

    let busy = on(&servers)
        .args(["-k", "job", "--", "echo", "ran"])
        .output();
    busy.assert_code(75)
        .assert_stderr_contains("rlock: lock 'job' is held by someone else");
    assert_eq!(busy.stdout, "", "the command must not run\n{busy}");
    // Every node answers "busy" at once; a node timing out would cost the 1 s default timeout.
    assert!(busy.elapsed < Duration::from_secs(1), "{busy}");
    for server in &servers {
        assert_eq!(
            server.get(LOCK).as_deref(),
            Some(token.as_str()),
            "the holder's token on {} is untouched",
            server.url()
        );
    }

    holder.signal(Signal::SIGTERM);
    holder.wait().assert_code(143);
    assert_free(&servers);
}

/// A TCP relay in front of one Redis node that can hold requests back, as a stalled node would.
///
/// While the relay is stalled it accepts connections but holds every request, and
/// [`Relay::unstall`] delivers them in order even if the client has hung up since: the script then
/// runs late, as a request queued on a paused node runs after `SIGCONT`. (A relay rather than
/// `SIGSTOP`, so that the test controls exactly when the held request lands.)
struct Relay {
    port: u16,
    shared: Arc<Shared>,
}

/// What the relay's threads share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Set on drop: the accept loop ends.
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    stalled: bool,
    /// Requests held back, each with its connection to the node, in arrival order.
    held: Vec<(TcpStream, Vec<u8>)>,
    /// Every socket the relay opened, to shut down on drop.
    sockets: Vec<TcpStream>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Relay {
    /// A relay on a free port to the node on `target`, passing everything until stalled.
    fn new(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(client) = client {
                    let shared = Arc::clone(&accepting);
                    thread::spawn(move || relay(client, target, &shared));
                }
            }
        });
        Relay { port, shared }
    }

    /// `redis://127.0.0.1:PORT` of the relay.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, hold every request.
    fn stall(&self) {
        self.shared.state().stalled = true;
    }

    /// Delivers the held requests in order and passes everything again.
    fn unstall(&self) {
        let mut state = self.shared.state();
        state.stalled = false;
        for (mut server, request) in state.held.drain(..) {
            server
                .write_all(&request)
                .expect("deliver a held request to the node");
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        for socket in &self.shared.state().sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Relays one client connection to the node on `target` until either side closes.
fn relay(mut client: TcpStream, target: u16, shared: &Shared) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        shared.state().sockets.extend([c, s]);
    }
    thread::spawn(move || {
        let mut buf = [0; 16 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf) {
            let _ = to_client.write_all(&buf[..n]);
        }
    });
    let mut buf = [0; 16 * 1024];
    while let Ok(n @ 1..) = client.read(&mut buf) {
        let mut state = shared.state();
        if state.stalled {
            let Ok(held) = server.try_clone() else { return };
            state.held.push((held, buf[..n].to_vec()));
        } else if server.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
