//! The signals rlock catches, turned into values on a thread of their own.
//!
//! Every signal whose default action would end rlock from outside is caught ([`terminating`]), so
//! that none can end it with the lease held and the command running: each is forwarded to the
//! command's group, the lease is kept until the command is gone, then released, and rlock exits
//! with the command's status (128+N if it died of signal N), or 128+N itself if no command was
//! running yet. `SIGCHLD` is caught so the supervisor learns at once that a child changed state.
//! Handlers are installed before the lock is taken, so that a Ctrl-C during acquisition is noticed
//! instead of killing rlock mid-grant.
//!
//! Real-time signals have no name in `nix`'s [`Signal`], so a caught signal is a
//! [`SignalNumber`].

use std::fmt;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use signal_hook::iterator::Signals;

/// A signal by number, real-time signals included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalNumber(pub i32);

impl SignalNumber {
    /// The status a shell reports for a death by this signal: 128+N.
    pub fn exit_status(self) -> u8 {
        u8::try_from(self.0).map_or(u8::MAX, |n| 128u8.saturating_add(n))
    }

    /// Sends this signal to process group `group`.
    #[allow(unsafe_code)] // nix's killpg takes only named signals, not real-time ones
    pub fn send_to_group(self, group: Pid) -> nix::Result<()> {
        // SAFETY: killpg takes two integers and touches no memory of this process.
        let result = unsafe { libc::killpg(group.as_raw(), self.0) };
        Errno::result(result).map(drop)
    }
}

impl From<Signal> for SignalNumber {
    fn from(signal: Signal) -> Self {
        SignalNumber(signal as i32)
    }
}

impl fmt::Display for SignalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SignalNumber(n) = *self;
        if let Ok(signal) = Signal::try_from(n) {
            f.write_str(signal.as_str())
        } else if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            write!(f, "SIGRTMIN+{}", n - libc::SIGRTMIN())
        } else {
            write!(f, "signal {n}")
        }
    }
}

/// The named signals that end a process unless caught, and that rlock catches (with every
/// real-time signal, see [`terminating`]). Not listed: `SIGKILL` and `SIGSTOP`, which cannot be
/// caught; the faults (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGABRT`, `SIGSYS`, `SIGTRAP`),
/// which mean rlock itself is broken and are left to the guardian ([`crate::guard`]); and
/// `SIGPIPE`, which Rust ignores so that a closed stderr is a write error, not a death.
const TERMINATING_NAMED: [i32; 14] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGSTKFLT,
];

/// Every signal that rlock catches and forwards: those that would otherwise end it from outside.
pub fn terminating() -> impl Iterator<Item = i32> {
    // SIGRTMIN is a function: the C library keeps the first few real-time signals for itself.
    TERMINATING_NAMED
        .into_iter()
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
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

/// A signal rlock caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caught {
    /// A signal to pass on to the command.
    Forward(SignalNumber),
    /// A child of rlock changed state (`SIGCHLD`).
    Child,
}

/// Installs the handlers and calls `on` from a dedicated thread for every signal caught.
pub fn listen(mut on: impl FnMut(Caught) + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new(terminating().chain([libc::SIGCHLD]))?;
    std::thread::Builder::new()
        .name("rlock-signals".to_owned())
        .spawn(move || {
            for number in signals.forever() {
                on(if number == libc::SIGCHLD {
                    Caught::Child
                } else {
                    Caught::Forward(SignalNumber(number))
                });
            }
        })?;
    Ok(())
}

/// The names shell completion offers for a stopping signal: the usual ones, all of which end a
/// process. Any other name or number that [`parse`] accepts works too.
pub const STOPPING_NAMES: [&str; 8] =
    ["TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "ALRM"];

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
    fn the_names_completion_offers_parse_and_end_a_process() {
        for name in STOPPING_NAMES {
            let signal = parse(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(ends_a_process(signal), "{name}");
        }
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

    #[test]
    fn every_signal_that_ends_a_process_from_outside_is_caught() {
        let caught: Vec<i32> = terminating().collect();
        for signal in Signal::iterator().filter(|&s| ends_a_process(s)) {
            let expected = !matches!(
                signal,
                Signal::SIGKILL
                    | Signal::SIGSEGV
                    | Signal::SIGBUS
                    | Signal::SIGILL
                    | Signal::SIGFPE
                    | Signal::SIGABRT
                    | Signal::SIGSYS
                    | Signal::SIGTRAP
                    | Signal::SIGPIPE
            );
            assert_eq!(caught.contains(&(signal as i32)), expected, "{signal}");
        }
        for n in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            assert!(caught.contains(&n), "real-time signal {n}");
        }
    }

    #[test]
    fn real_time_signals_have_names_and_exit_statuses() {
        let rt = SignalNumber(libc::SIGRTMIN() + 3);
        assert_eq!(rt.to_string(), "SIGRTMIN+3");
        assert_eq!(
            rt.exit_status(),
            128 + u8::try_from(libc::SIGRTMIN() + 3).unwrap()
        );
        assert_eq!(SignalNumber::from(Signal::SIGTERM).to_string(), "SIGTERM");
        assert_eq!(SignalNumber::from(Signal::SIGTERM).exit_status(), 143);
    }
}
