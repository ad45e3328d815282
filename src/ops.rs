//! What an Einsum computes at each point of its iteration space, as op kinds a unit can price.
//!
//! Op kinds are names looked up in a unit's op table (`mac`, `add`, `mul`, `div`, `max`, `exp`, `exp_diff`,
//! `topk`, `sigmoid`, ...). Fused patterns (`mac` = multiply then sum-reduce, `exp_diff` = exp of a difference)
//! carry a fallback decomposition, used when the unit has no entry for the fused kind: FLAT's exp unit prices
//! `exp_diff` as one pipelined op, while a FuseMax PE without an exp unit pays `add` + `exp` (6 MACs).

use crate::cascade::{BinOp, Cascade, EinsumId, Expr, RankId, ReduceOp, TensorRef, UnaryOp};

/// One op per iteration point, with what to charge instead if the unit lacks it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpNeed {
    pub kind: &'static str,
    pub fallback: Vec<&'static str>,
}

fn op(kind: &'static str) -> OpNeed {
    OpNeed {
        kind,
        fallback: vec![],
    }
}

/// True for a pure re-indexing Einsum (`BK[e,m1,m0] = K[e, m1*M0+m0]`) or a constant initialisation: it costs
/// nothing and is not placed on a unit.
pub fn is_free(c: &Cascade, e: EinsumId) -> bool {
    let es = &c.einsums[e];
    es.reductions.is_empty() && matches!(es.expr, Expr::Ref(_) | Expr::Const(_)) && {
        // A plain copy with an implicit sum is not free.
        let out = iterated(&es.output);
        es.expr
            .refs()
            .iter()
            .all(|r| iterated(r).iter().all(|x| out.contains(x)))
    }
}

/// The ranks a tensor reference iterates.
fn iterated(r: &TensorRef) -> Vec<RankId> {
    r.indices
        .iter()
        .flat_map(|i| i.iterated().iter().copied())
        .collect()
}

/// The ops of Einsum `e` per iteration point.
pub fn einsum_ops(c: &Cascade, e: EinsumId) -> Vec<OpNeed> {
    let es = &c.einsums[e];
    if is_free(c, e) {
        return vec![];
    }
    let out = iterated(&es.output);
    let rhs: Vec<RankId> = es.expr.refs().into_iter().flat_map(iterated).collect();
    let explicit = |r: usize| es.reductions.iter().find(|x| x.rank == r).map(|x| &x.op);
    // The reduction op, if any rank is reduced (explicitly or by the default sum).
    let mut reduce: Option<&ReduceOp> = None;
    let sum = ReduceOp::Sum;
    for r in rhs.iter().filter(|r| !out.contains(r)) {
        reduce = Some(explicit(*r).unwrap_or(&sum));
    }
    let mut ops = Vec::new();
    match (&es.expr, reduce) {
        // Multiply-accumulate: the map and the sum-reduce are one MAC.
        (
            Expr::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
                ..
            },
            Some(ReduceOp::Sum),
        ) => {
            expr_ops(lhs, &mut ops);
            expr_ops(rhs, &mut ops);
            ops.push(OpNeed {
                kind: "mac",
                fallback: vec!["mul", "add"],
            });
        }
        (ex, red) => {
            expr_ops(ex, &mut ops);
            match red {
                None => {}
                Some(ReduceOp::Sum) => ops.push(op("add")),
                Some(ReduceOp::Max) | Some(ReduceOp::Min) => ops.push(op("max")),
                Some(ReduceOp::TopK(_)) => ops.push(op("topk")),
            }
        }
    }
    ops
}

fn expr_ops(e: &Expr, ops: &mut Vec<OpNeed>) {
    match e {
        Expr::Ref(_) | Expr::Const(_) => {}
        Expr::Unary {
            op: UnaryOp::Exp,
            arg,
            ..
        } => match &**arg {
            Expr::Binary {
                op: BinOp::Sub,
                lhs,
                rhs,
                ..
            } => {
                expr_ops(lhs, ops);
                expr_ops(rhs, ops);
                ops.push(OpNeed {
                    kind: "exp_diff",
                    fallback: vec!["add", "exp"],
                });
            }
            other => {
                expr_ops(other, ops);
                ops.push(op("exp"));
            }
        },
        Expr::Unary { op: u, arg, .. } => {
            expr_ops(arg, ops);
            ops.push(op(match u {
                UnaryOp::Neg => "neg",
                UnaryOp::Exp => "exp",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Recip => "div",
                UnaryOp::Relu => "max",
                UnaryOp::Tanh => "tanh",
                // A sign-bit clear, which a unit with a max (a comparator) does: priced as one.
                UnaryOp::Abs => "max",
            }));
        }
        Expr::Binary {
            op: b, lhs, rhs, ..
        } => {
            expr_ops(lhs, ops);
            expr_ops(rhs, ops);
            ops.push(op(match b {
                BinOp::Add | BinOp::Sub => "add",
                BinOp::Mul => "mul",
                BinOp::Div => "div",
                BinOp::Max | BinOp::Min => "max",
            }));
        }
    }
}
