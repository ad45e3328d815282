//! Arch files: RON → [`ArchFile`] → [`Arch`], with every problem reported against the file.

use super::*;
use crate::cascade::parse_ron_as;
use crate::diag::{locate, Diagnostic, Diagnostics, SourceFile, Span};
use crate::expr::SizeExpr;

/// A problem resolving an arch: what, and the name in the file it is about (to locate it).
#[derive(Clone, Debug)]
pub struct ArchError {
    pub near: String,
    /// The figure the problem is in, when it is one: located by its whole text, which is more precise.
    pub fig: Option<Fig>,
    pub notes: Vec<String>,
    pub message: String,
    pub expected: String,
}

fn err(near: &str, message: impl Into<String>, expected: impl Into<String>) -> ArchError {
    ArchError {
        near: near.to_string(),
        fig: None,
        notes: Vec::new(),
        message: message.into(),
        expected: expected.into(),
    }
}

/// Parse an energy table on its own (its `base`, if any, is not resolved).
pub fn load_energy(file: &SourceFile) -> Result<EnergyTable, Diagnostics> {
    parse_ron_as::<EnergyTable>(file, "`EnergyTable(...)`").map_err(|d| Diagnostics::one(file, d))
}

/// Parse an energy table and apply it over its `base` chain, found by name with `energy`.
pub fn load_energy_resolved(
    file: &SourceFile,
    energy: &dyn Fn(&str) -> Option<SourceFile>,
) -> Result<EnergyTable, Diagnostics> {
    // A chain longer than this is a cycle in practice (`a` based on `b` based on `a`).
    const MAX_CHAIN: usize = 16;
    // Each table with the file it came from, the table itself first and its furthest base last.
    let mut chain = vec![(file.clone(), load_energy(file)?)];
    while let Some((current, table)) = chain.last() {
        let Some(base) = table.base.clone() else {
            break;
        };
        let fail = |msg: String, expected: &str| {
            let d = Diagnostic::new(locate(&current.text, &base, 0), msg, expected);
            Diagnostics::one(current, d)
        };
        if chain.len() > MAX_CHAIN || chain.iter().any(|(_, t)| t.name == base) {
            return Err(fail(
                format!(
                    "energy table `{}` is based on itself through `{base}`",
                    table.name
                ),
                "a chain of bases that ends in a table without `base`",
            ));
        }
        let Some(next) = energy(&base) else {
            return Err(fail(
                format!("unknown base energy table `{base}`"),
                "the name of a file in arch/energy/",
            ));
        };
        let t = load_energy(&next)?;
        chain.push((next, t));
    }
    let mut tables = chain.into_iter().rev().map(|(_, t)| t);
    let mut out = tables.next().expect("at least the table itself");
    for t in tables {
        out.actions.extend(t.actions);
        out.area.extend(t.area);
        out.name = t.name;
        out.node = t.node;
        out.source = t.source;
        out.base = t.base;
    }
    Ok(out)
}

/// Parse and resolve an arch file. `energy` finds an energy table by name; `overrides` are `--set` values for
/// the arch's parameters (unknown keys are the caller's business: they may be workload parameters).
///
/// This checks the hardware and the figures, not the names a binding uses: [`crate::binding::load_arch`] adds
/// that check, and is what the CLI and [`crate::run`] call.
pub fn load(
    file: &SourceFile,
    energy: &dyn Fn(&str) -> Option<SourceFile>,
    overrides: &BTreeMap<String, i64>,
) -> Result<Arch, Diagnostics> {
    load_parsed(file, &parse(file)?, energy, overrides)
}

/// Parse an arch file into its RON shape, numbers still expressions.
pub fn parse(file: &SourceFile) -> Result<ArchFile, Diagnostics> {
    parse_ron_as(file, "`Arch(...)`").map_err(|d| Diagnostics::one(file, d))
}

/// Resolve an arch already parsed from `file` (see [`load`]).
pub fn load_parsed(
    file: &SourceFile,
    parsed: &ArchFile,
    energy: &dyn Fn(&str) -> Option<SourceFile>,
    overrides: &BTreeMap<String, i64>,
) -> Result<Arch, Diagnostics> {
    let Some(etext) = energy(&parsed.energy) else {
        let d = Diagnostic::new(
            locate(&file.text, &parsed.energy, 0),
            format!("unknown energy table `{}`", parsed.energy),
            "expected the name of a file in arch/energy/",
        );
        return Err(Diagnostics::one(file, d));
    };
    let table = load_energy_resolved(&etext, energy)?;
    let resolved = resolve(parsed, table, overrides).map(|a| Arch {
        path: file.name.clone(),
        ..a
    });
    resolved.map_err(|errs| Diagnostics {
        file: file.clone(),
        items: errs
            .into_iter()
            .map(|e| {
                let exact = e
                    .fig
                    .as_ref()
                    .map(|f| format!("{:?}, {:?}, {:?}", f.0, f.1, f.2))
                    .or_else(|| e.near.ends_with(':').then(|| e.near.clone()))
                    .and_then(|needle| file.text.find(&needle).map(|i| (i, needle)));
                let span = match exact {
                    // Underline the expression (the first string) of the figure, or the key.
                    Some((i, needle)) if e.fig.is_some() => {
                        let expr_len = e.fig.as_ref().map_or(0, |f| format!("{:?}", f.0).len());
                        let _ = needle;
                        Span::new(i + 1, i + expr_len - 1)
                    }
                    Some((i, needle)) => Span::new(i, i + needle.len() - 1),
                    None if e.near.is_empty() => Span::new(0, 0),
                    None => locate(&file.text, &e.near, 0),
                };
                let mut d = Diagnostic::new(span, e.message, e.expected);
                d.notes = e.notes;
                d
            })
            .collect(),
    })
}

const UNITS: &[&str] = &["PE", "cycle", "Hz", "bit", "B", "B/cycle", "B/s", "tile"];

/// Resolve every figure; collects all problems.
pub fn resolve(
    f: &ArchFile,
    energy: EnergyTable,
    overrides: &BTreeMap<String, i64>,
) -> Result<Arch, Vec<ArchError>> {
    let mut errs = Vec::new();
    let mut params = f.params.clone();
    for (k, v) in overrides {
        if params.contains_key(k) {
            params.insert(k.clone(), *v);
        }
    }
    let lookup = |n: &str| params.get(n).copied();
    let overridden: Vec<String> = overrides
        .iter()
        .filter(|(k, _)| f.params.contains_key(*k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let fig = |fg: &Fig, want: &[&str], errs: &mut Vec<ArchError>| -> Option<f64> {
        let err = |near: &str, message: String, expected: String| {
            let mut e = err(near, message, expected);
            e.fig = Some(fg.clone());
            if !overridden.is_empty() {
                e.notes
                    .push(format!("evaluated with --set {}", overridden.join(" ")));
            }
            e
        };
        if !UNITS.contains(&fg.1.as_str()) {
            errs.push(err(
                &fg.1,
                format!("unknown unit `{}`", fg.1),
                format!("one of {}", UNITS.join(", ")),
            ));
            return None;
        }
        if !want.contains(&fg.1.as_str()) {
            errs.push(err(
                &fg.0,
                format!("`{}` has unit `{}`", fg.0, fg.1),
                format!("a figure in {}", want.join(" or ")),
            ));
            return None;
        }
        if fg.2.trim().is_empty() {
            errs.push(err(
                &fg.0,
                format!("figure `{}` has no source", fg.0),
                "a source: paper, datasheet or measurement".to_string(),
            ));
        }
        // Limits that keep every derived count (PEs = rows x cols, latency in 1/1024-cycle ticks, bytes x trips)
        // inside the engine's integers; no real design comes near them.
        let limit: i64 = if want.contains(&"PE") {
            1 << 24
        } else {
            1 << 50
        };
        match SizeExpr::parse(&fg.0).and_then(|e| e.eval(&lookup)) {
            Ok(v) if v > limit => {
                errs.push(err(
                    &fg.0,
                    format!("`{}` evaluates to {v}, more than einsim represents", fg.0),
                    format!("at most 2^{} {}", limit.trailing_zeros(), fg.1),
                ));
                None
            }
            Ok(v) if v > 0 => Some(v as f64),
            Ok(v) => {
                errs.push(err(
                    &fg.0,
                    format!("`{}` evaluates to {v}", fg.0),
                    "a positive value".to_string(),
                ));
                None
            }
            Err(e) => {
                errs.push(err(
                    &fg.0,
                    format!("in `{}`: {}", fg.0, e.message),
                    e.expected,
                ));
                None
            }
        }
    };
    let clock_hz = fig(&f.clock, &["Hz"], &mut errs).unwrap_or(1.0);
    let word_bits = fig(&f.word, &["bit"], &mut errs).unwrap_or(16.0);
    if word_bits as u64 % 8 != 0 {
        errs.push(err(
            &f.word.0,
            "word width is not a whole number of bytes",
            "a multiple of 8 bits",
        ));
    }
    let need_action = |a: &str, errs: &mut Vec<ArchError>| {
        if !energy.actions.contains_key(a) {
            errs.push(err(
                a,
                format!("action `{a}` is not in energy table `{}`", energy.name),
                "an action listed in the energy table (no silent defaults)",
            ));
        }
    };
    let mut storage = Vec::new();
    for (name, s) in &f.storage {
        let bandwidth = match s.bandwidth.1.as_str() {
            "B/s" => fig(&s.bandwidth, &["B/s"], &mut errs).map(|b| b / clock_hz),
            _ => fig(&s.bandwidth, &["B/cycle"], &mut errs),
        }
        .unwrap_or(1.0);
        let capacity_bytes = s
            .capacity
            .as_ref()
            .and_then(|c| fig(c, &["B"], &mut errs))
            .map(|v| v as u64);
        let latency_cycles = s
            .latency
            .as_ref()
            .and_then(|c| fig(c, &["cycle"], &mut errs))
            .map_or(0, |v| v as u64);
        let access_bytes = fig(&s.access, &["B"], &mut errs).unwrap_or(1.0) as u64;
        need_action(&s.read, &mut errs);
        need_action(&s.write, &mut errs);
        if let Some(a) = &s.area {
            if !energy.area.contains_key(a) {
                errs.push(err(
                    a,
                    format!("area entry `{a}` is not in table `{}`", energy.name),
                    "an area entry",
                ));
            }
        }
        if s.accumulates_on_write
            .as_ref()
            .is_some_and(|x| x.trim().is_empty())
        {
            errs.push(err(
                "accumulates_on_write",
                format!("`accumulates_on_write` of `{name}` has no source"),
                "Some(\"where the accumulate-on-write comes from\")",
            ));
        }
        storage.push(Storage {
            name: name.clone(),
            kind: s.kind,
            capacity_bytes,
            bandwidth,
            latency_cycles,
            access_bytes,
            read_action: s.read.clone(),
            write_action: s.write.clone(),
            area: s.area.clone(),
            accumulates_on_write: s.accumulates_on_write.is_some(),
        });
    }
    let mut units = Vec::new();
    for (name, u) in &f.units {
        let dims = match u.kind {
            UnitKind::SpatialArray => 2,
            UnitKind::LinearArray | UnitKind::FunctionUnit | UnitKind::TopkEngine => 1,
        };
        if u.shape.len() != dims {
            errs.push(err(
                name,
                format!("unit `{name}` has {} shape dimensions", u.shape.len()),
                format!("{dims} for a {:?}", u.kind),
            ));
        }
        let shape: Vec<u64> = u
            .shape
            .iter()
            .map(|s| fig(s, &["PE"], &mut errs).unwrap_or(1.0) as u64)
            .collect();
        let latency_cycles = fig(&u.latency, &["cycle"], &mut errs).map_or(0, |v| v as u64);
        let mut ops = BTreeMap::new();
        for (op, c) in &u.ops {
            if !(c.cycles.is_finite() && c.cycles > 0.0) {
                errs.push(err(
                    op,
                    format!("op `{op}` on `{name}` costs {} cycles", c.cycles),
                    "a positive cycle count",
                ));
            }
            for (a, n) in &c.actions {
                need_action(a, &mut errs);
                if !(n.is_finite() && *n >= 0.0) {
                    errs.push(err(
                        a,
                        format!("action count {n} for `{a}`"),
                        "a non-negative count",
                    ));
                }
            }
            ops.insert(
                op.clone(),
                OpCost {
                    cycles: c.cycles,
                    actions: c.actions.clone(),
                    source: c.source.clone(),
                },
            );
        }
        let local = u.local.as_ref().map(|l| {
            match f.storage.get(&l.storage) {
                Some(s) => {
                    need_action(&s.read, &mut errs);
                }
                None => errs.push(err(
                    &l.storage,
                    format!("unknown storage `{}`", l.storage),
                    "a storage level of this arch",
                )),
            }
            LocalAccess {
                storage: l.storage.clone(),
                reads_per_op: l.reads_per_op,
                writes_per_op: l.writes_per_op,
                source: l.source.clone(),
            }
        });
        for a in &u.pe_area {
            if !energy.area.contains_key(a) {
                errs.push(err(
                    a,
                    format!("area entry `{a}` is not in table `{}`", energy.name),
                    "an area entry",
                ));
            }
        }
        let selection = match (&u.selection, u.kind) {
            (Some(sel), UnitKind::TopkEngine) => {
                let round_overhead_cycles =
                    fig(&sel.round_overhead, &["cycle"], &mut errs).map_or(0, |v| v as u64);
                let seed = match SizeExpr::parse(&sel.seed).and_then(|e| e.eval(&lookup)) {
                    Ok(v) if v >= 0 => v as u64,
                    Ok(v) => {
                        errs.push(err(
                            &sel.seed,
                            format!("seed `{}` evaluates to {v}", sel.seed),
                            "a seed of 0 or more",
                        ));
                        0
                    }
                    Err(e) => {
                        errs.push(err(
                            &sel.seed,
                            format!("in seed `{}`: {}", sel.seed, e.message),
                            e.expected,
                        ));
                        0
                    }
                };
                if sel.source.trim().is_empty() {
                    errs.push(err(
                        name,
                        format!("the selection model of `{name}` has no source"),
                        "a source for the cycle model",
                    ));
                }
                Some(Selection {
                    round_overhead_cycles,
                    seed,
                    scores: sel.scores,
                    source: sel.source.clone(),
                })
            }
            (None, UnitKind::TopkEngine) => {
                errs.push(err(
                    name,
                    format!("top-k engine `{name}` has no `selection` model"),
                    "selection: Some(Selection(round_overhead: Fig(..), seed: \"..\", scores: Continuous, source: \"..\"))",
                ));
                None
            }
            (Some(_), kind) => {
                errs.push(err(
                    name,
                    format!("unit `{name}` is a {kind:?} but has a `selection` model"),
                    "a `selection` only on a unit of kind TopkEngine",
                ));
                None
            }
            (None, _) => None,
        };
        units.push(Unit {
            name: name.clone(),
            kind: u.kind,
            shape,
            latency_cycles,
            ops,
            local,
            pe_area: u.pe_area.clone(),
            selection,
        });
    }
    if f.bindings.is_empty() {
        errs.push(err(
            "bindings:",
            "the arch binds no cascade",
            "at least one Binding(...)",
        ));
    }
    // The names a binding uses (units, storage levels, the cascade's Einsums and ranks) are checked by
    // `crate::binding`; its figures are checked here with the others.
    for st in f.bindings.iter().flat_map(|b| &b.stages) {
        if let Pipeline::Interleave(depth) | Pipeline::InOrder(depth) = &st.pipeline {
            fig(depth, &["tile"], &mut errs);
        }
    }
    if let Select::Fastest(source) = &f.select {
        if source.trim().is_empty() {
            errs.push(err(
                "Fastest(",
                "`select: Fastest` has no source",
                "Fastest(\"whose search picks the fastest binding\")",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Arch {
        name: f.name.clone(),
        path: String::new(),
        description: f.description.clone(),
        source: f.source.clone(),
        params,
        clock_hz,
        word_bytes: word_bits as u64 / 8,
        technology: f.technology.clone(),
        units,
        storage,
        energy,
        bindings: f.bindings.clone(),
        select: f.select.clone(),
    })
}
