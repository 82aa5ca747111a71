//! The `rlock` binary: parse, run, print any error once, exit with its documented status.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use rlock::{cli::Cli, exit};

/// How long rlock waits, at the end, for its stderr to take the last lines: a stderr that
/// nobody reads must not keep rlock (and its exit status) from its caller.
const LAST_WORDS: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    if let Some(code) = rlock::guard::serve_if_asked() {
        return code;
    }
    let code = run();
    rlock::log::flush(LAST_WORDS);
    code
}

fn run() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => {
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    ExitCode::from(exit::USAGE)
                }
                _ => {
                    let line = rlock::usage::line(&err, &argv);
                    rlock::log::error(format_args!("{line}"), LAST_WORDS);
                    ExitCode::from(exit::USAGE)
                }
            };
        }
    };
    match rlock::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            rlock::log::error(format_args!("{err:#}"), LAST_WORDS);
            ExitCode::from(exit::code_of(&err))
        }
    }
}
