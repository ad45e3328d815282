//! The checked cascade IR: what every later phase (pass analysis, mapping, simulation) consumes.
//!
//! A [`Cascade`] is produced only by [`crate::cascade::load`] after every semantic check has passed, so the
//! invariants below hold for any value later phases see:
//! - every tensor has exactly one writer, except an iterative tensor, which has one *initialisation* Einsum
//!   writing a fixed coordinate (`RM[m1=0,p]`) and one *iterative* Einsum writing a shifted one (`RM[m1+1,p]`);
//! - every index variable names a rank in the rank table (`m1` ↔ `M1`, by the paper's lower-case convention);
//! - the dataflow graph is acyclic once loop-carried reads (`RM[m1,p]` read by the Einsum writing `RM[m1+1,p]`'s
//!   iteration) are removed;
//! - every partition covers its rank with less than one innermost tile of padding, for the default parameters
//!   (re-checked whenever parameters change; see [`partition_cover`]).

use crate::diag::Span;
use crate::expr::SizeExpr;

/// Index of a rank in [`Cascade::ranks`].
pub type RankId = usize;
/// Index of a tensor in [`Cascade::tensors`].
pub type TensorId = usize;
/// Index of an Einsum in [`Cascade::einsums`].
pub type EinsumId = usize;

#[derive(Clone, Debug, PartialEq)]
pub struct Cascade {
    /// Short name, e.g. `attention-1pass`.
    pub name: String,
    /// One line on what the cascade is.
    pub description: String,
    /// Where the cascade comes from (paper, equation numbers).
    pub source: String,
    /// Named integer parameters with defaults (`seq`, `batch`, `heads`, `head_dim`, ...).
    pub params: Vec<Param>,
    /// The rank table: every rank an index may range over, including partition parts.
    pub ranks: Vec<Rank>,
    /// Ranks present on every tensor but omitted from the notation (the paper's B and H).
    pub broadcast: Vec<RankId>,
    /// Tensors in order of first appearance.
    pub tensors: Vec<Tensor>,
    /// Einsums in file order (initialisations first as written).
    pub einsums: Vec<Einsum>,
    /// Stopping conditions of iterative ranks (`until m1 >= M1`).
    pub stops: Vec<Stop>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    /// The value when nothing sets it. For a parameter that follows others, its value with every default.
    pub default: i64,
    /// Set when the default is an expression over parameters declared *before* this one (`"q_len": "seq"`):
    /// unless the parameter is set itself, it is evaluated after overrides, so it follows what it names
    /// (`--set seq=4096` moves `q_len` too). Only earlier parameters may appear, so there is no cycle.
    pub follows: Option<SizeExpr>,
    pub span: Span,
    /// Inclusive bounds from the cascade's `limits` (a pruning ratio in percent: `(0, 99)`), if any.
    pub range: Option<(i64, i64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rank {
    /// Upper-case name (`M`, `M1`, `E`).
    pub name: String,
    /// Size as an expression of parameters and other ranks.
    pub size: SizeExpr,
    /// Set when this rank is a part of a partitioned rank: (parent, position outer→inner).
    pub part_of: Option<(RankId, usize)>,
    /// Set when this rank is partitioned: its parts, outer→inner (`M` → `[M1, M0]`).
    pub parts: Vec<RankId>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Read but never written: comes from outside the cascade (Q, K, V).
    Input,
    /// Written and read.
    Intermediate,
    /// Written and never read: a result of the cascade (AV).
    Output,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Ranks in declaration order of the first reference.
    pub ranks: Vec<RankId>,
    pub kind: TensorKind,
    /// Written by an iterative Einsum (`RM[m1+1,p] = ...`): the rank it iterates over.
    pub iterative_rank: Option<RankId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// One-time computations (the paper's "Initialization").
    Init,
    /// The cascade proper (the paper's "Extended Einsums").
    Main,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Einsum {
    /// The output tensor's name (Einsums are named by what they write, as in the paper).
    pub name: String,
    pub section: Section,
    pub output: TensorRef,
    pub expr: Expr,
    /// Explicit reductions (`max(m) X`); ranks read on the right but absent on the left are
    /// summed unless listed here.
    pub reductions: Vec<Reduction>,
    /// The whole statement, for messages.
    pub span: Span,
    /// Trailing `-- comment`, kept for printing.
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    pub rank: RankId,
    pub op: ReduceOp,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Keep the `k` largest elements of the rank's fiber: a selection whose output has a
    /// data-dependent occupancy of `k` along the rank (SpAtten's top-k).
    TopK(SizeExpr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub tensor: TensorId,
    pub indices: Vec<Index>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Index {
    /// A plain index variable: `m`.
    Var { rank: RankId, span: Span },
    /// A shifted iterative index: `m1+1` (offset 1) on the left of an iterative Einsum.
    Shift {
        rank: RankId,
        offset: i64,
        span: Span,
    },
    /// A fixed coordinate: `m1=0` (initial) or `M1` (the final value of an iterative rank).
    Fixed {
        rank: RankId,
        at: SizeExpr,
        span: Span,
    },
    /// A flattened partitioned coordinate: `m1*M0+m0` indexes the parent rank `M` through its parts.
    Flatten {
        rank: RankId,
        parts: Vec<RankId>,
        span: Span,
    },
    /// A filtered index: `k:k<=i` (a prefix of rank K bounded by another index).
    Filter {
        rank: RankId,
        bound: RankId,
        cmp: Cmp,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Ref(TensorRef),
    /// A numeric literal (`0`, `1.5`) or `inf` / `-inf`.
    Const(f64),
    Unary {
        op: UnaryOp,
        arg: Box<Expr>,
        span: Span,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Sigmoid,
    Sqrt,
    Recip,
    Relu,
    Tanh,
    /// |x| (SpAtten's head importance sums the magnitudes of a head's outputs).
    Abs,
}

/// `until m1 >= M1`: an iterative rank stops once its index reaches the bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Stop {
    pub rank: RankId,
    pub cmp: Cmp,
    pub bound: SizeExpr,
    pub span: Span,
}

impl Cascade {
    pub fn rank_id(&self, name: &str) -> Option<RankId> {
        self.ranks.iter().position(|r| r.name == name)
    }
    /// Ranks Einsum `e` iterates: the broadcast ranks first, then those its output and operands index, each once.
    /// Mapping and the binding check both expand these into a binding's partition parts.
    pub fn iterated_ranks(&self, e: EinsumId) -> Vec<RankId> {
        let es = &self.einsums[e];
        let indexed = es
            .output
            .indices
            .iter()
            .chain(es.expr.refs().into_iter().flat_map(|r| r.indices.iter()))
            .flat_map(|i| i.iterated().iter().copied());
        let mut v: Vec<RankId> = Vec::new();
        for r in self.broadcast.iter().copied().chain(indexed) {
            if !v.contains(&r) {
                v.push(r);
            }
        }
        v
    }
    pub fn tensor_id(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }
    pub fn einsum_id(&self, name: &str) -> Option<EinsumId> {
        self.einsums.iter().position(|e| e.name == name)
    }
    /// The Einsum(s) writing a tensor: the initialisation (if any) and the main writer.
    pub fn writers(&self, t: TensorId) -> impl Iterator<Item = EinsumId> + '_ {
        self.einsums
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.output.tensor == t)
            .map(|(i, _)| i)
    }
}

impl Index {
    pub fn span(&self) -> Span {
        match self {
            Index::Var { span, .. }
            | Index::Shift { span, .. }
            | Index::Fixed { span, .. }
            | Index::Flatten { span, .. }
            | Index::Filter { span, .. } => *span,
        }
    }
    /// The rank this index position ranges over.
    pub fn rank(&self) -> RankId {
        match self {
            Index::Var { rank, .. }
            | Index::Shift { rank, .. }
            | Index::Fixed { rank, .. }
            | Index::Flatten { rank, .. }
            | Index::Filter { rank, .. } => *rank,
        }
    }
    /// The ranks this index *iterates* (a fixed coordinate iterates none; a flattened one iterates its parts).
    pub fn iterated(&self) -> &[RankId] {
        // A slice, not a new vector: mapping and pass analysis ask this of every index of every Einsum, per run.
        match self {
            Index::Var { rank, .. } | Index::Shift { rank, .. } | Index::Filter { rank, .. } => {
                std::slice::from_ref(rank)
            }
            Index::Fixed { .. } => &[],
            Index::Flatten { parts, .. } => parts,
        }
    }
}

impl Expr {
    /// Every tensor reference, left to right.
    pub fn refs(&self) -> Vec<&TensorRef> {
        let mut out = Vec::new();
        self.visit_refs(&mut |r| out.push(r));
        out
    }
    fn visit_refs<'a>(&'a self, f: &mut impl FnMut(&'a TensorRef)) {
        match self {
            Expr::Ref(r) => f(r),
            Expr::Const(_) => {}
            Expr::Unary { arg, .. } => arg.visit_refs(f),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.visit_refs(f);
                rhs.visit_refs(f);
            }
        }
    }
}

/// Why a partition's parts do not cover their rank (see [`partition_cover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoverError {
    /// The product of the parts does not fit 64 bits.
    Overflow,
    /// The parts hold fewer points than the rank has.
    Short { product: i64 },
    /// The padding is a whole innermost tile or more: some tile would hold no point of the rank at all.
    WholeTile { product: i64, tile: i64 },
}

/// The partition invariant, for the cascade's partitions (`cascade::env`) and a binding's (`mapping`): parts
/// `[X_k, ..., X_1, X_0]` (outer to inner) of a rank of size `n` must satisfy
/// `n <= X_k × ... × X_0 < n + X_0`. Tiles are taken in flattened order, so every innermost tile is full except
/// the last, which holds at least one point: a ragged length (`seq = 1000` in tiles of `M0 = 256`) is
/// `M1 = ceil(M, M0) = 4` tiles, the last holding 232 points and 24 of padding. The outer part rounded up over
/// the inner ones (`"M1": "ceil(M, M0)"`) satisfies it, and so does a middle part that divides the rounded count
/// (`P1` a divisor of `ceil(P, P0)`, `P2 = ceil(P, P1 * P0)`); when the sizes divide, there is no padding.
///
/// What the padding costs is the mapping's rule, not the cascade's: every tile takes a whole tile's time, and
/// counts are of the real points. Returns the padding, `product - n`.
pub fn partition_cover(n: i64, parts: &[i64]) -> Result<i64, CoverError> {
    let product = parts
        .iter()
        .try_fold(1i64, |a, &p| a.checked_mul(p))
        .ok_or(CoverError::Overflow)?;
    let tile = parts.last().copied().unwrap_or(1);
    if product < n {
        Err(CoverError::Short { product })
    } else if product - n >= tile {
        Err(CoverError::WholeTile { product, tile })
    } else {
        Ok(product - n)
    }
}

impl CoverError {
    /// What went wrong, to follow the parts and their sizes (`M1 × M0 = 4 × 200`) in a message about rank
    /// `parent` of size `n`: ` = 800, fewer than M = 1024`.
    pub fn describe(&self, parent: &str, n: i64) -> String {
        match self {
            CoverError::Overflow => ": their product overflows".into(),
            CoverError::Short { product } => format!(" = {product}, fewer than {parent} = {n}"),
            CoverError::WholeTile { product, tile } => format!(
                " = {product}, {} more than {parent} = {n}: a whole innermost tile ({tile}) or more of padding",
                product - n
            ),
        }
    }
}
