//! The cascade as a graph (petgraph): Einsums are nodes, an edge `P → C` means C reads a tensor P writes.
//!
//! Loop-carried reads (the Einsum iterating `m1` reads `RNV[f,m1,p]`, written by the previous iteration as
//! `RNV[f,m1+1,p]`) are kept as [`EdgeKind::Carried`] edges. Forward edges alone form a DAG (checked when the
//! cascade is loaded), so every analysis walks Einsums in [`Dataflow::order`].

use crate::cascade::{Cascade, EinsumId, Index, Section, TensorId};
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// The consumer reads the value produced in the same iteration (or a non-iterative value).
    Forward,
    /// The consumer reads the value of the previous iteration of an iterative rank.
    Carried,
    /// The consumer reads the final value of an iterative rank (`RNV[f,M1,p]`): available only after the
    /// whole iteration has run.
    Final,
}

#[derive(Clone, Debug)]
pub struct Read {
    pub tensor: TensorId,
    pub kind: EdgeKind,
}

pub struct Dataflow {
    pub graph: DiGraph<EinsumId, (TensorId, EdgeKind)>,
    nodes: Vec<NodeIndex>,
    /// Einsums in dependency order (forward edges only).
    pub order: Vec<EinsumId>,
}

impl Dataflow {
    pub fn new(c: &Cascade) -> Dataflow {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..c.einsums.len()).map(|i| graph.add_node(i)).collect();
        for (ci, e) in c.einsums.iter().enumerate() {
            for r in e.expr.refs() {
                let kind = read_kind(c, r);
                for pi in c.writers(r.tensor) {
                    let p = &c.einsums[pi];
                    // An init writer feeds only the carried read of the first iteration; a carried read is fed
                    // by the iterative writer; a forward read of an iterative tensor by the iterative writer.
                    let feeds = match (p.section, kind) {
                        (Section::Init, EdgeKind::Carried) => true,
                        (Section::Init, _) => c.writers(r.tensor).count() == 1,
                        (Section::Main, _) => true,
                    };
                    if feeds {
                        graph.add_edge(nodes[pi], nodes[ci], (r.tensor, kind));
                    }
                }
            }
        }
        let forward = graph.filter_map(
            |_, n| Some(*n),
            |_, e| (e.1 != EdgeKind::Carried).then_some(*e),
        );
        // The loader guarantees acyclicity of forward edges; fall back to file order if that ever breaks.
        let order = toposort(&forward, None)
            .map(|v| v.into_iter().map(|n| forward[n]).collect())
            .unwrap_or_else(|_| (0..c.einsums.len()).collect());
        Dataflow {
            graph,
            nodes,
            order,
        }
    }

    /// The reads of Einsum `e`, with the producers of each (an input tensor has none).
    pub fn producers(
        &self,
        e: EinsumId,
    ) -> impl Iterator<Item = (EinsumId, TensorId, EdgeKind)> + '_ {
        self.graph
            .edges_directed(self.nodes[e], petgraph::Direction::Incoming)
            .map(move |er| (self.graph[er.source()], er.weight().0, er.weight().1))
    }

    pub fn consumers(
        &self,
        e: EinsumId,
    ) -> impl Iterator<Item = (EinsumId, TensorId, EdgeKind)> + '_ {
        self.graph
            .edges_directed(self.nodes[e], petgraph::Direction::Outgoing)
            .map(move |er| (self.graph[er.target()], er.weight().0, er.weight().1))
    }
}

/// Classify a read by the indices it uses on the tensor's iterative rank.
pub fn read_kind(c: &Cascade, r: &crate::cascade::TensorRef) -> EdgeKind {
    let Some(it) = c.tensors[r.tensor].iterative_rank else {
        return EdgeKind::Forward;
    };
    for idx in &r.indices {
        match idx {
            Index::Var { rank, .. } if *rank == it => return EdgeKind::Carried,
            Index::Fixed { rank, .. } if *rank == it => return EdgeKind::Final,
            _ => {}
        }
    }
    EdgeKind::Forward
}
