//! Command-line values turned into validated settings; checks across options live here.
//!
//! Everything the user can get wrong is rejected here, before any connection is made, with a
//! usage error (exit 2) that names the bad value and says what would be right.

use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use clap::parser::ValueSource;

use crate::cli::{Connection, ListArgs, LockArgs, Nodes, RunArgs, Wait};
use crate::exit;
use crate::lease::{LeaseError, Lock, Mode, Tls, quorum};
use crate::log::{self, Level};
use crate::signals;
use crate::supervise::StopPolicy;

/// The shortest lease accepted: below it, network round trips eat the lease.
pub const MIN_TTL: Duration = Duration::from_millis(100);
/// The longest lease accepted: longer ones are almost surely a typo, and a crashed holder would
/// block everyone for that long.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest lock name, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The default grace between the stop signal and `SIGKILL`, for TTLs of 20 s and more.
pub const DEFAULT_KILL_AFTER: Duration = Duration::from_secs(5);

/// Which lock, where, and for how long.
#[derive(Clone, Debug)]
pub struct LockSettings {
    /// The lock's name.
    pub key: String,
    /// The namespace of its Redis keys.
    pub prefix: String,
    /// Exclusive, shared or limited.
    pub mode: Mode,
    /// Whether waiters queue in arrival order: yes, unless `RLOCK_UNORDERED=1` asks for the old
    /// free-for-all (for side-by-side benchmarks).
    pub ordered: bool,
    /// The nodes' URLs (credentials included).
    pub urls: Vec<String>,
    /// The lease TTL.
    pub ttl: Duration,
    /// TLS settings for rediss:// nodes.
    pub tls: Tls,
}

impl LockSettings {
    /// The lock these settings describe, on its nodes; no I/O yet. [`LeaseError::Usage`] when a
    /// node URL cannot be used or the same server is listed twice.
    pub fn lock(&self) -> Result<Lock, LeaseError> {
        let mut lock = Lock::new(
            &self.key,
            &self.prefix,
            self.mode,
            &self.urls,
            self.ttl,
            &self.tls,
        )?;
        lock.set_ordered(self.ordered);
        Ok(lock)
    }
}

/// Everything run mode needs.
#[derive(Debug)]
pub struct RunSettings {
    /// The lock.
    pub lock: LockSettings,
    /// How long to wait for a busy lock.
    pub wait: Wait,
    /// The exit status when busy.
    pub conflict_exit_code: u8,
    /// How to stop the command.
    pub stop: StopPolicy,
    /// Stop the command after this long.
    pub max_time: Option<Duration>,
    /// Keep the lock at least this long after the command started.
    pub min_hold: Option<Duration>,
    /// Sleep up to this long before the first attempt.
    pub jitter: Option<Duration>,
    /// The program to run.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Validates the options every lock command shares, then applies `-q`/`-v` and prints the
/// warnings that validation found.
pub fn lock(args: &LockArgs) -> Result<LockSettings> {
    let Checked {
        settings,
        level,
        warnings,
    } = check_lock(args)?;
    log::set_level(level, &settings.key);
    for warning in &warnings {
        log::warning!("{warning}");
    }
    Ok(settings)
}

/// What validating the lock options found: the settings, and what to apply and say once they are
/// known to be good. Kept apart so that validation itself changes nothing and prints nothing.
struct Checked {
    settings: LockSettings,
    /// `-q`, `-v` or neither.
    level: Level,
    /// Warnings for the user, in order.
    warnings: Vec<String>,
}

/// Validates the options every lock command shares, without side effects.
fn check_lock(args: &LockArgs) -> Result<Checked> {
    let key = args
        .key
        .as_deref()
        .ok_or_else(|| exit::usage("no lock name given: use -k KEY (or set RLOCK_KEY)"))?;
    check_key(key)?;
    let level = match (args.quiet, args.verbose) {
        (true, _) => Level::Quiet,
        (_, true) => Level::Verbose,
        _ => Level::Normal,
    };
    let mut warnings = Vec::new();
    check_prefix(&args.connection.prefix)?;
    if args.ttl < MIN_TTL || args.ttl > MAX_TTL {
        return Err(exit::usage(format!(
            "--ttl {} is out of range: a lease lasts from {} to {}",
            humantime::format_duration(args.ttl),
            humantime::format_duration(MIN_TTL),
            humantime::format_duration(MAX_TTL)
        )));
    }
    let tls = tls_of(&args.connection);
    let urls = connection(&args.connection.nodes, &tls, &mut warnings)?;
    Ok(Checked {
        settings: LockSettings {
            key: key.to_owned(),
            prefix: args.connection.prefix.clone(),
            // A limit of one is the exclusive lock: the same keys, so the two never disagree.
            mode: match (args.shared, args.limit) {
                (true, _) => Mode::Shared,
                (false, Some(n)) if n > 1 => Mode::Limit(n),
                _ => Mode::Exclusive,
            },
            ordered: std::env::var_os("RLOCK_UNORDERED").is_none_or(|v| v != "1"),
            urls,
            ttl: args.ttl,
            tls,
        },
        level,
        warnings,
    })
}

/// A usage error unless `prefix` can be a key prefix.
fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN || prefix.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "invalid --prefix {prefix:?}: at most {MAX_KEY_LEN} bytes, no control characters"
        )));
    }
    Ok(())
}

/// The nodes' URLs, checked with the TLS settings; what the user should hear of them goes to
/// `warnings`.
fn connection(nodes: &Nodes, tls: &Tls, warnings: &mut Vec<String>) -> Result<Vec<String>> {
    let urls = node_urls(nodes, warnings)?;
    if tls.insecure {
        warnings.push(
            "--tls-insecure: the servers' certificates are not verified; anyone on the network \
             path can pose as Redis and grant or refuse the lock"
                .to_owned(),
        );
    }
    if tls.is_set() && !urls.iter().any(|u| u.starts_with("rediss://")) {
        warnings.push(
            "TLS options are given, but no node is a rediss:// URL: they are unused".to_owned(),
        );
    }
    match urls.len() {
        2 => warnings.push(
            "2 Redis nodes tolerate no failure (both must answer); use 3 to tolerate one"
                .to_owned(),
        ),
        n if n > 2 && n % 2 == 0 => warnings.push(format!(
            "{n} Redis nodes tolerate as many failures as {}; {} would tolerate one more",
            n - 1,
            n + 1
        )),
        _ => {}
    }
    Ok(urls)
}

/// What `list` needs: the nodes, the prefix, and which names to list.
#[derive(Debug)]
pub struct ListSettings {
    /// The nodes and the prefix, as a lock's settings (the name is not used).
    pub lock: LockSettings,
    /// The glob the names must match, if given.
    pub pattern: Option<String>,
}

/// Validates `list`'s options, then applies `-q` and prints the warnings found.
pub fn list(args: &ListArgs) -> Result<ListSettings> {
    if let Some(pattern) = &args.pattern
        && (pattern.is_empty()
            || pattern.len() > MAX_KEY_LEN
            || pattern.chars().any(char::is_control))
    {
        return Err(exit::usage(format!(
            "invalid pattern {pattern:?}: a glob on lock names, non-empty, at most {MAX_KEY_LEN} \
             bytes, no control characters (e.g. 'nightly-*')"
        )));
    }
    check_prefix(&args.connection.prefix)?;
    let tls = tls_of(&args.connection);
    let mut warnings = Vec::new();
    let urls = connection(&args.connection.nodes, &tls, &mut warnings)?;
    log::set_level(
        if args.quiet {
            Level::Quiet
        } else {
            Level::Normal
        },
        "",
    );
    for warning in &warnings {
        log::warning!("{warning}");
    }
    Ok(ListSettings {
        lock: LockSettings {
            key: String::new(),
            prefix: args.connection.prefix.clone(),
            mode: Mode::Exclusive,
            ordered: true,
            urls,
            // Only its node timeout is used: every request's deadline, as lease commands have it.
            ttl: LIST_TTL,
            tls,
        },
        pattern: args.pattern.clone(),
    })
}

/// The TTL whose node timeout `list`'s requests get: `--ttl`'s default.
const LIST_TTL: Duration = Duration::from_secs(30);

/// The TLS settings the connection options give.
fn tls_of(c: &Connection) -> Tls {
    Tls {
        ca: c.tls_ca.clone(),
        client: c.tls_cert.clone().zip(c.tls_key.clone()),
        insecure: c.tls_insecure,
    }
}

/// Validates run mode's options.
pub fn run(args: RunArgs) -> Result<RunSettings> {
    let lock = lock(&args.lock)?;
    let limit = lock.ttl / 2;
    let kill_after = match args.kill_after {
        Some(grace) if grace > limit => {
            return Err(exit::usage(format!(
                "--kill-after {} does not fit in --ttl {}: it may be at most half the TTL ({}), so that \
                 the command is dead before the lease can expire",
                humantime::format_duration(grace),
                humantime::format_duration(lock.ttl),
                humantime::format_duration(limit)
            )));
        }
        Some(grace) => grace,
        None => DEFAULT_KILL_AFTER.min(lock.ttl / 4),
    };
    debug_assert!(kill_after < quorum::lifetime(lock.ttl));
    for (flag, value) in [("--max-time", args.max_time), ("--min-hold", args.min_hold)] {
        if value.is_some_and(|d| d.is_zero() || d > MAX_TTL) {
            return Err(exit::usage(format!(
                "{flag} must be more than zero and at most {}",
                humantime::format_duration(MAX_TTL)
            )));
        }
    }
    // Zero is a harmless "no spread", which a templated crontab may well produce.
    if let Some(jitter) = args.jitter.filter(|&d| d > MAX_TTL) {
        return Err(exit::usage(format!(
            "--jitter {} is out of range: it may be at most {}",
            humantime::format_duration(jitter),
            humantime::format_duration(MAX_TTL)
        )));
    }
    if !signals::ends_a_process(args.kill_signal) {
        return Err(exit::usage(format!(
            "--kill-signal {} does not end a process; use TERM, INT, HUP, QUIT or KILL",
            args.kill_signal
        )));
    }
    let (program, arguments) = match (args.shell, args.command.split_first()) {
        (Some(line), _) => ("sh".into(), vec!["-c".into(), line.into()]),
        (None, Some((program, rest))) => (program.clone(), rest.to_vec()),
        (None, None) => {
            return Err(exit::usage(
                "no command given: use 'rlock -k KEY -- COMMAND [ARGS]...' or 'rlock -k KEY -c \"SHELL LINE\"'",
            ));
        }
    };
    Ok(RunSettings {
        lock,
        wait: args.wait.wait,
        conflict_exit_code: args.wait.conflict_exit_code,
        stop: StopPolicy {
            signal: args.kill_signal,
            grace: kill_after,
        },
        max_time: args.max_time,
        min_hold: args.min_hold,
        jitter: args.jitter,
        program,
        args: arguments,
    })
}

/// Checks a lease token given by hand (`--token` / `RLOCK_TOKEN`).
pub fn token(token: Option<&str>) -> Result<String> {
    match token.map(str::trim) {
        None | Some("") => Err(exit::usage(
            "no lease token given: use --token TOKEN (or set RLOCK_TOKEN, as `rlock run` and \
             `eval \"$(rlock acquire --format shell)\"` do)",
        )),
        Some(t) if t.len() > MAX_KEY_LEN || t.chars().any(char::is_control) => Err(exit::usage(
            "the lease token is malformed (too long, or control characters)",
        )),
        Some(t) => Ok(t.to_owned()),
    }
}

/// The URLs from `--redis`/`RLOCK_REDIS`, split at commas by clap. A Sentinel URL lists its
/// Sentinels with commas, so a piece without a scheme after one continues it.
fn join_urls(pieces: &[String]) -> Result<Vec<String>> {
    let mut urls: Vec<String> = Vec::with_capacity(pieces.len());
    for piece in pieces.iter().map(|p| p.trim()) {
        match urls.last_mut() {
            Some(last)
                if last.starts_with("redis+sentinel://")
                    && !piece.is_empty()
                    && !piece.contains("://") =>
            {
                last.push(',');
                last.push_str(piece);
            }
            _ => urls.push(piece.to_owned()),
        }
    }
    if urls.iter().any(String::is_empty) {
        return Err(exit::usage(
            "an empty Redis URL was given (check --redis and RLOCK_REDIS for stray commas)",
        ));
    }
    Ok(urls)
}

/// The largest `--redis-file` read: room for hundreds of URLs, and a bound on what a wrong path
/// (a log file, a disk image) can cost.
pub const MAX_REDIS_FILE: u64 = 64 * 1024;
/// The longest line of a `--redis-file`, in bytes.
pub const MAX_REDIS_FILE_LINE: usize = 1024;

/// The URLs in `--redis-file`: one per line, blank lines and `#` comments skipped. The file holds
/// passwords, so one that group or others can read is refused rather than trusted, and a bad line
/// is named by its number, never quoted. Only a regular file of at most [`MAX_REDIS_FILE`] bytes
/// is read: a FIFO would block for ever, a device could be read without end.
fn read_redis_file(path: &Path) -> Result<Vec<String>> {
    let shown = path.display();
    let unreadable =
        |e: std::io::Error| exit::usage(format!("cannot read --redis-file {shown}: {e}"));
    // Looked at before it is opened, since opening a device can have effects of its own.
    not_a_regular_file(&std::fs::metadata(path).map_err(unreadable)?, path)?;
    // O_NONBLOCK: should a FIFO replace the file meanwhile, opening it must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    not_a_regular_file(&meta, path)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(exit::usage(format!(
            "--redis-file {shown} is readable by group or others (mode {:03o}): it may hold \
             passwords; chmod 600 it",
            mode & 0o777
        )));
    }
    let too_big = || {
        exit::usage(format!(
            "--redis-file {shown} is larger than {} KiB; it should hold a few Redis URLs",
            MAX_REDIS_FILE / 1024
        ))
    };
    if meta.len() > MAX_REDIS_FILE {
        return Err(too_big());
    }
    // Bounded even if the file grows after the look above.
    let mut bytes = Vec::new();
    file.take(MAX_REDIS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_REDIS_FILE {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.split(|&b| b == b'\n').count();
        exit::usage(format!(
            "line {line} of --redis-file {shown} is not UTF-8 text"
        ))
    })?;
    let mut urls = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        if line.len() > MAX_REDIS_FILE_LINE {
            return Err(exit::usage(format!(
                "line {number} of --redis-file {shown} is {} bytes long; a Redis URL may have \
                 at most {MAX_REDIS_FILE_LINE}",
                line.len()
            )));
        }
        if !looks_like_a_url(line) {
            return Err(exit::usage(format!(
                "line {number} of --redis-file {shown} is not a Redis URL (expected one URL per \
                 line, such as redis://HOST:PORT, or a # comment)"
            )));
        }
        urls.push(line.to_owned());
    }
    if urls.is_empty() {
        return Err(exit::usage(format!(
            "--redis-file {shown} lists no Redis URL"
        )));
    }
    Ok(urls)
}

/// A usage error if `meta` is not a regular file's, saying what it is instead.
fn not_a_regular_file(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(exit::usage(format!(
        "--redis-file {} is {what}; it must be a regular file of Redis URLs",
        path.display()
    )))
}

/// Whether `line` has the shape of a URL (`scheme://rest`, no spaces): the full check is the
/// lease's, which quotes the URL, so text that is plainly something else is refused here unquoted.
fn looks_like_a_url(line: &str) -> bool {
    line.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            && !rest.chars().any(char::is_whitespace)
    })
}

/// The nodes' URLs, from `--redis-file` or `--redis`: a flag wins over the other option's
/// variable, and two of a kind (two flags, or two variables) are refused.
fn node_urls(nodes: &Nodes, warnings: &mut Vec<String>) -> Result<Vec<String>> {
    let flag = |source| source == Some(ValueSource::CommandLine);
    let variable = |source| source == Some(ValueSource::EnvVariable);
    let (redis, file) = (nodes.redis_source, nodes.redis_file_source);
    let path = match &nodes.redis_file {
        Some(_) if flag(redis) && flag(file) => {
            return Err(exit::usage(
                "--redis and --redis-file cannot be used together: name the nodes one way",
            ));
        }
        Some(_) if variable(redis) && variable(file) => {
            return Err(exit::usage(
                "RLOCK_REDIS and RLOCK_REDIS_FILE are both set: unset one, or choose with \
                 --redis or --redis-file",
            ));
        }
        Some(_) if flag(redis) => None,
        path => path.as_deref(),
    };
    if let Some(path) = path {
        return read_redis_file(path);
    }
    let urls = join_urls(&nodes.redis)?;
    // A password on the command line is visible to every user through ps.
    if flag(redis)
        && urls
            .iter()
            .any(|url| crate::lease::node::redact(url) != *url)
    {
        warnings.push(
            "a Redis password is on the command line, where any user can read it with ps; \
             pass the URL in RLOCK_REDIS or --redis-file instead"
                .to_owned(),
        );
    }
    Ok(urls)
}

/// A lock name is non-empty UTF-8 of at most 1024 bytes without control characters.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(exit::usage("the lock name (--key or RLOCK_KEY) is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(exit::usage(format!(
            "the lock name is {} bytes long; at most {MAX_KEY_LEN} are allowed",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(exit::usage(format!(
            "the lock name {key:?} contains control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings(argv: &[&str]) -> Result<RunSettings> {
        let cli = Cli::try_parse_from(argv).expect("parses");
        run(match cli.command {
            Some(Command::Run(run_args)) => run_args,
            None => cli.run,
            Some(_) => panic!("not run mode"),
        })
    }

    #[test]
    fn commas_split_urls_except_inside_a_sentinel_url() {
        let pieces = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            join_urls(&pieces(&[
                "redis://a",
                "redis+sentinel://s1:1",
                "s2:2/svc",
                "redis://b"
            ]))
            .unwrap(),
            ["redis://a", "redis+sentinel://s1:1,s2:2/svc", "redis://b"]
        );
        // Outside a Sentinel URL a piece without a scheme stays a URL of its own, to be refused.
        assert_eq!(
            join_urls(&pieces(&["redis://a", "localhost:6379"])).unwrap(),
            ["redis://a", "localhost:6379"]
        );
        assert!(join_urls(&pieces(&["redis://a", ""])).is_err());
    }

    fn usage_message(argv: &[&str]) -> String {
        let err = settings(argv).expect_err("should be refused");
        assert_eq!(exit::code_of(&err), exit::USAGE, "{err}");
        err.to_string()
    }

    #[test]
    fn the_default_kill_after_shrinks_to_fit_short_leases() {
        let s = settings(&["rlock", "-t", "1s", "-k", "x", "--", "true"]).unwrap();
        assert_eq!(s.stop.grace, Duration::from_millis(250));
        let s = settings(&["rlock", "-k", "x", "--", "true"]).unwrap();
        assert_eq!(s.stop.grace, Duration::from_secs(5));
    }

    #[test]
    fn an_explicit_kill_after_must_fit_in_half_the_ttl() {
        let msg = usage_message(&[
            "rlock",
            "-t",
            "2s",
            "--kill-after",
            "5s",
            "-k",
            "x",
            "--",
            "true",
        ]);
        assert!(
            msg.contains("--kill-after 5s does not fit in --ttl 2s"),
            "{msg}"
        );
        assert!(
            settings(&[
                "rlock",
                "-t",
                "2s",
                "--kill-after",
                "1s",
                "-k",
                "x",
                "--",
                "true"
            ])
            .is_ok()
        );
    }

    #[test]
    fn bad_leases_and_names_are_usage_errors() {
        assert!(
            usage_message(&["rlock", "-t", "0s", "-k", "x", "--", "true"]).contains("--ttl 0s")
        );
        assert!(
            usage_message(&["rlock", "-t", "400d", "-k", "x", "--", "true"])
                .contains("out of range")
        );
        assert!(usage_message(&["rlock", "-k", "", "--", "true"]).contains("empty"));
        assert!(usage_message(&["rlock", "-k", "a\nb", "--", "true"]).contains("control"));
        let long = "k".repeat(1025);
        assert!(usage_message(&["rlock", "-k", &long, "--", "true"]).contains("1025 bytes"));
        assert!(usage_message(&["rlock", "-k", "x"]).contains("no command given"));
        assert!(
            usage_message(&["rlock", "-r", "redis://a,", "-k", "x", "--", "true"])
                .contains("empty Redis URL")
        );
    }

    #[test]
    fn jitter_is_bounded_like_the_other_cron_durations() {
        let msg = usage_message(&["rlock", "--jitter", "1000000h", "-k", "x", "--", "true"]);
        assert!(msg.contains("--jitter 114years"), "{msg}");
        assert!(msg.contains("at most 1day"), "{msg}");
        assert!(settings(&["rlock", "--jitter", "0s", "-k", "x", "--", "true"]).is_ok());
        assert!(settings(&["rlock", "--jitter", "24h", "-k", "x", "--", "true"]).is_ok());
    }

    #[test]
    fn a_kill_signal_that_does_not_end_a_process_is_refused_by_name() {
        let msg = usage_message(&["rlock", "--kill-signal", "STOP", "-k", "x", "--", "true"]);
        assert!(
            msg.contains("--kill-signal SIGSTOP does not end a process"),
            "{msg}"
        );
        assert!(msg.contains("use TERM"), "{msg}");
        assert!(settings(&["rlock", "--kill-signal", "INT", "-k", "x", "--", "true"]).is_ok());
    }

    #[test]
    fn only_url_shaped_lines_pass_for_urls() {
        for url in [
            "redis://h:1",
            "rediss://u:p@h/0",
            "redis+unix:///run/r.sock?db=1",
            "redis+sentinel://a:1,b:2/svc",
        ] {
            assert!(looks_like_a_url(url), "{url}");
        }
        for line in [
            "localhost:6379",
            "://h",
            "redis://h 1",
            "password=hunter2",
            "\0\0",
        ] {
            assert!(!looks_like_a_url(line), "{line:?}");
        }
    }

    #[test]
    fn a_flag_wins_over_the_other_options_variable_and_two_of_a_kind_conflict() {
        use ValueSource::{CommandLine, DefaultValue, EnvVariable};
        let nodes = |redis, file| Nodes {
            redis: vec!["redis://from-redis".to_owned()],
            redis_source: Some(redis),
            redis_file: Some("/nonexistent/urls".into()),
            redis_file_source: Some(file),
        };
        let read_the_file = |redis, file| {
            node_urls(&nodes(redis, file), &mut Vec::new())
                .unwrap_err()
                .to_string()
                .contains("cannot read --redis-file /nonexistent/urls")
        };
        assert_eq!(
            node_urls(&nodes(CommandLine, EnvVariable), &mut Vec::new()).unwrap(),
            ["redis://from-redis"]
        );
        assert!(read_the_file(EnvVariable, CommandLine));
        assert!(read_the_file(DefaultValue, CommandLine));
        assert!(read_the_file(DefaultValue, EnvVariable));
        let both = |redis, file| {
            node_urls(&nodes(redis, file), &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert!(
            both(CommandLine, CommandLine).starts_with("--redis and --redis-file cannot"),
            "{}",
            both(CommandLine, CommandLine)
        );
        assert!(
            both(EnvVariable, EnvVariable)
                .starts_with("RLOCK_REDIS and RLOCK_REDIS_FILE are both set"),
            "{}",
            both(EnvVariable, EnvVariable)
        );
    }

    #[test]
    fn a_shell_line_runs_with_sh_c() {
        let s = settings(&["rlock", "-k", "x", "-c", "echo hi"]).unwrap();
        assert_eq!(s.program, "sh");
        assert_eq!(s.args, ["-c", "echo hi"]);
    }

    #[test]
    fn validation_collects_warnings_instead_of_printing_them() {
        let cli = Cli::try_parse_from([
            "rlock",
            "-q",
            "-k",
            "job",
            "-r",
            "redis://:secret@a,redis://b",
            "--",
            "true",
        ])
        .expect("parses");
        let checked = check_lock(&cli.run.lock).expect("valid");
        assert_eq!(checked.level, Level::Quiet);
        assert_eq!(checked.warnings.len(), 2, "{:?}", checked.warnings);
        assert!(checked.warnings[0].starts_with("a Redis password is on the command line"));
        assert!(checked.warnings[1].starts_with("2 Redis nodes tolerate no failure"));
    }
}
