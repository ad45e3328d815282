//! A whole decoder model in the generation phase (SpAtten, HPCA'21; reference flat_spatten.md §2.1-§2.2): `steps`
//! new tokens, one at a time, each through `layers` decoder layers, against a KV cache that grows by one token per
//! step (`kv_len = context + step`). Every step fetches the cached K and V it attends to from DRAM again: in
//! generation nothing is reused across queries ([P] §2.2), which is what makes it memory-bound.
//!
//! Each layer of each step is one run of a layer file (for SpAtten `workloads/layers/spatten-decode.ron`) with the
//! model's parameters, `kv_len` and that layer's pruning from the [`Schedule`]s. Layers and steps run one after
//! another, so cycles, seconds, traffic and energy add up. Identical layers, and identical ops (the GEMMs of every layer and step), are simulated once.

use crate::diag::SourceFile;
use crate::layer::{run_parsed_layer, HeadGroup, LayerFiles, LayerReport, OpCache};
use crate::run::{Lookup, RunError};
use crate::sim::SimOptions;
use crate::trace::{Trace, GROUP_PARAMS, GROUP_VARS};
use std::collections::BTreeMap;

/// A pruning schedule over layers ([P] §2.1): the front `front_pct` percent of the layers are not pruned; the
/// others get ratios (percent pruned) interpolated linearly from `start` at the first pruned layer to `end` at the
/// last, so their mean is (start + end) / 2.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub front_pct: i64,
    pub start: i64,
    pub end: i64,
}

impl Schedule {
    /// A schedule must keep ratios in [0, 100) and must not un-prune: the ratio may only grow with depth, since a
    /// token or head pruned in one layer is never used again ([P] §2.1).
    pub fn check(&self, what: &str) -> Result<(), String> {
        if !(0..=100).contains(&self.front_pct) {
            return Err(format!(
                "{what} schedule: front {}% is outside [0, 100]",
                self.front_pct
            ));
        }
        for r in [self.start, self.end] {
            if !(0..100).contains(&r) {
                return Err(format!(
                    "{what} schedule: a pruning ratio of {r}% is outside [0, 100)"
                ));
            }
        }
        if self.end < self.start {
            return Err(format!(
                "{what} schedule un-prunes: the ratio falls from {}% to {}%, but a pruned {what} is never fetched again",
                self.start, self.end
            ));
        }
        Ok(())
    }

    /// Percent pruned at layer `l` of `layers`.
    pub fn at(&self, l: i64, layers: i64) -> i64 {
        let front = layers * self.front_pct / 100;
        if l < front {
            return 0;
        }
        let span = (layers - 1 - front).max(1);
        self.start + (self.end - self.start) * (l - front) / span
    }
}

/// A generation run: the layer file's name is resolved by the caller; the model gives `layers` and the shape.
#[derive(Clone, Debug)]
pub struct Generation {
    pub layers: i64,
    pub steps: i64,
    pub context: i64,
    /// Cascade token pruning (the model's `token_keep` is set to 100 minus the ratio) and head pruning
    /// (`head_keep`); `None` leaves the model's (or the `sets`') values.
    pub tokens: Option<Schedule>,
    pub heads: Option<Schedule>,
    /// What each head fetched at each step and layer, in place of the schedules (and of the model's kept
    /// percentages and widths); its steps must be `steps`.
    pub trace: Option<Trace>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenerationReport {
    pub cycles: u64,
    pub seconds: f64,
    pub energy_pj: f64,
    /// Storage level → bytes read plus written, over all steps and layers.
    pub traffic_bytes: BTreeMap<String, u128>,
    /// 2 × the iteration points of every Einsum of every op, over all steps and layers.
    pub ops: f64,
    /// Distinct op runs simulated (the rest were repeats: the GEMMs are the same in every layer and step).
    pub simulated: usize,
    /// The same totals by the layer file's op (e.g. `attention` against the GEMMs), over all steps and layers:
    /// what a technique that acts on one op changes there.
    pub by_op: BTreeMap<String, OpTotals>,
}

/// One op's cycles and traffic over a generation.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OpTotals {
    pub cycles: u64,
    /// Storage level → bytes read plus written.
    pub traffic_bytes: BTreeMap<String, u128>,
}

impl GenerationReport {
    /// One layer's totals (`simulated` left 0: the caller counts distinct op runs).
    fn of_layer(r: &LayerReport) -> GenerationReport {
        let mut t = GenerationReport {
            cycles: r.cycles,
            seconds: r.seconds,
            energy_pj: r.energy_pj,
            ..GenerationReport::default()
        };
        for (name, p) in &r.parts {
            let op = t.by_op.entry(name.clone()).or_default();
            op.cycles += p.cycles;
            for (level, b) in &p.traffic_bytes {
                *t.traffic_bytes.entry(level.clone()).or_insert(0) += b;
                *op.traffic_bytes.entry(level.clone()).or_insert(0) += b;
            }
            t.ops += 2.0 * p.einsums.iter().map(|e| e.points).sum::<f64>();
        }
        t
    }

    /// Add a layer's totals: layers and steps run one after another. A total past 2^64 cycles is an error (an
    /// op's cycles are part of its layer's, so checking the total covers `by_op`).
    fn add(&mut self, t: &GenerationReport) -> Result<(), RunError> {
        self.cycles = self
            .cycles
            .checked_add(t.cycles)
            .ok_or_else(|| crate::layer::too_many_cycles("the generation"))?;
        self.seconds += t.seconds;
        self.energy_pj += t.energy_pj;
        add_bytes(&mut self.traffic_bytes, &t.traffic_bytes);
        self.ops += t.ops;
        for (name, o) in &t.by_op {
            // Every step adds the same names: look them up before paying for an owned key.
            let op = match self.by_op.get_mut(name) {
                Some(op) => op,
                None => self.by_op.entry(name.clone()).or_default(),
            };
            op.cycles += o.cycles;
            add_bytes(&mut op.traffic_bytes, &o.traffic_bytes);
        }
        Ok(())
    }
}

/// `to[level] += b` for every level of `from`, owning a level's name only the first time.
fn add_bytes(to: &mut BTreeMap<String, u128>, from: &BTreeMap<String, u128>) {
    for (level, b) in from {
        match to.get_mut(level) {
            Some(x) => *x += b,
            None => {
                to.insert(level.clone(), *b);
            }
        }
    }
}

/// A trace must not come with schedules, must cover `gen.steps` steps, must fit the model's layers and heads and
/// the cache at each step, and everything it sets must be a var of the layer or a parameter of the model.
fn check_trace(t: &Trace, gen: &Generation, files: &LayerFiles) -> Result<(), RunError> {
    let model = &files.model;
    let unused: Vec<&str> = GROUP_VARS
        .iter()
        .filter(|v| !files.layer.vars.contains_key(**v))
        .chain(GROUP_PARAMS.iter().filter(|p| model.param(p).is_none()))
        .copied()
        .collect();
    if !unused.is_empty() {
        return Err(RunError::Mapping(format!(
            "{}: a trace sets {} per head group, which layer `{}` (vars) or model `{}` (parameters) does not take",
            t.file.name,
            unused.join(", "),
            files.layer.name,
            model.name
        )));
    }
    if gen.tokens.is_some() || gen.heads.is_some() {
        return Err(RunError::Mapping(
            "a generation takes a trace or pruning schedules, not both: the trace says what each head fetched".into(),
        ));
    }
    if t.steps() != gen.steps {
        return Err(RunError::Mapping(format!(
            "{}: the trace has {} steps, the generation {}",
            t.file.name,
            t.steps(),
            gen.steps
        )));
    }
    let heads = model
        .param("heads")
        .ok_or_else(|| RunError::Mapping(format!("model `{}` has no `heads`", model.name)))?;
    t.check(gen.layers, heads, gen.context)
        .map_err(RunError::Invalid)
}

/// Run `gen` on one arch: every step, every layer.
pub fn run_generation(
    layer_file: &SourceFile,
    arch_file: &SourceFile,
    model_file: &SourceFile,
    set_args: &[String],
    gen: &Generation,
    lookup: Lookup,
    opts: SimOptions,
) -> Result<GenerationReport, RunError> {
    for (what, s) in [("token", gen.tokens), ("head", gen.heads)] {
        if let Some(s) = s {
            s.check(what).map_err(RunError::Mapping)?;
        }
    }
    let files = LayerFiles::load(layer_file, arch_file, model_file, lookup)?;
    if let Some(t) = &gen.trace {
        check_trace(t, gen, &files)?;
    }
    // A layer's totals by its arguments: layers with the same pruning at the same step are run once.
    let mut cache: BTreeMap<(Vec<String>, Vec<HeadGroup>), GenerationReport> = BTreeMap::new();
    let mut ops = OpCache::new();
    let mut rep = GenerationReport::default();
    for step in 0..gen.steps {
        for l in 0..gen.layers {
            let mut sets = set_args.to_vec();
            sets.push(format!("kv_len={}", gen.context + step));
            if let Some(s) = gen.tokens {
                sets.push(format!("token_keep={}", 100 - s.at(l, gen.layers)));
            }
            if let Some(s) = gen.heads {
                sets.push(format!("head_keep={}", 100 - s.at(l, gen.layers)));
            }
            let groups = gen
                .trace
                .as_ref()
                .map(|t| t.groups(step, l))
                .unwrap_or_default();
            let key = (sets, groups);
            if !cache.contains_key(&key) {
                let r = run_parsed_layer(&files, &key.0, &key.1, lookup, opts, &mut ops)?;
                cache.insert(key.clone(), GenerationReport::of_layer(&r));
            }
            rep.add(&cache[&key])?;
        }
    }
    rep.simulated = ops.len();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_keeps_the_front_and_interpolates() {
        // 24 layers, front 15 %: layers 0-2 unpruned, then 20 % at layer 3 rising to 60 % at layer 23.
        let s = Schedule {
            front_pct: 15,
            start: 20,
            end: 60,
        };
        assert_eq!(s.at(0, 24), 0);
        assert_eq!(s.at(2, 24), 0);
        assert_eq!(s.at(3, 24), 20);
        assert_eq!(s.at(23, 24), 60);
        assert_eq!(s.at(13, 24), 40);
        assert!(s.check("token").is_ok());
    }

    #[test]
    fn a_schedule_that_unprunes_or_leaves_range_is_an_error() {
        let down = Schedule {
            front_pct: 15,
            start: 60,
            end: 20,
        };
        assert!(down.check("token").unwrap_err().contains("un-prunes"));
        let all = Schedule {
            front_pct: 15,
            start: 20,
            end: 100,
        };
        assert!(all.check("token").unwrap_err().contains("outside [0, 100)"));
    }
}
