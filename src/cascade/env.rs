//! Evaluating a cascade's parameters and rank sizes for one configuration.
//!
//! A cascade's ranks are sized by expressions over named parameters (`"M": "kv_len"`, `"M1": "ceil(M, M0)"`), so
//! one file serves every sequence length. [`Cascade::with_params`] applies `--set`-style overrides to the defaults,
//! evaluates the parameters that follow others (`"q_len": "seq"`) in file order, and evaluates every rank,
//! re-checking what the loader checked for the defaults: sizes are positive and partition parts cover their
//! parent with less than one innermost tile of padding ([`super::ir::partition_cover`]). Later phases take the
//! resulting [`Env`] and never evaluate expressions again.

use super::ir::{partition_cover, Cascade, RankId};
use crate::diag::Span;
use crate::expr::{ExprError, SizeExpr};

/// Evaluated parameters and rank sizes for one configuration of a [`Cascade`].
#[derive(Clone, Debug, PartialEq)]
pub struct Env {
    /// Every parameter of the cascade, in file order, with its value after overrides.
    pub params: Vec<(String, i64)>,
    /// Size of every rank, indexed by [`RankId`].
    pub sizes: Vec<i64>,
    /// Parameters that took the value of their default expression (`q_len` following `seq`, nothing set it).
    /// Reports leave them out: the parameters they follow say what they are, and a run that sets only `seq`
    /// reads as it did before `q_len` existed.
    pub followed: Vec<String>,
}

/// Why a configuration is invalid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EnvError {
    #[error("unknown parameter `{name}`; {}", known_params(.known))]
    UnknownParam { name: String, known: Vec<String> },
    #[error("cannot evaluate the size of rank `{rank}`: {message}")]
    Rank { rank: String, message: String },
    #[error("rank `{rank}` has size {size}; sizes must be positive")]
    NonPositive { rank: String, size: i64 },
    #[error("the parts of rank `{parent}` do not cover it with less than one tile of padding: {parts}{why}")]
    Partition {
        parent: String,
        parts: String,
        why: String,
    },
    #[error("cannot evaluate `{expr}`, the default of parameter `{param}`: {message}")]
    Default {
        param: String,
        expr: String,
        message: String,
    },
    #[error("cannot evaluate `{expr}`: {message}")]
    Expr { expr: String, message: String },
    #[error("parameter `{param}` = {value} is outside its limits, {lo} to {hi}")]
    OutOfRange {
        param: String,
        value: i64,
        lo: i64,
        hi: i64,
    },
    #[error("Einsum `{einsum}`: `topk({rank}, {expr})` keeps {k} of {n}; expected a count from 1 to {n}")]
    TopK {
        einsum: String,
        rank: String,
        expr: String,
        k: i64,
        n: i64,
    },
}

fn known_params(known: &[String]) -> String {
    if known.is_empty() {
        "this cascade has no parameters".into()
    } else {
        format!("the parameters are: {}", known.join(", "))
    }
}

impl Cascade {
    /// Parameter defaults with `overrides` applied (later overrides win), and every rank size evaluated. A
    /// parameter with a default expression that no override sets takes the expression's value over the
    /// parameters before it, after their overrides: `--set seq=4096` moves `q_len` and `kv_len` with it, and
    /// `--set q_len=1` sets only `q_len`.
    ///
    /// Errors: an override naming a parameter the cascade does not have (the message lists the known ones), a
    /// default or size that cannot be evaluated (overflow, inexact division), a size ≤ 0, or a partition whose
    /// parts do not cover the parent with less than one innermost tile of padding.
    pub fn with_params(&self, overrides: &[(String, i64)]) -> Result<Env, EnvError> {
        if let Some((name, _)) = overrides
            .iter()
            .find(|(n, _)| self.params.iter().all(|p| &p.name != n))
        {
            return Err(EnvError::UnknownParam {
                name: name.clone(),
                known: self.params.iter().map(|p| p.name.clone()).collect(),
            });
        }
        // In file order, so a parameter that follows others (`"q_len": "seq"`) sees their final values.
        let mut params: Vec<(String, i64)> = Vec::with_capacity(self.params.len());
        let mut followed = Vec::new();
        for p in &self.params {
            let set = overrides.iter().rev().find(|(n, _)| n == &p.name);
            let value = match (set, &p.follows) {
                (Some((_, v)), _) => *v,
                (None, Some(e)) => {
                    followed.push(p.name.clone());
                    let lookup = |n: &str| params.iter().find(|(q, _)| q == n).map(|(_, v)| *v);
                    e.eval(&lookup).map_err(|err| EnvError::Default {
                        param: p.name.clone(),
                        expr: e.to_string(),
                        message: err.message,
                    })?
                }
                (None, None) => p.default,
            };
            if let Some((lo, hi)) = p.range {
                if value < lo || value > hi {
                    return Err(EnvError::OutOfRange {
                        param: p.name.clone(),
                        value,
                        lo,
                        hi,
                    });
                }
            }
            params.push((p.name.clone(), value));
        }
        let ranks: Vec<(&str, &SizeExpr)> = self
            .ranks
            .iter()
            .map(|r| (r.name.as_str(), &r.size))
            .collect();
        let mut sizes = Vec::with_capacity(ranks.len());
        for (i, v) in eval_ranks(&params, &ranks).into_iter().enumerate() {
            let rank = self.ranks[i].name.clone();
            match v {
                Ok(size) if size > 0 => sizes.push(size),
                Ok(size) => return Err(EnvError::NonPositive { rank, size }),
                Err(RankEvalError::Expr(e)) => {
                    return Err(EnvError::Rank {
                        rank,
                        message: e.message,
                    })
                }
                Err(RankEvalError::Cycle(_)) => {
                    return Err(EnvError::Rank {
                        rank,
                        message: "its size depends on itself".into(),
                    })
                }
                Err(RankEvalError::Dep(d)) => {
                    return Err(EnvError::Rank {
                        rank,
                        message: format!("it depends on rank `{}`", ranks[d].0),
                    })
                }
            }
        }
        for r in &self.ranks {
            if r.parts.is_empty() {
                continue;
            }
            let parent = self.rank_id(&r.name).map_or(0, |i| sizes[i]);
            let vals: Vec<i64> = r.parts.iter().map(|p| sizes[*p]).collect();
            if let Err(e) = partition_cover(parent, &vals) {
                let names: Vec<&str> = r
                    .parts
                    .iter()
                    .map(|p| self.ranks[*p].name.as_str())
                    .collect();
                let vals: Vec<String> = vals.iter().map(i64::to_string).collect();
                return Err(EnvError::Partition {
                    parent: r.name.clone(),
                    parts: format!("{} = {}", names.join(" × "), vals.join(" × ")),
                    why: e.describe(&r.name, parent),
                });
            }
        }
        let env = Env {
            params,
            sizes,
            followed,
        };
        for es in &self.einsums {
            for red in &es.reductions {
                if let super::ir::ReduceOp::TopK(k) = &red.op {
                    let n = env.sizes[red.rank];
                    let v = env.eval(self, k)?;
                    if v < 1 || v > n {
                        return Err(EnvError::TopK {
                            einsum: es.name.clone(),
                            rank: self.ranks[red.rank].name.to_lowercase(),
                            expr: k.to_string(),
                            k: v,
                            n,
                        });
                    }
                }
            }
        }
        Ok(env)
    }

    /// Look up a parameter's default.
    pub fn param(&self, name: &str) -> Option<i64> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.default)
    }
}

/// Rank sizes (indexed by [`RankId`]) for the defaults plus `overrides`; shorthand for
/// `c.with_params(overrides).map(|e| e.sizes)`.
pub fn rank_sizes(c: &Cascade, overrides: &[(String, i64)]) -> Result<Vec<i64>, EnvError> {
    c.with_params(overrides).map(|e| e.sizes)
}

impl Env {
    /// The parameters a report lists, by name: every one but those that only followed others ([`Env::followed`]).
    pub fn reported_params(&self) -> std::collections::BTreeMap<String, i64> {
        self.params
            .iter()
            .filter(|(n, _)| !self.followed.contains(n))
            .cloned()
            .collect()
    }
    /// Size of a rank of the cascade this environment was built from.
    pub fn size(&self, r: RankId) -> i64 {
        self.sizes[r]
    }
    pub fn param(&self, name: &str) -> Option<i64> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
    /// Evaluate a size expression of the cascade (a `topk` count, a fixed coordinate, a stop bound): names are
    /// parameters or ranks.
    pub fn eval(&self, c: &Cascade, e: &SizeExpr) -> Result<i64, EnvError> {
        e.eval(&|n| {
            self.param(n)
                .or_else(|| c.rank_id(n).and_then(|r| self.sizes.get(r).copied()))
        })
        .map_err(|err| EnvError::Expr {
            expr: e.to_string(),
            message: err.message,
        })
    }
}

/// Why one rank's size could not be evaluated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RankEvalError {
    Expr(ExprError),
    /// The size refers back to itself; the ranks on the cycle, starting with this one.
    Cycle(Vec<usize>),
    /// It depends on the rank with this index, which failed.
    Dep(usize),
}

/// Evaluate every rank size, resolving names as parameters first, then ranks (in any order, recursively).
/// Never panics: cycles and runaway nesting are errors.
pub(crate) fn eval_ranks(
    params: &[(String, i64)],
    ranks: &[(&str, &SizeExpr)],
) -> Vec<Result<i64, RankEvalError>> {
    #[derive(Clone)]
    enum State {
        Todo,
        Active,
        Done(Result<i64, RankEvalError>),
    }
    struct Ev<'a> {
        params: &'a [(String, i64)],
        ranks: &'a [(&'a str, &'a SizeExpr)],
        state: Vec<State>,
        stack: Vec<usize>,
    }
    impl Ev<'_> {
        fn rank(&self, n: &str) -> Option<usize> {
            if self.params.iter().any(|(p, _)| p == n) {
                return None;
            }
            self.ranks.iter().position(|(r, _)| *r == n)
        }
        fn visit(&mut self, i: usize) {
            self.state[i] = State::Active;
            self.stack.push(i);
            let mut result = None;
            for (n, span) in self.ranks[i].1.names() {
                let Some(j) = self.rank(n) else { continue };
                if matches!(self.state[j], State::Todo) {
                    if self.stack.len() > 256 {
                        let e = ExprError {
                            span,
                            message: "rank sizes are nested too deeply".into(),
                            expected: "fewer ranks defined in terms of each other".into(),
                        };
                        result = Some(Err(RankEvalError::Expr(e)));
                        break;
                    }
                    self.visit(j);
                }
                match &self.state[j] {
                    State::Active => {
                        let from = self.stack.iter().position(|&k| k == j).unwrap_or(0);
                        let mut cycle: Vec<usize> = self.stack[from..].to_vec();
                        let pos = cycle.iter().position(|&k| k == i).unwrap_or(0);
                        cycle.rotate_left(pos);
                        result = Some(Err(RankEvalError::Cycle(cycle)));
                        break;
                    }
                    State::Done(Err(_)) => {
                        result = Some(Err(RankEvalError::Dep(j)));
                        break;
                    }
                    _ => {}
                }
            }
            let result = result.unwrap_or_else(|| {
                let lookup = |n: &str| -> Option<i64> {
                    if let Some((_, v)) = self.params.iter().find(|(p, _)| p == n) {
                        return Some(*v);
                    }
                    match self.rank(n).map(|j| &self.state[j]) {
                        Some(State::Done(Ok(v))) => Some(*v),
                        _ => None,
                    }
                };
                self.ranks[i].1.eval(&lookup).map_err(RankEvalError::Expr)
            });
            self.stack.pop();
            self.state[i] = State::Done(result);
        }
    }
    let mut ev = Ev {
        params,
        ranks,
        state: vec![State::Todo; ranks.len()],
        stack: Vec::new(),
    };
    for i in 0..ranks.len() {
        if matches!(ev.state[i], State::Todo) {
            ev.visit(i);
        }
    }
    ev.state
        .into_iter()
        .map(|s| match s {
            State::Done(r) => r,
            // Unreachable: every rank is visited above. Report rather than panic.
            _ => Err(RankEvalError::Expr(ExprError {
                span: Span::default(),
                message: "not evaluated".into(),
                expected: String::new(),
            })),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_in_any_order_and_finds_cycles() {
        let p = vec![("seq".to_string(), 1024)];
        let m1 = SizeExpr::parse("M / M0").unwrap();
        let m = SizeExpr::parse("seq").unwrap();
        let m0 = SizeExpr::parse("256").unwrap();
        let r = eval_ranks(&p, &[("M1", &m1), ("M", &m), ("M0", &m0)]);
        assert_eq!(r, vec![Ok(4), Ok(1024), Ok(256)]);
        let a = SizeExpr::parse("B + 1").unwrap();
        let b = SizeExpr::parse("A").unwrap();
        let r = eval_ranks(&p, &[("A", &a), ("B", &b)]);
        assert!(r.iter().all(|x| x.is_err()));
        assert!(r.iter().any(|x| matches!(x, Err(RankEvalError::Cycle(_)))));
    }
}
