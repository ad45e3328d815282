//! Published numbers as data. Each target names the einsim quantity it is compared to (a [`Metric`]), the value,
//! a relative tolerance and where the number comes from. A target that einsim misses keeps failing until someone
//! either fixes the model or writes down why the two differ in `known_disagreement`; that text is never filled
//! in just to make a check pass.

use super::{Reproduction, RunSummary, Scope};
use serde::{Deserialize, Serialize};

/// The FuseMax targets (MICRO'24 §VI; reference notes fusemax.md §4), embedded so the binary carries them.
pub const FUSEMAX: &str = include_str!("fusemax_targets.ron");

/// Path of [`FUSEMAX`] in the repository, for messages.
pub const FUSEMAX_PATH: &str = "src/reproduce/fusemax_targets.ron";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Targets")]
pub struct TargetFile {
    pub name: String,
    pub description: String,
    /// What to run: the designs, models and lengths the targets are measured on.
    pub plan: super::Plan,
    pub targets: Vec<Target>,
    /// What-if runs of the whole plan with other inputs, whose target results the report shows next to the
    /// main ones: which published numbers depend on an input einsim had to choose.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// The plan run again with some energy tables replaced by others (`arch/energy/*.ron`), e.g. a table that
/// amends one price through its `base`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub description: String,
    /// Energy table name → the table used in its place.
    pub energy: std::collections::BTreeMap<String, String>,
}

/// A variant's target results, or why it could not run (a replacement table that is missing or invalid).
#[derive(Clone, Debug, Serialize)]
pub struct VariantResult {
    pub variant: Variant,
    pub outcome: Result<Vec<TargetResult>, String>,
}

/// One published number and the einsim quantity it is compared to: the one target type of every reproduction
/// (FuseMax's [`Metric`]s over the plan's runs, SpAtten's and FA4's over theirs), so that all of them share the
/// pass rule ([`Target::judge`]) and the rule that a miss stays a miss until its cause is written down.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target<M = Metric> {
    pub id: String,
    pub description: String,
    pub metric: M,
    pub value: f64,
    pub unit: String,
    /// Relative tolerance, e.g. 0.02 for 2%.
    pub tolerance: f64,
    #[serde(default)]
    pub bound: Bound,
    pub source: String,
    /// Why einsim's number differs from the paper's, when that is understood. Empty by default.
    #[serde(default)]
    pub known_disagreement: String,
    /// A caveat shown whatever the result, e.g. when a target passes for reasons that may differ from the paper's.
    #[serde(default)]
    pub note: String,
}

/// Whether the target is a value to match or a bound to respect.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Bound {
    /// |einsim − target| ≤ tolerance × |target|.
    #[default]
    Equal,
    /// einsim ≥ target × (1 − tolerance).
    AtLeast,
    /// einsim ≤ target × (1 + tolerance).
    AtMost,
}

impl Bound {
    /// Whether einsim's `value` meets `target` within the relative `tolerance` this way: the one pass rule of
    /// every reproduction's targets.
    pub fn admits(self, value: f64, target: f64, tolerance: f64) -> bool {
        match self {
            Bound::Equal => (value - target).abs() <= tolerance * target.abs(),
            Bound::AtLeast => value >= target * (1.0 - tolerance),
            Bound::AtMost => value <= target * (1.0 + tolerance),
        }
    }
}

/// What einsim quantity a target is compared to.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum Metric {
    /// A number from one attention run.
    Run {
        design: String,
        model: String,
        seq: i64,
        quantity: Quantity,
    },
    /// The arithmetic mean over (model, length) points of a per-point ratio between two designs. Empty `models`
    /// or `lengths` mean all of the plan's. Every listed point must have run for the target to be evaluated.
    Mean {
        ratio: Ratio,
        of: String,
        over: String,
        scope: Scope,
        #[serde(default)]
        models: Vec<String>,
        #[serde(default)]
        lengths: Vec<i64>,
    },
    /// Total chip area of `of` divided by that of `over`.
    AreaRatio { of: String, over: String },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum Quantity {
    /// Busy fraction of a compute unit.
    Utilization(String),
    LatencyMs,
    /// Bytes read plus written at a storage level.
    TrafficBytes(String),
    /// Share of total energy spent in one `component:action`.
    EnergyShare(String),
}

/// `Speedup` = latency(over) / latency(of); `Energy` = energy(of) / energy(over).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Ratio {
    Speedup,
    Energy,
}

/// The outcome of one target.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub enum Status {
    Pass,
    Fail,
    /// Could not be computed (a design is missing or a run failed); says why.
    NotEvaluated(String),
}

impl Status {
    /// The word every report's target table shows; a failure is bold so it stands out of a column of passes.
    pub fn cell(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "**FAIL**",
            Status::NotEvaluated(_) => "not evaluated",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetResult<M = Metric> {
    pub target: Target<M>,
    pub value: Option<f64>,
    /// (einsim − target) / target.
    pub rel_error: Option<f64>,
    pub status: Status,
}

impl<M: Clone> Target<M> {
    /// This target against einsim's value, or against why einsim has none.
    pub fn judge(&self, value: Result<f64, String>) -> TargetResult<M> {
        let (value, status) = match value {
            Ok(v) if self.bound.admits(v, self.value, self.tolerance) => (Some(v), Status::Pass),
            Ok(v) => (Some(v), Status::Fail),
            Err(why) => (None, Status::NotEvaluated(why)),
        };
        TargetResult {
            target: self.clone(),
            value,
            rel_error: value.map(|v| (v - self.value) / self.value),
            status,
        }
    }
}

/// (pass, fail, not evaluated) over a reproduction's results: the one tally every summary line and report prints.
pub fn tally<M>(results: &[TargetResult<M>]) -> (usize, usize, usize) {
    let n = |f: fn(&Status) -> bool| results.iter().filter(|r| f(&r.status)).count();
    (
        n(|s| *s == Status::Pass),
        n(|s| *s == Status::Fail),
        n(|s| matches!(s, Status::NotEvaluated(_))),
    )
}

impl<M> TargetResult<M> {
    /// Within tolerance, or a failure whose cause is written down.
    pub fn accounted_for(&self) -> bool {
        match self.status {
            Status::Pass | Status::NotEvaluated(_) => true,
            Status::Fail => !self.target.known_disagreement.trim().is_empty(),
        }
    }
}

/// Parse a targets file.
pub fn parse(text: &str) -> Result<TargetFile, String> {
    let file: TargetFile = ron::from_str(text).map_err(|e| e.to_string())?;
    file.plan.check()?;
    Ok(file)
}

/// The embedded FuseMax targets. They are checked by a unit test, so this cannot fail in a release.
pub fn fusemax() -> TargetFile {
    parse(FUSEMAX).unwrap_or_else(|e| panic!("{FUSEMAX_PATH}: {e}"))
}

/// Compare every target to the reproduction.
pub fn evaluate(file: &TargetFile, rep: &Reproduction) -> Vec<TargetResult> {
    file.targets
        .iter()
        .map(|t| t.judge(measure(&t.metric, rep)))
        .collect()
}

fn need(rep: &Reproduction, design: &str) -> Result<(), String> {
    if rep.available(design) {
        Ok(())
    } else {
        Err(format!("design `{design}` not available"))
    }
}

fn attention<'a>(
    rep: &'a Reproduction,
    design: &str,
    model: &str,
    seq: i64,
) -> Result<&'a RunSummary, String> {
    need(rep, design)?;
    match rep.run(design, model, seq) {
        None => Err(format!("{design} {model} seq={seq} is not in the plan")),
        Some(p) => p
            .result
            .as_ref()
            .map_err(|e| format!("{design} {model} seq={seq} failed: {}", e.message)),
    }
}

/// einsim's value for a metric, or why it has none.
pub fn measure(m: &Metric, rep: &Reproduction) -> Result<f64, String> {
    match m {
        Metric::Run {
            design,
            model,
            seq,
            quantity,
        } => {
            let r = attention(rep, design, model, *seq)?;
            match quantity {
                Quantity::Utilization(u) => r
                    .utilization
                    .get(u)
                    .copied()
                    .ok_or_else(|| format!("{design} has no unit `{u}`")),
                Quantity::LatencyMs => Ok(r.seconds * 1e3),
                Quantity::TrafficBytes(l) => r
                    .traffic_bytes
                    .get(l)
                    .map(|&b| b as f64)
                    .ok_or_else(|| format!("{design} has no traffic at `{l}`")),
                Quantity::EnergyShare(a) => Ok(r.energy_share(a)),
            }
        }
        Metric::Mean {
            ratio,
            of,
            over,
            scope,
            models,
            lengths,
        } => {
            need(rep, of)?;
            need(rep, over)?;
            let models: Vec<&str> = if models.is_empty() {
                rep.plan.models.iter().map(String::as_str).collect()
            } else {
                models.iter().map(String::as_str).collect()
            };
            let lengths = if lengths.is_empty() {
                &rep.plan.lengths
            } else {
                lengths
            };
            let mut vals = Vec::new();
            for m in &models {
                for &s in lengths {
                    let (speedup, energy) = rep
                        .relative(*scope, of, over, m, s)
                        .ok_or_else(|| missing_point(rep, *scope, of, over, m, s))?;
                    vals.push(match ratio {
                        Ratio::Speedup => speedup,
                        Ratio::Energy => energy,
                    });
                }
            }
            if vals.is_empty() {
                return Err("no points selected".into());
            }
            Ok(vals.iter().sum::<f64>() / vals.len() as f64)
        }
        Metric::AreaRatio { of, over } => {
            let area = |d: &str| -> Result<f64, String> {
                need(rep, d)?;
                rep.runs
                    .iter()
                    .filter(|p| p.design == d)
                    .find_map(|p| p.result.as_ref().ok())
                    .map(|r| r.area_mm2)
                    .ok_or_else(|| format!("no run of `{d}` succeeded"))
            };
            Ok(area(of)? / area(over)?)
        }
    }
}

fn missing_point(
    rep: &Reproduction,
    scope: Scope,
    of: &str,
    over: &str,
    m: &str,
    s: i64,
) -> String {
    let what = match scope {
        Scope::Attention => "attention",
        Scope::Layer => "layer",
    };
    for d in [of, over] {
        let err = match scope {
            Scope::Attention => rep
                .run(d, m, s)
                .map(|p| p.result.as_ref().err().map(|e| e.message.clone())),
            Scope::Layer => rep
                .layer(d, m, s)
                .map(|p| p.result.as_ref().err().map(|e| e.message.clone())),
        };
        match err {
            None => return format!("{what} point {d} {m} seq={s} is not in the plan"),
            Some(Some(e)) => return format!("{what} run {d} {m} seq={s} failed: {e}"),
            Some(None) => {}
        }
    }
    format!("{what} point {m} seq={s} missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusemax_targets_parse_and_are_unique() {
        let f = fusemax();
        assert!(f.targets.len() >= 19);
        let mut ids: Vec<&str> = f.targets.iter().map(|t| t.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), f.targets.len(), "duplicate target ids");
        for t in &f.targets {
            assert!(t.tolerance > 0.0 && t.tolerance < 1.0, "{}", t.id);
            assert!(!t.source.is_empty(), "{}", t.id);
        }
    }

    #[test]
    fn bounds() {
        let mut t = fusemax().targets[0].clone();
        t.value = 1.0;
        t.tolerance = 0.02;
        t.bound = Bound::Equal;
        assert_eq!(t.judge(Ok(1.019)).status, Status::Pass);
        assert_eq!(t.judge(Ok(0.979)).status, Status::Fail);
        t.bound = Bound::AtLeast;
        assert_eq!(t.judge(Ok(5.0)).status, Status::Pass);
        assert_eq!(t.judge(Ok(0.97)).status, Status::Fail);
        t.bound = Bound::AtMost;
        assert_eq!(t.judge(Ok(0.1)).status, Status::Pass);
        assert_eq!(t.judge(Ok(1.03)).status, Status::Fail);
        let missing = t.judge(Err("no run".into()));
        assert_eq!(missing.status, Status::NotEvaluated("no run".into()));
        assert!(missing.accounted_for() && missing.value.is_none());
    }
}
