//! Binding and mapping: a cascade bound to an arch becomes a [`Program`] of tile-task templates.
//!
//! For each stage of the binding, every Einsum becomes a template instantiated once per iteration of the tile
//! loops it iterates; DRAM-resident tensors add load and store templates on the memory channel. A template knows
//! its unit, its work in ticks (from the unit's spatial shape and op costs), which other templates it depends on,
//! and what each instance moves and spends. Counts, traffic and energy follow from the program alone; only time
//! needs the simulator ([`crate::sim`]).

use crate::arch::{
    Arch, BindingFile, Pipeline, SizeRule, StageFile, Storage, StorageKind, Unit, TICKS_PER_CYCLE,
};
use crate::cascade::{partition_cover, print_ref, Cascade, EinsumId, Section, TensorId, TensorRef};
use crate::dataflow::{read_kind, Dataflow, EdgeKind};
use crate::expr::SizeExpr;
use crate::ops::{einsum_ops, is_free};
use std::collections::BTreeMap;

/// A mapping problem (reported as invalid input).
#[derive(Clone, Debug, PartialEq)]
pub struct MapError(pub String);

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for MapError {}

fn bad<T>(msg: impl Into<String>) -> Result<T, MapError> {
    Err(MapError(msg.into()))
}

/// A server the simulator schedules: a compute unit or a memory channel.
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    /// Ticks from a task's last issue to its result reaching another server.
    pub latency: u64,
    pub is_memory: bool,
}

#[derive(Clone, Debug)]
pub struct Loop {
    /// Index name (`m1`).
    pub index: String,
    pub trip: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TemplateKind {
    Compute(EinsumId),
    Load(TensorId),
    Store(TensorId),
}

#[derive(Clone, Debug)]
pub struct Dep {
    pub template: usize,
    /// Reads the previous iteration of this loop (a loop-carried read); `None` for same-iteration reads.
    pub carried: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Template {
    pub name: String,
    pub kind: TemplateKind,
    pub server: usize,
    /// `loops[j]`: instantiated per iteration of stage loop j.
    pub loops: Vec<bool>,
    /// For loops not iterated: issue with the loop's last iteration (`true`) or its first.
    pub at_last: Vec<bool>,
    /// Ticks the server is occupied per instance.
    pub work: u64,
    /// Of those, ticks spent computing (the rest waits on buffer bandwidth): utilization counts these.
    pub useful: u64,
    pub deps: Vec<Dep>,
    /// Buffer bytes a load instance holds until its last consumer finishes.
    pub alloc: u64,
    /// For transfers: the loop whose iterations the tile stays resident for (`keep`).
    pub keep: Option<usize>,
    /// Consumer templates of a load: the allocation is freed when the last instance of each (in the tile's
    /// scope) has finished.
    pub consumers: u64,
    /// Fraction of the server's PEs doing useful work while it computes, over all folds of a folded tile.
    pub pe_fraction: f64,
    /// Iteration points per instance.
    pub elements: u64,
    /// Energy-table actions per instance, keyed by (component, action): compute on the unit, accesses to its
    /// local store, the buffer and DRAM.
    pub actions: BTreeMap<(String, String), f64>,
    /// Bytes read from / written to each storage level per instance.
    pub reads: BTreeMap<String, u64>,
    pub writes: BTreeMap<String, u64>,
    /// Of the points an instance covers (its Einsum's, or its tensor's tile), the fraction that are real: below 1
    /// when the template spans a padded rank (a partial last tile). Time is charged for whole tiles; `actions`
    /// already count real points only, and the report scales utilization and points by it.
    pub real: Frac,
    /// The accesses in `reads` and `writes` that hold padding, each with its real fraction: the report counts
    /// traffic from them exactly.
    pub padded: Vec<PaddedBytes>,
}

/// An exact fraction `num / den` in [0, 1]: the real points of tiles that a padded rank's partial last tile
/// fills only in part, summed over all instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frac {
    pub num: u128,
    pub den: u128,
}

impl Frac {
    pub const ONE: Frac = Frac { num: 1, den: 1 };

    /// `num / den` in lowest terms.
    fn new(num: u128, den: u128) -> Frac {
        let g = gcd(num, den).max(1);
        Frac {
            num: num / g,
            den: (den / g).max(1),
        }
    }

    /// The product, in lowest terms; past 128 bits (several large padded ranks) the nearest fraction with a
    /// 2^64 denominator, which keeps the ratio though no longer exact.
    fn times(self, o: Frac) -> Frac {
        match (self.num.checked_mul(o.num), self.den.checked_mul(o.den)) {
            (Some(n), Some(d)) => Frac::new(n, d),
            _ => {
                let den = 1u128 << 64;
                Frac::new(
                    (self.as_f64() * o.as_f64() * den as f64).round() as u128,
                    den,
                )
            }
        }
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den.max(1) as f64
    }

    /// The real part of a count `x` of points or bytes over whole tiles: exact (the real total is a whole
    /// number, so the division is), or rounded through f64 if `x · num` would not fit in 128 bits.
    pub fn of(self, x: u128) -> u128 {
        if self == Frac::ONE {
            return x;
        }
        match x.checked_mul(self.num) {
            Some(v) => v / self.den.max(1),
            None => ((x as f64 * self.as_f64()).round() as u128).min(x),
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Bytes per instance at one storage level (read, or written) of a tile whose real fraction is `real`.
#[derive(Clone, Debug)]
pub struct PaddedBytes {
    pub level: String,
    pub write: bool,
    pub bytes: u64,
    pub real: Frac,
}

impl Template {
    /// A task of `work` ticks (all useful) on `server`, instantiated per iteration of the loops `loops` marks,
    /// issued with the first iteration of the others, with no dependencies, buffer claim, counts or charges yet:
    /// the fields a caller does not set.
    pub fn new(
        name: String,
        kind: TemplateKind,
        server: usize,
        loops: Vec<bool>,
        work: u64,
    ) -> Self {
        Template {
            name,
            kind,
            server,
            at_last: vec![false; loops.len()],
            loops,
            work,
            useful: work,
            deps: vec![],
            alloc: 0,
            keep: None,
            consumers: 0,
            pe_fraction: 1.0,
            elements: 0,
            actions: BTreeMap::new(),
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
            real: Frac::ONE,
            padded: vec![],
        }
    }

    pub fn instances(&self, loops: &[Loop]) -> u64 {
        loops
            .iter()
            .zip(&self.loops)
            .filter(|(_, on)| **on)
            .map(|(l, _)| l.trip)
            .product()
    }

    /// Instances in 128 bits, saturating: the report narrows it and names what is too large.
    pub fn instances_wide(&self, loops: &[Loop]) -> u128 {
        loops
            .iter()
            .zip(&self.loops)
            .filter(|(_, on)| **on)
            .fold(1u128, |a, (l, _)| a.saturating_mul(l.trip as u128))
    }
}

#[derive(Clone, Debug)]
pub struct StageProgram {
    pub name: String,
    pub loops: Vec<Loop>,
    pub templates: Vec<Template>,
    /// Tiles (innermost-loop iterations) in flight at once; 1 = sequential.
    pub window: u32,
    /// `Pipeline::InOrder`: a unit runs its tasks tile by tile (never one of a later tile while one of an
    /// earlier tile on it waits).
    pub in_order: bool,
    /// Buffer bytes available for DRAM tiles after the statically resident tensors.
    pub buffer_free: u64,
    /// Bytes statically resident in the buffer (on-chip state kept across tiles).
    pub resident: u64,
    pub buffer: String,
    /// The part of the stage's `spill` tensor that did not fit the buffer, when any.
    pub spill: Option<Spill>,
}

/// A tensor's part that overflows its stage's buffer and lives in memory (a stage's `spill`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Spill {
    pub tensor: String,
    /// Bytes that live in memory,
    pub bytes: u64,
    /// of the bytes the tensor holds (its tile with its copies).
    pub of: u64,
}

#[derive(Clone, Debug)]
pub struct Program {
    pub servers: Vec<Server>,
    pub stages: Vec<StageProgram>,
    /// Sizes of every rank and partition part, by upper-case name.
    pub sizes: BTreeMap<String, u64>,
    /// The sizes the binding's rules chose (`P1` and friends), for reports.
    pub chosen: BTreeMap<String, u64>,
    /// Partitioned ranks whose tiles hold padding (empty when every size divides).
    pub padding: Vec<Padded>,
}

/// A rank whose last innermost tile is partial. Every tile takes a whole tile's time; counts (traffic, energy,
/// utilization, points) are of the real points (`Template::real`, `Template::padded`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Padded {
    pub rank: String,
    /// Points the rank has.
    pub size: u64,
    /// Its parts, outer to inner, with their sizes; their product is the points charged.
    pub parts: Vec<(String, u64)>,
}

/// Build the program. `params` are the evaluated workload parameters; `rank_sizes[r]` the cascade's rank sizes.
pub fn map(
    c: &Cascade,
    rank_sizes: &[i64],
    params: &BTreeMap<String, i64>,
    arch: &Arch,
    b: &BindingFile,
) -> Result<Program, MapError> {
    map_with(c, &Dataflow::new(c), rank_sizes, params, arch, b)
}

/// [`map`] with the cascade's dataflow graph already built (a caller mapping one cascade many times builds it
/// once).
pub fn map_with(
    c: &Cascade,
    flow: &Dataflow,
    rank_sizes: &[i64],
    params: &BTreeMap<String, i64>,
    arch: &Arch,
    b: &BindingFile,
) -> Result<Program, MapError> {
    if b.cascade != c.name {
        return bad(format!(
            "arch `{}` binds cascade `{}`, not `{}`",
            arch.name, b.cascade, c.name
        ));
    }
    let sizes = size_table(c, rank_sizes, params, arch, b)?;
    let padding = padded_ranks(c, b, &sizes);
    let mut servers: Vec<Server> = arch
        .units
        .iter()
        .map(|u| Server {
            name: u.name.clone(),
            latency: u.latency_cycles * TICKS_PER_CYCLE,
            is_memory: false,
        })
        .collect();
    let mut stages = Vec::new();
    for st in &b.stages {
        let mut s = Stage::new(c, arch, b, st, &sizes)?;
        s.padded = padding.iter().map(|p| s.pad_rank(p)).collect();
        stages.push(s.program(flow, &mut servers)?);
    }
    let sizes: BTreeMap<String, u64> = sizes
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| (k, v as u64))
        .collect();
    let chosen = sizes
        .iter()
        .filter(|(k, _)| b.sizes.iter().any(|(n, _)| n == *k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    Ok(Program {
        servers,
        stages,
        sizes,
        chosen,
        padding,
    })
}

/// The size table every size expression is evaluated in: parameters, arch parameters, cascade ranks, then the
/// binding's partition parts in rule order (a rule may use the parts before it). Each part must be positive and
/// the parts of a rank must cover it with less than one innermost tile of padding
/// ([`crate::cascade::partition_cover`]), so the tile loops cover the rank and only the last tile is partial.
fn size_table(
    c: &Cascade,
    rank_sizes: &[i64],
    params: &BTreeMap<String, i64>,
    arch: &Arch,
    b: &BindingFile,
) -> Result<BTreeMap<String, i64>, MapError> {
    let mut sizes: BTreeMap<String, i64> = params.clone();
    for (k, v) in &arch.params {
        sizes.entry(k.clone()).or_insert(*v);
    }
    for (r, s) in c.ranks.iter().zip(rank_sizes) {
        sizes.insert(r.name.clone(), *s);
    }
    for (rank, parts) in &b.partitions {
        if c.rank_id(rank).is_none() {
            return bad(format!("binding partitions unknown rank `{rank}`"));
        }
        for p in parts {
            if sizes.contains_key(p) {
                return bad(format!(
                    "partition part `{p}` clashes with an existing name"
                ));
            }
        }
    }
    for (name, _) in &b.sizes {
        sizes.insert(name.clone(), 1); // provisional, so rules may be evaluated in order
    }
    for (name, rule) in &b.sizes {
        let v = rule_value(c, arch, b, &mut sizes, name, rule)
            .map_err(|e| in_rule(c, arch, b, &sizes, name, rule, e))?;
        if v <= 0 {
            return bad(format!(
                "partition size `{name}` = {v}; expected a positive size"
            ));
        }
        sizes.insert(name.clone(), v);
    }
    for (rank, parts) in &b.partitions {
        // The cascade's partition invariant (checked, so parts of 2^40 each cannot wrap into a match): the parts
        // cover the rank, with at most a partial last innermost tile.
        let vals: Vec<i64> = parts
            .iter()
            .map(|p| sizes.get(p).copied().unwrap_or(0))
            .collect();
        let n = sizes.get(rank).copied().unwrap_or(0);
        if let Err(e) = partition_cover(n, &vals) {
            let vals: Vec<String> = vals.iter().map(i64::to_string).collect();
            return bad(format!(
                "the parts of `{rank}` do not cover it with less than one tile of padding: {} = {}{}",
                parts.join(" × "),
                vals.join(" × "),
                e.describe(rank, n)
            ));
        }
    }
    Ok(sizes)
}

/// Ranks whose parts hold more points than the rank has (a ragged length: `M` = 1000 in four 256-key tiles), the
/// cascade's partitions and then the binding's. Every tile takes a whole tile's time, so the padded points count
/// in time (not in counts); reports say so.
fn padded_ranks(c: &Cascade, b: &BindingFile, sizes: &BTreeMap<String, i64>) -> Vec<Padded> {
    let cascade = c.ranks.iter().filter(|r| !r.parts.is_empty()).map(|r| {
        let parts: Vec<String> = r.parts.iter().map(|&p| c.ranks[p].name.clone()).collect();
        (r.name.clone(), parts)
    });
    let binding = b.partitions.iter().map(|(r, p)| (r.clone(), p.clone()));
    let size = |n: &str| sizes.get(n).map(|&v| v.max(0) as u64);
    cascade
        .chain(binding)
        .filter_map(|(rank, parts)| {
            let n = size(&rank)?;
            let parts: Vec<(String, u64)> = parts
                .into_iter()
                .map(|p| size(&p).map(|v| (p, v)))
                .collect::<Option<_>>()?;
            let covered = sat_prod(parts.iter().map(|(_, v)| *v));
            (covered > n).then_some(Padded {
                rank,
                size: n,
                parts,
            })
        })
        .collect()
}

/// The value of one size rule. `Fixed` is an expression. `Largest` is the largest divisor of `divisor_of` (at
/// least `at_least`, at most `at_most`) whose stage working set fits the storage `fits`, found by trying
/// footprints from the largest divisor down (the artifact's tile-size rule).
fn rule_value(
    c: &Cascade,
    arch: &Arch,
    b: &BindingFile,
    sizes: &mut BTreeMap<String, i64>,
    name: &str,
    rule: &SizeRule,
) -> Result<i64, MapError> {
    let (divisor_of, fits, stage, at_least, at_most) = match rule {
        SizeRule::Fixed(e) => return eval(e, sizes),
        SizeRule::Largest {
            divisor_of,
            fits,
            stage,
            at_least,
            at_most,
        } => (divisor_of, fits, stage, at_least, at_most),
    };
    let n = eval(divisor_of, sizes)?;
    let floor = match at_least {
        Some(e) => eval(e, sizes)?,
        None => 1,
    };
    let ceiling = match at_most {
        Some(e) => eval(e, sizes)?,
        None => i64::MAX,
    };
    let st = b.stages.iter().find(|s| &s.name == stage).ok_or_else(|| {
        MapError(format!(
            "size rule for `{name}` names unknown stage `{stage}`"
        ))
    })?;
    let cap = arch
        .storage
        .iter()
        .find(|s| &s.name == fits)
        .and_then(|s| s.capacity_bytes)
        .ok_or_else(|| MapError(format!("size rule for `{name}`: `{fits}` has no capacity")))?;
    // From the factorisation, not by testing every integer: `n` may be 2^40 or more.
    let divisors = crate::divisors::divisors_desc(n.max(1) as u64);
    for d in divisors
        .into_iter()
        .map(|d| d as i64)
        .filter(|&d| d >= floor && d <= ceiling)
    {
        sizes.insert(name.to_string(), d);
        if Stage::new(c, arch, b, st, sizes)?.footprint() <= cap {
            return Ok(d);
        }
    }
    Err(no_divisor_fits(
        c,
        arch,
        b,
        st,
        sizes,
        name,
        n,
        (floor, ceiling),
        cap,
    ))
}

fn eval(e: &str, sizes: &BTreeMap<String, i64>) -> Result<i64, MapError> {
    let lookup = |n: &str| sizes.get(n).copied();
    let x =
        SizeExpr::parse(e).map_err(|err| MapError(format!("in size `{e}`: {}", err.message)))?;
    x.eval(&lookup).map_err(|err| {
        // Two bare numbers ("1 is not divisible by 256") do not say what to change: name the operands and the
        // multiples nearest the dividend.
        let detail = match x.inexact_division(&lookup) {
            Some((a, x, d, y)) => {
                let lo = x.div_euclid(y) * y.abs();
                let hi = lo + y.abs();
                let near = if lo > 0 {
                    format!("the nearest multiples of {} are {lo} and {hi}", y.abs())
                } else {
                    format!("the nearest multiple of {} is {hi}", y.abs())
                };
                format!(
                    "{} is not a multiple of {}; {near}",
                    operand(a, x),
                    operand(d, y)
                )
            }
            None => err.message,
        };
        MapError(format!("in size `{e}`: {detail}"))
    })
}

/// An operand of a size expression with its value: `` `P` = 1000 ``, or just `256` for a number.
fn operand(e: &SizeExpr, v: i64) -> String {
    match e {
        SizeExpr::Num(_) => v.to_string(),
        _ => format!("`{e}` = {v}"),
    }
}

/// `arch/fusemax.ron: `, so a mapping error, which has no span, still names the file to edit.
fn origin(arch: &Arch) -> String {
    if arch.path.is_empty() {
        String::new()
    } else {
        format!("{}: ", arch.path)
    }
}

/// A size rule as written in the arch file.
fn rule_text(rule: &SizeRule) -> String {
    match rule {
        SizeRule::Fixed(e) => format!("Fixed({e:?})"),
        SizeRule::Largest {
            divisor_of,
            fits,
            stage,
            at_least,
            at_most,
        } => {
            let bound = |key: &str, b: &Option<String>| {
                b.as_ref()
                    .map_or(String::new(), |a| format!(", {key}: Some({a:?})"))
            };
            format!(
                "Largest(divisor_of: {divisor_of:?}, fits: {fits:?}, stage: {stage:?}{}{})",
                bound("at_least", at_least),
                bound("at_most", at_most)
            )
        }
    }
}

/// The rules of `b` up to and including `upto` (all of them for `None`), with the sizes they chose: what the
/// tile sizes in a fit error come from. Later rules are still provisional, so they are left out.
fn chosen_by(b: &BindingFile, sizes: &BTreeMap<String, i64>, upto: Option<&str>) -> String {
    let end = upto
        .and_then(|u| b.sizes.iter().position(|(n, _)| n == u))
        .map_or(b.sizes.len(), |k| k + 1);
    b.sizes[..end]
        .iter()
        .map(|(n, r)| {
            let v = sizes.get(n).map_or("?".to_string(), |v| v.to_string());
            format!("`{n}` = {v} by `{}`", rule_text(r))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A size rule's error, said where it comes from: the arch file, the part and its rule as written, and the value
/// and origin of each name the rule uses (a rank of the cascade, a part sized by an earlier rule, a parameter).
fn in_rule(
    c: &Cascade,
    arch: &Arch,
    b: &BindingFile,
    sizes: &BTreeMap<String, i64>,
    name: &str,
    rule: &SizeRule,
    e: MapError,
) -> MapError {
    let exprs: Vec<&String> = match rule {
        SizeRule::Fixed(e) => vec![e],
        SizeRule::Largest {
            divisor_of,
            at_least,
            at_most,
            ..
        } => std::iter::once(divisor_of)
            .chain(at_least)
            .chain(at_most)
            .collect(),
    };
    let mut names: Vec<String> = Vec::new();
    for x in exprs.iter().filter_map(|x| SizeExpr::parse(x).ok()) {
        for (n, _) in x.names() {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
    }
    let this = b.sizes.iter().position(|(n, _)| n == name);
    // A fit error lists the tile sizes already; the names' own origins are then what is left to say.
    let listed = e.0.contains("\n  tile sizes:");
    let wheres: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let v = sizes.get(n)?;
            if let Some(k) = b.sizes.iter().position(|(p, _)| p == n) {
                // A part whose rule comes later has only a provisional size; binding checks report its use.
                return (Some(k) < this && !listed)
                    .then(|| format!("`{n}` = {v} by `{}`", rule_text(&b.sizes[k].1)));
            }
            Some(match c.rank_id(n) {
                Some(r) => format!(
                    "`{n}` = {v}, a rank of `{}` sized `{}`",
                    c.name, c.ranks[r].size
                ),
                None => format!("`{n}` = {v}, a parameter"),
            })
        })
        .collect();
    let mut msg = format!(
        "{}`{name}`'s size rule `{}`: {}",
        origin(arch),
        rule_text(rule),
        e.0
    );
    if !wheres.is_empty() {
        msg.push_str(&format!("\n  where {}", wheres.join("; ")));
    }
    MapError(msg)
}

/// The error when no divisor lets a stage fit: the stage's working set at the smallest divisor tried, tensor by
/// tensor, so the user sees what takes the room. `sizes` holds that divisor (the search goes down to it).
#[allow(clippy::too_many_arguments)]
fn no_divisor_fits(
    c: &Cascade,
    arch: &Arch,
    b: &BindingFile,
    st: &StageFile,
    sizes: &BTreeMap<String, i64>,
    name: &str,
    n: i64,
    (floor, ceiling): (i64, i64),
    cap: u64,
) -> MapError {
    let fits = match &b.sizes.iter().find(|(p, _)| p == name) {
        Some((_, SizeRule::Largest { fits, .. })) => fits.as_str(),
        _ => "the buffer",
    };
    let tried = crate::divisors::divisors_desc(n.max(1) as u64)
        .into_iter()
        .any(|d| d as i64 >= floor && d as i64 <= ceiling);
    let range = if ceiling == i64::MAX {
        format!("at least {floor}")
    } else {
        format!("from {floor} to {ceiling}")
    };
    let head = format!(
        "no divisor of {n} ({range}) makes stage `{}` fit `{fits}` ({cap} B)",
        st.name
    );
    match Stage::new(c, arch, b, st, sizes) {
        Ok(s) if tried => MapError(format!(
            "{head}; at the smallest, `{name}` = {}, it keeps {} B:\n{}",
            sizes.get(name).copied().unwrap_or(1),
            s.footprint(),
            s.explain_working_set(Some(name))
        )),
        _ if !tried => MapError(format!("{head}: none is {range}")),
        _ => MapError(head),
    }
}

/// A tensor one stage makes and a later stage reads without loading it from DRAM. Stages run one after another,
/// so the reader finds the whole tensor made, and all of it stays on chip, in the maker's buffer, from the start
/// of the stage that makes it to the end of the last that reads it. It counts against the working set of every
/// stage in between that uses that buffer.
#[derive(Clone, Debug)]
struct Passage {
    tensor: TensorId,
    /// The stage that makes it and the last that reads it on chip (indices into the binding's stages).
    from: usize,
    to: usize,
    /// Its extent per rank (an iterative rank counts only when a reader wants more than the final value).
    extent: Vec<(String, u64)>,
    bytes: u64,
}

/// The tensors a binding passes between stages on chip. A tensor passes through DRAM when its maker stores it
/// (`dram` of the making stage) and its reader loads it (`dram` of the reading stage); any other reading stage
/// reads it on chip. Reading before the making stage, loading what was never stored, or reading from another
/// buffer than the one it was made in are mapping errors. Extents come from the cascade's rank sizes, which are
/// final before any size rule runs, so a `Largest` search sees the true size.
fn passages(
    c: &Cascade,
    arch: &Arch,
    b: &BindingFile,
    sizes: &BTreeMap<String, i64>,
) -> Result<Vec<Passage>, MapError> {
    let einsums: Vec<Vec<EinsumId>> = b
        .stages
        .iter()
        .map(|st| {
            st.einsums
                .iter()
                .filter_map(|n| {
                    c.einsums
                        .iter()
                        .position(|e| &e.name == n && e.section == Section::Main)
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for t in 0..c.tensors.len() {
        let name = &c.tensors[t].name;
        let makes = |i: usize| einsums[i].iter().any(|&e| c.einsums[e].output.tensor == t);
        let Some(from) = (0..b.stages.len()).find(|&i| makes(i)) else {
            continue; // an input, or made by an init Einsum: it comes from DRAM or is a view
        };
        let maker = &b.stages[from];
        let (mut to, mut only_final) = (from, true);
        for (j, st) in b.stages.iter().enumerate().filter(|(j, _)| *j != from) {
            let reads: Vec<&TensorRef> = einsums[j]
                .iter()
                .flat_map(|&e| c.einsums[e].expr.refs())
                .filter(|r| r.tensor == t)
                .collect();
            if reads.is_empty() {
                continue;
            }
            if j < from {
                return bad(format!(
                    "{}stage `{}` reads `{name}`, which stage `{}` makes later: stages run in the order listed",
                    origin(arch),
                    st.name,
                    maker.name
                ));
            }
            if st.dram.contains(name) {
                if !maker.dram.contains(name) {
                    return bad(format!(
                        "{}stage `{}` loads `{name}` from DRAM, but stage `{}`, which makes it, never stores it \
                         there: add `{name}` to the `dram` of stage `{}` too (with a `keep` loop)",
                        origin(arch),
                        st.name,
                        maker.name,
                        maker.name
                    ));
                }
                continue;
            }
            if st.buffer != maker.buffer {
                return bad(format!(
                    "{}stage `{}` reads `{name}` on chip from `{}`, but stage `{}` made it in `{}`: pass it \
                     through DRAM (add it to the `dram` of both stages)",
                    origin(arch),
                    st.name,
                    st.buffer,
                    maker.name,
                    maker.buffer
                ));
            }
            to = j;
            only_final &= reads.iter().all(|r| read_kind(c, r) == EdgeKind::Final);
        }
        if to == from {
            continue;
        }
        let tensor = &c.tensors[t];
        let ranks = c.broadcast.iter().copied().chain(
            tensor
                .ranks
                .iter()
                .copied()
                .filter(|r| !c.broadcast.contains(r)),
        );
        let extent: Vec<(String, u64)> = ranks
            .filter(|&r| !(only_final && tensor.iterative_rank == Some(r)))
            .map(|r| {
                let n = &c.ranks[r].name;
                (n.clone(), sizes.get(n).copied().unwrap_or(1).max(1) as u64)
            })
            .collect();
        let bytes = sat_prod(extent.iter().map(|(_, s)| *s).chain([arch.word_bytes]));
        out.push(Passage {
            tensor: t,
            from,
            to,
            extent,
            bytes,
        });
    }
    Ok(out)
}

/// What a stage holds in its buffer at once, tensor by tensor: the sum is its working set, and a fit error lists
/// the entries.
struct Held {
    tensor: String,
    bytes: u64,
    copies: u64,
    /// The parts (or, for a passage, the ranks) its extent spans, with their sizes.
    extent: Vec<(String, u64)>,
    /// Whether its home is DRAM (its tiles come and go; everything else is resident for the whole stage).
    dram: bool,
    held: HeldFor,
}

enum HeldFor {
    /// Kept at a loop (`keep`): its tile stays for one iteration of the loop.
    Loop(String),
    /// Passed on chip between stages: the whole tensor, from the stage that makes it to the last that reads it.
    Passage { from: String, to: String },
}

/// One stage being mapped: its loops and, per tensor and Einsum, the stage-level rank parts.
struct Stage<'a> {
    c: &'a Cascade,
    arch: &'a Arch,
    binding: &'a BindingFile,
    file: &'a StageFile,
    loops: Vec<Loop>,
    /// Upper-case part name → size.
    sizes: &'a BTreeMap<String, i64>,
    einsums: Vec<EinsumId>,
    /// This stage's position in the binding.
    index: usize,
    /// The binding's on-chip passages, or why they are not valid. The error is reported when the stage's program
    /// is built, not by `Stage::new`, which size rules also call: it is a mistake of the stages, not of the rule
    /// that happened to build one first.
    passages: Result<Vec<Passage>, MapError>,
    /// The padded ranks (set by `map`; size rules see none, as they size whole tiles).
    padded: Vec<PadRank>,
    /// Stage-level parts of every tensor and Einsum, each tensor's bits and each Einsum's distinct references,
    /// filled on first use.
    tensor_parts: std::cell::OnceCell<Vec<Vec<String>>>,
    einsum_parts: std::cell::OnceCell<Vec<Vec<String>>>,
    bits: std::cell::OnceCell<Vec<u64>>,
    distinct_refs: std::cell::OnceCell<Vec<Vec<usize>>>,
}

/// A padded rank as a stage sees it: its size, and its parts (outer to inner), each with its size and the
/// stage-level parts it is iterated by (a cascade part that the binding partitions is iterated by the binding's
/// parts; its own padding, if any, is another `PadRank`).
struct PadRank {
    size: u64,
    digits: Vec<(Vec<String>, u64)>,
}

impl PadRank {
    /// The real fraction of the points of a template that iterates the parts marked `spanned`: the real points
    /// of the rank projected onto those parts (the others at their first index), over the points the spanned
    /// parts hold. All spanned: size / product. An outer part alone (`m1`) holds no padding, since the padding
    /// lies within the last innermost tile, but an inner part alone does when the outer parts have one tile
    /// (`m0` with M1 = 1 and M < M0).
    fn real(&self, spanned: &[bool]) -> Frac {
        // Count the values 0..=size-1 of the mixed-radix number whose unspanned digits are zero, walking the
        // digits of size - 1 from the outermost: the exact size of the projection.
        let last = self.size.saturating_sub(1) as u128;
        let radix: Vec<u128> = self.digits.iter().map(|(_, n)| *n as u128).collect();
        let mut rest = last;
        let mut digits = vec![0u128; radix.len()];
        for j in (0..radix.len()).rev() {
            digits[j] = rest % radix[j].max(1);
            rest /= radix[j].max(1);
        }
        let free_after = |j: usize| -> u128 {
            (j + 1..radix.len())
                .filter(|&l| spanned[l])
                .fold(1u128, |a, l| a.saturating_mul(radix[l]))
        };
        let mut count = 0u128;
        let mut tight = true;
        for j in 0..radix.len() {
            if spanned[j] {
                count = count.saturating_add(digits[j].saturating_mul(free_after(j)));
            } else if digits[j] > 0 {
                count = count.saturating_add(free_after(j));
                tight = false;
                break;
            }
        }
        if tight {
            count += 1;
        }
        let den = (0..radix.len())
            .filter(|&l| spanned[l])
            .fold(1u128, |a, l| a.saturating_mul(radix[l]));
        Frac::new(count, den)
    }
}

impl<'a> Stage<'a> {
    fn new(
        c: &'a Cascade,
        arch: &'a Arch,
        binding: &'a BindingFile,
        file: &'a StageFile,
        sizes: &'a BTreeMap<String, i64>,
    ) -> Result<Self, MapError> {
        let mut loops = Vec::new();
        for l in &file.loops {
            let up = l.to_uppercase();
            let Some(&trip) = sizes.get(&up) else {
                return bad(format!(
                    "stage `{}`: loop `{l}` names no rank or partition part `{up}`",
                    file.name
                ));
            };
            loops.push(Loop {
                index: l.clone(),
                trip: trip.max(1) as u64,
            });
        }
        let mut einsums = Vec::new();
        for name in &file.einsums {
            match c
                .einsums
                .iter()
                .position(|e| &e.name == name && e.section == Section::Main)
            {
                Some(e) => einsums.push(e),
                None => {
                    return bad(format!(
                        "stage `{}`: `{name}` is not a main Einsum of `{}`",
                        file.name, c.name
                    ))
                }
            }
        }
        let index = binding
            .stages
            .iter()
            .position(|s| std::ptr::eq(s, file))
            .or_else(|| binding.stages.iter().position(|s| s.name == file.name))
            .unwrap_or(0);
        Ok(Stage {
            c,
            arch,
            binding,
            file,
            loops,
            sizes,
            einsums,
            index,
            passages: passages(c, arch, binding, sizes),
            padded: vec![],
            tensor_parts: std::cell::OnceCell::new(),
            einsum_parts: std::cell::OnceCell::new(),
            bits: std::cell::OnceCell::new(),
            distinct_refs: std::cell::OnceCell::new(),
        })
    }

    /// A padded rank in this stage's terms: each of its parts with the stage-level parts that iterate it.
    fn pad_rank(&self, p: &Padded) -> PadRank {
        let digits = p
            .parts
            .iter()
            .map(|(name, n)| {
                let stage_parts = match self.c.rank_id(name) {
                    Some(r) => self.parts_of(r),
                    None => vec![name.clone()], // a binding's part
                };
                (stage_parts, *n)
            })
            .collect();
        PadRank {
            size: p.size,
            digits,
        }
    }

    /// The real fraction of the points a template iterating the stage-level parts `parts` covers: the product
    /// over the padded ranks of the fraction of the parts it spans.
    fn real(&self, parts: &[String]) -> Frac {
        self.padded.iter().fold(Frac::ONE, |f, p| {
            let spanned: Vec<bool> = p
                .digits
                .iter()
                .map(|(sp, _)| sp.iter().all(|x| parts.contains(x)))
                .collect();
            f.times(p.real(&spanned))
        })
    }

    fn tensor_real(&self, t: TensorId) -> Frac {
        self.real(self.tensor_parts(t))
    }

    /// The passages this stage holds in its buffer: those made in its buffer that are live while it runs.
    fn live_passages(&self) -> impl Iterator<Item = &Passage> {
        let stages = &self.binding.stages;
        let here = self.index;
        self.passages
            .as_ref()
            .into_iter()
            .flatten()
            .filter(move |p| {
                p.from <= here && here <= p.to && stages[p.from].buffer == self.file.buffer
            })
    }

    /// Whether tensor `t` is passed on chip to or from this stage (so it is in the buffer here, whole).
    fn passed_here(&self, t: TensorId) -> bool {
        self.live_passages().any(|p| p.tensor == t)
    }

    /// Stage-level parts of a cascade rank: its binding partition parts, or itself.
    fn parts_of(&self, rank: usize) -> Vec<String> {
        let name = &self.c.ranks[rank].name;
        self.binding
            .partitions
            .get(name)
            .cloned()
            .unwrap_or_else(|| vec![name.clone()])
    }

    /// Bits per element of tensor `t`: the stage's `bits` entry (checked positive by [`Stage::check_bits`]), or
    /// the arch's word.
    /// Evaluated once per stage for every tensor (an expression parse each time was a tenth of a generation run).
    fn bits_of(&self, t: TensorId) -> u64 {
        let all = self.bits.get_or_init(|| {
            self.c
                .tensors
                .iter()
                .map(|tensor| {
                    self.file
                        .bits
                        .get(&tensor.name)
                        .and_then(|e| eval(e, self.sizes).ok())
                        .filter(|b| *b > 0)
                        .map_or(self.arch.word_bytes * 8, |b| b as u64)
                })
                .collect()
        });
        all[t]
    }

    /// Bytes of `elements` elements of tensor `t` at its width, rounded up to a whole byte.
    fn bytes_of(&self, t: TensorId, elements: u64) -> u64 {
        let bits = elements as u128 * self.bits_of(t) as u128;
        u64::try_from(bits.div_ceil(8)).unwrap_or(u64::MAX)
    }

    /// Every `bits` entry must evaluate to a positive width.
    fn check_bits(&self) -> Result<(), MapError> {
        for (name, e) in &self.file.bits {
            let v = eval(e, self.sizes).map_err(|err| {
                MapError(format!(
                    "stage `{}`: the bit width of `{name}`: {err}",
                    self.file.name
                ))
            })?;
            if v <= 0 {
                return bad(format!(
                    "stage `{}`: `{name}` is stored at `{e}` = {v} bits; expected a width of at least 1 bit",
                    self.file.name
                ));
            }
        }
        Ok(())
    }

    fn size(&self, part: &str) -> u64 {
        self.sizes.get(part).copied().unwrap_or(1).max(1) as u64
    }

    /// Parts a tensor has (broadcast ranks included). Computed once per stage for every tensor: mapping asks
    /// for them per task and per transfer.
    fn tensor_parts(&self, t: TensorId) -> &[String] {
        let all = self.tensor_parts.get_or_init(|| {
            (0..self.c.tensors.len())
                .map(|t| {
                    let mut v: Vec<String> = self
                        .c
                        .broadcast
                        .iter()
                        .flat_map(|&r| self.parts_of(r))
                        .collect();
                    for &r in &self.c.tensors[t].ranks {
                        if !self.c.broadcast.contains(&r) {
                            v.extend(self.parts_of(r));
                        }
                    }
                    v
                })
                .collect()
        });
        &all[t]
    }

    /// Parts an Einsum iterates (its ranks, `Cascade::iterated_ranks`, as this binding partitions them); once
    /// per stage, as `tensor_parts`.
    fn einsum_parts(&self, e: EinsumId) -> &[String] {
        let all = self.einsum_parts.get_or_init(|| {
            (0..self.c.einsums.len())
                .map(|e| {
                    let mut v: Vec<String> = Vec::new();
                    for r in self.c.iterated_ranks(e) {
                        for p in self.parts_of(r) {
                            if !v.contains(&p) {
                                v.push(p);
                            }
                        }
                    }
                    v
                })
                .collect()
        });
        &all[e]
    }

    fn loop_of(&self, part: &str) -> Option<usize> {
        self.loops
            .iter()
            .position(|l| l.index.eq_ignore_ascii_case(part))
    }

    fn keep_level(&self, t: TensorId) -> Result<Option<usize>, MapError> {
        let name = &self.c.tensors[t].name;
        match self.file.keep.get(name) {
            None => Ok(None),
            Some(l) => self.loop_of(l).map(Some).ok_or_else(|| {
                MapError(format!(
                    "stage `{}`: `{name}` is kept at `{l}`, which is not a loop",
                    self.file.name
                ))
            }),
        }
    }

    /// The parts of tensor `t` that its buffer-resident extent spans when kept at loop level `keep`, with their
    /// sizes: loops inside `keep` and intra-tile parts. An iterative tensor is updated in place along its
    /// iterative rank, and a loop at or outside `keep` contributes one tile.
    fn kept_parts(&self, t: TensorId, keep: usize) -> Vec<(String, u64)> {
        let iter_part = self.c.tensors[t]
            .iterative_rank
            .map(|r| self.c.ranks[r].name.clone());
        self.tensor_parts(t)
            .iter()
            .filter(|p| Some(*p) != iter_part.as_ref())
            .filter(|p| !matches!(self.loop_of(p), Some(j) if j <= keep))
            .map(|p| (p.clone(), self.size(p)))
            .collect()
    }

    /// What the stage holds in its buffer at once: every kept tensor's resident extent with its copies (an alias
    /// takes no space of its own), and every tensor passed on chip across it, whole. A passed tensor's own `keep`
    /// entry is part of the whole and not counted again.
    fn working_set(&self) -> Vec<Held> {
        let mut held = Vec::new();
        for (name, l) in &self.file.keep {
            if self.file.alias.contains_key(name) {
                continue; // stored in place of another kept tensor
            }
            let Some(t) = self.c.tensor_id(name) else {
                continue;
            };
            if self.passed_here(t) || self.bypassed(t) {
                continue;
            }
            if let Ok(Some(k)) = self.keep_level(t) {
                let copies = self.file.copies.get(name).copied().unwrap_or(1);
                let extent = self.kept_parts(t, k);
                let elements = sat_prod(extent.iter().map(|(_, n)| *n));
                held.push(Held {
                    tensor: name.clone(),
                    bytes: self.bytes_of(t, elements).saturating_mul(copies),
                    copies,
                    extent,
                    dram: self.is_dram(t),
                    held: HeldFor::Loop(l.clone()),
                });
            }
        }
        let stages = &self.binding.stages;
        for p in self.live_passages() {
            held.push(Held {
                tensor: self.c.tensors[p.tensor].name.clone(),
                bytes: p.bytes,
                copies: 1,
                extent: p.extent.clone(),
                dram: false,
                held: HeldFor::Passage {
                    from: stages[p.from].name.clone(),
                    to: stages[p.to].name.clone(),
                },
            });
        }
        held
    }

    /// Bytes the stage keeps in its buffer at once: its working set.
    fn footprint(&self) -> u64 {
        self.working_set()
            .iter()
            .fold(0, |a, h| sat_sum(a, h.bytes))
    }

    /// The working set, one line per tensor (largest first), what is stored in place of what, and the size rules
    /// (up to `upto`, when a rule is still being chosen) that set the tile sizes: a fit error that explains itself.
    fn explain_working_set(&self, upto: Option<&str>) -> String {
        let mut held = self.working_set();
        held.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.tensor.cmp(&b.tensor)));
        let mut lines: Vec<String> = held
            .iter()
            .map(|h| {
                let mut of: Vec<String> =
                    h.extent.iter().map(|(p, n)| format!("{p} {n}")).collect();
                of.push(format!("{} B", self.arch.word_bytes));
                let copies = match h.copies {
                    1 => String::new(),
                    n => format!("{n} copies of "),
                };
                let why = match &h.held {
                    HeldFor::Loop(l) => format!("kept at `{l}`"),
                    HeldFor::Passage { from, to } => format!(
                        "the whole tensor, made by stage `{from}` and read on chip by stage `{to}` \
                         (in neither's `dram`)"
                    ),
                };
                format!(
                    "  `{}`: {} B = {copies}{}, {why}",
                    h.tensor,
                    h.bytes,
                    of.join(" x ")
                )
            })
            .collect();
        for (a, t) in &self.file.alias {
            lines.push(format!(
                "  `{a}`: stored in place of `{t}`, no space of its own"
            ));
        }
        for h in &held {
            if let HeldFor::Passage { from, to } = &h.held {
                lines.push(format!(
                    "  hint: a tensor passed between stages outside DRAM stays in the buffer whole while it is live; \
                     to pass `{}` through DRAM, add it to the `dram` of stage `{from}` (a store) and of stage \
                     `{to}` (a load)",
                    h.tensor
                ));
            }
        }
        if !self.binding.sizes.is_empty() {
            lines.push(format!(
                "  tile sizes: {}",
                chosen_by(self.binding, self.sizes, upto)
            ));
        }
        lines.join("\n")
    }

    /// Whether `consumer` takes the tile that reference `r` names straight from the PE that makes it instead of
    /// re-reading the buffer: it is this iteration's value, made in the same tile of this stage by the same unit,
    /// and no other operand of `consumer` is itself computed from it, so each value is used as it is made. A fused
    /// exp-and-sum pass adds each SN into SD as it is produced; the divide A = SN / SD must wait for the whole sum
    /// and re-reads SN (a new pass). Decided per reference: of `R[m1,p]` and `R[m1+1,p]` in one expression, the
    /// second may be forwarded while the first is read back.
    fn forwarded(&self, flow: &Dataflow, consumer: EinsumId, r: &TensorRef) -> bool {
        let in_stage = |e: &EinsumId| self.einsums.contains(e);
        let unit = |e: EinsumId| self.file.place.get(&self.c.einsums[e].name);
        // A value of an earlier iteration (`R[m1,p]` next to `R[m1+1,p]`), or an iteration's final value, was
        // stored by an earlier task; it is read back.
        if read_kind(self.c, r) != EdgeKind::Forward {
            return false;
        }
        let t = r.tensor;
        let mut makers = flow
            .producers(consumer)
            .filter(|(p, tt, k)| *tt == t && *k == EdgeKind::Forward && in_stage(p));
        let (Some((maker, _, _)), None) = (makers.next(), makers.next()) else {
            return false;
        };
        if unit(maker).is_none() || unit(maker) != unit(consumer) {
            return false;
        }
        // Does `e` depend on `maker` through forward edges inside this stage?
        let depends = |e: EinsumId| {
            let mut stack = vec![e];
            let mut seen = Vec::new();
            while let Some(x) = stack.pop() {
                if x == maker {
                    return true;
                }
                if seen.contains(&x) {
                    continue;
                }
                seen.push(x);
                stack.extend(
                    flow.producers(x)
                        .filter(|(p, _, k)| *k == EdgeKind::Forward && in_stage(p))
                        .map(|(p, _, _)| p),
                );
            }
            false
        };
        !flow
            .producers(consumer)
            .any(|(p, tt, _)| tt != t && in_stage(&p) && depends(p))
    }

    /// Build the stage's program. Each step is its own function, so a new unit kind (a top-k engine, a tensor
    /// core) or storage kind (tensor memory) changes the step it concerns instead of growing one long function.
    fn program(
        &self,
        flow: &Dataflow,
        servers: &mut Vec<Server>,
    ) -> Result<StageProgram, MapError> {
        self.passages.as_ref().map_err(Clone::clone)?;
        self.check_bits()?;
        let lv = self.levels(servers)?;
        let order = self.order(flow);
        self.check_partial_results(&order)?;
        self.check_bypass_and_spill()?;
        let mut templates: Vec<Template> = Vec::new();
        let mut compute_of: BTreeMap<EinsumId, usize> = BTreeMap::new();
        for &e in &order {
            if is_free(self.c, e) {
                continue; // a plain copy takes no unit time, so it has no task
            }
            templates.push(self.compute_template(e, flow, &lv)?);
            compute_of.insert(e, templates.len() - 1);
        }
        let resident = self.resident_bytes()?;
        let load_of = self.transfer_templates(&lv, &compute_of, &mut templates)?;
        self.wire_deps(&order, &compute_of, &load_of, &mut templates);
        let (cap, resident, spill) = self.check_working_set(lv.buffer, resident)?;
        if let Some(sp) = &spill {
            self.spill_templates(sp, &order, flow, &compute_of, &lv, &mut templates);
        }
        set_issue_positions(&mut templates, self.loops.len());
        let window = self.window()?;
        let mut loops = self.loops.clone();
        fuse_loops(&mut loops, &mut templates);
        Ok(StageProgram {
            name: self.file.name.clone(),
            loops,
            templates,
            window,
            in_order: matches!(self.file.pipeline, Pipeline::InOrder(_)),
            buffer_free: cap - resident,
            resident,
            buffer: lv.buffer.name.clone(),
            spill,
        })
    }

    /// Resolve the stage's DRAM level and buffer by name. The DRAM channel becomes a server (shared by the stages
    /// that use it), because transfers queue on the channel as tasks queue on a unit.
    fn levels(&self, servers: &mut Vec<Server>) -> Result<Levels<'a>, MapError> {
        let storage = &self.arch.storage;
        let mem = storage
            .iter()
            .find(|s| s.name == self.file.memory && s.kind == StorageKind::Dram)
            .ok_or_else(|| {
                MapError(format!(
                    "stage `{}`: `{}` is not a DRAM level",
                    self.file.name, self.file.memory
                ))
            })?;
        let buffer = storage
            .iter()
            .find(|s| s.name == self.file.buffer)
            .ok_or_else(|| {
                MapError(format!(
                    "stage `{}`: unknown buffer `{}`",
                    self.file.name, self.file.buffer
                ))
            })?;
        let mem_server = match servers.iter().position(|s| s.name == mem.name) {
            Some(i) => i,
            None => {
                servers.push(Server {
                    name: mem.name.clone(),
                    latency: mem.latency_cycles * TICKS_PER_CYCLE,
                    is_memory: true,
                });
                servers.len() - 1
            }
        };
        Ok(Levels {
            mem,
            mem_server,
            buffer,
        })
    }

    /// The stage's Einsums in dependency order, so a producer's template precedes its consumers'.
    fn order(&self, flow: &Dataflow) -> Vec<EinsumId> {
        flow.order
            .iter()
            .copied()
            .filter(|e| self.einsums.contains(e))
            .collect()
    }

    /// Whether tensor `t` is held in the stage's buffer (kept, DRAM-homed and tiled through it, stored in place
    /// of a kept tensor, or passed on chip from or to another stage); otherwise it lives in the units' local
    /// storage and costs no buffer traffic.
    fn in_buffer(&self, t: TensorId) -> bool {
        let n = &self.c.tensors[t].name;
        if self.bypassed(t) {
            return false;
        }
        self.file.keep.contains_key(n)
            || self.file.dram.contains(n)
            || self.file.alias.contains_key(n)
            || self.passed_here(t)
    }

    fn is_dram(&self, t: TensorId) -> bool {
        self.file.dram.contains(&self.c.tensors[t].name)
    }

    /// What the binding checker cannot see, because it depends on the loops: a bypassed tensor is fetched once
    /// per iteration of its `keep` loop and held nowhere, so its user must not iterate a loop inside that one
    /// (it would need the tile again), and a bypassed result must not be reduced across a loop (its partial
    /// sums would have no home); a spilled tensor must be this stage's alone (not passed on chip to another
    /// stage, which would read the whole of it from the buffer) and not reduced across a loop (the spilled
    /// share of the read-back is not modelled).
    fn check_bypass_and_spill(&self) -> Result<(), MapError> {
        let c = self.c;
        let stage = &self.file.name;
        let touches = |e: EinsumId, t: TensorId| {
            c.einsums[e].output.tensor == t
                || c.einsums[e].expr.refs().iter().any(|r| r.tensor == t)
        };
        for name in &self.file.bypass {
            let Some(t) = c.tensor_id(name) else { continue };
            let Some(keep) = self.keep_level(t)? else {
                continue;
            };
            for &e in self.einsums.iter().filter(|&&e| touches(e, t)) {
                let inner = self
                    .einsum_parts(e)
                    .iter()
                    .filter_map(|p| self.loop_of(p))
                    .max();
                if let Some(j) = inner.filter(|&j| j > keep) {
                    return bad(format!(
                        "stage `{stage}`: bypassed `{name}` is fetched once per `{}` iteration and held nowhere, but \
                         `{}` iterates `{}` inside it and would need it again; keep it at `{}`",
                        self.loops[keep].index, c.einsums[e].name, self.loops[j].index, self.loops[j].index
                    ));
                }
                if c.einsums[e].output.tensor == t && self.accumulates(e) {
                    return bad(format!(
                        "stage `{stage}`: bypassed result `{name}` is reduced across a loop of the stage, and its \
                         partial sums would have no home; keep it in the buffer instead"
                    ));
                }
            }
        }
        if let Some(name) = &self.file.spill {
            let Some(t) = c.tensor_id(name) else {
                return Ok(());
            };
            if self.passed_here(t) {
                return bad(format!(
                    "stage `{stage}`: `{name}` is passed on chip to another stage, which reads all of it from the \
                     buffer, so it cannot spill here"
                ));
            }
            if let Some(&e) = self
                .einsums
                .iter()
                .find(|&&e| self.in_spill(c.einsums[e].output.tensor) && self.accumulates(e))
            {
                return bad(format!(
                    "stage `{stage}`: `{}` reduces into spilled `{name}` across a loop; the spilled share of its \
                     read-back is not modelled",
                    c.einsums[e].name
                ));
            }
        }
        Ok(())
    }

    /// Whether tensor `t` lives in the stage's `spill` tensor's place: it is that tensor or stored in its place
    /// (`alias`), so its accesses share the spilled fraction.
    fn in_spill(&self, t: TensorId) -> bool {
        let Some(sp) = &self.file.spill else {
            return false;
        };
        let n = &self.c.tensors[t].name;
        n == sp || self.file.alias.get(n) == Some(sp)
    }

    /// Whether DRAM tensor `t` bypasses the buffer (`bypass`): its tiles stream between memory and the units.
    fn bypassed(&self, t: TensorId) -> bool {
        self.file.bypass.contains(&self.c.tensors[t].name)
    }

    /// The unit an Einsum is placed on, and its server index (units are the first servers, in arch order).
    fn unit_of(&self, e: EinsumId) -> Result<(usize, &'a Unit), MapError> {
        let es = &self.c.einsums[e];
        let Some(unit_name) = self.file.place.get(&es.name) else {
            return bad(format!(
                "stage `{}`: Einsum `{}` is not placed on a unit",
                self.file.name, es.name
            ));
        };
        self.arch
            .units
            .iter()
            .enumerate()
            .find(|(_, u)| &u.name == unit_name)
            .ok_or_else(|| MapError(format!("unknown unit `{unit_name}`")))
    }

    /// One Einsum as a task template, instantiated per iteration of the stage loops it iterates. Its work is the
    /// tile's temporal steps × op cycles, but at least the time its buffer operands take to stream.
    fn compute_template(
        &self,
        e: EinsumId,
        flow: &Dataflow,
        lv: &Levels,
    ) -> Result<Template, MapError> {
        let (ui, unit) = self.unit_of(e)?;
        let parts = self.einsum_parts(e);
        let loops: Vec<bool> = self
            .loops
            .iter()
            .map(|l| parts.iter().any(|p| l.index.eq_ignore_ascii_case(p)))
            .collect();
        let intra = self.intra(parts);
        let spatial = self.spatial(unit, &intra)?;
        let elements: u64 = sat_prod(intra.iter().map(|p| self.size(p)));
        let ops = self.op_costs(e, unit, elements)?;
        let mut actions = ops.actions;
        self.local_store_actions(unit, ops.count * elements as f64, &mut actions);
        let mut compute = (spatial.temporal as f64 * ops.cycles_per_point)
            .ceil()
            .max(1.0) as u64;
        if let Some(sel) = &unit.selection {
            // A top-k engine: cycles from the seeded quick-select rounds, energy per candidate streamed.
            let cost = self.selection_cost(e, unit, sel, elements)?;
            compute = cost.cycles.max(1);
            let per = cost.streamed as f64 / elements.max(1) as f64;
            for ((component, _), n) in actions.iter_mut() {
                if component == &unit.name {
                    *n *= per;
                }
            }
        }
        // Padded points take the unit's time but do no work: compute and local-store actions count real points.
        let real = self.real(parts);
        for n in actions.values_mut() {
            *n *= real.as_f64();
        }
        let (reads, writes, padded) = self.buffer_traffic(e, flow, &intra, lv.buffer);
        charge_accesses(lv.buffer, &reads, &writes, &padded, &mut actions);
        // A task cannot finish faster than its operands stream through the buffer's ports.
        let moved: u64 = reads
            .values()
            .chain(writes.values())
            .fold(0, |a, &b| sat_sum(a, b));
        let streaming = (moved as f64 / lv.buffer.bandwidth).ceil() as u64;
        let es = &self.c.einsums[e];
        Ok(Template {
            name: es.name.clone(),
            kind: TemplateKind::Compute(e),
            server: ui,
            at_last: vec![false; loops.len()],
            loops,
            work: compute.max(streaming).saturating_mul(TICKS_PER_CYCLE),
            useful: compute.saturating_mul(TICKS_PER_CYCLE),
            deps: vec![],
            alloc: 0,
            keep: None,
            consumers: 0,
            pe_fraction: spatial.pe_fraction,
            elements,
            actions,
            reads,
            writes,
            real,
            padded,
        })
    }

    /// The quick-select cost of a tile of Einsum `e` on top-k engine `unit` (`crate::topk`): the Einsum must be
    /// one `topk(r, k)` selection whose rank `r` lies whole within the tile; the other intra-tile ranks are
    /// independent selections (fibers).
    fn selection_cost(
        &self,
        e: EinsumId,
        unit: &Unit,
        sel: &crate::arch::Selection,
        elements: u64,
    ) -> Result<crate::topk::SelectionCost, MapError> {
        let es = &self.c.einsums[e];
        let ops: Vec<&str> = einsum_ops(self.c, e).iter().map(|o| o.kind).collect();
        let topk = es.reductions.iter().find_map(|r| match &r.op {
            crate::cascade::ReduceOp::TopK(k) => Some((r.rank, k)),
            _ => None,
        });
        let Some((rank, k)) = topk.filter(|_| ops == ["topk"]) else {
            return bad(format!(
                "stage `{}`: Einsum `{}` on top-k engine `{}` is not one `topk` selection (its ops: {}); a top-k engine only selects",
                self.file.name,
                es.name,
                unit.name,
                ops.join(", ")
            ));
        };
        let parts = self.parts_of(rank);
        if let Some(p) = parts.iter().find(|p| self.loop_of(p).is_some()) {
            return bad(format!(
                "stage `{}`: Einsum `{}` selects over rank `{}`, but its part `{}` is a tile loop; a top-k engine must see the whole fiber in one task",
                self.file.name, es.name, self.c.ranks[rank].name, p.to_lowercase()
            ));
        }
        let n: u64 = sat_prod(parts.iter().map(|p| self.size(p)));
        let lookup = |name: &str| self.sizes.get(name).copied();
        let k = k.eval(&lookup).map_err(|err| {
            MapError(format!(
                "Einsum `{}`: cannot evaluate the top-k count `{k}`: {}",
                es.name, err.message
            ))
        })?;
        let fibers = elements / n.max(1);
        let engine = crate::topk::Engine {
            lanes: unit.shape.iter().product(),
            round_overhead: sel.round_overhead_cycles,
        };
        crate::topk::tile_cost(engine, n, k.max(0) as u64, fibers, sel.seed)
            .map_err(|err| MapError(format!("Einsum `{}` on `{}`: {err}", es.name, unit.name)))
    }

    /// Spatial mapping: each unit dimension holds the listed intra-tile parts, outer first; a part larger than the
    /// room left is folded into extra temporal steps (ceil(size / room) folds, the last one partial), and unmapped
    /// intra-tile parts run in time. The PE fraction is, per dimension, the elements placed over all folds divided
    /// by folds × the dimension, so the idle PEs of a partial fold are not counted as busy.
    fn spatial(&self, unit: &Unit, intra: &[&String]) -> Result<Spatial, MapError> {
        let dims = self
            .file
            .spatial
            .get(&unit.name)
            .cloned()
            .unwrap_or_default();
        if dims.len() > unit.shape.len() {
            return bad(format!(
                "stage `{}`: spatial mapping for `{}` has {} dimensions, the unit {}",
                self.file.name,
                unit.name,
                dims.len(),
                unit.shape.len()
            ));
        }
        let mut temporal: u64 = 1;
        let mut used: f64 = 1.0;
        let mut placed: Vec<&String> = Vec::new();
        for (d, ranks) in dims.iter().enumerate() {
            let mut room = unit.shape[d];
            // Elements this dimension holds over all its folds, and its folds (time steps).
            let (mut elements_d, mut folds_d) = (1u64, 1u64);
            for r in ranks {
                let up = r.to_uppercase();
                if let Some(p) = intra.iter().find(|p| **p == &up) {
                    let size = self.size(p);
                    let ext = size.min(room).max(1);
                    room /= ext;
                    let folds = size.div_ceil(ext);
                    elements_d = elements_d.saturating_mul(size);
                    folds_d = folds_d.saturating_mul(folds);
                    temporal = temporal.saturating_mul(folds);
                    placed.push(p);
                }
            }
            // A 256-row tile on 200 rows folds as 200 + 56: 256 of its 2 × 200 PE-steps do useful work.
            used *= elements_d as f64 / (folds_d as f64 * unit.shape[d] as f64);
        }
        for p in intra {
            if !placed.contains(p) {
                temporal = temporal.saturating_mul(self.size(p));
            }
        }
        Ok(Spatial {
            temporal,
            pe_fraction: used,
        })
    }

    /// Op costs on this unit, with fused patterns falling back to their parts: cycles per iteration point, ops
    /// per point, and the compute actions of the whole tile. The unit's op table prices; `ops` only names kinds.
    fn op_costs(&self, e: EinsumId, unit: &Unit, elements: u64) -> Result<OpCosts, MapError> {
        let mut costs = OpCosts {
            cycles_per_point: 0.0,
            count: 0.0,
            actions: BTreeMap::new(),
        };
        for need in einsum_ops(self.c, e) {
            let kinds: Vec<&str> = if unit.ops.contains_key(need.kind) || need.fallback.is_empty() {
                vec![need.kind]
            } else {
                need.fallback.clone()
            };
            for k in kinds {
                let Some(cost) = unit.ops.get(k) else {
                    return bad(format!(
                        "unit `{}` cannot perform `{k}` needed by Einsum `{}`",
                        unit.name, self.c.einsums[e].name
                    ));
                };
                costs.cycles_per_point += cost.cycles;
                costs.count += 1.0;
                for (a, n) in &cost.actions {
                    *costs
                        .actions
                        .entry((unit.name.clone(), a.clone()))
                        .or_default() += n * elements as f64;
                }
            }
        }
        Ok(costs)
    }

    /// Accesses to the unit's local store (its register file): each of the tile's `ops` reads and writes it.
    fn local_store_actions(&self, unit: &Unit, ops: f64, actions: &mut Actions) {
        let Some(l) = &unit.local else {
            return;
        };
        if let Some(st) = self.arch.storage.iter().find(|s| s.name == l.storage) {
            *actions
                .entry((st.name.clone(), st.read_action.clone()))
                .or_default() += l.reads_per_op * ops;
            *actions
                .entry((st.name.clone(), st.write_action.clone()))
                .or_default() += l.writes_per_op * ops;
        }
    }

    /// Buffer traffic of one task, in bytes read and written: the tile of each distinct buffer-resident operand
    /// reference it reads (unless forwarded from the PE that makes it), and the tile of the result it writes (and
    /// reads back first, when it accumulates across tiles).
    /// References are told apart by their index expressions, not just their tensor: `R[m1,p]` and `R[m1+1,p]` are
    /// two tiles of R; the same reference written twice is one read.
    /// The third value lists the accesses whose tiles hold padding.
    fn buffer_traffic(
        &self,
        e: EinsumId,
        flow: &Dataflow,
        intra: &[&String],
        buffer: &Storage,
    ) -> (
        BTreeMap<String, u64>,
        BTreeMap<String, u64>,
        Vec<PaddedBytes>,
    ) {
        let es = &self.c.einsums[e];
        let mut reads = BTreeMap::new();
        let mut writes = BTreeMap::new();
        let mut padded = Vec::new();
        let mut access = |t: TensorId, write: bool| {
            let bytes = self.tile_bytes(t, intra);
            let map = if write { &mut writes } else { &mut reads };
            *map.entry(buffer.name.clone()).or_insert(0) += bytes;
            let real = self.tensor_real(t);
            if real != Frac::ONE {
                padded.push(PaddedBytes {
                    level: buffer.name.clone(),
                    write,
                    bytes,
                    real,
                });
            }
        };
        let refs = es.expr.refs();
        for &i in self.distinct_refs(e) {
            let r = refs[i];
            if self.in_buffer(r.tensor) && !self.forwarded(flow, e, r) {
                access(r.tensor, false);
            }
        }
        if self.in_buffer(es.output.tensor) {
            access(es.output.tensor, true);
            if self.accumulates(e) && !buffer.accumulates_on_write {
                access(es.output.tensor, false);
            }
        }
        (reads, writes, padded)
    }

    /// Positions in Einsum `e`'s references (`expr.refs()`) of the first of each distinct reference, told apart by
    /// their printed index expressions: `R[m1,p]` and `R[m1+1,p]` are two tiles of R; the same reference written
    /// twice is one. Once per stage for every Einsum.
    fn distinct_refs(&self, e: EinsumId) -> &[usize] {
        let all = self.distinct_refs.get_or_init(|| {
            self.c
                .einsums
                .iter()
                .map(|es| {
                    let refs = es.expr.refs();
                    // Printed only where two references share a tensor (`R[m1,p]`, `R[m1+1,p]`): rare, and
                    // printing every reference was a few percent of a generation run.
                    let same = |a: &TensorRef, b: &TensorRef| {
                        a.tensor == b.tensor && print_ref(self.c, a) == print_ref(self.c, b)
                    };
                    (0..refs.len())
                        .filter(|&i| !refs[..i].iter().any(|r| same(r, refs[i])))
                        .collect()
                })
                .collect()
        });
        &all[e]
    }

    /// Of an Einsum's parts, those no stage loop iterates: the ones a task covers within its tile.
    fn intra<'p>(&self, parts: &'p [String]) -> Vec<&'p String> {
        parts.iter().filter(|p| self.loop_of(p).is_none()).collect()
    }

    /// Bytes of tensor `t`'s tile that one task over the intra-tile parts `intra` touches.
    fn tile_bytes(&self, t: TensorId, intra: &[&String]) -> u64 {
        let parts = self.tensor_parts(t);
        let sizes = parts
            .iter()
            .filter(|p| intra.contains(p))
            .map(|p| self.size(p));
        self.bytes_of(t, sat_prod(sizes))
    }

    /// Whether Einsum `e` accumulates its result across a stage loop: it iterates a loop its result is not indexed
    /// by (a reduced rank is tiled by it), so each task updates in place the partial result that the previous
    /// iteration's task wrote to the buffer, and must read it back (read-modify-write). The first iteration has
    /// nothing to read back; it is charged too, so every instance costs the same: an overcount of one read of the
    /// result tile per pass over the loop. A loop of one iteration reduces nothing across tiles: no read-back
    /// (a weight-stationary GEMM whose K fits the array's rows, reports/scalesim).
    fn accumulates(&self, e: EinsumId) -> bool {
        let out = self.tensor_parts(self.c.einsums[e].output.tensor);
        self.einsum_parts(e)
            .iter()
            .any(|p| self.loop_of(p).is_some() && !out.contains(p) && self.size(p) > 1)
    }

    /// Bytes of on-chip state statically resident in the buffer: kept tensors with no DRAM home, each with its
    /// copies (an alias takes no space of its own), and tensors passed on chip across this stage, whole. They are
    /// set aside before any DRAM tile is loaded.
    fn resident_bytes(&self) -> Result<u64, MapError> {
        for name in self.file.keep.keys() {
            let Some(t) = self.c.tensor_id(name) else {
                return bad(format!(
                    "stage `{}`: keeps unknown tensor `{name}`",
                    self.file.name
                ));
            };
            self.keep_level(t)?;
        }
        Ok(self
            .working_set()
            .iter()
            .filter(|h| !h.dram)
            .fold(0, |a, h| sat_sum(a, h.bytes)))
    }

    /// A result reduced across a stage loop (its Einsum iterates the loop, its indices do not), or a running value
    /// carried across one, is updated by every iteration of that loop, so its partial results must stay where the
    /// next iteration finds them. A DRAM tensor must be kept at a loop outside the outermost such loop: kept at
    /// it or inside, its tile would be stored after each iteration holding a partial result that nothing reads
    /// back (einsim does not model reading partial results back from DRAM). An on-chip tensor (kept without a
    /// DRAM home, or in the units' local storage when not kept) must hold every tile of it that the loops inside
    /// that one move through; its kept extent spans the loops inside its `keep` loop, and local storage one tile.
    /// Anything else is a mapping error naming the loops the tensor may be kept at. A tensor passed on chip to a
    /// later stage is held whole, so its partial results have room.
    fn check_partial_results(&self, order: &[EinsumId]) -> Result<(), MapError> {
        for &e in order {
            let t = self.c.einsums[e].output.tensor;
            if is_free(self.c, e) || self.passed_here(t) {
                continue;
            }
            let out = self.tensor_parts(t);
            let mut across: Vec<usize> = self
                .einsum_parts(e)
                .iter()
                .filter(|p| !out.contains(p))
                .filter_map(|p| self.loop_of(p))
                .collect();
            let tensor = &self.c.tensors[t];
            let running = tensor
                .iterative_rank
                .and_then(|r| self.loop_of(&self.c.ranks[r].name));
            across.extend(running);
            let Some(&outer) = across.iter().min() else {
                continue;
            };
            let name = &tensor.name;
            // A tensor stored in place of another lives where that one is kept.
            let keep = match self.keep_level(t)? {
                Some(k) => Some(k),
                None => match self.file.alias.get(name).and_then(|a| self.c.tensor_id(a)) {
                    Some(a) => self.keep_level(a)?,
                    None => None,
                },
            };
            let l = |j: usize| self.loops[j].index.as_str();
            let indexes = |j: usize| out.iter().any(|p| l(j).eq_ignore_ascii_case(p));
            // The tensor may be kept at any loop outside `bound`.
            let (problem, bound) = if self.is_dram(t) {
                let Some(k) = keep.filter(|&k| k >= outer) else {
                    continue; // kept outside the loop, or without `keep` (reported with the transfers)
                };
                let problem = format!(
                    "it is kept at `{}`, so after every `{}` iteration its tile would be stored to DRAM holding \
                     a partial result that no later iteration reads back",
                    l(k),
                    l(outer)
                );
                (problem, outer)
            } else {
                let scope = keep.unwrap_or(self.loops.len() - 1);
                let Some(moves) = (outer + 1..=scope).find(|&j| indexes(j)) else {
                    continue;
                };
                let problem = match keep {
                    Some(k) => format!(
                        "it is kept at `{}`, so the buffer holds one tile of it per `{}` iteration, while loop \
                         `{}`, inside `{}`, moves on to other tiles whose partial results the next `{}` \
                         iteration needs",
                        l(k),
                        l(k),
                        l(moves),
                        l(outer),
                        l(outer)
                    ),
                    None => format!(
                        "it is in neither `keep` nor `dram`, so its partial results would stay in the units' \
                         local storage, one tile at a time, while loop `{}`, inside `{}`, moves on to other \
                         tiles of it",
                        l(moves),
                        l(outer)
                    ),
                };
                (problem, moves)
            };
            let what = if running == Some(outer) {
                "a running value carried across"
            } else {
                "reduced over"
            };
            let fix = if bound == 0 {
                format!(
                    "no loop is outside `{}`: reorder the loops so that another one encloses it",
                    l(outer)
                )
            } else {
                let names: Vec<&str> = (0..bound).map(l).collect();
                format!(
                    "keep `{name}` at a loop outside `{}`: one of {}",
                    l(bound),
                    names.join(", ")
                )
            };
            return bad(format!(
                "{}stage `{}`: `{name}` is {what} `{}`, a loop of this stage, but {problem}; {fix}",
                origin(self.arch),
                self.file.name,
                l(outer)
            ));
        }
        Ok(())
    }

    /// One transfer template per DRAM tensor: a tensor written in this stage is stored after its producer, any
    /// other is loaded before its readers. Returns each loaded tensor's load template, which its readers wait for.
    fn transfer_templates(
        &self,
        lv: &Levels,
        compute_of: &BTreeMap<EinsumId, usize>,
        templates: &mut Vec<Template>,
    ) -> Result<BTreeMap<TensorId, usize>, MapError> {
        let mut load_of: BTreeMap<TensorId, usize> = BTreeMap::new();
        for name in &self.file.dram {
            let Some(t) = self.c.tensor_id(name) else {
                return bad(format!(
                    "stage `{}`: unknown DRAM tensor `{name}`",
                    self.file.name
                ));
            };
            let Some(keep) = self.keep_level(t)? else {
                return bad(format!("stage `{}`: DRAM tensor `{name}` needs a `keep` loop saying how long its tile stays in `{}`", self.file.name, lv.buffer.name));
            };
            let users = self.users(t, templates);
            let stored = self
                .einsums
                .iter()
                .any(|&e| self.c.einsums[e].output.tensor == t);
            let mut tp = self.transfer(t, keep, &users, templates, lv, stored);
            if stored {
                self.as_store(&mut tp, t, lv, compute_of);
                templates.push(tp);
            } else {
                self.as_load(&mut tp, t, users.len(), lv)?;
                templates.push(tp);
                load_of.insert(t, templates.len() - 1);
            }
        }
        Ok(load_of)
    }

    /// The compute templates that read or write tensor `t`: a load's tile is freed after the last of them.
    fn users(&self, t: TensorId, templates: &[Template]) -> Vec<usize> {
        let c = self.c;
        templates
            .iter()
            .enumerate()
            .filter(|(_, tp)| match tp.kind {
                TemplateKind::Compute(e) => {
                    c.einsums[e].output.tensor == t
                        || c.einsums[e].expr.refs().iter().any(|r| r.tensor == t)
                }
                _ => false,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The part of a transfer template common to loads and stores: its loops, tile bytes and channel time.
    fn transfer(
        &self,
        t: TensorId,
        keep: usize,
        users: &[usize],
        templates: &[Template],
        lv: &Levels,
        stored: bool,
    ) -> Template {
        // One transfer per tile: its loops are those at or outside `keep` that its users iterate, plus the
        // loops inside `keep` that index it (so a kept block is brought in tile by tile, on first use, and
        // stays until its last use in the block).
        let parts = self.tensor_parts(t);
        let indexes = |j: usize| {
            parts
                .iter()
                .any(|p| self.loops[j].index.eq_ignore_ascii_case(p))
        };
        let loops: Vec<bool> = (0..self.loops.len())
            .map(|j| (j <= keep || indexes(j)) && users.iter().any(|&u| templates[u].loops[j]))
            .collect();
        let elements: u64 = sat_prod(self.intra(parts).iter().map(|p| self.size(p)));
        let bytes = self.bytes_of(t, elements);
        let transfer = transfer_ticks(bytes, lv);
        let (kind, label) = if stored {
            (TemplateKind::Store(t), "store")
        } else {
            (TemplateKind::Load(t), "load")
        };
        let name = format!("{label} {}", self.c.tensors[t].name);
        Template {
            keep: Some(keep),
            elements,
            real: self.tensor_real(t),
            ..Template::new(name, kind, lv.mem_server, loops, transfer)
        }
    }

    /// A load reads DRAM and writes the buffer, and holds its tile there until each of its `consumers`' last
    /// instance in the tile's scope has finished. A tile larger than the whole buffer can never be admitted.
    fn as_load(
        &self,
        tp: &mut Template,
        t: TensorId,
        consumers: usize,
        lv: &Levels,
    ) -> Result<(), MapError> {
        let (mem, buffer) = (lv.mem, lv.buffer);
        if self.bypassed(t) {
            // Streamed into the units' operand staging: DRAM is read, the buffer neither written nor held.
            // Nothing held, so nothing to free: no consumer count (with one, the engine would keep the load live
            // until readers that never link to it release it).
            let bytes = self.bytes_of(t, tp.elements);
            charge_side(tp, mem, bytes, Side::Read);
            return Ok(());
        }
        let bytes = self.charge_transfer(tp, mem, buffer);
        tp.alloc = bytes;
        tp.consumers = consumers as u64;
        if bytes > buffer.capacity_bytes.unwrap_or(u64::MAX) {
            return bad(format!(
                "stage `{}`: a tile of `{}` ({bytes} B) exceeds `{}`",
                self.file.name, self.c.tensors[t].name, buffer.name
            ));
        }
        Ok(())
    }

    /// A transfer's tile moves from one level to another: bytes read from `from` and written to `to`, each
    /// charged in its own access width. Returns the tile's bytes.
    fn charge_transfer(&self, tp: &mut Template, from: &Storage, to: &Storage) -> u64 {
        let bytes = match tp.kind {
            TemplateKind::Load(t) | TemplateKind::Store(t) => self.bytes_of(t, tp.elements),
            TemplateKind::Compute(_) => tp.elements.saturating_mul(self.arch.word_bytes),
        };
        charge_side(tp, from, bytes, Side::Read);
        charge_side(tp, to, bytes, Side::Write);
        bytes
    }

    /// A store reads the buffer and writes DRAM, after the task that made the tile.
    fn as_store(
        &self,
        tp: &mut Template,
        t: TensorId,
        lv: &Levels,
        compute_of: &BTreeMap<EinsumId, usize>,
    ) {
        if self.bypassed(t) {
            // Streamed out of the unit that makes it: only DRAM is written.
            let bytes = self.bytes_of(t, tp.elements);
            charge_side(tp, lv.mem, bytes, Side::Write);
        } else {
            self.charge_transfer(tp, lv.buffer, lv.mem);
        }
        let producer = self
            .einsums
            .iter()
            .copied()
            .find(|&e| self.c.einsums[e].output.tensor == t);
        if let Some(&p) = producer.and_then(|p| compute_of.get(&p)) {
            tp.deps.push(Dep {
                template: p,
                carried: None,
            });
        }
    }

    /// Dependencies of compute templates: on the load of each DRAM operand, and on the template that makes each
    /// operand in this stage. A read of the previous iteration of an iterative rank that is a stage loop is a
    /// carried dependency on that loop; one whose iterative rank is within a tile runs inside one task.
    fn wire_deps(
        &self,
        order: &[EinsumId],
        compute_of: &BTreeMap<EinsumId, usize>,
        load_of: &BTreeMap<TensorId, usize>,
        templates: &mut [Template],
    ) {
        let c = self.c;
        for &e in order {
            let Some(&ti) = compute_of.get(&e) else {
                continue;
            };
            let mut deps = Vec::new();
            for r in c.einsums[e].expr.refs() {
                if let Some(&l) = load_of.get(&r.tensor) {
                    deps.push(Dep {
                        template: l,
                        carried: None,
                    });
                }
                let kind = read_kind(c, r);
                for p in c.writers(r.tensor) {
                    let Some(&pi) = compute_of.get(&p) else {
                        continue;
                    }; // free or in an earlier stage
                    let carried = if kind == EdgeKind::Carried {
                        let it = c.tensors[r.tensor]
                            .iterative_rank
                            .map(|x| c.ranks[x].name.clone())
                            .unwrap_or_default();
                        match self.loop_of(&it) {
                            Some(j) => Some(j),
                            None => continue, // the recurrence runs inside one task
                        }
                    } else {
                        None
                    };
                    deps.push(Dep {
                        template: pi,
                        carried,
                    });
                }
            }
            templates[ti].deps = deps;
        }
    }

    /// The working set (resident state plus every kept tile, with its copies) must fit the buffer, or overflow it
    /// by no more than the stage's `spill` tensor holds; otherwise this binding does not apply and the caller
    /// tries the next one for the cascade. Returns the buffer's capacity, the bytes resident in it (less the
    /// spilled part, which is resident state that lives in memory instead) and what spills.
    fn check_working_set(
        &self,
        buffer: &Storage,
        resident: u64,
    ) -> Result<(u64, u64, Option<Spill>), MapError> {
        let cap = buffer.capacity_bytes.unwrap_or(u64::MAX);
        let working_set = self.footprint().max(resident);
        if working_set <= cap {
            return Ok((cap, resident, None));
        }
        let excess = working_set - cap;
        let held = self.file.spill.as_ref().and_then(|name| {
            let h = self.working_set().into_iter().find(|h| &h.tensor == name)?;
            Some((name, h.bytes))
        });
        match held {
            Some((name, bytes)) if excess <= bytes => {
                // The spill tensor is on-chip state (binding checks), so its spilled part leaves the resident
                // bytes, and the DRAM tiles get the room the working set counted for them.
                Ok((
                    cap,
                    resident.saturating_sub(excess),
                    Some(Spill {
                        tensor: name.clone(),
                        bytes: excess,
                        of: bytes,
                    }),
                ))
            }
            _ => {
                let spill = match held {
                    Some((name, bytes)) => format!(
                        "\n  spilling all of `{name}` ({bytes} B) would leave {} B over",
                        excess - bytes
                    ),
                    None => String::new(),
                };
                bad(format!(
                    "{}stage `{}` keeps {working_set} B in `{}`, which holds {cap} B:\n{}{spill}",
                    origin(self.arch),
                    self.file.name,
                    buffer.name,
                    self.explain_working_set(None)
                ))
            }
        }
    }

    /// The transfers of a spilled tensor's overflowing part ([`Spill`]): each task that writes the tensor (or one
    /// stored in its place) stores that fraction of its tile to memory after it, and each task that reads one from
    /// the buffer loads that fraction first, after the store of the same iteration. The part is staged through
    /// the buffer both ways, so the buffer traffic the tasks are charged stands.
    fn spill_templates(
        &self,
        sp: &Spill,
        order: &[EinsumId],
        flow: &Dataflow,
        compute_of: &BTreeMap<EinsumId, usize>,
        lv: &Levels,
        templates: &mut Vec<Template>,
    ) {
        let c = self.c;
        let part = |bytes: u64| -> u64 {
            ((bytes as u128 * sp.bytes as u128).div_ceil(sp.of.max(1) as u128)) as u64
        };
        let mut store_of: BTreeMap<TensorId, usize> = BTreeMap::new();
        for &e in order {
            let Some(&ti) = compute_of.get(&e) else {
                continue;
            };
            let es = &c.einsums[e];
            let parts = self.einsum_parts(e);
            let intra = self.intra(parts);
            let mut seen: Vec<TensorId> = Vec::new();
            for r in es.expr.refs() {
                let t = r.tensor;
                if !self.in_spill(t) || seen.contains(&t) || self.forwarded(flow, e, r) {
                    continue;
                }
                seen.push(t);
                let bytes = part(self.tile_bytes(t, &intra));
                let mut tp = self.spill_transfer(TemplateKind::Load(t), bytes, &templates[ti], lv);
                if let Some(&st) = store_of.get(&t) {
                    tp.deps.push(Dep {
                        template: st,
                        carried: None,
                    });
                }
                templates.push(tp);
                let li = templates.len() - 1;
                templates[ti].deps.push(Dep {
                    template: li,
                    carried: None,
                });
            }
            let out = es.output.tensor;
            if self.in_spill(out) {
                let bytes = part(self.tile_bytes(out, &intra));
                let mut tp =
                    self.spill_transfer(TemplateKind::Store(out), bytes, &templates[ti], lv);
                tp.deps.push(Dep {
                    template: ti,
                    carried: None,
                });
                templates.push(tp);
                store_of.insert(out, templates.len() - 1);
            }
        }
    }

    /// A transfer of `bytes` of a spilled tile, once per instance of the task `of` that uses it, staged through
    /// the buffer: a load reads memory and writes the buffer, a store the reverse.
    fn spill_transfer(
        &self,
        kind: TemplateKind,
        bytes: u64,
        of: &Template,
        lv: &Levels,
    ) -> Template {
        let (label, t, from, to) = match kind {
            TemplateKind::Load(t) => ("spill load", t, lv.mem, lv.buffer),
            TemplateKind::Store(t) => ("spill store", t, lv.buffer, lv.mem),
            TemplateKind::Compute(_) => unreachable!("a spill moves a tensor"),
        };
        let name = format!("{label} {}", self.c.tensors[t].name);
        let work = transfer_ticks(bytes, lv);
        let mut tp = Template {
            real: self.tensor_real(t),
            ..Template::new(name, kind, lv.mem_server, of.loops.clone(), work)
        };
        charge_side(&mut tp, from, bytes, Side::Read);
        charge_side(&mut tp, to, bytes, Side::Write);
        tp
    }

    /// Tiles in flight at once: the pipeline's depth, or 1 for a sequential stage.
    fn window(&self) -> Result<u32, MapError> {
        Ok(match &self.file.pipeline {
            Pipeline::Interleave(d) | Pipeline::InOrder(d) => {
                eval(&d.0, self.sizes)?.clamp(1, u32::MAX as i64) as u32
            }
            Pipeline::Sequential => 1,
        })
    }
}

/// Energy-table actions per instance, keyed by (component, action).
type Actions = BTreeMap<(String, String), f64>;

/// Ticks the memory channel takes to move `bytes` (at least one, so every transfer occupies the channel).
fn transfer_ticks(bytes: u64, lv: &Levels) -> u64 {
    ((bytes as f64 * TICKS_PER_CYCLE as f64 / lv.mem.bandwidth).ceil() as u64).max(1)
}

/// Which side of a transfer a storage level is on.
#[derive(Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// Charge a transfer template `bytes` read from (or written to) `level`, in the level's access width.
/// The tile's real fraction (`tp.real`) is what the action counts.
fn charge_side(tp: &mut Template, level: &Storage, bytes: u64, side: Side) {
    let (map, action) = match side {
        Side::Read => (&mut tp.reads, &level.read_action),
        Side::Write => (&mut tp.writes, &level.write_action),
    };
    map.insert(level.name.clone(), bytes);
    tp.actions.insert(
        (level.name.clone(), action.clone()),
        bytes as f64 * tp.real.as_f64() / level.access_bytes as f64,
    );
    if tp.real != Frac::ONE {
        tp.padded.push(PaddedBytes {
            level: level.name.clone(),
            write: matches!(side, Side::Write),
            bytes,
            real: tp.real,
        });
    }
}

/// The storage a stage moves tiles between, resolved once per stage.
struct Levels<'a> {
    /// The DRAM level that `dram` tensors live in, and the server of its channel.
    mem: &'a Storage,
    mem_server: usize,
    /// The on-chip buffer that holds kept and in-flight tiles.
    buffer: &'a Storage,
}

/// How a tile lies on a unit: the temporal steps it takes, and the fraction of the unit's PEs doing useful work.
struct Spatial {
    temporal: u64,
    pe_fraction: f64,
}

/// What a unit's op table charges for one Einsum.
struct OpCosts {
    /// Cycles per iteration point, summed over the ops.
    cycles_per_point: f64,
    /// Ops per iteration point (each accesses the unit's local store).
    count: f64,
    /// Compute actions of the whole tile.
    actions: Actions,
}

/// Buffer reads and writes cost one action per access of the buffer's width, for the real bytes of each tile.
fn charge_accesses(
    buffer: &Storage,
    reads: &BTreeMap<String, u64>,
    writes: &BTreeMap<String, u64>,
    padded: &[PaddedBytes],
    actions: &mut Actions,
) {
    for (write, bytes, action) in [
        (false, reads, &buffer.read_action),
        (true, writes, &buffer.write_action),
    ] {
        if let Some(b) = bytes.get(&buffer.name) {
            let padding: f64 = padded
                .iter()
                .filter(|p| p.write == write && p.level == buffer.name)
                .map(|p| p.bytes as f64 * (1.0 - p.real.as_f64()))
                .sum();
            *actions
                .entry((buffer.name.clone(), action.clone()))
                .or_default() += (*b as f64 - padding) / buffer.access_bytes as f64;
        }
    }
}

/// Issue positions. A template does not iterate some loops; it issues with such a loop's last iteration when
/// any same-iteration producer iterates that loop (or itself issues last on it), so it sees the whole result,
/// and with the first otherwise. Compute producers precede their consumers and stores follow their producers,
/// but a spilled tile's load follows the reader that waits for it, so passes repeat until nothing changes (a
/// position only ever turns to `last`, so this ends; one pass suffices without spills).
fn set_issue_positions(templates: &mut [Template], nl: usize) {
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..templates.len() {
            for j in 0..nl {
                if templates[i].loops[j] || templates[i].at_last[j] {
                    continue;
                }
                let last = templates[i]
                    .deps
                    .iter()
                    .filter(|d| d.carried.is_none())
                    .any(|d| {
                        let p = &templates[d.template];
                        p.loops[j] || p.at_last[j]
                    });
                if last {
                    templates[i].at_last[j] = true;
                    changed = true;
                }
            }
        }
    }
}

/// Merge adjacent loops that no template tells apart (every template iterates both or neither, is issued at the
/// same end of both, and no dependency or residency names either): `b, h` become one loop of `B·H` iterations.
/// The schedule is unchanged, but the steady-state search has one level fewer to walk.
fn fuse_loops(loops: &mut Vec<Loop>, templates: &mut [Template]) {
    let mut j = 0;
    while j + 1 < loops.len() {
        let fusable = templates.iter().all(|t| {
            t.loops[j] == t.loops[j + 1]
                && (t.loops[j] || t.at_last[j] == t.at_last[j + 1])
                && t.keep != Some(j)
                && t.deps
                    .iter()
                    .all(|d| d.carried != Some(j) && d.carried != Some(j + 1))
        });
        if !fusable {
            j += 1;
            continue;
        }
        loops[j].index = format!("{}*{}", loops[j].index, loops[j + 1].index);
        loops[j].trip = loops[j].trip.saturating_mul(loops[j + 1].trip);
        loops.remove(j + 1);
        let shift = |x: usize| if x > j { x - 1 } else { x };
        for t in templates.iter_mut() {
            t.loops.remove(j + 1);
            t.at_last.remove(j + 1);
            t.keep = t.keep.map(shift);
            for d in &mut t.deps {
                d.carried = d.carried.map(shift);
            }
        }
    }
}

/// Products and sums of sizes saturate: a count past 2^64 stays at the maximum, which the checks after mapping
/// (a tile larger than the buffer, a report that does not fit) turn into a clear error instead of a wrapped size.
fn sat_prod(xs: impl IntoIterator<Item = u64>) -> u64 {
    xs.into_iter().fold(1, u64::saturating_mul)
}

fn sat_sum(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

#[cfg(test)]
mod tests {
    use super::{Frac, PadRank};

    fn rank(size: u64, parts: &[u64]) -> PadRank {
        PadRank {
            size,
            digits: parts.iter().map(|&n| (vec![], n)).collect(),
        }
    }

    fn f(num: u128, den: u128) -> Frac {
        Frac::new(num, den)
    }

    /// Counted by hand: M = 1000 in M1 x M0 = 4 x 256 tiles holds 1000 of 1024 points; its outer part alone holds
    /// 4 real tiles of 4, its inner part alone 256 real keys of 256 (the first three tiles are full).
    #[test]
    fn a_ragged_rank_is_real_in_the_parts_it_spans() {
        let m = rank(1000, &[4, 256]);
        assert_eq!(m.real(&[true, true]), f(1000, 1024));
        assert_eq!(m.real(&[true, false]), Frac::ONE);
        assert_eq!(m.real(&[false, true]), Frac::ONE);
        assert_eq!(m.real(&[false, false]), Frac::ONE);
    }

    /// One outer tile (M1 = 1, M = 100 < M0 = 256): the inner part alone is padded too.
    #[test]
    fn an_inner_part_alone_is_padded_when_the_outer_has_one_tile() {
        let m = rank(100, &[1, 256]);
        assert_eq!(m.real(&[false, true]), f(100, 256));
        assert_eq!(m.real(&[true, true]), f(100, 256));
        assert_eq!(m.real(&[true, false]), Frac::ONE);
    }

    /// Three parts (P = 1000 as P2 x P1 x P0 = 1 x 4 x 256), and decode's one query in a 256-query tile.
    #[test]
    fn three_parts_and_one_query() {
        let p = rank(1000, &[1, 4, 256]);
        assert_eq!(p.real(&[true, true, true]), f(1000, 1024));
        assert_eq!(p.real(&[false, true, true]), f(1000, 1024));
        assert_eq!(p.real(&[false, false, true]), Frac::ONE);
        assert_eq!(p.real(&[false, true, false]), Frac::ONE);
        let q = rank(1, &[1, 1, 256]);
        assert_eq!(q.real(&[true, true, true]), f(1, 256));
        assert_eq!(q.real(&[false, false, true]), f(1, 256));
    }

    #[test]
    fn fractions_multiply_in_lowest_terms_and_count_exactly() {
        let x = f(1000, 1024).times(f(1000, 1024));
        assert_eq!(x, f(15625, 16384));
        assert_eq!(x.of(16384 * 3), 15625 * 3);
        // Past 128 bits the product keeps its ratio.
        let big = f(u64::MAX as u128 - 1, u64::MAX as u128);
        let y = big.times(big).times(big);
        assert!((y.as_f64() - big.as_f64().powi(3)).abs() < 1e-12);
        assert_eq!(Frac::ONE.of(u128::MAX), u128::MAX);
    }
}
