//! `scripts/quickstart` installs rlock where cron and systemd find it: run with `PREFIX` in a
//! temporary directory, the binary under test and a test Redis, it installs the binary, the man
//! pages and the completions; then every crontab line of README.md's "Use" block and of
//! `examples/crontab` runs under cron's bare environment (with its `PATH=` line, and fails with
//! 127 without it), and the systemd units pass `systemd-analyze verify` with the installed path.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;

use crate::examples::verify_units;
use crate::support::{RedisServer, temp_dir, without_rlock_env};

/// cron's own PATH, when the crontab sets none (Debian's cron).
const CRON_PATH: &str = "/usr/bin:/bin";

/// The path of FILE in the source tree.
fn source(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// The text of FILE in the source tree.
fn read_source(file: &str) -> String {
    fs::read_to_string(source(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

/// `out` as text for failure messages.
fn shown(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `scripts/quickstart` with `PREFIX=prefix`, the binary under test and `redis`.
fn quickstart(prefix: &Path, redis: &RedisServer) {
    let mut cmd = Command::new("bash");
    without_rlock_env(&mut cmd)
        .arg(source("scripts/quickstart"))
        .env("PREFIX", prefix)
        .env("RLOCK_QUICKSTART_BIN", env!("CARGO_BIN_EXE_rlock"))
        .env("RLOCK_QUICKSTART_REDIS_PORT", redis.port().to_string())
        .stdin(Stdio::null());
    let out = cmd.output().expect("run scripts/quickstart");
    assert!(
        out.status.success(),
        "{}",
        shown("scripts/quickstart", &out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\x1b'),
        "escape codes on a stdout that is no terminal:\n{stdout}"
    );
    assert!(
        stdout.contains("second run exited with 75"),
        "quickstart shows a skipped run:\n{stdout}"
    );
}

/// A crontab's `PATH=` line (if any) and the command part of each job line, as cron reads them.
struct Crontab {
    /// Where the lines come from, for messages.
    name: &'static str,
    /// The value of the `PATH=` line.
    path: Option<String>,
    /// The command of each job line: the line less its five time fields.
    commands: Vec<String>,
}

impl Crontab {
    /// Reads the crontab lines out of `text`: lines that are one `NAME=value`, and lines that start
    /// with five time fields. Other lines (comments, shell commands in the README) are not cron's.
    fn parse(name: &'static str, text: &str) -> Self {
        let (mut path, mut commands) = (None, Vec::new());
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            if let Some(value) = line.strip_prefix("PATH=") {
                path = Some(value.to_owned());
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let timed = |f: &&str| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c));
            if fields.len() > 5 && fields[..5].iter().all(timed) {
                let mut rest = line;
                for _ in 0..5 {
                    rest = rest.trim_start();
                    rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
                }
                commands.push(rest.trim().to_owned());
            }
        }
        assert!(!commands.is_empty(), "no crontab lines in {name}");
        Self {
            name,
            path,
            commands,
        }
    }

    /// README.md's first shell block after "## Use".
    fn readme() -> Self {
        let readme = read_source("README.md");
        let use_ = &readme[readme.find("\n## Use\n").expect("README.md has ## Use")..];
        let block = use_
            .split("```sh\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a sh block in ## Use");
        Self::parse("README.md (Use)", block)
    }

    /// `examples/crontab`.
    fn example() -> Self {
        Self::parse("examples/crontab", &read_source("examples/crontab"))
    }
}

/// Runs `command` as cron does: `/bin/sh -c` in an environment of `PATH`, `HOME`, `SHELL` and
/// `LOGNAME` alone, plus `RLOCK_REDIS` (the crontab's, or rlock's default, made the test's).
/// `RLOCK_PREFIX` keeps each line's lock apart, so the lines can run at once.
fn run_as_cron(command: &str, path: &str, home: &Path, redis: &RedisServer, n: usize) -> Output {
    Command::new("env")
        .arg("-i")
        .arg(format!("PATH={path}"))
        .arg(format!("HOME={}", home.display()))
        .args(["SHELL=/bin/sh", "LOGNAME=x"])
        .arg(format!("RLOCK_REDIS={}", redis.url()))
        .arg(format!("RLOCK_PREFIX=install-{n}:"))
        .args(["/bin/sh", "-c", command])
        .stdin(Stdio::null())
        .output()
        .expect("run env -i /bin/sh -c")
}

#[test]
fn quickstart_installs_rlock_its_man_pages_and_completions_under_prefix() {
    let (prefix, redis) = (temp_dir(), RedisServer::start());
    quickstart(prefix.path(), &redis);
    let p = prefix.path();
    let bin = p.join("bin/rlock");
    let mode = fs::metadata(&bin).expect("bin/rlock").permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "bin/rlock is executable by all");
    let mut installed = vec![
        "share/bash-completion/completions/rlock".to_owned(),
        "share/zsh/site-functions/_rlock".to_owned(),
        "etc/fish/completions/rlock.fish".to_owned(),
    ];
    for page in fs::read_dir(source("man")).expect("man/") {
        let page = page.unwrap().file_name();
        installed.push(format!("share/man/man1/{}", page.to_string_lossy()));
    }
    for file in &installed {
        let text = fs::read_to_string(p.join(file)).unwrap_or_default();
        assert!(
            text.contains("rlock"),
            "{file} is not installed under PREFIX"
        );
    }
    let man = Command::new("man")
        .args(["-w", "rlock"])
        .env("MANPATH", p.join("share/man"))
        .output();
    if let Ok(man) = man {
        assert!(man.status.success(), "{}", shown("man -w rlock", &man));
    }
}

#[test]
fn every_crontab_line_runs_under_crons_environment_after_quickstart_and_not_without_path() {
    let (prefix, home, redis) = (temp_dir(), temp_dir(), RedisServer::start());
    quickstart(prefix.path(), &redis);
    // The jobs under /opt: a stub that shows it ran.
    let job = home.path().join("job");
    fs::write(&job, "#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(&job, fs::Permissions::from_mode(0o755)).unwrap();
    let installed_bin = prefix.path().join("bin").display().to_string();
    let mut runs = Vec::new();
    for cron in [Crontab::readme(), Crontab::example()] {
        let path = cron
            .path
            .as_deref()
            .unwrap_or_else(|| panic!("{}: no PATH= line, so cron finds no rlock", cron.name));
        let path = path.replace("/usr/local/bin", &installed_bin);
        assert_ne!(
            path,
            cron.path.clone().unwrap(),
            "{}: the PATH line has no /usr/local/bin, where quickstart installs rlock",
            cron.name
        );
        for command in &cron.commands {
            let command: Vec<String> = command
                .split_whitespace()
                .map(|w| {
                    if w.starts_with("/opt/") {
                        job.display().to_string()
                    } else {
                        w.to_owned()
                    }
                })
                .collect();
            runs.push((cron.name, path.clone(), command.join(" ")));
        }
    }
    // At once: one line waits for its --jitter (up to 30 s).
    thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(n, (name, path, command))| {
                let (home, redis) = (home.path(), &redis);
                scope.spawn(move || {
                    let with = run_as_cron(command, path, home, redis, n);
                    let what = format!("{name}: `{command}` with PATH={path}");
                    assert!(with.status.code() == Some(0), "{}", shown(&what, &with));
                    assert_eq!(String::from_utf8_lossy(&with.stdout), "ran\n", "{what}");
                    let without = run_as_cron(command, CRON_PATH, home, redis, n);
                    let what = format!("{name}: `{command}` with cron's PATH={CRON_PATH}");
                    assert!(
                        without.status.code() == Some(127)
                            && String::from_utf8_lossy(&without.stderr).contains("not found"),
                        "rlock must not be found without the PATH line: {}",
                        shown(&what, &without)
                    );
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .expect("a crontab line failed (see its panic)");
        }
    });
}

#[test]
fn the_systemd_units_verify_with_the_installed_rlock() {
    let (prefix, redis) = (temp_dir(), RedisServer::start());
    quickstart(prefix.path(), &redis);
    verify_units(&prefix.path().join("bin/rlock"));
}
