//! Reproductions of published results: run every design × model × sequence length (attention alone and the
//! end-to-end encoder layer), then compare to the paper's numbers, which live as data in a targets file
//! ([`targets`]). Computing is pure library code returning a typed [`Reproduction`]; rendering ([`render`],
//! [`figures`]) turns it into text and plot descriptions; [`write`] is the one place that writes files, and only
//! the CLI calls it.
//!
//! A design is an arch file name. Designs whose arch is not shipped are recorded as missing rather than failing
//! the reproduction, so adding `arch/<design>.ron` is all it takes to bring one in.

pub mod figures;
pub mod render;
pub mod spatten;
pub mod targets;
pub mod write;

use crate::diag::SourceFile;
use crate::library::Kind;
use crate::progress::Progress;
use crate::report::RunReport;
use crate::run::{self, RunError};
use crate::sim::SimOptions;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A thread-safe file lookup (rayon runs points in parallel); [`crate::library::get`] is one.
pub type SyncLookup<'a> = &'a (dyn Fn(Kind, &str) -> Option<SourceFile> + Sync);

/// One design under comparison: an arch name and how tables and plots call it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Design {
    pub arch: String,
    pub label: String,
    pub description: String,
}

/// What to run; part of the targets file (data), e.g. the FuseMax evaluation of MICRO'24 §VI: five designs,
/// four models, 1K…1M tokens, batch 64 (the models' default).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    pub designs: Vec<Design>,
    pub models: Vec<String>,
    pub lengths: Vec<i64>,
    /// Also run the end-to-end encoder layer at every point.
    pub layer: bool,
    /// The designs (arch names) that speedups and energy ratios are taken against, in table-column order.
    pub baselines: Vec<String>,
    /// The baseline of the plots' ratios: the first of these designs that ran.
    pub plot_against: Vec<String>,
    /// Energy actions (`component:action`) whose share of each run's energy the tables and CSV report.
    #[serde(default)]
    pub energy_shares: Vec<String>,
    /// An area–latency study over array sizes, if the paper has one.
    #[serde(default)]
    pub array_study: Option<ArrayStudy>,
    /// Disagreements with published values that no target here can show (the per-point values are withheld),
    /// as (topic, explanation), each with its cause; rendered after the validation table.
    #[serde(default)]
    pub notes: Vec<(String, String)>,
}

/// One design at one length on square 2D arrays of several sizes: every arch parameter in `params` is set to the
/// size (the 2D array's rows and columns, the 1D array's lanes), and the binding decides the tiles.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayStudy {
    pub design: String,
    pub models: Vec<String>,
    pub seq: i64,
    pub sizes: Vec<i64>,
    pub params: Vec<String>,
}

/// One point of the array study.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StudyPoint {
    pub model: String,
    pub size: i64,
    pub result: Result<RunSummary, Failure>,
}

impl StudyPoint {
    /// On the model's Pareto front of (area, latency): no other point of the model is at most as large and at
    /// most as slow, and better in one.
    pub fn pareto(&self, all: &[StudyPoint]) -> bool {
        let Ok(r) = &self.result else {
            return false;
        };
        !all.iter()
            .filter(|p| p.model == self.model)
            .filter_map(|p| p.result.as_ref().ok())
            .any(|o| {
                o.area_mm2 <= r.area_mm2
                    && o.seconds <= r.seconds
                    && (o.area_mm2 < r.area_mm2 || o.seconds < r.seconds)
            })
    }
}

impl Plan {
    /// The FuseMax evaluation, as written in `fusemax_targets.ron`.
    pub fn fusemax() -> Plan {
        targets::fusemax().plan
    }

    /// Every baseline must be one of the plan's designs.
    pub fn check(&self) -> Result<(), String> {
        for b in self.baselines.iter().chain(&self.plot_against) {
            if !self.designs.iter().any(|d| &d.arch == b) {
                return Err(format!(
                    "plan `{}`: baseline `{b}` is not one of its designs",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// How tables and plots call a design: its label, or the arch name when it is not in the plan.
    pub fn label<'a>(&'a self, arch: &'a str) -> &'a str {
        self.designs
            .iter()
            .find(|d| d.arch == arch)
            .map_or(arch, |d| d.label.as_str())
    }
}

/// The numbers of one attention run that the reproduction reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunSummary {
    pub cascade: String,
    pub cycles: u64,
    pub seconds: f64,
    pub utilization: BTreeMap<String, f64>,
    pub traffic_bytes: BTreeMap<String, u128>,
    pub energy_pj: f64,
    pub energy_by_component: BTreeMap<String, f64>,
    pub energy_by_action: BTreeMap<String, f64>,
    /// Total chip area, mm².
    pub area_mm2: f64,
    pub mapping: BTreeMap<String, u64>,
    pub limiter: String,
    pub bound_ratio: f64,
}

impl RunSummary {
    /// The fraction of this run's energy spent on `action` (`component:action`).
    pub fn energy_share(&self, action: &str) -> f64 {
        self.energy_by_action.get(action).copied().unwrap_or(0.0)
            / self.energy_pj.max(f64::MIN_POSITIVE)
    }
}

impl From<&RunReport> for RunSummary {
    fn from(r: &RunReport) -> RunSummary {
        RunSummary {
            cascade: r.cascade.clone(),
            cycles: r.cycles,
            seconds: r.seconds,
            utilization: r.utilization.clone(),
            traffic_bytes: r.traffic_bytes.clone(),
            energy_pj: r.energy_pj.total,
            energy_by_component: r.energy_pj.by_component.clone(),
            energy_by_action: r.energy_pj.by_action.clone(),
            area_mm2: r.area_mm2.values().sum(),
            mapping: r.mapping.clone(),
            limiter: r.bound.limiter.clone(),
            bound_ratio: r.bound.ratio,
        }
    }
}

/// The numbers of one end-to-end layer run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerSummary {
    pub cycles: u64,
    pub seconds: f64,
    pub energy_pj: f64,
    pub energy_by_component: BTreeMap<String, f64>,
    /// Each op's latency (s) and energy (pJ), in layer order.
    pub parts: Vec<(String, f64, f64)>,
}

/// Whether a point is attention alone or the whole layer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Attention,
    Layer,
}

/// A failed run, kept as text so the report can show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failure {
    pub message: String,
    /// An engine bug (exit 3) rather than an input the design cannot run.
    pub internal: bool,
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        let internal = matches!(e, RunError::Internal(_));
        let text = e.to_string();
        // Diagnostics render with source excerpts; the first line names the problem.
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("unknown error");
        let message = line.strip_prefix("error: ").unwrap_or(line).to_string();
        Failure { message, internal }
    }
}

/// One simulated point.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point<T> {
    pub design: String,
    pub model: String,
    pub seq: i64,
    pub result: Result<T, Failure>,
}

impl<T> Point<T> {
    fn new(design: &str, model: &str, seq: i64, result: Result<T, Failure>) -> Point<T> {
        Point {
            design: design.into(),
            model: model.into(),
            seq,
            result,
        }
    }
}

/// Everything a reproduction computed, in plan order (design, model, length), so rendering is deterministic.
#[derive(Clone, Debug, Serialize)]
pub struct Reproduction {
    pub plan: Plan,
    /// Designs of the plan whose arch is not shipped, with the reason.
    pub missing: Vec<(String, String)>,
    pub runs: Vec<Point<RunSummary>>,
    pub layers: Vec<Point<LayerSummary>>,
    /// The targets evaluated again under each what-if variant of the targets file.
    pub variants: Vec<targets::VariantResult>,
    /// The array study's points (model, size), in plan order.
    pub study: Vec<StudyPoint>,
}

impl Reproduction {
    pub fn available(&self, design: &str) -> bool {
        self.plan.designs.iter().any(|d| d.arch == design)
            && !self.missing.iter().any(|m| m.0 == design)
    }

    pub fn run(&self, design: &str, model: &str, seq: i64) -> Option<&Point<RunSummary>> {
        self.runs
            .iter()
            .find(|p| p.design == design && p.model == model && p.seq == seq)
    }

    pub fn layer(&self, design: &str, model: &str, seq: i64) -> Option<&Point<LayerSummary>> {
        self.layers
            .iter()
            .find(|p| p.design == design && p.model == model && p.seq == seq)
    }

    /// Latency (s) and energy (pJ) of a successful point in either scope.
    pub fn cost(&self, scope: Scope, design: &str, model: &str, seq: i64) -> Option<(f64, f64)> {
        match scope {
            Scope::Attention => self
                .run(design, model, seq)
                .and_then(|p| p.result.as_ref().ok())
                .map(|r| (r.seconds, r.energy_pj)),
            Scope::Layer => self
                .layer(design, model, seq)
                .and_then(|p| p.result.as_ref().ok())
                .map(|r| (r.seconds, r.energy_pj)),
        }
    }

    /// Speedup of `of` over `over` (latency ratio over/of) and energy ratio (of/over) at one point.
    pub fn relative(
        &self,
        scope: Scope,
        of: &str,
        over: &str,
        model: &str,
        seq: i64,
    ) -> Option<(f64, f64)> {
        let (a, b) = (
            self.cost(scope, of, model, seq)?,
            self.cost(scope, over, model, seq)?,
        );
        Some((b.0 / a.0, a.1 / b.1))
    }

    /// Arithmetic means of the per-point speedups and energy ratios over every (model, length) of the plan where
    /// both designs ran, and how many points that was.
    pub fn mean_relative(&self, scope: Scope, of: &str, over: &str) -> Option<(f64, f64, usize)> {
        let pts: Vec<(f64, f64)> = self
            .points()
            .filter_map(|(m, s)| self.relative(scope, of, over, m, s))
            .collect();
        if pts.is_empty() {
            return None;
        }
        let n = pts.len() as f64;
        Some((
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
            pts.len(),
        ))
    }

    /// Every (model, length) of the plan, in plan order.
    pub fn points(&self) -> impl Iterator<Item = (&str, i64)> {
        self.plan
            .models
            .iter()
            .flat_map(|m| self.plan.lengths.iter().map(move |&s| (m.as_str(), s)))
    }

    /// Failed points, attention first.
    pub fn failures(&self) -> Vec<(Scope, &str, &str, i64, &Failure)> {
        let a = self.runs.iter().filter_map(|p| {
            p.result.as_ref().err().map(|e| {
                (
                    Scope::Attention,
                    p.design.as_str(),
                    p.model.as_str(),
                    p.seq,
                    e,
                )
            })
        });
        let l = self.layers.iter().filter_map(|p| {
            p.result
                .as_ref()
                .err()
                .map(|e| (Scope::Layer, p.design.as_str(), p.model.as_str(), p.seq, e))
        });
        a.chain(l).collect()
    }

    /// Whether any run hit an engine bug.
    pub fn has_internal_error(&self) -> bool {
        self.failures().iter().any(|f| f.4.internal)
    }
}

/// Run the plan: every point of every available design, in parallel. Never fails as a whole; failures are
/// recorded per point. `progress` counts the points as they finish.
pub fn reproduce(
    plan: &Plan,
    lookup: SyncLookup,
    opts: SimOptions,
    progress: &dyn Progress,
) -> Reproduction {
    let jobs = Jobs::of(plan, lookup);
    progress.start((jobs.points.len() + Jobs::study_points(plan).len()) as u64);
    jobs.run(plan, lookup, opts, progress)
}

/// The points a plan runs, and the designs it cannot.
struct Jobs<'p> {
    missing: Vec<(String, String)>,
    points: Vec<(Scope, &'p str, &'p str, i64)>,
}

impl<'p> Jobs<'p> {
    fn of(plan: &'p Plan, lookup: SyncLookup) -> Jobs<'p> {
        let mut missing = Vec::new();
        let mut points = Vec::new();
        for d in &plan.designs {
            if lookup(Kind::Arch, &d.arch).is_none() {
                missing.push((
                    d.arch.clone(),
                    format!(
                        "design `{}` not available: no arch file `arch/{}.ron`",
                        d.arch, d.arch
                    ),
                ));
                continue;
            }
            let scopes: &[Scope] = if plan.layer {
                &[Scope::Attention, Scope::Layer]
            } else {
                &[Scope::Attention]
            };
            for &scope in scopes {
                for m in &plan.models {
                    for &s in &plan.lengths {
                        points.push((scope, d.arch.as_str(), m.as_str(), s));
                    }
                }
            }
        }
        Jobs { missing, points }
    }

    fn run(
        self,
        plan: &Plan,
        lookup: SyncLookup,
        opts: SimOptions,
        progress: &dyn Progress,
    ) -> Reproduction {
        let results: Vec<Result<Outcome, Failure>> = self
            .points
            .par_iter()
            .map(|&(scope, design, model, seq)| {
                let r = run_point(scope, design, model, seq, lookup, opts);
                progress.inc();
                r
            })
            .collect();
        let mut runs = Vec::new();
        let mut layers = Vec::new();
        for (&(scope, design, model, seq), result) in self.points.iter().zip(results) {
            match (scope, result) {
                (_, Ok(Outcome::Run(r))) => runs.push(Point::new(design, model, seq, Ok(r))),
                (_, Ok(Outcome::Layer(r))) => layers.push(Point::new(design, model, seq, Ok(r))),
                (Scope::Attention, Err(e)) => runs.push(Point::new(design, model, seq, Err(e))),
                (Scope::Layer, Err(e)) => layers.push(Point::new(design, model, seq, Err(e))),
            }
        }
        Reproduction {
            plan: plan.clone(),
            missing: self.missing,
            runs,
            layers,
            variants: Vec::new(),
            study: Self::study(plan, lookup, opts, progress),
        }
    }

    fn study_points(plan: &Plan) -> Vec<(&str, i64)> {
        plan.array_study.as_ref().map_or(Vec::new(), |a| {
            a.models
                .iter()
                .flat_map(|m| a.sizes.iter().map(move |&n| (m.as_str(), n)))
                .collect()
        })
    }

    fn study(
        plan: &Plan,
        lookup: SyncLookup,
        opts: SimOptions,
        progress: &dyn Progress,
    ) -> Vec<StudyPoint> {
        let Some(a) = &plan.array_study else {
            return Vec::new();
        };
        Self::study_points(plan)
            .par_iter()
            .map(|&(model, n)| {
                let mut sets = vec![format!("seq={}", a.seq)];
                sets.extend(a.params.iter().map(|p| format!("{p}={n}")));
                let result = match (lookup(Kind::Arch, &a.design), lookup(Kind::Model, model)) {
                    (Some(arch), Some(m)) => run::run(&arch, Some(&m), None, &sets, lookup, opts)
                        .map(|r| RunSummary::from(&r))
                        .map_err(Failure::from),
                    _ => Err(Failure {
                        message: format!("no arch `{}` or model `{model}`", a.design),
                        internal: false,
                    }),
                };
                progress.inc();
                StudyPoint {
                    model: model.to_string(),
                    size: n,
                    result,
                }
            })
            .collect()
    }
}

enum Outcome {
    Run(RunSummary),
    Layer(LayerSummary),
}

fn run_point(
    scope: Scope,
    design: &str,
    model: &str,
    seq: i64,
    lookup: SyncLookup,
    opts: SimOptions,
) -> Result<Outcome, Failure> {
    let arch = lookup(Kind::Arch, design).ok_or_else(|| Failure {
        message: format!("no arch `{design}`"),
        internal: false,
    })?;
    let model_file = lookup(Kind::Model, model).ok_or_else(|| Failure {
        message: format!("no model `{model}`"),
        internal: false,
    })?;
    let sets = [format!("seq={seq}")];
    match scope {
        Scope::Attention => run::run(&arch, Some(&model_file), None, &sets, lookup, opts)
            .map(|r| Outcome::Run(RunSummary::from(&r)))
            .map_err(Failure::from),
        Scope::Layer => run_layer(&arch, &model_file, &sets, lookup, opts)
            .map(Outcome::Layer)
            .map_err(Failure::from),
    }
}

/// The adapter to the end-to-end layer model ([`crate::layer`]), kept in one place so a change there is a
/// one-line change here.
fn run_layer(
    arch: &SourceFile,
    model: &SourceFile,
    sets: &[String],
    lookup: SyncLookup,
    opts: SimOptions,
) -> Result<LayerSummary, RunError> {
    let layer = lookup(Kind::Layer, "encoder")
        .ok_or_else(|| RunError::Mapping("no `encoder` layer shipped".into()))?;
    let r = crate::layer::run_layer_file(&layer, arch, model, sets, lookup, opts)?;
    Ok(LayerSummary {
        cycles: r.cycles,
        seconds: r.seconds,
        energy_pj: r.energy_pj,
        energy_by_component: r.energy_by_component,
        parts: r
            .parts
            .iter()
            .map(|(n, p)| (n.clone(), p.seconds, p.energy_pj.total))
            .collect(),
    })
}

/// Reproductions the CLI knows by name.
pub const NAMES: &[&str] = &["fusemax", "spatten"];

/// Run a named reproduction and evaluate its targets; `None` for an unknown name. `progress` counts every run,
/// the what-if variants' included.
pub fn by_name(
    name: &str,
    lookup: SyncLookup,
    opts: SimOptions,
    progress: &dyn Progress,
) -> Option<(Reproduction, Vec<targets::TargetResult>)> {
    let file = match name {
        "fusemax" => targets::fusemax(),
        _ => return None,
    };
    Some(run_targets(&file, &file.plan, lookup, opts, progress))
}

/// Run `plan` (the file's own or a subset of it), evaluate the file's targets, and do both again under each of
/// its what-if variants. `progress` learns the total (the plan's points once, and once more per variant that
/// can run) before the first run starts.
pub fn run_targets(
    file: &targets::TargetFile,
    plan: &Plan,
    lookup: SyncLookup,
    opts: SimOptions,
    progress: &dyn Progress,
) -> (Reproduction, Vec<targets::TargetResult>) {
    // A variant swaps energy tables only, so it runs the same points as the plan.
    let swaps: Vec<_> = file
        .variants
        .iter()
        .map(|v| energy_swaps(v, lookup))
        .collect();
    let jobs = Jobs::of(plan, lookup);
    let runs = 1 + swaps.iter().filter(|s| s.is_ok()).count() as u64;
    progress.start((jobs.points.len() + Jobs::study_points(plan).len()) as u64 * runs);
    let mut rep = jobs.run(plan, lookup, opts, progress);
    let results = targets::evaluate(file, &rep);
    for (variant, swaps) in file.variants.iter().zip(swaps) {
        let outcome = swaps.map(|swaps| {
            let swapped = |kind: Kind, name: &str| match (kind, swaps.get(name)) {
                (Kind::Energy, Some(file)) => Some(file.clone()),
                _ => lookup(kind, name),
            };
            let rep = Jobs::of(plan, &swapped).run(plan, &swapped, opts, progress);
            targets::evaluate(file, &rep)
        });
        rep.variants.push(targets::VariantResult {
            variant: variant.clone(),
            outcome,
        });
    }
    (rep, results)
}

/// A variant's replacement energy tables, each resolved over its `base` chain (which may include the very table
/// it replaces) and handed out as a self-contained file under the replaced name.
fn energy_swaps(
    variant: &targets::Variant,
    lookup: SyncLookup,
) -> Result<BTreeMap<String, SourceFile>, String> {
    let mut swaps = BTreeMap::new();
    for (from, to) in &variant.energy {
        let file = lookup(Kind::Energy, to)
            .ok_or_else(|| format!("variant `{}`: no energy table `{to}`", variant.name))?;
        let mut table = crate::arch::load_energy_resolved(&file, &|n| lookup(Kind::Energy, n))
            .map_err(|d| format!("variant `{}`: {}", variant.name, d.render()))?;
        table.base = None;
        let text = ron::ser::to_string_pretty(&table, Default::default())
            .map_err(|e| format!("variant `{}`: {e}", variant.name))?;
        swaps.insert(from.clone(), SourceFile::new(file.name.as_str(), text));
    }
    Ok(swaps)
}
