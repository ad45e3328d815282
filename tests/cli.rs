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

/// Output that is not a terminal (here, a pipe) gets no progress bar: stderr stays empty, and `--quiet` (or `-q`)
/// is accepted and changes nothing else.
#[test]
fn sweep_shows_no_progress_when_piped() {
    let args = ["sweep", "--vary", "seq=1K,2K", "--vary", "depth=1,16"];
    let o = expect(&args, 0);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("seq  depth  cycles\n"),
        "{}",
        stdout(&o)
    );
    for quiet in ["--quiet", "-q"] {
        let q = expect(&[&args[..], &[quiet]].concat(), 0);
        assert!(stderr(&q).is_empty(), "{}", stderr(&q));
        assert_eq!(stdout(&q), stdout(&o));
    }
}

/// `reproduce` accepts `--quiet` (an unknown reproduction fails fast, after the flags are parsed).
#[test]
fn reproduce_accepts_quiet() {
    for quiet in ["--quiet", "-q"] {
        let err = stderr(&expect(&["reproduce", "nope", quiet], 2));
        assert_eq!(
            err,
            "error: unknown reproduction `nope`; known: fusemax, spatten, fa4\n"
        );
    }
}

/// The whole reproduction, piped: no progress text on stderr, with or without `--quiet`, and the same files.
/// Ignored in debug builds, where it takes minutes; CI runs it optimised (`--include-ignored`).
#[test]
#[ignore = "slow unoptimised; run with `cargo test --release -- --include-ignored`"]
fn reproduce_shows_no_progress_when_piped() {
    let dir = std::env::temp_dir().join(format!("einsim-cli-reproduce-{}", std::process::id()));
    let (a, b) = (dir.join("a"), dir.join("b"));
    let o = expect(&["reproduce", "fusemax", "--out", a.to_str().unwrap()], 0);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert!(stdout(&o).contains("targets:"), "{}", stdout(&o));
    let q = expect(
        &[
            "reproduce",
            "fusemax",
            "--quiet",
            "--out",
            b.to_str().unwrap(),
        ],
        0,
    );
    assert!(stderr(&q).is_empty(), "{}", stderr(&q));
    for name in ["report.md", "runs.csv"] {
        let read = |d: &Path| std::fs::read(d.join(name)).unwrap();
        assert!(read(&a) == read(&b), "{name} differs with --quiet");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the target's scratch space, given relative to the repository root (the binary's
/// working directory here), so paths in the tests are the relative ones a user types.
fn scratch(name: &str) -> PathBuf {
    let abs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&abs);
    std::fs::create_dir_all(&abs).expect("scratch directory");
    abs.strip_prefix(root())
        .map_or(abs.clone(), Path::to_path_buf)
}

fn write(path: &Path, text: &str) {
    std::fs::write(root().join(path), text).expect("write a test file");
}

/// `text` with each `(from, to)` replaced once; panics when `from` is missing, so a test never runs an unedited
/// copy after the shipped file changes.
fn edit(text: &str, edits: &[(&str, &str)]) -> String {
    let mut t = text.to_string();
    for (from, to) in edits {
        assert!(t.contains(from), "`{from}` not found");
        t = t.replacen(from, to, 1);
    }
    t
}

fn shipped_text(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).expect("shipped file")
}

/// The JSON report of a run.
fn run_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run", "--format", "json"];
    all.extend(args);
    serde_json::from_str(&stdout(&expect(&all, 0))).expect("JSON on stdout")
}

#[test]
fn cascade_file_named_by_a_binding_runs() {
    // An arch file copied elsewhere with a cascade file beside it, named by a path relative to the arch file.
    let dir = scratch("binding-path");
    let cascade = shipped_text("workloads/cascades/attention-1pass.ron")
        .replace("name: \"attention-1pass\"", "name: \"my-attention\"");
    write(&dir.join("my-attention.ron"), &cascade);
    let arch = shipped_text("arch/fusemax.ron").replace(
        "cascade: \"attention-1pass\"",
        "cascade: \"my-attention.ron\"",
    );
    write(&dir.join("my-arch.ron"), &arch);
    let arch = dir.join("my-arch.ron");
    let arch = arch.to_str().unwrap();
    // The working directory is the repository root, not the arch file's directory.
    let out = stdout(&expect(&["check", arch], 0));
    assert_eq!(out, format!("{arch}: ok\n"));
    let v = run_json(&["--arch", arch]);
    assert_eq!(v["cascade"], "my-attention");
    // The same Einsums and binding as the shipped default run, so the same result.
    assert_eq!(v["cycles"], run_json(&[])["cycles"]);
    // `--cascade` takes the path (relative to the arch file's directory first) or the declared name.
    assert_eq!(
        run_json(&["--arch", arch, "--cascade", "my-attention.ron"])["cycles"],
        v["cycles"]
    );
    assert_eq!(
        run_json(&["--arch", arch, "--cascade", "my-attention"])["cycles"],
        v["cycles"]
    );
    // A binding naming a file that is not there is located in the arch file.
    write(
        &dir.join("missing.ron"),
        &shipped_text("arch/fusemax.ron").replace("cascade: \"gemm\"", "cascade: \"gone.ron\""),
    );
    let err = stderr(&expect(
        &["check", dir.join("missing.ron").to_str().unwrap()],
        1,
    ));
    assert!(err.contains("cannot read cascade file `gone.ron`"), "{err}");
}

#[test]
fn cascade_path_on_the_command_line_runs() {
    let dir = scratch("cascade-arg");
    // A copy of a shipped cascade keeps its name, so it runs on the arch's bindings for that name.
    let copy = dir.join("copy.ron");
    write(
        &copy,
        &shipped_text("workloads/cascades/attention-2pass.ron"),
    );
    let v = run_json(&["--cascade", copy.to_str().unwrap()]);
    assert_eq!(v["cascade"], "attention-2pass");
    assert_eq!(
        v["cycles"],
        run_json(&["--cascade", "attention-2pass"])["cycles"]
    );
    // The bindings are checked against the file that runs, not only the shipped cascade they name.
    let renamed = dir.join("renamed-einsum.ron");
    write(
        &renamed,
        &shipped_text("workloads/cascades/attention-2pass.ron").replace("SNV", "XNV"),
    );
    let err = stderr(&expect(&["run", "--cascade", renamed.to_str().unwrap()], 1));
    assert!(err.contains("unknown Einsum `SNV`"), "{err}");
    // A file whose cascade the arch does not bind says what it does bind.
    let other = dir.join("other.ron");
    write(
        &other,
        &shipped_text("workloads/cascades/attention-2pass.ron")
            .replace("name: \"attention-2pass\"", "name: \"other\""),
    );
    let err = stderr(&expect(&["run", "--cascade", other.to_str().unwrap()], 1));
    assert!(err.contains("no binding for cascade `other`"), "{err}");
    assert!(
        err.contains("it binds: attention-1pass, attention-2pass"),
        "{err}"
    );
    // A path that is not there is a usage error, as for `--arch`.
    let err = stderr(&expect(&["run", "--cascade", "nowhere/x.ron"], 2));
    assert!(
        err.starts_with("error: cannot read cascade file `nowhere/x.ron`"),
        "{err}"
    );
}

#[test]
fn workload_none_runs_the_cascade_defaults() {
    // attention-1pass declares seq 1024, batch 64, heads 12, head_dim 64: bert-base's values, so the cycles
    // agree, but no model parameter (d_model, ffn) appears.
    let v = run_json(&["--workload", "none"]);
    let params = v["params"].as_object().unwrap();
    for (k, want) in [
        ("seq", 1024),
        ("batch", 64),
        ("heads", 12),
        ("head_dim", 64),
    ] {
        assert_eq!(params[k], want, "{k}");
    }
    assert!(
        !params.contains_key("d_model") && !params.contains_key("ffn"),
        "{params:?}"
    );
    assert_eq!(v["cycles"], run_json(&[])["cycles"]);
    // A cascade whose defaults differ from bert-base's runs at its own.
    let dir = scratch("workload-none");
    let small = dir.join("small.ron");
    write(
        &small,
        &edit(
            &shipped_text("workloads/cascades/attention-1pass.ron"),
            &[
                ("\"seq\": 1024", "\"seq\": 512"),
                ("\"batch\": 64", "\"batch\": 2"),
            ],
        ),
    );
    let small = small.to_str().unwrap();
    let v = run_json(&["--workload", "none", "--cascade", small]);
    assert_eq!(
        (v["params"]["seq"].as_i64(), v["params"]["batch"].as_i64()),
        (Some(512), Some(2))
    );
    // With the model, its values win.
    let v = run_json(&["--cascade", small]);
    assert_eq!(
        (v["params"]["seq"].as_i64(), v["params"]["batch"].as_i64()),
        (Some(1024), Some(64))
    );
}

#[test]
fn run_header_lists_only_used_parameters() {
    let out = stdout(&expect(&["run"], 0));
    let params = out.lines().nth(1).unwrap();
    assert!(params.trim_start().starts_with("parameters:"), "{out}");
    assert!(
        !params.contains("d_model") && !params.contains("ffn"),
        "{params}"
    );
    assert!(
        params.contains("seq=1024") && params.contains("fusemax.rows=256"),
        "{params}"
    );
}

#[test]
fn missing_binding_lists_what_the_arch_binds() {
    let o = expect(
        &[
            "run",
            "--arch",
            "flat-cloud",
            "--cascade",
            "attention-1pass",
        ],
        1,
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    insta::assert_snapshot!("missing_binding_stderr", stderr(&o));
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
