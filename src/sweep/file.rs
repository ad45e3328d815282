//! Sweep files (`Sweep(...)`, RON): parsed by ron, then every name checked against the designs it sweeps, each
//! problem a located diagnostic (spans from the `cascade/file.rs` locator). The result is a [`Plan`].
//!
//! ```ron
//! Sweep(
//!     name: "flat-vs-fusemax",
//!     designs: ["fusemax", "flat-cloud", "unfused"],       // the design is the outermost axis
//!     workload: "bert-base",                              // a model, or "none" for the cascade's defaults
//!     // binding: "fa4",                                  // the kernel of GPU designs (arch/gpu), or the named
//!                                                         // binding an arch must use (FLAT's "spilled")
//!     set: { "batch": 1 },                                // fixed overrides
//!     axes: [
//!         Axis("buffer_bytes", Geometric(from: "1M", to: "64M", factor: 4)),
//!         Axis("seq", List(["1K", "16K", "256K"])),
//!         Zip([("rows", List([64, 128])), ("cols", List([64, 128]))]),   // move together
//!     ],
//!     constraints: [                                      // points that break one are skipped, unsimulated
//!         AreaAtMost(400.0),                              // mm², from the arch alone
//!         AtMost("rows * cols", "64K"),                   // over the axes and `set` values
//!     ],
//!     plots: [Plot(name: "latency", x: "seq", y: "seconds", group: ["design", "buffer_bytes"])],
//! )
//! ```

use super::plan::{fnv1a, Constraint, Design, Plan, PlotKind, PlotSpec};
use super::row::{FAMILIES, GPU_HEAD, HEAD};
use crate::binding::did_you_mean;
use crate::cascade::{self, Loc};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::expr::SizeExpr;
use crate::gpu;
use crate::library::{self, Kind};
use crate::run::{self, Lookup};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};

/// The most values one axis may have, and the most points a sweep may have.
const MAX_AXIS: u64 = 1 << 24;
const MAX_POINTS: u64 = 1 << 40;

#[derive(Deserialize)]
#[serde(rename = "Sweep", deny_unknown_fields)]
struct RawSweep {
    name: String,
    #[serde(default)]
    description: String,
    designs: Vec<String>,
    #[serde(default = "default_workload")]
    workload: String,
    /// Empty: the cascade of each design's first binding.
    #[serde(default)]
    cascade: String,
    /// A GPU kernel every design (a GPU) runs (`fa4`); empty: each GPU's first.
    #[serde(default)]
    binding: String,
    #[serde(default)]
    set: BTreeMap<String, Int>,
    #[serde(default)]
    axes: Vec<RawAxis>,
    #[serde(default)]
    constraints: Vec<RawConstraint>,
    #[serde(default)]
    plots: Vec<RawPlot>,
}

fn default_workload() -> String {
    "bert-base".into()
}

/// An integer as a number or as text with a suffix (`"64K"`, `"1M"`, `"2^20"`).
#[derive(Clone, Copy, Debug)]
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer such as 4096, or \"64K\", \"1M\", \"2^20\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Int, E> {
                run::parse_int(v.trim()).map(Int).ok_or_else(|| {
                    E::custom(format!(
                        "`{v}` is not an integer such as 4096, \"64K\", \"1M\" or \"2^20\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A filter value: an integer or a name, kept as text.
#[derive(Clone, Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
enum RawAxis {
    Axis(String, Values),
    Zip(Vec<(String, Values)>),
}

#[derive(Deserialize)]
enum Values {
    List(Vec<Int>),
    /// `from`, `from + step`, … up to `to` inclusive.
    Range {
        from: Int,
        to: Int,
        #[serde(default = "one")]
        step: Int,
    },
    /// `from`, `from × factor`, … up to `to` inclusive.
    Geometric {
        from: Int,
        to: Int,
        #[serde(default = "two")]
        factor: Int,
    },
}

fn one() -> Int {
    Int(1)
}
fn two() -> Int {
    Int(2)
}

#[derive(Deserialize)]
enum RawConstraint {
    /// Skip points whose chip area exceeds this many mm².
    AreaAtMost(f64),
    /// Skip points where the expression over axes and `set` values exceeds the limit.
    AtMost(String, Int),
    /// Skip points where the expression over axes and `set` values is under the limit.
    AtLeast(String, Int),
}

#[derive(Deserialize)]
#[serde(rename = "Plot", deny_unknown_fields)]
struct RawPlot {
    name: String,
    #[serde(default)]
    kind: PlotKind,
    /// Empty: the kind's default.
    #[serde(default)]
    x: String,
    #[serde(default)]
    y: String,
    #[serde(default)]
    group: Vec<String>,
    #[serde(default)]
    filter: BTreeMap<String, Scalar>,
}

/// Parse and check a sweep file. `lookup` finds designs (archs), the workload (a model) and cascades by name or
/// path; the caller decides what a path is relative to (the CLI: the sweep file's directory).
pub fn load(file: &SourceFile, lookup: Lookup) -> Result<Plan, Diagnostics> {
    let raw: RawSweep =
        cascade::parse_ron_as(file, "`Sweep(...)`").map_err(|d| Diagnostics::one(file, d))?;
    let cascade_name = Some(raw.cascade.clone()).filter(|c| !c.is_empty());
    let root = cascade::locate(&file.text);
    let text = file.text.as_str();
    let field = |name: &str| root.as_ref().and_then(|r| r.field(name));
    let field_span = |name: &str| field(name).map_or(Span::new(0, 0), |(s, l)| s.join(l.span()));
    let mut items: Vec<Diagnostic> = Vec::new();

    // Designs.
    let designs_loc = field("designs").map(|(_, l)| l);
    if raw.designs.is_empty() {
        items.push(Diagnostic::new(
            field_span("designs"),
            "a sweep needs at least one design",
            "expected a list of arch names or paths, e.g. [\"fusemax\"]",
        ));
    }
    let item_span = |loc: Option<&Loc>, i: usize, name: &str, near: Span| {
        loc.and_then(|l| l.item(i)).map_or_else(
            || crate::diag::locate(text, name, near.start as usize),
            Loc::span,
        )
    };
    let mut designs: Vec<Design> = Vec::new();
    let mut setups: Vec<run::Setup> = Vec::new();
    // GPU designs (by index in `designs`), loaded: their keys are the workload's, the GPU's and the kernel's.
    let mut gpus: Vec<(usize, gpu::Gpu)> = Vec::new();
    let model = if raw.workload == "none" && library::get(Kind::Model, "none").is_none() {
        None
    } else {
        match lookup(Kind::Model, &raw.workload) {
            Some(m) => Some(m),
            None => {
                let (s, l) =
                    field("workload").map_or((Span::new(0, 0), None), |(s, l)| (s, Some(l)));
                items.push(
                    Diagnostic::new(
                        l.map_or(s, Loc::span),
                        format!("unknown workload `{}`", raw.workload),
                        "expected a shipped model, a model file, or \"none\"",
                    )
                    .with_note(format!(
                        "shipped models: {}",
                        library::names(Kind::Model).join(", ")
                    )),
                );
                None
            }
        }
    };
    for (i, name) in raw.designs.iter().enumerate() {
        let span = item_span(designs_loc, i, name, field_span("designs"));
        if raw.designs[..i].contains(name) {
            items.push(Diagnostic::new(
                span,
                format!("design `{name}` twice"),
                "each design once",
            ));
            continue;
        }
        let Some(arch) = lookup(Kind::Arch, name).or_else(|| lookup(Kind::Gpu, name)) else {
            items.push(
                Diagnostic::new(
                    span,
                    format!("unknown design `{name}`"),
                    "expected a shipped arch or GPU, or an arch or GPU file (relative to this file)",
                )
                .with_note(format!(
                    "shipped archs: {}; shipped GPUs: {}",
                    library::names(Kind::Arch).join(", "),
                    library::names(Kind::Gpu).join(", ")
                )),
            );
            continue;
        };
        if gpu::is_gpu_file(&arch.text) {
            match gpu::load(&arch, &BTreeMap::new()) {
                Ok(g) => {
                    designs.push(Design {
                        label: name.clone(),
                        arch,
                        arch_params: BTreeSet::new(),
                        gpu: true,
                    });
                    gpus.push((designs.len() - 1, g));
                }
                Err(d) => items.push(
                    Diagnostic::new(
                        span,
                        format!("design `{name}` does not load"),
                        "this design",
                    )
                    .with_note(d.to_string().trim_end().to_string()),
                ),
            }
            continue;
        }
        match run::setup(&arch, model.as_ref(), cascade_name.as_deref(), &[], lookup) {
            Ok(s) => {
                designs.push(Design {
                    label: name.clone(),
                    arch,
                    arch_params: s.arch.params.keys().cloned().collect(),
                    gpu: false,
                });
                setups.push(s);
            }
            Err(e) => items.push(
                Diagnostic::new(
                    span,
                    format!("design `{name}` does not load"),
                    "this design",
                )
                .with_note(e.to_string().trim_end().to_string()),
            ),
        }
    }
    // The kernel of the GPU designs: each must have it (checked like every name: located, with the choices).
    let binding = Some(raw.binding.clone()).filter(|b| !b.is_empty());
    if let Some(b) = &binding {
        let bspan = field("binding").map_or(Span::new(0, 0), |(_, l)| l.span());
        // An arch's bindings for the sweep's cascade, by name; a GPU's kernels.
        let mut accel = setups.iter();
        for (d, design) in designs.iter().enumerate() {
            let names: Vec<&str> = match gpus.iter().find(|(i, _)| *i == d) {
                Some((_, g)) => g.kernels.iter().map(|k| k.name.as_str()).collect(),
                None => match accel.next() {
                    Some(s) => s
                        .arch
                        .bindings
                        .iter()
                        .filter(|x| x.cascade == s.cascade.name && !x.name.is_empty())
                        .map(|x| x.name.as_str())
                        .collect(),
                    None => continue,
                },
            };
            if names.contains(&b.as_str()) {
                continue;
            }
            let near = did_you_mean(b, &names);
            items.push(
                Diagnostic::new(
                    bspan,
                    format!("unknown binding `{b}` for design `{}`", design.label),
                    "expected a binding of every design (a GPU's kernel, or an arch's named binding for the cascade)",
                )
                .with_note(format!(
                    "`{}`'s bindings: {}{near}",
                    design.label,
                    names.join(", ")
                )),
            );
        }
    }
    if !gpus.is_empty() && cascade_name.is_some() {
        items.push(Diagnostic::new(
            field_span("cascade"),
            "a GPU design runs its kernel, not a cascade",
            "leave `cascade` out of a sweep of GPUs",
        ));
    }
    if !items.is_empty() {
        return Err(Diagnostics {
            file: file.clone(),
            items,
        });
    }

    // The parameters every design knows: an arch's, its cascade's and the model's; a GPU's workload keys, its
    // parameters and its kernel's.
    let mut accel = setups.iter();
    let known: Vec<BTreeSet<String>> = (0..designs.len())
        .map(|d| {
            if let Some((_, g)) = gpus.iter().find(|(i, _)| *i == d) {
                let mut k: BTreeSet<String> =
                    gpu::WORKLOAD_KEYS.iter().map(|s| s.to_string()).collect();
                let kernel = match &binding {
                    Some(b) => g.kernels.iter().find(|k| &k.name == b),
                    None => g.kernels.first(),
                };
                k.extend(g.settable(kernel).into_iter().map(str::to_string));
                return k;
            }
            let Some(s) = accel.next() else {
                return BTreeSet::new();
            };
            let mut k: BTreeSet<String> = s.arch.params.keys().cloned().collect();
            k.extend(s.cascade.params.iter().map(|p| p.name.clone()));
            if let Some(m) = &s.model {
                k.extend(m.params.iter().map(|p| p.name.clone()));
            }
            k
        })
        .collect();
    let all_known: BTreeSet<String> = known.iter().flatten().cloned().collect();
    let check_param = |key: &str, span: Span, items: &mut Vec<Diagnostic>| {
        if !all_known.contains(key) {
            let near = did_you_mean(key, &all_known.iter().collect::<Vec<_>>());
            items.push(
                Diagnostic::new(
                    span,
                    format!("unknown parameter `{key}`"),
                    "expected a parameter of the designs' archs, cascade or model",
                )
                .with_note(format!(
                    "known parameters: {}{near}",
                    all_known.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
            );
            return;
        }
        for (d, k) in designs.iter().zip(&known) {
            if !k.contains(key) {
                items.push(
                    Diagnostic::new(
                        span,
                        format!("design `{}` has no parameter `{key}`", d.label),
                        "not a parameter of every design",
                    )
                    .with_note(format!(
                        "`{}` has: {}",
                        d.label,
                        k.iter().cloned().collect::<Vec<_>>().join(", ")
                    )),
                );
            }
        }
    };

    // Fixed overrides.
    let set_span = field_span("set");
    let mut sets = Vec::new();
    for (k, v) in &raw.set {
        check_param(
            k,
            crate::diag::locate(text, k, set_span.start as usize),
            &mut items,
        );
        sets.push((k.clone(), v.0));
    }

    // Axes.
    let axes_loc = field("axes").map(|(_, l)| l);
    let mut axes: Vec<Vec<(String, Vec<i64>)>> = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    let mut total: u64 = designs.len() as u64;
    if raw.axes.is_empty() && raw.designs.len() < 2 {
        items.push(Diagnostic::new(
            field("axes").map_or(Span::new(0, 0), |(s, _)| s),
            "a sweep needs an axis or more than one design",
            "expected axes: [Axis(\"seq\", List([1024, 4096])), ...]",
        ));
    }
    for (i, a) in raw.axes.iter().enumerate() {
        let aloc = axes_loc.and_then(|l| l.item(i));
        let aspan = aloc.map_or(field_span("axes"), Loc::span);
        let members: Vec<(&String, &Values, Span, Span)> = match a {
            RawAxis::Axis(k, v) => vec![(
                k,
                v,
                aloc.and_then(|l| l.item(0)).map_or(aspan, Loc::span),
                aloc.and_then(|l| l.item(1)).map_or(aspan, Loc::span),
            )],
            RawAxis::Zip(ms) => {
                let list = aloc.and_then(|l| l.item(0));
                ms.iter()
                    .enumerate()
                    .map(|(j, (k, v))| {
                        let m = list.and_then(|l| l.item(j));
                        (
                            k,
                            v,
                            m.and_then(|m| m.item(0)).map_or(aspan, Loc::span),
                            m.and_then(|m| m.item(1)).map_or(aspan, Loc::span),
                        )
                    })
                    .collect()
            }
        };
        if members.is_empty() {
            items.push(Diagnostic::new(
                aspan,
                "an empty Zip",
                "expected two or more axes moving together",
            ));
            continue;
        }
        let mut group: Vec<(String, Vec<i64>)> = Vec::new();
        let mut first: Option<(usize, Span, String)> = None;
        for (k, v, kspan, vspan) in members {
            if k == "design"
                || HEAD.contains(&k.as_str())
                || GPU_HEAD.contains(&k.as_str())
                || k == "point"
            {
                items.push(Diagnostic::new(
                    kspan,
                    format!("`{k}` is a column of every sweep's output, not a parameter"),
                    "expected a parameter",
                ));
                continue;
            }
            if let Some((_, s)) = names.iter().find(|(n, _)| n == k) {
                items.push(
                    Diagnostic::new(kspan, format!("axis `{k}` twice"), "each parameter once")
                        .with_secondary(*s, "first here"),
                );
                continue;
            }
            names.push((k.clone(), kspan));
            check_param(k, kspan, &mut items);
            let values = match expand(v) {
                Ok(vs) => vs,
                Err(why) => {
                    items.push(Diagnostic::new(
                        vspan,
                        format!("axis `{k}`: {why}"),
                        "expected at least one value",
                    ));
                    continue;
                }
            };
            match &first {
                Some((n, s, k0)) if *n != values.len() => {
                    items.push(
                        Diagnostic::new(
                            vspan,
                            format!(
                                "zipped axes of different lengths: `{k}` has {} values, `{k0}` has {n}",
                                values.len()
                            ),
                            format!("expected {n} values, to move with `{k0}`"),
                        )
                        .with_secondary(*s, format!("`{k0}`: {n} values")),
                    );
                    continue;
                }
                None => first = Some((values.len(), vspan, k.clone())),
                _ => {}
            }
            group.push((k.clone(), values));
        }
        if let Some(g) = group.first() {
            total = total.saturating_mul(g.1.len() as u64);
            axes.push(group);
        }
    }
    if total > MAX_POINTS {
        items.push(Diagnostic::new(
            field_span("axes"),
            format!("the sweep has {total} points, more than the {MAX_POINTS} it may have"),
            "fewer values",
        ));
    }

    // Constraints: names in a bound are the point's own parameters (an axis or a fixed override).
    let mut point_params: BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    point_params.extend(sets.iter().map(|(k, _)| k.as_str()));
    let cons_loc = field("constraints").map(|(_, l)| l);
    let constraints = raw
        .constraints
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let loc = cons_loc.and_then(|l| l.item(i));
            if !gpus.is_empty() && matches!(c, RawConstraint::AreaAtMost(_)) {
                items.push(Diagnostic::new(
                    loc.map_or(field_span("constraints"), Loc::span),
                    "a GPU design has no area model, so an area bound cannot be checked",
                    "leave area bounds out of a sweep of GPUs",
                ));
                return None;
            }
            constraint(c, loc, field_span("constraints"), &point_params, &mut items)
        })
        .collect();

    // Plots.
    let axis_names: Vec<String> = std::iter::once("design".to_string())
        .chain(names.iter().map(|(n, _)| n.clone()))
        .collect();
    let plots_loc = field("plots").map(|(_, l)| l);
    let mut plots = Vec::new();
    for (i, p) in raw.plots.iter().enumerate() {
        let ploc = plots_loc.and_then(|l| l.item(i));
        let pspan = ploc.map_or(field_span("plots"), Loc::span);
        let fspan = |name: &str| {
            ploc.and_then(|l| l.field(name))
                .map_or(pspan, |(s, l)| s.join(l.span()))
        };
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            items.push(Diagnostic::new(
                fspan("name"),
                format!("plot name `{}` is not a file name", p.name),
                "expected letters, digits, `-` and `_` (it names the PNG and SVG)",
            ));
        }
        if raw.plots[..i].iter().any(|q| q.name == p.name) {
            items.push(Diagnostic::new(
                fspan("name"),
                format!("plot `{}` twice", p.name),
                "each plot name once",
            ));
        }
        let spec = spec_of(
            &p.name,
            p.kind,
            Some(p.x.clone()).filter(|s| !s.is_empty()),
            Some(p.y.clone()).filter(|s| !s.is_empty()),
            p.group.clone(),
            p.filter
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
        );
        for (what, col) in std::iter::once(("x", &spec.x))
            .chain(std::iter::once(("y", &spec.y)))
            .chain(spec.group.iter().map(|g| ("group", g)))
            .chain(spec.filter.iter().map(|(k, _)| ("filter", k)))
        {
            if let Err(why) = column_ok(col, &axis_names) {
                items.push(
                    Diagnostic::new(
                        crate::diag::locate(text, col, fspan(what).start as usize),
                        format!("plot `{}`: unknown column `{col}`", p.name),
                        why,
                    )
                    .with_note(format!(
                        "columns: {}, {}, {} (GPU designs), and per design {}*",
                        axis_names.join(", "),
                        HEAD.join(", "),
                        GPU_HEAD.join(", "),
                        FAMILIES.join("*, ")
                    )),
                );
            }
        }
        plots.push(spec);
    }

    if !items.is_empty() {
        return Err(Diagnostics {
            file: file.clone(),
            items,
        });
    }
    Ok(Plan {
        name: raw.name,
        description: raw.description,
        hash: fnv1a(text),
        designs,
        model,
        cascade: cascade_name,
        binding,
        sets,
        axes,
        constraints,
        plots,
    })
}

/// Check one constraint: a positive area, or a bound whose expression parses and names only the point's own
/// parameters (`known`). `loc` locates the constraint in the file; problems go to `items`.
fn constraint(
    c: &RawConstraint,
    loc: Option<&Loc>,
    near: Span,
    known: &BTreeSet<&str>,
    items: &mut Vec<Diagnostic>,
) -> Option<Constraint> {
    let span = loc.map_or(near, Loc::span);
    let (text, limit, at_most) = match c {
        RawConstraint::AreaAtMost(a) if a.is_finite() && *a > 0.0 => {
            return Some(Constraint::AreaAtMost(*a))
        }
        RawConstraint::AreaAtMost(a) => {
            items.push(Diagnostic::new(
                span,
                format!("an area bound of {a} mm² skips every point"),
                "expected a positive area in mm²",
            ));
            return None;
        }
        RawConstraint::AtMost(t, l) => (t, l.0, true),
        RawConstraint::AtLeast(t, l) => (t, l.0, false),
    };
    // The expression's text starts one byte into its string literal (the quote).
    let espan = loc.and_then(|l| l.item(0)).map_or(span, Loc::span);
    let at = |s: Span| s.offset(espan.start as usize + 1);
    let expr = match SizeExpr::parse(text) {
        Ok(e) => e,
        Err(e) => {
            items.push(Diagnostic::new(at(e.span), e.message, e.expected));
            return None;
        }
    };
    let mut ok = true;
    for (n, s) in expr.names() {
        if !known.contains(n) {
            ok = false;
            items.push(
                Diagnostic::new(
                    at(s),
                    format!("constraint names `{n}`, which is not an axis or a fixed override"),
                    "expected a parameter this sweep sets",
                )
                .with_note(format!(
                    "a constraint is decided before the point runs, from the values the sweep gives it: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
    ok.then(|| Constraint::Bound {
        text: text.clone(),
        expr,
        at_most,
        limit,
    })
}

/// A plot spec with each kind's defaults: a Pareto plot is area against latency; the others' `y` is latency.
pub fn spec_of(
    name: &str,
    kind: PlotKind,
    x: Option<String>,
    y: Option<String>,
    group: Vec<String>,
    filter: Vec<(String, String)>,
) -> PlotSpec {
    let (dx, dy) = match kind {
        PlotKind::Pareto => ("area_mm2", "seconds"),
        PlotKind::Line => ("design", "seconds"),
        PlotKind::Energy => ("design", "energy_pj"),
    };
    PlotSpec {
        name: name.to_string(),
        kind,
        x: x.unwrap_or_else(|| dx.to_string()),
        y: y.unwrap_or_else(|| dy.to_string()),
        group,
        filter,
    }
}

/// Whether a column exists in every sweep's output with these axes (the per-component families are checked
/// against the data when plotted).
fn column_ok(col: &str, axes: &[String]) -> Result<(), &'static str> {
    if axes.iter().any(|a| a == col)
        || HEAD.contains(&col)
        || GPU_HEAD.contains(&col)
        || col == "point"
        || FAMILIES
            .iter()
            .any(|f| col.strip_prefix(f).is_some_and(|r| !r.is_empty()))
    {
        Ok(())
    } else {
        Err("expected an axis or an output column")
    }
}

/// The values of an axis, or why it has none.
fn expand(v: &Values) -> Result<Vec<i64>, String> {
    let out: Vec<i64> = match v {
        Values::List(vs) => vs.iter().map(|i| i.0).collect(),
        Values::Range { from, to, step } => {
            if step.0 <= 0 {
                return Err(format!("a range with step {} is empty", step.0));
            }
            if from.0 > to.0 {
                return Err(format!("the range from {} to {} is empty", from.0, to.0));
            }
            let n = ((to.0 - from.0) / step.0) as u64 + 1;
            if n > MAX_AXIS {
                return Err(format!(
                    "{n} values, more than the {MAX_AXIS} an axis may have"
                ));
            }
            (0..n as i64).map(|i| from.0 + i * step.0).collect()
        }
        Values::Geometric { from, to, factor } => {
            if factor.0 < 2 {
                return Err(format!(
                    "a geometric range with factor {} never grows (expected 2 or more)",
                    factor.0
                ));
            }
            if from.0 <= 0 || from.0 > to.0 {
                return Err(format!(
                    "the geometric range from {} to {} is empty",
                    from.0, to.0
                ));
            }
            let mut vs = vec![from.0];
            while let Some(n) = vs.last().and_then(|l| l.checked_mul(factor.0)) {
                if n > to.0 {
                    break;
                }
                vs.push(n);
            }
            vs
        }
    };
    if out.is_empty() {
        return Err("an empty list".into());
    }
    Ok(out)
}
