//! The committed completion scripts in the real shells: bash (with bash-completion), zsh and fish.
//!
//! Each test loads `completions/` into a shell with a fake `rlock` first on PATH that records any
//! run, asks for the completions of a few command lines (among them `rlock acquire --format `,
//! whose value descriptions once held a `$(rlock acquire ...)` that fish ran on the first Tab),
//! checks what is offered, and checks that the fake `rlock` never ran.
//!
//! A missing shell is a visible skip (`SKIPPED: ...` on stderr), and a failure when `CI` is set.
//! zsh completes only inside its line editor, so the zsh test types each line into an interactive
//! `zsh -f` on a pseudo-terminal (zsh/zpty) and captures what `compadd` is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use rlock::cli::Cli;

use crate::support::{skip, temp_dir};

/// The source tree's completion scripts.
fn completions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

/// The command lines every shell completes, and what each must offer (`None`: see the test).
const QUERIES: &[&str] = &[
    "rlock acquire --format ",
    "rlock acquire --f",
    "rlock completions ",
    "rlock --kill-signal ",
    "rlock run --kill-signal U",
    "rlock status --t",
    "rlock -k job -- ech",
    "rlock -k job -- ./some",
];

/// A directory to complete in: a fake `rlock` in `bin/` that appends its arguments to `ran`, and
/// an executable `work/somescript` for file completion.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = temp_dir();
        let bin = dir.path().join("bin");
        let work = dir.path().join("work");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&work).unwrap();
        let record = dir.path().join("ran");
        let fake = bin.join("rlock");
        fs::write(
            &fake,
            format!("#!/bin/sh\necho \"rlock $*\" >> '{}'\n", record.display()),
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let script = work.join("somescript");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir }
    }

    /// `program` set up to run in `work/` with the fake `rlock` first on PATH and HOME here.
    fn command(&self, program: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.dir.path().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path().join("work"))
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("TERM", "dumb")
            .env_remove("RLOCK_REDIS");
        cmd
    }

    /// Runs `cmd`, and parses its `QUERY:<line>` headers, each followed by one candidate a line.
    fn complete(&self, mut cmd: Command) -> BTreeMap<String, Vec<String>> {
        let out = cmd.output().expect("running the shell");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
            out.status
        );
        let ran = fs::read_to_string(self.dir.path().join("ran")).unwrap_or_default();
        assert!(
            ran.is_empty(),
            "loading or using the completion script ran rlock:\n{ran}"
        );
        let mut answers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = None;
        for line in stdout.lines() {
            if let Some(query) = line.strip_prefix("QUERY:") {
                current = Some(query.to_owned());
                answers.entry(query.to_owned()).or_default();
            } else if let Some(query) = &current {
                // fish prints "candidate<TAB>description".
                let word = line.split('\t').next().unwrap_or_default().trim();
                if !word.is_empty() {
                    answers.get_mut(query).unwrap().push(word.to_owned());
                }
            }
        }
        answers
    }
}

/// Whether `program` is on PATH; if not, says so, and fails under CI.
fn have(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        skip(&format!(
            "{program} is not installed (apt-get install {package})"
        ));
    }
    found
}

/// Checks the answers every shell must give for [`QUERIES`].
fn check(shell: &str, answers: &BTreeMap<String, Vec<String>>) {
    let offered = |query: &str| -> &Vec<String> {
        answers
            .get(query)
            .unwrap_or_else(|| panic!("{shell}: no answer for {query:?}: {answers:#?}"))
    };
    let expect = |query: &str, wanted: &[&str], unwanted: &[&str]| {
        let got = offered(query);
        for w in wanted {
            assert!(
                got.iter().any(|g| g == w || g.ends_with(&format!("/{w}"))),
                "{shell}: `{query}<Tab>` should offer {w}; it offers {got:?}"
            );
        }
        for u in unwanted {
            assert!(
                !got.iter().any(|g| g == u),
                "{shell}: `{query}<Tab>` should not offer {u}; it offers {got:?}"
            );
        }
    };
    expect("rlock acquire --format ", &["plain", "json", "shell"], &[]);
    expect("rlock acquire --f", &["--format"], &[]);
    expect(
        "rlock completions ",
        &["bash", "zsh", "fish"],
        &["acquire", "run", "somescript"],
    );
    expect(
        "rlock --kill-signal ",
        &["TERM", "INT", "KILL"],
        &["somescript"],
    );
    expect("rlock run --kill-signal U", &["USR1", "USR2"], &[]);
    expect(
        "rlock status --t",
        &["--token", "--ttl"],
        &["--kill-signal", "--max-time"],
    );
    expect("rlock -k job -- ech", &["echo"], &[]);
    expect(
        "rlock -k job -- ./some",
        &["somescript"],
        &["run", "acquire"],
    );
}

#[test]
fn bash_completes_subcommand_options_shells_signals_and_commands_and_runs_nothing() {
    let bash_completion = Path::new("/usr/share/bash-completion/bash_completion");
    if !have("bash", "bash") {
        return;
    }
    if !bash_completion.is_file() {
        skip(&format!(
            "{} is missing (apt-get install bash-completion)",
            bash_completion.display()
        ));
        return;
    }
    let sandbox = Sandbox::new();
    // As readline would call it: the words, the cursor's word, and the function with the
    // command, the current word and the previous one.
    let mut script = format!(
        "source {}\nsource {}/rlock.bash\n{}",
        bash_completion.display(),
        completions().display(),
        r#"
complete_line() {
    COMP_LINE=$1
    COMP_POINT=${#COMP_LINE}
    read -ra COMP_WORDS <<<"$COMP_LINE"
    [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMPREPLY=()
    _rlock rlock "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf 'QUERY:%s\n' "$1"
    printf '%s\n' "${COMPREPLY[@]}"
}
"#
    );
    for query in QUERIES.iter().chain(&["rlock run -k job -- ls --colo"]) {
        writeln!(script, "complete_line '{query}' 2>/dev/null").unwrap();
    }
    let mut cmd = sandbox.command("bash");
    cmd.args(["--norc", "--noprofile", "-c", &script]);
    let answers = sandbox.complete(cmd);
    check("bash", &answers);
    assert!(
        answers["rlock run -k job -- ls --colo"].contains(&"--color".to_owned()),
        "bash: after --, the command's own options: {answers:#?}"
    );
}

#[test]
fn fish_completes_subcommand_options_shells_signals_and_commands_and_runs_nothing() {
    if !have("fish", "fish") {
        return;
    }
    let sandbox = Sandbox::new();
    // --no-config leaves fish_complete_path empty: give it fish's own, for `ls`'s options.
    let mut script = format!(
        "set -g fish_complete_path $__fish_data_dir/completions\nsource {}/rlock.fish\n",
        completions().display()
    );
    for query in QUERIES.iter().chain(&["rlock run -k job -- ls --colo"]) {
        writeln!(script, "echo 'QUERY:{query}'\ncomplete -C '{query}'").unwrap();
    }
    let mut cmd = sandbox.command("fish");
    cmd.args(["--no-config", "-c", &script]);
    let answers = sandbox.complete(cmd);
    check("fish", &answers);
    assert!(
        answers["rlock run -k job -- ls --colo"].contains(&"--color".to_owned()),
        "fish: after --, the command's own options: {answers:#?}"
    );
}

/// Types each line and a Tab into an interactive `zsh -f` with compinit and `completions/` on
/// fpath, and prints what `compadd` was given, after `QUERY:<line>`. The `\x01`/`\x02` markers
/// tell output from the terminal's echo of what was typed; `comppostfuncs` ends the shell after
/// one completion, so that the reading loop knows when it is done.
const ZSH_CAPTURE: &str = r#"
zmodload zsh/zpty || exit 3
dir=$1; shift
for line in "$@"; do
  print -r -- "QUERY:$line"
  zpty z zsh -f -i
  zpty -w z "fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
  zpty -w z 'compadd () {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
    typeset -a __hits
    builtin compadd -A __hits "$@"
    local h; for h in $__hits; do print -r -- $'\''\x01'\''"$h"; done
  }'
  zpty -w z 'null-line () { print -r -- $'\''\x02'\''; }; compprefuncs=(null-line); comppostfuncs=(null-line exit)'
  zpty -w z 'zstyle ":completion:*" insert-tab false; bindkey "^I" complete-word'
  zpty -w -n z "$line"$'\t'
  seen=0
  while (( seen < 2 )) && zpty -r z out; do
    out=${out//$'\r'/}
    if [[ $out == *$'\x02'* ]]; then (( seen++ )); continue; fi
    (( seen == 1 )) && [[ $out == *$'\x01'* ]] && print -r -- "${${out##*$'\x01'}%$'\n'}"
  done
  zpty -d z
done
"#;

#[test]
fn zsh_completes_subcommand_options_shells_signals_and_commands_and_runs_nothing() {
    if !have("zsh", "zsh") {
        return;
    }
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command("timeout");
    cmd.args(["60", "zsh", "-f", "-c", ZSH_CAPTURE, "zsh"])
        .arg(completions())
        .args(QUERIES)
        .arg("rlock run -k job -- ls --colo");
    let answers = sandbox.complete(cmd);
    check("zsh", &answers);
    assert!(
        answers["rlock run -k job -- ls --colo"].contains(&"--color".to_owned()),
        "zsh: after --, the command's own options: {answers:#?}"
    );
}

/// Every text of the command line that a completion script shows: about, help, value help.
fn descriptions(cmd: &clap::Command, out: &mut Vec<(String, String)>) {
    let name = cmd.get_name().to_owned();
    out.extend(cmd.get_about().map(|a| (name.clone(), a.to_string())));
    for arg in cmd.get_arguments() {
        let what = format!("{name} {}", arg.get_id());
        out.extend(arg.get_help().map(|h| (what.clone(), h.to_string())));
        for value in arg.get_possible_values() {
            out.extend(
                value
                    .get_help()
                    .map(|h| (format!("{what}={}", value.get_name()), h.to_string())),
            );
        }
    }
    for sub in cmd.get_subcommands() {
        descriptions(sub, out);
    }
}

#[test]
fn no_completion_description_holds_shell_code() {
    let mut cli = Cli::command();
    cli.build();
    let mut all = Vec::new();
    descriptions(&cli, &mut all);
    assert!(all.len() > 40, "too few descriptions found: {all:?}");
    // A completion script quotes these in single or double quotes, depending on the shell and
    // the generator's version: inside double quotes, `...` and $(...) run.
    let code: Vec<_> = all
        .iter()
        .filter(|(_, text)| text.contains('`') || text.contains('$'))
        .collect();
    assert!(
        code.is_empty(),
        "help text that completion scripts show must have no backtick or $: {code:#?}"
    );
    for entry in fs::read_dir(completions()).unwrap() {
        let path = entry.unwrap().path();
        let script = fs::read_to_string(&path).unwrap();
        assert!(
            !script.contains('`') && !script.contains("$(rlock"),
            "{} holds a backtick or $(rlock",
            path.display()
        );
    }
}

/// The README's per-user lines for bash, zsh and fish, as a new user pastes them into a fresh
/// account: from the `# bash` comment up to the `# elvish` one.
fn readme_completion_lines() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let section = readme
        .split("## Shell completions and man page")
        .nth(1)
        .expect("README.md has a 'Shell completions and man page' section");
    let start = section.find("\n# bash").expect("a '# bash' line");
    let end = section.find("\n# elvish").expect("a '# elvish' line");
    section[start..end].to_owned()
}

#[test]
fn the_readmes_completion_lines_work_in_a_fresh_home() {
    let lines = readme_completion_lines();
    let home = temp_dir();
    let bin = temp_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlock"), bin.path().join("rlock")).unwrap();
    let out = Command::new("/bin/sh")
        .args(["-ec", &lines])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .output()
        .expect("run /bin/sh");
    assert!(
        out.status.success(),
        "the README's lines failed in a fresh HOME ({}):\n{lines}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, marker) in [
        (".local/share/bash-completion/completions/rlock", "_rlock"),
        (".zfunc/_rlock", "#compdef rlock"),
        (".config/fish/completions/rlock.fish", "complete -c rlock"),
    ] {
        let text = fs::read_to_string(home.path().join(file))
            .unwrap_or_else(|e| panic!("the README's lines wrote no ~/{file}: {e}"));
        assert!(text.contains(marker), "~/{file} lacks {marker:?}");
    }
}
