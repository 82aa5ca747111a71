//! The `rlock` binary: parse, run, print any error once, exit with its documented status.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use rlock::{cli::Cli, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
                    eprintln!("rlock: {}", rlock::usage_line(&err));
                    ExitCode::from(exit::USAGE)
                }
            };
        }
    };
    match rlock::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rlock: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}
