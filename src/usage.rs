//! A command-line parsing error as one `rlock: …` line that says what to type instead.
//!
//! clap's own rendering spreads over several lines (message, `tip:` lines, usage), and rlock's
//! diagnostics are one line each, so the first line is kept and clap's suggestion, read from the
//! error's context rather than from its text, is carried into it: a similar flag, value or
//! subcommand. Two mistakes clap gives no tip for get one here: a command without the `--` before
//! it, and a subcommand after options.

use std::ffi::OsString;

use clap::CommandFactory as _;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::Cli;

/// One line for `err`, a parsing error of the command line `argv` (program name first).
pub fn line(err: &clap::Error, argv: &[OsString]) -> String {
    match hint(err, argv) {
        Some(hint) => {
            let message = match (err.kind(), text_of(err, ContextKind::InvalidArg)) {
                // clap's "… found" reads oddly before a hint.
                (ErrorKind::UnknownArgument, Some(arg)) => format!("unexpected argument '{arg}'"),
                _ => first_paragraph(err),
            };
            format!("{message}; {hint}")
        }
        None => format!("{} (see 'rlock --help')", first_paragraph(err)),
    }
}

/// What to type instead, if there is something better to say than "see --help".
fn hint(err: &clap::Error, argv: &[OsString]) -> Option<String> {
    for kind in [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
        ContextKind::SuggestedSubcommand,
    ] {
        if let Some(suggestion) = text_of(err, kind) {
            return Some(format!("did you mean '{suggestion}'?"));
        }
    }
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let word = text_of(err, ContextKind::InvalidArg)?;
    if word.starts_with('-') {
        return None;
    }
    let cli = Cli::command();
    // rlock has no global options, so a subcommand, if any, is the first argument.
    let first = argv.get(1).and_then(|a| a.to_str());
    let subcommand = first.and_then(|f| cli.find_subcommand(f));
    if cli.find_subcommand(&word).is_some() && first != Some(word.as_str()) {
        return Some(format!("a subcommand comes first: rlock {word} [OPTIONS]"));
    }
    if first == Some(word.as_str())
        && let Some(similar) = similar_subcommand(&cli, &word)
    {
        return Some(format!("did you mean 'rlock {similar}'?"));
    }
    let rlock = match subcommand.map(clap::Command::get_name) {
        None => "rlock",
        Some("run") => "rlock run",
        Some(_) => return None,
    };
    Some(format!(
        "put the command after '--': {rlock} [OPTIONS] -- {word} ..."
    ))
}

/// The subcommand of `cli` that clap finds similar to `word`, if any.
fn similar_subcommand(cli: &clap::Command, word: &str) -> Option<String> {
    // rlock's own parser cannot say it: run mode's `-- COMMAND` makes every word a candidate
    // argument, so clap never compares one with the subcommands. A parser with the subcommands
    // alone does.
    let names = clap::Command::new("rlock").subcommands(cli.get_subcommands().cloned());
    let err = names.try_get_matches_from(["rlock", word]).err()?;
    text_of(&err, ContextKind::SuggestedSubcommand)
}

/// The context `kind` of `err` as text (the first of several), if clap gave it.
fn text_of(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(text) => Some(text.clone()),
        ContextValue::Strings(texts) => texts.first().cloned(),
        _ => None,
    }
}

/// clap's message without its usage and tips, on one line.
fn first_paragraph(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let text = text.split("\n\n").next().unwrap_or_default();
    let text = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn line_for(argv: &[&str]) -> String {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let err = Cli::try_parse_from(&argv).expect_err("should be refused");
        line(&err, &argv)
    }

    #[test]
    fn clap_suggestions_are_carried_into_the_one_line() {
        assert_eq!(
            line_for(&["rlock", "--ttll", "5s", "-k", "x", "--", "true"]),
            "unexpected argument '--ttll'; did you mean '--ttl'?"
        );
        assert_eq!(
            line_for(&["rlock", "status", "-k", "x", "--format", "jsn"]),
            "invalid value 'jsn' for '--format <FORMAT>' [possible values: plain, json]; \
             did you mean 'json'?"
        );
        assert_eq!(
            line_for(&["rlock", "stauts", "-k", "x"]),
            "unexpected argument 'stauts'; did you mean 'rlock status'?"
        );
    }

    #[test]
    fn a_word_in_run_mode_is_told_to_go_after_the_double_dash() {
        let expected = "unexpected argument 'echo'; put the command after '--': \
                        rlock [OPTIONS] -- echo ...";
        assert_eq!(line_for(&["rlock", "-k", "x", "echo", "hi"]), expected);
        assert_eq!(
            line_for(&["rlock", "run", "-k", "x", "echo", "hi"]),
            "unexpected argument 'echo'; put the command after '--': rlock run [OPTIONS] -- echo ..."
        );
        assert_eq!(line_for(&["rlock", "echo", "hi"]), expected);
        assert_eq!(
            line_for(&["rlock", "status", "-k", "x", "echo"]),
            "unexpected argument 'echo' found (see 'rlock --help')"
        );
        assert_eq!(
            line_for(&["rlock", "-k", "x", "status"]),
            "unexpected argument 'status'; a subcommand comes first: rlock status [OPTIONS]"
        );
    }

    #[test]
    fn errors_without_a_suggestion_point_to_help() {
        assert_eq!(
            line_for(&["rlock", "-k", "x", "--zzz"]),
            "unexpected argument '--zzz' found (see 'rlock --help')"
        );
    }
}
