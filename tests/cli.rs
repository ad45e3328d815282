//! The `einsim` binary: exit codes (0 ok, 1 invalid input, 2 usage) and the diagnostics it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn einsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_einsim"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("einsim runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

/// Runs and checks the exit code, showing both streams if it is wrong.
fn expect(args: &[&str], want: i32) -> Output {
    let o = einsim(args);
    assert_eq!(
        code(&o),
        want,
        "einsim {args:?}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

#[test]
fn default_run() {
    let o = expect(&[], 0);
    let out = stdout(&o);
    assert!(
        out.starts_with("einsim run: fusemax on bert-base (cascade attention-1pass)"),
        "{out}"
    );
    assert!(out.contains("latency") && out.contains("bound"), "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // `einsim` is `einsim run` with the defaults.
    assert_eq!(stdout(&expect(&["run"], 0)), out);
}

#[test]
fn run_json_is_the_report() {
    let o = expect(&["run", "--format", "json", "--set", "seq=2048"], 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(v["params"]["seq"], 2048);
    assert!(v["cycles"].as_u64().unwrap() >= v["bound"]["cycles"].as_u64().unwrap());
    let md = expect(&["run", "--format", "md"], 0);
    assert!(
        stdout(&md).starts_with("# fusemax on bert-base"),
        "{}",
        stdout(&md)
    );
}

#[test]
fn list() {
    let out = stdout(&expect(&["list"], 0));
    for name in [
        "fusemax",
        "bert-base",
        "xlm",
        "attention-1pass",
        "cascade1",
        "fusemax-45nm",
    ] {
        assert!(out.contains(name), "`{name}` missing from:\n{out}");
    }
}

#[test]
fn passes() {
    let out = stdout(&expect(&["passes", "attention-3pass"], 0));
    assert!(out.starts_with("passes of attention-3pass"), "{out}");
    let m = out
        .lines()
        .find(|l| l.starts_with("M "))
        .unwrap_or_else(|| panic!("no M row in:\n{out}"));
    assert_eq!(m.split_whitespace().nth(2), Some("3"), "{m}");
    let json = stdout(&expect(
        &["passes", "attention-1pass", "--format", "json"],
        0,
    ));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["passes"]["M0"], 2);
}

fn ron_files(dir: &str) -> Vec<String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    v.sort();
    v.iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn check_shipped_files() {
    // `einsim check workloads/cascades/*.ron`, with the glob expanded here as a shell would.
    let files = ron_files("workloads/cascades");
    assert!(files.len() >= 6);
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = stdout(&expect(&args, 0));
    for f in &files {
        assert!(out.contains(&format!("{f}: ok")), "{f} not ok:\n{out}");
    }
    let mut all = ron_files("workloads/models");
    all.extend(ron_files("arch"));
    all.extend(ron_files("arch/energy"));
    let args: Vec<&str> = std::iter::once("check")
        .chain(all.iter().map(String::as_str))
        .collect();
    expect(&args, 0);
}

#[test]
fn check_bad_file() {
    let o = expect(&["check", "tests/bad/unknown-tensor.ron"], 1);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    insta::assert_snapshot!("check_unknown_tensor_stderr", stderr(&o));
    // A bad file among good ones still fails, and the good ones are still reported.
    let o = expect(
        &[
            "check",
            "workloads/cascades/cascade1.ron",
            "tests/bad/unknown-tensor.ron",
        ],
        1,
    );
    assert!(stdout(&o).contains("cascade1.ron: ok"));
}

#[test]
fn check_reports_every_binding_mistake() {
    // `einsim check` used to say `ok` here; it now reports all seven problems (six mistakes) with locations.
    let o = expect(&["check", "tests/bad_arch/binding-many-errors.ron"], 1);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("error:").count(), 7, "{err}");
    assert!(
        err.contains("tests/bad_arch/binding-many-errors.ron:80:39"),
        "{err}"
    );
    // `einsim run` reports the same problems before mapping anything (it used to report only the first).
    let o = expect(
        &["run", "--arch", "tests/bad_arch/binding-many-errors.ron"],
        1,
    );
    assert_eq!(stderr(&o), err);
}

#[test]
fn unknown_parameter() {
    let o = expect(&["run", "--set", "nope=3"], 1);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    insta::assert_snapshot!("unknown_parameter_stderr", stderr(&o));
}

#[test]
fn malformed_set() {
    let o = expect(&["run", "--set", "seq=lots"], 1);
    insta::assert_snapshot!("malformed_set_stderr", stderr(&o));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let o = expect(&["run", "--bogus"], 2);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    insta::assert_snapshot!("bogus_flag_stderr", stderr(&o));
}

#[test]
fn unknown_arch_is_a_usage_error() {
    // Not snapshotted: the message lists the shipped archs, which grow.
    let err = stderr(&expect(&["run", "--arch", "nope"], 2));
    assert!(
        err.starts_with("error: `nope` is neither a shipped arch nor a file; shipped: "),
        "{err}"
    );
    assert!(err.contains("fusemax"), "{err}");
    let err = stderr(&expect(&["run", "--arch", "tests/nope.ron"], 2));
    assert!(
        err.starts_with("error: cannot read `tests/nope.ron`"),
        "{err}"
    );
}

#[test]
fn help_mentions_examples() {
    let out = stdout(&expect(&["--help"], 0));
    assert!(out.contains("Examples:"), "{out}");
    assert!(
        out.contains("einsim run --arch fusemax --workload xlm --set seq=64K"),
        "{out}"
    );
    for sub in ["run", "passes", "check", "list"] {
        assert!(out.contains(sub), "`{sub}` missing from --help:\n{out}");
    }
}

/// The JSON report of a run.
fn run_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run", "--format", "json"];
    all.extend(args);
    serde_json::from_str(&stdout(&expect(&all, 0))).expect("JSON on stdout")
}

#[test]
fn two_pass_runs_on_fusemax_between_one_and_three_passes() {
    let one = run_json(&[]);
    let two = run_json(&["--cascade", "attention-2pass"]);
    assert_eq!(two["cascade"], "attention-2pass");
    let cycles = |v: &serde_json::Value| v["cycles"].as_u64().unwrap();
    // Pass 2 re-reads SLN and scales it per key tile, work the 1-pass cascade folds into its running values.
    assert!(
        cycles(&two) >= cycles(&one),
        "2-pass {} < 1-pass {}",
        cycles(&two),
        cycles(&one)
    );
    assert_eq!(two["passes"]["M"], 2);
    // FLAT's 3 passes (on its own hardware, where the 1D array does four softmax ops per logit) are slower still.
    let three = run_json(&["--arch", "flat-cloud"]);
    assert_eq!(three["passes"]["M"], 3);
    assert!(
        cycles(&two) <= cycles(&three),
        "2-pass {} > 3-pass {}",
        cycles(&two),
        cycles(&three)
    );
}
