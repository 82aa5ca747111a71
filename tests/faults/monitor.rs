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
//!
//! The lock modes keep their holders elsewhere: a limited lock's slot I in the key `...:slot:I`
//! (watched as a plain key), a shared holder as a member of the zset `...:readers` whose score is
//! its expiry in the node's milliseconds. For those the monitor also asks the node's `TIME` in the
//! same pipeline, and takes `score - time` as the holder's PTTL.

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

/// A key the monitor watches.
#[derive(Clone, Debug)]
pub enum Watch {
    /// A string key holding one holder's token, with a TTL (`GET`, `PTTL`).
    Token(String),
    /// A zset of shared holders: token -> expiry in the node's ms (`ZRANGE ... WITHSCORES`).
    Readers(String),
}

/// What the monitor threads and [`Monitor::sample_now`] share.
struct Shared {
    keys: Vec<Watch>,
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
    pub fn start(ports: Vec<u16>, keys: Vec<Watch>) -> Monitor {
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
        match key {
            Watch::Token(key) => pipe.cmd("GET").arg(key).cmd("PTTL").arg(key),
            Watch::Readers(key) => pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
        };
    }
    pipe.cmd("TIME");
    let sent = clock::now();
    let Ok(answers) = pipe.query::<Vec<redis::Value>>(con) else {
        *conn = None; // timed out (paused), or the node restarted: reconnect next time
        return;
    };
    let Some(seen) = holders(&shared.keys, answers) else {
        return;
    };
    let mut samples = lock(&shared.samples);
    for (token, pttl_ms) in seen {
        samples[node].insert(token, Sample { sent, pttl_ms });
    }
}

/// The holders' tokens and PTTLs in a pipeline's answers (`None` if they do not parse).
fn holders(keys: &[Watch], answers: Vec<redis::Value>) -> Option<Vec<(String, u64)>> {
    let mut answers = answers.into_iter();
    let mut next = || answers.next();
    let mut seen = Vec::new();
    let mut readers = Vec::new();
    for key in keys {
        match key {
            Watch::Token(_) => {
                let token: Option<String> = redis::from_redis_value(next()?).ok()?;
                let pttl: i64 = redis::from_redis_value(next()?).ok()?;
                if let (Some(token), Ok(pttl)) = (token, u64::try_from(pttl)) {
                    seen.push((token, pttl));
                }
            }
            Watch::Readers(_) => {
                let flat: Vec<String> = redis::from_redis_value(next()?).ok()?;
                for pair in flat.chunks_exact(2) {
                    readers.push((pair[0].clone(), pair[1].parse::<f64>().ok()?));
                }
            }
        }
    }
    let time: Vec<u64> = redis::from_redis_value(next()?).ok()?;
    // Rounded up, so that `score - now` never overstates what is left.
    let now_ms = time.first()? * 1000 + time.get(1)?.div_ceil(1000);
    for (token, expiry_ms) in readers {
        // Scores are whole milliseconds; one already past is an expired holder, not a sample.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let expiry_ms = expiry_ms.max(0.0) as u64;
        if expiry_ms > now_ms {
            seen.push((token, expiry_ms - now_ms));
        }
    }
    Some(seen)
}

/// A connection to the node on `port` with short timeouts, or `None`.
fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let con = client.get_connection_with_timeout(TIMEOUT).ok()?;
    con.set_read_timeout(Some(TIMEOUT)).ok()?;
    con.set_write_timeout(Some(TIMEOUT)).ok()?;
    Some(con)
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::{Watch, holders};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn holders_are_read_from_token_keys_and_from_the_readers_zset_against_the_node_clock() {
        let keys = [
            Watch::Token("rlock:{a}".to_owned()),
            Watch::Token("rlock:{a}:slot:1".to_owned()),
            Watch::Readers("rlock:{a}:readers".to_owned()),
        ];
        let answers = vec![
            bulk("t1"),
            Value::Int(1500),
            Value::Nil,
            Value::Int(-2),
            Value::Array(vec![
                bulk("r1"),
                bulk("1000002000"),
                bulk("r2"),
                bulk("999999000"),
            ]),
            // TIME: 1000000 s and 200 µs, rounded up to 1000000001 ms.
            Value::Array(vec![bulk("1000000"), bulk("200")]),
        ];
        let seen = holders(&keys, answers).expect("parses");
        // r2 expired a second ago: not a holder.
        assert_eq!(seen, vec![("t1".to_owned(), 1500), ("r1".to_owned(), 1999)]);
    }
}
