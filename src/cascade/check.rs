//! From the deserialised file and the parsed einsums block to the checked [`Cascade`] IR.
//!
//! Every check runs even after earlier ones fail, so one load reports every problem in the file; a failed
//! lookup yields `None` and the dependent checks are skipped rather than reported twice. The invariants that
//! [`super::ir`] documents are established here and nowhere else.

use super::env::{eval_ranks, RankEvalError};
use super::file::{locate, Loc, RawCascade, RawParam, TextLoc};
use super::ir::*;
use super::syntax::{self, map_size_spans, AstExpr, AstIndex, AstReduceOp, AstRef, Stmt};
use crate::diag::{Diagnostic, SourceFile, Span};
use crate::expr::SizeExpr;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeSet, HashMap};

pub(crate) fn check(file: &SourceFile, raw: RawCascade) -> Result<Cascade, Vec<Diagnostic>> {
    let root = locate(&file.text);
    let mut cx = Cx {
        text: &file.text,
        root: root.as_ref(),
        errors: Vec::new(),
        params: Vec::new(),
        ranks: Vec::new(),
        unknown_vars: BTreeSet::new(),
        bad_params: BTreeSet::new(),
        partition_failed: false,
    };
    cx.params(&raw);
    cx.limits(&raw);
    let rank_ok = cx.ranks(&raw);
    let sizes = cx.evaluate(&rank_ok);
    cx.partitions(&raw, &sizes);
    let broadcast = cx.broadcast(&raw);

    let (einsums_span, einsums_loc) = cx
        .field("einsums")
        .map_or((Span::default(), None), |(s, l)| {
            (l.span().join(s), Some(l))
        });
    let tloc = TextLoc::new(cx.text, einsums_loc, &raw.einsums, einsums_span);
    let (stmts, syntax_errors) = syntax::parse(&raw.einsums, tloc);
    cx.errors.extend(syntax_errors);
    let body = cx.einsums(&stmts);
    cx.topk_counts(&body.1, &sizes);

    let mut errors = cx.errors;
    if !errors.is_empty() {
        errors.sort_by_key(|d| (d.span.start, d.span.end));
        return Err(errors);
    }
    let (tensors, einsums, stops) = body;
    Ok(Cascade {
        name: raw.name,
        description: raw.description,
        source: raw.source,
        params: cx.params,
        ranks: cx.ranks,
        broadcast,
        tensors,
        einsums,
        stops,
    })
}

struct Cx<'a> {
    text: &'a str,
    root: Option<&'a Loc>,
    errors: Vec<Diagnostic>,
    params: Vec<Param>,
    ranks: Vec<Rank>,
    unknown_vars: BTreeSet<String>,
    /// Parameters whose default expression was rejected: sizes naming them are not evaluated.
    bad_params: BTreeSet<String>,
    /// Some `partitions` entry was rejected: flattened indices that fail to match are then not reported again.
    partition_failed: bool,
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Rank names are upper-case so that the index variable (the lower-case spelling) maps back to exactly one rank.
fn is_rank_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn list(names: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "(none declared)".into()
    } else {
        v.join(", ")
    }
}

impl<'a> Cx<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }
    fn field(&self, name: &str) -> Option<(Span, &'a Loc)> {
        self.root.and_then(|r| r.field(name))
    }
    /// Spans of the `i`-th entry of a map field: (key, value loc). Falls back to the field, then the file start.
    fn entry(&self, field: &str, i: usize) -> (Span, Option<&'a Loc>) {
        match self.field(field) {
            Some((fs, l)) => match l.entry(i) {
                Some((k, v)) => (k.span(), Some(v)),
                None => (fs, None),
            },
            None => (Span::default(), None),
        }
    }
    fn rank_id(&self, name: &str) -> Option<RankId> {
        self.ranks.iter().position(|r| r.name == name)
    }
    fn known_ranks(&self) -> String {
        list(self.ranks.iter().map(|r| r.name.clone()))
    }

    fn params(&mut self, raw: &RawCascade) {
        for (i, (name, v)) in raw.params.0.iter().enumerate() {
            let (ks, vloc) = self.entry("params", i);
            if !is_ident(name) {
                self.err(Diagnostic::new(
                    ks,
                    format!("invalid parameter name `{name}`"),
                    "expected a name of letters, digits and `_` that does not start with a digit",
                ));
            } else if let Some(prev) = self.params.iter().find(|p| &p.name == name) {
                let d = Diagnostic::new(
                    ks,
                    format!("duplicate parameter `{name}`"),
                    "expected each parameter once",
                )
                .with_secondary(prev.span, "first defined here");
                self.err(d);
            } else {
                let (default, follows) = match v {
                    RawParam::Value(v) => (*v, None),
                    RawParam::Follows(text) => match self.follows(name, text, vloc, ks) {
                        Some((v, e)) => (v, Some(e)),
                        // Reported (or caused by an earlier bad default). Declared anyway, so names of it are not
                        // reported again; sizes that use it are not evaluated.
                        None => {
                            self.bad_params.insert(name.clone());
                            (1, None)
                        }
                    },
                };
                self.params.push(Param {
                    name: name.clone(),
                    default,
                    follows,
                    span: ks,
                    range: None,
                });
            }
        }
    }

    /// `limits`: each names a parameter, its bounds are ordered, and the default lies within them.
    fn limits(&mut self, raw: &RawCascade) {
        for (i, (name, (lo, hi))) in raw.limits.0.iter().enumerate() {
            let (ks, vloc) = self.entry("limits", i);
            let vs = vloc.map_or(ks, Loc::span);
            let Some(p) = self.params.iter().position(|p| &p.name == name) else {
                let known = list(self.params.iter().map(|p| p.name.clone()));
                self.err(Diagnostic::new(
                    ks,
                    format!("limits of unknown parameter `{name}`"),
                    format!("expected a parameter of this cascade ({known})"),
                ));
                continue;
            };
            if lo > hi {
                self.err(Diagnostic::new(
                    vs,
                    format!("the limits of `{name}` are ({lo}, {hi}), an empty range"),
                    "expected (lowest, highest) with lowest ≤ highest",
                ));
                continue;
            }
            let d = self.params[p].default;
            if d < *lo || d > *hi {
                let span = self.params[p].span;
                self.err(
                    Diagnostic::new(
                        span,
                        format!(
                            "parameter `{name}` defaults to {d}, outside its limits {lo} to {hi}"
                        ),
                        format!("expected a default from {lo} to {hi}"),
                    )
                    .with_secondary(vs, "limits given here"),
                );
            }
            self.params[p].range = Some((*lo, *hi));
        }
    }

    /// A default written as an expression (`"q_len": "seq"`): it may name only parameters declared before it, so
    /// evaluating in file order needs no cycle check. Returns its value with the defaults and the expression.
    fn follows(
        &mut self,
        name: &str,
        text: &str,
        vloc: Option<&Loc>,
        ks: Span,
    ) -> Option<(i64, SizeExpr)> {
        let tl = TextLoc::new(self.text, vloc, text, ks);
        let mut e = match syntax::parse_size(text) {
            Ok(e) => e,
            Err(e) => {
                self.err(Diagnostic::new(
                    tl.map(e.span),
                    format!("invalid default for parameter `{name}`: {}", e.message),
                    format!("expected {}", e.expected),
                ));
                return None;
            }
        };
        map_size_spans(&mut e, &|s| tl.map(s));
        if e.names().iter().any(|(n, _)| self.bad_params.contains(*n)) {
            return None;
        }
        let unknown: Vec<(String, Span)> = e
            .names()
            .into_iter()
            .filter(|(n, _)| self.params.iter().all(|p| p.name != *n))
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        if !unknown.is_empty() {
            let expected = if self.params.is_empty() {
                format!("expected a parameter declared before `{name}`; none is")
            } else {
                let known = list(self.params.iter().map(|p| p.name.clone()));
                format!("expected a parameter declared before `{name}` ({known})")
            };
            for (n, s) in unknown {
                self.err(Diagnostic::new(
                    s,
                    format!("unknown name `{n}` in the default of parameter `{name}`"),
                    expected.clone(),
                ));
            }
            return None;
        }
        let earlier = |n: &str| self.params.iter().find(|p| p.name == n).map(|p| p.default);
        match e.eval(&earlier) {
            Ok(v) => Some((v, e)),
            Err(err) => {
                self.err(Diagnostic::new(
                    err.span,
                    format!(
                        "cannot evaluate the default of parameter `{name}`: {}",
                        err.message
                    ),
                    format!("expected {}", err.expected),
                ));
                None
            }
        }
    }

    /// Build the rank table; returns, per rank, whether its size parsed and names only known things.
    fn ranks(&mut self, raw: &RawCascade) -> Vec<bool> {
        let mut ok = Vec::new();
        for (i, (name, size)) in raw.ranks.0.iter().enumerate() {
            let (ks, vloc) = self.entry("ranks", i);
            if !is_rank_name(name) {
                self.err(Diagnostic::new(
                    ks,
                    format!("invalid rank name `{name}`"),
                    "expected an upper-case name such as `M` or `M1` (its index variable is then `m` or `m1`)",
                ));
                continue;
            }
            if let Some(prev) = self.ranks.iter().find(|r| &r.name == name) {
                let d = Diagnostic::new(
                    ks,
                    format!("duplicate rank `{name}`"),
                    "expected each rank once",
                )
                .with_secondary(prev.span, "first defined here");
                self.err(d);
                continue;
            }
            if let Some(p) = self.params.iter().find(|p| &p.name == name) {
                let d = Diagnostic::new(
                    ks,
                    format!("rank `{name}` has the same name as a parameter"),
                    "expected rank and parameter names to differ",
                )
                .with_secondary(p.span, "parameter defined here");
                self.err(d);
            }
            let tl = TextLoc::new(self.text, vloc, size, ks);
            let (expr, good) = match syntax::parse_size(size) {
                Ok(mut e) => {
                    map_size_spans(&mut e, &|s| tl.map(s));
                    (e, true)
                }
                Err(e) => {
                    self.err(Diagnostic::new(
                        tl.map(e.span),
                        format!("invalid size for rank `{name}`: {}", e.message),
                        format!("expected {}", e.expected),
                    ));
                    (SizeExpr::Num(1), false)
                }
            };
            self.ranks.push(Rank {
                name: name.clone(),
                size: expr,
                part_of: None,
                parts: Vec::new(),
                span: ks,
            });
            ok.push(good);
        }
        // Names in sizes must be parameters or ranks.
        let mut diags = Vec::new();
        for (r, good) in self.ranks.iter().zip(ok.iter_mut()) {
            for (n, s) in r.size.names() {
                if self.bad_params.contains(n) {
                    *good = false; // its default was reported
                } else if self.params.iter().all(|p| p.name != n) && self.rank_id(n).is_none() {
                    diags.push(Diagnostic::new(
                        s,
                        format!("unknown name `{n}` in the size of rank `{}`", r.name),
                        format!(
                            "expected a parameter ({}) or a rank ({})",
                            list(self.params.iter().map(|p| p.name.clone())),
                            self.known_ranks()
                        ),
                    ));
                    *good = false;
                }
            }
        }
        self.errors.extend(diags);
        ok
    }

    /// Evaluate every rank with the parameter defaults; `None` where that fails (already reported).
    fn evaluate(&mut self, ok: &[bool]) -> Vec<Option<i64>> {
        let params: Vec<(String, i64)> = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default))
            .collect();
        let ranks: Vec<(&str, &SizeExpr)> = self
            .ranks
            .iter()
            .map(|r| (r.name.as_str(), &r.size))
            .collect();
        let results = eval_ranks(&params, &ranks);
        let mut out = Vec::new();
        let mut diags = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            let rank = &self.ranks[i];
            let value_span = self.entry_value_span(&rank.name);
            match r {
                _ if !ok[i] => out.push(None),
                Ok(v) if v > 0 => out.push(Some(v)),
                Ok(v) => {
                    diags.push(Diagnostic::new(
                        value_span,
                        format!("rank `{}` has size {v}", rank.name),
                        "expected a positive size (with the parameter defaults)",
                    ));
                    out.push(None);
                }
                Err(RankEvalError::Expr(e)) => {
                    let span = if e.span == Span::default() {
                        value_span
                    } else {
                        e.span
                    };
                    diags.push(Diagnostic::new(
                        span,
                        format!(
                            "cannot evaluate the size of rank `{}`: {}",
                            rank.name, e.message
                        ),
                        format!("expected {}", e.expected),
                    ));
                    out.push(None);
                }
                Err(RankEvalError::Cycle(c)) => {
                    let mut names: Vec<&str> =
                        c.iter().map(|&k| self.ranks[k].name.as_str()).collect();
                    names.push(&rank.name);
                    diags.push(Diagnostic::new(
                        value_span,
                        format!("the size of rank `{}` depends on itself", rank.name),
                        format!("expected sizes without a cycle; here {}", names.join(" → ")),
                    ));
                    out.push(None);
                }
                Err(RankEvalError::Dep(_)) => out.push(None),
            }
        }
        self.errors.extend(diags);
        out
    }

    fn entry_value_span(&self, rank: &str) -> Span {
        let Some((fs, l)) = self.field("ranks") else {
            return Span::default();
        };
        if let Loc::Map { entries, .. } = l {
            for (k, v) in entries {
                if self
                    .text
                    .get(k.span().range())
                    .is_some_and(|t| t.trim_matches('"') == rank)
                {
                    return v.span();
                }
            }
        }
        fs
    }

    fn partitions(&mut self, raw: &RawCascade, sizes: &[Option<i64>]) {
        for (i, (parent, parts)) in raw.partitions.0.iter().enumerate() {
            let (ks, vloc) = self.entry("partitions", i);
            let vs = vloc.map_or(ks, Loc::span);
            let Some(pid) = self.rank_id(parent) else {
                let d = Diagnostic::new(
                    ks,
                    format!("unknown rank `{parent}` in `partitions`"),
                    format!("expected a rank from `ranks` ({})", self.known_ranks()),
                );
                self.err(d);
                self.partition_failed = true;
                continue;
            };
            if !self.ranks[pid].parts.is_empty() {
                self.err(Diagnostic::new(
                    ks,
                    format!("rank `{parent}` is partitioned twice"),
                    "expected one partition per rank",
                ));
                self.partition_failed = true;
                continue;
            }
            if parts.len() < 2 {
                self.err(Diagnostic::new(
                    vs,
                    format!("the partition of `{parent}` has {} part(s)", parts.len()),
                    "expected at least two parts, outer to inner, e.g. [\"M1\", \"M0\"]",
                ));
                self.partition_failed = true;
                continue;
            }
            let mut ids = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let ps = vloc.and_then(|l| l.item(j)).map_or(vs, Loc::span);
                match self.rank_id(part) {
                    None => {
                        let d = Diagnostic::new(
                            ps,
                            format!("unknown rank `{part}` in the partition of `{parent}`"),
                            format!("expected a rank from `ranks` ({})", self.known_ranks()),
                        );
                        self.err(d);
                    }
                    Some(id) if id == pid || ids.contains(&id) => {
                        self.err(Diagnostic::new(
                            ps,
                            format!("rank `{part}` appears twice in the partition of `{parent}`"),
                            "expected distinct parts, none equal to the partitioned rank",
                        ));
                    }
                    Some(id) => {
                        if let Some((other, _)) = self.ranks[id].part_of {
                            let d = Diagnostic::new(
                                ps,
                                format!(
                                    "rank `{part}` is already a part of `{}`",
                                    self.ranks[other].name
                                ),
                                "expected each rank to be part of at most one partition",
                            );
                            self.err(d);
                        } else {
                            ids.push(id);
                        }
                    }
                }
            }
            if ids.len() != parts.len() {
                self.partition_failed = true;
                continue;
            }
            for (pos, &id) in ids.iter().enumerate() {
                self.ranks[id].part_of = Some((pid, pos));
            }
            self.ranks[pid].parts = ids.clone();
            // Check the cover with the defaults, when every size evaluated.
            let vals: Option<Vec<i64>> = std::iter::once(pid)
                .chain(ids.iter().copied())
                .map(|r| sizes[r])
                .collect();
            if let Some(vals) = vals {
                if let Err(e) = partition_cover(vals[0], &vals[1..]) {
                    let names: Vec<&str> = parts.iter().map(String::as_str).collect();
                    let nums: Vec<String> = vals[1..].iter().map(i64::to_string).collect();
                    let (outer, inner) = (names[0], names[names.len() - 1]);
                    self.err(
                        Diagnostic::new(
                            vs,
                            format!("the parts of rank `{parent}` do not cover it with less than one tile of padding"),
                            format!(
                                "{} = {}{} (with the parameter defaults)",
                                names.join(" × "),
                                nums.join(" × "),
                                e.describe(parent, vals[0])
                            ),
                        )
                        .with_note(format!(
                            "help: size the outer part by rounding up, e.g. `\"{outer}\": \"ceil({parent}, {inner})\"`; \
                             the last {inner} tile may then be partial"
                        )),
                    );
                }
            }
        }
    }

    fn broadcast(&mut self, raw: &RawCascade) -> Vec<RankId> {
        let mut out = Vec::new();
        let loc = self.field("broadcast");
        for (i, name) in raw.broadcast.iter().enumerate() {
            let span = loc
                .and_then(|(_, l)| l.item(i))
                .map_or(loc.map_or(Span::default(), |(s, _)| s), Loc::span);
            match self.rank_id(name) {
                None => {
                    let d = Diagnostic::new(
                        span,
                        format!("unknown rank `{name}` in `broadcast`"),
                        format!("expected a rank from `ranks` ({})", self.known_ranks()),
                    );
                    self.err(d);
                }
                Some(id) if out.contains(&id) => {
                    self.err(Diagnostic::new(
                        span,
                        format!("rank `{name}` is listed twice in `broadcast`"),
                        "expected each rank once",
                    ));
                }
                Some(id) => out.push(id),
            }
        }
        out
    }

    /// Rank of an index variable (`m1` ↔ `M1`), reporting an unknown one.
    fn var_rank(&mut self, var: &str, span: Span) -> Option<RankId> {
        let upper = var.to_ascii_uppercase();
        let id = self.rank_id(&upper);
        // Report each unknown index variable once, at its first use.
        if id.is_none() && self.unknown_vars.insert(var.to_string()) {
            let vars = list(self.ranks.iter().map(|r| r.name.to_ascii_lowercase()));
            self.err(Diagnostic::new(
                span,
                format!("index `{var}` names rank `{upper}`, which is not in the rank table"),
                format!("expected an index of a declared rank: {vars}"),
            ));
        }
        id
    }

    /// With the parameter defaults, every `topk(r, k)` must keep 1 ≤ k ≤ |r| (`Env` re-checks each
    /// configuration). Counts that do not evaluate were reported by `size_names`.
    fn topk_counts(&mut self, einsums: &[Einsum], sizes: &[Option<i64>]) {
        let defaults: Vec<(String, i64)> = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default))
            .collect();
        for es in einsums {
            for red in &es.reductions {
                let ReduceOp::TopK(k) = &red.op else {
                    continue;
                };
                let Some(n) = sizes.get(red.rank).copied().flatten() else {
                    continue;
                };
                let lookup = |name: &str| {
                    defaults
                        .iter()
                        .find(|(p, _)| p == name)
                        .map(|(_, v)| *v)
                        .or_else(|| {
                            let r = self.ranks.iter().position(|r| r.name == name)?;
                            sizes.get(r).copied().flatten()
                        })
                };
                if let Ok(v) = k.eval(&lookup) {
                    if v < 1 || v > n {
                        let rank = &self.ranks[red.rank].name;
                        self.err(Diagnostic::new(
                            red.span,
                            format!("`topk` keeps `{k}` = {v} of rank `{rank}`, which has {n} (with the parameter defaults)"),
                            format!("expected a count from 1 to {n}"),
                        ));
                    }
                }
            }
        }
    }

    fn size_names(&mut self, e: &SizeExpr) -> bool {
        let mut good = true;
        for (n, s) in e.names() {
            if self.params.iter().all(|p| p.name != n) && self.rank_id(n).is_none() {
                let d = Diagnostic::new(
                    s,
                    format!("unknown name `{n}`"),
                    format!(
                        "expected a parameter ({}) or a rank ({})",
                        list(self.params.iter().map(|p| p.name.clone())),
                        self.known_ranks()
                    ),
                );
                self.err(d);
                good = false;
            }
        }
        good
    }

    fn index(&mut self, ix: &AstIndex) -> Option<Index> {
        Some(match ix {
            AstIndex::Var { var, span } => Index::Var {
                rank: self.var_rank(var, *span)?,
                span: *span,
            },
            AstIndex::Shift { var, offset, span } => Index::Shift {
                rank: self.var_rank(var, *span)?,
                offset: *offset,
                span: *span,
            },
            AstIndex::Fixed { var, at, span } => {
                let rank = self.var_rank(var, *span);
                let names_ok = self.size_names(at);
                if !names_ok {
                    return None;
                }
                Index::Fixed {
                    rank: rank?,
                    at: at.clone(),
                    span: *span,
                }
            }
            AstIndex::Final { rank, span } => {
                let Some(id) = self.rank_id(rank) else {
                    let d = Diagnostic::new(
                        *span,
                        format!("unknown rank `{rank}`"),
                        format!(
                            "expected a rank from `ranks` ({}) to index its final value",
                            self.known_ranks()
                        ),
                    );
                    self.err(d);
                    return None;
                };
                Index::Fixed {
                    rank: id,
                    at: SizeExpr::Name(rank.clone(), *span),
                    span: *span,
                }
            }
            AstIndex::Filter {
                var,
                bound,
                cmp,
                span,
            } => {
                let rank = self.var_rank(var, *span);
                let b = self.var_rank(bound, *span);
                Index::Filter {
                    rank: rank?,
                    bound: b?,
                    cmp: *cmp,
                    span: *span,
                }
            }
            AstIndex::Flatten { terms, span } => {
                let ids: Vec<Option<RankId>> = terms
                    .iter()
                    .map(|t| self.var_rank(&t.var, t.var_span))
                    .collect();
                let ids: Vec<RankId> = ids.into_iter().collect::<Option<_>>()?;
                let text = self.text.get(span.range()).unwrap_or("").to_string();
                let parent = self.ranks.iter().position(|r| r.parts == ids);
                let expected_of = |cx: &Self, parts: &[RankId]| -> String {
                    let mut s = Vec::new();
                    for (i, p) in parts.iter().enumerate() {
                        let mut t = cx.ranks[*p].name.to_ascii_lowercase();
                        for q in &parts[i + 1..] {
                            t.push('*');
                            t.push_str(&cx.ranks[*q].name);
                        }
                        s.push(t);
                    }
                    s.join("+")
                };
                let Some(parent) = parent else {
                    if self.partition_failed {
                        return None;
                    }
                    let known: Vec<String> = self
                        .ranks
                        .iter()
                        .filter(|r| !r.parts.is_empty())
                        .map(|r| format!("`{}` for {}", expected_of(self, &r.parts), r.name))
                        .collect();
                    let label = if known.is_empty() {
                        "expected a flattening of a partition, but `partitions` declares none"
                            .to_string()
                    } else {
                        format!(
                            "expected the flattening of a declared partition: {}",
                            known.join(", ")
                        )
                    };
                    self.err(Diagnostic::new(
                        *span,
                        format!("`{text}` does not match a declared partition"),
                        label,
                    ));
                    return None;
                };
                // Each term's multipliers must be exactly the inner parts.
                for (i, t) in terms.iter().enumerate() {
                    let want: BTreeSet<&str> = ids[i + 1..]
                        .iter()
                        .map(|&p| self.ranks[p].name.as_str())
                        .collect();
                    let got: BTreeSet<&str> = t.mults.iter().map(|(n, _)| n.as_str()).collect();
                    if want != got || t.mults.len() != want.len() {
                        let expected = expected_of(self, &ids);
                        self.err(Diagnostic::new(
                            *span,
                            format!(
                                "`{text}` does not match the partition of `{}`",
                                self.ranks[parent].name
                            ),
                            format!("expected `{expected}`"),
                        ));
                        return None;
                    }
                }
                Index::Flatten {
                    rank: parent,
                    parts: ids,
                    span: *span,
                }
            }
        })
    }

    fn einsums(&mut self, stmts: &[Stmt]) -> (Vec<Tensor>, Vec<Einsum>, Vec<Stop>) {
        // 1. Declarations: inputs, then written tensors in order of first appearance.
        let mut decls: HashMap<String, Decl> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for s in stmts {
            if let Stmt::Input(refs) = s {
                for r in refs {
                    if let Some(d) = decls.get(&r.name) {
                        let d = Diagnostic::new(
                            r.span,
                            format!("input `{}` is declared twice", r.name),
                            "expected each input once",
                        )
                        .with_secondary(d.span, "first declared here");
                        self.err(d);
                        continue;
                    }
                    let mut ranks = Vec::new();
                    for ix in &r.indices {
                        match ix {
                            AstIndex::Var { var, span } => ranks.push(self.var_rank(var, *span)),
                            other => {
                                self.err(Diagnostic::new(
                                    other.span(),
                                    format!("input `{}` is declared with a computed index", r.name),
                                    "expected a plain index variable such as `m`",
                                ));
                                ranks.push(None);
                            }
                        }
                    }
                    decls.insert(
                        r.name.clone(),
                        Decl {
                            ranks,
                            span: r.span,
                            input: true,
                        },
                    );
                    order.push(r.name.clone());
                }
            }
        }
        let einsum_stmts: Vec<&syntax::AstEinsum> = stmts
            .iter()
            .filter_map(|s| {
                if let Stmt::Einsum(e) = s {
                    Some(e)
                } else {
                    None
                }
            })
            .collect();
        let lhss: Vec<&AstRef> = stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::Einsum(e) => Some(&e.lhs),
                Stmt::Broken(lhs) => Some(lhs),
                _ => None,
            })
            .collect();
        for lhs in &lhss {
            if let Some(d) = decls.get(&lhs.name) {
                if d.input {
                    let d = Diagnostic::new(
                        lhs.name_span,
                        format!("input `{}` is written by an Einsum", lhs.name),
                        "expected an input to be only read",
                    )
                    .with_secondary(d.span, "declared as an input here");
                    self.err(d);
                }
                continue;
            }
            let ranks = lhs.indices.iter().map(|ix| self.index_rank(ix)).collect();
            decls.insert(
                lhs.name.clone(),
                Decl {
                    ranks,
                    span: lhs.span,
                    input: false,
                },
            );
        }
        // Tensor ids: inputs first, then first appearance in the statements (left-hand side before right).
        for s in stmts {
            let mut names = Vec::new();
            match s {
                Stmt::Einsum(e) => {
                    names.push(e.lhs.name.clone());
                    names.extend(ast_refs(&e.rhs).iter().map(|r| r.name.clone()));
                }
                Stmt::Broken(lhs) => names.push(lhs.name.clone()),
                _ => {}
            }
            for n in names {
                if decls.contains_key(&n) && !order.contains(&n) {
                    order.push(n);
                }
            }
        }
        let tid: HashMap<&str, TensorId> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();

        // 2. Each Einsum.
        let mut einsums = Vec::new();
        let mut all_ok = true;
        let mut read = vec![false; order.len()];
        for e in &einsum_stmts {
            let out = self.tensor_ref(&e.lhs, &decls, &tid, true);
            let rhs = self.expr(&e.rhs, &decls, &tid);
            let Some(rhs) = rhs else {
                all_ok = false;
                continue;
            };
            for r in rhs.refs() {
                if r.tensor != out.as_ref().map_or(usize::MAX, |o| o.tensor) {
                    read[r.tensor] = true;
                }
            }
            let Some(out) = out else {
                all_ok = false;
                continue;
            };
            if decls.get(&e.lhs.name).is_some_and(|d| d.input) {
                all_ok = false;
                continue;
            }
            match self.einsum_semantics(e, out, rhs) {
                Some(ein) => einsums.push(ein),
                None => all_ok = false,
            }
        }
        // A tensor read by its own (loop-carried) update counts as read only if someone else reads it.
        for ein in &einsums {
            for r in ein.expr.refs() {
                if r.tensor != ein.output.tensor {
                    read[r.tensor] = true;
                }
            }
        }

        // 3. Writers and iterative tensors.
        let mut tensors: Vec<Tensor> = order
            .iter()
            .map(|n| {
                let d = &decls[n];
                Tensor {
                    name: n.clone(),
                    ranks: d.ranks.iter().map(|r| r.unwrap_or(0)).collect(),
                    kind: if d.input {
                        TensorKind::Input
                    } else if read[tid[n.as_str()]] {
                        TensorKind::Intermediate
                    } else {
                        TensorKind::Output
                    },
                    iterative_rank: None,
                }
            })
            .collect();
        for (t, tensor) in tensors.iter_mut().enumerate() {
            let writers: Vec<&Einsum> = einsums.iter().filter(|e| e.output.tensor == t).collect();
            let shift_pos = |e: &Einsum| {
                e.output
                    .indices
                    .iter()
                    .position(|i| matches!(i, Index::Shift { .. }))
            };
            let fixed_at =
                |e: &Einsum, p: usize| matches!(e.output.indices.get(p), Some(Index::Fixed { .. }));
            let iter_writer = writers.iter().find_map(|e| shift_pos(e).map(|p| (e, p)));
            if let Some((w, p)) = iter_writer {
                tensor.iterative_rank = Some(w.output.indices[p].rank());
            }
            let valid_pair = writers.len() == 2
                && iter_writer.is_some_and(|(w, p)| {
                    writers
                        .iter()
                        .any(|o| !std::ptr::eq(*o, *w) && fixed_at(o, p))
                });
            if writers.len() > 1 && !valid_pair {
                for w in &writers[1..] {
                    let d = Diagnostic::new(
                        w.output.span,
                        format!("tensor `{}` is written more than once", tensor.name),
                        "expected a single Einsum writing this tensor",
                    )
                    .with_secondary(writers[0].output.span, "first written here")
                    .with_note(
                        "note: only an iterative tensor has two writers: an initialisation such as `RM[m1=0,p] = -inf` \
                         and an update such as `RM[m1+1,p] = ...`",
                    );
                    self.err(d);
                }
            } else if let Some((w, p)) = iter_writer {
                if writers.len() == 1 {
                    let rank = self.ranks[w.output.indices[p].rank()]
                        .name
                        .to_ascii_lowercase();
                    self.err(Diagnostic::new(
                        w.output.span,
                        format!("iterative tensor `{}` is never initialised", tensor.name),
                        format!(
                            "expected an initialisation such as `{}[{rank}=0, ...] = 0` in `init:`",
                            tensor.name
                        ),
                    ));
                }
            }
        }

        // 4. Dataflow cycles (only meaningful when every Einsum resolved).
        if all_ok {
            self.cycles(&einsums, &tensors);
        }

        // 5. Stopping conditions.
        let mut stops: Vec<Stop> = Vec::new();
        for s in stmts {
            let Stmt::Until {
                var,
                var_span,
                cmp,
                bound,
                span,
            } = s
            else {
                continue;
            };
            let rank = self.var_rank(var, *var_span);
            let names_ok = self.size_names(bound);
            let Some(rank) = rank else { continue };
            if !tensors.iter().any(|t| t.iterative_rank == Some(rank)) {
                self.err(Diagnostic::new(
                    *var_span,
                    format!(
                        "`until` on rank `{}`, which no Einsum iterates",
                        self.ranks[rank].name
                    ),
                    format!(
                        "expected an iterative rank, written `{var}+1` on the left of an update"
                    ),
                ));
                continue;
            }
            if let Some(prev) = stops.iter().find(|st| st.rank == rank) {
                let d = Diagnostic::new(
                    *span,
                    format!(
                        "rank `{}` has two stopping conditions",
                        self.ranks[rank].name
                    ),
                    "expected one `until` per rank",
                )
                .with_secondary(prev.span, "first given here");
                self.err(d);
                continue;
            }
            if names_ok {
                stops.push(Stop {
                    rank,
                    cmp: *cmp,
                    bound: bound.clone(),
                    span: *span,
                });
            }
        }
        (tensors, einsums, stops)
    }

    /// The rank an index position ranges over, without reporting (used for declarations; errors come later).
    fn index_rank(&self, ix: &AstIndex) -> Option<RankId> {
        match ix {
            AstIndex::Var { var, .. }
            | AstIndex::Shift { var, .. }
            | AstIndex::Fixed { var, .. }
            | AstIndex::Filter { var, .. } => self.rank_id(&var.to_ascii_uppercase()),
            AstIndex::Final { rank, .. } => self.rank_id(rank),
            AstIndex::Flatten { terms, .. } => {
                let ids: Option<Vec<RankId>> = terms
                    .iter()
                    .map(|t| self.rank_id(&t.var.to_ascii_uppercase()))
                    .collect();
                let ids = ids?;
                self.ranks.iter().position(|r| r.parts == ids)
            }
        }
    }

    fn tensor_ref(
        &mut self,
        r: &AstRef,
        decls: &HashMap<String, Decl>,
        tid: &HashMap<&str, TensorId>,
        is_lhs: bool,
    ) -> Option<TensorRef> {
        let indices: Vec<Option<Index>> = r.indices.iter().map(|ix| self.index(ix)).collect();
        let (Some(decl), Some(&t)) = (decls.get(r.name.as_str()), tid.get(r.name.as_str())) else {
            if !is_lhs {
                self.err(Diagnostic::new(
                    r.name_span,
                    format!("unknown tensor `{}`", r.name),
                    "expected a declared input or a tensor written by an Einsum",
                ));
            }
            return None;
        };
        let (ranks, decl_span) = (&decl.ranks, decl.span);
        let what = if decl.input {
            "declared"
        } else {
            "first written"
        };
        if ranks.len() != r.indices.len() {
            let plural = |n: usize| if n == 1 { "index" } else { "indices" };
            let decl_text = self.text.get(decl_span.range()).unwrap_or("").to_string();
            let d = Diagnostic::new(
                r.span,
                format!(
                    "`{}` has {} {} here, but {} where it is {what}",
                    r.name,
                    r.indices.len(),
                    plural(r.indices.len()),
                    ranks.len()
                ),
                format!(
                    "expected {} {}, as in `{decl_text}`",
                    ranks.len(),
                    plural(ranks.len())
                ),
            )
            .with_secondary(decl_span, format!("{what} here"));
            self.err(d);
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (pos, ix) in indices.into_iter().enumerate() {
            let Some(ix) = ix else {
                ok = false;
                continue;
            };
            if let Some(want) = ranks[pos] {
                if ix.rank() != want {
                    let (got, want) = (&self.ranks[ix.rank()].name, &self.ranks[want].name);
                    let d = Diagnostic::new(
                        ix.span(),
                        format!("this index ranges over rank `{got}`, but position {} of `{}` is rank `{want}`", pos + 1, r.name),
                        format!("expected an index over `{want}` such as `{}`", want.to_ascii_lowercase()),
                    )
                    .with_secondary(decl_span, format!("{what} here"));
                    self.err(d);
                    ok = false;
                    continue;
                }
            }
            out.push(ix);
        }
        ok.then_some(TensorRef {
            tensor: t,
            indices: out,
            span: r.span,
        })
    }

    fn expr(
        &mut self,
        e: &AstExpr,
        decls: &HashMap<String, Decl>,
        tid: &HashMap<&str, TensorId>,
    ) -> Option<Expr> {
        Some(match e {
            AstExpr::Ref(r) => Expr::Ref(self.tensor_ref(r, decls, tid, false)?),
            AstExpr::Const(v, _) => Expr::Const(*v),
            AstExpr::Unary { op, arg, span } => Expr::Unary {
                op: *op,
                arg: Box::new(self.expr(arg, decls, tid)?),
                span: *span,
            },
            AstExpr::Binary { op, lhs, rhs, span } => {
                let l = self.expr(lhs, decls, tid);
                let r = self.expr(rhs, decls, tid);
                Expr::Binary {
                    op: *op,
                    lhs: Box::new(l?),
                    rhs: Box::new(r?),
                    span: *span,
                }
            }
        })
    }

    /// Reductions and index binding of one Einsum whose references all resolved.
    fn einsum_semantics(
        &mut self,
        e: &syntax::AstEinsum,
        output: TensorRef,
        expr: Expr,
    ) -> Option<Einsum> {
        let mut ok = true;
        let shifts: Vec<&Index> = output
            .indices
            .iter()
            .filter(|i| matches!(i, Index::Shift { .. }))
            .collect();
        if shifts.len() > 1 {
            self.err(Diagnostic::new(
                shifts[1].span(),
                "an Einsum may iterate over only one rank",
                "expected a single shifted index such as `m1+1` on the left",
            ));
            ok = false;
        }
        for s in &shifts {
            if let Index::Shift { offset, span, .. } = s {
                if *offset <= 0 {
                    self.err(Diagnostic::new(
                        *span,
                        "an iterative update must move forward",
                        "expected a positive shift such as `m1+1`",
                    ));
                    ok = false;
                }
            }
        }
        let lhs_iter: BTreeSet<RankId> = output
            .indices
            .iter()
            .flat_map(|i| i.iterated().iter().copied())
            .collect();
        let refs = expr.refs();
        let mut rhs_iter: BTreeSet<RankId> = BTreeSet::new();
        for r in &refs {
            for ix in &r.indices {
                rhs_iter.extend(ix.iterated().iter().copied());
                if let Index::Filter { bound, .. } = ix {
                    rhs_iter.insert(*bound);
                }
            }
        }
        let mut reductions: Vec<Reduction> = Vec::new();
        for red in &e.reductions {
            let Some(rank) = self.var_rank(&red.var, red.span) else {
                ok = false;
                continue;
            };
            let name = &self.ranks[rank].name;
            let problem = if lhs_iter.contains(&rank) {
                Some("it is kept on the left-hand side")
            } else if !rhs_iter.contains(&rank) {
                Some("it is not an index of the right-hand side")
            } else if reductions.iter().any(|r| r.rank == rank) {
                Some("it is already reduced")
            } else {
                None
            };
            if let Some(p) = problem {
                self.err(Diagnostic::new(
                    red.span,
                    format!("cannot reduce over `{}` (rank `{name}`): {p}", red.var),
                    "expected an index that appears on the right-hand side and not on the left",
                ));
                ok = false;
                continue;
            }
            let op = match &red.op {
                AstReduceOp::Sum => ReduceOp::Sum,
                AstReduceOp::Max => ReduceOp::Max,
                AstReduceOp::Min => ReduceOp::Min,
                AstReduceOp::TopK(k) => {
                    if !self.size_names(k) {
                        ok = false;
                    }
                    ReduceOp::TopK(k.clone())
                }
            };
            reductions.push(Reduction {
                rank,
                op,
                span: red.span,
            });
        }
        if !refs.is_empty() {
            for ix in &output.indices {
                for &r in ix.iterated() {
                    if !rhs_iter.contains(&r) {
                        let var = self.ranks[r].name.to_ascii_lowercase();
                        self.err(Diagnostic::new(
                            ix.span(),
                            format!("index `{var}` on the left is not bound on the right-hand side"),
                            format!("expected `{var}` to index a tensor on the right (only a constant may fill a whole rank)"),
                        ));
                        ok = false;
                    }
                }
            }
        }
        ok.then(|| Einsum {
            name: e.lhs.name.clone(),
            section: e.section,
            output,
            expr,
            reductions,
            span: e.span,
            comment: e.comment.clone(),
        })
    }

    /// Report dataflow cycles that do not go through a loop-carried read.
    fn cycles(&mut self, einsums: &[Einsum], tensors: &[Tensor]) {
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..einsums.len()).map(|i| g.add_node(i)).collect();
        for (reader, e) in einsums.iter().enumerate() {
            for r in e.expr.refs() {
                let t = &tensors[r.tensor];
                for (writer, w) in einsums.iter().enumerate() {
                    if w.output.tensor != r.tensor {
                        continue;
                    }
                    let is_update = w
                        .output
                        .indices
                        .iter()
                        .any(|i| matches!(i, Index::Shift { .. }));
                    let edge = match t.iterative_rank {
                        None => true,
                        Some(rank) => {
                            let pos = t.ranks.iter().position(|&x| x == rank);
                            match pos.and_then(|p| r.indices.get(p)) {
                                // `T[m1]`: the previous iteration's value — from the initialisation, loop-carried
                                // from the update.
                                Some(Index::Var { .. }) => !is_update,
                                // `T[m1+1]`: this iteration's value, from the update.
                                Some(Index::Shift { .. }) => is_update,
                                _ => true,
                            }
                        }
                    };
                    if edge {
                        g.update_edge(nodes[writer], nodes[reader], ());
                    }
                }
            }
        }
        for scc in petgraph::algo::tarjan_scc(&g) {
            let cyclic = scc.len() > 1 || scc.first().is_some_and(|&n| g.contains_edge(n, n));
            if !cyclic {
                continue;
            }
            let mut ids: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
            ids.sort_unstable();
            let first = &einsums[ids[0]];
            let names: Vec<String> = ids
                .iter()
                .map(|&i| format!("`{}`", einsums[i].name))
                .collect();
            let message = if ids.len() == 1 {
                format!("dataflow cycle: `{}` reads its own output", first.name)
            } else {
                format!("dataflow cycle between {}", names.join(", "))
            };
            let mut d = Diagnostic::new(
                first.span,
                message,
                "this Einsum depends on its own output through a non-iterative read",
            );
            for &i in &ids[1..] {
                d = d.with_secondary(einsums[i].span, "part of the cycle");
            }
            d = d.with_note(
                "help: only loop-carried reads may form a cycle: an update `T[m1+1,...] = ...` may read `T[m1,...]`",
            );
            self.err(d);
        }
    }
}

/// What fixes a tensor's ranks: its `input` declaration or its first writer's left-hand side.
struct Decl {
    ranks: Vec<Option<RankId>>,
    span: Span,
    input: bool,
}

fn ast_refs(e: &AstExpr) -> Vec<&AstRef> {
    match e {
        AstExpr::Ref(r) => vec![r],
        AstExpr::Const(..) => vec![],
        AstExpr::Unary { arg, .. } => ast_refs(arg),
        AstExpr::Binary { lhs, rhs, .. } => {
            let mut v = ast_refs(lhs);
            v.extend(ast_refs(rhs));
            v
        }
    }
}
