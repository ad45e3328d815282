//! The command-line bad-input corpus: every case of `tests/bad_cli.txt` runs the binary, and its exit code,
//! stderr and (short) stdout are snapshotted, one snapshot per case (`tests/snapshots/bad_cli__NAME.snap`).
//!
//! A snapshot records what happens today, right or wrong: some big-number cases overflow, which panics in debug
//! builds and wraps in release builds (exit 0 with a wrong result, or exit 3). Fixing one changes its snapshot,
//! which is then reviewed and accepted. Cases marked `# differs in release` in the corpus have a second snapshot,
//! `bad_cli__NAME@release.snap`, checked by optimised builds. Cases marked `# slow today` are listed but not run
//! (they take minutes); remove a mark once it no longer applies.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORPUS: &str = "tests/bad_cli.txt";

/// The mark that skips a case.
const SLOW: &str = "slow today";

/// The mark of a case whose outcome depends on overflow checks, so release builds have their own snapshot.
const RELEASE_DIFFERS: &str = "differs in release";

/// A case that runs longer than this fails (and is killed), so a regression cannot hang the test run.
const LIMIT: Duration = Duration::from_secs(60);

/// stdout is snapshotted in full up to this many lines, else its first lines.
const STDOUT_LINES: usize = 12;

struct Case {
    name: String,
    args: Vec<String>,
    slow: bool,
    release_differs: bool,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `name: arg arg ...  # comment`, one a line; blank lines and `#` lines are comments. Arguments are split on
/// whitespace, so none contains a space.
fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join(CORPUS)).expect("the corpus is readable");
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (case, comment) = line.split_once('#').unwrap_or((line, ""));
        if case.trim().is_empty() {
            continue;
        }
        let (name, args) = case
            .split_once(':')
            .unwrap_or_else(|| panic!("{CORPUS}:{}: expected `name: args`", i + 1));
        let name = name.trim().to_string();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{CORPUS}:{}: a case name is lower case, digits and `-`: `{name}`",
            i + 1
        );
        assert!(
            cases.iter().all(|c| c.name != name),
            "{CORPUS}:{}: case `{name}` twice",
            i + 1
        );
        cases.push(Case {
            name,
            args: args.split_whitespace().map(String::from).collect(),
            slow: comment.contains(SLOW),
            release_differs: comment.contains(RELEASE_DIFFERS),
        });
    }
    cases
}

/// Run the binary from the repository root (so paths in messages are relative), killing it after [`LIMIT`].
fn run(case: &Case) -> Result<(i32, String, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_einsim"))
        .args(&case.args)
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("einsim starts");
    // Drain both pipes on their own threads, so a chatty case cannot block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for einsim") {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{}` ran over {} s; if the engine cannot do it yet, mark the case `# {SLOW}: engine issue`",
                case.name,
                LIMIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let code = status
        .code()
        .ok_or_else(|| format!("`{}` was killed: {status}", case.name))?;
    Ok((
        code,
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    ))
}

/// stderr without what changes from run to run or edit to edit. The list of shipped names in a not-found message
/// grows with every new file. A panic names its thread with an id that changes every run and its location with a
/// line number that moves with every edit (or a toolchain path): only the file in this repository is kept.
fn normalise(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .map(|l| {
            if let Some((head, _)) = l.split_once("; shipped: ") {
                return format!("{head}; shipped: <names>");
            }
            match l.split_once(" panicked at ") {
                Some((thread, at)) if thread.starts_with("thread '") => {
                    let file = at.split(':').next().unwrap_or("");
                    if file.starts_with("src/") {
                        format!("panicked at {file}")
                    } else {
                        "panicked in a dependency or the standard library".to_string()
                    }
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn snapshot(case: &Case, code: i32, stdout: &str, stderr: &str) -> String {
    let mut s = format!("args: {}\nexit: {code}\n", case.args.join(" "));
    s.push_str("--- stderr\n");
    s.push_str(&normalise(stderr));
    if !stdout.is_empty() {
        let lines: Vec<&str> = stdout.lines().collect();
        s.push_str("\n--- stdout\n");
        if lines.len() <= STDOUT_LINES {
            s.push_str(&lines.join("\n"));
        } else {
            // Not how many: a line added to a report's end should not touch every snapshot.
            s.push_str(&lines[..STDOUT_LINES].join("\n"));
            s.push_str("\n[... more lines]");
        }
    }
    s
}

#[test]
fn bad_command_lines_are_reported() {
    let cases = corpus();
    assert!(
        cases.len() >= 25,
        "expected at least 25 cases, found {}",
        cases.len()
    );
    let mut failed = Vec::new();
    for case in &cases {
        if case.slow {
            eprintln!("skipped `{}`: marked `# {SLOW}` in {CORPUS}", case.name);
            continue;
        }
        let start = Instant::now();
        let snap = match run(case) {
            Ok((code, out, err)) => snapshot(case, code, &out, &err),
            Err(why) => {
                failed.push(why);
                continue;
            }
        };
        eprintln!("{:32} {:.2} s", case.name, start.elapsed().as_secs_f64());
        // Check every case before failing, so one run shows (and writes `.snap.new` for) all that changed.
        let checked = std::panic::catch_unwind(|| {
            let mut settings = insta::Settings::clone_current();
            settings.set_omit_expression(true);
            if case.release_differs && !cfg!(debug_assertions) {
                settings.set_snapshot_suffix("release");
            }
            settings.bind(|| insta::assert_snapshot!(case.name.as_str(), snap));
        });
        if checked.is_err() {
            failed.push(format!("`{}`: snapshot differs", case.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
