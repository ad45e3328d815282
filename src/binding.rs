//! The binding check: every name a binding uses, against the arch and the cascade it names, before mapping.
//!
//! A binding (`bindings: [Binding(...)]` in an arch file) names its cascade, the cascade's ranks, Einsums and
//! tensors, the arch's units and storage levels, and its own partition parts, stages and loops, all as strings.
//! [`crate::mapping`] looks them up one at a time while it builds a program, so without this check a typo
//! surfaced as the first mapping error, without a location, or not at all (a misspelled rank in `spatial` was
//! skipped, and the whole tile then ran on one PE). [`check_binding`] checks every name of every binding for
//! one cascade and reports each problem as a located diagnostic that says what was expected and lists the valid
//! names. [`check_bindings`] does so for every binding of an arch, finding each cascade by name.
//! [`load_arch`] is the arch loader the CLI and [`crate::run`] use: it resolves the hardware
//! ([`crate::arch::load`]) and checks the bindings, and reports both kinds of problem together.
//!
//! The check reads a binding the way `mapping` does, and must stay in step with it: a rank a binding partitions
//! is replaced by its parts, loops and `spatial` name ranks or parts in lower case and are matched ignoring
//! case, and a free Einsum (a re-indexing or a constant, [`crate::ops::is_free`]) needs no unit. Everything
//! here depends only on names, never on parameter values: whether sizes divide and tiles fit is mapping's
//! business.

use crate::arch::{self, Arch, ArchFile, BindingFile, SizeRule, StageFile, StorageKind, UnitKind};
use crate::cascade::{self, Cascade, EinsumId, Loc, Section, TextLoc};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::expr::SizeExpr;
use crate::library::{self, Kind};
use crate::ops::is_free;
use std::collections::BTreeMap;

/// Parse an arch file, resolve its hardware and check its bindings: every problem of both kinds, or the
/// [`Arch`]. `energy` finds energy tables and `cascades` the cascades bindings name; `overrides` are `--set`
/// values for the arch's parameters.
pub fn load_arch(
    file: &SourceFile,
    energy: &dyn Fn(&str) -> Option<SourceFile>,
    cascades: &dyn Fn(&str) -> Option<SourceFile>,
    overrides: &BTreeMap<String, i64>,
) -> Result<Arch, Diagnostics> {
    load_bound(file, energy, cascades, overrides).map(|(arch, _)| arch)
}

/// [`load_arch`], also returning the cascades the bindings name, loaded and checked, keyed by the `cascade`
/// field as written (a shipped name or a path): a run needs them to match a requested cascade to bindings.
pub fn load_bound(
    file: &SourceFile,
    energy: &dyn Fn(&str) -> Option<SourceFile>,
    cascades: &dyn Fn(&str) -> Option<SourceFile>,
    overrides: &BTreeMap<String, i64>,
) -> Result<(Arch, BTreeMap<String, Cascade>), Diagnostics> {
    let parsed = arch::parse(file)?;
    let resolved = arch::load_parsed(file, &parsed, energy, overrides);
    let (bindings, loaded) = check_and_load(file, &parsed, cascades);
    match resolved {
        Ok(a) if bindings.items.is_empty() => Ok((a, loaded)),
        Ok(_) => Err(bindings),
        Err(mut d) => {
            d.items.extend(bindings.items);
            Err(d)
        }
    }
}

/// Check every binding of `arch` (parsed from `file`), loading the cascade each names with `cascades`. A
/// binding naming an unknown cascade, or one that does not load, is itself an error; its other names are then
/// checked as far as the arch alone allows. No items means no problems.
pub fn check_bindings(
    file: &SourceFile,
    arch: &ArchFile,
    cascades: &dyn Fn(&str) -> Option<SourceFile>,
) -> Diagnostics {
    check_and_load(file, arch, cascades).0
}

/// [`check_bindings`], and the cascades that loaded, by `cascade` field.
fn check_and_load(
    file: &SourceFile,
    arch: &ArchFile,
    cascades: &dyn Fn(&str) -> Option<SourceFile>,
) -> (Diagnostics, BTreeMap<String, Cascade>) {
    let root = cascade::locate(&file.text);
    let mut cx = Checker::new(file, arch, root.as_ref());
    let mut loaded: BTreeMap<&str, Option<Cascade>> = BTreeMap::new();
    // The field that first bound each declared cascade name, with the file's text: a run finds its bindings by
    // that name, so two different cascades under one name would share bindings meant for one of them.
    let mut declared: BTreeMap<String, (&str, String)> = BTreeMap::new();
    for (i, b) in arch.bindings.iter().enumerate() {
        let name = b.cascade.as_str();
        if !loaded.contains_key(name) {
            let c = cascades(name).map(|f| (cascade::load(&f).map_err(|d| d.file.name), f.text));
            let span = cx.binding_field(i, "cascade", name);
            let c = match c {
                None if library::is_path(name) => {
                    cx.err(Diagnostic::new(
                        span,
                        format!("cannot read cascade file `{name}`"),
                        "expected a cascade file, relative to the arch file's directory or the working directory",
                    ));
                    None
                }
                None => {
                    let shipped = library::names(Kind::Cascade);
                    cx.err(
                        Diagnostic::new(
                            span,
                            format!("unknown cascade `{name}`"),
                            format!(
                                "expected a shipped cascade (a file in workloads/cascades/) or a path ending in .ron{}",
                                did_you_mean(name, &shipped)
                            ),
                        )
                        .with_note(format!("shipped cascades: {}", shipped.join(", "))),
                    );
                    None
                }
                Some((Err(path), _)) => {
                    cx.err(
                        Diagnostic::new(
                            span,
                            format!("cascade `{name}` does not load"),
                            "expected a cascade without errors",
                        )
                        .with_note(format!("`einsim check {path}` lists its errors")),
                    );
                    None
                }
                Some((Ok(c), text)) => {
                    match declared.get(&c.name) {
                        Some((first, t)) if *t != text => {
                            let first = *first;
                            cx.err(Diagnostic::new(
                                span,
                                format!("`{name}` and `{first}` are different cascades both named `{}`", c.name),
                                "expected one cascade per name: a run finds its bindings by the cascade's name",
                            ));
                        }
                        Some(_) => {}
                        None => {
                            declared.insert(c.name.clone(), (name, text));
                        }
                    }
                    Some(c)
                }
            };
            loaded.insert(name, c);
        }
        cx.binding(i, b, loaded[name].as_ref());
    }
    let loaded = loaded
        .into_iter()
        .filter_map(|(k, c)| Some((k.to_string(), c?)))
        .collect();
    (cx.finish(), loaded)
}

/// Check every binding of `arch` (parsed from `file`) that names `cascade`. No items means no problems.
pub fn check_binding(file: &SourceFile, arch: &ArchFile, cascade: &Cascade) -> Diagnostics {
    let root = cascade::locate(&file.text);
    let mut cx = Checker::new(file, arch, root.as_ref());
    for (i, b) in arch.bindings.iter().enumerate() {
        if b.cascade == cascade.name {
            cx.binding(i, b, Some(cascade));
        }
    }
    cx.finish()
}

struct Checker<'a> {
    file: &'a SourceFile,
    text: &'a str,
    arch: &'a ArchFile,
    /// Where each value sits in the text (`None` if the locator gave up: spans are then found by search).
    root: Option<&'a Loc>,
    errors: Vec<Diagnostic>,
}

/// What the check knows about one binding: the cascade's names as the binding sees them.
struct View<'a> {
    b: &'a BindingFile,
    c: Option<&'a Cascade>,
    /// Binding partition parts: by rank name, then outer to inner.
    parts: Vec<&'a str>,
}

impl View<'_> {
    /// The parts a binding partitions a rank into, if it does.
    fn partitioned(&self, rank: &str) -> Option<&Vec<String>> {
        self.b.partitions.get(rank)
    }
    /// Stage-level parts of a cascade rank: its binding partition parts, or itself (as `mapping` sees it).
    fn parts_of(&self, rank: &str) -> Vec<String> {
        self.partitioned(rank)
            .cloned()
            .unwrap_or_else(|| vec![rank.to_string()])
    }
    /// Parts an Einsum iterates, broadcast ranks first (`mapping::Stage::einsum_parts`).
    fn einsum_parts(&self, c: &Cascade, e: EinsumId) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in c.iterated_ranks(e) {
            for p in self.parts_of(&c.ranks[r].name) {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    }
    /// An upper-case name a loop or `spatial` may use: a binding part, or a cascade rank it does not partition.
    fn exists(&self, name: &str) -> bool {
        self.parts.contains(&name)
            || self
                .c
                .is_some_and(|c| c.rank_id(name).is_some() && self.partitioned(name).is_none())
    }
}

/// A stage's Einsums, as far as they are known.
struct StageView {
    /// The stage's non-free main Einsums.
    computed: Vec<EinsumId>,
    /// Every name in `einsums` is a main Einsum of the cascade: only then is `iterated` complete.
    complete: bool,
    /// Parts (upper case) the computed Einsums iterate, in first-use order.
    iterated: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a SourceFile, arch: &'a ArchFile, root: Option<&'a Loc>) -> Self {
        Checker {
            file,
            text: &file.text,
            arch,
            root,
            errors: Vec::new(),
        }
    }

    fn finish(mut self) -> Diagnostics {
        self.errors.sort_by_key(|d| (d.span.start, d.span.end));
        Diagnostics {
            file: self.file.clone(),
            items: self.errors,
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    // ---- locating names in the text ----

    fn binding_loc(&self, i: usize) -> Option<&'a Loc> {
        self.root?.field("bindings")?.1.item(i)
    }

    fn stage_loc(&self, i: usize, j: usize) -> Option<&'a Loc> {
        self.binding_loc(i)?.field("stages")?.1.item(j)
    }

    /// The span of a string value of field `field` of binding `i`.
    fn binding_field(&self, i: usize, field: &str, value: &str) -> Span {
        let l = self.binding_loc(i);
        let near = l.map_or(Span::default(), Loc::span);
        self.span_of(l.and_then(|l| l.field(field)).map(|f| f.1), value, near)
    }

    /// The span of string `value` at `loc`: its characters without the quotes when they map exactly, else the
    /// whole value, else the first `"value"` in the text at or after `near`.
    fn span_of(&self, loc: Option<&Loc>, value: &str, near: Span) -> Span {
        let span = match loc {
            Some(Loc::Str {
                span,
                content: Some(c),
            }) if !value.is_empty()
                && c.checked_add(value.len())
                    .and_then(|e| self.text.get(*c..e))
                    == Some(value) =>
            {
                Span::new(*c, *c + value.len())
            }
            Some(l) => l.span(),
            None => crate::diag::locate(self.text, value, near.start as usize),
        };
        if span.end > span.start {
            span
        } else {
            Span {
                start: span.start,
                end: span.start + 1,
            }
        }
    }

    /// The text of a map key (a plain string).
    fn key_text(&self, k: &Loc) -> Option<&'a str> {
        match k {
            Loc::Str {
                span,
                content: Some(c),
            } => self.text.get(*c..(span.end as usize).checked_sub(1)?),
            _ => None,
        }
    }

    /// The entry of `key` in a map: the last one, as deserialising keeps the last of duplicate keys.
    fn entry<'l>(&self, map: Option<&'l Loc>, key: &str) -> Option<(&'l Loc, &'l Loc)> {
        match map {
            Some(Loc::Map { entries, .. }) => entries
                .iter()
                .rev()
                .find(|(k, _)| self.key_text(k) == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The span of a map key, and the value's location.
    fn key<'l>(&self, map: Option<&'l Loc>, key: &str, near: Span) -> (Span, Option<&'l Loc>) {
        match self.entry(map, key) {
            Some((k, v)) => (self.span_of(Some(k), key, near), Some(v)),
            None => (self.span_of(None, key, near), None),
        }
    }

    /// Report keys given twice in a map (deserialising silently keeps the last).
    fn duplicate_keys(&mut self, map: Option<&Loc>, what: &str) {
        let Some(Loc::Map { entries, .. }) = map else {
            return;
        };
        let mut seen: Vec<(&str, Span)> = Vec::new();
        let mut found = Vec::new();
        for (k, _) in entries {
            let Some(name) = self.key_text(k) else {
                continue;
            };
            let span = self.span_of(Some(k), name, Span::default());
            match seen.iter().find(|(n, _)| *n == name) {
                Some((_, first)) => found.push(
                    Diagnostic::new(
                        span,
                        format!("`{name}` is given twice in `{what}`"),
                        "expected each key once; this entry silently replaces the first",
                    )
                    .with_secondary(*first, "first given here"),
                ),
                None => seen.push((name, span)),
            }
        }
        self.errors.extend(found);
    }

    // ---- one binding ----

    fn binding(&mut self, i: usize, b: &BindingFile, c: Option<&Cascade>) {
        let bloc = self.binding_loc(i);
        let near = bloc.map_or(Span::default(), Loc::span);
        let field = |name: &str| bloc.and_then(|l| l.field(name));
        if !b.name.is_empty() {
            let twin = self.arch.bindings[..i]
                .iter()
                .any(|o| o.cascade == b.cascade && o.name == b.name);
            if twin {
                let span = self.span_of(field("name").map(|f| f.1), &b.name, near);
                self.err(Diagnostic::new(
                    span,
                    format!("two bindings of `{}` are named `{}`", b.cascade, b.name),
                    "expected a distinct name for each alternative",
                ));
            }
        }
        let mut view = View {
            b,
            c,
            parts: Vec::new(),
        };
        self.partitions(b, c, field("partitions").map(|f| f.1), near, &mut view);
        self.sizes(
            b,
            &view,
            field("sizes").map(|f| f.1),
            field("partitions").map(|f| f.1),
            near,
        );
        self.fixed_params(b, c, field("set").map(|f| f.1), near);
        // Stages: unique names, then each stage's names; every main Einsum computed exactly once.
        let stages_span = field("stages").map_or(near, |f| f.0);
        if b.stages.is_empty() {
            self.err(Diagnostic::new(
                stages_span,
                "the binding has no stages",
                "expected at least one Stage(...)",
            ));
        }
        let mut computed_in: BTreeMap<&str, (usize, Span)> = BTreeMap::new();
        let mut complete = true;
        for (j, st) in b.stages.iter().enumerate() {
            let sloc = self.stage_loc(i, j);
            let snear = sloc.map_or(near, Loc::span);
            if let Some(first) = b.stages[..j].iter().position(|o| o.name == st.name) {
                let span = self.span_of(
                    sloc.and_then(|l| l.field("name")).map(|f| f.1),
                    &st.name,
                    snear,
                );
                let prev = self.stage_loc(i, first);
                let prev_span = self.span_of(
                    prev.and_then(|l| l.field("name")).map(|f| f.1),
                    &st.name,
                    near,
                );
                self.err(
                    Diagnostic::new(
                        span,
                        format!("two stages are named `{}`", st.name),
                        "expected a distinct name for each stage",
                    )
                    .with_secondary(prev_span, "first named here"),
                );
            }
            complete &= self.stage(st, sloc, snear, &view, &mut computed_in, j);
        }
        if let Some(c) = c {
            let missing: Vec<String> = main_einsums(c)
                .filter(|&e| {
                    !is_free(c, e) && !computed_in.contains_key(c.einsums[e].name.as_str())
                })
                .map(|e| format!("`{}`", c.einsums[e].name))
                .collect();
            // A misspelled Einsum is reported where it is written, not again as a missing one.
            if !missing.is_empty() && !b.stages.is_empty() && complete {
                let (noun, verb) = if missing.len() == 1 {
                    ("Einsum", "is")
                } else {
                    ("Einsums", "are")
                };
                self.err(Diagnostic::new(
                    stages_span,
                    format!(
                        "{noun} {} of `{}` {verb} in no stage",
                        missing.join(", "),
                        c.name
                    ),
                    "expected every main Einsum in the `einsums` of one stage",
                ));
            }
        }
    }

    fn partitions<'b>(
        &mut self,
        b: &'b BindingFile,
        c: Option<&Cascade>,
        loc: Option<&Loc>,
        near: Span,
        view: &mut View<'b>,
    ) {
        self.duplicate_keys(loc, "partitions");
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for (rank, parts) in &b.partitions {
            let (ks, vloc) = self.key(loc, rank, near);
            if let Some(c) = c {
                if c.rank_id(rank).is_none() {
                    let ranks: Vec<&str> = c.ranks.iter().map(|r| r.name.as_str()).collect();
                    self.err(
                        Diagnostic::new(
                            ks,
                            format!("unknown rank `{rank}` in `partitions`"),
                            format!(
                                "expected a rank of `{}`{}",
                                c.name,
                                did_you_mean(rank, &ranks)
                            ),
                        )
                        .with_note(format!(
                            "`{}` has ranks: {}",
                            c.name,
                            ranks.join(", ")
                        )),
                    );
                }
            }
            if parts.is_empty() {
                let span = vloc.map_or(ks, Loc::span);
                self.err(Diagnostic::new(
                    span,
                    format!("the partition of `{rank}` has no parts"),
                    "expected its parts, outer to inner, e.g. [\"P1\", \"P0\"]",
                ));
            }
            for (j, p) in parts.iter().enumerate() {
                let span = self.span_of(vloc.and_then(|l| l.item(j)), p, ks);
                if let Some((_, first)) = seen.iter().find(|(n, _)| n == p) {
                    self.err(
                        Diagnostic::new(
                            span,
                            format!("partition part `{p}` is listed twice"),
                            "expected each part once in the binding",
                        )
                        .with_secondary(*first, "first listed here"),
                    );
                    continue;
                }
                seen.push((p, span));
                view.parts.push(p);
                if !is_rank_name(p) {
                    self.err(Diagnostic::new(
                        span,
                        format!("partition part `{p}` is not an upper-case name"),
                        format!(
                            "expected a rank name such as `{}` (loops and `spatial` spell it in lower case)",
                            p.to_uppercase()
                        ),
                    ));
                    continue;
                }
                let clash = c.and_then(|c| {
                    if c.rank_id(p).is_some() {
                        Some(format!("rank `{p}` of `{}`", c.name))
                    } else if c.params.iter().any(|x| x.name == *p) {
                        Some(format!("parameter `{p}` of `{}`", c.name))
                    } else {
                        None
                    }
                });
                let clash = clash.or_else(|| {
                    self.arch
                        .params
                        .contains_key(p)
                        .then(|| format!("arch parameter `{p}`"))
                });
                if let Some(what) = clash {
                    self.err(Diagnostic::new(
                        span,
                        format!("partition part `{p}` clashes with {what}"),
                        "expected a new name for the part",
                    ));
                }
            }
        }
    }

    fn sizes(
        &mut self,
        b: &BindingFile,
        view: &View,
        loc: Option<&Loc>,
        partitions: Option<&Loc>,
        near: Span,
    ) {
        let parts_note = || {
            if view.parts.is_empty() {
                "this binding partitions no rank".to_string()
            } else {
                format!("this binding's partition parts: {}", view.parts.join(", "))
            }
        };
        // Names a size expression may use, besides partition parts.
        let mut known: Vec<String> = Vec::new();
        if let Some(c) = view.c {
            known.extend(c.params.iter().map(|p| p.name.clone()));
            known.extend(c.ranks.iter().map(|r| r.name.clone()));
        }
        known.extend(self.arch.params.keys().cloned());
        let rule_of = |name: &str| b.sizes.iter().position(|(n, _)| n == name);
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for (j, (name, rule)) in b.sizes.iter().enumerate() {
            let item = loc.and_then(|l| l.item(j));
            let inear = item.map_or(near, Loc::span);
            let span = self.span_of(item.and_then(|l| l.item(0)), name, inear);
            if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                self.err(
                    Diagnostic::new(
                        span,
                        format!("`{name}` is sized twice"),
                        "expected one rule per part; this one silently replaces the first",
                    )
                    .with_secondary(*first, "first sized here"),
                );
            } else {
                seen.push((name, span));
                if !view.parts.contains(&name.as_str()) {
                    self.err(
                        Diagnostic::new(
                            span,
                            format!("`{name}` in `sizes` is not a partition part"),
                            format!(
                                "expected a part from `partitions`{}",
                                did_you_mean(name, &view.parts)
                            ),
                        )
                        .with_note(parts_note()),
                    );
                }
            }
            let rloc = item.and_then(|l| l.item(1));
            let rnear = rloc.map_or(inear, Loc::span);
            let expr = |cx: &mut Self, text: &str, l: Option<&Loc>| {
                cx.size_expr(text, l, rnear, j, view, &known, &rule_of);
            };
            match rule {
                SizeRule::Fixed(e) => expr(self, e, rloc.and_then(|l| l.item(0))),
                SizeRule::Largest {
                    divisor_of,
                    fits,
                    stage,
                    at_least,
                    at_most,
                } => {
                    let f = |n: &str| rloc.and_then(|l| l.field(n)).map(|f| f.1);
                    expr(self, divisor_of, f("divisor_of"));
                    for (key, bound) in [("at_least", at_least), ("at_most", at_most)] {
                        if let Some(a) = bound {
                            expr(self, a, f(key).and_then(|l| l.item(0)));
                        }
                    }
                    let span = self.span_of(f("fits"), fits, rnear);
                    self.capacity(fits, span, "`fits`");
                    if !b.stages.iter().any(|s| &s.name == stage) {
                        let names: Vec<&str> = b.stages.iter().map(|s| s.name.as_str()).collect();
                        let span = self.span_of(f("stage"), stage, rnear);
                        self.err(
                            Diagnostic::new(
                                span,
                                format!("unknown stage `{stage}` in the size rule for `{name}`"),
                                format!(
                                    "expected a stage of this binding{}",
                                    did_you_mean(stage, &names)
                                ),
                            )
                            .with_note(format!("this binding's stages: {}", names.join(", "))),
                        );
                    }
                }
            }
        }
        // Every part needs a size; without one mapping multiplies by zero.
        for (rank, parts) in &b.partitions {
            for (k, p) in parts.iter().enumerate() {
                if rule_of(p).is_none() && is_rank_name(p) {
                    let (ks, vloc) = self.key(partitions, rank, near);
                    let span = self.span_of(vloc.and_then(|l| l.item(k)), p, ks);
                    self.err(Diagnostic::new(
                        span,
                        format!("partition part `{p}` has no size rule"),
                        "expected a rule for it in `sizes`",
                    ));
                }
            }
        }
    }

    /// Check one size expression: it parses, and names parameters, ranks or parts sized by an earlier rule.
    #[allow(clippy::too_many_arguments)]
    fn size_expr(
        &mut self,
        text: &str,
        loc: Option<&Loc>,
        near: Span,
        rule: usize,
        view: &View,
        known: &[String],
        rule_of: &dyn Fn(&str) -> Option<usize>,
    ) {
        let tl = TextLoc::new(self.text, loc, text, loc.map_or(near, Loc::span));
        let whole = self.span_of(loc, text, near);
        let at = |s: Span| {
            let s = tl.map(s);
            if s.end > s.start {
                s
            } else {
                whole
            }
        };
        let e = match SizeExpr::parse(text) {
            Ok(e) => e,
            Err(e) => {
                self.err(Diagnostic::new(
                    at(e.span),
                    format!("in `{text}`: {}", e.message),
                    e.expected,
                ));
                return;
            }
        };
        for (n, s) in e.names() {
            if known.iter().any(|k| k == n) {
                continue;
            }
            if view.parts.contains(&n) {
                match rule_of(n) {
                    Some(k) if k == rule => self.err(Diagnostic::new(
                        at(s),
                        format!("`{n}` is used in its own size rule"),
                        "expected parameters, ranks or parts sized by earlier rules",
                    )),
                    Some(k) if k > rule => self.err(Diagnostic::new(
                        at(s),
                        format!("`{n}` is used before its size rule"),
                        format!(
                            "rules are evaluated in order, and `{n}`'s comes later (until then it counts as 1)"
                        ),
                    )),
                    _ => {}
                }
                continue;
            }
            if view.c.is_none() {
                continue; // the cascade's names are unknown
            }
            let mut all: Vec<&str> = known.iter().map(String::as_str).collect();
            all.extend(view.parts.iter().copied());
            self.err(
                Diagnostic::new(
                    at(s),
                    format!("unknown name `{n}` in size expression `{text}`"),
                    format!(
                        "expected a parameter, rank or partition part{}",
                        did_you_mean(n, &all)
                    ),
                )
                .with_note(format!("known names: {}", all.join(", "))),
            );
        }
    }

    /// `set`: each key a parameter of the cascade, each value an expression over the arch's parameters (what
    /// `run` evaluates it over), so a misspelt key never leaves the cascade's default silently in place.
    fn fixed_params(
        &mut self,
        b: &BindingFile,
        c: Option<&Cascade>,
        loc: Option<&Loc>,
        near: Span,
    ) {
        let Some(c) = c else {
            return; // the cascade's names are unknown
        };
        let near = loc.map_or(near, Loc::span);
        let params: Vec<&str> = c.params.iter().map(|p| p.name.as_str()).collect();
        let arch: Vec<&str> = self.arch.params.keys().map(String::as_str).collect();
        for (name, text) in &b.set {
            if c.param(name).is_none() {
                let span = self.span_of(None, name, near);
                self.err(
                    Diagnostic::new(
                        span,
                        format!(
                            "`{name}` in `set` is not a parameter of cascade `{}`",
                            c.name
                        ),
                        format!(
                            "expected a cascade parameter{}",
                            did_you_mean(name, &params)
                        ),
                    )
                    .with_note(format!("its parameters: {}", params.join(", "))),
                );
            }
            let whole = self.span_of(None, text, near);
            match SizeExpr::parse(text) {
                Err(e) => self.err(Diagnostic::new(
                    whole,
                    format!("in `set` for `{name}`, `{text}`: {}", e.message),
                    e.expected,
                )),
                Ok(e) => {
                    for (n, _) in e.names() {
                        if !arch.contains(&n) {
                            self.err(
                                Diagnostic::new(
                                    whole,
                                    format!("unknown name `{n}` in `set` for `{name}`: `{text}`"),
                                    format!(
                                        "expected a parameter of the arch{}",
                                        did_you_mean(n, &arch)
                                    ),
                                )
                                .with_note(format!("arch parameters: {}", arch.join(", "))),
                            );
                        }
                    }
                }
            }
        }
    }

    /// A storage level named where a capacity is needed (`fits`, a stage's `buffer`).
    fn capacity(&mut self, name: &str, span: Span, what: &str) {
        let with: Vec<&str> = self
            .arch
            .storage
            .iter()
            .filter(|(_, s)| s.capacity.is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        match self.arch.storage.get(name) {
            None => {
                self.err(
                    Diagnostic::new(
                        span,
                        format!("unknown storage `{name}`"),
                        format!(
                            "expected a storage level of this arch{}",
                            did_you_mean(name, &with)
                        ),
                    )
                    .with_note(format!(
                        "storage levels with a capacity: {}",
                        with.join(", ")
                    )),
                );
            }
            Some(s) if s.capacity.is_none() => self.err(
                Diagnostic::new(
                    span,
                    format!("{what} names `{name}`, which has no capacity"),
                    "expected a storage level with a capacity",
                )
                .with_note(format!(
                    "storage levels with a capacity: {}",
                    with.join(", ")
                )),
            ),
            Some(_) => {}
        }
    }

    // ---- one stage ----

    /// A stage's `bypass` and `spill` entries. A bypassed tensor has no buffer tile, so it must be a DRAM
    /// tensor, not stored in place of another (or another in its place) nor copied, and, as nothing holds it,
    /// read by at most one of the stage's Einsums and not both made and read here (its one load feeds one
    /// reader). A spilled tensor is on-chip state the stage keeps. (Whether a bypassed result is reduced across
    /// a loop, or the spilled tensor is passed between stages, depends on the loops: mapping checks those.)
    fn bypass_and_spill(
        &mut self,
        st: &StageFile,
        sloc: Option<&Loc>,
        near: Span,
        view: &View,
        sv: &StageView,
        unknown_tensor: &dyn Fn(&str, Span, &str) -> Option<Diagnostic>,
    ) {
        let field = |name: &str| sloc.and_then(|l| l.field(name));
        let fnear = |name: &str| field(name).map_or(near, |f| f.0.join(f.1.span()));
        let s = &st.name;
        let yloc = field("bypass").map(|f| f.1);
        for (k, t) in st.bypass.iter().enumerate() {
            let span = self.span_of(yloc.and_then(|l| l.item(k)), t, fnear("bypass"));
            let problem = if let Some(d) =
                self.listed_twice(&st.bypass, k, yloc, span, near, "bypass")
            {
                self.err(d);
                None
            } else if let Some(d) = unknown_tensor(t, span, "bypass") {
                self.err(d);
                None
            } else if !st.dram.contains(t) {
                Some((
                    "is not in `dram`".to_string(),
                    format!("a DRAM tensor of stage `{s}`: a bypass streams it between `{}` and the units", st.memory),
                ))
            } else if let Some(what) = held_in_buffer(st, t) {
                Some((
                    what,
                    "`alias` and `copies` only for tensors with a buffer tile; a bypassed one has none".to_string(),
                ))
            } else {
                self.bypass_users(t, view, sv)
            };
            if let Some((what, expected)) = problem {
                self.err(Diagnostic::new(
                    span,
                    format!("bypassed tensor `{t}` {what}"),
                    format!("expected {expected}"),
                ));
            }
        }
        if let Some(t) = &st.spill {
            let span = self.span_of(field("spill").map(|f| f.1), t, fnear("spill"));
            if let Some(d) = unknown_tensor(t, span, "spill") {
                self.err(d);
            } else if !st.keep.contains_key(t) || st.dram.contains(t) || st.alias.contains_key(t) {
                self.err(Diagnostic::new(
                    span,
                    format!("`{t}` cannot spill: it is not an on-chip tensor this stage keeps"),
                    "expected a tensor in `keep`, neither in `dram` nor stored in place of another (`alias`)",
                ));
            }
        }
    }

    /// The error for item `k` of a list field (`dram`, `bypass`) that repeats an earlier item, pointing at both.
    fn listed_twice(
        &self,
        list: &[String],
        k: usize,
        loc: Option<&Loc>,
        span: Span,
        near: Span,
        field: &str,
    ) -> Option<Diagnostic> {
        let t = &list[k];
        let first = list[..k].iter().position(|o| o == t)?;
        let fspan = self.span_of(loc.and_then(|l| l.item(first)), t, near);
        Some(
            Diagnostic::new(
                span,
                format!("`{t}` is listed twice in `{field}`"),
                "expected each tensor once",
            )
            .with_secondary(fspan, "first listed here"),
        )
    }

    /// Why bypassed tensor `t` cannot be streamed to its users in this stage, if it cannot: read by more than
    /// one Einsum (one load feeds one reader), or made and read here (nothing holds it between the two).
    fn bypass_users(&self, t: &str, view: &View, sv: &StageView) -> Option<(String, String)> {
        let c = view.c?;
        let tid = c.tensor_id(t)?;
        let readers: Vec<&str> = sv
            .computed
            .iter()
            .filter(|&&e| c.einsums[e].expr.refs().iter().any(|r| r.tensor == tid))
            .map(|&e| c.einsums[e].name.as_str())
            .collect();
        let made = sv
            .computed
            .iter()
            .any(|&e| c.einsums[e].output.tensor == tid);
        if readers.len() > 1 {
            Some((
                format!("is read by {} Einsums of the stage ({})", readers.len(), readers.join(", ")),
                "one reader: each gets the stream of one load, and nothing holds the tile for a second".to_string(),
            ))
        } else if made && !readers.is_empty() {
            Some((
                format!("is made and read in the stage (by {})", readers[0]),
                "a tensor only loaded, or only stored, here: nothing holds it between its maker and reader".to_string(),
            ))
        } else {
            None
        }
    }

    fn stage_view(&self, st: &StageFile, view: &View) -> StageView {
        let Some(c) = view.c else {
            return StageView {
                computed: Vec::new(),
                complete: false,
                iterated: Vec::new(),
            };
        };
        let mut computed = Vec::new();
        let mut complete = true;
        for name in &st.einsums {
            match main_einsum(c, name) {
                Some(e) if !is_free(c, e) => computed.push(e),
                Some(_) => {}
                None => complete = false,
            }
        }
        let mut iterated: Vec<String> = Vec::new();
        for &e in &computed {
            for p in view.einsum_parts(c, e) {
                if !iterated.contains(&p) {
                    iterated.push(p);
                }
            }
        }
        StageView {
            computed,
            complete,
            iterated,
        }
    }

    /// Check one stage; whether every Einsum it lists is a main Einsum of the cascade.
    fn stage<'v>(
        &mut self,
        st: &'v StageFile,
        sloc: Option<&Loc>,
        near: Span,
        view: &View,
        computed_in: &mut BTreeMap<&'v str, (usize, Span)>,
        j: usize,
    ) -> bool {
        let field = |name: &str| sloc.and_then(|l| l.field(name));
        let fnear = |name: &str| field(name).map_or(near, |f| f.0.join(f.1.span()));
        let sv = self.stage_view(st, view);
        let units: Vec<&str> = self.arch.units.keys().map(String::as_str).collect();
        let s = &st.name;

        // einsums
        let eloc = field("einsums").map(|f| f.1);
        let einsum_span = |cx: &Self, k: usize, name: &str| {
            cx.span_of(eloc.and_then(|l| l.item(k)), name, fnear("einsums"))
        };
        for (k, name) in st.einsums.iter().enumerate() {
            let span = einsum_span(self, k, name);
            if let Some(c) = view.c {
                match c.einsum_id(name) {
                    None => {
                        let mains: Vec<&str> = main_einsums(c)
                            .map(|e| c.einsums[e].name.as_str())
                            .collect();
                        self.err(
                            Diagnostic::new(
                                span,
                                format!("unknown Einsum `{name}`"),
                                format!(
                                    "expected a main Einsum of `{}`{}",
                                    c.name,
                                    did_you_mean(name, &mains)
                                ),
                            )
                            .with_note(format!(
                                "the cascade `{}` has: {}",
                                c.name,
                                mains.join(", ")
                            )),
                        );
                        continue;
                    }
                    Some(_) if main_einsum(c, name).is_none() => {
                        self.err(Diagnostic::new(
                            span,
                            format!("`{name}` is an init Einsum of `{}`", c.name),
                            "expected a main Einsum (init Einsums are not mapped)",
                        ));
                        continue;
                    }
                    Some(_) => {}
                }
            }
            match computed_in.get(name.as_str()) {
                Some(&(other, first)) => {
                    let msg = if other == j {
                        format!("Einsum `{name}` is listed twice in stage `{s}`")
                    } else {
                        format!("Einsum `{name}` is computed in two stages")
                    };
                    self.err(
                        Diagnostic::new(span, msg, "expected each Einsum in one stage, once")
                            .with_secondary(first, "first listed here"),
                    );
                }
                None => {
                    computed_in.insert(name, (j, span));
                }
            }
        }

        // loops
        let lloc = field("loops").map(|f| f.1);
        let lower = |v: &[String]| v.iter().map(|p| p.to_lowercase()).collect::<Vec<_>>();
        let iterated = lower(&sv.iterated);
        for (k, l) in st.loops.iter().enumerate() {
            let span = self.span_of(lloc.and_then(|x| x.item(k)), l, fnear("loops"));
            if let Some(first) = st.loops[..k].iter().position(|o| o.eq_ignore_ascii_case(l)) {
                let fspan = self.span_of(lloc.and_then(|x| x.item(first)), &st.loops[first], near);
                self.err(
                    Diagnostic::new(
                        span,
                        format!("loop `{l}` is listed twice in stage `{s}`"),
                        "expected each loop once",
                    )
                    .with_secondary(fspan, "first listed here"),
                );
                continue;
            }
            if view.c.is_none() {
                continue;
            }
            let up = l.to_uppercase();
            if let Some(parts) = view.partitioned(&up) {
                self.err(Diagnostic::new(
                    span,
                    format!("loop `{l}` iterates rank `{up}`, which this binding partitions"),
                    format!("expected one of its parts: {}", lower(parts).join(", ")),
                ));
            } else if !view.exists(&up) {
                let mut d = Diagnostic::new(
                    span,
                    format!("loop `{l}` names no rank or partition part"),
                    format!(
                        "expected a rank or part that stage `{s}` iterates{}",
                        did_you_mean(l, &iterated)
                    ),
                );
                if sv.complete {
                    d = d.with_note(format!("stage `{s}` iterates: {}", iterated.join(", ")));
                }
                self.err(d);
            } else if sv.complete && !sv.iterated.contains(&up) {
                self.err(
                    Diagnostic::new(
                        span,
                        format!("no Einsum of stage `{s}` iterates loop `{l}`"),
                        "expected a rank or part the stage's Einsums iterate",
                    )
                    .with_note(format!("stage `{s}` iterates: {}", iterated.join(", "))),
                );
            }
        }
        let is_loop = |n: &str| st.loops.iter().any(|l| l.eq_ignore_ascii_case(n));
        let loops_list = st.loops.join(", ");

        // place
        let ploc = field("place").map(|f| f.1);
        self.duplicate_keys(ploc, "place");
        for (e, u) in &st.place {
            let (ks, vloc) = self.key(ploc, e, fnear("place"));
            if !st.einsums.contains(e) {
                let listed: Vec<&str> = st.einsums.iter().map(String::as_str).collect();
                let known = view.c.map(|c| c.einsum_id(e).is_some());
                let (msg, note) = match (known, view.c) {
                    (Some(false), Some(c)) => (
                        format!("unknown Einsum `{e}` in `place`"),
                        format!(
                            "the cascade `{}` has: {}",
                            c.name,
                            main_einsums(c)
                                .map(|x| c.einsums[x].name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    _ => (
                        format!("Einsum `{e}` is placed in stage `{s}`, which does not compute it"),
                        format!("stage `{s}` computes: {}", listed.join(", ")),
                    ),
                };
                self.err(
                    Diagnostic::new(
                        ks,
                        msg,
                        format!(
                            "expected an Einsum of stage `{s}`{}",
                            did_you_mean(e, &listed)
                        ),
                    )
                    .with_note(note),
                );
            }
            if !self.arch.units.contains_key(u) {
                let span = self.span_of(vloc, u, ks);
                self.err(
                    Diagnostic::new(
                        span,
                        format!("Einsum `{e}` is placed on unknown unit `{u}`"),
                        format!("expected a unit of this arch{}", did_you_mean(u, &units)),
                    )
                    .with_note(format!("units of this arch: {}", units.join(", "))),
                );
            }
        }
        if let Some(c) = view.c {
            for (k, name) in st.einsums.iter().enumerate() {
                let Some(e) = main_einsum(c, name) else {
                    continue;
                };
                if is_free(c, e) || st.place.contains_key(name) {
                    continue;
                }
                if st.einsums[..k].contains(name) {
                    continue;
                }
                let span = einsum_span(self, k, name);
                self.err(
                    Diagnostic::new(
                        span,
                        format!("Einsum `{name}` is not placed on a unit"),
                        "expected an entry for it in `place`",
                    )
                    .with_note(format!("units of this arch: {}", units.join(", "))),
                );
            }
        }

        // spatial
        let sploc = field("spatial").map(|f| f.1);
        self.duplicate_keys(sploc, "spatial");
        let intra: Vec<String> = sv
            .iterated
            .iter()
            .filter(|p| !is_loop(p))
            .map(|p| p.to_lowercase())
            .collect();
        for (u, dims) in &st.spatial {
            let (ks, vloc) = self.key(sploc, u, fnear("spatial"));
            match self.arch.units.get(u) {
                None => {
                    self.err(
                        Diagnostic::new(
                            ks,
                            format!("unknown unit `{u}` in `spatial`"),
                            format!("expected a unit of this arch{}", did_you_mean(u, &units)),
                        )
                        .with_note(format!("units of this arch: {}", units.join(", "))),
                    );
                }
                Some(unit) if dims.len() > unit_dims(unit.kind) => {
                    let span = vloc.map_or(ks, Loc::span);
                    self.err(Diagnostic::new(
                        span,
                        format!("the spatial mapping of `{u}` has {} dimensions", dims.len()),
                        format!(
                            "expected at most {}, as many as a {:?} has",
                            unit_dims(unit.kind),
                            unit.kind
                        ),
                    ));
                }
                Some(_) => {}
            }
            let mut mapped: Vec<(String, Span)> = Vec::new();
            for (d, ranks) in dims.iter().enumerate() {
                let dloc = vloc.and_then(|l| l.item(d));
                for (k, r) in ranks.iter().enumerate() {
                    let span = self.span_of(dloc.and_then(|l| l.item(k)), r, ks);
                    let up = r.to_uppercase();
                    if let Some((_, first)) = mapped.iter().find(|(n, _)| *n == up) {
                        self.err(
                            Diagnostic::new(
                                span,
                                format!("`{r}` is mapped twice on `{u}`"),
                                "expected each rank on one dimension, once",
                            )
                            .with_secondary(*first, "first mapped here"),
                        );
                        continue;
                    }
                    mapped.push((up.clone(), span));
                    if view.c.is_none() {
                        continue;
                    }
                    let intra_note =
                        || format!("intra-tile ranks of stage `{s}`: {}", intra.join(", "));
                    if is_loop(r) {
                        self.err(
                            Diagnostic::new(
                                span,
                                format!("`{r}` is a loop of stage `{s}`, not an intra-tile rank"),
                                "expected a rank or part within a tile (one the stage does not loop over)",
                            )
                            .with_note(intra_note()),
                        );
                    } else if let Some(parts) = view.partitioned(&up) {
                        self.err(Diagnostic::new(
                            span,
                            format!("`{r}` is partitioned by this binding"),
                            format!("expected one of its parts: {}", lower(parts).join(", ")),
                        ));
                    } else if !view.exists(&up) {
                        let mut d = Diagnostic::new(
                            span,
                            format!("unknown rank `{r}` in the spatial mapping of `{u}`"),
                            format!(
                                "expected an intra-tile rank of stage `{s}`{}",
                                did_you_mean(r, &intra)
                            ),
                        );
                        if sv.complete {
                            d = d.with_note(intra_note());
                        }
                        self.err(d);
                    } else if sv.complete && !sv.iterated.contains(&up) {
                        self.err(
                            Diagnostic::new(
                                span,
                                format!("no Einsum of stage `{s}` iterates `{r}`"),
                                "expected an intra-tile rank the stage's Einsums iterate",
                            )
                            .with_note(intra_note()),
                        );
                    }
                }
            }
        }

        // tensors: dram, keep, alias, copies
        let tensors: Vec<&str> = view
            .c
            .map(|c| c.tensors.iter().map(|t| t.name.as_str()).collect())
            .unwrap_or_default();
        let unknown_tensor = |name: &str, span: Span, what: &str| {
            let c = view.c?;
            c.tensor_id(name).is_none().then(|| {
                Diagnostic::new(
                    span,
                    format!("unknown tensor `{name}` in `{what}`"),
                    format!(
                        "expected a tensor of `{}`{}",
                        c.name,
                        did_you_mean(name, &tensors)
                    ),
                )
                .with_note(format!(
                    "`{}` has tensors: {}",
                    c.name,
                    tensors.join(", ")
                ))
            })
        };
        let dloc = field("dram").map(|f| f.1);
        for (k, t) in st.dram.iter().enumerate() {
            let span = self.span_of(dloc.and_then(|l| l.item(k)), t, fnear("dram"));
            if let Some(d) = self.listed_twice(&st.dram, k, dloc, span, near, "dram") {
                self.err(d);
                continue;
            }
            if let Some(d) = unknown_tensor(t, span, "dram") {
                self.err(d);
                continue;
            }
            if !st.keep.contains_key(t) {
                self.err(Diagnostic::new(
                    span,
                    format!("DRAM tensor `{t}` has no `keep` loop"),
                    format!(
                        "expected an entry `\"{t}\": LOOP` in `keep`: how long its tile stays in `{}`",
                        st.buffer
                    ),
                ));
            }
            if let (Some(c), true) = (view.c, sv.complete) {
                let used = sv.computed.iter().any(|&e| {
                    let es = &c.einsums[e];
                    c.tensors[es.output.tensor].name == *t
                        || es
                            .expr
                            .refs()
                            .iter()
                            .any(|r| c.tensors[r.tensor].name == *t)
                });
                if !used {
                    self.err(Diagnostic::new(
                        span,
                        format!("no Einsum of stage `{s}` reads or writes DRAM tensor `{t}`"),
                        "expected a tensor the stage's Einsums read or write",
                    ));
                }
            }
        }
        let kloc = field("keep").map(|f| f.1);
        self.duplicate_keys(kloc, "keep");
        for (t, l) in &st.keep {
            let (ks, vloc) = self.key(kloc, t, fnear("keep"));
            if let Some(d) = unknown_tensor(t, ks, "keep") {
                self.err(d);
            }
            if !is_loop(l) {
                let span = self.span_of(vloc, l, ks);
                let loops: Vec<&str> = st.loops.iter().map(String::as_str).collect();
                self.err(Diagnostic::new(
                    span,
                    format!("`{t}` is kept at `{l}`, which is not a loop of stage `{s}`"),
                    format!(
                        "expected one of its loops: {loops_list}{}",
                        did_you_mean(l, &loops)
                    ),
                ));
            }
        }
        let aloc = field("alias").map(|f| f.1);
        self.duplicate_keys(aloc, "alias");
        for (t, other) in &st.alias {
            let (ks, vloc) = self.key(aloc, t, fnear("alias"));
            if let Some(d) = unknown_tensor(t, ks, "alias") {
                self.err(d);
            }
            let vs = self.span_of(vloc, other, ks);
            if let Some(d) = unknown_tensor(other, vs, "alias") {
                self.err(d);
            }
        }
        let cloc = field("copies").map(|f| f.1);
        self.duplicate_keys(cloc, "copies");
        for (t, n) in &st.copies {
            let (ks, vloc) = self.key(cloc, t, fnear("copies"));
            if let Some(d) = unknown_tensor(t, ks, "copies") {
                self.err(d);
            }
            if *n == 0 {
                let span = vloc.map_or(ks, Loc::span);
                self.err(Diagnostic::new(
                    span,
                    format!("`{t}` has 0 copies"),
                    "expected at least 1",
                ));
            }
        }

        self.bypass_and_spill(st, sloc, near, view, &sv, &unknown_tensor);

        let bloc = field("bits").map(|f| f.1);
        self.duplicate_keys(bloc, "bits");
        for t in st.bits.keys() {
            let (ks, _) = self.key(bloc, t, fnear("bits"));
            if let Some(d) = unknown_tensor(t, ks, "bits") {
                self.err(d);
            }
        }

        // buffer and memory
        let span = self.span_of(field("buffer").map(|f| f.1), &st.buffer, fnear("buffer"));
        self.capacity(&st.buffer, span, "`buffer`");
        let span = self.span_of(field("memory").map(|f| f.1), &st.memory, fnear("memory"));
        let drams: Vec<&str> = self
            .arch
            .storage
            .iter()
            .filter(|(_, s)| s.kind == StorageKind::Dram)
            .map(|(n, _)| n.as_str())
            .collect();
        match self.arch.storage.get(&st.memory) {
            None => {
                self.err(
                    Diagnostic::new(
                        span,
                        format!("unknown storage `{}`", st.memory),
                        format!(
                            "expected a storage level of this arch{}",
                            did_you_mean(&st.memory, &drams)
                        ),
                    )
                    .with_note(format!("DRAM levels: {}", drams.join(", "))),
                );
            }
            Some(m) if m.kind != StorageKind::Dram => self.err(
                Diagnostic::new(
                    span,
                    format!("`memory` names `{}`, which is not a DRAM level", st.memory),
                    "expected a storage level of kind Dram",
                )
                .with_note(format!("DRAM levels: {}", drams.join(", "))),
            ),
            Some(_) => {}
        }
        sv.complete
    }
}

/// Spatial dimensions of a unit kind (`arch::resolve` checks that the unit's shape has as many).
fn unit_dims(kind: UnitKind) -> usize {
    match kind {
        UnitKind::SpatialArray => 2,
        UnitKind::LinearArray | UnitKind::FunctionUnit | UnitKind::TopkEngine => 1,
    }
}

/// The main Einsums of a cascade, in file order.
fn main_einsums(c: &Cascade) -> impl Iterator<Item = EinsumId> + '_ {
    (0..c.einsums.len()).filter(|&e| c.einsums[e].section == Section::Main)
}

fn main_einsum(c: &Cascade, name: &str) -> Option<EinsumId> {
    main_einsums(c).find(|&e| c.einsums[e].name == name)
}

/// Rank names (and so partition parts) are upper case: loops and `spatial` spell them in lower case.
fn is_rank_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `"; did you mean `x`?"` when exactly one option is a near miss of `name` (ignoring case), else nothing.
pub(crate) fn did_you_mean<S: AsRef<str>>(name: &str, options: &[S]) -> String {
    let name_l = name.to_lowercase();
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &str)> = None;
    let mut tie = false;
    for o in options {
        let o = o.as_ref();
        if o == name {
            continue;
        }
        let d = edit_distance(&name_l, &o.to_lowercase());
        if d > limit {
            continue;
        }
        match best {
            Some((b, _)) if d > b => {}
            Some((b, x)) if d == b => tie |= x != o,
            _ => {
                best = Some((d, o));
                tie = false;
            }
        }
    }
    match best {
        Some((_, o)) if !tie => format!("; did you mean `{o}`?"),
        _ => String::new(),
    }
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// How a stage's `alias` or `copies` gives tensor `t` a buffer tile, if it does.
fn held_in_buffer(st: &StageFile, t: &str) -> Option<String> {
    if let Some(other) = st.alias.get(t) {
        return Some(format!("is stored in place of `{other}` (`alias`)"));
    }
    if let Some((a, _)) = st.alias.iter().find(|(_, v)| *v == t) {
        return Some(format!("has `{a}` stored in its place (`alias`)"));
    }
    st.copies.get(t).map(|n| format!("has {n} `copies`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUSEMAX: &str = include_str!("../arch/fusemax.ron");

    fn one_pass() -> Cascade {
        let text = include_str!("../workloads/cascades/attention-1pass.ron");
        cascade::load(&SourceFile::new("attention-1pass.ron", text)).unwrap()
    }

    /// FuseMax's attention binding with `from` replaced by `to` (once, after `anchor`), checked against the
    /// 1-pass cascade: the messages, each with the line its span starts on.
    fn edited(anchor: &str, from: &str, to: &str) -> (Vec<(String, usize)>, usize) {
        let a = FUSEMAX.find(anchor).expect("anchor");
        let i = a + FUSEMAX[a..].find(from).expect("text to replace");
        let text = format!("{}{to}{}", &FUSEMAX[..i], &FUSEMAX[i + from.len()..]);
        let file = SourceFile::new("fusemax.ron", text);
        let arch = arch::parse(&file).unwrap_or_else(|d| panic!("{}", d.render()));
        let d = check_binding(&file, &arch, &one_pass());
        let out = d
            .items
            .iter()
            .map(|x| {
                assert!(x.span.end > x.span.start, "{}: empty span", x.message);
                (x.message.clone(), file.line_col(x.span.start as usize).0)
            })
            .collect();
        (out, file.line_col(i).0)
    }

    #[test]
    fn the_shipped_binding_is_clean() {
        let file = SourceFile::new("fusemax.ron", FUSEMAX);
        let arch = arch::parse(&file).unwrap();
        let d = check_binding(&file, &arch, &one_pass());
        assert!(d.items.is_empty(), "{}", d.render());
    }

    #[test]
    fn each_kind_of_mistake_is_located_on_its_line() {
        let stage = "name: \"attention\"";
        let sizes = "sizes: [";
        for (anchor, from, to, want) in [
            (sizes, "Fixed(\"cols\")", "Fixed(\"colz\")", "unknown name `colz`"),
            (sizes, "Fixed(\"cols\")", "Fixed(\"cols +\")", "in `cols +`"),
            (sizes, "Fixed(\"cols\")", "Fixed(\"P0\")", "`P0` is used in its own size rule"),
            (sizes, "(\"P2\", Fixed", "(\"P3\", Fixed", "`P3` in `sizes` is not a partition part"),
            (sizes, "(\"P2\", Fixed", "(\"P1\", Fixed", "`P1` is sized twice"),
            ("partitions:", "\"P2\", \"P1\"", "\"P2\", \"P1\", \"P9\"", "partition part `P9` has no size rule"),
            ("partitions:", "\"P2\"", "\"M1\"", "partition part `M1` clashes with rank `M1`"),
            ("partitions:", "\"P2\"", "\"p2\"", "partition part `p2` is not an upper-case name"),
            ("partitions:", "\"P\":", "\"Q\":", "unknown rank `Q` in `partitions`"),
            (stage, "\"LM\", \"RM\"", "\"LM\", \"LM\", \"RM\"", "Einsum `LM` is listed twice"),
            (stage, "\"BQK\", ", "\"BK\", \"BQK\", ", "`BK` is an init Einsum"),
            (stage, "\"BQK\", ", "", "Einsum `BQK` of `attention-1pass` is in no stage"),
            (stage, "\"b\", \"h\"", "\"b\", \"b\", \"h\"", "loop `b` is listed twice"),
            (stage, "\"p2\", \"m1\"", "\"p\", \"m1\"", "loop `p` iterates rank `P`"),
            (stage, "\"p2\", \"m1\"", "\"p2\", \"m\", \"m1\"", "no Einsum of stage `attention` iterates loop `m`"),
            (stage, "\"BQK\": \"pe2d\"", "\"BQK\": \"pe3d\"", "placed on unknown unit `pe3d`"),
            (stage, "\"BQK\": \"pe2d\"", "\"BQK\": \"pe2d\", \"BQK\": \"pe1d\"", "`BQK` is given twice in `place`"),
            (stage, "\"pe1d\": [[\"p0\"]]", "\"pe1d\": [[\"p0\"], [\"m0\"]]", "spatial mapping of `pe1d` has 2 dimensions"),
            (stage, "[[\"m0\"], [\"p0\"]]", "[[\"m0\"], [\"p\"]]", "`p` is partitioned by this binding"),
            (stage, "[[\"m0\"], [\"p0\"]]", "[[\"m0\", \"m0\"], [\"p0\"]]", "`m0` is mapped twice on `pe2d`"),
            (stage, "[[\"m0\"], [\"p0\"]]", "[[\"m\"], [\"p0\"]]", "no Einsum of stage `attention` iterates `m`"),
            (stage, "\"BK\", \"BV\"", "\"BK\", \"BV\", \"K\"", "no Einsum of stage `attention` reads or writes DRAM tensor `K`"),
            (stage, "\"BK\", \"BV\"", "\"BK\", \"BV\", \"SLN\"", "DRAM tensor `SLN` has no `keep` loop"),
            (stage, "\"BK\", \"BV\"", "\"BK\", \"BK\"", "`BK` is listed twice in `dram`"),
            (stage, "\"RM\": \"p2\"", "\"RMX\": \"p2\"", "unknown tensor `RMX` in `keep`"),
            (stage, "buffer: \"buffer\"", "buffer: \"rf2d\", alias: { \"SLN\": \"BQKK\" }", "unknown tensor `BQKK` in `alias`"),
            (stage, "buffer: \"buffer\"", "buffer: \"buffer\", copies: { \"BK\": 0 }", "`BK` has 0 copies"),
            (stage, "buffer: \"buffer\"", "buffer: \"dram\"", "`buffer` names `dram`, which has no capacity"),
            (stage, "memory: \"dram\"", "memory: \"buffer\"", "`memory` names `buffer`, which is not a DRAM level"),
            (stage, "name: \"attention\"", "name: \"attention\", einsums: [], loops: [], place: {}, spatial: {}, buffer: \"buffer\", memory: \"dram\", pipeline: Sequential), Stage(name: \"attention\"", "two stages are named `attention`"),
        ] {
            let (got, mut line) = edited(anchor, from, to);
            if want.ends_with("in no stage") {
                // Located at the binding's `stages`, which lists no stage computing it.
                line = FUSEMAX[..FUSEMAX.find("stages: [").unwrap()].lines().count();
            }
            assert!(
                got.iter().any(|(m, l)| m.contains(want) && *l == line),
                "`{from}` -> `{to}`: expected `{want}` on line {line}, got {got:?}"
            );
        }
    }

    #[test]
    fn suggests_one_near_miss() {
        assert_eq!(
            did_you_mean("mo", &["m0", "p0", "e"]),
            "; did you mean `m0`?"
        );
        assert_eq!(
            did_you_mean("atention", &["attention"]),
            "; did you mean `attention`?"
        );
        assert_eq!(
            did_you_mean("m2", &["m1", "m0"]),
            "",
            "a tie suggests nothing"
        );
        assert_eq!(did_you_mean("xyz", &["buffer"]), "");
        assert_eq!(did_you_mean("AVV", &["AV", "RD"]), "; did you mean `AV`?");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("bufer", "buffer"), 1);
        assert_eq!(edit_distance("pe2x", "pe2d"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
