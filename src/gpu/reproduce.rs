//! `einsim reproduce fa4`: FA4 on B200, FA3 on H100 and H200, FA2 on A100 over FA4's benchmark grid (1K…32K with
//! 32K total tokens, hidden 2048, head dims 64/128/256, causal and not), the per-tile cycle table, technique
//! ablations, and the published targets (`fa4_targets.ron`: values, sources, tolerances; never inputs) with the
//! error of each. [`compute`] is pure; [`write`] is the one function here that writes files.

use super::kernel::Workload;
use super::report::{self, GpuReport, UnitRow};
use crate::diag::SourceFile;
use crate::library::Kind;
use crate::plot::{Corner, Figure, LineChart, Panel, Series, XAxis};
use crate::run::RunError;
use crate::sim::SimOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub const NAME: &str = "fa4";

const TARGETS: &str = include_str!("fa4_targets.ron");

/// What `einsim reproduce fa4` runs, as data (`plan` in `src/gpu/fa4_targets.ron`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// (GPU, kernel) pairs of the TFLOP/s grid.
    pub grid: Vec<(String, String)>,
    pub seqs: Vec<u64>,
    pub dims: Vec<u64>,
    /// Tokens per run (batch = tokens / seq) and the hidden size (heads = hidden / d).
    pub tokens: u64,
    pub hidden: u64,
    /// The per-tile cycle table's rows (each at `tokens` tokens per sequence).
    pub tiles: Vec<KernelRun>,
    /// The sequence length every ablation runs at.
    pub ablation_seq: u64,
    pub ablations: Vec<KernelRun>,
    /// What the ablations show, in words, printed under their table: (kernel, paragraph), each printed when its
    /// kernel is in the report. The paragraphs point at the tables' rows for numbers instead of restating them, so
    /// a model change moves the numbers they point at; their claims are re-read by whoever changes the model.
    pub discussion: Vec<(String, String)>,
}

/// One labelled run of the plan: a kernel on a GPU at head dim `d` (non-causal), with parameters set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRun {
    pub label: String,
    pub gpu: String,
    pub kernel: String,
    pub d: u64,
    #[serde(default)]
    pub sets: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Measure {
    /// Cycles per tile step on a unit at peak, times `steps` (2 for a 256-row CTA of two Q tiles).
    Step {
        gpu: String,
        kernel: String,
        d: u64,
        /// The causal tile (FA3's 128×128 at hd128), not the non-causal one.
        #[serde(default)]
        causal: bool,
        sets: Vec<(String, f64)>,
        unit: String,
        steps: f64,
    },
    /// Ratio of two units' cycles per step at peak.
    Ratio {
        gpu: String,
        kernel: String,
        d: u64,
        num: String,
        den: String,
    },
    /// Highest TF/s over the grid for this GPU and kernel.
    Peak { gpu: String, kernel: String },
    /// TF/s at one point (`tokens` in total).
    Point {
        gpu: String,
        kernel: String,
        d: u64,
        causal: bool,
        seq: u64,
        tokens: u64,
    },
}

impl Measure {
    /// The kernel whose runs the measure reads.
    pub fn kernel(&self) -> &str {
        match self {
            Measure::Step { kernel, .. }
            | Measure::Ratio { kernel, .. }
            | Measure::Peak { kernel, .. }
            | Measure::Point { kernel, .. } => kernel,
        }
    }
}

/// An FA4 target: a [`Measure`] over the plan's runs.
pub type Target = crate::reproduce::targets::Target<Measure>;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Targets")]
struct TargetFile {
    plan: Plan,
    targets: Vec<Target>,
}

pub type Check = crate::reproduce::targets::TargetResult<Measure>;
use crate::reproduce::targets::Status;

#[derive(Clone, Debug)]
pub struct Ablation {
    pub gpu: String,
    pub kernel: String,
    pub label: String,
    pub sets: Vec<(String, f64)>,
    pub report: GpuReport,
}

#[derive(Clone, Debug)]
pub struct Fa4Reproduction {
    pub plan: Plan,
    /// The (GPU, kernel) pairs run: all of the plan's grid, or one kernel's (`--binding`).
    pub grid: Vec<(String, String)>,
    pub runs: Vec<GpuReport>,
    pub tiles: Vec<(String, GpuReport)>,
    pub ablations: Vec<Ablation>,
    pub checks: Vec<Check>,
}

fn load(
    files: &dyn Fn(Kind, &str) -> Option<SourceFile>,
    name: &str,
    sets: &BTreeMap<String, f64>,
) -> Result<super::Gpu, RunError> {
    let f = files(Kind::Gpu, name)
        .ok_or_else(|| RunError::Internal(format!("no shipped GPU `{name}`")))?;
    super::load(&f, sets).map_err(RunError::Invalid)
}

fn one(
    files: &dyn Fn(Kind, &str) -> Option<SourceFile>,
    gpu: &str,
    kernel: &str,
    w: &Workload,
    sets: &[(String, f64)],
    opts: SimOptions,
) -> Result<GpuReport, RunError> {
    let sets: BTreeMap<String, f64> = sets.iter().cloned().collect();
    let g = load(files, gpu, &sets)?;
    report::run(&g, Some(kernel), w, &sets, opts)
}

fn workload(plan: &Plan, seq: u64, d: u64, causal: bool) -> Workload {
    Workload {
        seq,
        batch: (plan.tokens / seq).max(1),
        heads: plan.hidden / d,
        d,
        causal,
    }
}

fn file() -> Result<TargetFile, String> {
    ron::from_str::<TargetFile>(TARGETS).map_err(|e| format!("src/gpu/fa4_targets.ron: {e}"))
}

/// The plan as shipped.
pub fn plan() -> Result<Plan, String> {
    file().map(|f| f.plan)
}

pub fn compute(
    files: &dyn Fn(Kind, &str) -> Option<SourceFile>,
    opts: SimOptions,
) -> Result<Fa4Reproduction, RunError> {
    compute_for(files, opts, None)
}

/// The reproduction restricted to one kernel (`einsim reproduce fa4 --binding fa3`): its (GPU, kernel) pairs of
/// the grid, its per-tile rows, its ablations and the targets it is measured by. `None`: everything.
pub fn compute_for(
    files: &dyn Fn(Kind, &str) -> Option<SourceFile>,
    opts: SimOptions,
    kernel: Option<&str>,
) -> Result<Fa4Reproduction, RunError> {
    let mine = |k: &str| kernel.is_none_or(|b| b == k);
    let TargetFile { plan, targets } = file().map_err(RunError::Internal)?;
    let grid: Vec<(String, String)> = plan.grid.iter().filter(|(_, k)| mine(k)).cloned().collect();
    let mut runs = vec![];
    for (gpu, kernel) in &grid {
        for &d in &plan.dims {
            for causal in [false, true] {
                for &seq in &plan.seqs {
                    let w = workload(&plan, seq, d, causal);
                    runs.push(one(files, gpu, kernel, &w, &[], opts)?);
                }
            }
        }
    }
    let mut tiles = vec![];
    for t in plan.tiles.iter().filter(|t| mine(&t.kernel)) {
        let w = workload(&plan, plan.tokens, t.d, false);
        let r = one(files, &t.gpu, &t.kernel, &w, &t.sets, opts)?;
        tiles.push((t.label.clone(), r));
    }
    let mut ablations = vec![];
    for a in plan.ablations.iter().filter(|a| mine(&a.kernel)) {
        let w = workload(&plan, plan.ablation_seq, a.d, false);
        let report = one(files, &a.gpu, &a.kernel, &w, &a.sets, opts)?;
        ablations.push(Ablation {
            gpu: a.gpu.clone(),
            kernel: a.kernel.clone(),
            label: a.label.clone(),
            sets: a.sets.clone(),
            report,
        });
    }
    let mut checks = vec![];
    for t in targets {
        if !mine(t.metric.kernel()) {
            continue;
        }
        let model = match &t.metric {
            Measure::Step {
                gpu,
                kernel,
                d,
                causal,
                sets,
                unit,
                steps,
            } => {
                let r = one(
                    files,
                    gpu,
                    kernel,
                    &workload(&plan, plan.tokens, *d, *causal),
                    sets,
                    opts,
                )?;
                r.units
                    .iter()
                    .find(|u| &u.unit == unit)
                    .map_or(f64::NAN, |u| u.step_ideal * steps)
            }
            Measure::Ratio {
                gpu,
                kernel,
                d,
                num,
                den,
            } => {
                let r = one(
                    files,
                    gpu,
                    kernel,
                    &workload(&plan, plan.tokens, *d, false),
                    &[],
                    opts,
                )?;
                let c = |n: &str| {
                    r.units
                        .iter()
                        .find(|u| u.unit == n)
                        .map_or(f64::NAN, |u| u.step_ideal)
                };
                c(num) / c(den)
            }
            Measure::Peak { gpu, kernel } => runs
                .iter()
                .filter(|r| &r.gpu == gpu && &r.kernel == kernel)
                .map(|r| r.tflops)
                .fold(f64::NAN, f64::max),
            Measure::Point {
                gpu,
                kernel,
                d,
                causal,
                seq,
                tokens,
            } => {
                one(
                    files,
                    gpu,
                    kernel,
                    &Workload {
                        batch: (*tokens / *seq).max(1),
                        ..workload(&plan, *seq, *d, *causal)
                    },
                    &[],
                    opts,
                )?
                .tflops
            }
        };
        // NaN: the measure names a unit the kernel's GPU lacks, or a grid without that kernel.
        let value = if model.is_finite() {
            Ok(model)
        } else {
            Err(format!("target {}: the measure has no value", t.id))
        };
        checks.push(t.judge(value));
    }
    Ok(Fa4Reproduction {
        plan,
        grid,
        runs,
        tiles,
        ablations,
        checks,
    })
}

/// The text artifacts: (file name, contents). Deterministic: the drift test compares them to the committed copies.
pub fn texts(r: &Fa4Reproduction) -> Vec<(String, String)> {
    let mut out = vec![
        ("report.md".to_string(), markdown(r)),
        ("runs.csv".to_string(), csv(r)),
    ];
    if let Ok(svg) = crate::plot::svg(&figure(r)) {
        out.push(("tflops.svg".to_string(), svg));
    }
    out
}

/// Write `report.md`, `runs.csv`, `tflops.svg` and `tflops.png` into `dir`; the number of files written.
pub fn write(dir: &Path, r: &Fa4Reproduction) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let texts = texts(r);
    for (name, text) in &texts {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("cannot write `{}`: {e}", p.display()))?;
    }
    let png = dir.join("tflops.png");
    crate::plot::png(&figure(r), &png)
        .map_err(|e| format!("cannot write `{}`: {}", png.display(), e.0))?;
    Ok(texts.len() + 1)
}

fn label(gpu: &str, kernel: &str) -> String {
    format!("{} on {}", kernel.to_uppercase(), gpu.to_uppercase())
}

pub fn figure(r: &Fa4Reproduction) -> Figure {
    let panels = r
        .grid
        .iter()
        .map(|(gpu, kernel)| {
            let mut series = vec![];
            for &d in &r.plan.dims {
                for causal in [false, true] {
                    let points = r
                        .runs
                        .iter()
                        .filter(|x| {
                            &x.gpu == gpu
                                && &x.kernel == kernel
                                && x.workload.d == d
                                && x.workload.causal == causal
                        })
                        .map(|x| (x.workload.seq as f64, x.tflops))
                        .collect();
                    series.push(Series {
                        name: format!("hd{d}{}", if causal { " causal" } else { "" }),
                        points,
                    });
                }
            }
            Panel::Line(LineChart {
                title: label(gpu, kernel),
                x_label: format!(
                    "sequence length ({} tokens in total)",
                    crate::plot::format_len(r.plan.tokens as f64)
                ),
                y_label: "TFLOP/s".into(),
                x_axis: XAxis::Log2,
                series,
                reference: None,
                legend: Corner::LowerRight,
                headroom: 1.15,
            })
        })
        .collect();
    Figure {
        title: format!(
            "einsim: attention forward TFLOP/s, hidden {}",
            r.plan.hidden
        ),
        panels,
        cols: 2,
        panel_size: (560, 400),
        shared_legend: true,
    }
}

fn csv(r: &Fa4Reproduction) -> String {
    let mut s = String::from("gpu,kernel,seq,batch,heads,d,causal,tile_m,tile_n,q_tiles,ctas,items,cycles,bound_cycles,tflops,percent_of_peak,binds\n");
    for x in &r.runs {
        let w = &x.workload;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.2},{}",
            x.gpu,
            x.kernel,
            w.seq,
            w.batch,
            w.heads,
            w.d,
            w.causal,
            x.tile_m,
            x.tile_n,
            x.q_tiles,
            x.ctas,
            x.items,
            x.cycles,
            x.bound_cycles,
            x.tflops,
            x.percent_of_peak,
            x.binds
        );
    }
    s
}

/// Table cells of `units`' cycles per tile step in `x` (`–` for a unit the GPU lacks).
fn unit_cells(x: &GpuReport, units: &[&str], cycles: fn(&UnitRow) -> f64) -> Vec<String> {
    units
        .iter()
        .map(|u| {
            x.units
                .iter()
                .find(|r| &r.unit == u)
                .map_or("–".into(), |r| format!("{:.0}", cycles(r)))
        })
        .collect()
}

fn markdown(r: &Fa4Reproduction) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# FlashAttention-4 / -3 / -2 forward on B200, H100, H200 and A100 (einsim)\n"
    );
    let _ = writeln!(
        s,
        "Generated by `einsim reproduce fa4`; GPUs and kernels are `arch/gpu/*.ron`, targets `src/gpu/fa4_targets.ron`.\n\
         Published numbers are targets only: none is an input. No GPU was measured for this report.\n"
    );
    if r.grid.len() < r.plan.grid.len() {
        if let Some((_, k)) = r.grid.first() {
            let _ = writeln!(
                s,
                "Restricted to the runs, tile rows, ablations and targets of `{k}` (`--binding {k}`).\n"
            );
        }
    }
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(
        s,
        "| target | published | einsim | error | tolerance | result | source | note |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for c in &r.checks {
        let t = &c.target;
        let _ = writeln!(
            s,
            "| {} {} | {} {} | {:.1} | {:+.1}% | {} | {} | {} | {} |",
            t.id,
            t.description,
            t.value,
            t.unit,
            c.value.unwrap_or(f64::NAN),
            100.0 * c.rel_error.unwrap_or(f64::NAN),
            if t.tolerance == 0.0 {
                "exact".to_string()
            } else {
                format!("±{:.0}%", 100.0 * t.tolerance)
            },
            match &c.status {
                Status::NotEvaluated(why) => format!("not evaluated: {why}"),
                s => s.cell().to_string(),
            },
            t.source,
            [t.known_disagreement.as_str(), t.note.as_str()]
                .iter()
                .filter(|x| !x.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        s,
        "\n## Cycles per tile step (one Q tile × one K/V block), per SM at peak rates\n"
    );
    let units = ["tc", "mufu", "fma", "alu", "issue", "smem", "tmem", "l2"];
    let _ = writeln!(
        s,
        "| case | tile | {} | binds (modelled) |",
        units.join(" | ")
    );
    let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(units.len()));
    for (name, x) in &r.tiles {
        let cells = unit_cells(x, &units, |r| r.step_ideal);
        let _ = writeln!(
            s,
            "| {name} | {}×{}×{} ({} per CTA) | {} | {} |",
            x.tile_m,
            x.tile_n,
            x.workload.d,
            x.q_tiles,
            cells.join(" | "),
            x.binds
        );
    }
    let _ = writeln!(
        s,
        "\nA CTA's step is the row times its Q tiles (FA4: 2 × 128 rows, FA3: 2 or 3 64-row warpgroups). Cycles are per SM\n\
         clock; the measured-GEMM fraction (gpus.md §4) derates that clock for every unit alike (arch/gpu/*.ron `sustained`).\n"
    );
    let _ = writeln!(
        s,
        "## Ablations (seq {}, {} tokens, non-causal)\n",
        crate::plot::format_len(r.plan.ablation_seq as f64),
        crate::plot::format_len(r.plan.tokens as f64)
    );
    // The modelled cycles per Q-tile step of the units a technique moves, so the text below cites only numbers the
    // run computed.
    let cols = ["tc", "mufu", "fma", "issue", "smem"];
    let _ = writeln!(
        s,
        "| GPU | kernel | hd | variant | TFLOP/s | vs shipped | binds | {} |",
        cols.join(" | ")
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|{}",
        "---|".repeat(cols.len())
    );
    for a in &r.ablations {
        let base = r
            .ablations
            .iter()
            .find(|b| {
                b.gpu == a.gpu && b.kernel == a.kernel && b.report.workload.d == a.report.workload.d
            })
            .map_or(f64::NAN, |b| b.report.tflops);
        let cells = unit_cells(&a.report, &cols, |r| r.step_cycles);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:+.1}% | {} | {} |",
            a.gpu,
            a.kernel,
            a.report.workload.d,
            a.label,
            a.report.tflops,
            100.0 * (a.report.tflops / base - 1.0),
            a.report.binds,
            cells.join(" | ")
        );
    }
    for (kernel, paragraph) in &r.plan.discussion {
        if r.grid.iter().any(|(_, k)| k == kernel) {
            let _ = writeln!(s, "\n{}", paragraph.trim_end());
        }
    }
    let _ = writeln!(
        s,
        "\n## Forward TFLOP/s ({} tokens, hidden {})\n",
        crate::plot::format_len(r.plan.tokens as f64),
        r.plan.hidden
    );
    for (gpu, kernel) in &r.grid {
        let _ = writeln!(s, "### {}\n", label(gpu, kernel));
        let mut head = String::from("| seq |");
        for d in &r.plan.dims {
            for c in ["", " causal"] {
                let _ = write!(head, " hd{d}{c} |");
            }
        }
        let _ = writeln!(s, "{head}\n|---|{}", "---|".repeat(r.plan.dims.len() * 2));
        for &seq in &r.plan.seqs {
            let mut row = format!("| {} |", crate::plot::format_len(seq as f64));
            for &d in &r.plan.dims {
                for causal in [false, true] {
                    let x = r.runs.iter().find(|x| {
                        x.gpu == *gpu
                            && x.kernel == *kernel
                            && x.workload.seq == seq
                            && x.workload.d == d
                            && x.workload.causal == causal
                    });
                    let _ = write!(
                        row,
                        " {} |",
                        x.map_or("–".into(), |x| format!("{:.0}", x.tflops))
                    );
                }
            }
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Not reproduced\n\n\
         - FA4's backward pass (`fa4_bwd`) is checked per tile step (targets 3a–3d) and run 1-CTA against 2-CTA in the ablation table, but its TFLOP/s is not charted against sequence length: gpus.md gives no published backward TFLOP/s to compare.\n\
         - FA2 on H100 runs on an assumed mma.sync rate (Ampere's 2048 FLOP/clk per SM; gpus.md gives none for Hopper): see `tc_sync` in arch/gpu/h100.ron.\n\
         - No real GPU was available: the PyTorch SDPA measurement of the issue's item 5 (`reports/h200-sdpa/measure_sdpa.py`, prepared) was not run.\n"
    );
    s
}
