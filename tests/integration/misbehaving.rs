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
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::servers::plain_server;
use crate::support::{
    RedisServer, RunOutput, RunningRlock, free_port, proc_state, rlock, temp_dir, wait_for,
    wait_for_file,
};

/// `-t 10s` gives every request a one-second deadline (a tenth of the TTL, at most a second).
const TTL: &str = "10s";
/// How long rlock may take to give up on a request with a one-second deadline: the deadline,
/// and slack for a loaded machine.
const GIVE_UP: Duration = Duration::from_secs(3);
/// The most memory rlock may use in these tests; it needs a few MiB.
const MAX_RSS_KIB: u64 = 64 * 1024;

/// The status script's answer for a free lock: `{'', '', -2, {}, 0, ''}` (no fence, no limit, no
/// waiter's mark, no holder, nobody queued).
const FREE: &[u8] = b"*6\r\n$0\r\n\r\n$0\r\n\r\n:-2\r\n*0\r\n:0\r\n$0\r\n\r\n";

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

/// Waits up to `within` for `run` to exit, polling its peak memory (`VmHWM`) while it runs;
/// panics if it is still running then or grew beyond [`MAX_RSS_KIB`]. Returns the output and the
/// peak in KiB.
fn finish_within(run: &mut RunningRlock, within: Duration) -> (RunOutput, u64) {
    let pid = run.pid();
    let until = Instant::now() + within;
    let mut peak = 0;
    loop {
        // Read before reaping: once reaped, /proc no longer has it.
        if let Some(hwm) = peak_rss_kib(pid) {
            peak = peak.max(hwm);
        }
        assert!(
            peak <= MAX_RSS_KIB,
            "rlock grew to {peak} KiB of memory (limit {MAX_RSS_KIB} KiB); killed it"
        );
        if let Some(out) = run.wait_timeout(Duration::ZERO) {
            return (out, peak);
        }
        assert!(
            Instant::now() < until,
            "rlock still running after {within:?} (peak {peak} KiB); killed it"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Process `pid`'s peak resident memory in KiB, from `/proc/PID/status`.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Asserts that `out`'s stderr is one line of at most 400 characters.
#[track_caller]
fn assert_one_short_line(out: &RunOutput) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].len() <= 400,
        "expected one line of at most 400 characters\n{out}"
    );
}

/// A server that accepts, reads the request, and then sends `reply` one byte every 300 ms.
fn dripping_server(reply: &'static [u8]) -> String {
    fake_server(move |_, mut stream| {
        if request(&mut stream) {
            for byte in reply.iter().cycle() {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(300));
            }
        }
    })
}

#[test]
fn a_server_dripping_its_reply_is_given_up_on_by_the_request_deadline() {
    let url = dripping_server(b"$1000\r\n");
    for args in [&["status"][..], &["run", "--", "echo", "ran"][..]] {
        let (subcommand, rest) = args.split_first().expect("a subcommand");
        let mut run = rlock()
            .args([subcommand, "-k", "job", "-t", TTL, "-r", &url])
            .args(rest)
            .spawn();
        let (out, _) = finish_within(&mut run, GIVE_UP);
        out.assert_code(69)
            .assert_stderr_contains("no answer within 1s");
        assert_one_short_line(&out);
        assert_eq!(out.stdout, "", "the command must not run\n{out}");
    }
}

#[test]
fn a_reply_announcing_two_billion_elements_is_refused_without_allocating_them() {
    let url = fake_server(|_, mut stream| {
        if request(&mut stream) {
            let _ = stream.write_all(b"*2147483647\r\n");
            while stream.write_all(&b":1\r\n".repeat(4096)).is_ok() {}
        }
    });
    let mut run = rlock()
        .args([
            "run", "-k", "job", "-t", TTL, "-r", &url, "--", "echo", "ran",
        ])
        .spawn();
    let (out, peak) = finish_within(&mut run, GIVE_UP);
    out.assert_code(69)
        .assert_stderr_contains("2147483647")
        .assert_stderr_contains("is this a Redis server?");
    assert_one_short_line(&out);
    assert!(peak < MAX_RSS_KIB, "peak {peak} KiB");
}

#[test]
fn a_server_that_is_not_redis_gets_one_line_asking_whether_it_is() {
    let url = fake_server(|_, mut stream| {
        if request(&mut stream) {
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 50\r\n\r\n\
                  <html>\n<body>\n<h1>400 Bad Request</h1>\n</body>\n</html>\n",
            );
        }
    });
    for args in [&["status"][..], &["run", "--", "echo", "ran"][..]] {
        let (subcommand, rest) = args.split_first().expect("a subcommand");
        let mut run = rlock()
            .args([subcommand, "-k", "job", "-t", TTL, "-r", &url])
            .args(rest)
            .spawn();
        let (out, _) = finish_within(&mut run, GIVE_UP);
        out.assert_code(69)
            .assert_stderr_contains("is this a Redis server?");
        assert_one_short_line(&out);
    }
}

/// A command for `rlock run` that writes `DIR/ready` once started, then waits for `DIR/go`.
fn ready_then_wait(dir: &std::path::Path) -> [String; 4] {
    let d = dir.display();
    [
        "sh".to_owned(),
        "-c".to_owned(),
        format!("echo started > {d}/ready; while [ ! -e {d}/go ]; do sleep 0.05; done"),
        "job".to_owned(),
    ]
}

#[test]
fn a_connection_the_server_closed_is_reopened_once_for_extend_and_release() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let mut run = rlock()
        .args(["run", "-k", "job", "-t", "3s", "-r", &redis.url(), "--"])
        .args(ready_then_wait(dir.path()))
        .spawn();
    wait_for_file(dir.path().join("ready"), Duration::from_secs(10));
    // As a server's `timeout` or a load balancer would: close rlock's idle connection.
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    let mut last = redis.pttl("rlock:{job}");
    wait_for("an extension", Duration::from_secs(5), || {
        let pttl = redis.pttl("rlock:{job}");
        let extended = pttl > last;
        last = pttl;
        extended
    });
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    std::fs::write(dir.path().join("go"), "").expect("write go");
    let out = run.wait();
    out.assert_success().assert_stderr_empty();
    assert!(!redis.exists("rlock:{job}"), "released\n{out}");
    rlock()
        .args(["run", "-k", "job", "-r", &redis.url(), "--", "true"])
        .output()
        .assert_success();
}

#[test]
fn an_idle_timeout_shorter_than_the_hold_costs_no_warning() {
    let redis = RedisServer::start();
    redis.cmd(&["CONFIG", "SET", "timeout", "1"]);
    let dir = temp_dir();
    let mut run = rlock()
        .args(["run", "-k", "job", "-t", "9s", "-r", &redis.url(), "--"])
        .args(ready_then_wait(dir.path()))
        .spawn();
    wait_for_file(dir.path().join("ready"), Duration::from_secs(10));
    // The first extension comes after 3 s: by then the server has closed the idle connection.
    let mut last = redis.pttl("rlock:{job}");
    wait_for("an extension", Duration::from_secs(10), || {
        let pttl = redis.pttl("rlock:{job}");
        let extended = pttl > last;
        last = pttl;
        extended
    });
    // And again before the release: only our own connection is left.
    wait_for(
        "the server to close rlock's connection",
        Duration::from_secs(10),
        || connected_clients(&redis) == 1,
    );
    std::fs::write(dir.path().join("go"), "").expect("write go");
    let out = run.wait();
    out.assert_success().assert_stderr_empty();
    assert!(!redis.exists("rlock:{job}"), "released\n{out}");
}

/// How many clients the server has, counting the connection that asks.
fn connected_clients(redis: &RedisServer) -> u32 {
    let redis::Value::BulkString(info) = redis.cmd(&["INFO", "clients"]) else {
        return 0;
    };
    let info = String::from_utf8_lossy(&info);
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_read_only_replica_exits_69_saying_so() {
    let redis = RedisServer::start();
    // A replica of nothing that answers: read-only, and it keeps what it holds.
    redis.cmd(&["REPLICAOF", "127.0.0.1", &free_port().to_string()]);
    let out = rlock()
        .args(["run", "-k", "job", "-r", &redis.url(), "--", "echo", "ran"])
        .output();
    out.assert_code(69)
        .assert_stderr_contains("rlock: Redis refused lock 'job': ")
        .assert_stderr_contains("read-only replica");
    assert_one_short_line(&out);
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
}

#[test]
fn a_node_turned_replica_mid_hold_ends_the_lease_naming_the_last_failure() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let mut run = rlock()
        .args(["run", "-k", "job", "-t", "3s", "-r", &redis.url(), "--"])
        .args(ready_then_wait(dir.path()))
        .spawn();
    wait_for_file(dir.path().join("ready"), Duration::from_secs(10));
    redis.cmd(&["REPLICAOF", "127.0.0.1", &free_port().to_string()]);
    let (out, _) = finish_within(&mut run, Duration::from_secs(15));
    out.assert_code(124)
        .assert_stderr_contains("no extension succeeded in time (last failure: ")
        .assert_stderr_contains("read-only replica");
    assert!(
        !out.stderr.contains("unreachable or too slow"),
        "the message names what the server said\n{out}"
    );
}

#[test]
fn a_server_out_of_memory_exits_69_saying_so() {
    let redis = RedisServer::start();
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let out = rlock()
        .args(["run", "-k", "job", "-r", &redis.url(), "--", "echo", "ran"])
        .output();
    out.assert_code(69).assert_stderr_contains("out of memory");
    assert_one_short_line(&out);
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
}

#[test]
fn a_server_that_wants_a_password_says_how_to_give_it() {
    let (server, _dir) = plain_server(Some("Pa55-w0rd-xyzzy"));
    let url = format!("redis://127.0.0.1:{}", server.port());
    for args in [&["status"][..], &["run", "--", "echo", "ran"][..]] {
        let (subcommand, rest) = args.split_first().expect("a subcommand");
        let out = rlock()
            .args([subcommand, "-k", "job", "-r", &url])
            .args(rest)
            .output();
        out.assert_code(69)
            .assert_stderr_contains("requires a password")
            .assert_stderr_contains("redis://:PASSWORD@host");
        assert_one_short_line(&out);
    }
}

#[test]
fn a_server_that_stalls_mid_hold_stops_the_command_and_rlock_exits() {
    // The acquisition is granted (fence 7); every later request gets a reply that never ends.
    let url = fake_server(|n, mut stream| {
        let mut answered = n > 0;
        while request(&mut stream) {
            if !answered {
                answered = true;
                let _ = stream.write_all(b"*4\r\n:1\r\n$1\r\n7\r\n$-1\r\n:0\r\n");
                continue;
            }
            for _ in 0..1000 {
                if stream.write_all(b"$").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let dir = temp_dir();
    let mut run = rlock()
        .args(["run", "-k", "job", "-t", "3s", "-r", &url, "--"])
        .args(ready_then_wait(dir.path()))
        .spawn();
    wait_for_file(dir.path().join("ready"), Duration::from_secs(10));
    let (out, _) = finish_within(&mut run, Duration::from_secs(10));
    out.assert_code(124)
        .assert_stderr_contains("last failure: ");
}

/// A proxy to `upstream` that, on its first connection, forwards the first request and then
/// closes the connection instead of passing the reply back: a reply lost with its connection.
fn losing_first_reply(upstream: String) -> String {
    fake_server(move |n, mut client| {
        let Ok(mut server) = TcpStream::connect(&upstream) else {
            return;
        };
        if n == 0 {
            let mut buf = vec![0u8; 64 * 1024];
            let Ok(len) = client.read(&mut buf) else {
                return;
            };
            let _ = server.write_all(&buf[..len]);
            let _ = server.read(&mut buf); // the reply, dropped with both connections
            return;
        }
        let (mut client_in, mut server_in) = (
            client.try_clone().expect("clone client"),
            server.try_clone().expect("clone server"),
        );
        thread::spawn(move || std::io::copy(&mut server_in, &mut client_in));
        let _ = std::io::copy(&mut client, &mut server);
    })
}

#[test]
fn a_grant_whose_reply_was_lost_is_granted_again_on_the_retry() {
    let redis = RedisServer::start();
    // Load the scripts, so that the first request through the proxy is the acquisition itself.
    rlock()
        .args(["run", "-k", "warm-up", "-r", &redis.url(), "--", "true"])
        .output()
        .assert_success();
    let proxy = losing_first_reply(format!("127.0.0.1:{}", redis.port()));
    let out = rlock()
        .args(["run", "-k", "job", "-r", &proxy, "--", "sh", "-c"])
        .arg("echo $RLOCK_FENCE")
        .output();
    out.assert_success();
    let fence = redis
        .get("rlock:{job}:fence")
        .expect("a fence was handed out");
    assert_eq!(
        out.stdout.trim(),
        fence,
        "the retry was granted the fence the lost grant took"
    );
    assert!(!redis.exists("rlock:{job}"), "released\n{out}");
}

#[test]
fn a_waiter_whose_subscription_is_flooded_stays_small_and_waits_its_time() {
    // The lock is busy for 5 s more; the answer to SUBSCRIBE announces two billion elements.
    let url = fake_server(|_, mut stream| {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(len @ 1..) = stream.read(&mut buf) {
            if buf[..len]
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
            {
                let _ = stream.write_all(b"*2147483647\r\n");
                while stream.write_all(&b":1\r\n".repeat(4096)).is_ok() {}
                return;
            }
            let _ = stream.write_all(b"*4\r\n:0\r\n:5000\r\n$-1\r\n$0\r\n\r\n");
        }
    });
    let mut run = rlock()
        .args([
            "run", "-k", "job", "-t", TTL, "-w", "3s", "-r", &url, "--", "echo", "ran",
        ])
        .spawn();
    let (out, peak) = finish_within(&mut run, Duration::from_secs(5));
    out.assert_code(75);
    assert!(peak < MAX_RSS_KIB, "peak {peak} KiB");
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
}

#[test]
fn a_tls_handshake_dripped_a_byte_at_a_time_ends_by_the_deadline() {
    // A TLS record header announcing 16 KiB of handshake, then a byte every 300 ms.
    let url = dripping_server(b"\x16\x03\x03\x40\x00").replace("redis://", "rediss://");
    let mut run = rlock()
        .args([
            "status",
            "-k",
            "job",
            "-t",
            TTL,
            "--tls-insecure",
            "-r",
            &url,
        ])
        .spawn();
    let (out, _) = finish_within(&mut run, GIVE_UP);
    out.assert_code(69)
        .assert_stderr_contains("no answer within 1s");
}

#[test]
fn a_sentinel_dripping_its_answer_is_given_up_on_by_the_deadline() {
    let sentinel = dripping_server(b"*2\r\n$9\r\n127.0.0.1\r\n");
    let url = sentinel.replace("redis://", "redis+sentinel://") + "/mymaster";
    let mut run = rlock()
        .args(["status", "-k", "job", "-t", TTL, "-r", &url])
        .spawn();
    let (out, _) = finish_within(&mut run, GIVE_UP);
    out.assert_code(69)
        .assert_stderr_contains("no answer within 1s");
    assert_one_short_line(&out);
}
