//! One run, end to end: resolve files, apply `--set`, map, simulate, report. Files come in as text (the caller
//! resolves names and paths), so this module does no I/O.

use crate::arch::Arch;
use crate::arch::BindingFile;
use crate::binding;
use crate::cascade::{self, Cascade, Model};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::library::{self, Kind};
use crate::mapping::{self, Program};
use crate::passes;
use crate::report::{self, RunReport};
use crate::sim::{self, SimOptions};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Why a run failed; the CLI maps these to exit codes.
#[derive(Debug)]
pub enum RunError {
    /// Bad input with located diagnostics (exit 1).
    Invalid(Diagnostics),
    /// Bad input without a location: a mapping that cannot work on this hardware, or a configuration whose counts
    /// exceed what a report holds (exit 1).
    Mapping(String),
    /// A bug: the simulation beat its own analytical bound, or the engine deadlocked (exit 3).
    Internal(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Invalid(d) => write!(f, "{d}"),
            RunError::Mapping(m) => write!(f, "error: {m}"),
            RunError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Finds files by kind and name: shipped ones ([`crate::library::get`]), and cascades a binding or the caller
/// names by path ([`crate::library::is_path`]), which the caller resolves (the CLI: relative to the arch file's
/// directory, then the working directory).
pub type Lookup<'a> = &'a dyn Fn(Kind, &str) -> Option<SourceFile>;

/// `--set key=value` pairs as given, kept with their text for error spans.
#[derive(Clone, Debug, Default)]
pub struct Sets {
    pub pairs: Vec<(String, i64)>,
}

impl Sets {
    /// Parse `key=value` arguments; a malformed one is reported against the command line.
    pub fn parse(args: &[String]) -> Result<Sets, Diagnostics> {
        let (file, spans) = command_line(args);
        let mut pairs = Vec::new();
        let mut items = Vec::new();
        for (a, span) in args.iter().zip(spans) {
            match a.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => match parse_int(v.trim()) {
                    Some(v) => pairs.push((k.trim().to_string(), v)),
                    None => items.push(Diagnostic::new(
                        Span::new(span.start as usize + k.len() + 1, span.end as usize),
                        format!("`{v}` is not an integer"),
                        "expected an integer such as 4096, 64K, 1M or 2^20",
                    )),
                },
                _ => items.push(Diagnostic::new(
                    span,
                    format!("`{a}` is not key=value"),
                    "expected key=value, e.g. seq=4096",
                )),
            }
        }
        if items.is_empty() {
            Ok(Sets { pairs })
        } else {
            Err(Diagnostics { file, items })
        }
    }
}

fn command_line(args: &[String]) -> (SourceFile, Vec<Span>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    for a in args {
        text.push_str("--set ");
        let start = text.len();
        text.push_str(a);
        spans.push(Span::new(start, text.len()));
        text.push(' ');
    }
    (SourceFile::new("<command line>", text.trim_end()), spans)
}

/// Integers with optional K/M/G (×1024) suffixes or a power of two: `64K`, `1M`, `2^20`.
pub fn parse_int(s: &str) -> Option<i64> {
    if let Some((b, e)) = s.split_once('^') {
        return b.parse::<i64>().ok()?.checked_pow(e.parse().ok()?);
    }
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<i64>().ok()?.checked_mul(mul)
}

/// Reject `--set` keys that neither the arch, the cascade nor the model declares.
fn check_sets(sets: &Sets, args: &[String], known: &[String]) -> Result<(), Diagnostics> {
    let (file, spans) = command_line(args);
    let items: Vec<Diagnostic> = sets
        .pairs
        .iter()
        .zip(spans)
        .filter(|((k, _), _)| !known.contains(k))
        .map(|((k, _), span)| {
            Diagnostic::new(
                Span::new(span.start as usize, span.start as usize + k.len()),
                format!("unknown parameter `{k}`"),
                "expected a workload or arch parameter",
            )
            .with_note(format!("known parameters: {}", known.join(", ")))
        })
        .collect();
    if items.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics { file, items })
    }
}

/// A loaded, checked configuration ready to map.
pub struct Setup {
    /// The arch, each binding's `cascade` being the name its cascade declares (see [`bind`]).
    pub arch: Arc<Arch>,
    pub cascade: Arc<Cascade>,
    pub model: Option<Model>,
    /// Evaluated parameters of the cascade (defaults, then the model's values, then `--set`). A model's other
    /// parameters (`d_model`, `ffn`) are not among them: the cascade does not use them.
    pub params: BTreeMap<String, i64>,
    pub sizes: Vec<i64>,
    /// Cascade parameters that took their default expression's value (`q_len` following `seq`): in `params` for
    /// mapping like any other, but not reported (see [`cascade::Env::followed`]).
    pub followed: Vec<String>,
    /// Cascade parameters the command line set (`--set`): a binding that fixes one of them (`set`) refuses to run
    /// rather than ignore the user's value.
    pub user_set: Vec<String>,
    /// What the cascade alone determines, made on first use and shared by every `with_sets` of this setup (they
    /// share the cascade).
    pub analysis: Arc<OnceLock<Analysis>>,
}

/// The size-independent analysis of a cascade: its dataflow graph and its pass structure.
pub struct Analysis {
    pub flow: crate::dataflow::Dataflow,
    pub passes: passes::Structure,
}

impl Analysis {
    fn of(c: &Cascade) -> Analysis {
        let flow = crate::dataflow::Dataflow::new(c);
        let passes = passes::Structure::of_flow(c, &flow);
        Analysis { flow, passes }
    }
}

impl Setup {
    /// The parameters a report lists: all but those that only followed others.
    pub fn reported_params(&self) -> BTreeMap<String, i64> {
        let mut p = self.params.clone();
        p.retain(|k, _| !self.followed.contains(k));
        p
    }
}

/// Load arch, cascade and model and apply `--set`. `cascade` is a name (shipped, or declared by a cascade file a
/// binding names) or a path, both found with `lookup` (the caller decides what a path is relative to);
/// `None` runs the cascade of the arch's first binding. Without a model the cascade's defaults apply.
/// `set_args` are the raw `key=value` strings.
pub fn setup(
    arch_file: &SourceFile,
    model_file: Option<&SourceFile>,
    cascade: Option<&str>,
    set_args: &[String],
    lookup: Lookup,
) -> Result<Setup, RunError> {
    let sets = Sets::parse(set_args).map_err(RunError::Invalid)?;
    let overrides: BTreeMap<String, i64> = sets.pairs.iter().cloned().collect();
    let energy = |n: &str| lookup(Kind::Energy, n);
    let cascades = |n: &str| lookup(Kind::Cascade, n);
    // The hardware and every name of every binding, each problem located, before anything is mapped.
    let (arch, bound) = binding::load_bound(arch_file, &energy, &cascades, &overrides)
        .map_err(RunError::Invalid)?;
    let (arch, cascade) = bind(arch_file, arch, &bound, cascade, &cascades)?;
    let model = match model_file {
        Some(f) => Some(cascade::load_model(f).map_err(RunError::Invalid)?),
        None => None,
    };
    // A model's parameters stay settable, as an encoder layer passes them to every op it runs.
    let mut known: Vec<String> = cascade.params.iter().map(|p| p.name.clone()).collect();
    known.extend(arch.params.keys().cloned());
    if let Some(m) = &model {
        known.extend(m.params.iter().map(|p| p.name.clone()));
    }
    known.sort();
    known.dedup();
    check_sets(&sets, set_args, &known).map_err(RunError::Invalid)?;
    // The cascade's parameters evaluated as every later re-evaluation does (`with_sets`).
    let unevaluated = Setup {
        arch: Arc::new(arch),
        cascade: Arc::new(cascade),
        model,
        params: BTreeMap::new(),
        sizes: Vec::new(),
        followed: Vec::new(),
        user_set: Vec::new(),
        analysis: Arc::default(),
    };
    unevaluated.with_sets(&sets.pairs)
}

impl Setup {
    /// Run only the binding named `name` among the arch's bindings for this cascade (`fused`, `spilled`), rather
    /// than the first whose working set fits. An unknown name is an error listing the names there are.
    pub fn force_binding(&mut self, name: &str) -> Result<(), RunError> {
        let cascade = self.cascade.name.clone();
        let for_cascade = || self.arch.bindings.iter().filter(|b| b.cascade == cascade);
        if !for_cascade().any(|b| b.name == name) {
            let names: Vec<String> = for_cascade()
                .map(|b| match b.name.as_str() {
                    "" => "one unnamed".to_string(),
                    n => format!("`{n}`"),
                })
                .collect();
            return Err(RunError::Mapping(format!(
                "arch `{}` has no binding `{name}` for cascade `{cascade}`; its bindings for it: {}",
                self.arch.name,
                names.join(", ")
            )));
        }
        Arc::make_mut(&mut self.arch)
            .bindings
            .retain(|b| b.cascade != cascade || b.name == name);
        Ok(())
    }

    /// This setup with the cascade's parameters evaluated again for `sets` (the model's values, then those of
    /// `sets` that are the cascade's parameters, later ones winning): what [`setup`] gives for the same arch with
    /// these `--set` values, without reading or checking a file again. Arch parameters among `sets` are not
    /// applied: a caller that varies them keys its cache of setups by their values.
    pub fn with_sets(&self, sets: &[(String, i64)]) -> Result<Setup, RunError> {
        let mut ov = self
            .model
            .as_ref()
            .map(|m| m.overrides_for(&self.cascade))
            .unwrap_or_default();
        let own: Vec<&(String, i64)> = sets
            .iter()
            .filter(|(k, _)| self.cascade.param(k).is_some())
            .collect();
        ov.extend(own.iter().map(|p| (*p).clone()));
        let env = self
            .cascade
            .with_params(&ov)
            .map_err(|e| RunError::Mapping(e.to_string()))?;
        Ok(Setup {
            arch: self.arch.clone(),
            cascade: self.cascade.clone(),
            model: self.model.clone(),
            params: env.params.iter().cloned().collect(),
            sizes: env.sizes,
            followed: env.followed,
            user_set: own.iter().map(|(k, _)| k.clone()).collect(),
            analysis: Arc::clone(&self.analysis),
        })
    }
}

/// The cascade a run uses, and the arch with each binding's `cascade` replaced by the name its cascade
/// declares. A binding names its cascade by a shipped name or a path; once loaded (`bound`, by field), the
/// declared name identifies it, and that is what [`simulate`] and [`mapping`] match bindings by.
///
/// `requested` may be a binding's field, a declared name, or a path no binding names: that file runs on the
/// bindings of the name it declares, checked again against it (they were checked against the file they name,
/// which may differ).
fn bind(
    arch_file: &SourceFile,
    mut arch: Arch,
    bound: &BTreeMap<String, Cascade>,
    requested: Option<&str>,
    cascades: &dyn Fn(&str) -> Option<SourceFile>,
) -> Result<(Arch, Cascade), RunError> {
    let Some(first) = arch.bindings.first() else {
        return Err(RunError::Mapping(format!(
            "arch `{}` has no bindings",
            arch.name
        )));
    };
    let requested = requested.unwrap_or(&first.cascade).to_string();
    // What the arch binds, in file order, for the error below; a file by its declared name and its path.
    let mut binds: Vec<String> = Vec::new();
    for b in &arch.bindings {
        let label = match bound.get(&b.cascade) {
            Some(c) if c.name != b.cascade => format!("{} ({})", c.name, b.cascade),
            _ => b.cascade.clone(),
        };
        if !binds.contains(&label) {
            binds.push(label);
        }
    }
    let no_binding = |what: String| {
        RunError::Mapping(format!(
            "arch `{}` has no binding for cascade {what}; it binds: {}",
            arch.name,
            binds.join(", ")
        ))
    };
    let known = bound
        .get(&requested)
        .or_else(|| bound.values().find(|c| c.name == requested));
    let (cascade, from_file) = match known {
        Some(c) => (c.clone(), false),
        None if library::is_path(&requested) => {
            let f = cascades(&requested).ok_or_else(|| {
                RunError::Mapping(format!("cannot read cascade file `{requested}`"))
            })?;
            (cascade::load(&f).map_err(RunError::Invalid)?, true)
        }
        None => return Err(no_binding(format!("`{requested}`"))),
    };
    if !bound.values().any(|c| c.name == cascade.name) {
        return Err(no_binding(format!(
            "`{}` (from `{requested}`)",
            cascade.name
        )));
    }
    for b in &mut arch.bindings {
        // `load_bound` succeeded, so every binding's cascade loaded.
        if let Some(c) = bound.get(&b.cascade) {
            b.cascade = c.name.clone();
        }
    }
    if from_file {
        let mut parsed = crate::arch::parse(arch_file).map_err(RunError::Invalid)?;
        for (p, b) in parsed.bindings.iter_mut().zip(&arch.bindings) {
            p.cascade = b.cascade.clone();
        }
        let d = binding::check_binding(arch_file, &parsed, &cascade);
        if !d.items.is_empty() {
            return Err(RunError::Invalid(d));
        }
    }
    Ok((arch, cascade))
}

/// Map, simulate and report one configuration.
pub fn simulate(s: &Setup, opts: SimOptions) -> Result<RunReport, RunError> {
    // Bindings for the cascade in file order: under `select: First` the first that maps (its working set fits)
    // is used, so a design's fall-back dataflow is data, chosen by the buffer size; under `Fastest` every one
    // that maps is ranked by its analytical lower bound, as a mapper ranks candidate mappings by its analytical
    // model, and the lowest wins (ties to the earlier: the simulated cycles of equally bound dataflows differ
    // only by their pipelines' fill and drain).
    let fastest = matches!(s.arch.select, crate::arch::Select::Fastest(_));
    let analysis = s.analysis.get_or_init(|| Analysis::of(&s.cascade));
    let mut errors = Vec::new();
    let mut chosen: Option<(&BindingFile, Program, Option<Bound>)> = None;
    // Under `Fastest`, the chosen binding's lower bound.
    let mut best: Option<u128> = None;
    for b in s
        .arch
        .bindings
        .iter()
        .filter(|b| b.cascade == s.cascade.name)
    {
        let bound = match bound_params(s, b) {
            Ok(env) => env,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let (sizes, params) = bound
            .as_ref()
            .map_or((&s.sizes, &s.params), |(z, p, _)| (z, p));
        match mapping::map_with(&s.cascade, &analysis.flow, sizes, params, &s.arch, b) {
            Ok(p) if fastest => {
                let lb = report::lower_bound_cycles(&p);
                if best.is_none_or(|best| lb < best) {
                    best = Some(lb);
                    chosen = Some((b, p, bound));
                }
            }
            Ok(p) => {
                chosen = Some((b, p, bound));
                break;
            }
            Err(e) => errors.push(if b.name.is_empty() {
                e.0
            } else {
                format!("binding `{}`: {}", b.name, e.0)
            }),
        }
    }
    let Some((binding, program, bound)) = chosen else {
        if errors.is_empty() {
            errors.push(format!(
                "arch `{}` does not bind `{}`",
                s.arch.name, s.cascade.name
            ));
        }
        return Err(RunError::Mapping(errors.join("\n")));
    };
    // The mapping guarantees every tile can get room in the buffer, so a deadlock is an engine bug; a
    // configuration too large to count is invalid input.
    let result = sim::memo::simulate(&program, opts).map_err(|e| match e {
        sim::SimError::TooLarge(m) => RunError::Mapping(m + &report::too_large_context(&s.params)),
        sim::SimError::Internal(m) => RunError::Internal(m),
    })?;
    let (sizes, mut params) = match &bound {
        Some((z, _, reported)) => (z, reported.clone()),
        None => (&s.sizes, s.reported_params()),
    };
    let pass_report = analysis.passes.report(&s.cascade, sizes, params.clone());
    for (k, v) in &s.arch.params {
        params.insert(format!("{}.{k}", s.arch.name), *v);
    }
    report::build(report::RunFacts {
        arch: &s.arch,
        workload: s
            .model
            .as_ref()
            .map_or(s.cascade.name.as_str(), |m| m.name.as_str()),
        cascade: &s.cascade.name,
        binding: &binding.name,
        params,
        program: &program,
        sim: &result,
        passes: &pass_report,
    })
    .map_err(|e| match e {
        report::BuildError::TooLarge(m) => RunError::Mapping(m),
        report::BuildError::BelowBound(m) => RunError::Internal(m),
    })
}

/// The cascade's sizes, parameters and reported parameters under the parameters binding `b` fixes (`set`,
/// evaluated over the arch's parameters), or `None` when it fixes none.
type Bound = (Vec<i64>, BTreeMap<String, i64>, BTreeMap<String, i64>);

fn bound_params(s: &Setup, b: &crate::arch::BindingFile) -> Result<Option<Bound>, String> {
    if b.set.is_empty() {
        return Ok(None);
    }
    let what = |e: String| {
        if b.name.is_empty() {
            e
        } else {
            format!("binding `{}`: {e}", b.name)
        }
    };
    let mut ov: BTreeMap<String, i64> = s.reported_params();
    for (name, text) in &b.set {
        if s.user_set.contains(name) {
            return Err(what(format!(
                "`{name}` is fixed by the binding (`{name} = {text}`), so `--set {name}` would be ignored; set the \
                 parameters of `{text}` instead"
            )));
        }
        let x = crate::expr::SizeExpr::parse(text)
            .map_err(|e| what(format!("in `set` for `{name}`: {}", e.message)))?;
        let v = x
            .eval(&|n: &str| s.arch.params.get(n).copied())
            .map_err(|e| what(format!("in `set` for `{name}`: {}", e.message)))?;
        ov.insert(name.clone(), v);
    }
    let ov: Vec<(String, i64)> = ov.into_iter().collect();
    let env = s
        .cascade
        .with_params(&ov)
        .map_err(|e| what(e.to_string()))?;
    let mut reported: BTreeMap<String, i64> = env.params.iter().cloned().collect();
    reported.retain(|k, _| !env.followed.contains(k));
    Ok(Some((
        env.sizes,
        env.params.iter().cloned().collect(),
        reported,
    )))
}

/// Load and run in one call.
pub fn run(
    arch_file: &SourceFile,
    model_file: Option<&SourceFile>,
    cascade: Option<&str>,
    set_args: &[String],
    lookup: Lookup,
    opts: SimOptions,
) -> Result<RunReport, RunError> {
    simulate(
        &setup(arch_file, model_file, cascade, set_args, lookup)?,
        opts,
    )
}
