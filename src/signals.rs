//! The signals rlock catches, turned into values on a thread of their own.
//!
//! Termination and user signals are caught (so rlock outlives them and can forward them to the
//! command, keep the lease until the command is gone, then release it); `SIGCHLD` is caught so the
//! supervisor learns at once that a child changed state. Handlers are installed before the lock is
//! taken, so that a Ctrl-C during acquisition is noticed instead of killing rlock mid-grant.

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

/// Signals forwarded to the command's process group.
pub const FORWARDED: [i32; 6] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// A signal rlock caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caught {
    /// A signal to pass on to the command.
    Forward(Signal),
    /// A child of rlock changed state (`SIGCHLD`).
    Child,
}

/// Installs the handlers and calls `on` from a dedicated thread for every signal caught.
pub fn listen(mut on: impl FnMut(Caught) + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new(FORWARDED.iter().copied().chain([SIGCHLD]))?;
    std::thread::Builder::new()
        .name("rlock-signals".to_owned())
        .spawn(move || {
            for number in signals.forever() {
                if number == SIGCHLD {
                    on(Caught::Child);
                } else if let Ok(signal) = Signal::try_from(number) {
                    on(Caught::Forward(signal));
                }
            }
        })?;
    Ok(())
}

/// Whether `signal`, not caught, ends a process: false for those whose default action is to
/// stop, continue or ignore it. Only those that end it can stop a command.
pub fn ends_a_process(signal: Signal) -> bool {
    !matches!(
        signal,
        Signal::SIGSTOP
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
            | Signal::SIGCONT
            | Signal::SIGCHLD
            | Signal::SIGURG
            | Signal::SIGWINCH
    )
}

/// Parses a signal given by name (`TERM`, `SIGTERM`, `term`) or number (`15`).
pub fn parse(text: &str) -> Result<Signal, String> {
    let bad =
        || format!("unknown signal '{text}' (use a name such as TERM, INT, KILL, or a number)");
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse("sigint"), Ok(Signal::SIGINT));
        assert_eq!(parse("SIGKILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse("9"), Ok(Signal::SIGKILL));
        assert!(parse("BANANA").unwrap_err().contains("'BANANA'"));
        assert!(parse("0").is_err());
        assert!(parse("99").is_err());
    }

    #[test]
    fn only_signals_that_end_a_process_can_stop_a_command() {
        for signal in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGKILL,
            Signal::SIGUSR1,
            Signal::SIGALRM,
        ] {
            assert!(ends_a_process(signal), "{signal}");
        }
        for signal in [
            Signal::SIGSTOP,
            Signal::SIGCONT,
            Signal::SIGWINCH,
            Signal::SIGCHLD,
            Signal::SIGURG,
            Signal::SIGTSTP,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
        ] {
            assert!(!ends_a_process(signal), "{signal}");
        }
    }
}
