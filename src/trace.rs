//! Generation traces (CSV): what each head fetched at each generation step and layer, to drive a SpAtten-style
//! generation run ([`crate::generation`]) instead of pruning schedules. The format, one row per (step, layer,
//! kept head); `#` starts a comment line:
//!
//! ```text
//! step,layer,head,keys,values,k_bits,v_bits,lsb_refetch
//! 0,0,0,1024,307,12,8,0
//! ```
//!
//! - `step` counts generated tokens from 0; `layer` and `head` are 0-based. A head with no row in a (step, layer)
//!   was pruned there.
//! - `keys`: K rows fetched (the tokens cascade token pruning kept); `values`: V rows fetched (after local V
//!   pruning), at most `keys`.
//! - `k_bits`, `v_bits`: the widths fetched from DRAM (progressive quantization's MSBs, or static widths), 1-16.
//! - `lsb_refetch`: 1 when the head's largest probability was under the threshold and its Q and K LSBs were
//!   fetched and the probabilities recomputed, else 0.
//!
//! [`Trace::parse`] checks the syntax; [`Trace::check`] checks the rows against a model (layers, heads, the
//! cache length at each step) and the pruning rules: a pruned head or token is never used again in a later layer
//! of the same step ([P] §2.1). Every problem is a located diagnostic.

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::layer::HeadGroup;
use std::collections::BTreeMap;

/// The columns, in order.
pub const COLUMNS: [&str; 8] = [
    "step",
    "layer",
    "head",
    "keys",
    "values",
    "k_bits",
    "v_bits",
    "lsb_refetch",
];

/// What a head group sets: layer vars (the layer file must declare each, so none is silently unused) and model
/// parameters (the widths), in the order [`Trace::groups`] gives them.
pub const GROUP_VARS: [&str; 4] = ["kept_heads", "keys", "values", "lsb_heads"];
pub const GROUP_PARAMS: [&str; 2] = ["k_bits", "v_bits"];

/// One row: what one kept head fetched at one step and layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub step: i64,
    pub layer: i64,
    pub head: i64,
    pub keys: i64,
    pub values: i64,
    pub k_bits: i64,
    pub v_bits: i64,
    pub lsb_refetch: bool,
    /// Where the row is, for errors found later.
    span: Span,
}

/// A parsed trace: rows by (step, layer), each with its heads' rows in file order.
#[derive(Clone, Debug)]
pub struct Trace {
    pub file: SourceFile,
    pub rows: BTreeMap<(i64, i64), Vec<Row>>,
}

/// The widest `step`: a trace longer than this is refused rather than run for hours.
const MAX_STEPS: i64 = 1 << 20;

impl Trace {
    /// Parse the CSV, collecting every syntax error (a bad header, a wrong number of cells, a cell that is not a
    /// whole number in its range).
    pub fn parse(file: &SourceFile) -> Result<Trace, Diagnostics> {
        let mut items = Vec::new();
        let mut rows: BTreeMap<(i64, i64), Vec<Row>> = BTreeMap::new();
        let mut header = false;
        let mut offset = 0usize;
        for line in file.text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let text = line.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() || text.trim_start().starts_with('#') {
                continue;
            }
            let cells = cells(text, start);
            if !header {
                header = true;
                let names: Vec<&str> = cells.iter().map(|(c, _)| c.trim()).collect();
                if names != COLUMNS {
                    items.push(Diagnostic::new(
                        Span::new(start, start + text.len()),
                        "this is not a generation trace's header",
                        format!("expected `{}`", COLUMNS.join(",")),
                    ));
                    break;
                }
                continue;
            }
            if cells.len() != COLUMNS.len() {
                items.push(Diagnostic::new(
                    Span::new(start, start + text.len()),
                    format!("a row of {} cells", cells.len()),
                    format!("expected {} cells: {}", COLUMNS.len(), COLUMNS.join(",")),
                ));
                continue;
            }
            if let Some(row) = row(&cells, Span::new(start, start + text.len()), &mut items) {
                rows.entry((row.step, row.layer)).or_default().push(row);
            }
        }
        if !header {
            items.push(Diagnostic::new(
                Span::new(0, file.text.len()),
                "the trace has no header and no rows",
                format!(
                    "expected a header `{}` and a row per kept head",
                    COLUMNS.join(",")
                ),
            ));
        }
        if !items.is_empty() {
            return Err(Diagnostics {
                file: file.clone(),
                items,
            });
        }
        Ok(Trace {
            file: file.clone(),
            rows,
        })
    }

    /// Generation steps the trace covers (its largest step plus one).
    pub fn steps(&self) -> i64 {
        self.rows.keys().map(|(s, _)| s + 1).max().unwrap_or(0)
    }

    /// Check the rows against a model of `layers` layers of `heads` heads generating after `context` cached
    /// tokens: every step from 0 has a row for every layer, heads are in range and once each, a head's keys fit
    /// the cache at that step and its values its keys, and no later layer of a step uses a head or more tokens
    /// than an earlier one kept.
    pub fn check(&self, layers: i64, heads: i64, context: i64) -> Result<(), Diagnostics> {
        let mut items = Vec::new();
        for step in 0..self.steps() {
            // At the step's first row (a step with none is located at the file's start).
            let at = self
                .rows
                .range((step, 0)..(step + 1, 0))
                .next()
                .map_or(Span::new(0, 0), |(_, rs)| rs[0].span);
            let missing: Vec<String> = (0..layers)
                .filter(|l| !self.rows.contains_key(&(step, *l)))
                .map(|l| l.to_string())
                .collect();
            if !missing.is_empty() {
                items.push(Diagnostic::new(
                    at,
                    format!(
                        "step {step} has no rows for layer(s) {}",
                        missing.join(", ")
                    ),
                    format!("expected a row per kept head for each of the model's {layers} layers"),
                ));
            }
        }
        for (&(step, layer), rs) in &self.rows {
            if layer >= layers {
                items.push(Diagnostic::new(
                    rs[0].span,
                    format!("layer {layer}, but the model has {layers} layers"),
                    format!("expected a layer from 0 to {}", layers - 1),
                ));
                continue;
            }
            let kv_len = context + step;
            let earlier = layer.checked_sub(1).and_then(|l| self.rows.get(&(step, l)));
            for (i, r) in rs.iter().enumerate() {
                let mut bad =
                    |msg: String, label: String| items.push(Diagnostic::new(r.span, msg, label));
                if r.head >= heads {
                    bad(
                        format!("head {}, but the model has {heads} heads", r.head),
                        format!("expected a head from 0 to {}", heads - 1),
                    );
                } else if rs[..i].iter().any(|q| q.head == r.head) {
                    bad(
                        format!("head {} twice in step {step}, layer {layer}", r.head),
                        "expected one row per head".into(),
                    );
                }
                if r.keys > kv_len {
                    bad(
                        format!(
                            "{} keys, but the cache holds {kv_len} tokens at step {step}",
                            r.keys
                        ),
                        format!("expected at most {kv_len} (the context plus the step)"),
                    );
                }
                if r.values > r.keys {
                    bad(
                        format!("{} values of {} keys", r.values, r.keys),
                        "expected values ≤ keys: V rows are a subset of the kept tokens".into(),
                    );
                }
                if let Some(prev) = earlier {
                    if !prev.iter().any(|q| q.head == r.head) {
                        bad(
                            format!(
                                "head {} un-pruned: layer {} of step {step} pruned it",
                                r.head,
                                layer - 1
                            ),
                            "a pruned head is never used again in a later layer".into(),
                        );
                    }
                    let kept = prev.iter().map(|q| q.keys).max().unwrap_or(0);
                    if r.keys > kept {
                        bad(
                            format!(
                                "{} keys, more than the {kept} layer {} kept",
                                r.keys,
                                layer - 1
                            ),
                            "a pruned token is never fetched again in a later layer".into(),
                        );
                    }
                }
            }
        }
        if items.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics {
                file: self.file.clone(),
                items,
            })
        }
    }

    /// The head groups of one step and layer: heads that fetched the same keys, values and widths run as one
    /// attention op (`kept_heads` of them, `lsb_heads` of which refetched), in first-row order.
    pub fn groups(&self, step: i64, layer: i64) -> Vec<HeadGroup> {
        // (keys, values, k_bits, v_bits), heads, heads that refetched.
        type Fetch = (i64, i64, i64, i64);
        let mut groups: Vec<(Fetch, i64, i64)> = Vec::new();
        for r in self.rows.get(&(step, layer)).into_iter().flatten() {
            let key = (r.keys, r.values, r.k_bits, r.v_bits);
            match groups.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, n, lsb)) => {
                    *n += 1;
                    *lsb += r.lsb_refetch as i64;
                }
                None => groups.push((key, 1, r.lsb_refetch as i64)),
            }
        }
        groups
            .into_iter()
            .map(|((keys, values, k_bits, v_bits), n, lsb)| {
                let names = GROUP_VARS.iter().chain(&GROUP_PARAMS);
                names
                    .zip([n, keys, values, lsb, k_bits, v_bits])
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            })
            .collect()
    }
}

/// A line's comma-separated cells with their spans.
fn cells(text: &str, start: usize) -> Vec<(&str, Span)> {
    let mut out = Vec::new();
    let mut at = start;
    for c in text.split(',') {
        out.push((c, Span::new(at, at + c.len())));
        at += c.len() + 1;
    }
    out
}

/// One row's cells as numbers, each in its range; problems go to `items`.
fn row(cells: &[(&str, Span)], span: Span, items: &mut Vec<Diagnostic>) -> Option<Row> {
    let ranges: [(i64, i64); 8] = [
        (0, MAX_STEPS - 1),
        (0, 1 << 20),
        (0, 1 << 20),
        (1, 1 << 40),
        (1, 1 << 40),
        (1, 16),
        (1, 16),
        (0, 1),
    ];
    let mut v = [0i64; 8];
    let mut ok = true;
    for (i, ((c, s), (lo, hi))) in cells.iter().zip(ranges).enumerate() {
        match c.trim().parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => v[i] = n,
            _ => {
                ok = false;
                items.push(Diagnostic::new(
                    *s,
                    format!("`{}` = `{}`", COLUMNS[i], c.trim()),
                    format!("expected a whole number from {lo} to {hi}"),
                ));
            }
        }
    }
    ok.then_some(Row {
        step: v[0],
        layer: v[1],
        head: v[2],
        keys: v[3],
        values: v[4],
        k_bits: v[5],
        v_bits: v[6],
        lsb_refetch: v[7] == 1,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(text: &str) -> Result<Trace, Diagnostics> {
        Trace::parse(&SourceFile::new("t.csv", text))
    }

    #[test]
    fn heads_that_fetched_alike_form_one_group() {
        let t = trace(
            "# a comment\nstep,layer,head,keys,values,k_bits,v_bits,lsb_refetch\n\
             0,0,0,100,30,8,8,0\n0,0,1,100,30,8,8,1\n0,0,2,90,30,8,8,0\n",
        )
        .unwrap();
        t.check(1, 4, 100).unwrap();
        let g = t.groups(0, 0);
        assert_eq!(g.len(), 2);
        assert!(
            g[0].contains(&("kept_heads".into(), 2)) && g[0].contains(&("lsb_heads".into(), 1))
        );
        assert!(g[1].contains(&("keys".into(), 90)));
    }

    #[test]
    fn rows_that_break_the_model_or_unprune_are_located() {
        let t = trace(
            "step,layer,head,keys,values,k_bits,v_bits,lsb_refetch\n\
             0,0,0,50,30,8,8,0\n0,1,0,60,30,8,8,0\n0,1,1,10,30,8,8,0\n",
        )
        .unwrap();
        let e = t.check(2, 2, 100).unwrap_err().render();
        assert!(e.contains("more than the 50 layer 0 kept"), "{e}");
        assert!(e.contains("head 1 un-pruned"), "{e}");
        assert!(e.contains("30 values of 10 keys"), "{e}");
    }

    #[test]
    fn a_bad_cell_names_its_column() {
        let e = trace("step,layer,head,keys,values,k_bits,v_bits,lsb_refetch\n0,0,0,50,30,0,8,2\n")
            .unwrap_err()
            .render();
        assert!(
            e.contains("`k_bits` = `0`") && e.contains("`lsb_refetch` = `2`"),
            "{e}"
        );
    }
}
