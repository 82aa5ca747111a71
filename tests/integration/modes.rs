//! Lock modes (issue 16): `--limit N` admits at most N holders at once, each in one of N slots;
//! `--shared` holders coexist while an exclusive holder excludes them all, and a waiting exclusive
//! holder is not starved by shared ones that keep arriving. The commands under the lock check
//! these promises themselves (marker files, a counter kept under flock(1)), never rlock's output.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{
    RedisServer, RunOutput, RunningRlock, by_hand, fence_in, json_of, on, skip, temp_dir, wait_for,
    wait_for_file,
};
use crate::waiting::listeners;

/// Generous bound for things that should happen "at once" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(5);
/// The limited lock of these tests, as in the README's "at most 3 backups hit the NAS at once".
const NAS: &str = "nas-backup";
/// The lock that shared readers and an exclusive rebuild take.
const DATASET: &str = "dataset";

/// The Redis keys of lock `key` left on `server`, but its fence counter, which never expires.
fn keys_left(server: &RedisServer, key: &str) -> Vec<String> {
    let fence = format!("rlock:{{{key}}}:fence");
    let mut keys = server.keys(&format!("rlock:{{{key}}}*"));
    keys.retain(|k| *k != fence);
    keys
}

/// Waits until no node has a key of lock `key` left (they all expire within `ttl`).
#[track_caller]
fn assert_no_keys_left(servers: &[RedisServer], key: &str, ttl: Duration) {
    let deadline = Instant::now() + ttl + SOON;
    // The closure names the keys left; wait_for's own, later, timeout cannot.
    wait_for("the lock's keys to go", ttl + 2 * SOON, || {
        let left: Vec<String> = servers.iter().flat_map(|s| keys_left(s, key)).collect();
        assert!(
            left.is_empty() || Instant::now() < deadline,
            "keys of lock '{key}' outlived its TTL: {left:?}"
        );
        left.is_empty()
    });
}

/// Every number written in decimal in `text`.
fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Microseconds since the Unix epoch, as `date +%s%6N` prints them.
fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros()
}

/// The names of the files in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The contents of `path`, or "" if it does not exist.
fn text_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Whether flock(1) runs here; says why the test is skipped if not.
fn have_flock() -> bool {
    let found = Command::new("flock").arg("--version").output().is_ok();
    if !found {
        skip("flock(1) is missing: apt-get install util-linux");
    }
    found
}

/// Hold times of about 100-400 ms, a different mix on every run (`seed` reproduces one).
fn random_holds(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            // xorshift64: enough to vary the holds, no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            100 + x % 300
        })
        .collect()
}

/// Twenty clients run `rlock --limit 3 -w 30s` at once, each holding for a random short time.
/// Each command counts the holders inside under flock(1), and claims its slot with mkdir, which
/// fails if another holder of the slot is inside. The test then checks what they recorded.
fn twenty_clients_never_exceed_three_inside(servers: &[RedisServer]) {
    if !have_flock() {
        return;
    }
    let dir = temp_dir();
    let d = dir.path().display();
    fs::write(dir.path().join("count"), "0\n").expect("write the counter");
    let seed = u64::try_from(now_us() % u128::from(u64::MAX)).expect("fits");
    let holds = random_holds(seed, 20);
    let started = Instant::now();
    let mut clients: Vec<RunningRlock> = holds
        .iter()
        .map(|hold| {
            let script = format!(
                "cd {d} || exit 99
                 mkdir slot$RLOCK_SLOT || echo \"slot $RLOCK_SLOT held twice\" >> errors
                 flock count.lock sh -c 'n=$(($(cat count) + 1)); echo $n > count; echo $n >> inside'
                 echo \"$RLOCK_MODE $RLOCK_SLOT $RLOCK_LIMIT\" >> env
                 sleep 0.{hold:03}
                 flock count.lock sh -c 'echo $(($(cat count) - 1)) > count'
                 rmdir slot$RLOCK_SLOT"
            );
            on(servers)
                // A 5 s TTL gives each request 500 ms: a loaded machine's slow answer is no
                // warning on stderr, which the test wants empty.
                .args(["--limit", "3", "-w", "30s", "-t", "5s", "-k", NAS])
                .args(["--", "sh", "-c", &script])
                .spawn()
        })
        .collect();
    for client in &mut clients {
        client.wait().assert_success().assert_stderr_empty();
    }
    let took = started.elapsed();

    let why = format!("holds {holds:?} (seed {seed})");
    let errors = text_of(&dir.path().join("errors"));
    assert_eq!(errors, "", "two holders of one slot at once; {why}");
    let inside: Vec<u64> = numbers_in(&text_of(&dir.path().join("inside")));
    assert_eq!(inside.len(), 20, "every client got in once: {inside:?}");
    let peak = inside.iter().copied().max().unwrap_or(0);
    assert!(peak <= 3, "{peak} holders were inside at once; {why}");
    assert_eq!(peak, 3, "the limit admits three at once, not fewer; {why}");
    assert_eq!(text_of(&dir.path().join("count")).trim(), "0");
    let env = text_of(&dir.path().join("env"));
    assert_eq!(env.lines().count(), 20, "{env}");
    for line in env.lines() {
        assert!(
            ["limit 0 3", "limit 1 3", "limit 2 3"].contains(&line),
            "RLOCK_MODE RLOCK_SLOT RLOCK_LIMIT: {line}"
        );
    }
    assert_no_keys_left(servers, NAS, Duration::from_secs(5));
    eprintln!(
        "20 clients through a limit of 3 on {} node(s) took {took:?}",
        servers.len()
    );
}

#[test]
fn twenty_clients_on_limit_3_never_exceed_3_inside_on_one_node() {
    twenty_clients_never_exceed_three_inside(&[RedisServer::start()]);
}

#[test]
fn twenty_clients_on_limit_3_never_exceed_3_inside_on_three_nodes() {
    twenty_clients_never_exceed_three_inside(&RedisServer::start_many(3));
}

#[test]
fn a_crashed_holders_slot_is_taken_over_after_its_ttl_while_the_other_holder_keeps_its_own() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    let d = dir.path().display();
    // The commands hold while `hold` exists: even an orphan of the killed rlock ends with the test.
    fs::write(dir.path().join("hold"), "").expect("write the hold file");
    let holder = |name: &str, ttl: &str| {
        on(&redis)
            .args(["--limit", "2", "-t", ttl, "-k", NAS, "-c"])
            .arg(format!(
                "echo $RLOCK_SLOT > {d}/{name}; while [ -e {d}/hold ]; do sleep 0.05; done"
            ))
            .spawn()
    };
    let mut crashed = holder("crashed", "1s");
    let mut survivor = holder("survivor", "2s");
    let slot = wait_for_file(dir.path().join("crashed"), SOON);
    let other = wait_for_file(dir.path().join("survivor"), SOON);
    assert_ne!(slot, other, "two holders, two slots");
    let slot_key = format!("rlock:{{{NAS}}}:slot:{}", slot.trim());

    crashed.signal(Signal::SIGKILL);
    crashed.wait();
    let asked = now_us();
    let pttl = redis[0].pttl(&slot_key);
    assert!(pttl > 0, "the crashed holder's slot is still held: {pttl}");
    let expiry = asked + u128::try_from(pttl).expect("positive") * 1000;

    let out = on(&redis)
        .args(["--limit", "2", "-w", "10s", "-t", "1s", "-k", NAS, "-c"])
        .arg("echo $(date +%s%6N) $RLOCK_SLOT")
        .output();
    out.assert_success();
    let (start, taken) = out
        .stdout
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("the command printed its start and slot\n{out}"));
    assert_eq!(taken, slot.trim(), "the crashed holder's slot was taken");
    let start: u128 = start.parse().expect("a time in µs");
    assert!(
        start + 5_000 >= expiry,
        "started {} ms before the crashed holder's lease expired\n{out}",
        (expiry - start) / 1000
    );
    let late = Duration::from_micros(u64::try_from(start.saturating_sub(expiry)).expect("sane"));
    assert!(
        late < Duration::from_secs(1),
        "took the slot {late:?} after it expired\n{out}"
    );
    assert!(
        survivor.wait_timeout(Duration::ZERO).is_none(),
        "the other holder still runs"
    );
    let survivor_key = format!("rlock:{{{NAS}}}:slot:{}", other.trim());
    assert!(redis[0].exists(&survivor_key), "and keeps its slot");
    fs::remove_file(dir.path().join("hold")).expect("remove the hold file");
    survivor.wait().assert_success();
    assert_no_keys_left(&redis, NAS, Duration::from_secs(2));
}

#[test]
fn a_crashed_shared_holder_expires_on_its_own_while_another_keeps_extending() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    let d = dir.path().display();
    fs::write(dir.path().join("hold"), "").expect("write the hold file");
    let reader = |name: &str| {
        on(&redis)
            .args(["--shared", "-t", "1s", "-k", DATASET, "-c"])
            .arg(format!(
                "echo $RLOCK_TOKEN > {d}/{name}; while [ -e {d}/hold ]; do sleep 0.05; done"
            ))
            .spawn()
    };
    let mut crashed = reader("crashed");
    let mut survivor = reader("survivor");
    wait_for_file(dir.path().join("crashed"), SOON);
    let token = wait_for_file(dir.path().join("survivor"), SOON);
    let holders = || {
        let status = by_hand(
            "status",
            &redis,
            DATASET,
            &["--shared", "--format", "json", "--token", token.trim()],
        );
        json_of(&status)["holders"]
            .as_array()
            .expect("a holders array")
            .clone()
    };
    assert_eq!(holders().len(), 2);

    crashed.signal(Signal::SIGKILL);
    crashed.wait();
    // The survivor extends its hold every third of its TTL; that must not keep the other alive.
    let mut left = Vec::new();
    wait_for("the crashed holder's hold to expire", SOON, || {
        left = holders();
        left.len() == 1
    });
    assert_eq!(left[0]["mine"], true, "the survivor holds on: {left:?}");
    assert!(
        survivor.wait_timeout(Duration::ZERO).is_none(),
        "the survivor still runs"
    );
    fs::remove_file(dir.path().join("hold")).expect("remove the hold file");
    survivor.wait().assert_success();
    assert_no_keys_left(&redis, DATASET, Duration::from_secs(1));
}

#[test]
fn a_released_slot_or_shared_hold_wakes_its_waiter_at_once() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    // A waiter for a slot needs one of the two holders gone; an exclusive waiter needs both.
    for (round, (mode, waiter_mode)) in [
        (&["--limit", "2"][..], &["--limit", "2"][..]),
        (&["--shared"], &[]),
    ]
    .into_iter()
    .enumerate()
    {
        let tokens: Vec<String> = (0..2)
            .map(|_| {
                let out = by_hand("acquire", &redis, "job", &[mode, &["-t", "30s"]].concat());
                out.assert_success();
                out.stdout.trim().to_owned()
            })
            .collect();
        let started = dir.path().join(format!("started{round}"));
        let mut waiter = on(&redis)
            .args(["-k", "job", "-w", "20s"])
            .args(waiter_mode)
            .args(["-c", &format!("date +%s%6N > {}", started.display())])
            .spawn();
        wait_for("the waiter to listen", SOON, || {
            listeners(&redis[0], "job") == 1
        });
        let release = |token: &str| {
            by_hand(
                "release",
                &redis,
                "job",
                &[mode, &["--token", token]].concat(),
            )
            .assert_success();
        };
        if waiter_mode.is_empty() {
            release(&tokens[1]);
        }
        let released = now_us();
        release(&tokens[0]);
        waiter.wait().assert_success();
        let start: u128 = wait_for_file(&started, SOON)
            .trim()
            .parse()
            .expect("a time in µs");
        let handoff =
            Duration::from_micros(u64::try_from(start.saturating_sub(released)).expect("sane"));
        assert!(
            handoff < Duration::from_millis(250),
            "{mode:?}: the handoff took {handoff:?}"
        );
        if !waiter_mode.is_empty() {
            release(&tokens[1]);
        }
    }
}

#[test]
fn an_exclusive_waiter_takes_its_intent_back_when_it_gives_up_and_it_expires_if_it_dies() {
    let redis = [RedisServer::start()];
    let intent = format!("rlock:{{{DATASET}}}:intent");
    by_hand("acquire", &redis, DATASET, &["--shared", "-t", "30s"]).assert_success();
    let reader = || {
        on(&redis)
            .args(["--shared", "-k", DATASET, "--", "echo", "ran"])
            .output()
    };
    let writer = || on(&redis).args(["-w", "20s", "-t", "1s", "-k", DATASET, "--", "echo", "ran"]);

    // At the end of its wait.
    on(&redis)
        .args(["-w", "300ms", "-k", DATASET, "--", "echo", "ran"])
        .output()
        .assert_code(75);
    assert!(!redis[0].exists(&intent), "taken back as the wait ended");
    reader().assert_success();

    // Stopped by a signal.
    let mut waiting = writer().spawn();
    wait_for("the writer's intent", SOON, || redis[0].exists(&intent));
    reader().assert_code(75);
    waiting.signal(Signal::SIGTERM);
    waiting.wait().assert_code(143);
    assert!(
        !redis[0].exists(&intent),
        "taken back as the wait was stopped"
    );
    reader().assert_success();

    // Killed: nobody takes it back, so it lasts max(ttl, 3s) at most.
    let mut waiting = writer().spawn();
    wait_for("the writer's intent", SOON, || redis[0].exists(&intent));
    waiting.signal(Signal::SIGKILL);
    waiting.wait();
    let pttl = redis[0].pttl(&intent);
    assert!(
        pttl > 0 && pttl <= 3000,
        "the intent lasts 3 s at most: {pttl} ms"
    );
    let out = on(&redis)
        .args(["--shared", "-w", "10s", "-k", DATASET, "--", "echo", "ran"])
        .output();
    out.assert_success();
    let expired = Duration::from_millis(pttl.unsigned_abs());
    assert!(
        out.elapsed < expired + Duration::from_secs(1),
        "a reader gets in once the dead writer's intent expires\n{out}"
    );
}

/// Asserts that `out` is a refusal: exit 2, the command not run, one `rlock:` line on stderr
/// naming every number in `named`.
#[track_caller]
fn assert_refused(out: &RunOutput, named: &[u64]) {
    out.assert_code(2);
    assert_eq!(out.stdout, "", "the command must not run\n{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr\n{out}");
    assert!(lines[0].starts_with("rlock: "), "{out}");
    let numbers = numbers_in(lines[0]);
    for n in named {
        assert!(numbers.contains(n), "the message names {n}\n{out}");
    }
}

#[test]
fn a_lock_held_with_limit_3_refuses_limit_4_or_no_limit_naming_both_values() {
    let redis = [RedisServer::start()];
    let token = by_hand("acquire", &redis, NAS, &["--limit", "3", "-t", "20s"]);
    token.assert_success();
    let token = token.stdout.trim();
    let run = |args: &[&str]| {
        on(&redis)
            .args(["-k", NAS])
            .args(args)
            .args(["--", "echo", "ran"])
            .output()
    };

    assert_refused(&run(&["--limit", "4"]), &[3, 4]);
    assert_refused(&run(&["--limit", "2"]), &[3, 2]);
    // A refusal is not a busy lock: waiting would not make the limits agree.
    let waited = run(&["--limit", "4", "-w", "10s"]);
    assert_refused(&waited, &[3, 4]);
    assert!(waited.elapsed < SOON, "refused at once\n{waited}");
    assert_refused(&run(&[]), &[3]);
    assert_refused(&run(&["--shared"]), &[3]);
    assert_refused(&by_hand("acquire", &redis, NAS, &["--limit", "4"]), &[3, 4]);
    let slots: Vec<String> = (0..3)
        .filter_map(|i| redis[0].get(&format!("rlock:{{{NAS}}}:slot:{i}")))
        .collect();
    assert_eq!(slots, [token], "the holder keeps its slot, and only it");

    // The limit belongs to the lock while someone holds it; once free, any limit will do.
    by_hand("release", &redis, NAS, &["--limit", "3", "--token", token]).assert_success();
    run(&["--limit", "4"])
        .assert_success()
        .assert_stdout_eq("ran\n");
}

#[test]
fn a_lock_held_exclusively_or_shared_refuses_a_limit() {
    let redis = [RedisServer::start()];
    for mode in [&[][..], &["--shared"]] {
        let held = by_hand("acquire", &redis, DATASET, mode);
        held.assert_success();
        let token = held.stdout.trim();
        let out = on(&redis)
            .args(["--limit", "3", "-k", DATASET, "--", "echo", "ran"])
            .output();
        assert_refused(&out, &[]);
        by_hand(
            "release",
            &redis,
            DATASET,
            &[mode, &["--token", token]].concat(),
        )
        .assert_success();
    }
}

#[test]
fn limit_with_shared_or_outside_1_to_1000_is_a_usage_error() {
    let redis = [RedisServer::start()];
    for args in [
        &["--limit", "3", "--shared"][..],
        &["--limit", "0"],
        &["--limit", "1001"],
        &["--limit", "three"],
    ] {
        let out = on(&redis)
            .args(["-k", NAS])
            .args(args)
            .args(["--", "echo", "ran"])
            .output();
        out.assert_code(2);
        assert_eq!(out.stdout, "", "the command must not run\n{out}");
    }
    assert!(keys_left(&redis[0], NAS).is_empty());
}

#[test]
fn limit_1_is_the_plain_exclusive_lock_not_another_limit() {
    let redis = [RedisServer::start()];
    for (held, asked) in [(&[][..], &["--limit", "1"][..]), (&["--limit", "1"], &[])] {
        let token = by_hand("acquire", &redis, NAS, &[held, &["-t", "20s"]].concat());
        token.assert_success();
        let out = on(&redis)
            .args(["-k", NAS])
            .args(asked)
            .args(["--", "echo", "ran"])
            .output();
        out.assert_code(75);
        assert_eq!(out.stdout, "", "busy, not refused\n{out}");
        let token = token.stdout.trim();
        assert_eq!(
            redis[0].get(&format!("rlock:{{{NAS}}}")).as_deref(),
            Some(token)
        );
        by_hand("release", &redis, NAS, &["--token", token]).assert_success();
    }
}

/// Whether a majority of `servers` hold the writer-intent marker of `key`.
fn intent_on_a_majority(servers: &[RedisServer], key: &str) -> bool {
    let intent = format!("rlock:{{{key}}}:intent");
    servers.iter().filter(|s| s.exists(&intent)).count() > servers.len() / 2
}

/// Two shared readers hold the lock together while an exclusive writer waits; a third reader is
/// refused meanwhile; when the readers leave, the writer runs alone, and nobody gets in beside it.
fn shared_holders_overlap_then_the_exclusive_one_runs_alone(servers: &[RedisServer]) {
    let dir = temp_dir();
    let d = dir.path().display();
    fs::create_dir(dir.path().join("in")).expect("create the in directory");
    let reader = |name: &str| {
        on(servers)
            .args(["--shared", "-t", "2s", "-k", DATASET, "-c"])
            .arg(format!(
                "touch {d}/in/{name}; [ -e {d}/writer-in ] && echo {name} >> {d}/overlaps; \
                 echo $RLOCK_MODE > {d}/{name}; while [ ! -e {d}/go ]; do sleep 0.01; done; \
                 rm {d}/in/{name}"
            ))
            .spawn()
    };
    let (mut a, mut b) = (reader("a"), reader("b"));
    assert_eq!(wait_for_file(dir.path().join("a"), SOON), "shared\n");
    assert_eq!(wait_for_file(dir.path().join("b"), SOON), "shared\n");
    assert_eq!(names_in(&dir.path().join("in")), ["a", "b"], "both inside");

    let mut writer = on(servers)
        .args(["-w", "20s", "-t", "2s", "-k", DATASET, "-c"])
        .arg(format!(
            "touch {d}/writer-in; ls {d}/in > {d}/writer-saw; echo $RLOCK_MODE > {d}/writer; \
             while [ ! -e {d}/done ]; do sleep 0.01; done; rm {d}/writer-in"
        ))
        .spawn();
    wait_for("the writer to announce its intent", SOON, || {
        assert!(
            !dir.path().join("writer").exists(),
            "the exclusive writer got in beside the shared readers"
        );
        intent_on_a_majority(servers, DATASET)
    });
    let late = on(servers)
        .args(["--shared", "-k", DATASET, "--", "echo", "ran"])
        .output();
    late.assert_code(75).assert_stderr_contains(&format!(
        "rlock: lock '{DATASET}' is held exclusively, or an exclusive waiter is next"
    ));
    assert_eq!(
        late.stdout, "",
        "no new reader while a writer waits\n{late}"
    );
    assert!(
        !dir.path().join("writer").exists(),
        "the writer waits for the readers"
    );

    fs::write(dir.path().join("go"), "").expect("write the go file");
    a.wait().assert_success();
    b.wait().assert_success();
    assert_eq!(
        wait_for_file(dir.path().join("writer"), SOON),
        "exclusive\n"
    );
    assert_eq!(
        text_of(&dir.path().join("writer-saw")),
        "",
        "the writer saw no reader inside"
    );
    assert!(
        !intent_on_a_majority(servers, DATASET),
        "the intent goes when the writer is granted"
    );
    for args in [&["--shared"][..], &[]] {
        let beside = on(servers)
            .args(["-k", DATASET])
            .args(args)
            .args(["--", "echo", "ran"])
            .output();
        beside.assert_code(75);
        assert_eq!(beside.stdout, "", "nobody beside the writer\n{beside}");
    }
    fs::write(dir.path().join("done"), "").expect("write the done file");
    writer.wait().assert_success();
    assert_eq!(text_of(&dir.path().join("overlaps")), "");
    assert_no_keys_left(servers, DATASET, Duration::from_secs(3));
}

#[test]
fn shared_holders_overlap_while_an_exclusive_one_waits_then_it_runs_alone() {
    shared_holders_overlap_then_the_exclusive_one_runs_alone(&[RedisServer::start()]);
}

#[test]
fn shared_and_exclusive_holders_take_turns_on_three_nodes() {
    shared_holders_overlap_then_the_exclusive_one_runs_alone(&RedisServer::start_many(3));
}

#[test]
fn shared_holders_arriving_continuously_do_not_starve_a_waiting_exclusive_one() {
    let redis = [RedisServer::start()];
    let dir = temp_dir();
    let d = dir.path().display();
    let inside = dir.path().join("in");
    fs::create_dir(&inside).expect("create the in directory");
    let reader = |n: usize| {
        on(&redis)
            .args(["--shared", "-w", "20s", "-t", "2s", "-k", DATASET, "-c"])
            .arg(format!(
                "touch {d}/in/{n}; [ -e {d}/writer-in ] && echo {n} >> {d}/overlaps; \
                 sleep 0.{}; rm {d}/in/{n}",
                3 + n % 3
            ))
            .spawn()
    };
    // Three readers at all times, each replaced as soon as it ends: their holds overlap, so
    // without the writer's intent the lock would never be free of readers.
    let mut running: Vec<RunningRlock> = (0..3).map(reader).collect();
    let mut finished: Vec<RunOutput> = Vec::new();
    let mut arrived = running.len();
    let mut replace_finished = |running: &mut Vec<RunningRlock>, arrived: &mut usize| {
        for client in running.iter_mut() {
            if let Some(out) = client.wait_timeout(Duration::ZERO) {
                finished.push(out);
                *client = reader(*arrived);
                *arrived += 1;
            }
        }
    };
    wait_for("two readers inside at once", SOON, || {
        replace_finished(&mut running, &mut arrived);
        names_in(&inside).len() >= 2
    });

    let before_writer = arrived;
    let asked = Instant::now();
    let mut writer = on(&redis)
        .args(["-w", "20s", "-t", "2s", "-k", DATASET, "-c"])
        .arg(format!(
            "touch {d}/writer-in; ls {d}/in > {d}/writer-saw; sleep 0.2; rm {d}/writer-in"
        ))
        .spawn();
    wait_for(
        "the writer to get in while readers keep arriving",
        SOON,
        || {
            replace_finished(&mut running, &mut arrived);
            dir.path().join("writer-in").exists()
        },
    );
    let waited = asked.elapsed();
    assert!(
        arrived > before_writer,
        "readers kept arriving while the writer waited"
    );
    writer.wait().assert_success();
    assert_eq!(
        text_of(&dir.path().join("writer-saw")),
        "",
        "the writer ran alone"
    );

    finished.extend(running.iter_mut().map(RunningRlock::wait));
    for out in &finished {
        out.assert_success();
    }
    assert_eq!(
        text_of(&dir.path().join("overlaps")),
        "",
        "no reader beside the writer"
    );
    eprintln!("the writer waited {waited:?} while {arrived} readers came and went");
}

/// Grants of every mode, one after another, get rising fences; so does a grant that follows two
/// overlapping ones (shared holders, or two slots).
fn fences_rise_across_modes(servers: &[RedisServer]) {
    let modes: [&[&str]; 8] = [
        &[],
        &["--shared"],
        &[],
        &["--limit", "2"],
        &["--limit", "2"],
        &["--shared"],
        &["--limit", "3"],
        &[],
    ];
    let mut fences = Vec::new();
    for mode in modes {
        let out = on(servers)
            .args(["-k", "job"])
            .args(mode)
            .args(["-c", "echo $RLOCK_FENCE"])
            .output();
        out.assert_success();
        let fence: u64 = out
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the command printed a fence\n{out}"));
        fences.push((mode.join(" "), fence));
    }
    assert!(
        fences.windows(2).all(|w| w[0].1 < w[1].1),
        "fences rise with every grant: {fences:?}"
    );

    let mut last = fences.last().expect("eight fences").1;
    for (mode, release) in [("--shared", "--shared"), ("--limit=2", "--limit=2")] {
        let overlapping: Vec<Value> = (0..2)
            .map(|_| {
                json_of(&by_hand(
                    "acquire",
                    servers,
                    "job",
                    &[mode, "--format", "json"],
                ))
            })
            .collect();
        for v in &overlapping {
            let fence = fence_in(v);
            assert!(fence > last, "{mode}: {fence} after {last}");
            let token = v["token"].as_str().expect("a token");
            by_hand("release", servers, "job", &[release, "--token", token]).assert_success();
        }
        let next = on(servers)
            .args(["-k", "job", "-c", "echo $RLOCK_FENCE"])
            .output();
        next.assert_success();
        let next: u64 = next.stdout.trim().parse().expect("a fence");
        let highest = overlapping.iter().map(fence_in).max().expect("two");
        assert!(
            next > highest,
            "an exclusive grant after two {mode} holders: {next} after {highest}"
        );
        last = next;
    }
}

#[test]
fn fences_strictly_increase_across_modes_on_one_node() {
    fences_rise_across_modes(&[RedisServer::start()]);
}

#[test]
fn fences_strictly_increase_across_modes_on_five_nodes() {
    fences_rise_across_modes(&RedisServer::start_many(5));
}

/// The `RLOCK_*` lease variables that `acquire --format shell` exports, as a shell sees them.
#[track_caller]
fn shell_exports(servers: &[RedisServer], key: &str, mode: &[&str]) -> (String, String) {
    let out = by_hand("acquire", servers, key, mode);
    let exports = by_hand(
        "acquire",
        servers,
        key,
        &[mode, &["--format", "shell"]].concat(),
    );
    out.assert_success();
    exports.assert_success();
    let script = format!(
        "{}\necho \"$RLOCK_MODE ${{RLOCK_SLOT-none}} ${{RLOCK_LIMIT-none}} $RLOCK_TOKEN\"",
        exports.stdout
    );
    let shell = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh runs");
    let printed = String::from_utf8_lossy(&shell.stdout).trim().to_owned();
    let (seen, token) = printed
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("{printed}\n{exports}"));
    (seen.to_owned(), token.to_owned())
}

/// `status` of `key` (asked with `mode`) while this process holds it twice by hand, `token` being
/// one of the two: the plain text names both holders and never the token; the JSON, returned,
/// says `mode_name` for the lock and each holder, each this process with more than 5 s left.
#[track_caller]
fn status_of_two_holders(
    redis: &[RedisServer],
    key: &str,
    mode: &[&str],
    token: &str,
    mode_name: &str,
) -> Value {
    let pid = format!("pid {}", std::process::id());
    let plain = by_hand("status", redis, key, mode);
    plain.assert_success();
    assert_eq!(
        plain.stdout.matches(&pid).count(),
        2,
        "both holders\n{plain}"
    );
    assert!(
        !plain.stdout.contains(token),
        "status printed a token\n{plain}"
    );
    let status = json_of(&by_hand(
        "status",
        redis,
        key,
        &[mode, &["--format", "json"]].concat(),
    ));
    assert_eq!(status["mode"], mode_name, "{status}");
    let holders = status["holders"].as_array().expect("a holders array");
    assert_eq!(holders.len(), 2, "{status}");
    for h in holders {
        assert_eq!(h["mode"], mode_name, "{status}");
        assert_eq!(h["holder"]["pid"], std::process::id(), "{status}");
        assert!(
            h["expires_in_ms"].as_u64().is_some_and(|ms| ms > 5000),
            "{status}"
        );
    }
    status
}

#[test]
fn acquire_extend_release_and_status_by_hand_with_a_limit() {
    let redis = [RedisServer::start()];
    let slot_key = |i: u64| format!("rlock:{{{NAS}}}:slot:{i}");
    let limit = ["--limit", "2"];
    let first = by_hand("acquire", &redis, NAS, &["--limit", "2", "-t", "10s"]);
    first.assert_success().assert_stderr_empty();
    let first = first.stdout.trim().to_owned();
    let second = json_of(&by_hand(
        "acquire",
        &redis,
        NAS,
        &["--limit", "2", "-t", "10s", "--format", "json"],
    ));
    assert_eq!(second["mode"], "limit", "{second}");
    assert_eq!(second["limit"], 2, "{second}");
    let slot = second["slot"].as_u64().expect("a slot number");
    let other = 1 - slot;
    assert_eq!(redis[0].get(&slot_key(other)), Some(first.clone()));
    assert_eq!(
        redis[0].get(&slot_key(slot)).as_deref(),
        second["token"].as_str()
    );
    let busy = by_hand("acquire", &redis, NAS, &limit);
    busy.assert_code(75);

    let status = status_of_two_holders(&redis, NAS, &limit, &first, "limit");
    let mut slots: Vec<u64> = status["holders"]
        .as_array()
        .expect("a holders array")
        .iter()
        .filter_map(|h| h["slot"].as_u64())
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, [0, 1], "{status}");

    by_hand(
        "extend",
        &redis,
        NAS,
        &["--limit", "2", "-t", "30s", "--token", &first],
    )
    .assert_success();
    assert!(redis[0].pttl(&slot_key(other)) > 20_000, "extended");
    assert!(
        redis[0].pttl(&format!("{}:holder", slot_key(other))) > 20_000,
        "with its holder record"
    );
    assert!(
        redis[0].pttl(&slot_key(slot)) <= 10_000,
        "the other slot is not"
    );

    by_hand("release", &redis, NAS, &["--limit", "2", "--token", &first]).assert_success();
    assert!(!redis[0].exists(&slot_key(other)), "released");
    by_hand("release", &redis, NAS, &["--limit", "2", "--token", &first]).assert_code(3);
    by_hand("extend", &redis, NAS, &["--limit", "2", "--token", &first]).assert_code(3);
    let status = json_of(&by_hand(
        "status",
        &redis,
        NAS,
        &["--limit", "2", "--format", "json"],
    ));
    assert_eq!(
        status["holders"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );

    let token = second["token"].as_str().expect("a token");
    // extend and release find a token in any mode: they need not repeat the option.
    by_hand("release", &redis, NAS, &["--token", token]).assert_success();
    let free = by_hand("status", &redis, NAS, &limit);
    free.assert_code(3);
    assert!(free.stdout.contains("is free"), "{free}");
    assert_no_keys_left(&redis, NAS, Duration::from_secs(10));

    // The shell exports say which slot: the first acquire takes one, the exports name the other.
    let (seen, token) = shell_exports(&redis, NAS, &limit);
    let held = (0..2).find(|&i| redis[0].get(&slot_key(i)).as_deref() == Some(token.as_str()));
    let held = held.expect("the exported token holds a slot");
    assert_eq!(seen, format!("limit {held} 2"));
}

#[test]
fn acquire_extend_release_and_status_by_hand_shared() {
    let redis = [RedisServer::start()];
    let readers = format!("rlock:{{{DATASET}}}:readers");
    let shared = ["--shared"];
    let first = by_hand("acquire", &redis, DATASET, &["--shared", "-t", "10s"]);
    first.assert_success().assert_stderr_empty();
    let first = first.stdout.trim().to_owned();
    let second = json_of(&by_hand(
        "acquire",
        &redis,
        DATASET,
        &["--shared", "-t", "10s", "--format", "json"],
    ));
    assert_eq!(second["mode"], "shared", "{second}");
    assert!(
        second["slot"].is_null() && second["limit"].is_null(),
        "{second}"
    );
    let card = |r: &RedisServer| r.cmd(&["ZCARD", &readers]);
    assert_eq!(card(&redis[0]), redis::Value::Int(2), "two shared holders");
    by_hand("acquire", &redis, DATASET, &[]).assert_code(75);

    let status = status_of_two_holders(&redis, DATASET, &shared, &first, "shared");
    for h in status["holders"].as_array().expect("a holders array") {
        assert!(h["slot"].is_null(), "{status}");
    }

    by_hand(
        "extend",
        &redis,
        DATASET,
        &["--shared", "-t", "30s", "--token", &first],
    )
    .assert_success();
    let status = json_of(&by_hand(
        "status",
        &redis,
        DATASET,
        &["--shared", "--format", "json"],
    ));
    let mut left: Vec<u64> = status["holders"]
        .as_array()
        .expect("a holders array")
        .iter()
        .filter_map(|h| h["expires_in_ms"].as_u64())
        .collect();
    left.sort_unstable();
    assert!(
        left[0] <= 10_000 && left[1] > 20_000,
        "one extended: {status}"
    );

    by_hand("release", &redis, DATASET, &["--shared", "--token", &first]).assert_success();
    assert_eq!(
        card(&redis[0]),
        redis::Value::Int(1),
        "one shared holder left"
    );
    by_hand("release", &redis, DATASET, &["--shared", "--token", &first]).assert_code(3);
    by_hand("extend", &redis, DATASET, &["--shared", "--token", &first]).assert_code(3);
    by_hand("status", &redis, DATASET, &shared).assert_success();

    let token = second["token"].as_str().expect("a token");
    // extend and release find a token in any mode: they need not repeat the option.
    by_hand("extend", &redis, DATASET, &["--token", token]).assert_success();
    by_hand("release", &redis, DATASET, &["--token", token]).assert_success();
    let free = by_hand("status", &redis, DATASET, &shared);
    free.assert_code(3);
    assert!(free.stdout.contains("is free"), "{free}");
    assert_no_keys_left(&redis, DATASET, Duration::from_secs(10));

    let (seen, _) = shell_exports(&redis, DATASET, &shared);
    assert_eq!(seen, "shared none none");
}

/// What a command run with `args` (and `env`) sees: `$RLOCK_MODE $RLOCK_SLOT $RLOCK_LIMIT`, each
/// "none" when unset.
#[track_caller]
fn mode_env(servers: &[RedisServer], args: &[&str], env: Option<(&str, &str)>) -> String {
    let mut cmd = on(servers).args(["-k", NAS]).args(args);
    if let Some((name, value)) = env {
        cmd = cmd.env(name, value);
    }
    let out = cmd
        .args([
            "-c",
            "echo \"$RLOCK_MODE ${RLOCK_SLOT-none} ${RLOCK_LIMIT-none}\"",
        ])
        .output();
    out.assert_success();
    out.stdout.trim().to_owned()
}

#[test]
fn status_over_three_nodes_lists_each_holder_once() {
    let redis = RedisServer::start_many(3);
    for (key, mode) in [(NAS, &["--limit", "3"][..]), (DATASET, &["--shared"])] {
        for _ in 0..2 {
            by_hand("acquire", &redis, key, &[mode, &["-t", "20s"]].concat()).assert_success();
        }
        let status = json_of(&by_hand(
            "status",
            &redis,
            key,
            &[mode, &["--format", "json"]].concat(),
        ));
        let holders = status["holders"].as_array().expect("a holders array");
        assert_eq!(holders.len(), 2, "two holders, not one per node: {status}");
        for node in status["nodes"].as_array().expect("a nodes array") {
            assert_eq!(node["holders"], 2, "{status}");
        }
        let plain = by_hand("status", &redis, key, mode);
        plain.assert_success();
        let pid = format!("pid {}", std::process::id());
        assert_eq!(plain.stdout.matches(&pid).count(), 2, "{plain}");
    }
}

#[test]
fn the_command_finds_its_mode_slot_and_limit_in_its_environment() {
    let redis = [RedisServer::start()];
    // An exclusive lock is a limit of one, in slot 0 (rlock(1), ENVIRONMENT of the command).
    assert_eq!(mode_env(&redis, &[], None), "exclusive 0 1");
    assert_eq!(mode_env(&redis, &["--limit", "1"], None), "exclusive 0 1");
    assert_eq!(mode_env(&redis, &["--shared"], None), "shared none none");
    let seen = mode_env(&redis, &["--limit", "3"], None);
    assert!(
        ["limit 0 3", "limit 1 3", "limit 2 3"].contains(&seen.as_str()),
        "{seen}"
    );

    // With one of two slots held, the command gets the other one.
    let held = by_hand("acquire", &redis, NAS, &["--limit", "2", "-t", "10s"]);
    held.assert_success();
    let held = held.stdout.trim();
    let taken = (0..2)
        .find(|i| {
            redis[0]
                .get(&format!("rlock:{{{NAS}}}:slot:{i}"))
                .as_deref()
                == Some(held)
        })
        .expect("the token holds a slot");
    assert_eq!(
        mode_env(&redis, &["--limit", "2"], None),
        format!("limit {} 2", 1 - taken)
    );
}

#[test]
fn rlock_limit_in_the_environment_is_what_a_holder_learns_not_an_option() {
    // A command under `--limit 3` has RLOCK_LIMIT=3; an rlock it starts for another lock must not
    // quietly become limited too.
    let redis = [RedisServer::start()];
    let seen = mode_env(&redis, &[], Some(("RLOCK_LIMIT", "3")));
    assert_eq!(seen, "exclusive 0 1", "RLOCK_LIMIT is not read");
}
