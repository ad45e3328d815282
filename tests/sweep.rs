//! Sweep files: the bad-input corpus (`tests/bad_sweep/`, one snapshot each), the shipped studies under `reports/`
//! checked for drift, and the CLI's promises: the same bytes whatever `--jobs`, shards merged into exactly what
//! one run writes, an interrupted run resumed without redoing or losing points, and journals of another sweep
//! refused with a located error.

#[path = "fixtures/common.rs"]
mod common;

use common::{einsim, ron_files as files, root, source_named as source};
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::sweep::plan::{Plan, SetupCache, Shard};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// As the CLI run from the repository root finds a sweep file's designs: shipped names, else paths relative to
/// its directory (`rel_dir`), named as the CLI names them (so an error row reads the same).
fn lookup_in(rel_dir: PathBuf) -> impl Fn(Kind, &str) -> Option<SourceFile> + Sync {
    move |kind, name| {
        library::get(kind, name).or_else(|| {
            let p = rel_dir.join(name);
            let text = std::fs::read_to_string(root().join(&p)).ok()?;
            Some(SourceFile::new(p.display().to_string(), text))
        })
    }
}

/// A sweep file by its path from the repository root; the plan, and its directory (absolute).
fn load(rel: &str) -> (Plan, PathBuf) {
    let rel_dir = Path::new(rel).parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    let plan = einsim::sweep::file::load(&SourceFile::new(rel, text), &lookup_in(rel_dir.clone()))
        .unwrap_or_else(|d| panic!("{d}"));
    (plan, root().join(rel_dir))
}

#[test]
fn bad_sweeps_are_reported() {
    let bad = files("tests/bad_sweep");
    assert!(bad.len() >= 10, "expected at least 10 bad sweeps");
    for path in bad {
        let file = source(&path);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let d = match einsim::sweep::file::load(&file, &library::get) {
            Ok(p) => panic!("{} loaded but should fail: {}", file.name, p.name),
            Err(d) => d,
        };
        assert!(!d.items.is_empty(), "{}: no diagnostics", file.name);
        insta::assert_snapshot!(format!("bad_sweep_{stem}"), d.render());
    }
}

/// Each study under `reports/` is what its sweep file computes today, byte for byte (CSV, JSON lines, SVGs).
/// After a deliberate change, regenerate with `einsim sweep reports/<study>/sweep.ron` and review the diff.
#[test]
fn studies_do_not_drift() {
    for study in ["design-space", "fusemax-pe-dram", "gpu-asymmetry"] {
        let (plan, dir) = load(&format!("reports/{study}/sweep.ron"));
        let look = lookup_in(PathBuf::from(format!("reports/{study}")));
        let cache = SetupCache::default();
        let lines: Vec<(u64, String)> = plan
            .indices(Shard::ALL)
            .collect::<Vec<_>>()
            .par_iter()
            .map(|&i| (i, plan.eval(i, &look, &cache)))
            .collect();
        let (texts, _, errors) = einsim::sweep::artifacts(&plan, &lines);
        assert!(errors.is_empty(), "{errors:?}");
        for (name, text) in texts {
            let committed = std::fs::read_to_string(dir.join(&name))
                .unwrap_or_else(|e| panic!("reports/{study}/{name}: {e}"));
            assert!(
                committed == text,
                "reports/{study}/{name} drifted; regenerate with `einsim sweep reports/{study}/sweep.ron` and review"
            );
        }
    }
}

/// The FuseMax copy of the PE × DRAM study differs from the shipped arch only where it says.
#[test]
fn fusemax_dram_copy_follows_the_shipped_arch() {
    let shipped = std::fs::read_to_string(root().join("arch/fusemax.ron")).unwrap();
    let copy =
        std::fs::read_to_string(root().join("reports/fusemax-pe-dram/fusemax-dram.ron")).unwrap();
    // Its own three comment lines, then the shipped file's lines.
    let body: Vec<&str> = copy.lines().skip(3).collect();
    let shipped: Vec<&str> = shipped.lines().collect();
    assert_eq!(body.len(), shipped.len(), "same number of lines");
    let differ: Vec<usize> = (0..shipped.len())
        .filter(|&i| body.get(i) != shipped.get(i))
        .collect();
    let shipped_differs: Vec<&str> = differ.iter().map(|&i| shipped[i]).collect();
    assert_eq!(differ.len(), 3, "{shipped_differs:#?}");
    assert!(shipped_differs[0].contains("name: \"fusemax\""));
    assert!(shipped_differs[1].contains("params:"));
    assert!(shipped_differs[2].contains("\"dram\": Storage"));
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("einsim-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SMALL: &str = "tests/fixtures/sweep/small.ron";
const OUTPUTS: [&str; 5] = [
    "sweep.csv",
    "sweep.jsonl",
    "latency.svg",
    "energy.svg",
    "pareto.svg",
];

fn outputs(dir: &Path) -> Vec<String> {
    OUTPUTS
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

fn run_ok(args: &[&str]) -> String {
    let o = einsim(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?}: {err}");
    err
}

#[test]
fn jobs_shards_and_resume_write_the_same_bytes() {
    let one = tmp("jobs1");
    let two = tmp("jobs2");
    run_ok(&[
        "sweep",
        SMALL,
        "--out",
        one.to_str().unwrap(),
        "--jobs",
        "1",
    ]);
    run_ok(&[
        "sweep",
        SMALL,
        "--out",
        two.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    let whole = outputs(&one);
    assert_eq!(whole, outputs(&two), "--jobs changed the output");
    assert!(
        !one.join("sweep.journal").exists(),
        "a finished run removes its journal"
    );
    let csv = &whole[0];
    assert_eq!(csv.lines().count(), 13, "a header and 12 points:\n{csv}");
    assert!(
        csv.contains(",skipped,area "),
        "the constraint skips points"
    );
    for png in ["latency.png", "energy.png", "pareto.png"] {
        assert!(one.join(png).exists(), "{png}");
    }

    // Three shards, then a merge.
    let sh = tmp("shards");
    let s = sh.to_str().unwrap();
    for i in 0..3 {
        let err = run_ok(&["sweep", SMALL, "--out", s, "--shard", &format!("{i}/3")]);
        assert!(err.contains(&format!("shard {i}/3: 4 points")), "{err}");
    }
    // A merge with a shard missing is refused.
    std::fs::rename(sh.join("shard-2-of-3.jsonl"), sh.join("held-back")).unwrap();
    let o = einsim(&["merge", SMALL, "--out", s]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: missing shard 2 of 3\n"
    );
    std::fs::rename(sh.join("held-back"), sh.join("shard-2-of-3.jsonl")).unwrap();
    run_ok(&["merge", SMALL, "--out", s]);
    assert_eq!(whole, outputs(&sh), "merged shards differ from one run");

    // An interrupted run: a journal with some points and a line cut short.
    let re = tmp("resume");
    let jsonl = &whole[1];
    let lines: Vec<&str> = jsonl.lines().collect();
    let (plan, _) = load(SMALL);
    let mut journal = plan.header(Shard::ALL) + "\n";
    for l in [lines[0], lines[5], lines[11]] {
        journal.push_str(l);
        journal.push('\n');
    }
    journal.push_str(&lines[7][..20]);
    std::fs::write(re.join("sweep.journal"), journal).unwrap();
    let err = run_ok(&["sweep", SMALL, "--out", re.to_str().unwrap()]);
    assert!(
        err.contains("12 points (9 run now, 3 from the journal)"),
        "{err}"
    );
    assert_eq!(whole, outputs(&re), "a resumed run differs from one run");
}

#[test]
fn a_journal_of_another_sweep_is_refused() {
    let d = tmp("other");
    std::fs::write(
        d.join("sweep.journal"),
        "{\"sweep\":\"small\",\"hash\":\"0123456789abcdef\",\"points\":12,\"shard\":\"0/1\"}\n",
    )
    .unwrap();
    let o = einsim(&["sweep", SMALL, "--out", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).replace(d.to_str().unwrap(), "DIR");
    insta::assert_snapshot!("journal_of_another_sweep", err);
}

#[test]
fn plot_draws_a_csv() {
    let d = tmp("plot");
    let csv = d.join("runs.csv");
    std::fs::copy(root().join("reports/design-space/sweep.csv"), &csv).unwrap();
    let c = csv.to_str().unwrap();
    run_ok(&[
        "plot",
        c,
        "--x",
        "seq",
        "--y",
        "energy_pj",
        "--group",
        "design",
    ]);
    assert!(d.join("runs-energy_pj-vs-seq.svg").exists());
    assert!(d.join("runs-energy_pj-vs-seq.png").exists());
    run_ok(&[
        "plot",
        c,
        "--kind",
        "pareto",
        "--group",
        "design",
        "--out",
        d.join("p").to_str().unwrap(),
    ]);
    assert!(d.join("p.svg").exists());
    let o = einsim(&["plot", c, "--x", "seq", "--y", "latency"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no column `latency`"));
}

/// A point evaluated through the sweep's setup cache (arch loaded once per arch-parameter values, the cascade's
/// parameters re-evaluated per point) is exactly `run::run` with the same overrides.
#[test]
fn cached_points_equal_plain_runs() {
    let (plan, _) = load("reports/design-space/sweep.ron");
    let look = lookup_in(PathBuf::from("reports/design-space"));
    let cache = SetupCache::default();
    for i in (0..plan.len()).step_by(7) {
        let line = plan.eval(i, &look, &cache);
        let (d, values) = plan.point(i);
        let sets: Vec<String> = plan
            .sets
            .iter()
            .chain(&values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let model = plan.model.as_ref();
        match einsim::run::run(
            &plan.designs[d].arch,
            model,
            None,
            &sets,
            &look,
            einsim::sim::SimOptions::default(),
        ) {
            Ok(r) => {
                let mut want = Vec::new();
                einsim::sweep::row::outputs(&r, &mut want);
                let want = einsim::sweep::row::json_line(&want);
                let want = &want[1..want.len() - 1];
                assert!(line.contains(want), "point {i}:\n{line}\nlacks\n{want}");
            }
            Err(_) => assert!(line.contains("\"status\":\"error\""), "point {i}: {line}"),
        }
    }
}

/// Constraints are decided before a point runs: a bound on parameters from the point's values, area from its
/// arch alone. A skipped point says which rule skipped it, and a point that passes every rule is simulated as
/// usual (the same row as without the constraints).
#[test]
fn constraints_skip_points_before_they_run() {
    let text = r#"Sweep(
        name: "constraints",
        designs: ["fusemax"],
        axes: [Axis("rows", List([64, 128, 256])), Axis("cols", List([64, 256])), Axis("seq", List([1024]))],
        constraints: [AtMost("rows * cols", "16K"), AreaAtMost(300.0), AtLeast("rows", 128)],
    )"#;
    let plan = einsim::sweep::file::load(&SourceFile::new("c.ron", text), &library::get)
        .unwrap_or_else(|d| panic!("{d}"));
    let cache = SetupCache::default();
    let rows: Vec<String> = (0..plan.len())
        .map(|i| plan.eval(i, &library::get, &cache))
        .collect();
    let skipped = |i: usize, why: &str| {
        assert!(
            rows[i].contains("\"status\":\"skipped\"") && rows[i].contains(why),
            "point {i}: {}",
            rows[i]
        )
    };
    skipped(0, "`rows` = 64 is under the constraint's 128");
    skipped(3, "`rows * cols` = 32768 is over the constraint's 16384");
    skipped(4, "is over the constraint's 300 mm²");
    // No skipped row carries simulation outputs: none was simulated.
    assert!(rows.iter().all(|r| !r.contains("\"cycles\"")));
    // Without the constraints the same points run.
    let open = text.replace("constraints:", "//");
    let plan = einsim::sweep::file::load(&SourceFile::new("c.ron", open), &library::get).unwrap();
    assert!(plan
        .eval(0, &library::get, &cache)
        .contains("\"status\":\"ok\""));
}

/// A GPU sweep (FA4 on B200 over seq × d, `binding:` in the file) writes a row per point with TF/s, the unit that
/// binds and utilization per unit, equal to `einsim run --arch b200 --binding fa4` at that point; the flag form
/// (`sweep::run_gpu`) reports the same TF/s.
#[test]
fn gpu_sweeps_write_rows() {
    let text = r#"Sweep(
    name: "fa4-b200",
    designs: ["b200"],
    binding: "fa4",
    axes: [Axis("seq", List(["1K", "16K"])), Axis("d", List([64, 128]))],
    plots: [Plot(name: "tflops", x: "seq", y: "tflops", group: ["d"])],
)"#;
    let plan = einsim::sweep::file::load(&SourceFile::new("gpu.ron", text), &library::get)
        .unwrap_or_else(|d| panic!("{d}"));
    let cache = SetupCache::default();
    let lines: Vec<(u64, String)> = plan
        .indices(Shard::ALL)
        .map(|i| (i, plan.eval(i, &library::get, &cache)))
        .collect();
    let (texts, _, errors) = einsim::sweep::artifacts(&plan, &lines);
    assert!(errors.is_empty(), "{errors:?}");
    let csv = &texts.iter().find(|(n, _)| n == "sweep.csv").unwrap().1;
    let t = einsim::sweep::row::Table::parse(csv);
    assert_eq!(t.rows.len(), 4);
    let col = |n: &str| t.column(n).unwrap_or_else(|| panic!("no column {n}"));
    let g = einsim::gpu::load(
        &library::get(Kind::Gpu, "b200").unwrap(),
        &Default::default(),
    )
    .unwrap();
    let vary: Vec<einsim::sweep::Vary> =
        vec!["seq=1K,16K".parse().unwrap(), "d=64,128".parse().unwrap()];
    let flags = einsim::sweep::run_gpu(
        &library::get(Kind::Gpu, "b200").unwrap(),
        Some("fa4"),
        &[],
        &vary,
        einsim::sweep::Metric::Tflops,
        einsim::sim::SimOptions::default(),
        &einsim::progress::Silent,
    );
    for (row, p) in t.rows.iter().zip(&flags.points) {
        assert_eq!(row[col("status")], "ok");
        assert_eq!(row[col("binding")], "fa4");
        let (seq, d): (u64, u64) = (
            row[col("seq")].parse().unwrap(),
            row[col("d")].parse().unwrap(),
        );
        let w = einsim::gpu::kernel::Workload {
            seq,
            batch: 32768 / seq,
            heads: 2048 / d,
            d,
            causal: false,
        };
        let r = einsim::gpu::report::run(
            &g,
            Some("fa4"),
            &w,
            &Default::default(),
            einsim::sim::SimOptions::default(),
        )
        .unwrap();
        let tflops: f64 = row[col("tflops")].parse().unwrap();
        assert_eq!(tflops, r.tflops, "seq {seq} d {d}");
        assert_eq!(row[col("limiter")], r.binds);
        let tc: f64 = row[col("utilization.tc")].parse().unwrap();
        assert!(tc > 0.0 && tc <= 1.0);
        assert_eq!(p.value(&einsim::sweep::Metric::Tflops), Ok(r.tflops));
    }
}

/// A sweep file's `binding:` forces an arch's named binding: FLAT's spilled binding where the fused one would fit
/// is exactly `einsim run --binding spilled` at that point, and slower than the fused one.
#[test]
fn a_sweep_forces_an_arch_binding() {
    let text = |b: &str| {
        format!(
            r#"Sweep(name: "forced", designs: ["flat-cloud"], {b} axes: [Axis("seq", List([1024, 4096]))])"#
        )
    };
    let forced = einsim::sweep::file::load(
        &SourceFile::new("f.ron", text(r#"binding: "spilled","#)),
        &library::get,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let free =
        einsim::sweep::file::load(&SourceFile::new("f.ron", text("")), &library::get).unwrap();
    let cache = SetupCache::default();
    for i in 0..forced.len() {
        let line = forced.eval(i, &library::get, &cache);
        assert!(line.contains("\"binding\":\"spilled\""), "{line}");
        let cycles = |l: &str| -> u64 {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["cycles"].as_u64().unwrap()
        };
        let unforced = free.eval(i, &library::get, &SetupCache::default());
        assert!(unforced.contains("\"binding\":\"fused\""), "{unforced}");
        assert!(cycles(&line) > cycles(&unforced));
        let (_, values) = forced.point(i);
        let seq = format!("seq={}", values[0].1);
        let out = einsim(&[
            "run",
            "--arch",
            "flat-cloud",
            "--binding",
            "spilled",
            "--set",
            &seq,
            "--format",
            "json",
        ]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["cycles"].as_u64().unwrap(), cycles(&line));
    }
    // The flag form forces it too: its CSV (7 significant digits) holds the same cycles.
    let d = tmp("flag-binding");
    run_ok(&[
        "sweep",
        "--arch",
        "flat-cloud",
        "--binding",
        "spilled",
        "--vary",
        "seq=1024,4096",
        "--metric",
        "cycles",
        "--out",
        d.to_str().unwrap(),
        "--quiet",
    ]);
    let csv = std::fs::read_to_string(d.join("sweep.csv")).unwrap();
    for (i, row) in csv.lines().skip(1).enumerate() {
        let flag: f64 = row.split(',').nth(1).unwrap().parse().unwrap();
        let line = forced.eval(i as u64, &library::get, &cache);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let exact = v["cycles"].as_u64().unwrap() as f64;
        assert!((flag - exact).abs() <= exact * 1e-6, "{row} vs {exact}");
    }
}
