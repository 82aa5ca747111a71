//! Waiting for a busy lock (`--wait`): a waiter starts as soon as the holder releases or its lease
//! expires, a signal ends the wait cleanly, and competing waiters all get through.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::support::{RedisServer, Rlock, on, rlock, temp_dir, wait_for, wait_for_file};

const SOON: Duration = Duration::from_secs(5);

/// How many clients listen on the release channel of lock `key` on `redis`.
pub(crate) fn listeners(redis: &RedisServer, key: &str) -> i64 {
    match redis.cmd(&["PUBSUB", "NUMSUB", &format!("rlock:{{{key}}}:released")]) {
        redis::Value::Array(items) => match items.get(1) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

fn acquire_by_hand(servers: &[RedisServer], key: &str, ttl: &str) -> String {
    let out = rlock()
        .arg("acquire")
        .on(servers)
        .args(["-k", key, "-t", ttl])
        .output();
    out.assert_success();
    out.stdout.trim().to_owned()
}

/// `rlock -k job -w 20s` whose command writes its start time (µs since the epoch) to `file`.
fn waiter(servers: &[RedisServer], file: &Path) -> Rlock {
    on(servers).args([
        "-k",
        "job",
        "-w",
        "20s",
        "-c",
        &format!("date +%s%6N > {}", file.display()),
    ])
}

/// The time from `since` (µs since the epoch) to the start time recorded in `file`.
fn started_after(file: &Path, since: u128) -> Duration {
    let start: u128 = wait_for_file(file, SOON)
        .trim()
        .parse()
        .expect("a time in µs");
    Duration::from_micros(u64::try_from(start.saturating_sub(since)).expect("a sane delay"))
}

/// Microseconds since the Unix epoch, as `date +%s%6N` prints them.
fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

#[test]
fn a_waiter_starts_as_soon_as_the_holder_releases() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    // Three handoffs: the backstop wakes a waiter once a second, so one quick handoff could be luck.
    for round in 0..3 {
        let token = acquire_by_hand(&redis, "job", "30s");
        let started = dir.path().join(format!("started{round}"));
        let mut waiter = waiter(&redis, &started).spawn();
        wait_for("the waiter to listen", SOON, || {
            listeners(&redis[0], "job") == 1
        });
        let released = now_us();
        rlock()
            .arg("release")
            .on(&redis)
            .args(["-k", "job", "--token", &token])
            .output()
            .assert_success();
        waiter.wait().assert_success();
        let handoff = started_after(&started, released);
        assert!(
            handoff < Duration::from_millis(250),
            "round {round}: handoff took {handoff:?}"
        );
    }
}

#[test]
fn a_crashed_holders_lock_is_taken_right_after_it_expires() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    acquire_by_hand(&redis, "job", "1s"); // never released: the holder "crashed"
    let expiry = now_us() + u128::try_from(redis[0].pttl("rlock:{job}")).unwrap() * 1000;
    let started = dir.path().join("started");
    waiter(&redis, &started).output().assert_success();
    let start: u128 = fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start + 5_000 >= expiry,
        "started {} ms before the lease expired",
        (expiry - start) / 1000
    );
    let late = Duration::from_micros(u64::try_from(start.saturating_sub(expiry)).unwrap());
    assert!(
        late < Duration::from_millis(200),
        "took over {late:?} after expiry"
    );
}

#[test]
fn a_signal_ends_a_wait_promptly_and_leaves_nothing_behind() {
    let redis = [RedisServer::start()];
    let token = acquire_by_hand(&redis, "job", "30s");
    for (signal, status) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut waiter = on(&redis)
            .args(["-k", "job", "-w", "forever", "--", "echo", "ran"])
            .spawn();
        wait_for("the waiter to listen", SOON, || {
            listeners(&redis[0], "job") == 1
        });
        let sent = Instant::now();
        waiter.signal(signal);
        let out = waiter.wait_timeout(SOON).expect("the waiter ends");
        out.assert_code(status);
        assert_eq!(out.stdout, "", "the command did not run");
        assert!(sent.elapsed() < Duration::from_secs(1), "{out}");
        assert_eq!(
            redis[0].get("rlock:{job}"),
            Some(token.clone()),
            "the holder's lock is untouched"
        );
        wait_for("the waiter's subscription to close", SOON, || {
            listeners(&redis[0], "job") == 0
        });
    }
}

#[test]
fn a_redlock_waiter_wakes_on_an_announcement_from_any_node() {
    let redis = RedisServer::start_many(3);
    let dir = temp_dir();
    for (round, announcer) in redis.iter().enumerate() {
        acquire_by_hand(&redis, "job", "30s");
        let started = dir.path().join(format!("started{round}"));
        let mut waiter = waiter(&redis, &started).spawn();
        wait_for("the waiter to listen everywhere", SOON, || {
            redis.iter().all(|r| listeners(r, "job") == 1)
        });
        // The lock vanishes without a word (as if expired), then one node alone announces it.
        for r in &redis {
            r.del("rlock:{job}");
        }
        let announced = now_us();
        announcer.cmd(&["PUBLISH", "rlock:{job}:released", ""]);
        waiter.wait().assert_success();
        let wake = started_after(&started, announced);
        assert!(
            wake < Duration::from_millis(250),
            "node {round}'s announcement took {wake:?}"
        );
    }
}

#[test]
fn eight_waiters_taking_the_lock_fifty_times_each_all_get_through_one_at_a_time() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    let critical = format!(
        "mkdir {0}/inside || {{ echo overlap >> {0}/errors; exit 1; }}; echo $RLOCK_FENCE >> {0}/fences; rmdir {0}/inside",
        dir.path().display()
    );
    let loop_script = |n: usize| {
        format!(
            "i=0; while [ $i -lt 50 ]; do \"$BIN\" -r {url} -k shared -w 60s -c '{critical}' || exit 1; \
             i=$((i+1)); echo $i > {dir}/count{n}; done",
            url = redis[0].url(),
            dir = dir.path().display(),
        )
    };
    let started = Instant::now();
    let mut loops: Vec<std::process::Child> = (0..8)
        .map(|n| {
            std::process::Command::new("sh")
                .args(["-c", &loop_script(n)])
                .env("BIN", env!("CARGO_BIN_EXE_rlock"))
                .spawn()
                .expect("sh runs")
        })
        .collect();
    for child in &mut loops {
        assert!(child.wait().unwrap().success(), "a waiter loop failed");
    }
    for n in 0..8 {
        let count = fs::read_to_string(dir.path().join(format!("count{n}"))).unwrap_or_default();
        assert_eq!(
            count.trim(),
            "50",
            "waiter {n} did not get through all 50 times"
        );
    }
    assert!(
        !dir.path().join("errors").exists(),
        "two holders were inside at once"
    );
    let fences: Vec<u64> = fs::read_to_string(dir.path().join("fences"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(fences.len(), 400);
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "fences rise with every grant"
    );
    eprintln!("400 handoffs among 8 waiters took {:?}", started.elapsed());
}
