//! `einsim reproduce spatten`: SpAtten's published numbers (HPCA'21) against einsim runs of `arch/spatten.ron`,
//! `arch/spatten-1-8.ron` and their cascades, plus the top-k engine's cycles against n, k and P, and the speedup
//! each technique adds on whole-model GPT-2 generation (`generation::run_generation`).
//!
//! What runs and what is compared are data (`spatten_targets.ron`): named runs (arch, cascade, `--set`s) and
//! targets, each a [`Metric`] over those runs with a value, a tolerance and a source. A miss stays a miss: the
//! report shows its error and, where the cause is understood, the file's `known_disagreement`. This module
//! computes and renders text and figures; the CLI writes them.

use super::targets::{Bound, Status};
use crate::diag::SourceFile;
use crate::generation::{self, Generation, GenerationReport, Schedule};
use crate::library::Kind;
use crate::plot::{BarChart, Corner, Figure, LineChart, Panel, Series, XAxis};
use crate::report::RunReport;
use crate::run::{self, Lookup, RunError};
use crate::sim::SimOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// The SpAtten targets and runs, embedded so the binary carries them.
pub const TARGETS: &str = include_str!("spatten_targets.ron");
pub const TARGETS_PATH: &str = "src/reproduce/spatten_targets.ron";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "SpattenTargets")]
pub struct TargetFile {
    pub runs: Vec<RunSpec>,
    pub targets: Vec<Target>,
    /// The top-k sweep: lengths n, divisors d (k = n / d) and comparator counts P.
    pub topk: TopkSweep,
    /// Whole-model GPT-2 generations (`generation::run_generation`): the ladder of techniques.
    pub generation: GenerationSweep,
}

/// Generations on one arch through one layer file, each a model with its pruning, for the technique ladder.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSweep {
    pub arch: String,
    /// The layer file each step runs per layer (`workloads/layers/`).
    pub layer: String,
    pub steps: i64,
    pub context: i64,
    /// The layer's ops the techniques act on (attention and its LSB refetch): their traffic is reported apart.
    pub attention_ops: Vec<String>,
    pub runs: Vec<GenRun>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenRun {
    pub id: String,
    /// A generation model (`workloads/models/`).
    pub model: String,
    /// The ladder's row label: what this run adds.
    pub technique: String,
    pub description: String,
    pub sets: Vec<String>,
    #[serde(default)]
    pub tokens: Option<Schedule>,
    #[serde(default)]
    pub heads: Option<Schedule>,
    /// The dense run of the same model: speedup and traffic reduction are against it.
    pub dense: String,
    /// What the technique adds: cycles of the first run over cycles of the second.
    #[serde(default)]
    pub adds: Option<(String, String)>,
}

/// A schedule as FRONT/START/END (slashes: the text goes into a CSV field).
fn schedule_text(s: Schedule) -> String {
    format!("{}/{}/{}", s.front_pct, s.start, s.end)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub id: String,
    pub description: String,
    pub arch: String,
    /// The cascade, or for a layer run (`model` set) the layer file (`workloads/layers/`).
    pub cascade: String,
    pub sets: Vec<String>,
    /// A model (`workloads/models/`): the run is the layer `cascade` names, each op through the arch's binding,
    /// its ops' reports summed into one (`layer_report`).
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopkSweep {
    pub arch: String,
    pub n: Vec<u64>,
    pub k_divisors: Vec<u64>,
    pub lanes: Vec<u64>,
}

/// A SpAtten target: a [`Metric`] over the runs and generations of `spatten_targets.ron`.
pub type Target = super::targets::Target<Metric>;

/// A quantity of one or two runs.
#[derive(Clone, Debug, Deserialize)]
pub enum Metric {
    /// 2 × the iteration points of `einsums` in run `ops_of`, over the seconds of run `time_of`, in GOP/s. With
    /// `ops_of` the dense run and `time_of` the pruned one, this is the effective (dense-equivalent) throughput.
    Gops {
        ops_of: String,
        time_of: String,
        einsums: Vec<String>,
    },
    /// The same operations over the energy of run `energy_of`, in GOP/J.
    GopPerJ {
        ops_of: String,
        energy_of: String,
        einsums: Vec<String>,
    },
    /// A quantity of run `num` over the same quantity of run `den`.
    Ratio {
        num: String,
        den: String,
        quantity: Quantity,
    },
    /// A quantity of one run.
    Of { run: String, quantity: Quantity },
    /// A quantity of generation `num` over the same quantity of generation `den`.
    GenRatio {
        num: String,
        den: String,
        quantity: GenQuantity,
    },
}

/// A quantity of a whole-model generation.
#[derive(Clone, Debug, Deserialize)]
pub enum GenQuantity {
    Cycles,
    /// Bytes read and written at a storage level, all ops.
    Traffic(String),
    /// The same for some of the layer's ops only (e.g. attention and its LSB refetch).
    OpTraffic(String, Vec<String>),
}

#[derive(Clone, Debug, Deserialize)]
pub enum Quantity {
    Cycles,
    /// Bytes read and written at a storage level.
    Traffic(String),
    /// 2 × the iteration points of these Einsums (operations).
    Ops(Vec<String>),
    /// Average power, W: energy over time.
    PowerW,
    /// Share of the energy in these components (units or storage levels).
    EnergyShare(Vec<String>),
    AreaMm2,
    /// Share of the area in these components.
    AreaShare(Vec<String>),
}

pub type TargetResult = super::targets::TargetResult<Metric>;

/// One top-k point: selection cycles of the engine alone (the `topk` cascade's selection Einsum).
#[derive(Clone, Debug, PartialEq)]
pub struct TopkPoint {
    pub n: u64,
    pub k: u64,
    pub lanes: u64,
    pub cycles: u64,
}

pub struct Reproduction {
    pub file: TargetFile,
    pub runs: BTreeMap<String, Result<RunReport, String>>,
    pub results: Vec<TargetResult>,
    pub topk: Vec<TopkPoint>,
    pub generations: BTreeMap<String, Result<GenerationReport, String>>,
}

pub fn load() -> Result<TargetFile, String> {
    ron::from_str(TARGETS).map_err(|e| format!("{TARGETS_PATH}: {e}"))
}

/// A shipped file of the reproduction, or why not.
fn shipped(lookup: Lookup, kind: Kind, name: &str) -> Result<SourceFile, String> {
    let what = match kind {
        Kind::Arch => "arch",
        Kind::Layer => "layer",
        Kind::Model => "model",
        _ => "file",
    };
    lookup(kind, name).ok_or_else(|| format!("{what} `{name}` is not shipped"))
}

/// A failed run as the report shows it: the diagnostics rendered, or the error's message.
fn message(e: RunError) -> String {
    match e {
        RunError::Invalid(d) => d.to_string(),
        other => other.to_string(),
    }
}

fn run_one(
    arch: &str,
    cascade: &str,
    sets: &[String],
    lookup: Lookup,
) -> Result<RunReport, String> {
    let arch_file = shipped(lookup, Kind::Arch, arch)?;
    run::run(
        &arch_file,
        None,
        Some(cascade),
        sets,
        lookup,
        SimOptions::default(),
    )
    .map_err(message)
}

/// A layer run: every op of layer `layer` on `arch` for `model`, run one after another (as `crate::layer` does),
/// summed into one report: cycles, seconds, traffic and energy add up, the Einsums are every op's, and the area is
/// the arch's (the first op's).
fn run_layer(
    arch: &str,
    layer: &str,
    model: &str,
    sets: &[String],
    lookup: Lookup,
) -> Result<RunReport, String> {
    let arch_file = shipped(lookup, Kind::Arch, arch)?;
    let layer_file = shipped(lookup, Kind::Layer, layer)?;
    let model_file = shipped(lookup, Kind::Model, model)?;
    let r = crate::layer::run_layer_file(
        &layer_file,
        &arch_file,
        &model_file,
        sets,
        lookup,
        SimOptions::default(),
    )
    .map_err(message)?;
    let mut parts = r.parts.into_iter().map(|(_, p)| Arc::unwrap_or_clone(p));
    let mut sum = parts
        .next()
        .ok_or_else(|| format!("layer `{layer}` has no ops"))?;
    for p in parts {
        sum.cycles += p.cycles;
        sum.seconds += p.seconds;
        sum.einsums.extend(p.einsums);
        for (level, b) in p.traffic_bytes {
            *sum.traffic_bytes.entry(level).or_insert(0) += b;
        }
        sum.energy_pj.total += p.energy_pj.total;
        for (c, pj) in p.energy_pj.by_component {
            *sum.energy_pj.by_component.entry(c).or_insert(0.0) += pj;
        }
    }
    Ok(sum)
}

/// Run every named run and the top-k sweep, and evaluate the targets.
pub fn reproduce(lookup: Lookup) -> Result<Reproduction, String> {
    let file = load()?;
    let mut runs = BTreeMap::new();
    for r in &file.runs {
        let report = match &r.model {
            Some(m) => run_layer(&r.arch, &r.cascade, m, &r.sets, lookup),
            None => run_one(&r.arch, &r.cascade, &r.sets, lookup),
        };
        runs.insert(r.id.clone(), report);
    }
    let mut topk = Vec::new();
    for &n in &file.topk.n {
        for &d in &file.topk.k_divisors {
            for &p in &file.topk.lanes {
                let k = (n / d).max(1);
                let sets = vec![
                    format!("n={n}"),
                    format!("k={k}"),
                    format!("topk_lanes={p}"),
                ];
                let r = run_one(&file.topk.arch, "topk", &sets, lookup)?;
                let cycles = r
                    .einsums
                    .iter()
                    .find(|e| e.unit == "topk")
                    .map_or(0, |e| e.cycles);
                topk.push(TopkPoint {
                    n,
                    k,
                    lanes: p,
                    cycles,
                });
            }
        }
    }
    let generations = run_generations(&file.generation, lookup);
    let results = file
        .targets
        .iter()
        .map(|t| evaluate(t, &runs, &generations))
        .collect();
    Ok(Reproduction {
        file,
        runs,
        results,
        topk,
        generations,
    })
}

/// Every generation of the ladder, each through `generation::run_generation` (its own op cache: the GEMMs are
/// simulated once per run, the attention ops once per distinct pruning and cache length).
fn run_generations(
    g: &GenerationSweep,
    lookup: Lookup,
) -> BTreeMap<String, Result<GenerationReport, String>> {
    let mut out = BTreeMap::new();
    for r in &g.runs {
        let report = (|| -> Result<GenerationReport, String> {
            let arch = shipped(lookup, Kind::Arch, &g.arch)?;
            let layer = shipped(lookup, Kind::Layer, &g.layer)?;
            let model = shipped(lookup, Kind::Model, &r.model)?;
            let m = crate::cascade::load_model(&model).map_err(|d| d.to_string())?;
            let layers = m
                .params
                .iter()
                .find(|p| p.name == "layers")
                .map(|p| p.default)
                .ok_or_else(|| format!("model `{}` has no `layers`", r.model))?;
            let gen = Generation {
                layers,
                steps: g.steps,
                context: g.context,
                tokens: r.tokens,
                heads: r.heads,
                trace: None,
            };
            generation::run_generation(
                &layer,
                &arch,
                &model,
                &r.sets,
                &gen,
                lookup,
                SimOptions::default(),
            )
            .map_err(message)
        })();
        out.insert(r.id.clone(), report);
    }
    out
}

fn gen_quantity(r: &GenerationReport, q: &GenQuantity) -> f64 {
    match q {
        GenQuantity::Cycles => r.cycles as f64,
        GenQuantity::Traffic(level) => r.traffic_bytes.get(level).copied().unwrap_or(0) as f64,
        GenQuantity::OpTraffic(level, ops) => ops
            .iter()
            .filter_map(|o| r.by_op.get(o))
            .filter_map(|o| o.traffic_bytes.get(level))
            .sum::<u128>() as f64,
    }
}

fn ops(r: &RunReport, einsums: &[String]) -> f64 {
    2.0 * r
        .einsums
        .iter()
        .filter(|e| einsums.contains(&e.name))
        .map(|e| e.points)
        .sum::<f64>()
}

fn quantity(r: &RunReport, q: &Quantity) -> f64 {
    let share = |m: &BTreeMap<String, f64>, of: &[String]| {
        let total: f64 = m.values().sum();
        of.iter().filter_map(|c| m.get(c)).sum::<f64>() / total
    };
    match q {
        Quantity::Cycles => r.cycles as f64,
        Quantity::Traffic(level) => r.traffic_bytes.get(level).copied().unwrap_or(0) as f64,
        Quantity::Ops(es) => ops(r, es),
        Quantity::PowerW => r.energy_pj.total * 1e-12 / r.seconds,
        Quantity::EnergyShare(of) => share(&r.energy_pj.by_component, of),
        Quantity::AreaMm2 => r.area_mm2.values().sum(),
        Quantity::AreaShare(of) => share(&r.area_mm2, of),
    }
}

fn evaluate(
    t: &Target,
    runs: &BTreeMap<String, Result<RunReport, String>>,
    generations: &BTreeMap<String, Result<GenerationReport, String>>,
) -> TargetResult {
    let get = |id: &String| -> Result<&RunReport, String> {
        match runs.get(id) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(format!("run `{id}` failed: {e}")),
            None => Err(format!("no run `{id}` in {TARGETS_PATH}")),
        }
    };
    let get_gen = |id: &String| -> Result<&GenerationReport, String> {
        match generations.get(id) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(format!("generation `{id}` failed: {e}")),
            None => Err(format!("no generation `{id}` in {TARGETS_PATH}")),
        }
    };
    let value = (|| -> Result<f64, String> {
        Ok(match &t.metric {
            Metric::Gops {
                ops_of,
                time_of,
                einsums,
            } => ops(get(ops_of)?, einsums) / get(time_of)?.seconds / 1e9,
            Metric::GopPerJ {
                ops_of,
                energy_of,
                einsums,
            } => ops(get(ops_of)?, einsums) / (get(energy_of)?.energy_pj.total * 1e-12) / 1e9,
            Metric::Ratio {
                num,
                den,
                quantity: q,
            } => quantity(get(num)?, q) / quantity(get(den)?, q),
            Metric::Of { run, quantity: q } => quantity(get(run)?, q),
            Metric::GenRatio {
                num,
                den,
                quantity: q,
            } => gen_quantity(get_gen(num)?, q) / gen_quantity(get_gen(den)?, q),
        })
    })();
    t.judge(value)
}

/// Numbers in reports: 4 significant digits, no exponent for ordinary magnitudes.
fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..9).contains(&mag) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

impl Reproduction {
    pub fn counts(&self) -> (usize, usize, usize) {
        super::targets::tally(&self.results)
    }

    /// `report.md`: the targets with einsim's value and error, then the runs.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let (pass, fail, not) = self.counts();
        let _ = writeln!(o, "# SpAtten (HPCA'21) reproduced by einsim\n");
        let _ = writeln!(
            o,
            "Generated by `einsim reproduce spatten` from `{TARGETS_PATH}`, `arch/spatten.ron`, `arch/spatten-1-8.ron`,\n`workloads/cascades/spatten-*.ron`, `workloads/cascades/topk.ron`, `workloads/layers/spatten-decode.ron` and\n`workloads/models/gpt2-*-gen.ron`. Published numbers are targets, never inputs. Targets: {pass} pass, {fail} FAIL, {not} not evaluated.\n"
        );
        let _ = writeln!(o, "## Targets\n");
        let _ = writeln!(
            o,
            "| target | published | einsim | error | tolerance | status |\n|---|---|---|---|---|---|"
        );
        for r in &self.results {
            let t = &r.target;
            let (v, err) = match r.value {
                Some(v) => (num(v), format!("{:+.1}%", 100.0 * (v - t.value) / t.value)),
                None => ("–".into(), "–".into()),
            };
            let bound = match t.bound {
                Bound::Equal => "±",
                Bound::AtLeast => "≥ −",
                Bound::AtMost => "≤ +",
            };
            let status = r.status.cell();
            let _ = writeln!(
                o,
                "| {} ({}) | {} {} | {} | {} | {}{:.0}% | {} |",
                t.description,
                t.id,
                num(t.value),
                t.unit,
                v,
                err,
                bound,
                100.0 * t.tolerance,
                status
            );
        }
        let _ = writeln!(o, "\n### Sources, misses and notes\n");
        for r in &self.results {
            let t = &r.target;
            let _ = writeln!(o, "- **{}**: {}", t.id, t.source);
            if let Status::NotEvaluated(why) = &r.status {
                let _ = writeln!(o, "  - not evaluated: {why}");
            }
            if r.status == Status::Fail {
                if t.known_disagreement.is_empty() {
                    let _ = writeln!(o, "  - miss, cause not established");
                } else {
                    let _ = writeln!(o, "  - miss: {}", t.known_disagreement);
                }
            }
            if !t.note.is_empty() {
                let _ = writeln!(o, "  - note: {}", t.note);
            }
        }
        let _ = writeln!(o, "\n## Runs\n");
        let _ = writeln!(
            o,
            "| run | arch | cascade | sets | cycles | seconds | HBM bytes | energy (J) | power (W) |\n|---|---|---|---|---|---|---|---|---|"
        );
        for spec in &self.file.runs {
            match &self.runs[&spec.id] {
                Ok(r) => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        spec.id,
                        spec.arch,
                        spec.cascade,
                        spec.sets.join(" "),
                        r.cycles,
                        num(r.seconds),
                        r.traffic_bytes.get("hbm").copied().unwrap_or(0),
                        num(r.energy_pj.total * 1e-12),
                        num(quantity(r, &Quantity::PowerW)),
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | failed: {} |",
                        spec.id,
                        spec.arch,
                        spec.cascade,
                        e.lines().next().unwrap_or("")
                    );
                }
            }
        }
        for spec in &self.file.runs {
            let _ = writeln!(o, "\n- `{}`: {}", spec.id, spec.description);
        }
        let _ = writeln!(o, "\n## Power by component\n");
        for spec in &self.file.runs {
            if let Ok(r) = &self.runs[&spec.id] {
                let parts: Vec<String> = r
                    .energy_pj
                    .by_component
                    .iter()
                    .map(|(c, pj)| format!("{c} {} W", num(pj * 1e-12 / r.seconds)))
                    .collect();
                let _ = writeln!(o, "- `{}`: {}", spec.id, parts.join(", "));
            }
        }
        self.generation_markdown(&mut o);
        let _ = writeln!(
            o,
            "\n## Top-k engine\n\nSelection cycles of the token engine alone (`topk` cascade), seeded quick-select rounds plus the\nfilter pass; `topk.csv` has every point, `topk.png`/`topk.svg` plot them."
        );
        o
    }

    pub fn runs_csv(&self) -> String {
        let mut o =
            String::from("run,arch,cascade,sets,cycles,seconds,hbm_bytes,energy_j,power_w\n");
        for spec in &self.file.runs {
            if let Ok(r) = &self.runs[&spec.id] {
                let _ = writeln!(
                    o,
                    "{},{},{},{},{},{},{},{},{}",
                    spec.id,
                    spec.arch,
                    spec.cascade,
                    spec.sets.join(" "),
                    r.cycles,
                    r.seconds,
                    r.traffic_bytes.get("hbm").copied().unwrap_or(0),
                    r.energy_pj.total * 1e-12,
                    quantity(r, &Quantity::PowerW)
                );
            }
        }
        for r in &self.file.generation.runs {
            if let Some(g) = self.generation_report(&r.id) {
                let _ = writeln!(
                    o,
                    "{},{},{},{},{},{},{},{},{}",
                    r.id,
                    self.file.generation.arch,
                    self.file.generation.layer,
                    self.gen_settings(r),
                    g.cycles,
                    g.seconds,
                    g.traffic_bytes.get("hbm").copied().unwrap_or(0),
                    g.energy_pj * 1e-12,
                    g.energy_pj * 1e-12 / g.seconds
                );
            }
        }
        o
    }

    /// A generation's settings in one line: model, steps, context, schedules and `--set`s.
    fn gen_settings(&self, r: &GenRun) -> String {
        let g = &self.file.generation;
        let mut parts = vec![
            format!("model={}", r.model),
            format!("steps={}", g.steps),
            format!("context={}", g.context),
        ];
        if let Some(t) = r.tokens {
            parts.push(format!("tokens={}", schedule_text(t)));
        }
        if let Some(h) = r.heads {
            parts.push(format!("heads={}", schedule_text(h)));
        }
        parts.extend(r.sets.iter().cloned());
        parts.join(" ")
    }

    fn generation_report(&self, id: &str) -> Option<&GenerationReport> {
        self.generations.get(id).and_then(|r| r.as_ref().ok())
    }

    /// A quantity of generation `num` over the same of `den`, if both ran.
    fn gen_ratio(&self, num: &str, den: &str, q: &GenQuantity) -> Option<f64> {
        Some(
            gen_quantity(self.generation_report(num)?, q)
                / gen_quantity(self.generation_report(den)?, q),
        )
    }

    fn attention_traffic(&self) -> GenQuantity {
        GenQuantity::OpTraffic("hbm".into(), self.file.generation.attention_ops.clone())
    }

    /// The technique ladder on GPT-2 generation: one table per model, each run against its dense run.
    fn generation_markdown(&self, o: &mut String) {
        let g = &self.file.generation;
        let _ = writeln!(
            o,
            "\n## GPT-2 generation: the speedup each technique adds\n\nWhole-model generation (`generation::run_generation`, layer `{}` on arch `{}`): {} tokens after a {}-token\ncontext, every step through every layer (Q, K, V projections, attention, output projection, FFN). A cumulative\nladder on the same hardware, each ratio against the model's dense run; *adds* is the factor the row's technique\nadds (cycles of the run before it over its own; for top-k parallelism, cycles at P = 1 over cycles at P = 16).\nHBM traffic is bytes read and written; *attention* counts the ops the techniques act on ({}), the rest is the\nFC and FFN weights, fetched at 12 bits once per layer and step whatever the pruning. `tokens` and `heads` are\npruning schedules FRONT/START/END in percent (`einsim generate --tokens FRONT,START,END`). `generation.png` and\n`generation.svg` plot the ladder; `runs.csv` has each run.\n",
            g.layer,
            g.arch,
            g.steps,
            g.context,
            g.attention_ops.join(", ")
        );
        let att = self.attention_traffic();
        let mut models: Vec<&str> = Vec::new();
        for r in &g.runs {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        for m in models {
            let _ = writeln!(
                o,
                "### {m}\n\n| run | technique | cycles | ms per token | speedup vs dense | adds | HBM reduction | attention HBM reduction | attention share of cycles |\n|---|---|---|---|---|---|---|---|---|"
            );
            for r in g.runs.iter().filter(|r| r.model == m) {
                let Some(rep) = self.generation_report(&r.id) else {
                    let why = match self.generations.get(&r.id) {
                        Some(Err(e)) => e.lines().next().unwrap_or("").to_string(),
                        _ => "not run".into(),
                    };
                    let _ = writeln!(o, "| {} | {} | failed: {why} |", r.id, r.technique);
                    continue;
                };
                let ratio = |a: &str, b: &str, q: &GenQuantity| {
                    self.gen_ratio(a, b, q)
                        .map_or("–".to_string(), |v| format!("{}x", num(v)))
                };
                let adds = r.adds.as_ref().map_or("–".to_string(), |(a, b)| {
                    ratio(a, b, &GenQuantity::Cycles)
                });
                let att_cycles: u64 = g
                    .attention_ops
                    .iter()
                    .filter_map(|op| rep.by_op.get(op))
                    .map(|t| t.cycles)
                    .sum();
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% |",
                    r.id,
                    r.technique,
                    rep.cycles,
                    num(rep.seconds * 1e3 / g.steps as f64),
                    ratio(&r.dense, &r.id, &GenQuantity::Cycles),
                    adds,
                    ratio(&r.dense, &r.id, &GenQuantity::Traffic("hbm".into())),
                    ratio(&r.dense, &r.id, &att),
                    100.0 * att_cycles as f64 / rep.cycles.max(1) as f64,
                );
            }
            let _ = writeln!(o);
        }
        for r in &g.runs {
            let _ = writeln!(
                o,
                "- `{}` ({}): {}",
                r.id,
                self.gen_settings(r),
                r.description
            );
        }
    }

    /// The technique ladder: per model, speedup and attention traffic reduction of each run against dense.
    pub fn generation_figure(&self) -> Figure {
        let g = &self.file.generation;
        let att = self.attention_traffic();
        let mut models: Vec<&str> = Vec::new();
        for r in &g.runs {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        // Bars stack their segments, so each quantity gets its own panel: per model, the speedup, then the
        // attention traffic reduction.
        let quantities = [
            (
                "speedup vs dense",
                "end-to-end speedup",
                GenQuantity::Cycles,
            ),
            ("attention HBM reduction", "attention HBM reduction", att),
        ];
        let mut panels = Vec::new();
        for &m in &models {
            for (series, what, q) in &quantities {
                let bars = g
                    .runs
                    .iter()
                    .filter(|r| r.model == m)
                    .map(|r| {
                        let v = self.gen_ratio(&r.dense, &r.id, q).unwrap_or(0.0);
                        (r.technique.clone(), vec![(series.to_string(), v)])
                    })
                    .collect();
                panels.push(Panel::Bars(BarChart {
                    title: format!("{m}: {what}"),
                    y_label: "x dense".into(),
                    bars,
                    reference: Some(1.0),
                    headroom: 1.15,
                }));
            }
        }
        Figure {
            title: "SpAtten on GPT-2 generation: each technique against the dense run".into(),
            panels,
            cols: 2,
            panel_size: (640, 400),
            shared_legend: true,
        }
    }

    pub fn topk_csv(&self) -> String {
        let mut o = String::from("n,k,lanes,cycles\n");
        for p in &self.topk {
            let _ = writeln!(o, "{},{},{},{}", p.n, p.k, p.lanes, p.cycles);
        }
        o
    }

    /// Top-k cycles against n, one panel per k = n / d, one line per P.
    pub fn topk_figure(&self) -> Figure {
        let panels = self
            .file
            .topk
            .k_divisors
            .iter()
            .map(|&d| {
                let series = self
                    .file
                    .topk
                    .lanes
                    .iter()
                    .map(|&p| Series {
                        name: format!("P = {p}"),
                        points: self
                            .topk
                            .iter()
                            .filter(|t| t.lanes == p && t.k == (t.n / d).max(1))
                            .map(|t| (t.n as f64, t.cycles as f64))
                            .collect(),
                    })
                    .collect();
                Panel::Line(LineChart {
                    title: format!("k = n/{d}"),
                    x_label: "n".into(),
                    y_label: "cycles".into(),
                    x_axis: XAxis::Log2,
                    series,
                    reference: None,
                    legend: Corner::UpperLeft,
                    headroom: 1.1,
                })
            })
            .collect();
        Figure {
            title: "SpAtten top-k engine: selection cycles vs n".into(),
            panels,
            cols: 2,
            panel_size: (480, 360),
            shared_legend: true,
        }
    }
}
