//! The RON shape of a GPU file (`arch/gpu/*.ron`): the chip, one SM's units, and the kernels (bindings) it runs.
//! Numbers stay [`Fig`]s (expression, unit, source) until [`super::load`] resolves them.

pub use crate::arch::Fig;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Gpu")]
pub struct GpuFile {
    pub name: String,
    pub description: String,
    pub source: String,
    /// Compute capability as PTX names it (`sm_80`, `sm_90`, `sm_100`): kernels name the features they need.
    pub generation: String,
    /// Instruction families this generation has (`mma_sync`, `wgmma`, `tcgen05`, `tmem`, `tma`, `cta_pair`).
    pub features: Vec<String>,
    /// Named figures the others may use (`sms`, `clock`, ...).
    #[serde(default)]
    pub params: BTreeMap<String, Fig>,
    /// Params that must lie in a range: (name, low, high, why), checked whether from the file or `--set`.
    #[serde(default)]
    pub ranges: Vec<(String, f64, f64, String)>,
    /// The clock every per-cycle figure is counted in.
    pub clock: Fig,
    pub sms: Fig,
    /// Dense 16-bit tensor-core peak of the chip, the denominator of "percent of peak".
    pub peak: Fig,
    pub hbm: Fig,
    pub l2: Fig,
    pub tdp: Fig,
    /// One SM's units, by name: each becomes one server of the engine.
    pub units: BTreeMap<String, UnitFile>,
    pub kernels: Vec<KernelFile>,
}

/// A unit kind (Rust: `gpu::units`) with its figures.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum UnitFile {
    /// Matrix unit: FLOPs per cycle per data type; where operand A may come from; rows per MMA instruction
    /// (operand B is read once per that many rows of A); the fraction of peak a sustained GEMM reaches.
    TensorCore {
        flops: BTreeMap<String, Fig>,
        a_from: Vec<String>,
        b_from: Vec<String>,
        instr_m: Fig,
        sustained: Fig,
        latency: Fig,
    },
    /// A pipelined lane array (MUFU, FMA, ALU): operations (lane-ops) per cycle, and lane-ops per warp
    /// instruction (what it costs the SM's `Issue` unit).
    Pipe {
        rate: Fig,
        per_instr: Fig,
        latency: Fig,
    },
    /// The SM's warp schedulers: warp instructions issued per cycle. Every Pipe task also takes issue slots.
    Issue { rate: Fig },
    /// A storage level with a port: capacity and bytes per cycle (shared memory, tensor memory, register file,
    /// the SM's share of L2).
    Memory {
        capacity: Fig,
        bandwidth: Fig,
        latency: Fig,
    },
}

/// A kernel: how one attention tile step uses the SM's units. All data: FA2, FA3 and FA4 differ only here.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Kernel")]
pub struct KernelFile {
    pub name: String,
    pub source: String,
    /// Features of the GPU this kernel's instructions need.
    pub requires: Vec<String>,
    /// Data type of the MMAs (a key of the tensor core's `flops`).
    pub dtype: String,
    /// Bytes per element of Q, K, V, P and O.
    pub elem: Fig,
    /// Kernel knobs (`emu`, `rescale`, `cta_group`), overridable with `--set`. May use `d` and `causal`.
    #[serde(default)]
    pub params: BTreeMap<String, Fig>,
    /// Parameters that must lie in a range: (name, low, high, why).
    #[serde(default)]
    pub ranges: Vec<(String, f64, f64, String)>,
    /// Parameters that must be whole numbers: counts (stages, warps, CTAs) and on/off switches, where a fraction
    /// has no meaning (half a pipeline stage, a switch half on).
    #[serde(default)]
    pub whole: Vec<String>,
    /// Tile per head dim; a head dim not listed is not supported.
    pub tiles: Vec<TileFile>,
    /// Tile steps in flight on one SM (ping-pong Q tiles, resident CTAs, pipeline stages).
    pub window: Fig,
    /// SMs that run one work item together (2 for a 2-CTA pair).
    pub ctas: Fig,
    /// FLOPs the kernel is credited with, per forward attention FLOP (4·s²·d·h·b, halved causal): 2.5 for a
    /// backward pass as the FA papers count it. Default 1.
    #[serde(default)]
    pub flops: Option<Fig>,
    /// What must fit in each storage unit.
    pub fits: Vec<FitFile>,
    /// The work of one tile step (one Q tile against one K/V block).
    pub tasks: Vec<TaskFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Tile")]
pub struct TileFile {
    pub d: u64,
    /// Rows of one Q tile (one step's M), K/V rows per step (N), Q tiles per CTA.
    pub m: String,
    pub n: String,
    pub q: String,
    /// A different (m, n, q) under a causal mask.
    #[serde(default)]
    pub causal: Option<(String, String, String)>,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Fit")]
pub struct FitFile {
    pub unit: String,
    pub bytes: String,
    pub what: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum When {
    /// Every tile step.
    #[default]
    Step,
    /// Once per Q tile, at its first K/V block (prologue: load Q).
    First,
    /// Once per Q tile, at its last K/V block (epilogue: normalise and store O).
    Last,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Task")]
pub struct TaskFile {
    pub name: String,
    pub unit: String,
    #[serde(default)]
    pub when: When,
    pub work: Work,
    /// Tasks of the same step this one waits for; `name@prev` is that task of the same Q tile's previous step.
    #[serde(default)]
    pub after: Vec<String>,
    /// An expression over the kernel's parameters, 0 or 1 (anything else is an error); where it is 0 the task is not there at all: it does no work and
    /// its consumers wait neither for it nor for what it waits for (a structure an ablation removes, e.g. FA3's
    /// consumer-issued loads, there only without warp specialisation). Default: always there.
    #[serde(default)]
    pub on: Option<String>,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize)]
pub enum Work {
    /// A matrix multiply m×n×k on a tensor core; `a` and `b` name where the operands come from (a Memory unit
    /// or `rf`); `b_share`: SMs sharing operand B (2-CTA), each reading its part.
    Mma {
        m: String,
        n: String,
        k: String,
        a: String,
        b: String,
        #[serde(default = "one")]
        b_share: String,
    },
    /// Operations on a Pipe unit.
    Ops(String),
    /// Bytes through a Memory unit.
    Bytes(String),
}

fn one() -> String {
    "1".into()
}
