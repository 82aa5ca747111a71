//! Servers that misbehave on the wire: slow, interrupted, huge, not Redis at all.
//!
//! Most of these are fake servers, a thread with a `TcpListener` on 127.0.0.1 that plays one
//! part; the rest are real `redis-server`s put in an unusual state (a replica, out of memory,
//! closing idle connections). Each test bounds how long rlock takes to give up and checks that
//! what it says is one line naming the cause.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{proc_state, rlock, wait_for};

/// The status script's answer for a free lock: `{-2, '', 0, '', {}}`.
const FREE: &[u8] = b"*5\r\n:-2\r\n$0\r\n\r\n:0\r\n$0\r\n\r\n*0\r\n";

/// A fake server: `serve(n, stream)` plays its part on the `n`th connection (from 0), each on a
/// thread of its own. The listener lives until the test process ends.
fn fake_server(serve: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!(
        "redis://{}",
        listener.local_addr().expect("listener address")
    );
    let serve = std::sync::Arc::new(serve);
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let serve = std::sync::Arc::clone(&serve);
            thread::spawn(move || serve(n, stream));
        }
    });
    url
}

/// Reads one request (whatever one `read` returns: requests are small); `false` at end of file.
fn request(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

#[test]
fn a_stop_and_continue_during_a_read_does_not_fail_the_request() {
    let (received, got_request) = mpsc::channel::<()>();
    let (answer, go) = mpsc::channel::<()>();
    let go = std::sync::Mutex::new(go);
    let url = fake_server(move |n, mut stream| {
        while request(&mut stream) {
            if n == 0 {
                let _ = received.send(());
                let _ = go.lock().unwrap().recv();
            }
            let _ = stream.write_all(FREE);
        }
    });
    let mut status = rlock()
        .args(["status", "-k", "job", "-t", "10s", "-r", &url])
        .spawn();
    got_request
        .recv_timeout(Duration::from_secs(10))
        .expect("rlock sent its request");
    let pid = status.pid();
    wait_for(
        "rlock to wait for the reply",
        Duration::from_secs(5),
        || proc_state(pid) == Some('S'),
    );
    // Linux fails a read with a timeout with EINTR once the reader was stopped and continued.
    status.signal(Signal::SIGSTOP);
    wait_for("rlock to stop", Duration::from_secs(5), || {
        proc_state(pid) == Some('T')
    });
    status.signal(Signal::SIGCONT);
    wait_for("rlock to continue", Duration::from_secs(5), || {
        proc_state(pid) != Some('T')
    });
    let _ = answer.send(());
    status.wait().assert_code(3);
}
