//! Hearing about releases, so that a waiter retries the moment a lock is free.
//!
//! The release script wakes the first waiter in the lock's queue on that waiter's own channel
//! (`P{K}:w:ID`), or everyone on the lock's channel (`P{K}:released`) when nobody is queued (or
//! when the lock is broken). A waiter subscribes to both on every node, one thread and one
//! connection each, and only *then* tries again: a release that
//! happens between its failed attempt and its subscription is caught by that retry, and every
//! later one by the subscription. Pub/sub is fire-and-forget, so a lost message costs latency, not
//! correctness: the waiter also wakes when the holder's TTL runs out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::Lock;
use super::endpoint::Endpoint;
use crate::clock;

/// How often a watcher thread looks whether it should stop.
const POLL: Duration = Duration::from_millis(200);
/// How long a watcher waits before reconnecting to a node that failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// Subscriptions to a lock's release channel on its nodes; dropping it ends them.
pub struct Watch {
    stop: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The threads notice within `POLL` and close their connections.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Lock {
    /// Subscribes to the lock's release announcements on every node, calling `on_release` (from
    /// the watcher threads) for each. Returns once every node has subscribed or failed, or after
    /// one request timeout.
    pub fn watch(&self, on_release: impl Fn() + Send + Sync + 'static) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let on_release: Arc<dyn Fn() + Send + Sync> = Arc::new(on_release);
        let (ready, subscribed) = mpsc::channel::<()>();
        for node in &self.nodes {
            let (endpoint, channels, timeout) = (
                node.endpoint().clone(),
                [
                    self.keys.released.clone(),
                    format!("{}:w:{}", self.keys.lock, self.waiter),
                ],
                self.timeout,
            );
            let (stop, on_release, sender) =
                (Arc::clone(&stop), Arc::clone(&on_release), ready.clone());
            let spawned = std::thread::Builder::new()
                .name("rlock-watch".to_owned())
                .spawn(move || {
                    let mut ready = Some(sender);
                    while !stop.load(Ordering::Relaxed) {
                        // Errors end one subscription; the loop reconnects while the waiter waits.
                        let _ = listen(
                            &endpoint,
                            &channels,
                            timeout,
                            &stop,
                            on_release.as_ref(),
                            &mut ready,
                        );
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(()); // failed: do not keep the waiter waiting for it
                        }
                        nap(RECONNECT, &stop);
                    }
                });
            if spawned.is_err() {
                let _ = ready.send(()); // no thread, no subscription: the TTL backstop remains
            }
        }
        let until = clock::now() + self.timeout;
        for _ in &self.nodes {
            if subscribed.recv_timeout(until.remaining()).is_err() {
                break;
            }
        }
        Watch { stop }
    }
}

/// Subscribes to `channels` and calls `on_release` for each message until `stop` or an error.
/// Sends on `ready` (once) when subscribed.
fn listen(
    endpoint: &Endpoint,
    channels: &[String],
    timeout: Duration,
    stop: &AtomicBool,
    on_release: &(dyn Fn() + Send + Sync),
    ready: &mut Option<mpsc::Sender<()>>,
) -> redis::RedisResult<()> {
    let mut conn = endpoint.connect(clock::now() + timeout)?;
    conn.set_deadline(clock::now() + timeout);
    // One confirmation per channel: read them all before the first message.
    let mut subscribe = redis::cmd("SUBSCRIBE");
    subscribe.arg(channels);
    subscribe.query::<redis::Value>(&mut conn)?;
    for _ in 1..channels.len() {
        conn.recv_until(clock::now() + timeout)?;
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    while !stop.load(Ordering::Relaxed) {
        // Each wait is bounded, and a message is bounded in size like any reply; a half-read
        // message stays buffered for the next wait.
        match conn.recv_until(clock::now() + POLL) {
            Ok(_) => on_release(),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps `d` in `POLL` steps, returning early once `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = clock::now() + d;
    while !stop.load(Ordering::Relaxed) && !until.remaining().is_zero() {
        std::thread::sleep(POLL.min(until.remaining()));
    }
}
