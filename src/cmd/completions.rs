//! `rlock completions SHELL`: print a shell's completion script, generated from the command line
//! definition in `cli`. It needs no lock and no Redis.
//!
//! The same scripts are committed under `completions/`; a test keeps them equal to [`script`],
//! and `tests/integration/completion_shells.rs` runs them in bash, zsh and fish.
//!
//! They are `clap_complete`'s, from the command line without run mode's top-level `-- COMMAND`
//! (see `for_completion`), with a few lines added where a generator falls short: a command
//! line after `--` in bash, zsh and fish, and positional values and top-level option values in
//! fish. Help text never holds shell code: the scripts quote it, in double quotes for some.

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
    let mut cmd = for_completion(&Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rlock", &mut script);
    if shell == Shell::Bash {
        script = insert_after(script, "    opts=\"\"\n", BASH_COMMAND_AFTER_DASHES);
    }
    if shell == Shell::Zsh {
        script = insert_after(script, "_rlock() {\n", ZSH_COMMAND_AFTER_DASHES);
    }
    if shell == Shell::Fish {
        script = fish_patched(script);
        script.extend(fish_positionals(&cmd));
    }
    script
}

/// Makes bash complete a command line after `--` (`rlock -k job -- <Tab>`), where the generated
/// function would offer rlock's own options and subcommands again: with bash-completion's
/// `_command_offset` if it is loaded, as `sudo` and `timeout` do, else with command names.
const BASH_COMMAND_AFTER_DASHES: &str = r#"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        if [[ ${COMP_WORDS[i]} == -- ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset $(( i + 1 ))
            else
                COMPREPLY=( $(compgen -c -- "${cur}") )
            fi
            return 0
        fi
    done
"#;

/// Makes zsh complete a command line after `--`, where `_arguments -S` would skip the `--` and
/// offer subcommand names: the words after it are completed as a command of their own, as
/// `_precommand` does for `nice` or `sudo`.
const ZSH_COMMAND_AFTER_DASHES: &str = r#"    local dashes=${words[(i)--]}
    if (( dashes < CURRENT )); then
        words=("${(@)words[dashes+1,-1]}")
        (( CURRENT -= dashes ))
        _normal
        return
    fi
"#;

/// `script` with `code` inserted after the first line that is `anchor`.
fn insert_after(script: Vec<u8>, anchor: &str, code: &str) -> Vec<u8> {
    let script = String::from_utf8(script).expect("clap_complete writes UTF-8");
    let at = script
        .find(anchor)
        .unwrap_or_else(|| panic!("the generated script has no line {anchor:?}"))
        + anchor.len();
    format!("{}{code}{}", &script[..at], &script[at..]).into_bytes()
}

/// Makes fish complete the value of a top-level option (`rlock --kill-signal <Tab>`), and a
/// command line after `--`.
///
/// The generated `__fish_rlock_needs_command` parses the line with `argparse`, which fails on an
/// option still missing its value, the one being completed; the function then says a subcommand
/// was given, and fish offers files. `argparse -s` stops at the first word that is not an option,
/// so a failure means no subcommand was seen yet. After `--`, it said no subcommand was given,
/// and fish offered subcommand names; now none of rlock's own completions apply there, and the
/// words after `--` are completed as a command, as for `nice` or `sudo`.
fn fish_patched(script: Vec<u8>) -> Vec<u8> {
    const AFTER_DASHES: &str = r#"
function __fish_rlock_command_after_dashes
    set -l words (commandline -opc) (commandline -ct)
    set -l at (contains -i -- -- $words)
    __fish_complete_subcommand --commandline $words[(math $at + 1)..-1]
end

complete -c rlock -n "contains -- -- (commandline -opc)" -x -a "(__fish_rlock_command_after_dashes)"
"#;
    let script = String::from_utf8(script).expect("clap_complete writes UTF-8");
    let (head, function) = script
        .split_once("function __fish_rlock_needs_command\n")
        .expect("the fish script defines __fish_rlock_needs_command");
    let function = function.replacen("    or return\n", "    or return 0\n", 1);
    assert!(
        function.contains("or return 0\n"),
        "__fish_rlock_needs_command no longer returns after argparse: check this patch"
    );
    let past_dashes = "    contains -- -- (commandline -opc)\n    and return 1\n";
    format!("{head}function __fish_rlock_needs_command\n{past_dashes}{function}{AFTER_DASHES}")
        .into_bytes()
}

/// `rlock`'s command line as the completion generators should see it: without run mode's
/// `-- COMMAND` at the top level.
///
/// The generators treat that positional as an ordinary first word, before the subcommand: zsh
/// then takes `rlock acquire` for a COMMAND named acquire and offers run mode's options after it,
/// or subcommand names after `rlock completions`. Without it, the first word is the subcommand,
/// and a COMMAND still comes after `--`, where no generator completes anything but files.
fn for_completion(cli: &clap::Command) -> clap::Command {
    // clap can add an argument but not remove one: rebuild the top level from its parts.
    // (`Cli` has `#[command(version)]`, hence `-V`.)
    clap::Command::new("rlock")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().filter(|a| !a.is_last_set()).map(|arg| {
            // `-c` conflicts with COMMAND only; that conflict must go with it.
            if arg.get_id() == "shell" {
                arg.clone()
                    .conflicts_with(clap::builder::Resettable::<clap::Id>::Reset)
            } else {
                arg.clone()
            }
        }))
        .subcommands(cli.get_subcommands().cloned())
}

/// Lines that complete the positional values fish's generator leaves out (it completes options
/// only), so that `rlock completions <Tab>` offers shells, not files.
fn fish_positionals(cmd: &clap::Command) -> Vec<u8> {
    let mut lines = Vec::new();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            if values.is_empty() {
                continue;
            }
            // Names of subcommands and clap's value names: plain words, safe inside quotes.
            let (name, values) = (sub.get_name(), values.join(" "));
            writeln!(
                lines,
                "complete -c rlock -n \"__fish_rlock_using_subcommand {name}\" -f -a \"{values}\""
            )
            .expect("writing to memory cannot fail");
        }
    }
    lines
}
