//! Hardware descriptions: compute units, storage levels, clock, energy/area tables and the binding.
//!
//! An arch file (`arch/*.ron`) is read by [`load`] into a [`ArchFile`] (the RON shape, numbers still as
//! expressions) and resolved against its parameters (and `--set` overrides) into an [`Arch`]. Every hardware
//! number is a [`Fig`]: an expression, its unit and its source. A missing energy entry is an error, never a
//! default.

mod energy;
mod file;
mod resolve;

pub use energy::{ActionEnergy, AreaEntry, EnergyTable};
pub use file::*;
pub use resolve::{
    load, load_energy, load_energy_resolved, load_parsed, parse, resolve, ArchError,
};

use serde::Serialize;
use std::collections::BTreeMap;

/// One simulated tick is this fraction of a clock cycle. Compute work is whole cycles; memory transfers take
/// fractional cycles, which ticks keep exact in integer arithmetic (so steady-state extrapolation is exact).
pub const TICKS_PER_CYCLE: u64 = 1024;

/// A resolved hardware description.
#[derive(Clone, Debug, Serialize)]
pub struct Arch {
    pub name: String,
    /// The file it was loaded from (`arch/fusemax.ron`), so mapping errors, which have no spans, can say where
    /// to look. Empty for an arch resolved without a file.
    #[serde(skip)]
    pub path: String,
    pub description: String,
    pub source: String,
    /// Arch parameters after overrides.
    pub params: BTreeMap<String, i64>,
    pub clock_hz: f64,
    pub word_bytes: u64,
    pub technology: String,
    pub units: Vec<Unit>,
    pub storage: Vec<Storage>,
    pub energy: EnergyTable,
    /// One binding per cascade the design runs; the first is the default.
    pub bindings: Vec<BindingFile>,
    /// How a run chooses among the bindings of one cascade that map.
    pub select: Select,
}

/// A compute unit: a 2D spatial array, a 1D array, or a fixed-function unit (an exp unit, a top-k engine).
#[derive(Clone, Debug, Serialize)]
pub struct Unit {
    pub name: String,
    pub kind: UnitKind,
    /// Spatial extent per dimension (2 for a 2D array, 1 for a 1D array), in PEs.
    pub shape: Vec<u64>,
    /// Pipeline fill/drain latency: cycles from a task's last issue until its result reaches another unit.
    pub latency_cycles: u64,
    /// Cost of each op kind per element on one PE.
    pub ops: BTreeMap<String, OpCost>,
    /// Per-op register-file traffic (the local store each PE reads and writes per op).
    pub local: Option<LocalAccess>,
    /// Area table entries making up one PE.
    pub pe_area: Vec<String>,
    /// A top-k engine's selection model (`Some` exactly for [`UnitKind::TopkEngine`]).
    pub selection: Option<Selection>,
}

/// A resolved [`SelectionFile`].
#[derive(Clone, Debug, Serialize)]
pub struct Selection {
    pub round_overhead_cycles: u64,
    pub seed: u64,
    pub scores: ScoreDistribution,
    pub source: String,
}

impl Arch {
    /// Chip area by unit and storage level, in mm²: each unit's PE area (its `pe_area` entries) times its PEs,
    /// and each storage level's own area entry. It depends on the arch alone, so a sweep can test an area
    /// constraint before it simulates a point.
    pub fn area_mm2(&self) -> BTreeMap<String, f64> {
        let mut area_mm2 = BTreeMap::new();
        for u in &self.units {
            let per_pe: f64 = u
                .pe_area
                .iter()
                .filter_map(|a| self.energy.area.get(a))
                .map(|a| a.um2)
                .sum();
            // `+ 0.0` turns the empty sum (-0.0) into 0.
            area_mm2.insert(u.name.clone(), per_pe * u.pes() as f64 / 1e6 + 0.0);
        }
        for s in &self.storage {
            if let Some(a) = s.area.as_ref().and_then(|a| self.energy.area.get(a)) {
                area_mm2.insert(s.name.clone(), a.um2 / 1e6);
            }
        }
        area_mm2
    }
}

impl Unit {
    pub fn pes(&self) -> u64 {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OpCost {
    /// Cycles one PE spends per element.
    pub cycles: f64,
    /// Energy-table actions charged per element.
    pub actions: BTreeMap<String, f64>,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LocalAccess {
    pub storage: String,
    pub reads_per_op: f64,
    pub writes_per_op: f64,
    pub source: String,
}

/// A storage level: register file, SRAM buffer, tensor memory or DRAM.
#[derive(Clone, Debug, Serialize)]
pub struct Storage {
    pub name: String,
    pub kind: StorageKind,
    /// Capacity in bytes (per instance for register files).
    pub capacity_bytes: Option<u64>,
    /// Bytes per cycle.
    pub bandwidth: f64,
    pub latency_cycles: u64,
    /// Bytes moved by one access (the unit of the read/write energies).
    pub access_bytes: u64,
    pub read_action: String,
    pub write_action: String,
    /// Area table entry for the whole level (if it has one).
    pub area: Option<String>,
    /// It adds partial results in on write (an accumulator): an update costs a write and no read-back.
    pub accumulates_on_write: bool,
}
