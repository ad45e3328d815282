//! Name resolution for layer files. Every cascade an op names, every parameter it passes and every name its
//! expressions use is resolved before anything runs, with all problems reported at once: a typo in a layer is a
//! located error, never a number (an unknown name would otherwise surface only when its op runs, and an op whose
//! `when` is zero never runs).

use super::LayerFile;
use crate::binding::did_you_mean;
use crate::diag::{locate, Diagnostic, Diagnostics, SourceFile};
use crate::expr::SizeExpr;
use crate::library::{self, Kind};
use std::collections::BTreeSet;

/// Check `layer` (parsed from `file`) against the model parameters its expressions may use (`params`: one model's
/// when the layer is run, the union of the known models' for `einsim check`) and the cascades `cascade` finds.
pub fn check(
    file: &SourceFile,
    layer: &LayerFile,
    params: &BTreeSet<String>,
    cascade: &dyn Fn(&str) -> Option<SourceFile>,
) -> Result<(), Diagnostics> {
    let text = &file.text;
    let mut errs = Vec::new();
    // Names an expression may use: the model's parameters and the layer's vars.
    let known: Vec<&str> = params
        .iter()
        .map(String::as_str)
        .chain(layer.vars.keys().map(String::as_str))
        .collect();
    let expr = |e: &str, from: usize, errs: &mut Vec<Diagnostic>| {
        let at = locate(text, e, from);
        match SizeExpr::parse(e) {
            Err(err) => errs.push(Diagnostic::new(
                err.span.offset(at.start as usize),
                format!("in `{e}`: {}", err.message),
                err.expected,
            )),
            Ok(x) => {
                for (n, s) in x.names() {
                    if !known.contains(&n) {
                        errs.push(Diagnostic::new(
                            s.offset(at.start as usize),
                            format!("unknown name `{n}`"),
                            format!(
                                "a parameter of the model or a var of this layer{}",
                                did_you_mean(n, &known)
                            ),
                        ));
                    }
                }
            }
        }
    };
    let vars_at = text.find("vars").unwrap_or(0);
    for (k, e) in &layer.vars {
        expr(e, locate(text, k, vars_at).start as usize, &mut errs);
    }
    let mut seen = BTreeSet::new();
    let mut cursor = text.find("ops").unwrap_or(0);
    for op in &layer.ops {
        let name = locate(text, &op.name, cursor);
        cursor = name.end as usize;
        if !seen.insert(op.name.as_str()) {
            errs.push(Diagnostic::new(
                name,
                format!("op `{}` is named twice", op.name),
                "a name no other op of this layer has",
            ));
        }
        let declared = op
            .cascade
            .as_deref()
            .map(|c| (c, cascade_params(c, cascade)));
        if let Some((c, Err((problem, label)))) = &declared {
            errs.push(Diagnostic::new(
                locate(text, c, cursor),
                format!("op `{}`: {problem} cascade `{c}`", op.name),
                label.clone(),
            ));
        }
        for (k, e) in &op.params {
            let key = locate(text, k, cursor);
            if let Some((c, Ok(names))) = &declared {
                if !names.contains(k) {
                    errs.push(Diagnostic::new(
                        key,
                        format!("op `{}`: cascade `{c}` has no parameter `{k}`", op.name),
                        format!("one of {}{}", names.join(", "), did_you_mean(k, names)),
                    ));
                }
            }
            expr(e, key.end as usize, &mut errs);
        }
        if let Some(w) = &op.when {
            expr(w, cursor, &mut errs);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        // In file order, as a reader fixes them.
        errs.sort_by_key(|d: &Diagnostic| d.span.start);
        Err(Diagnostics {
            file: file.clone(),
            items: errs,
        })
    }
}

/// The parameters of cascade `name`, or what is wrong with it (`unknown` or `invalid`) and what was expected.
fn cascade_params(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<SourceFile>,
) -> Result<Vec<String>, (&'static str, String)> {
    let shipped = library::names(Kind::Cascade);
    let file = lookup(name).ok_or_else(|| {
        let label = format!(
            "a shipped cascade (one of {}) or a path ending in .ron{}",
            shipped.join(", "),
            did_you_mean(name, &shipped)
        );
        ("unknown", label)
    })?;
    // A cascade file with errors of its own: named here, its errors in full when that file is checked.
    let c = crate::cascade::load(&file).map_err(|d| {
        let first = d.items.first().map_or(String::new(), |i| i.message.clone());
        (
            "invalid",
            format!("a cascade that loads ({}: {first})", file.name),
        )
    })?;
    Ok(c.params.iter().map(|p| p.name.clone()).collect())
}

/// The parameter names of every model `lookup` knows by a shipped name: what a layer's expressions may use when
/// no model is given.
pub fn shipped_model_params(lookup: &dyn Fn(Kind, &str) -> Option<SourceFile>) -> BTreeSet<String> {
    library::names(Kind::Model)
        .into_iter()
        .filter_map(|n| lookup(Kind::Model, n))
        .filter_map(|f| crate::cascade::load_model(&f).ok())
        .flat_map(|m| m.params.into_iter().map(|p| p.name))
        .collect()
}
