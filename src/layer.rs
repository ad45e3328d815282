//! The end-to-end layer: a sequence of cascades (the design's attention plus GEMMs for the linear layers), each
//! run through the same engine with the arch's binding for that cascade. Ops run one after another, so latency and
//! energy add up.

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::expr::SizeExpr;
use crate::library::Kind;
use crate::report::RunReport;
use crate::run::{self, Lookup, RunError};
use crate::sim::SimOptions;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A layer file (`workloads/layers/*.ron`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Layer")]
pub struct LayerFile {
    pub name: String,
    pub description: String,
    pub source: String,
    pub ops: Vec<LayerOp>,
}

/// One op: a cascade (`None` = the arch's default, its attention) and its parameters as expressions over the
/// model's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerOp {
    pub name: String,
    pub cascade: Option<String>,
    pub params: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    pub cycles: u64,
    pub seconds: f64,
    pub energy_pj: f64,
    pub energy_by_component: BTreeMap<String, f64>,
    /// Each op's own report, in order.
    pub parts: Vec<(String, RunReport)>,
}

pub fn load_layer(file: &SourceFile) -> Result<LayerFile, Diagnostics> {
    crate::cascade::parse_ron_as(file, "`Layer(...)`").map_err(|d| Diagnostics::one(file, d))
}

/// Run every op of the `encoder` layer (or `layer_file`) on one arch for one model.
pub fn run_layer(
    arch_file: &SourceFile,
    model_file: &SourceFile,
    set_args: &[String],
    lookup: Lookup,
    opts: SimOptions,
) -> Result<LayerReport, RunError> {
    let lf = lookup(Kind::Layer, "encoder")
        .ok_or_else(|| RunError::Mapping("no `encoder` layer shipped".into()))?;
    run_layer_file(&lf, arch_file, model_file, set_args, lookup, opts)
}

pub fn run_layer_file(
    layer_file: &SourceFile,
    arch_file: &SourceFile,
    model_file: &SourceFile,
    set_args: &[String],
    lookup: Lookup,
    opts: SimOptions,
) -> Result<LayerReport, RunError> {
    run_layer_file_cached(
        layer_file,
        arch_file,
        model_file,
        set_args,
        lookup,
        opts,
        &mut OpCache::new(),
    )
}

/// Op reports by (cascade, arguments): ops with the same cascade and arguments on the same arch and model give the
/// same report, so a caller running many layers (a generation's steps and layers) simulates each once.
pub type OpCache = BTreeMap<(Option<String>, Vec<String>), RunReport>;

/// [`run_layer_file`] with a cache of op reports, valid for one arch and one model file.
pub fn run_layer_file_cached(
    layer_file: &SourceFile,
    arch_file: &SourceFile,
    model_file: &SourceFile,
    set_args: &[String],
    lookup: Lookup,
    opts: SimOptions,
    cache: &mut OpCache,
) -> Result<LayerReport, RunError> {
    let layer = load_layer(layer_file).map_err(RunError::Invalid)?;
    let model = crate::cascade::load_model(model_file).map_err(RunError::Invalid)?;
    let sets = run::Sets::parse(set_args).map_err(RunError::Invalid)?;
    // Model parameters with the user's overrides: the environment op parameters are evaluated in.
    let mut env: BTreeMap<String, i64> = model
        .params
        .iter()
        .map(|p| (p.name.clone(), p.default))
        .collect();
    for (k, v) in &sets.pairs {
        if env.contains_key(k) {
            env.insert(k.clone(), *v);
        }
    }
    let mut parts = Vec::new();
    for op in &layer.ops {
        let mut args: Vec<String> = set_args.to_vec();
        if op.cascade.is_some() {
            // Model parameters belong to the attention cascade; a GEMM gets its own shape instead.
            args.retain(|a| {
                !a.split_once('=')
                    .is_some_and(|(k, _)| env.contains_key(k.trim()))
            });
        }
        for (k, e) in &op.params {
            let v = SizeExpr::parse(e)
                .and_then(|x| x.eval(&|n| env.get(n).copied()))
                .map_err(|err| {
                    let span = crate::diag::locate(&layer_file.text, e, 0);
                    RunError::Invalid(Diagnostics::one(
                        layer_file,
                        Diagnostic::new(
                            Span::new(span.start as usize, span.end as usize),
                            format!("in `{e}`: {}", err.message),
                            err.expected,
                        ),
                    ))
                })?;
            args.push(format!("{k}={v}"));
        }
        let model_for_op = if op.cascade.is_some() {
            None
        } else {
            Some(model_file)
        };
        let key = (op.cascade.clone(), args);
        let report = match cache.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = run::run(
                    arch_file,
                    model_for_op,
                    op.cascade.as_deref(),
                    &key.1,
                    lookup,
                    opts,
                )?;
                cache.insert(key, r.clone());
                r
            }
        };
        parts.push((op.name.clone(), report));
    }
    let mut energy_by_component = BTreeMap::new();
    for (_, r) in &parts {
        for (c, pj) in &r.energy_pj.by_component {
            *energy_by_component.entry(c.clone()).or_insert(0.0) += pj;
        }
    }
    Ok(LayerReport {
        cycles: parts.iter().map(|(_, r)| r.cycles).sum(),
        seconds: parts.iter().map(|(_, r)| r.seconds).sum(),
        energy_pj: parts.iter().map(|(_, r)| r.energy_pj.total).sum(),
        energy_by_component,
        parts,
    })
}
