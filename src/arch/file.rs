//! The RON shape of arch and energy files. Numbers stay expressions ([`Fig`]) until resolved.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A hardware figure: `Fig("256", "PE", "FuseMax artifact arch-2d.yaml meshY")` — value expression, unit, source.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Fig(pub String, pub String, pub String);

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Arch")]
pub struct ArchFile {
    pub name: String,
    pub description: String,
    pub source: String,
    #[serde(default)]
    pub params: BTreeMap<String, i64>,
    pub clock: Fig,
    pub word: Fig,
    pub technology: String,
    /// Name of the energy/area table (`arch/energy/NAME.ron`).
    pub energy: String,
    pub units: BTreeMap<String, UnitFile>,
    pub storage: BTreeMap<String, StorageFile>,
    /// One binding per cascade the design runs; the first is its default (attention).
    pub bindings: Vec<BindingFile>,
    /// How a run chooses among the bindings of one cascade that map: the first in file order (the default, a
    /// design's fall-back dataflow), or the one with the lowest analytical bound (a mapper's search).
    #[serde(default)]
    pub select: Select,
}

/// How a run chooses among an arch's bindings for one cascade, of those that map (their working sets fit).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Select {
    /// The first in file order: later bindings are fall-backs for sizes the earlier ones cannot map.
    #[default]
    First,
    /// The one with the lowest analytical lower bound (per-unit work over throughput, bytes over bandwidth), as a
    /// mapper ranks candidate mappings by its analytical model; ties to the earlier. The string says whose
    /// search this is.
    Fastest(String),
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum UnitKind {
    /// rows × cols PEs with neighbour links (TPU-style); spatial reductions drain along a dimension.
    SpatialArray,
    /// A row of PEs fed from the edge of a spatial array or the buffer.
    LinearArray,
    /// A pipelined fixed-function unit (exp unit, divider): `shape` is its lane count.
    FunctionUnit,
    /// A quick-select top-k engine (SpAtten §III-D): `shape` is its comparator lanes `P`; an Einsum with a `topk`
    /// reduction placed on it costs the rounds of a seeded quick-select (`crate::topk`), per its `selection`.
    TopkEngine,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Unit")]
pub struct UnitFile {
    pub kind: UnitKind,
    pub shape: Vec<Fig>,
    pub latency: Fig,
    pub ops: BTreeMap<String, OpFile>,
    #[serde(default)]
    pub local: Option<LocalFile>,
    #[serde(default)]
    pub pe_area: Vec<String>,
    /// The selection model of a `TopkEngine` (required there, refused elsewhere).
    #[serde(default)]
    pub selection: Option<SelectionFile>,
}

/// How a top-k engine's data-dependent cycles are drawn: each quick-select round costs `⌈n_r / P⌉ +
/// round_overhead` cycles over the survivors `n_r` of a seeded run on continuous i.i.d. scores.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Selection")]
pub struct SelectionFile {
    pub round_overhead: Fig,
    /// The pivot generator's seed: an expression over the arch parameters (so `--set topk_seed=7` changes it).
    pub seed: String,
    /// The score distribution the survivor counts are drawn on; the only one is `Continuous` (i.i.d., no ties).
    pub scores: ScoreDistribution,
    pub source: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum ScoreDistribution {
    /// Continuous i.i.d. scores: distinct, every arrival order equally likely (`crate::topk`).
    Continuous,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpFile {
    pub cycles: f64,
    pub actions: BTreeMap<String, f64>,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    pub storage: String,
    pub reads_per_op: f64,
    pub writes_per_op: f64,
    pub source: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum StorageKind {
    RegisterFile,
    Sram,
    TensorMemory,
    Dram,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Storage")]
pub struct StorageFile {
    pub kind: StorageKind,
    #[serde(default)]
    pub capacity: Option<Fig>,
    /// In `B/cycle` or `B/s`.
    pub bandwidth: Fig,
    #[serde(default)]
    pub latency: Option<Fig>,
    pub access: Fig,
    pub read: String,
    pub write: String,
    #[serde(default)]
    pub area: Option<String>,
    /// When present (with its source), the level adds a partial result into what it holds on write, so a
    /// result accumulated across a tile loop costs one write per update and no read-back: an accumulator SRAM
    /// (SCALE-Sim's ofmap buffer). Absent, the update is a read-modify-write through the level's ports.
    #[serde(default)]
    pub accumulates_on_write: Option<String>,
}

/// Which cascade the design runs and how it is mapped and bound: all data, so changing it changes results
/// without touching Rust.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Binding")]
pub struct BindingFile {
    pub cascade: String,
    /// Names this binding among alternatives for the same cascade (`fused`, `spilled`): the first whose
    /// working set fits is used.
    #[serde(default)]
    pub name: String,
    pub source: String,
    /// Mapping-level partitions of cascade ranks, outer → inner (`"P": ["P2", "P1", "P0"]`).
    #[serde(default)]
    pub partitions: BTreeMap<String, Vec<String>>,
    /// Sizes of the partition parts, evaluated in order (later rules may use earlier sizes).
    #[serde(default)]
    pub sizes: Vec<(String, SizeRule)>,
    /// Cascade parameters this binding fixes, as size expressions over the arch's parameters (`"block":
    /// "rows"`): a tile size the cascade declares but the hardware decides. They replace the cascade's
    /// defaults, the model's values and `--set` for runs on this binding.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    pub stages: Vec<StageFile>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub enum SizeRule {
    /// A fixed expression (`"256"`, `"P / (P1 * P0)"`).
    Fixed(String),
    /// The largest divisor of `divisor_of` whose stage working set fits `fits` (a storage name); FuseMax's P1
    /// rule and FLAT's row-tile rule are both this.
    Largest {
        divisor_of: String,
        fits: String,
        stage: String,
        /// The smallest acceptable size (e.g. the array edge, so the array stays full); below it the binding
        /// does not apply and the next binding for the cascade is tried.
        #[serde(default)]
        at_least: Option<String>,
        /// The largest acceptable size (a search bound, e.g. FLAT's largest row tile): divisors above it are not
        /// tried.
        #[serde(default)]
        at_most: Option<String>,
    },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename = "Stage")]
pub struct StageFile {
    pub name: String,
    /// Main Einsums this stage computes, by name.
    pub einsums: Vec<String>,
    /// Tile loops, outer → inner, as index names (`b`, `h`, `p2`, `m1`, `p1`). Ranks iterated by an Einsum but not
    /// listed are intra-tile.
    pub loops: Vec<String>,
    /// Einsum → unit.
    pub place: BTreeMap<String, String>,
    /// Unit → for each spatial dimension, the intra-tile ranks mapped across it.
    pub spatial: BTreeMap<String, Vec<Vec<String>>>,
    /// Tensors whose home is DRAM: loaded into (or stored from) `buffer` once per iteration of their `keep` loop.
    #[serde(default)]
    pub dram: Vec<String>,
    /// Tensor → the loop whose iterations it stays resident in `buffer` for. Tensors in neither `keep` nor `dram`
    /// live in the units' local storage.
    #[serde(default)]
    pub keep: BTreeMap<String, String>,
    /// The on-chip buffer tensors are kept in.
    pub buffer: String,
    /// The DRAM level.
    pub memory: String,
    pub pipeline: Pipeline,
    /// Tensors stored in place of another (same tile, the earlier value dead): `"SN": "QK"`. They move through
    /// the buffer but take no space of their own.
    #[serde(default)]
    pub alias: BTreeMap<String, String>,
    /// Buffers per kept tensor when more than one (`"QK": 2` double-buffers the logit tile so the next tile can
    /// be produced while this one is consumed).
    #[serde(default)]
    pub copies: BTreeMap<String, u64>,
    /// Bits per element of a tensor stored narrower (or wider) than the arch's word, as an expression over the
    /// workload and arch parameters (`"K": "k_msb_bits"`): its tiles move and are held at that width, so DRAM
    /// traffic is counted in bits (SpAtten's 4- to 12-bit K, Q and V).
    #[serde(default)]
    pub bits: BTreeMap<String, String>,
    /// DRAM tensors that bypass `buffer`: each tile streams between `memory` and the units that use it (through
    /// their operand staging, not the buffer), so it takes no buffer space and costs no buffer access, and it is
    /// fetched again at every iteration of its `keep` loop. Timeloop calls this bypassing a level; FLAT's search
    /// places K and V off-chip so that the logit tile gets the whole buffer ([R] flat_spatten.md §1.2, §1.3).
    #[serde(default)]
    pub bypass: Vec<String>,
    /// An on-chip kept tensor allowed to overflow the buffer: when the working set exceeds `buffer` by E bytes,
    /// that part of the tensor's held bytes lives in `memory`, and every access to it (by the tensor's writers
    /// and readers, and those of tensors stored in its place) is a transfer through `memory`, staged through
    /// the buffer. FuseMax's model of FLAT spills the excess of the logit tile the same way ([R] fusemax.md §5,
    /// `prop_spilled`). More excess than the tensor holds does not map.
    #[serde(default)]
    pub spill: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Pipeline {
    /// Up to `depth` consecutive tiles in flight (a figure in `tile`s, with its source like every other number);
    /// units pick the oldest ready task (fine-grained interleaving).
    Interleave(Fig),
    /// Each tile is fully produced and consumed before the next starts.
    Sequential,
    /// Up to `depth` tiles in flight, but without interleaving them on a unit: a unit starts no task of a tile
    /// while a task of an earlier tile placed on it has not started. Units still overlap one another (one array
    /// works on the next tile while another finishes this one), so only the latencies on a tile's own path
    /// through a unit are exposed.
    InOrder(Fig),
}
