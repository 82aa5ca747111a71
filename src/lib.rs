//! rlock: run a command while holding a Redis lease, on one node or a Redlock quorum of several.
//!
//! A lease lock is not a mutex: clients pause, packets are delayed, clocks jump. rlock therefore
//! measures time conservatively (from when a request was sent, on a clock that counts through
//! suspend, minus a drift margin), stops the command *before* its lease can expire on the servers,
//! releases only what it holds, and hands every holder a fencing token that rises with every grant
//! so that the protected resource can refuse a stale holder.
//!
//! # Layout
//! - [`cli`]: the command line (clap definitions; their doc comments are `--help`).
//! - [`config`]: command-line values checked and turned into settings, which build the lock.
//! - [`exit`]: every exit status, documented in one table.
//! - [`cmd`]: one module per subcommand, composing the pieces below; where the lease's outcomes
//!   and errors become exit statuses.
//! - [`lease`]: the lease protocol over N nodes (N = 1 is single-node mode): quorum and validity
//!   maths, one node's connection, the Lua scripts, and the fencing scheme. It speaks in values
//!   (granted, busy, kept, lost, unreachable) and never names an exit status.
//! - [`keeper`]: keeps a lease alive and reports each new deadline, or its loss; never touches
//!   processes.
//! - [`supervise`]: runs the command as a process group and stops it by its deadline; knows
//!   nothing of Redis.
//! - [`signals`]: caught signals, as values.
//! - [`clock`]: the boot clock all lease time is measured on.
//! - [`events`]: what the main thread reacts to, from every source.
//! - [`inbox`]: the channel the supervisor waits on: messages, or a time on the boot clock.
//! - [`log`]: warnings and progress on stderr, never waiting for it.
//! - [`out`]: results on stdout, never dying of it.
//! - [`guard`]: a process of its own that stops the command's group if rlock dies.
//! - [`usage`]: a command-line error as one line that says what to type instead.
//!
//! `lease` and `supervise` never import each other: they meet in [`cmd::run`] through one channel.

pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod events;
pub mod exit;
pub mod guard;
pub mod inbox;
pub mod keeper;
pub mod lease;
pub mod log;
pub mod out;
pub mod signals;
pub mod supervise;
pub mod usage;

use anyhow::Result;

/// Runs the parsed command line; returns the exit status, or an error to print (with its own).
pub fn run(cli: cli::Cli) -> Result<u8> {
    match cli.command {
        None => cmd::run::run(&config::run(cli.run)?),
        Some(cli::Command::Run(args)) => cmd::run::run(&config::run(args)?),
        Some(cli::Command::Acquire(args)) => cmd::acquire::acquire(&args),
        Some(cli::Command::Extend(args)) => cmd::extend::extend(&args),
        Some(cli::Command::Release(args)) => cmd::release::release(&args),
        Some(cli::Command::Status(args)) => cmd::status::status(&args),
        Some(cli::Command::List(args)) => cmd::list::list(&args),
        Some(cli::Command::Completions { shell }) => cmd::completions::completions(shell),
    }
}
