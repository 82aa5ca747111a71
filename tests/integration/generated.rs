//! The generated files: completion scripts (`completions/`) and man pages (`man/`) come from the
//! command line definition, `rlock::cli::Cli::command()`, and are committed.
//!
//! `generated_files_are_fresh` regenerates them all in memory and compares: by default it only
//! fails, naming each stale file and the command that rewrites them,
//! `RLOCK_REGENERATE=1 cargo test --test integration generated`. Files in the tree change only
//! when asked, so a plain `cargo test` never leaves a diff behind.
//!
//! The man pages are `clap_mangen`'s pages (name, synopsis, description, options, subcommands) with
//! rlock's own sections added: EXIT STATUS from `rlock::exit::STATUSES` (the table `--help`
//! shows), ENVIRONMENT, EXAMPLES (from the files in `examples/`) and SEE ALSO.

use std::collections::BTreeSet;
use std::fs::{self, Permissions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, ValueEnum};
use clap_complete::{Generator, Shell};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use rlock::cli::Cli;

use crate::servers::{TlsServer, tls_unavailable};
use crate::support::{rlock, skip};

/// The directories that hold generated files, and nothing else.
const GENERATED_DIRS: [&str; 2] = ["completions", "man"];

/// What `rlock run` puts in the command's environment (`lease_env` in src/cmd/mod.rs), for the
/// man page; a test checks the list against a real run over mutual TLS.
const COMMAND_ENVIRONMENT: &[(&str, &str)] = &[
    ("RLOCK_KEY", "the lock name"),
    (
        "RLOCK_TOKEN",
        "the lease's token (128 random bits, hex): the value stored in the lock",
    ),
    (
        "RLOCK_FENCE",
        "the fencing token: a decimal integer, larger for every later grant. Pass it to the \
         resource you protect, and have the resource refuse a write whose fence is not larger \
         than the last one it accepted",
    ),
    ("RLOCK_REDIS", "the node URLs, comma-separated"),
    ("RLOCK_PREFIX", "the prefix of the lock's Redis keys"),
    ("RLOCK_TTL", "the lease TTL"),
    (
        "RLOCK_MODE",
        "exclusive, shared (with --shared) or limit (with --limit N, N > 1)",
    ),
    (
        "RLOCK_SLOT",
        "which of the lock's places the command holds, 0 to N-1 with --limit N (0 when \
         exclusive; not set when shared). A resource checks fences per slot",
    ),
    (
        "RLOCK_LIMIT",
        "how many holders the lock admits at once: N with --limit N, 1 when exclusive; not set \
         when shared",
    ),
    (
        "RLOCK_TLS_CA",
        "the --tls-ca file as an absolute path, when one was given",
    ),
    (
        "RLOCK_TLS_CERT",
        "the --tls-cert file as an absolute path, when one was given",
    ),
    (
        "RLOCK_TLS_KEY",
        "the --tls-key file as an absolute path, when one was given",
    ),
];

/// The version in Cargo.toml and its release date, for the man pages' title line. A test fails when
/// the version changes, so that the date changes with it.
const RELEASE: (&str, &str) = ("0.1.0", "2026-11-23");

/// The Redlock page, for SEE ALSO.
const REDLOCK_URL: &str = "https://redis.io/docs/latest/develop/use/patterns/distributed-locks/";

/// The source tree.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file: its path in the source tree, and what it should hold.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let completions = Shell::value_variants().iter().map(|&shell| {
        let path = Path::new("completions").join(shell.file_name("rlock"));
        (path, rlock::cmd::completions::script(shell))
    });
    completions.chain(man_pages()).collect()
}

/// `man/rlock.1` and one page per subcommand.
fn man_pages() -> Vec<(PathBuf, Vec<u8>)> {
    // `rlock help` is clap's; it gets no page, and the top page does not list it.
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut pages = vec![(
        PathBuf::from("man/rlock.1"),
        page(&top, &top_sections(&top)),
    )];
    for sub in top.get_subcommands() {
        let name = format!("man/rlock-{}.1", sub.get_name());
        pages.push((PathBuf::from(name), page(sub, &subcommand_sections(sub))));
    }
    pages
}

/// `clap_mangen`'s page for `cmd`, with `sections` added before its VERSION section (if any).
fn page(cmd: &clap::Command, sections: &Roff) -> Vec<u8> {
    // `after_long_help` is the exit-status text, which `sections` turns into a real section.
    let cmd = cmd.clone().after_long_help(None::<&str>);
    let mut rendered = Vec::new();
    let (version, date) = RELEASE;
    Man::new(cmd)
        .date(date)
        .source(format!("rlock {version}"))
        .manual("User Commands")
        .render(&mut rendered)
        .expect("rendering into memory cannot fail");
    let rendered = String::from_utf8(rendered).expect("man pages are UTF-8");
    // clap_mangen puts `.br`, a blank line and `.br` before an option's possible values, which
    // mandoc -Tlint warns about; `.sp` says the same.
    let rendered = rendered.replace("\n.br\n\n.br\n", "\n.sp\n");
    let rendered = description_examples_unfilled(&rendered);
    // `render` starts every document with the same preamble, which the page already has.
    let preamble = Roff::new().render();
    let ours = sections.render();
    let ours = ours
        .strip_prefix(&preamble)
        .expect("rendered roff starts with its preamble");
    let (head, tail) = rendered
        .split_once(".SH VERSION\n")
        .map_or((rendered.as_str(), String::new()), |(head, rest)| {
            (head, format!(".SH VERSION\n{rest}"))
        });
    format!("{head}{ours}{tail}").into_bytes()
}

/// `rendered` with the example lines of its DESCRIPTION (from `--help`, indented by two spaces)
/// in `.EX`/`.EE` blocks: filled like prose, a comment ran on into the next example.
fn description_examples_unfilled(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let (mut in_description, mut in_example) = (false, false);
    for line in rendered.lines() {
        if line.starts_with(".SH ") {
            in_description = line == ".SH DESCRIPTION";
        }
        let example = in_description && line.starts_with("  ");
        if example && !in_example {
            out.push_str(".EX\n");
        } else if !example && in_example {
            out.push_str(".EE\n");
        }
        in_example = example;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top page's own sections: EXIT STATUS, ENVIRONMENT, EXAMPLES and SEE ALSO.
fn top_sections(top: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    exit_status(&mut roff, rlock::exit::STATUSES);
    environment(&mut roff, top);
    examples(&mut roff);
    let mut see_also: Vec<String> = top
        .get_subcommands()
        .map(|sub| format!("rlock\\-{}", sub.get_name()))
        .collect();
    see_also.extend(["flock".into(), "timeout".into()]);
    let redlock = ("Distributed locks with Redis (Redlock)", REDLOCK_URL);
    self::see_also(&mut roff, &see_also, &[redlock]);
    roff
}

/// A subcommand page's own sections: EXIT STATUS and SEE ALSO.
fn subcommand_sections(sub: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    if sub.get_after_long_help().is_some() {
        // Its --help ends with the exit-status table: the page shows the same.
        exit_status(&mut roff, rlock::exit::STATUSES);
    } else {
        // A command that touches no lock: success, or one of rlock's own failures.
        let own = rlock::exit::STATUSES.iter().filter(|(code, _)| {
            [rlock::exit::USAGE, rlock::exit::FAILURE]
                .iter()
                .any(|c| c.to_string() == *code)
        });
        let rows: Vec<_> = [("0", "success")].into_iter().chain(own.copied()).collect();
        exit_status(&mut roff, &rows);
    }
    see_also(&mut roff, &["rlock".to_owned()], &[]);
    roff
}

/// EXIT STATUS: one tagged paragraph per row of an exit-status table.
fn exit_status(roff: &mut Roff, rows: &[(&str, &str)]) {
    roff.control("SH", ["EXIT STATUS"]);
    for &(code, meaning) in rows {
        roff.control("TP", []);
        roff.text([bold(code)]);
        // A line break in the table is for the --help layout only.
        roff.text([roman(meaning.replace('\n', " "))]);
    }
}

/// ENVIRONMENT: the variables rlock reads (from the options that name one), then those it sets
/// for the command.
fn environment(roff: &mut Roff, top: &clap::Command) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "rlock reads these variables; an option given on the command line wins.",
    )]);
    let mut seen = BTreeSet::new();
    for arg in std::iter::once(top)
        .chain(top.get_subcommands())
        .flat_map(clap::Command::get_arguments)
    {
        let Some(name) = arg.get_env().and_then(|n| n.to_str()) else {
            continue;
        };
        if !seen.insert(name) {
            continue;
        }
        let flags: Vec<String> = (arg.get_short().map(|s| format!("-{s}")).into_iter())
            .chain(arg.get_long().map(|l| format!("--{l}")))
            .collect();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([
            roman("Default for "),
            bold(flags.join(", ")),
            roman(format!(". {help}.")),
        ]);
    }
    roff.control("PP", []);
    roff.text([
        roman("rlock sets these for the command it runs ("),
        bold("rlock acquire --format shell"),
        roman(" prints them as export lines):"),
    ]);
    for &(name, meaning) in COMMAND_ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(format!("{meaning}."))]);
    }
}

/// EXAMPLES, from the files in `examples/` (which their own tests run).
fn examples(roff: &mut Roff) {
    let crontab = include_str!("../../examples/crontab");
    // Its first paragraph is about the file itself.
    let crontab = crontab.split_once("\n\n").map_or(crontab, |(_, rest)| rest);
    roff.control("SH", ["EXAMPLES"]);
    roff.text([roman(
        "A crontab installed on several hosts (examples/crontab in the source):",
    )]);
    verbatim(roff, crontab);
    roff.control("PP", []);
    roff.text([roman(
        "Redlock over three independent Redis masters (put URLs with passwords in RLOCK_REDIS, \
         not on the command line, which every user can see in ps):",
    )]);
    verbatim(
        roff,
        "export RLOCK_REDIS=redis://:pw@red1,redis://:pw@red2,redis://:pw@red3\n\
         rlock -k job -- ./job\n",
    );
    roff.control("PP", []);
    roff.text([roman(
        "A lease by hand, for a script whose steps cannot be one command (examples/by-hand.sh):",
    )]);
    verbatim(roff, include_str!("../../examples/by-hand.sh"));
    roff.control("PP", []);
    roff.text([roman(
        "A resource that refuses a stale holder by its fence (examples/fenced-write.sh): it \
         writes VALUE to DIR/value only if RLOCK_FENCE is larger than the fence it stored last, \
         and exits 1 otherwise:",
    )]);
    verbatim(
        roff,
        "rlock -k publish -- fenced-write.sh /srv/resource \"new value\"\n",
    );
}

/// `text` as an example block, line for line.
fn verbatim(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.control("EX", []);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("EE", []);
}

/// SEE ALSO: `pages` (roff-escaped names, all in section 1), then the `links` (text, URL).
fn see_also(roff: &mut Roff, pages: &[String], links: &[(&str, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    for (i, page) in pages.iter().enumerate() {
        let punctuation = if i + 1 < pages.len() { "(1)," } else { "(1)" };
        roff.control("BR", [page.as_str(), punctuation]);
    }
    for &(text, url) in links {
        roff.control("PP", []);
        // Left-adjusted: a URL too long for the line would stretch the words before it.
        roff.control("ad", ["l"]);
        roff.control("UR", [url]);
        roff.text([roman(text)]);
        roff.control("UE", []);
    }
}

/// Replaces `path` in one step, so that a test reading it never sees half a file.
fn write_atomically(path: &Path, contents: &[u8]) {
    let dir = path.parent().expect("generated files live in a directory");
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let mut file = tempfile::NamedTempFile::new_in(dir).expect("create a temporary file");
    file.write_all(contents).expect("write a temporary file");
    // A temporary file is private; a committed one is for everybody to read.
    fs::set_permissions(file.path(), Permissions::from_mode(0o644)).expect("chmod 644");
    file.persist(path)
        .unwrap_or_else(|e| panic!("replacing {}: {e}", path.display()));
}

/// Whether `program` is on PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The variable that lets [`generated_files_are_fresh`] rewrite stale files.
const REGENERATE: &str = "RLOCK_REGENERATE";

#[test]
fn generated_files_are_fresh() {
    let regenerate = std::env::var_os(REGENERATE).is_some_and(|v| v == "1");
    let files = generated();
    let mut stale = Vec::new();
    for (path, contents) in &files {
        let full = root().join(path);
        if fs::read(&full).ok().as_ref() == Some(contents) {
            continue;
        }
        if regenerate {
            write_atomically(&full, contents);
        }
        stale.push(path.display().to_string());
    }
    let expected: BTreeSet<&Path> = files.iter().map(|(path, _)| path.as_path()).collect();
    let mut unexpected = Vec::new();
    for dir in GENERATED_DIRS {
        for entry in fs::read_dir(root().join(dir)).into_iter().flatten() {
            let path = Path::new(dir).join(entry.expect("a directory entry").file_name());
            if !expected.contains(path.as_path()) {
                unexpected.push(path.display().to_string());
            }
        }
    }
    let mut problems = Vec::new();
    if !stale.is_empty() {
        problems.push(if regenerate {
            format!(
                "rewrote the stale {} (review and commit them; the next run passes)",
                stale.join(", ")
            )
        } else {
            format!(
                "stale: {} (regenerate with `{REGENERATE}=1 cargo test --test integration \
                 generated`, then review and commit)",
                stale.join(", ")
            )
        });
    }
    if !unexpected.is_empty() {
        problems.push(format!(
            "not generated (any more): {}; delete them",
            unexpected.join(", ")
        ));
    }
    assert!(
        problems.is_empty(),
        "generated files:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_man_pages_date_is_the_current_versions() {
    assert_eq!(
        RELEASE.0,
        env!("CARGO_PKG_VERSION"),
        "a new version: set its release date in RELEASE (tests/integration/generated.rs)"
    );
}

#[test]
fn man_pages_render_without_warnings() {
    let pages: Vec<PathBuf> = man_pages()
        .into_iter()
        .map(|(path, _)| root().join(path))
        .collect();
    let (program, args): (&str, &[&str]) = if installed("groff") {
        ("groff", &["-ww", "-man", "-z"])
    } else if installed("mandoc") {
        ("mandoc", &["-Tlint", "-Wwarning"])
    } else {
        return skip("neither groff nor mandoc is installed (apt-get install groff-base)");
    };
    for page in &pages {
        let out = Command::new(program)
            .args(args)
            .arg(page)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stderr.is_empty() && (program == "groff" || stdout.is_empty()),
            "{program} {} {}: {}\n{stdout}{stderr}",
            args.join(" "),
            page.display(),
            out.status
        );
    }
}

#[test]
fn man_pages_pass_mandoc_lint() {
    if !installed("mandoc") {
        return skip("mandoc is not installed (apt-get install mandoc)");
    }
    for (path, _) in man_pages() {
        let out = Command::new("mandoc")
            .args(["-Tlint", "-W", "warning"])
            .arg(root().join(&path))
            .output()
            .expect("running mandoc");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.is_empty(),
            "mandoc -Tlint -W warning {}: {}\n{report}",
            path.display(),
            out.status
        );
    }
}

#[test]
fn man_page_examples_stay_whole_lines_at_80_columns() {
    if !installed("groff") {
        return skip("groff is not installed (apt-get install groff-base)");
    }
    for (path, page) in man_pages() {
        let page = String::from_utf8(page).expect("man pages are UTF-8");
        let out = Command::new("groff")
            .args(["-man", "-Tascii", "-rLL=80n", "-P-cbou"])
            .arg(root().join(&path))
            .output()
            .expect("running groff");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > 80).collect();
        assert!(
            wide.is_empty(),
            "{}: lines wider than 80 columns:\n{}",
            path.display(),
            wide.join("\n")
        );
        let mut examples = 0;
        for block in page.split(".EX\n").skip(1) {
            let (block, _) = block.split_once(".EE\n").expect(".EX without .EE");
            for line in block.lines().filter(|l| !l.trim().is_empty()) {
                let plain = line
                    .replace("\\-", "-")
                    .replace("\\*(Aq", "'")
                    .replace("\\e", "\\")
                    .replace("\\&", "");
                examples += 1;
                assert!(
                    lines.contains(&plain.trim()),
                    "{}: example line {plain:?} is not a line of its own at 80 columns:\n{text}",
                    path.display()
                );
            }
        }
        if path.ends_with("rlock.1") || path.ends_with("rlock-acquire.1") {
            assert!(examples > 3, "{}: no examples found", path.display());
        }
    }
}

#[test]
fn the_man_page_documents_every_exit_status_option_variable_and_example() {
    let pages = man_pages();
    let top = String::from_utf8(pages[0].1.clone()).unwrap();
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(top.contains(section), "man/rlock.1 lacks {section}");
    }
    for (code, _) in rlock::exit::STATUSES {
        assert!(
            top.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "man/rlock.1 lacks exit status {code}"
        );
    }
    for var in [
        "RLOCK_KEY",
        "RLOCK_REDIS",
        "RLOCK_TTL",
        "RLOCK_WAIT",
        "RLOCK_PREFIX",
        "RLOCK_TOKEN",
        "RLOCK_FENCE",
    ] {
        assert!(
            top.contains(&format!(".TP\n\\fB{var}\\fR\n")),
            "man/rlock.1 does not describe {var}"
        );
    }
    for needle in [
        "\\-\\-min\\-hold 5m",
        "fenced\\-write.sh",
        "flock (1)",
        "timeout (1)",
        REDLOCK_URL,
    ] {
        assert!(top.contains(needle), "man/rlock.1 lacks {needle}");
    }
    for (path, page) in &pages[1..] {
        let page = String::from_utf8_lossy(page);
        assert!(
            page.contains(".SH \"EXIT STATUS\"") && page.contains(".BR rlock (1)"),
            "{} lacks EXIT STATUS or SEE ALSO rlock(1)",
            path.display()
        );
    }
}

#[test]
fn the_man_page_names_exactly_the_variables_the_command_gets() {
    // Over mutual TLS, so that the command also gets the RLOCK_TLS_* variables.
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(true, None);
    let out = rlock()
        .args(["-r", &tls.url(), "--tls-ca"])
        .arg(tls.certs.ca())
        .arg("--tls-cert")
        .arg(tls.certs.client_cert())
        .arg("--tls-key")
        .arg(tls.certs.client_key())
        .args(["-k", "job", "--", "env"])
        .output();
    out.assert_success();
    let got: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("RLOCK_"))
        .collect();
    let documented: BTreeSet<&str> = COMMAND_ENVIRONMENT.iter().map(|(name, _)| *name).collect();
    assert_eq!(got, documented, "{out}");
}

#[test]
fn completions_prints_the_committed_scripts_without_a_key_or_redis() {
    for &shell in Shell::value_variants() {
        let path = root().join("completions").join(shell.file_name("rlock"));
        let committed =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        rlock()
            .args(["completions", &shell.to_string()])
            .env("RLOCK_REDIS", "redis://127.0.0.1:1")
            .output()
            .assert_success()
            .assert_stderr_empty()
            .assert_stdout_eq(&committed);
    }
}

#[test]
fn help_with_a_subcommand_name_shows_that_subcommands_help() {
    let out = rlock().args(["help", "acquire"]).output();
    out.assert_success();
    assert!(
        out.stdout.contains("Usage: rlock acquire"),
        "expected the help of acquire\n{out}"
    );
}
