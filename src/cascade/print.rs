//! The canonical printer: a [`Cascade`] back to a complete workload file.
//!
//! The output loads back to the same cascade (modulo spans) and printing is idempotent, so `einsim` can show the
//! checked form of any workload and tests can compare cascades by their printed text. Layout is fixed (one rank per
//! line, Einsums aligned in columns) so that the text diffs well; comments outside Einsum lines are not kept.

use super::ir::*;
use std::fmt::Write;

/// Print `c` as a workload file (RON with the einsums block as a raw string).
pub fn print(c: &Cascade) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Cascade(");
    let _ = writeln!(out, "    name: {},", quote(&c.name));
    let _ = writeln!(out, "    description: {},", quote(&c.description));
    let _ = writeln!(out, "    source: {},", quote(&c.source));
    let params: Vec<String> = c
        .params
        .iter()
        .map(|p| match &p.follows {
            Some(e) => format!("{}: {}", quote(&p.name), quote(&e.to_string())),
            None => format!("{}: {}", quote(&p.name), p.default),
        })
        .collect();
    let _ = writeln!(out, "    params: {{ {} }},", params.join(", "));
    let limits: Vec<String> = c
        .params
        .iter()
        .filter_map(|p| {
            p.range
                .map(|(lo, hi)| format!("{}: ({lo}, {hi})", quote(&p.name)))
        })
        .collect();
    if !limits.is_empty() {
        let _ = writeln!(out, "    limits: {{ {} }},", limits.join(", "));
    }
    let _ = writeln!(out, "    ranks: {{");
    for r in &c.ranks {
        let _ = writeln!(
            out,
            "        {}: {},",
            quote(&r.name),
            quote(&r.size.to_string())
        );
    }
    let _ = writeln!(out, "    }},");
    let parts: Vec<String> = c
        .ranks
        .iter()
        .filter(|r| !r.parts.is_empty())
        .map(|r| {
            let ps: Vec<String> = r.parts.iter().map(|&p| quote(&c.ranks[p].name)).collect();
            format!("{}: [{}]", quote(&r.name), ps.join(", "))
        })
        .collect();
    if !parts.is_empty() {
        let _ = writeln!(out, "    partitions: {{ {} }},", parts.join(", "));
    }
    if !c.broadcast.is_empty() {
        let b: Vec<String> = c
            .broadcast
            .iter()
            .map(|&r| quote(&c.ranks[r].name))
            .collect();
        let _ = writeln!(out, "    broadcast: [{}],", b.join(", "));
    }
    let body = einsums_text(c);
    // A raw string needs more `#`s than any `"#...` run inside it (possible only inside comments).
    let mut hashes = "#".to_string();
    while body.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    let _ = writeln!(out, "    einsums: r{hashes}\"\n{body}    \"{hashes},");
    out.push_str(")\n");
    out
}

/// A RON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The einsums block: inputs, sections, aligned Einsums with their comments, stopping conditions.
fn einsums_text(c: &Cascade) -> String {
    let mut out = String::new();
    let inputs: Vec<String> = c
        .tensors
        .iter()
        .filter(|t| t.kind == TensorKind::Input)
        .map(|t| {
            let idx: Vec<String> = t.ranks.iter().map(|&r| var(c, r)).collect();
            format!("{}[{}]", t.name, idx.join(","))
        })
        .collect();
    if !inputs.is_empty() {
        let _ = writeln!(out, "        input {}", inputs.join(", "));
    }
    let lines: Vec<(String, String)> = c
        .einsums
        .iter()
        .map(|e| (tensor_ref(c, &e.output), rhs(c, e)))
        .collect();
    let lhs_w = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let full_w = lines
        .iter()
        .map(|(_, r)| lhs_w + 3 + r.chars().count())
        .max()
        .unwrap_or(0);
    let mut section = None;
    for (e, (l, r)) in c.einsums.iter().zip(&lines) {
        if section != Some(e.section) {
            section = Some(e.section);
            let _ = writeln!(
                out,
                "      {}:",
                if e.section == Section::Init {
                    "init"
                } else {
                    "main"
                }
            );
        }
        let stmt = format!("{l:<lhs_w$} = {r}");
        match &e.comment {
            Some(cm) => {
                let _ = writeln!(out, "        {stmt:<full_w$}  -- {cm}");
            }
            None => {
                let _ = writeln!(out, "        {stmt}");
            }
        }
    }
    for s in &c.stops {
        let _ = writeln!(
            out,
            "        until {} {} {}",
            var(c, s.rank),
            cmp(s.cmp),
            s.bound
        );
    }
    out
}

fn var(c: &Cascade, r: RankId) -> String {
    c.ranks
        .get(r)
        .map_or_else(|| format!("r{r}"), |r| r.name.to_ascii_lowercase())
}

fn cmp(c: Cmp) -> &'static str {
    match c {
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
        Cmp::Eq => "==",
    }
}

/// The canonical text of a reference (`RM[m1+1,p]`): two references with the same text name the same tile.
pub fn print_ref(c: &Cascade, r: &TensorRef) -> String {
    tensor_ref(c, r)
}

fn tensor_ref(c: &Cascade, r: &TensorRef) -> String {
    let name = c.tensors.get(r.tensor).map_or("?", |t| t.name.as_str());
    let idx: Vec<String> = r.indices.iter().map(|i| index(c, i)).collect();
    format!("{name}[{}]", idx.join(","))
}

fn index(c: &Cascade, i: &Index) -> String {
    match i {
        Index::Var { rank, .. } => var(c, *rank),
        Index::Shift { rank, offset, .. } if *offset < 0 => {
            format!("{}-{}", var(c, *rank), offset.unsigned_abs())
        }
        Index::Shift { rank, offset, .. } => format!("{}+{offset}", var(c, *rank)),
        Index::Fixed { rank, at, .. } => match at {
            crate::expr::SizeExpr::Name(n, _) if c.rank_id(n) == Some(*rank) => n.clone(),
            _ => format!("{}={at}", var(c, *rank)),
        },
        Index::Flatten { parts, .. } => {
            let terms: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let mut t = var(c, *p);
                    for q in &parts[k + 1..] {
                        t.push('*');
                        t.push_str(&c.ranks[*q].name);
                    }
                    t
                })
                .collect();
            terms.join("+")
        }
        Index::Filter {
            rank,
            bound,
            cmp: op,
            ..
        } => {
            let v = var(c, *rank);
            format!("{v}:{v}{}{}", cmp(*op), var(c, *bound))
        }
    }
}

/// Reduction prefixes (consecutive same-op ranks grouped, `max(m1, m0)`) then the expression.
fn rhs(c: &Cascade, e: &Einsum) -> String {
    let mut out = String::new();
    let mut k = 0;
    while k < e.reductions.len() {
        let r = &e.reductions[k];
        let name = match &r.op {
            ReduceOp::TopK(n) => {
                let _ = write!(out, "topk({}, {n}) ", var(c, r.rank));
                k += 1;
                continue;
            }
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        };
        let mut vars = vec![var(c, r.rank)];
        k += 1;
        while k < e.reductions.len() && e.reductions[k].op == r.op {
            vars.push(var(c, e.reductions[k].rank));
            k += 1;
        }
        let _ = write!(out, "{name}({}) ", vars.join(", "));
    }
    out.push_str(&expr(c, &e.expr));
    out
}

/// Binding strength: sums 1, products 2, unary minus 3, atoms and calls 4.
fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Binary {
            op: BinOp::Add | BinOp::Sub,
            ..
        } => 1,
        Expr::Binary {
            op: BinOp::Mul | BinOp::Div,
            ..
        } => 2,
        Expr::Unary {
            op: UnaryOp::Neg, ..
        } => 3,
        Expr::Const(v) if v.is_sign_negative() => 3,
        _ => 4,
    }
}

fn expr(c: &Cascade, e: &Expr) -> String {
    match e {
        Expr::Ref(r) => tensor_ref(c, r),
        Expr::Const(v) => number(*v),
        Expr::Unary {
            op: UnaryOp::Neg,
            arg,
            ..
        } => {
            let a = expr(c, arg);
            if prec(arg) < 3 {
                format!("-({a})")
            } else {
                format!("-{a}")
            }
        }
        Expr::Unary { op, arg, .. } => {
            let name = super::syntax::UNARY_FNS
                .iter()
                .find(|(_, o)| o == op)
                .map_or("?", |(n, _)| n);
            format!("{name}({})", expr(c, arg))
        }
        Expr::Binary {
            op: op @ (BinOp::Max | BinOp::Min),
            lhs,
            rhs,
            ..
        } => {
            let name = if *op == BinOp::Max { "max" } else { "min" };
            format!("{name}({}, {})", expr(c, lhs), expr(c, rhs))
        }
        Expr::Binary { op, lhs, rhs, .. } => {
            let (sym, p) = match op {
                BinOp::Add => ("+", 1),
                BinOp::Sub => ("-", 1),
                BinOp::Mul => ("*", 2),
                _ => ("/", 2),
            };
            let l = expr(c, lhs);
            let l = if prec(lhs) < p { format!("({l})") } else { l };
            // Right operands bind tighter (operators associate left); a negative one is parenthesised so that
            // `a - -b` never prints as a `--` comment.
            let r = expr(c, rhs);
            let r = if prec(rhs) <= p || prec(rhs) == 3 {
                format!("({r})")
            } else {
                r
            };
            format!("{l} {sym} {r}")
        }
    }
}

fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else if v.is_nan() {
        // Not produced by the parser; printed as something that fails to load rather than silently changing.
        "nan".into()
    } else {
        // `{}` gives the shortest text that parses back to the same value, never in exponent form.
        format!("{v}")
    }
}
