//! Watches the lock keys on every node, directly (not through the proxies), to bound when each
//! lease could end on the servers.
//!
//! A lease's server-side end is not visible to its holder, so the stop-before-expiry checker needs
//! it from outside. Every few milliseconds the monitor asks each node for the token and `PTTL` of
//! each lock key, and keeps, per node and token, the latest sample: sent at `t`, the key then had
//! `pttl` left, so on that node it lives until at least `t + pttl` (later extensions only move that
//! later). Faults that end a lease early on a node (a crash, a forward clock jump) are applied to
//! this bound by the checker. A paused node cannot be asked, so the nemesis takes one more sample
//! right before it pauses a node ([`Monitor::sample_now`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock::{self, Nanos};

/// How often each node is asked.
const EVERY: Duration = Duration::from_millis(10);
/// Connect and read timeout: a paused node must not hold the monitor up for long.
const TIMEOUT: Duration = Duration::from_millis(100);

/// The latest sample of one token on one node.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the request was sent: the node answered at or after it.
    pub sent: Nanos,
    /// The key's remaining time to live then, in milliseconds.
    pub pttl_ms: u64,
}

impl Sample {
    /// The earliest the key can expire on the node, absent faults that end it early.
    pub fn expiry(&self) -> Nanos {
        self.sent + self.pttl_ms * 1_000_000
    }
}

/// Per node: the latest sample of every token seen there.
pub type Samples = Vec<HashMap<String, Sample>>;

/// What the monitor threads and [`Monitor::sample_now`] share.
struct Shared {
    keys: Vec<String>,
    ports: Vec<u16>,
    samples: Mutex<Samples>,
    /// One connection per node, reopened after errors.
    conns: Vec<Mutex<Option<redis::Connection>>>,
    stop: AtomicBool,
}

/// The running monitor; its threads end on [`Monitor::finish`] or drop.
pub struct Monitor {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Monitor {
    /// Starts one sampling thread per node port, watching `keys`.
    pub fn start(ports: Vec<u16>, keys: Vec<String>) -> Monitor {
        let shared = Arc::new(Shared {
            keys,
            samples: Mutex::new(vec![HashMap::new(); ports.len()]),
            conns: ports.iter().map(|_| Mutex::new(None)).collect(),
            ports,
            stop: AtomicBool::new(false),
        });
        let threads = (0..shared.ports.len())
            .map(|node| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("monitor-{node}"))
                    .spawn(move || {
                        while !shared.stop.load(Ordering::SeqCst) {
                            sample(&shared, node);
                            thread::sleep(EVERY);
                        }
                    })
                    .expect("spawn a monitor thread")
            })
            .collect();
        Monitor {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Samples `node` now (before the nemesis pauses it).
    pub fn sample_now(&self, node: usize) {
        sample(&self.shared, node);
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(&self) -> Samples {
        self.stop();
        std::mem::take(&mut *lock(&self.shared.samples))
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in lock(&self.threads).drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks `node` for the token and PTTL of every key, and records what it holds.
fn sample(shared: &Shared, node: usize) {
    let mut conn = lock(&shared.conns[node]);
    if conn.is_none() {
        *conn = connect(shared.ports[node]);
    }
    let Some(con) = conn.as_mut() else { return };
    let mut pipe = redis::pipe();
    for key in &shared.keys {
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
    }
    let sent = clock::now();
    let Ok(answers) = pipe.query::<Vec<(Option<String>, i64)>>(con) else {
        *conn = None; // timed out (paused), or the node restarted: reconnect next time
        return;
    };
    let mut samples = lock(&shared.samples);
    for (token, pttl) in answers {
        if let (Some(token), Ok(pttl_ms)) = (token, u64::try_from(pttl)) {
            samples[node].insert(token, Sample { sent, pttl_ms });
        }
    }
}

/// A connection to the node on `port` with short timeouts, or `None`.
fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let con = client.get_connection_with_timeout(TIMEOUT).ok()?;
    con.set_read_timeout(Some(TIMEOUT)).ok()?;
    con.set_write_timeout(Some(TIMEOUT)).ok()?;
    Some(con)
}
