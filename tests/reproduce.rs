//! The committed reproduction (`reports/fusemax/`) must match what the code produces now, and every published
//! target must be met or have its disagreement explained.

use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::progress::Silent;
use einsim::reproduce::targets::{self, Status, TargetResult};
use einsim::reproduce::{self, write, Plan, Reproduction};
use einsim::sim::SimOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Whether to run the full reproduction. A full run takes seconds in release mode but about a minute in debug
/// (the einsim crate itself is unoptimized there), so debug builds check a quick subset unless
/// `EINSIM_FULL_REPRODUCTION=1`; `cargo test --release` always checks everything.
fn full() -> bool {
    !cfg!(debug_assertions)
        || std::env::var_os("EINSIM_FULL_REPRODUCTION").is_some_and(|v| v == "1")
}

/// The lengths of the quick subset: the short ones, where runs take milliseconds even unoptimized.
const QUICK_LENGTHS: usize = 2;

/// The FuseMax reproduction (full or the quick subset), computed once and shared by the tests of this file.
fn fusemax() -> &'static (Reproduction, Vec<TargetResult>) {
    static R: OnceLock<(Reproduction, Vec<TargetResult>)> = OnceLock::new();
    R.get_or_init(|| {
        let t = std::time::Instant::now();
        let mut plan = Plan::fusemax();
        if !full() {
            plan.lengths.truncate(QUICK_LENGTHS);
            // The array study at its two largest arrays only.
            if let Some(a) = &mut plan.array_study {
                let n = a.sizes.len();
                a.sizes.drain(..n.saturating_sub(2));
            }
        }
        let (rep, results) = reproduce::run_targets(
            &targets::fusemax(),
            &plan,
            &library::get,
            SimOptions::default(),
            &Silent,
        );
        eprintln!(
            "reproduce fusemax ({}): {:.1} s",
            if full() { "full" } else { "quick subset" },
            t.elapsed().as_secs_f64()
        );
        (rep, results)
    })
}

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("einsim-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const REGENERATE: &str =
    "reports/fusemax/ is out of date; run `cargo run --release -- reproduce fusemax` and commit.";

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/fusemax")
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  committed: {x}\n  fresh:     {y}", i + 1);
        }
    }
    format!(
        "lengths differ: committed {} lines, fresh {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

/// Split one CSV line (fields are quoted only when they contain commas or quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Rows keyed by (scope, design, model, seq), each a column name → value map.
fn csv_rows(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut lines = text.lines();
    let head = csv_fields(lines.next().unwrap_or(""));
    lines
        .map(|l| {
            let row: BTreeMap<String, String> = head.iter().cloned().zip(csv_fields(l)).collect();
            let key = ["scope", "design", "model", "seq"]
                .map(|k| row.get(k).cloned().unwrap_or_default())
                .join(" ");
            (key, row)
        })
        .collect()
}

/// The full check compares every text artifact byte for byte. PNGs are written (and checked to be PNGs) but
/// not compared: their bytes depend on rasterization details that may vary by platform, while the SVGs carry
/// the same content as text. The quick check (debug builds) compares every row of the subset with the committed
/// `runs.csv`, field by field.
#[test]
fn committed_reproduction_matches_a_fresh_run() {
    let (rep, results) = fusemax();
    let tmp = TempDir::new("reproduce");
    let written = write::write(&tmp.0, rep, results).unwrap_or_else(|e| panic!("{e}"));
    let mut drift = Vec::new();
    for path in &written {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let fresh_bytes = std::fs::read(path).unwrap();
        assert!(!fresh_bytes.is_empty(), "{name} is empty");
        if name.ends_with(".png") {
            assert!(fresh_bytes.starts_with(b"\x89PNG"), "{name} is not a PNG");
            continue;
        }
        let fresh = String::from_utf8(fresh_bytes).unwrap();
        let old = match std::fs::read_to_string(committed_dir().join(&name)) {
            Ok(old) => old,
            Err(_) => {
                drift.push(format!("{name} is not committed"));
                continue;
            }
        };
        if full() {
            if old != fresh {
                drift.push(format!(
                    "{name} differs, {}",
                    first_difference(&old, &fresh)
                ));
            }
        } else if name == "runs.csv" {
            let committed = csv_rows(&old);
            for (key, row) in csv_rows(&fresh) {
                match committed.get(&key) {
                    None => drift.push(format!("runs.csv: no committed row for {key}")),
                    Some(c) => {
                        for (col, v) in &row {
                            let cv = c.get(col).map_or("<no column>", String::as_str);
                            if cv != v {
                                drift.push(format!(
                                    "runs.csv {key}: {col} committed {cv}, fresh {v}"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(drift.is_empty(), "{REGENERATE}\n{}", drift.join("\n"));
}

/// Every evaluated target is within tolerance or has a written-down `known_disagreement`. All errors are
/// printed either way (run with `--nocapture` to see them). The quick subset cannot evaluate the means over all
/// lengths, so those are checked only in a full run.
#[test]
fn targets_are_met_or_explained() {
    let (_, results) = fusemax();
    let mut unexplained = Vec::new();
    for r in results {
        if !full() && matches!(r.target.metric, targets::Metric::Mean { .. }) {
            eprintln!("{:32} (mean: checked in full runs only)", r.target.id);
            continue;
        }
        let line = format!(
            "{:32} paper {:>12} einsim {:>12} error {:>9} {:?}",
            r.target.id,
            r.target.value,
            r.value.map_or("-".into(), |v| format!("{v:.5}")),
            r.rel_error
                .map_or("-".into(), |e| format!("{:+.2}%", e * 100.0)),
            r.status
        );
        eprintln!("{line}");
        if !r.accounted_for() {
            unexplained.push(line);
        }
    }
    assert!(
        unexplained.is_empty(),
        "targets missed without a known_disagreement in {}:\n{}",
        targets::FUSEMAX_PATH,
        unexplained.join("\n")
    );
}

/// With every other design aliased to FuseMax's arch, all ratios are exactly 1: checks the plumbing of means,
/// baselines, area and the figures independently of which designs are shipped.
#[test]
fn aliased_designs_compare_as_equal() {
    let alias = |kind: Kind, name: &str| -> Option<SourceFile> {
        match kind {
            Kind::Arch => library::get(kind, "fusemax"),
            _ => library::get(kind, name),
        }
    };
    let mut plan = Plan::fusemax();
    plan.models.truncate(1);
    plan.lengths.truncate(2);
    let rep = reproduce::reproduce(&plan, &alias, SimOptions::default(), &Silent);
    assert!(rep.missing.is_empty());
    assert!(rep.failures().is_empty(), "{:?}", rep.failures());
    let results = targets::evaluate(&targets::fusemax(), &rep);
    for r in &results {
        if let targets::Metric::Mean { .. } | targets::Metric::AreaRatio { .. } = r.target.metric {
            if r.target.id.ends_with("-1m") {
                // 1M is not in this small plan.
                assert!(
                    matches!(r.status, Status::NotEvaluated(_)),
                    "{}",
                    r.target.id
                );
                continue;
            }
            let v = r
                .value
                .unwrap_or_else(|| panic!("{}: {:?}", r.target.id, r.status));
            assert!((v - 1.0).abs() < 1e-12, "{} = {v}", r.target.id);
        }
    }
    let texts = write::text_artifacts(&rep, &results).unwrap_or_else(|e| panic!("{e}"));
    let report = &texts[0].1;
    assert!(
        report.contains("| +Cascade | attention | 1.000 | 1.000 | 1.000 | 1.000 | 2 / 2 |"),
        "{report}"
    );
    let svg = &texts
        .iter()
        .find(|t| t.0 == "attention_speedup.svg")
        .unwrap()
        .1;
    assert!(svg.contains("speedup over Unfused") && svg.contains("+Architecture"));
}

#[test]
fn missing_designs_are_reported_not_fatal() {
    let none = |kind: Kind, name: &str| -> Option<SourceFile> {
        match kind {
            Kind::Arch if name != "fusemax" => None,
            _ => library::get(kind, name),
        }
    };
    let mut plan = Plan::fusemax();
    plan.models.truncate(1);
    plan.lengths.truncate(1);
    let rep = reproduce::reproduce(&plan, &none, SimOptions::default(), &Silent);
    assert_eq!(rep.missing.len(), 4);
    let results = targets::evaluate(&targets::fusemax(), &rep);
    let flat = results
        .iter()
        .find(|r| r.target.id == "flat-bert-1k-latency")
        .unwrap();
    assert_eq!(
        flat.status,
        Status::NotEvaluated("design `flat-cloud` not available".into())
    );
    let texts = write::text_artifacts(&rep, &results).unwrap_or_else(|e| panic!("{e}"));
    assert!(texts[0].1.contains("design `unfused` not available"));
}

/// The baselines of a plan are designs of that plan; a typo is an error when the targets file is read.
#[test]
fn a_baseline_outside_the_plan_is_rejected() {
    let text = targets::FUSEMAX.replace(
        r#"baselines: ["flat-cloud", "unfused"]"#,
        r#"baselines: ["flat-cloud", "unfussed"]"#,
    );
    assert_ne!(
        text,
        targets::FUSEMAX,
        "the embedded file names its baselines"
    );
    let err = targets::parse(&text).expect_err("an unknown baseline must be rejected");
    assert!(
        err.contains("baseline `unfussed` is not one of its designs"),
        "{err}"
    );
    assert!(targets::parse(targets::FUSEMAX).is_ok());
}

/// A what-if variant whose replacement table does not exist is reported as not run; the main results stand.
#[test]
fn a_variant_with_a_missing_table_is_reported_not_run() {
    let mut file = targets::fusemax();
    file.variants = vec![targets::Variant {
        name: "typo".into(),
        description: "a table that is not shipped".into(),
        energy: [("fusemax-45nm".to_string(), "no-such-table".to_string())].into(),
    }];
    let mut plan = file.plan.clone();
    plan.models.truncate(1);
    plan.lengths.truncate(1);
    plan.layer = false;
    let (rep, results) =
        reproduce::run_targets(&file, &plan, &library::get, SimOptions::default(), &Silent);
    let outcome = &rep.variants[0].outcome;
    assert!(
        matches!(outcome, Err(e) if e.contains("no energy table `no-such-table`")),
        "{outcome:?}"
    );
    let md = reproduce::render::report_md(&rep, &results);
    assert!(md.contains("Not run: variant `typo`"), "{md}");
    assert!(results.iter().any(|r| r.status == Status::Pass));
}
