//! `rlock completions SHELL`: print a shell's completion script, generated from the command line
//! definition in `cli`. It needs no lock and no Redis.
//!
//! The same scripts are committed under `completions/`; a test keeps them equal to [`script`].

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Prints the completion script for `shell`; returns the exit status.
pub fn completions(shell: Shell) -> Result<u8> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&script(shell))
        .and_then(|()| stdout.flush())
        .with_context(|| format!("writing the {shell} completion script"))?;
    Ok(0)
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rlock", &mut script);
    script
}
