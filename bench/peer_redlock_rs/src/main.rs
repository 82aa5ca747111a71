//! The `redlock` crate (crates.io, badboy/redlock-rs) in the shape of `rlock -r URL... -k KEY --
//! CMD`: take the lock, run CMD, release the lock, exit with CMD's status.
//!
//! bench/run measures it beside rlock as a whole process, launch included, and times how long it
//! takes to start CMD, exactly as it does rlock. The crate asks the nodes one after another, each
//! on a fresh connection (`SET key value NX PX ttl`, then a compare-and-delete script to release),
//! so a grant costs the sum of the nodes' round trips. Everything below only wraps the crate's
//! `lock` and `unlock` around a child process.
//!
//! Usage: peer-redlock-rs [-t TTL_MS] -r URL [-r URL ...] -k KEY -- CMD [ARG...]
//!
//! Exit status: CMD's (128+N if a signal N killed it); 75 if no quorum after the crate's own
//! retries (3 tries, 0-200 ms apart); 1 on a Redis error or if CMD cannot start; 2 on bad usage.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

use redlock::RedLock;

const USAGE: &str = "usage: peer-redlock-rs [-t TTL_MS] -r URL [-r URL ...] -k KEY -- CMD [ARG...]";

struct Args {
    urls: Vec<String>,
    key: String,
    ttl_ms: usize,
    command: Vec<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut urls, mut key, mut ttl_ms) = (Vec::new(), None, 30_000);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-r" => urls.push(value()?),
            "-k" => key = Some(value()?),
            "-t" => ttl_ms = value()?.parse().map_err(|e| format!("-t: {e}"))?,
            "--" => break,
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    let command: Vec<String> = args.collect();
    match key {
        Some(key) if !urls.is_empty() && !command.is_empty() => Ok(Args {
            urls,
            key,
            ttl_ms,
            command,
        }),
        _ => Err("-r, -k and a command are required".into()),
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("peer-redlock-rs: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let manager = RedLock::new(args.urls);
    let lock = match manager.lock(args.key.as_bytes(), args.ttl_ms) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            eprintln!("peer-redlock-rs: no quorum for '{}'", args.key);
            return ExitCode::from(75);
        }
        Err(e) => {
            eprintln!("peer-redlock-rs: {e}");
            return ExitCode::from(1);
        }
    };
    let status = Command::new(&args.command[0])
        .args(&args.command[1..])
        .status();
    manager.unlock(&lock);
    match status {
        Ok(status) => {
            let code = status
                .code()
                .or(status.signal().map(|n| 128 + n))
                .unwrap_or(1);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("peer-redlock-rs: cannot run {}: {e}", args.command[0]);
            ExitCode::from(1)
        }
    }
}
