//! A fault-injecting TCP proxy in front of each node: the network faults, in user space.
//!
//! `tc netem` is not in this kernel, and nft rules would need care to remove, so every client
//! reaches node `i` through proxy `i`, whose [`Mode`] the nemesis sets: pass bytes on, hold each
//! chunk back for a delay, swallow everything (a partition: requests are lost and no answer
//! comes), or cut every connection and refuse new ones (a reset). Only the clients go through
//! the proxies; the monitor talks to the nodes directly, so a partition hides a node from the
//! clients but not from the checker.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// What the proxy does with the bytes it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward each chunk after this delay (in each direction).
    Delay(Duration),
    /// Accept connections, forward nothing, answer nothing.
    Blackhole,
    /// Close every connection and each new one at once.
    Reset,
}

/// One proxy; stops accepting and cuts its connections on drop.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

/// What the accept loop and the pumps share.
struct Shared {
    mode: Mutex<Mode>,
    /// Both sockets of every open connection, by connection number, to cut on reset and drop.
    sockets: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

/// How often a pump blocked in `read` looks at the mode and the `closed` flag.
const TICK: Duration = Duration::from_millis(50);

impl Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    fn cut_all(&self) {
        for socket in lock(&self.sockets).drain().flat_map(|(_, pair)| pair) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Locks `m`, ignoring poisoning (a panicking pump must not take the proxy down with it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// A proxy on a free loopback port to the node on `target`, passing everything.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            sockets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                for client in listener.incoming() {
                    if accepting.closed.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if accepting.mode() == Mode::Reset {
                        continue; // dropped: closed at once
                    }
                    let shared = Arc::clone(&accepting);
                    let _ = thread::Builder::new()
                        .name("proxy-conn".to_owned())
                        .spawn(move || connect(client, target, &shared));
                }
            })
            .expect("spawn the proxy's accept thread");
        Proxy { port, shared }
    }

    /// `redis://127.0.0.1:PORT` of the proxy: what the clients are given.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Switches the mode; [`Mode::Reset`] also cuts every open connection.
    pub fn set(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
        if mode == Mode::Reset {
            self.shared.cut_all();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        self.shared.cut_all();
    }
}

/// Connects a client to the node and pumps both ways until either side closes.
fn connect(client: TcpStream, target: u16, shared: &Arc<Shared>) {
    // A node being restarted refuses the connection: the client sees the connection close.
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        lock(&shared.sockets).insert(id, [c, s]);
    }
    let back = Arc::clone(shared);
    let backward = thread::Builder::new()
        .name("proxy-pump".to_owned())
        .spawn(move || pump(server2, client2, &back));
    pump(client, server, shared);
    if let Ok(backward) = backward {
        let _ = backward.join();
    }
    lock(&shared.sockets).remove(&id);
}

/// Copies `from` to `to` as the mode says, until either side closes or the proxy does.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = [0; 16 * 1024];
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.mode() == Mode::Reset {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        match shared.mode() {
            Mode::Pass => {}
            Mode::Delay(d) => thread::sleep(d),
            Mode::Blackhole => continue,
            Mode::Reset => break,
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // One side is done: close both, so that the other pump and both peers see it.
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
