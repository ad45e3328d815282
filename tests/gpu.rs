//! GPUs: hand-checked cycle counts on a tiny fixture, the bound invariant over every shipped GPU and kernel,
//! extrapolation equality, the bad-input corpus (`tests/bad_gpu/`, snapshotted), and the committed
//! `reports/fa4/` (drift test) with its published targets.

use einsim::diag::SourceFile;
use einsim::gpu::kernel::Workload;
use einsim::gpu::{self, report, reproduce};
use einsim::library::{self, Kind};
use einsim::reproduce::targets::Status;
use einsim::run::RunError;
use einsim::sim::SimOptions;
use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> gpu::Gpu {
    let p = root().join("tests/fixtures/gpu/tiny.ron");
    let f = SourceFile::new(
        "tests/fixtures/gpu/tiny.ron",
        std::fs::read_to_string(p).unwrap(),
    );
    gpu::load(&f, &BTreeMap::new()).unwrap()
}

fn w(seq: u64, d: u64, causal: bool) -> Workload {
    Workload {
        seq,
        batch: 1,
        heads: 1,
        d,
        causal,
    }
}

/// A run of `g`'s first kernel on `w` with its shipped parameters.
fn run_default(g: &gpu::Gpu, w: Workload) -> report::GpuReport {
    report::run(g, None, &w, &BTreeMap::new(), SimOptions::default()).unwrap()
}

fn sets(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A task's `on` switch that is neither 0 nor 1 is an error at the task, whatever makes it so.
#[test]
fn task_switch_must_be_zero_or_one() {
    let p = root().join("tests/fixtures/gpu/tiny.ron");
    let text = std::fs::read_to_string(p).unwrap().replace(
        r#"after: ["S"], source: "test"),"#,
        r#"after: ["S"], on: Some("0.5"), source: "test"),"#,
    );
    let f = SourceFile::new("tiny-on.ron", text);
    let g = gpu::load(&f, &BTreeMap::new()).unwrap();
    let e = report::run(
        &g,
        None,
        &w(8, 4, false),
        &BTreeMap::new(),
        SimOptions::default(),
    )
    .expect_err("a half-present task");
    let msg = render(e);
    assert!(msg.contains("task `exp`: `on` is 0.5"), "{msg}");
}

#[test]
fn tiny_sequential_by_hand() {
    // Tile 4×4 at d = 4: each MMA is 2·4·4·4 = 128 FLOPs = 4 cycles at 32/cycle; its operands are two 4×4 fp16
    // tiles (64 B) = 4 cycles of shared memory, beside it. exp: 16 / 4 = 4 cycles. A step is S, exp, PV in a
    // chain: 12 cycles. seq 8 gives 2 items (8 / 4 rows) of 2 steps (8 / 4 keys): 24 cycles each, one per SM.
    let g = tiny();
    let r = run_default(&g, w(8, 4, false));
    assert_eq!(
        (r.items, r.slots, r.item_cycles, r.cycles),
        (2, 2, (24, 24), 24)
    );
    let tc = r.units.iter().find(|u| u.unit == "tc").unwrap();
    assert_eq!((tc.step_ideal, tc.step_cycles), (8.0, 8.0));
    // Busy 16 of 24 cycles on both SMs.
    assert!((tc.utilization - 16.0 / 24.0).abs() < 1e-12);
    // 4·s²·d = 1024 FLOPs in 24 ns.
    assert!((r.tflops - 1024.0 / 24e-9 / 1e12).abs() < 1e-9);
    // Three items on two SMs: wave quantization makes it two item times.
    let r = run_default(&g, w(12, 4, false));
    assert_eq!((r.items, r.item_cycles.0, r.cycles), (3, 36, 72));
}

#[test]
fn issue_slots_bind_when_pipes_outrun_the_schedulers() {
    // The tiny SM with an exp instruction that drives one lane instead of 32: 16 exps take 16 instructions at 1
    // per cycle, 16 cycles of issue beside the MUFU's 4, so the step is S 4 + 16 + PV 4 = 24 cycles and the
    // schedulers bind the run.
    let p = root().join("tests/fixtures/gpu/tiny.ron");
    let text = std::fs::read_to_string(p)
        .unwrap()
        .replace(r#"per_instr: Fig("32""#, r#"per_instr: Fig("1""#);
    let g = gpu::load(
        &SourceFile::new("tiny-one-lane.ron", text),
        &BTreeMap::new(),
    )
    .unwrap();
    let r = run_default(&g, w(8, 4, false));
    let issue = r.units.iter().find(|u| u.unit == "issue").unwrap();
    let mufu = r.units.iter().find(|u| u.unit == "mufu").unwrap();
    assert_eq!((issue.step_ideal, mufu.step_ideal), (16.0, 4.0));
    assert_eq!(r.binds, "issue");
    assert_eq!(r.item_cycles, (48, 48));
}

#[test]
fn tiny_causal_and_ping_pong_by_hand() {
    let g = tiny();
    // Causal, seq 8: item 0 attends to 1 block (12 cycles), item 1 to 2 (24); FLOPs halve.
    let r = run_default(&g, w(8, 4, true));
    assert_eq!((r.item_cycles, r.cycles), ((12, 24), 24));
    assert_eq!(r.flops, 512.0);
    // Two Q tiles per item, two steps in flight, one block (seq 8: one item of 8 rows, 2 steps).
    // tc: S0 0–4, S1 4–8, PV0 8–12 (exp0 4–8), PV1 12–16 (exp1 8–12); the second block's S0 waits for its step
    // to enter the window at 12 and for PV0 (carried), then runs behind PV1: 16–20, S1 20–24, exp0 20–24,
    // PV0 24–28, exp1 24–28, PV1 28–32.
    let two = sets(&[("q_tiles", 2.0), ("window", 2.0)]);
    let r = report::run(&g, None, &w(8, 4, false), &two, SimOptions::default()).unwrap();
    assert_eq!((r.items, r.cycles), (1, 32));
}

/// Every shipped GPU × kernel × head dim × mask × length runs and stays at or above its bound (report::run
/// returns an internal error otherwise), and extrapolation changes nothing.
#[test]
fn shipped_gpus_run_within_the_bound() {
    for name in library::names(Kind::Gpu) {
        let g = gpu::load(&library::get(Kind::Gpu, name).unwrap(), &BTreeMap::new()).unwrap();
        for k in &g.kernels {
            for t in &k.tiles {
                for causal in [false, true] {
                    for seq in [1000, 4096, 32768] {
                        let wl = Workload {
                            seq,
                            batch: 2,
                            heads: 3,
                            d: t.d,
                            causal,
                        };
                        let r = report::run(
                            &g,
                            Some(&k.name),
                            &wl,
                            &BTreeMap::new(),
                            SimOptions::default(),
                        )
                        .unwrap_or_else(|e| {
                            panic!("{name} {} d={} causal={causal} seq={seq}: {e}", k.name, t.d)
                        });
                        assert!(r.cycles >= r.bound_cycles && r.tflops > 0.0);
                        if seq == 4096 {
                            let full = report::run(
                                &g,
                                Some(&k.name),
                                &wl,
                                &BTreeMap::new(),
                                SimOptions {
                                    extrapolate: false,
                                    ..SimOptions::default()
                                },
                            )
                            .unwrap();
                            assert_eq!(
                                full.cycles, r.cycles,
                                "{name} {} d={} causal={causal}",
                                k.name, t.d
                            );
                        }
                    }
                }
            }
        }
    }
}

fn render(e: RunError) -> String {
    match e {
        RunError::Invalid(d) => d.render(),
        RunError::Mapping(m) | RunError::Internal(m) => format!("error: {m}\n"),
    }
}

/// `tests/bad_gpu/*.ron`: each file's load errors, located and snapshotted.
#[test]
fn bad_gpu_files_are_reported() {
    let mut paths: Vec<_> = std::fs::read_dir(root().join("tests/bad_gpu"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 4);
    for p in paths {
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        let f = SourceFile::new(
            format!("tests/bad_gpu/{name}.ron"),
            std::fs::read_to_string(&p).unwrap(),
        );
        let d = gpu::load(&f, &BTreeMap::new()).expect_err(&name);
        insta::assert_snapshot!(format!("bad_gpu__{name}"), d.render());
    }
}

/// Run-time bad input on shipped GPUs: each a located error naming the limit.
#[test]
fn kernel_limits_are_reported() {
    let b200 = gpu::load(&library::get(Kind::Gpu, "b200").unwrap(), &BTreeMap::new()).unwrap();
    let a100 = gpu::load(&library::get(Kind::Gpu, "a100").unwrap(), &BTreeMap::new()).unwrap();
    let h100 = gpu::load(&library::get(Kind::Gpu, "h100").unwrap(), &BTreeMap::new()).unwrap();
    let cases: [(&str, &gpu::Gpu, Workload, BTreeMap<String, f64>); 8] = [
        (
            "emu-above-one",
            &b200,
            w(4096, 128, false),
            sets(&[("emu", 1.5)]),
        ),
        ("head-dim-96", &b200, w(4096, 96, false), BTreeMap::new()),
        (
            "tmem-two-q-tiles-hd256",
            &b200,
            w(4096, 256, false),
            sets(&[("q_tiles", 2.0)]),
        ),
        (
            "smem-eight-stages",
            &b200,
            w(4096, 128, false),
            sets(&[("kv_stages", 8.0)]),
        ),
        (
            "rf-three-ctas-hd64",
            &a100,
            w(4096, 64, false),
            sets(&[("ctas_per_sm", 3.0)]),
        ),
        // FA3's hd64 tile with P kept in registers beside the next S (the 2-stage pipeline): 270 KB of 256 KB.
        (
            "rf-fa3-hd64-p-in-registers",
            &h100,
            w(4096, 64, false),
            sets(&[("p_rs", 1.0)]),
        ),
        // Half a pipeline stage, or a switch half on (both of two alternative tasks would run).
        (
            "whole-number-fraction",
            &h100,
            w(4096, 128, false),
            sets(&[("ws", 0.5)]),
        ),
        (
            "unknown-parameter",
            &b200,
            w(4096, 128, false),
            sets(&[("bogus", 1.0)]),
        ),
    ];
    for (name, g, wl, s) in cases {
        let e = report::run(g, None, &wl, &s, SimOptions::default()).expect_err(name);
        insta::assert_snapshot!(format!("gpu_limit__{name}"), render(e));
    }
}

/// The committed `reports/fa4/` equals a fresh reproduction, and every target is met or its miss explained.
#[test]
fn fa4_reproduction_has_not_drifted() {
    let r = reproduce::compute(&library::get, SimOptions::default()).unwrap();
    for (name, text) in reproduce::texts(&r) {
        let committed = std::fs::read_to_string(root().join("reports/fa4").join(&name))
            .unwrap_or_else(|e| panic!("reports/fa4/{name}: {e}; run `einsim reproduce fa4`"));
        assert!(
            committed == text,
            "reports/fa4/{name} differs from `einsim reproduce fa4`; rerun it and review"
        );
    }
    for c in &r.checks {
        assert!(
            c.accounted_for() && !matches!(c.status, Status::NotEvaluated(_)),
            "target {} ({}) misses ({:?}) without a known disagreement saying why",
            c.target.id,
            c.target.description,
            c.rel_error
        );
    }
    // The per-tile cycles are exact, forward and backward, 1-CTA and 2-CTA.
    for c in r.checks.iter().filter(|c| c.target.tolerance == 0.0) {
        assert!(
            c.status == Status::Pass,
            "target {}: {:?} vs {}",
            c.target.id,
            c.value,
            c.target.value
        );
    }
}

/// `--set UNIT.FIGURE` overrides one unit figure of a GPU (a design-space axis), and only names that exist.
#[test]
fn unit_figures_are_settable() {
    let f = library::get(Kind::Gpu, "b200").unwrap();
    let step = |s: &BTreeMap<String, f64>, unit: &str| {
        let g = gpu::load(&f, s).unwrap();
        let r = report::run(
            &g,
            Some("fa4"),
            &w(4096, 128, false),
            s,
            SimOptions::default(),
        )
        .unwrap();
        let u = r.units.iter().find(|u| u.unit == unit).unwrap();
        u.step_ideal
    };
    // No emulation: every exp on MUFU, 128 × 128 / 16 cycles per Q-tile step, half that at 32 per cycle.
    assert_eq!(step(&sets(&[("emu", 0.0)]), "mufu"), 1024.0);
    assert_eq!(
        step(&sets(&[("emu", 0.0), ("mufu.rate", 32.0)]), "mufu"),
        512.0
    );
    assert_eq!(step(&sets(&[("tc.flops.bf16", 16384.0)]), "tc"), 512.0);
    let g = gpu::load(&f, &BTreeMap::new()).unwrap();
    let e = report::run(
        &g,
        Some("fa4"),
        &w(4096, 128, false),
        &sets(&[("mufu.rat", 32.0)]),
        SimOptions::default(),
    )
    .expect_err("a misspelt figure");
    let msg = render(e);
    assert!(
        msg.contains("--set mufu.rat") && msg.contains("mufu.rate"),
        "{msg}"
    );
    // An override must be positive, and is reported once, at the figure it replaces.
    let e = gpu::load(&f, &sets(&[("mufu.rate", 0.0)])).expect_err("a zero rate");
    let msg = e.render();
    assert!(
        msg.contains("--set mufu.rate=0: must be a finite number > 0"),
        "{msg}"
    );
    assert_eq!(msg.matches("error:").count(), 1, "{msg}");
    // The warp schedulers are read through every pipe task's issue part.
    let issue = step(&sets(&[("emu", 0.0)]), "issue");
    assert_eq!(
        step(&sets(&[("emu", 0.0), ("issue.rate", 2.0)]), "issue"),
        2.0 * issue
    );
}

#[test]
fn json_has_tflops() {
    let g = gpu::load(&library::get(Kind::Gpu, "b200").unwrap(), &BTreeMap::new()).unwrap();
    let r = report::run(
        &g,
        Some("fa4"),
        &w(8192, 128, true),
        &BTreeMap::new(),
        SimOptions::default(),
    )
    .unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["tflops"].as_f64().unwrap() > 0.0);
    assert_eq!(v["binds"], "tc");
    assert!(v["units"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["unit"] == "tmem"));
}

/// A task whose `on` is 0 is not there: FA3 with warp specialisation (ws = 1, shipped) has no consumer-issued
/// load and runs as before; without it (ws = 0) each consumer warpgroup's S waits for a load it issues after its
/// previous P·V, so it is slower, and the L2 carries the same bytes either way.
#[test]
fn fa3_without_warp_specialisation_is_slower() {
    let h100 = gpu::load(&library::get(Kind::Gpu, "h100").unwrap(), &BTreeMap::new()).unwrap();
    let wl = Workload {
        seq: 8192,
        batch: 4,
        heads: 16,
        d: 128,
        causal: false,
    };
    let run = |ws: f64| {
        report::run(
            &h100,
            Some("fa3"),
            &wl,
            &sets(&[("ws", ws)]),
            SimOptions::default(),
        )
        .unwrap()
    };
    let (on, off) = (run(1.0), run(0.0));
    assert!(
        off.tflops < 0.95 * on.tflops,
        "{} vs {}",
        off.tflops,
        on.tflops
    );
    let l2 = |r: &report::GpuReport| r.units.iter().find(|u| u.unit == "l2").unwrap().step_ideal;
    assert_eq!(l2(&on), l2(&off));
}

/// H200 is the H100 die with other HBM (gpus.md §4): its file repeats H100's units and kernels so that each GPU
/// file stands alone. This keeps the copy from drifting: from `units:` on, the two files are the same text.
#[test]
fn h200_runs_h100s_units_and_kernels() {
    let tail = |name: &str| {
        let text = std::fs::read_to_string(root().join(format!("arch/gpu/{name}.ron"))).unwrap();
        let at = text.find("    units: {").expect("a units section");
        text[at..].to_string()
    };
    assert!(
        tail("h100") == tail("h200"),
        "arch/gpu/h200.ron's units and kernels differ from arch/gpu/h100.ron's: change both"
    );
}
