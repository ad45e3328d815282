//! Pass analysis (FuseMax §III): how many times a cascade must traverse each fiber of each rank.
//!
//! A pass over a fiber of rank R is one traversal of all its elements. An Einsum that reduces a whole R fiber
//! (its output keeps none of the outermost R coordinate it iterates) produces a value that exists only after the
//! traversal; any later Einsum that iterates R and depends on that value must start a new traversal. This holds
//! for every mapping, so N such dependencies chained give an (N+1)-pass cascade and force the re-read fiber to be
//! buffered or re-fetched: the algorithmic minimum live footprint.
//!
//! Partitioned ranks are analysed at every level: for `M → M1 × M0` the report gives passes over M (the whole
//! fiber), over M1 (tiles) and over M0 (within one tile). A reduction over the inner part only (`max(m0)`) keeps
//! the outer coordinate and is complete tile by tile, so it does not add a pass over M or M1, only over M0.

use crate::cascade::{Cascade, EinsumId, RankId, Section};
use crate::dataflow::{Dataflow, EdgeKind};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct PassReport {
    pub cascade: String,
    pub source: String,
    /// Parameter values the sizes were evaluated with.
    pub params: BTreeMap<String, i64>,
    /// Rank → passes over each of its fibers.
    pub passes: BTreeMap<String, u32>,
    /// Per rank, in rank-table order: the passes, their causes and the footprint that follows.
    pub ranks: Vec<RankPasses>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RankPasses {
    pub rank: String,
    pub size: i64,
    pub passes: u32,
    /// Set for a part of a partitioned rank: the parent (passes over M0 are *within-tile* passes of M).
    pub part_of: Option<String>,
    pub causes: Vec<PassCause>,
    pub footprint: Footprint,
}

/// Why a pass starts: `reduction` must finish a whole fiber before `consumer` can re-read `reread`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PassCause {
    /// The pass this dependency starts (2 for the second pass).
    pub pass: u32,
    pub reduction: String,
    pub consumer: String,
    pub reread: Vec<String>,
}

/// The algorithmic minimum live footprint: `elements` values of the re-read tensors, per fiber of `per`.
#[derive(Clone, Debug, Serialize)]
pub struct Footprint {
    /// Symbolic size (`M`, `M0`, or `1`).
    pub expr: String,
    pub elements: i64,
    /// The other ranks of the re-read tensor: one such footprint is live per fiber of these.
    pub per: Vec<String>,
}

/// Analyse every rank iterated by a main Einsum. `sizes[r]` is the evaluated size of rank r.
pub fn analyse(c: &Cascade, sizes: &[i64], params: BTreeMap<String, i64>) -> PassReport {
    Structure::of(c).report(c, sizes, params)
}

/// What the analysis finds from the cascade alone: everything but the sizes. The passes, their causes and the
/// re-read ranks do not depend on sizes, so a caller running one cascade at many sizes (a generation) analyses
/// it once ([`crate::run::Setup`] keeps it) and [`Structure::report`]s it per size.
#[derive(Clone, Debug)]
pub struct Structure {
    ranks: Vec<RankStructure>,
}

#[derive(Clone, Debug)]
struct RankStructure {
    rank: RankId,
    passes: u32,
    causes: Vec<PassCause>,
    /// Multi-pass: the other ranks of the re-read tensors (one footprint is live per fiber of these).
    reread_per: Vec<String>,
    /// One-pass: the inner parts that themselves need several passes, with their `reread_per`; the footprint
    /// is the largest's.
    inner: Vec<(RankId, Vec<String>)>,
}

impl Structure {
    pub fn of(c: &Cascade) -> Structure {
        Structure::of_flow(c, &Dataflow::new(c))
    }

    /// [`Structure::of`] with the cascade's dataflow graph already built.
    pub fn of_flow(c: &Cascade, flow: &Dataflow) -> Structure {
        // Every Einsum's iterated ranks, once and sorted: each rank's analysis filters them. (The broadcast ranks
        // among them are never in a cover: they are not analysed and have no parts.)
        let its: Vec<Vec<RankId>> = (0..c.einsums.len())
            .map(|e| {
                let mut v = c.iterated_ranks(e);
                v.sort_unstable();
                v
            })
            .collect();
        let ranks = (0..c.ranks.len())
            .filter(|r| !c.broadcast.contains(r))
            .filter_map(|r| analyse_rank(c, flow, &its, r))
            .collect();
        Structure { ranks }
    }

    /// The report at these sizes.
    pub fn report(&self, c: &Cascade, sizes: &[i64], params: BTreeMap<String, i64>) -> PassReport {
        let ranks: Vec<RankPasses> = self
            .ranks
            .iter()
            .map(|s| {
                let rank = &c.ranks[s.rank];
                let footprint = if s.passes > 1 {
                    Footprint {
                        expr: rank.name.clone(),
                        elements: sizes[s.rank],
                        per: s.reread_per.clone(),
                    }
                } else {
                    match s.inner.iter().max_by_key(|(p, _)| sizes[*p]) {
                        Some((p, per)) => Footprint {
                            expr: c.ranks[*p].name.clone(),
                            elements: sizes[*p],
                            per: per.clone(),
                        },
                        None => Footprint {
                            expr: "1".into(),
                            elements: 1,
                            per: vec![],
                        },
                    }
                };
                RankPasses {
                    rank: rank.name.clone(),
                    size: sizes[s.rank],
                    passes: s.passes,
                    part_of: rank.part_of.map(|(p, _)| c.ranks[p].name.clone()),
                    causes: s.causes.clone(),
                    footprint,
                }
            })
            .collect();
        PassReport {
            cascade: c.name.clone(),
            source: c.source.clone(),
            params,
            passes: ranks.iter().map(|r| (r.rank.clone(), r.passes)).collect(),
            ranks,
        }
    }
}

/// The ranks a rank covers: itself and (recursively) its parts, with a depth order (outer first).
fn covered(c: &Cascade, r: RankId) -> Vec<RankId> {
    let mut out = vec![r];
    for &p in &c.ranks[r].parts {
        out.extend(covered(c, p));
    }
    out
}

/// Ranks of `cover` that Einsum `e` iterates, anywhere (output or inputs), in `cover`'s order; `its[e]` are all
/// the ranks it iterates.
fn iterated(its: &[Vec<RankId>], e: EinsumId, cover: &[RankId]) -> Vec<RankId> {
    cover
        .iter()
        .copied()
        .filter(|r| its[e].binary_search(r).is_ok())
        .collect()
}

fn output_keeps(c: &Cascade, e: EinsumId, r: RankId) -> bool {
    c.einsums[e]
        .output
        .indices
        .iter()
        .any(|i| i.iterated().contains(&r))
}

/// Ready-pass of each tensor value with respect to one rank, and what caused its last increment.
#[derive(Clone, Copy, Default)]
struct Ready {
    pass: u32,
    cause: Option<EinsumId>,
}

fn analyse_rank(
    c: &Cascade,
    flow: &Dataflow,
    its: &[Vec<RankId>],
    r: RankId,
) -> Option<RankStructure> {
    let cover = covered(c, r);
    let main = |e: EinsumId| c.einsums[e].section == Section::Main;
    if !(0..c.einsums.len())
        .any(|e| main(e) && cover.iter().any(|r| its[e].binary_search(r).is_ok()))
    {
        return None;
    }
    let mut ready = vec![
        Ready {
            pass: 1,
            cause: None
        };
        c.einsums.len()
    ];
    let mut pass_of = vec![0u32; c.einsums.len()];
    let mut causes: Vec<PassCause> = Vec::new();
    let mut reread_ranks: Vec<RankId> = Vec::new();
    // The first pass that traversed each tensor's fibers of this rank.
    let mut touched: Vec<Option<u32>> = vec![None; c.tensors.len()];
    for &e in &flow.order {
        if !main(e) {
            continue; // initial values and views are available before the first pass
        }
        let it = iterated(its, e, &cover);
        // When each input value becomes available, in passes over this rank's fibers.
        let mut inputs: Vec<(Ready, crate::cascade::TensorId)> = Vec::new();
        for (p, t, kind) in flow.producers(e) {
            let mut rd = if main(p) {
                ready[p]
            } else {
                Ready {
                    pass: 1,
                    cause: None,
                }
            };
            match kind {
                EdgeKind::Carried => continue, // the previous iteration's value: no new traversal
                EdgeKind::Final
                    if cover.contains(&c.tensors[t].iterative_rank.unwrap_or(usize::MAX)) =>
                {
                    // The final value of an iteration over this rank exists once the traversal is over.
                    rd = Ready {
                        pass: pass_of[p].max(rd.pass) + 1,
                        cause: Some(p),
                    };
                }
                _ => {}
            }
            inputs.push((rd, t));
        }
        // Cascade inputs (no producer) are available from the first pass.
        for r in c.einsums[e].expr.refs() {
            if c.writers(r.tensor).next().is_none() {
                inputs.push((
                    Ready {
                        pass: 1,
                        cause: None,
                    },
                    r.tensor,
                ));
            }
        }
        let start = inputs
            .iter()
            .map(|(rd, _)| rd.pass)
            .max()
            .unwrap_or(1)
            .max(1);
        if it.is_empty() {
            // Does not traverse this rank: its value is ready when its inputs are.
            ready[e] = inputs
                .iter()
                .map(|(rd, _)| *rd)
                .max_by_key(|rd| rd.pass)
                .unwrap_or_default();
            ready[e].pass = ready[e].pass.max(1);
            continue;
        }
        pass_of[e] = start;
        if start > 1 {
            // The blocking reduction, and the inputs it (transitively) read: those are re-read in this pass.
            let blocker = inputs
                .iter()
                .filter(|(rd, _)| rd.pass == start)
                .find_map(|(rd, _)| rd.cause);
            if let Some(b) = blocker {
                // Re-read: inputs whose fibers an earlier pass already traversed.
                let mut reread: Vec<crate::cascade::TensorId> = inputs
                    .iter()
                    .map(|(_, t)| *t)
                    .filter(|t| touched[*t].is_some_and(|p| p < start))
                    .collect();
                reread.dedup();
                for t in &reread {
                    reread_ranks.extend(c.tensors[*t].ranks.iter().filter(|x| !cover.contains(x)));
                }
                let cause = PassCause {
                    pass: start,
                    reduction: c.einsums[b].name.clone(),
                    consumer: c.einsums[e].name.clone(),
                    reread: reread.iter().map(|t| c.tensors[*t].name.clone()).collect(),
                };
                if !cause.reread.is_empty() && !causes.contains(&cause) {
                    causes.push(cause);
                }
            }
        }
        let has_rank = |t: usize| c.tensors[t].ranks.iter().any(|x| cover.contains(x));
        for (_, t) in &inputs {
            if has_rank(*t) {
                touched[*t] = Some(touched[*t].map_or(start, |p| p.min(start)));
            }
        }
        let out = c.einsums[e].output.tensor;
        if has_rank(out) {
            touched[out] = Some(touched[out].map_or(start, |p| p.min(start)));
        }
        // A full-fiber reduction: the outermost coordinate of this rank it iterates does not survive.
        let full = !output_keeps(c, e, it[0]);
        let blocker = inputs
            .iter()
            .filter(|(rd, _)| rd.pass == start)
            .find_map(|(rd, _)| rd.cause);
        ready[e] = if full {
            Ready {
                pass: start + 1,
                cause: Some(e),
            }
        } else {
            // Carry what started this pass, so later Einsums in it report the same cause.
            Ready {
                pass: start,
                cause: blocker,
            }
        };
    }
    let passes = pass_of.iter().copied().max().unwrap_or(1).max(1);
    // Footprint: a multi-pass rank must keep a whole fiber live; a one-pass rank only its inner part's, the
    // largest that itself needs several passes (M0 in the 1-pass cascade), chosen by size in `report`.
    let (reread_per, inner) = if passes > 1 {
        reread_ranks.sort();
        reread_ranks.dedup();
        reread_ranks.retain(|x| !c.broadcast.contains(x));
        let per = reread_ranks
            .iter()
            .map(|x| c.ranks[*x].name.clone())
            .collect();
        (per, vec![])
    } else {
        let inner = cover[1..]
            .iter()
            .filter_map(|&p| {
                analyse_rank(c, flow, its, p)
                    .filter(|rp| rp.passes > 1)
                    .map(|rp| (p, rp.reread_per))
            })
            .collect();
        (vec![], inner)
    };
    Some(RankStructure {
        rank: r,
        passes,
        causes,
        reread_per,
        inner,
    })
}
