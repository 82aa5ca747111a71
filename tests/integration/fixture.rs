//! Smoke tests of the test fixtures themselves (`support.rs`), not of `rlock`.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::{RedisServer, process_gone};

/// A server starts on a non-default port, answers, and runs DEBUG commands.
#[test]
fn server_starts_and_answers() {
    let server = RedisServer::start();
    assert_ne!(server.port(), 6379);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(
        server.cmd(&["PING"]),
        redis::Value::SimpleString("PONG".into())
    );
    assert_eq!(server.cmd(&["DEBUG", "SLEEP", "0"]), redis::Value::Okay);

    server.set("k", "v");
    assert_eq!(server.get("k").as_deref(), Some("v"));
    assert!(server.exists("k"));
    assert_eq!(server.pttl("k"), -1);
    server.cmd(&["PEXPIRE", "k", "10000"]);
    assert!((1..=10_000).contains(&server.pttl("k")));
    assert_eq!(server.keys("*"), vec!["k".to_string()]);
    server.del("k");
    assert!(!server.exists("k"));
    assert_eq!(server.pttl("k"), -2);
}

/// `start_many` starts distinct servers concurrently.
#[test]
fn start_many_gives_distinct_ports() {
    let servers = RedisServer::start_many(5);
    let ports: HashSet<u16> = servers.iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), 5, "ports: {ports:?}");
    for server in &servers {
        server.set("who", &server.port().to_string());
    }
    for server in &servers {
        assert_eq!(server.get("who"), Some(server.port().to_string()));
    }
}

/// A paused server accepts connections but never replies; resuming restores it.
#[test]
fn pause_blocks_replies_until_resume() {
    let server = RedisServer::start();
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set read timeout");
    server.pause();
    let reply = redis::cmd("PING").query::<String>(&mut con);
    assert!(reply.is_err(), "paused server replied: {reply:?}");
    server.resume();
    assert_eq!(
        server.cmd(&["PING"]),
        redis::Value::SimpleString("PONG".into())
    );
}

/// `crash_restart` keeps the port, replaces the process and loses the data.
#[test]
fn crash_restart_keeps_port_and_loses_data() {
    let mut server = RedisServer::start();
    let (port, old_pid) = (server.port(), server.pid());
    server.set("k", "v");
    server.crash_restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert!(process_gone(old_pid));
    assert_eq!(server.get("k"), None);
}

/// `kill` leaves the server down; dropping a (even paused) server reaps its process.
#[test]
fn kill_and_drop_stop_the_process() {
    let mut killed = RedisServer::start();
    killed.kill();
    assert!(process_gone(killed.pid()));
    let client = redis::Client::open(killed.url()).expect("valid url");
    assert!(
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .is_err()
    );

    let paused = RedisServer::start();
    let pid = paused.pid();
    paused.pause();
    drop(paused);
    assert!(process_gone(pid));
}
