//! What the rlock-process faults need from the system: the members of a process group, read from
//! `/proc`, and a pipe that is full and that nobody reads.
//!
//! A killed rlock's command and its descendants are watched by pid, not by group id alone: once
//! the group is empty its id can be reused. Each member is remembered with its start time (field
//! 22 of `/proc/PID/stat`), so that a reused pid never passes for a member still alive. Zombies
//! count as dead: in this sandbox an orphan can stay a zombie until something reaps it.

use std::fs;
use std::io::{self, Read as _, Write as _};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// One process of a group, as first seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub pid: i32,
    /// Clock ticks after boot, from `/proc/PID/stat`: tells the process from a later one that
    /// reuses its pid.
    start: u64,
}

impl Member {
    /// Alive: it exists, is not a zombie, and is still the process first seen in the group.
    pub fn alive(self, group: i32) -> bool {
        stat(self.pid).is_some_and(|s| {
            s.start == self.start && s.group == group && !matches!(s.state, 'Z' | 'X')
        })
    }
}

/// The live processes of group `group`, read from `/proc` (every process: a few milliseconds).
pub fn group_members(group: i32) -> Vec<Member> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let s = stat(pid)?;
            (s.group == group && !matches!(s.state, 'Z' | 'X')).then_some(Member {
                pid,
                start: s.start,
            })
        })
        .collect()
}

/// The fields of `/proc/PID/stat` this module reads.
struct Stat {
    state: char,
    group: i32,
    start: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// A pipe filled to capacity whose read end nobody reads while rlock runs: every blocking write
/// to its write end waits forever. Kept as in `tests/integration/support.rs`'s `FullPipe`, plus
/// [`FullPipe::drain`] to collect what got through after the run.
pub struct FullPipe {
    reader: io::PipeReader,
    writer: io::PipeWriter,
}

impl FullPipe {
    pub fn new() -> FullPipe {
        let (reader, mut writer) = io::pipe().expect("create a pipe");
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("make the pipe non-blocking");
        while writer.write(&[b'x'; 4096]).is_ok() {}
        // Blocking again: rlock gets the pipe as a stalled reader's would be.
        fcntl(&writer, FcntlArg::F_SETFL(OFlag::empty())).expect("make the pipe blocking");
        FullPipe { reader, writer }
    }

    /// Another handle on the write end, to hand to a process.
    pub fn writer(&self) -> io::PipeWriter {
        self.writer.try_clone().expect("dup the pipe")
    }

    /// Reads what the pipe holds without waiting, and returns it without the filling.
    pub fn drain(self) -> String {
        let FullPipe { mut reader, writer } = self;
        drop(writer);
        fcntl(&reader, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("make the pipe non-blocking");
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        text.trim_start_matches('x').to_owned()
    }
}

/// What each thread of process `pid` waits in (`/proc/PID/task/*/comm` and `wchan`), for the
/// report on a run the harness had to kill.
pub fn threads(pid: i32) -> String {
    let read = |path: std::path::PathBuf| fs::read_to_string(path).unwrap_or_default();
    let mut threads: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| {
            let path = task.path();
            let syscall = read(path.join("syscall"));
            format!(
                "{} in {} (syscall {})",
                read(path.join("comm")).trim(),
                read(path.join("wchan")).trim(),
                syscall.split_whitespace().next().unwrap_or("?")
            )
        })
        .collect();
    threads.sort();
    threads.join(", ")
}
