//! One GPU run: plan the kernel, time each distinct work item with the engine, place the items on the SMs, and
//! report time, TFLOP/s, the analytical bound, per-unit utilization, the per-step cycle table and the unit that
//! binds.

use super::kernel::{self, Plan, Workload};
use super::{grid, Gpu};
use crate::arch::TICKS_PER_CYCLE;
use crate::run::RunError;
use crate::sim::{self, SimOptions, Tick};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct UnitRow {
    pub unit: String,
    /// Cycles one tile step (one Q tile × one K/V block) needs on this unit at peak, and as modelled.
    pub step_ideal: f64,
    pub step_cycles: f64,
    /// Busy fraction of this unit over the run, all SMs.
    pub utilization: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GpuReport {
    pub gpu: String,
    pub kernel: String,
    pub dtype: String,
    pub workload: Workload,
    pub params: BTreeMap<String, f64>,
    pub tile_m: u64,
    pub tile_n: u64,
    pub q_tiles: u64,
    pub ctas: u64,
    pub window: u32,
    pub items: u64,
    pub slots: u64,
    pub cycles: u64,
    pub bound_cycles: u64,
    pub seconds: f64,
    pub flops: f64,
    pub tflops: f64,
    pub percent_of_peak: f64,
    /// The unit with the most cycles per tile step.
    pub binds: String,
    pub units: Vec<UnitRow>,
    /// Shortest and longest work item, in cycles.
    pub item_cycles: (u64, u64),
    pub fits: Vec<kernel::Fit>,
    /// Unit figures replaced by `--set`: (name, the file's value, the value used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<(String, f64, f64)>,
    /// Board energy, calibrated against power: the GPU's TDP over the run time. No per-operation energies are
    /// published for these GPUs (gpus.md §5.4), so this is an explicit calibration, not a model of the units.
    pub energy_j: f64,
}

/// Attention FLOPs as the FA papers count them: 4·s²·d·h·b forward, halved under a causal mask.
pub fn attention_flops(w: &Workload) -> f64 {
    let f = 4.0 * (w.seq as f64).powi(2) * w.d as f64 * w.heads as f64 * w.batch as f64;
    if w.causal {
        f / 2.0
    } else {
        f
    }
}

/// Work items by number of K/V steps: (steps, count).
pub fn items(plan: &Plan, w: &Workload) -> Result<Vec<(u64, u64)>, RunError> {
    // Each factor is at most 10^12 (`kernel::plan`), so their product can exceed 64 bits.
    let rows = [plan.q, plan.ctas]
        .iter()
        .try_fold(plan.m, |r, &x| r.checked_mul(x))
        .ok_or_else(|| {
            RunError::Mapping(format!(
                "a work item of {} × {} × {} rows (M × Q × CTAs) does not fit in 64 bits",
                plan.m, plan.q, plan.ctas
            ))
        })?;
    let blocks = w.seq.div_ceil(rows);
    let full = w.seq.div_ceil(plan.n);
    let too_large = || {
        RunError::Mapping(format!(
            "too many work items: {} batch × {} heads × {blocks} Q blocks of {rows} rows does not fit in 64 bits",
            w.batch, w.heads
        ))
    };
    let per = w.batch.checked_mul(w.heads).ok_or_else(too_large)?;
    let all = blocks.checked_mul(per).ok_or_else(too_large)?;
    if !w.causal {
        return Ok(vec![(full, all)]);
    }
    // Each distinct causal length is simulated once, so their number bounds the run's cost: refuse what would take
    // minutes rather than hang. (Fitting the steady-state slope across lengths would lift this; not done yet.)
    if blocks > MAX_CAUSAL_LENGTHS {
        return Err(RunError::Mapping(format!(
            "a causal run simulates each of its Q blocks' lengths once, and seq {} has {blocks} blocks of {rows} \
             rows, more than the {MAX_CAUSAL_LENGTHS} einsim runs (seq up to {}); use a shorter sequence",
            w.seq,
            MAX_CAUSAL_LENGTHS.saturating_mul(rows)
        )));
    }
    // Block i attends to keys up to its last row: its diagonal blocks are charged whole.
    let mut by: BTreeMap<u64, u64> = BTreeMap::new();
    for i in 0..blocks {
        let steps = ((i + 1) * rows).div_ceil(plan.n).min(full);
        *by.entry(steps).or_default() += per;
    }
    Ok(by.into_iter().collect())
}

/// The most distinct causal item lengths a run simulates: about 2 s on one core at 0.12 ms each (FA4 on B200).
const MAX_CAUSAL_LENGTHS: u64 = 16_384;

/// Per-unit work of one item of `steps` steps, in ticks (as the engine counts it).
fn item_work(gpu: &Gpu, plan: &Plan, steps: u64) -> Vec<Tick> {
    let mut w = vec![0 as Tick; gpu.units.len()];
    for t in &plan.tasks {
        let n = if t.when == "Step" {
            steps * plan.q
        } else {
            plan.q
        };
        for p in &t.parts {
            w[p.unit] += kernel::ticks(p.cycles) as Tick * n as Tick;
        }
    }
    w
}

pub fn run(
    gpu: &Gpu,
    kernel_name: Option<&str>,
    w: &Workload,
    sets: &BTreeMap<String, f64>,
    opts: SimOptions,
) -> Result<GpuReport, RunError> {
    if w.seq == 0 || w.batch == 0 || w.heads == 0 || w.d == 0 {
        return Err(RunError::Mapping(format!(
            "seq, batch, heads and d must be at least 1 (got seq={}, batch={}, heads={}, d={})",
            w.seq, w.batch, w.heads, w.d
        )));
    }
    let plan = kernel::plan(gpu, kernel_name, w, sets)?;
    let slots = (gpu.sms / plan.ctas).max(1);
    let groups = items(&plan, w)?;
    let mut timed = vec![];
    let mut bound_total = vec![0 as Tick; gpu.units.len()];
    let mut bound_item: Tick = 0;
    for &(steps, count) in &groups {
        let prog = kernel::program(gpu, &plan, steps);
        let r = sim::simulate(&prog, opts).map_err(|e| match e {
            sim::SimError::TooLarge(m) => RunError::Mapping(m),
            sim::SimError::Internal(m) => RunError::Internal(m),
        })?;
        let work = item_work(gpu, &plan, steps);
        bound_item = bound_item.max(*work.iter().max().unwrap_or(&0));
        for (b, x) in bound_total.iter_mut().zip(&work) {
            *b += x * count as Tick;
        }
        timed.push((r.ticks, count));
    }
    let ticks = grid::lpt(&timed, slots);
    let bound = bound_total
        .iter()
        .map(|b| b.div_ceil(slots as Tick))
        .max()
        .unwrap_or(0)
        .max(bound_item);
    if ticks < bound {
        return Err(RunError::Internal(format!(
            "simulated {ticks} ticks is below the analytical bound {bound}"
        )));
    }
    let tpc = TICKS_PER_CYCLE as Tick;
    let cycles = u64::try_from(ticks.div_ceil(tpc))
        .map_err(|_| RunError::Mapping("the run's cycles exceed 2^64".into()))?;
    let seconds = cycles as f64 / gpu.clock_hz;
    let flops = attention_flops(w) * plan.flop_factor;
    let mut units = vec![];
    for (ui, u) in gpu.units.iter().enumerate() {
        let (mut ideal, mut cyc) = (0.0, 0.0);
        for t in plan.tasks.iter().filter(|t| t.when == "Step") {
            for p in t.parts.iter().filter(|p| p.unit == ui) {
                ideal += p.ideal;
                cyc += p.cycles;
            }
        }
        // Each item's work runs on each of its `ctas` SMs; utilization is over every SM of the chip.
        let busy = bound_total[ui] as f64 * plan.ctas as f64;
        units.push(UnitRow {
            unit: u.name.clone(),
            step_ideal: ideal,
            step_cycles: cyc,
            utilization: if ticks > 0 {
                busy / (ticks as f64 * gpu.sms as f64)
            } else {
                0.0
            },
        });
    }
    let binds = units
        .iter()
        .max_by(|a, b| a.step_cycles.total_cmp(&b.step_cycles))
        .map(|u| u.unit.clone())
        .unwrap_or_default();
    let tflops = flops / seconds / 1e12;
    let item_ticks: Vec<Tick> = timed.iter().map(|t| t.0).collect();
    let c = |t: Option<&Tick>| t.map_or(0, |t| t.div_ceil(tpc) as u64);
    Ok(GpuReport {
        gpu: gpu.name.clone(),
        kernel: plan.kernel.clone(),
        dtype: plan.dtype.clone(),
        workload: *w,
        params: plan.params.clone(),
        tile_m: plan.m,
        tile_n: plan.n,
        q_tiles: plan.q,
        ctas: plan.ctas,
        window: plan.window,
        items: groups.iter().map(|g| g.1).sum(),
        slots,
        cycles,
        bound_cycles: bound.div_ceil(tpc) as u64,
        seconds,
        flops,
        tflops,
        percent_of_peak: 100.0 * flops / seconds / peak(gpu, &plan),
        overrides: gpu.overrides.clone(),
        binds,
        units,
        item_cycles: (c(item_ticks.iter().min()), c(item_ticks.iter().max())),
        fits: plan.fits.clone(),
        energy_j: gpu.tdp * seconds,
    })
}

/// The chip's peak for this plan: the file's `peak`, scaled as `--set` scaled the MMA rate the plan runs at (a
/// tensor core twice as fast has twice the peak, so percent of peak stays a fraction of what the chip could do).
fn peak(gpu: &Gpu, plan: &Plan) -> f64 {
    let mma_units: Vec<&str> = plan
        .tasks
        .iter()
        .flat_map(|t| &t.parts)
        .map(|p| gpu.units[p.unit].name.as_str())
        .collect();
    gpu.overrides
        .iter()
        .filter(|(key, _, _)| {
            key.split_once(".flops.")
                .is_some_and(|(u, dtype)| dtype == plan.dtype && mma_units.contains(&u))
        })
        .fold(gpu.peak_flops, |p, (_, own, used)| p * used / own)
}

/// Plain-text rendering.
pub fn text(r: &GpuReport) -> String {
    use std::fmt::Write;
    let w = &r.workload;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {} ({}): seq {}, batch {}, heads {}, head dim {}, {}",
        r.kernel,
        r.gpu,
        r.dtype,
        w.seq,
        w.batch,
        w.heads,
        w.d,
        if w.causal { "causal" } else { "non-causal" }
    );
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(s, "  parameters: {}", params.join(", "));
    let _ = writeln!(
        s,
        "  tile {}×{} ({} Q tiles per item, {} SM(s) per item, {} steps in flight); {} items on {} slots ({:.2} waves)",
        r.tile_m, r.tile_n, r.q_tiles, r.ctas, r.window, r.items, r.slots, r.items as f64 / r.slots as f64
    );
    let _ = writeln!(
        s,
        "  time: {} cycles ({:.3} ms), bound {} cycles; items {}..{} cycles",
        r.cycles,
        r.seconds * 1e3,
        r.bound_cycles,
        r.item_cycles.0,
        r.item_cycles.1
    );
    let _ = writeln!(
        s,
        "  throughput: {:.1} TFLOP/s ({:.1}% of the {} dense peak)",
        r.tflops, r.percent_of_peak, r.dtype
    );
    for (key, own, used) in &r.overrides {
        let _ = writeln!(s, "  set: {key} = {used} (the file's {own})");
    }
    let _ = writeln!(
        s,
        "  energy: {:.3} J (calibration: the board at its TDP for the run time; no per-op energies are published)",
        r.energy_j
    );
    let _ = writeln!(
        s,
        "  per tile step (one Q tile × one K/V block), binding unit: {}",
        r.binds
    );
    let _ = writeln!(
        s,
        "    {:<8} {:>10} {:>10} {:>8}",
        "unit", "at peak", "modelled", "util"
    );
    for u in &r.units {
        let _ = writeln!(
            s,
            "    {:<8} {:>10.1} {:>10.1} {:>7.1}%",
            u.unit,
            u.step_ideal,
            u.step_cycles,
            100.0 * u.utilization
        );
    }
    for f in &r.fits {
        let _ = writeln!(
            s,
            "  {} in {}: {} of {} B",
            f.what,
            f.unit,
            f.bytes.ceil(),
            f.capacity
        );
    }
    s
}
