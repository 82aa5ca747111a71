//! The command line, as clap definitions only: the doc comments here are `--help`.
//!
//! Values are parsed at the edge (durations with humantime, signals by name or number), so a bad
//! value is a usage error that names it; checks that involve several options live in `config`.

// The doc comments below are the user's help text, not rustdoc: no Markdown backticks there.
#![allow(clippy::doc_markdown)]
// For the same reason, `[USER:PASSWORD@]` in a URL form is a placeholder, not an intra-doc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use nix::sys::signal::Signal;

use crate::exit;

/// Run a command while holding a Redis lease: one Redis node, or a Redlock quorum of several.
///
/// rlock takes the lock KEY, runs COMMAND with the lease's token and fencing token in its
/// environment, keeps the lease extended while COMMAND runs, stops COMMAND if the lease cannot be
/// kept, and releases the lease when COMMAND exits. If the lock is busy, COMMAND does not run.
///
/// Examples:
///
///   # In a crontab on several hosts: one of them runs the report.
///   $ rlock -k nightly-report -- ./report.sh
///   # Wait up to 10 minutes for the lock.
///   $ rlock -k deploy -w 10m -- make deploy
///   # A shell command line.
///   $ rlock -k db -c 'pg_dump app > /backup/app.sql'
///   # Redlock over three nodes.
///   $ rlock -k job -r redis://a -r redis://b -r redis://c -- ./job
///   # At most 3 backups at once.
///   $ rlock --limit 3 -k nas-backup -- ./backup.sh
///   # Reports share the dataset; the rebuild takes it alone.
///   $ rlock --shared -k dataset -- ./report.sh
///   $ rlock -k dataset -- ./rebuild.sh
///
/// The command's environment gets RLOCK_KEY, RLOCK_TOKEN, RLOCK_FENCE (a number that rises with
/// every grant: pass it to the resource you protect and have it refuse lower ones), RLOCK_REDIS,
/// RLOCK_PREFIX, RLOCK_TTL, RLOCK_MODE, and RLOCK_SLOT and RLOCK_LIMIT unless shared.
#[derive(Parser, Debug)]
#[command(
    name = "rlock",
    version,
    verbatim_doc_comment,
    override_usage = "rlock [OPTIONS] -k <KEY> -- <COMMAND> [ARGS]...\n       \
                      rlock [OPTIONS] -k <KEY> -c <SHELL COMMAND>",
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true,
    after_long_help = exit::help(),
    max_term_width = 100
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run mode's options, when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// rlock's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command while holding the lock (what rlock alone does).
    ///
    /// Example:
    ///
    ///   $ rlock run -k nightly-report -- ./report.sh
    #[command(
        verbatim_doc_comment,
        override_usage = "rlock run [OPTIONS] -k <KEY> -- <COMMAND> [ARGS]...\n       \
                          rlock run [OPTIONS] -k <KEY> -c <SHELL COMMAND>",
        after_long_help = exit::help()
    )]
    Run(RunArgs),

    /// Take the lease and print it, for scripts that release it later (rlock release).
    ///
    /// The lease is not kept alive: extend it with `rlock extend` before its TTL runs out. Prints the
    /// token (plain), a JSON object (json), or `export` lines for `eval` (shell). Busy: exit 75 (or
    /// -E); Redis unreachable: 69.
    ///
    /// Example:
    ///
    ///   $ lease=$(rlock acquire -k deploy -t 5m --format shell)
    ///   $ eval "$lease"
    ///   $ ./deploy-step-1 && rlock extend && ./deploy-step-2
    ///   $ rlock release
    #[command(verbatim_doc_comment, after_long_help = exit::help())]
    Acquire(AcquireArgs),

    /// Extend a lease you hold to a fresh TTL.
    ///
    /// Exit 0 when a majority of nodes extended it; 3 when the lease is no longer yours (it expired,
    /// or another holder has the lock): it never recreates a lease that is gone.
    ///
    /// Example:
    ///
    ///   $ rlock extend -k deploy --token "$token" -t 5m
    #[command(verbatim_doc_comment, after_long_help = exit::help())]
    Extend(TokenArgs),

    /// Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).
    ///
    /// Exit 0 when released; 3 when the lease was not yours: then nothing is deleted.
    ///
    /// With --force, an operator ends every hold of the lock on every node, whoever holds it, and
    /// rlock prints whose lease it ended. The fence counter is left alone: if the old holder is
    /// still alive, a fenced resource refuses it once a later holder has used the resource.
    ///
    /// Example:
    ///
    ///   $ rlock release -k deploy --token "$token"
    ///   $ rlock release -k nightly-report --force
    #[command(verbatim_doc_comment, after_long_help = exit::help())]
    Release(ReleaseArgs),

    /// Show whether the lock is held, by whom, for how long, and the latest fence.
    ///
    /// Exit 0 when held, 3 when free, 69 when Redis is unreachable, so that scripts can test it
    /// like `systemctl is-active`. Never prints another holder's token.
    ///
    /// Example:
    ///
    ///   $ rlock status -k nightly-report
    ///   $ rlock status -k nightly-report --format json | jq .holder
    #[command(verbatim_doc_comment, after_long_help = exit::help())]
    Status(StatusArgs),

    /// List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.
    ///
    /// Finds the locks with SCAN, 100 keys a call, so that a large Redis is never blocked (after
    /// 30s it stops and says so), then judges each lock as status does: by a majority of the
    /// nodes, on every primary of a Redis Cluster. A lock held on too few nodes to count shows as
    /// minority. PATTERN is a glob on the lock names: *, ?, [abc]. Read only.
    ///
    /// Exit 0 when some lock is held, 3 when none is, 69 when too few nodes can be read to tell.
    ///
    /// Example:
    ///
    ///   $ rlock list
    ///   $ rlock list 'nightly-*'
    ///   $ rlock list --format json | jq -r '.locks[].key'
    #[command(verbatim_doc_comment, after_long_help = exit::help())]
    List(ListArgs),

    /// Print the completion script for a shell: bash, zsh, fish, elvish or powershell.
    ///
    /// Needs no lock and no Redis. Packagers can take the scripts from the completions directory
    /// of the source instead.
    ///
    /// Example:
    ///
    ///   $ rlock completions bash > /etc/bash_completion.d/rlock
    ///   $ rlock completions zsh > /usr/local/share/zsh/site-functions/_rlock
    ///   $ rlock completions fish > ~/.config/fish/completions/rlock.fish
    // Verbatim keeps the example lines apart; `about` is then the summary without its period.
    #[command(
        verbatim_doc_comment,
        about = "Print the completion script for a shell: bash, zsh, fish, elvish or powershell"
    )]
    Completions {
        /// The shell to print the script for.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Options for waiting on a busy lock, shared by `run` and `acquire`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// How long to wait for a busy lock: a duration, or "forever".
    ///
    /// 0 (the default) gives up at once, as a cron job that should be skipped if the previous run
    /// is still going wants.
    #[arg(short, long, env = "RLOCK_WAIT", value_name = "DURATION", default_value = "0", value_parser = parse_wait)]
    pub wait: Wait,

    /// Exit status when the lock is busy.
    ///
    /// `-E 0` makes a skipped run silent and successful.
    #[arg(short = 'E', long, value_name = "N", default_value_t = exit::BUSY)]
    pub conflict_exit_code: u8,
}

/// Options of `acquire`.
#[derive(Args, Debug)]
pub struct AcquireArgs {
    /// Options that name the lock and its lease.
    #[command(flatten)]
    pub lock: LockArgs,

    /// Waiting for a busy lock.
    #[command(flatten)]
    pub wait: WaitArgs,

    /// What to print on success.
    #[arg(long, value_enum, default_value_t = AcquireFormat::Plain)]
    pub format: AcquireFormat,
}

/// How `acquire` prints the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AcquireFormat {
    // No backticks or dollars in these: completion scripts put them inside double quotes.
    /// The token alone, on one line.
    Plain,
    /// One JSON object: key, token, fence, ttl_ms, validity_ms, nodes.
    Json,
    /// Export lines for eval: RLOCK_KEY, RLOCK_TOKEN, RLOCK_FENCE, RLOCK_REDIS and more.
    Shell,
}

/// Options of `extend` and `release`: the lock and the caller's token.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Options that name the lock and its lease.
    #[command(flatten)]
    pub lock: LockArgs,

    /// The lease's token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and
    /// so does eval of what acquire --format shell prints).
    #[arg(
        long,
        env = "RLOCK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// Options of `release`.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The lock and the caller's token.
    #[command(flatten)]
    pub lease: TokenArgs,

    /// Break the lock: end every hold of it on every node, whatever its token (an operator's
    /// action for a stuck lock; the holder, if alive, is not told).
    #[arg(long)]
    pub force: bool,
}

/// Options of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Options that name the lock.
    #[command(flatten)]
    pub lock: LockArgs,

    /// Your token, if you hold a lease: status then says whether the holder is you.
    #[arg(
        long,
        env = "RLOCK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// How to print the state.
    #[arg(long, value_enum, default_value_t = StatusFormat::Plain)]
    pub format: StatusFormat,
}

/// How `status` prints the lock's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Plain,
    /// One JSON object.
    Json,
}

/// Options of `list`: the lock commands' connection options, without a lock.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// List only the locks whose name matches this glob (*, ?, [abc]).
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,

    /// Where the nodes are and how to reach them.
    #[command(flatten)]
    pub connection: Connection,

    /// How to print the locks.
    #[arg(long, value_enum, default_value_t = StatusFormat::Plain)]
    pub format: StatusFormat,

    /// Print no warnings (errors are always printed).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of run mode.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Options that name the lock and its lease.
    #[command(flatten)]
    pub lock: LockArgs,

    /// Waiting for a busy lock.
    #[command(flatten)]
    pub wait: WaitArgs,

    /// The signal that stops the command when the lease cannot be kept (name or number).
    ///
    /// It is also sent to whatever is left of the command's process group after the command
    /// exits, and to the command if rlock itself is killed. It must be a signal that ends a
    /// process: STOP, TSTP, TTIN, TTOU, CONT, CHLD, URG and WINCH are refused.
    #[arg(
        long,
        value_name = "SIGNAL",
        default_value = "TERM",
        value_parser = SignalParser,
        hide_possible_values = true,
        help_heading = "Stopping"
    )]
    pub kill_signal: Signal,

    /// Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less].
    ///
    /// It must fit in half the TTL, so that the command is dead before the lease can expire.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Stopping")]
    pub kill_after: Option<Duration>,

    /// Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124.
    ///
    /// A hung job must not hold the lock for ever by extending it for ever.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Stopping")]
    pub max_time: Option<Duration>,

    /// Keep the lock at least this long after the command started, even if it finishes sooner.
    ///
    /// Instead of releasing, rlock leaves the lock to expire when the time is up, so that a host
    /// whose cron fires a few seconds later does not run the same job again: "once per schedule
    /// across hosts", e.g. `rlock -k nightly --min-hold 5m -- job`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Cron")]
    pub min_hold: Option<Duration>,

    /// Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart.
    ///
    /// At most a day.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Cron")]
    pub jitter: Option<Duration>,

    /// Run SHELL COMMAND with sh -c instead of COMMAND.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SHELL COMMAND",
        conflicts_with = "command"
    )]
    pub shell: Option<String>,

    /// The command to run and its arguments, after --.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Options that every command working on a lock shares.
// Each bool is a command-line flag of its own.
#[allow(clippy::struct_excessive_bools)]
#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock's name: non-empty UTF-8, at most 1024 bytes, no control characters.
    #[arg(short, long, env = "RLOCK_KEY")]
    pub key: Option<String>,

    /// Where the nodes are and how to reach them.
    #[command(flatten)]
    pub connection: Connection,

    /// Lease time to live: how long the lock outlives an rlock that stops extending it.
    ///
    /// humantime syntax: 500ms, 30s, 2m, 1h 30m. At least 100ms, at most 24h.
    #[arg(short, long, env = "RLOCK_TTL", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ttl: Duration,

    /// Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock).
    ///
    /// Each holder takes one of N slots, each by a majority of the nodes, and its command gets
    /// RLOCK_SLOT (0 to N-1). Every user of a lock must give the same N: a different one is
    /// refused (exit 2). Not with --shared.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1000),
        conflicts_with = "shared",
        help_heading = "Lock mode"
    )]
    pub limit: Option<u32>,

    /// Take a shared hold: shared holders run together, an exclusive holder runs alone.
    ///
    /// Without it the lock is exclusive, as flock's -x. An exclusive waiter holds back new shared
    /// holders, so a stream of them cannot keep it waiting for ever.
    #[arg(short = 's', long, help_heading = "Lock mode")]
    pub shared: bool,

    /// Say what happens on stderr: acquired, extended, released.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print no warnings (errors are always printed).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Where the Redis nodes are and how to reach them: the options of every command that talks to
/// Redis, lock commands and `list` alike.
#[derive(Args, Debug)]
pub struct Connection {
    /// Where the Redis nodes are named: --redis or --redis-file.
    #[command(flatten)]
    pub nodes: Nodes,

    /// Trust the CAs in this PEM file for rediss:// nodes, instead of the system's roots.
    #[arg(
        long,
        env = "RLOCK_TLS_CA",
        value_name = "FILE",
        help_heading = "Connection"
    )]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; needs --tls-key.
    #[arg(
        long,
        env = "RLOCK_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Connection"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM); needs --tls-cert.
    #[arg(
        long,
        env = "RLOCK_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Connection"
    )]
    pub tls_key: Option<PathBuf>,

    /// Do not verify the servers' certificates (for tests: anyone on the path can impersonate them).
    #[arg(long, help_heading = "Connection")]
    pub tls_insecure: bool,

    /// Namespace for the lock's Redis keys.
    #[arg(
        long,
        env = "RLOCK_PREFIX",
        value_name = "PREFIX",
        default_value = "rlock:"
    )]
    pub prefix: String,
}

/// The Redis nodes' URLs, or the file that lists them, each with where its value came from.
///
/// A flag on the command line wins over the other option's environment variable as well as its
/// own (`RLOCK_REDIS_FILE=nodes rlock -r URL` uses URL). clap's conflict rules count a variable as
/// given, so they cannot say that: the sources are kept here, and `config` chooses.
#[derive(Debug)]
pub struct Nodes {
    /// The URLs of --redis, RLOCK_REDIS or the default, as clap split them at commas.
    pub redis: Vec<String>,
    /// Where `redis` came from: the command line, the environment or the default.
    pub redis_source: Option<ValueSource>,
    /// The file of URLs, from --redis-file or RLOCK_REDIS_FILE.
    pub redis_file: Option<PathBuf>,
    /// Where `redis_file` came from, if it is given.
    pub redis_file_source: Option<ValueSource>,
}

impl FromArgMatches for Nodes {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = NodeFlags::from_arg_matches(matches)?;
        Ok(Nodes {
            redis: flags.redis,
            redis_source: matches.value_source("redis"),
            redis_file: flags.redis_file,
            redis_file_source: matches.value_source("redis_file"),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Nodes::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for Nodes {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        NodeFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        NodeFlags::augment_args_for_update(cmd)
    }
}

/// The options behind [`Nodes`], as clap parses them.
#[derive(Args, Debug)]
struct NodeFlags {
    /// Redis node URL; give it several times (or comma-separated) for a Redlock quorum.
    ///
    /// redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), redis+unix:///PATH[?db=N],
    /// redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]. A Redis Cluster
    /// is reached through any one of its nodes. Keep passwords out of the command line, which
    /// every user sees in `ps`: use RLOCK_REDIS or --redis-file.
    #[arg(
        short,
        long = "redis",
        env = "RLOCK_REDIS",
        value_name = "URL",
        value_delimiter = ',',
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        help_heading = "Connection"
    )]
    redis: Vec<String>,

    /// Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable
    /// by group or others.
    ///
    /// It must be a regular file of at most 64 KiB, with lines of at most 1024 bytes.
    #[arg(
        long,
        env = "RLOCK_REDIS_FILE",
        value_name = "FILE",
        help_heading = "Connection"
    )]
    redis_file: Option<PathBuf>,
}

/// How long to wait for a busy lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Up to this long (zero: not at all).
    For(Duration),
    /// Until the lock is free, however long.
    Forever,
}

/// Parses a humantime duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration ({e}); use e.g. 500ms, 30s, 2m, 1h 30m"))
}

/// Parses `--wait`: a duration, `0`, or `forever`.
fn parse_wait(text: &str) -> Result<Wait, String> {
    match text.trim() {
        "forever" | "inf" | "infinity" => Ok(Wait::Forever),
        "0" => Ok(Wait::For(Duration::ZERO)),
        _ => parse_duration(text).map(Wait::For),
    }
}

/// Parses a signal name or number.
fn parse_signal(text: &str) -> Result<Signal, String> {
    crate::signals::parse(text)
}

/// `--kill-signal`'s parser: any name or number [`parse_signal`] takes, with the usual names as
/// possible values for shell completion only (`hide_possible_values` keeps them out of the help,
/// and clap checks possible values only for parsers that enforce them, which this one does not).
#[derive(Clone, Copy, Debug)]
struct SignalParser;

impl TypedValueParser for SignalParser {
    type Value = Signal;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Signal, clap::Error> {
        parse_signal.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let names = crate::signals::STOPPING_NAMES.into_iter();
        Some(Box::new(names.map(PossibleValue::new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wait_accepts_zero_durations_and_forever() {
        assert_eq!(parse_wait("0"), Ok(Wait::For(Duration::ZERO)));
        assert_eq!(parse_wait("forever"), Ok(Wait::Forever));
        assert_eq!(parse_wait("1m 30s"), Ok(Wait::For(Duration::from_secs(90))));
        assert!(parse_wait("soon").unwrap_err().contains("'soon'"));
    }

    #[test]
    fn kill_signal_takes_numbers_and_sig_names_beside_the_offered_ones() {
        for (text, signal) in [
            ("9", Signal::SIGKILL),
            ("SIGINT", Signal::SIGINT),
            ("usr1", Signal::SIGUSR1),
            ("PROF", Signal::SIGPROF),
        ] {
            let cli =
                Cli::try_parse_from(["rlock", "--kill-signal", text, "-k", "j", "--", "true"])
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cli.run.kill_signal, signal, "{text}");
        }
        let err =
            Cli::try_parse_from(["rlock", "--kill-signal", "BANANA", "-k", "j", "--", "true"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown signal 'BANANA'"), "{err}");
    }

    #[test]
    fn run_mode_is_the_default_and_explicit_run_is_the_same() {
        let implicit = Cli::try_parse_from(["rlock", "-k", "job", "--", "true"]).unwrap();
        assert!(implicit.command.is_none());
        assert_eq!(implicit.run.lock.key.as_deref(), Some("job"));
        assert_eq!(implicit.run.command, ["true"]);
        let explicit = Cli::try_parse_from(["rlock", "run", "-k", "job", "--", "true"]).unwrap();
        let Some(Command::Run(run)) = explicit.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["true"]);
    }
}
