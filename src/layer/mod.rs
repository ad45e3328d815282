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
use std::sync::Arc;

mod check;
pub use check::shipped_model_params;

/// A layer file (`workloads/layers/*.ron`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Layer")]
pub struct LayerFile {
    pub name: String,
    pub description: String,
    pub source: String,
    /// Values the ops' parameters may use besides the model's, each an expression over the model's parameters
    /// (evaluated after `--set`). A caller may give them per head group instead (a generation trace gives `keys`,
    /// `values`, `kept_heads` and `lsb_heads` for each group of heads that fetched alike): an op that uses a
    /// var then runs once per group, the others once per layer.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
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
    /// The op runs only when this expression (over the model's parameters and the vars) is positive: the LSB
    /// refetch runs only for heads that refetch.
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    pub cycles: u64,
    pub seconds: f64,
    pub energy_pj: f64,
    pub energy_by_component: BTreeMap<String, f64>,
    /// Each op's own report, in order (shared with the op cache: a generation's layers repeat most ops).
    pub parts: Vec<(String, Arc<RunReport>)>,
}

pub fn load_layer(file: &SourceFile) -> Result<LayerFile, Diagnostics> {
    crate::cascade::parse_ron_as(file, "`Layer(...)`").map_err(|d| Diagnostics::one(file, d))
}

/// Resolve every name `layer` uses, all problems at once: each op's cascade (found by `lookup`) and the
/// parameters passed to it, and every name in its expressions (a var of the layer or one of `params`, the model
/// parameters; see [`check`]).
pub fn check_layer(
    file: &SourceFile,
    layer: &LayerFile,
    params: &std::collections::BTreeSet<String>,
    lookup: Lookup,
) -> Result<(), Diagnostics> {
    check::check(file, layer, params, &|n| lookup(Kind::Cascade, n))
}

/// Run every op of `layer_file` on one arch for one model (a caller running many layers parses the files once,
/// [`LayerFiles::load`], and keeps an [`OpCache`] for [`run_parsed_layer`]).
pub fn run_layer_file(
    layer_file: &SourceFile,
    arch_file: &SourceFile,
    model_file: &SourceFile,
    set_args: &[String],
    lookup: Lookup,
    opts: SimOptions,
) -> Result<LayerReport, RunError> {
    let files = LayerFiles::load(layer_file, arch_file, model_file, lookup)?;
    run_parsed_layer(&files, set_args, &[], lookup, opts, &mut OpCache::new())
}

/// What a caller running many layers (a generation's steps and layers) keeps between them, valid for one arch
/// and one model file: op reports by (cascade, arguments), since the same op with the same arguments gives the same
/// report, and each op's checked setup, so that an op whose cascade parameters changed is evaluated again without
/// reading its files again.
#[derive(Default)]
pub struct OpCache {
    reports: BTreeMap<OpKey, Arc<RunReport>>,
    /// By cascade, the arguments' names, and the values of those that are arch parameters (they change the
    /// resolved arch; the others only the cascade's evaluation, [`run::Setup::with_sets`]).
    setups: BTreeMap<(Option<String>, Vec<String>), run::Setup>,
}

impl OpCache {
    pub fn new() -> OpCache {
        OpCache::default()
    }

    /// Distinct op runs simulated.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// The report of op `cascade` with the user's `args` (their `pairs` parsed) and the op's own parameters
    /// `params`: cached, else simulated from a cached setup (or one made now, which checks every argument as
    /// `einsim run` does).
    #[allow(clippy::too_many_arguments)] // the op's files and its three kinds of arguments, each needed once
    fn report(
        &mut self,
        arch_file: &SourceFile,
        model: Option<&SourceFile>,
        cascade: Option<&str>,
        args: &Arg,
        params: Vec<(String, i64)>,
        lookup: Lookup,
        opts: SimOptions,
    ) -> Result<Arc<RunReport>, RunError> {
        let mut pairs = args.pairs.clone();
        pairs.extend(params);
        let key = (cascade.map(str::to_string), pairs);
        if let Some(r) = self.reports.get(&key) {
            return Ok(Arc::clone(r));
        }
        let pairs = &key.1;
        let setup_key = |arch_params: &dyn Fn(&str) -> bool| {
            let mut k: Vec<String> = pairs
                .iter()
                .map(|(n, v)| match arch_params(n) {
                    true => format!("{n}={v}"),
                    false => n.clone(),
                })
                .collect();
            k.sort();
            (key.0.clone(), k)
        };
        // Arch parameters are the same names for every setup of one arch file; any cached setup tells them.
        let is_arch = |n: &str| {
            self.setups
                .values()
                .next()
                .is_some_and(|s| s.arch.params.contains_key(n))
        };
        let skey = setup_key(&is_arch);
        let report = match self.setups.get(&skey) {
            Some(base) => run::simulate(&base.with_sets(pairs)?, opts)?,
            None => {
                // The user's arguments as written (errors point into them), then the op's parameters.
                let mut text = args.text.clone();
                text.extend(
                    pairs[args.pairs.len()..]
                        .iter()
                        .map(|(k, v)| format!("{k}={v}")),
                );
                let setup = run::setup(arch_file, model, cascade, &text, lookup)?;
                let r = run::simulate(&setup, opts)?;
                let skey = setup_key(&|n| setup.arch.params.contains_key(n));
                self.setups.insert(skey, setup);
                r
            }
        };
        let report = Arc::new(report);
        self.reports.insert(key, Arc::clone(&report));
        Ok(report)
    }
}

/// An op run: its cascade (none: the layer's GEMM) and its arguments' values.
type OpKey = (Option<String>, Vec<(String, i64)>);

/// The user's `--set` arguments an op gets, as written and parsed.
struct Arg {
    text: Vec<String>,
    pairs: Vec<(String, i64)>,
}

/// A layer's files, the layer and model already parsed (a caller running many layers parses them once).
pub struct LayerFiles<'a> {
    pub layer_file: &'a SourceFile,
    pub layer: LayerFile,
    /// The vars as (name, text, parsed), in the layer's order, and each op's expressions (in `layer.ops`'
    /// order), parsed once: a generation evaluates them per step and layer.
    vars: Vec<(String, String, SizeExpr)>,
    ops: Vec<OpExprs>,
    pub arch_file: &'a SourceFile,
    pub model_file: &'a SourceFile,
    pub model: crate::cascade::Model,
}

/// One op's expressions, parsed.
struct OpExprs {
    /// (parameter, its text, parsed).
    params: Vec<(String, String, SizeExpr)>,
    when: Option<(String, SizeExpr)>,
    /// Whether its parameters or condition use one of the layer's vars (it then runs once per head group).
    per_group: bool,
}

impl<'a> LayerFiles<'a> {
    /// Parse the layer and the model, and resolve every name the layer uses against the model's parameters and
    /// the cascades `lookup` finds ([`check_layer`]).
    pub fn load(
        layer_file: &'a SourceFile,
        arch_file: &'a SourceFile,
        model_file: &'a SourceFile,
        lookup: Lookup,
    ) -> Result<LayerFiles<'a>, RunError> {
        let layer = load_layer(layer_file).map_err(RunError::Invalid)?;
        let model = crate::cascade::load_model(model_file).map_err(RunError::Invalid)?;
        let params = model.params.iter().map(|p| p.name.clone()).collect();
        check_layer(layer_file, &layer, &params, lookup).map_err(RunError::Invalid)?;
        let parse = |e: &String| SizeExpr::parse(e).map_err(|err| located(layer_file, e, err));
        let vars = layer
            .vars
            .iter()
            .map(|(k, e)| Ok((k.clone(), e.clone(), parse(e)?)))
            .collect::<Result<Vec<_>, RunError>>()?;
        let ops = layer
            .ops
            .iter()
            .map(|op| {
                let params = op
                    .params
                    .iter()
                    // Trimmed as `--set` keys are (`Sets::parse`), so the first setup and the cached ones agree.
                    .map(|(k, e)| Ok((k.trim().to_string(), e.clone(), parse(e)?)))
                    .collect::<Result<Vec<_>, RunError>>()?;
                let when = match &op.when {
                    Some(e) => Some((e.clone(), parse(e)?)),
                    None => None,
                };
                let per_group = params
                    .iter()
                    .map(|(_, _, x)| x)
                    .chain(when.iter().map(|(_, x)| x))
                    .any(|x| x.names().iter().any(|(n, _)| layer.vars.contains_key(*n)));
                Ok(OpExprs {
                    params,
                    when,
                    per_group,
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        Ok(LayerFiles {
            layer_file,
            layer,
            vars,
            ops,
            arch_file,
            model_file,
            model,
        })
    }
}

/// An expression of a layer file that does not evaluate, located in the file.
fn located(layer_file: &SourceFile, e: &str, err: crate::expr::ExprError) -> RunError {
    let span = crate::diag::locate(&layer_file.text, e, 0);
    RunError::Invalid(Diagnostics::one(
        layer_file,
        Diagnostic::new(
            Span::new(span.start as usize, span.end as usize),
            format!("in `{e}`: {}", err.message),
            err.expected,
        ),
    ))
}

/// A total that does not fit 64 bits of cycles: a clear error, never a wrapped count.
pub(crate) fn too_many_cycles(what: &str) -> RunError {
    RunError::Mapping(format!(
        "{what}: more than 2^64 cycles in all; run fewer layers, steps or tokens"
    ))
}

/// One head group's values of a layer's vars (see [`LayerFile::vars`]).
pub type HeadGroup = Vec<(String, i64)>;

/// [`run_layer_file`] on files already parsed, with a cache of op reports valid for one arch and one model file.
/// `groups` are the head groups (none: the vars' own values, one group).
pub fn run_parsed_layer(
    files: &LayerFiles,
    set_args: &[String],
    groups: &[HeadGroup],
    lookup_files: Lookup,
    opts: SimOptions,
    cache: &mut OpCache,
) -> Result<LayerReport, RunError> {
    let LayerFiles {
        layer_file,
        arch_file,
        model_file,
        ..
    } = *files;
    let (layer, model) = (&files.layer, &files.model);
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
    // The vars: a `--set` value, else the expression (every expression of the layer was parsed by
    // `LayerFiles::load`), over the model's parameters and the vars it uses; then each head group's values in
    // their place.
    let mut base = env;
    let mut pending: Vec<&(String, String, SizeExpr)> = files.vars.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        // A var naming one not yet evaluated fails this round and is tried again; the error is located only if
        // no var made progress (locating searches the file's text, too slow for every retry).
        let mut first_err = None;
        pending.retain(|(k, text, x)| {
            let v = match sets.pairs.iter().rev().find(|(n, _)| n == k) {
                Some((_, v)) => Ok(*v),
                None => x.eval(&|n| base.get(n).copied()),
            };
            match v {
                Ok(v) => {
                    base.insert(k.clone(), v);
                    false
                }
                Err(err) => {
                    first_err.get_or_insert((text.as_str(), err));
                    true
                }
            }
        });
        if pending.len() == before {
            let (e, err) = first_err.expect("a var that did not evaluate");
            return Err(located(layer_file, e, err));
        }
    }
    let one = [Vec::new()];
    let groups = if groups.is_empty() { &one[..] } else { groups };
    // The user's arguments each op gets: model parameters belong to the attention cascade, so an op with a
    // cascade drops them (it gets its own shape instead), and vars reach an op only through its parameters.
    let own_args = |cascade_op: bool| -> Result<Arg, RunError> {
        let text: Vec<String> = set_args
            .iter()
            .filter(|a| {
                !a.split_once('=').is_some_and(|(k, _)| {
                    let k = k.trim();
                    layer.vars.contains_key(k) || (cascade_op && base.contains_key(k))
                })
            })
            .cloned()
            .collect();
        let pairs = run::Sets::parse(&text).map_err(RunError::Invalid)?.pairs;
        Ok(Arg { text, pairs })
    };
    let (cascade_args, gemm_args) = (own_args(true)?, own_args(false)?);
    let mut parts = Vec::new();
    for (op, exprs) in layer.ops.iter().zip(&files.ops) {
        for group in if exprs.per_group { groups } else { &one[..] } {
            // The head group's values over the vars and parameters, without copying them.
            let lookup = |n: &str| {
                group
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| *v)
                    .or_else(|| base.get(n).copied())
            };
            let eval = |text: &str, x: &SizeExpr| {
                x.eval(&lookup)
                    .map_err(|err| located(layer_file, text, err))
            };
            if let Some((text, x)) = &exprs.when {
                if eval(text, x)? <= 0 {
                    continue;
                }
            }
            let args = if op.cascade.is_some() {
                &cascade_args
            } else {
                &gemm_args
            };
            let params = exprs
                .params
                .iter()
                .map(|(k, text, x)| Ok((k.clone(), eval(text, x)?)))
                .collect::<Result<Vec<_>, RunError>>()?;
            let model_for_op = if op.cascade.is_some() {
                None
            } else {
                Some(model_file)
            };
            let report = cache.report(
                arch_file,
                model_for_op,
                op.cascade.as_deref(),
                args,
                params,
                lookup_files,
                opts,
            )?;
            parts.push((op.name.clone(), report));
        }
    }
    let mut energy_by_component = BTreeMap::new();
    for (_, r) in &parts {
        for (c, pj) in &r.energy_pj.by_component {
            *energy_by_component.entry(c.clone()).or_insert(0.0) += pj;
        }
    }
    Ok(LayerReport {
        cycles: parts
            .iter()
            .try_fold(0u64, |t, (_, r)| t.checked_add(r.cycles))
            .ok_or_else(|| too_many_cycles(&layer.name))?,
        seconds: parts.iter().map(|(_, r)| r.seconds).sum(),
        energy_pj: parts.iter().map(|(_, r)| r.energy_pj.total).sum(),
        energy_by_component,
        parts,
    })
}
