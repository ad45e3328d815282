//! Reports: typed results of a run, computed from the program and the simulated time, and rendered by printers
//! ([`text`], [`markdown`]; JSON is the serde form). Nothing here simulates or does I/O.

pub mod markdown;
pub mod passes;
pub mod text;

use crate::arch::{Arch, StorageKind, TICKS_PER_CYCLE};
use crate::mapping::{Padded, Program, StageProgram, TemplateKind};
use crate::passes::PassReport;
use crate::sim::SimResult;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub arch: String,
    pub workload: String,
    pub cascade: String,
    /// Which of the arch's bindings for the cascade was used (empty when it has one unnamed binding).
    pub binding: String,
    /// Workload and arch parameters the run used.
    pub params: BTreeMap<String, i64>,
    /// Sizes chosen by the mapping (partition parts such as `P1`).
    pub mapping: BTreeMap<String, u64>,
    /// Ranks whose last tile is partial (a ragged length, or decode's one query in a 256-query tile). Every tile
    /// takes a whole tile's time, so cycles include the padded points; utilization, points, traffic and energy
    /// count the real points only. Omitted from JSON when nothing is padded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub padding: Vec<Padded>,
    pub cycles: u64,
    pub seconds: f64,
    pub clock_hz: f64,
    /// Unit → share of its PE-cycles doing useful compute: compute ticks (not waits on buffer bandwidth) × the
    /// fraction of its PEs in use, over the run.
    pub utilization: BTreeMap<String, f64>,
    pub units: Vec<UnitReport>,
    pub einsums: Vec<EinsumReport>,
    /// Storage level → bytes read plus written. 128 bits: a billion-token context moves more than 2^64 B
    /// through the buffer.
    pub traffic_bytes: BTreeMap<String, u128>,
    pub traffic: Vec<TrafficReport>,
    pub energy_pj: EnergyReport,
    pub passes: BTreeMap<String, u32>,
    pub bound: Bound,
    pub stages: Vec<StageReport>,
    /// Chip area by component, mm² (compute units' PEs and storage levels with an area entry).
    pub area_mm2: BTreeMap<String, f64>,
    /// Average power over the run, W: energy over time, by component and by group.
    pub power_w: PowerReport,
}

/// Average power (energy over the run's time), W.
#[derive(Clone, Debug, Serialize)]
pub struct PowerReport {
    pub total: f64,
    /// Unit or storage level → W.
    pub by_component: BTreeMap<String, f64>,
    /// `logic` (compute units), `register_file`, `sram` (buffers and tensor memories) and `dram` → W.
    pub by_group: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnitReport {
    pub name: String,
    pub pes: u64,
    pub busy_cycles: u64,
    pub utilization: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EinsumReport {
    pub name: String,
    pub unit: String,
    /// Cycles its tasks occupied the unit.
    pub cycles: u64,
    /// Its share of the unit over the run (compute time × PE fraction / total); the unit's utilization is the sum.
    pub utilization: f64,
    /// Fraction of the unit's PEs each of its tasks keeps busy, averaged over the folds of a folded tile.
    pub pe_fraction: f64,
    pub tasks: u64,
    /// Iteration-space points computed.
    pub points: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrafficReport {
    pub level: String,
    pub read_bytes: u128,
    pub write_bytes: u128,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnergyReport {
    pub total: f64,
    /// Unit or storage level → pJ.
    pub by_component: BTreeMap<String, f64>,
    /// `component:action` → pJ.
    pub by_action: BTreeMap<String, f64>,
    /// Einsum (or `load X` / `store X`) → pJ.
    pub by_einsum: BTreeMap<String, f64>,
}

/// The analytical lower bound: per stage, the busiest server's work (compute cycles, or bytes over bandwidth);
/// stages are sequential, so their bounds add up.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    pub cycles: u64,
    /// The resource that sets the bound in the stage that dominates it.
    pub limiter: String,
    /// Simulated cycles / bound (≥ 1 always; below 1 is a bug and fails the run).
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub cycles: u64,
    pub bound_cycles: u64,
    pub limiter: String,
    pub steps: u64,
    pub simulated_steps: u64,
    /// Present when the stage found no steady state within the engine's budget: `cycles` is then an estimate
    /// (the prefix's steady rate) inside this interval, which holds the true value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Interval>,
    /// The part of a tensor that overflowed the stage's buffer and lives in memory (a stage's `spill`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill: Option<crate::mapping::Spill>,
}

/// Where a stage's true latency lies when it was not simulated to the end.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Interval {
    pub low_cycles: u64,
    pub high_cycles: u64,
    /// Steps simulated event by event before the estimate.
    pub prefix_steps: u64,
}

/// Saturating accumulation: a sum past 2^128 stays at the maximum, which [`fits`] then reports.
fn add(acc: &mut u128, v: u128) {
    *acc = acc.saturating_add(v);
}

/// Everything a run needs to be reported.
pub struct RunFacts<'a> {
    pub arch: &'a Arch,
    pub workload: &'a str,
    pub cascade: &'a str,
    pub binding: &'a str,
    pub params: BTreeMap<String, i64>,
    pub program: &'a Program,
    pub sim: &'a SimResult,
    pub passes: &'a PassReport,
}

/// Why a report could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum BuildError {
    /// A count does not fit the report's 64-bit fields: the configuration is too large (invalid input).
    TooLarge(String),
    /// The simulation beat its own analytical bound: an engine bug.
    BelowBound(String),
}

/// Whole cycles of a tick count, or the error naming what overflowed.
fn cycles(ticks: u128, what: &str) -> Result<u64, BuildError> {
    cycles_of(ticks, || what.to_string())
}

/// [`cycles`] with the name made only when the value does not fit (per template, where formatting every name
/// cost more than the check).
fn cycles_of(ticks: u128, what: impl FnOnce() -> String) -> Result<u64, BuildError> {
    fits_of(ticks.div_ceil(TICKS_PER_CYCLE as u128), what, "cycles")
}

/// A count narrowed to the report's 64 bits, `what` named only when it does not fit. Counts are accumulated in
/// 128 bits (saturating), so only this narrowing can fail, and it says what did not fit.
fn fits_of(v: u128, what: impl FnOnce() -> String, unit: &str) -> Result<u64, BuildError> {
    u64::try_from(v).map_err(|_| {
        let v = if v == u128::MAX {
            "at least 2^128".to_string()
        } else {
            format!("{v}")
        };
        BuildError::TooLarge(format!(
            "{} is {v} {unit}, more than the 2^64 - 1 {unit} a report holds",
            what()
        ))
    })
}

/// The padded ranks in one line, for the printers: `P = 1 runs as 256 (P2 × P1 × P0 = 1 × 1 × 256)`, and what
/// that means for the numbers below it.
pub fn padding(padded: &[Padded]) -> String {
    let ranks: Vec<String> = padded
        .iter()
        .map(|p| {
            let names: Vec<&str> = p.parts.iter().map(|(n, _)| n.as_str()).collect();
            let sizes: Vec<String> = p.parts.iter().map(|(_, v)| v.to_string()).collect();
            let covered = p.parts.iter().fold(1u64, |a, (_, v)| a.saturating_mul(*v));
            format!(
                "{} = {} runs as {covered} ({} = {})",
                p.rank,
                p.size,
                names.join(" × "),
                sizes.join(" × ")
            )
        })
        .collect();
    format!(
        "{}; each last tile is partial: it takes a whole tile's time, and traffic, energy and utilization count its real points",
        ranks.join(", ")
    )
}

/// The parameters of a run, for the error that says a result is too large to report.
pub fn too_large_context(params: &BTreeMap<String, i64>) -> String {
    let ps: Vec<String> = params
        .iter()
        .filter(|(k, _)| !k.contains('.'))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("; reduce the workload ({})", ps.join(", "))
}

/// A stage's analytical lower bound: its busiest server (a unit or memory channel) and that server's work in
/// ticks, every task's work over all its instances. Stages run one after another, so their bounds add up.
pub fn stage_bound(st: &StageProgram) -> (usize, u128) {
    let mut per_server: BTreeMap<usize, u128> = BTreeMap::new();
    for t in &st.templates {
        let work = t.instances_wide(&st.loops).saturating_mul(t.work as u128);
        let w = per_server.entry(t.server).or_default();
        *w = w.saturating_add(work);
    }
    per_server
        .into_iter()
        .max_by_key(|(_, w)| *w)
        .unwrap_or((0, 0))
}

/// A program's analytical lower bound in cycles (each stage's rounded up, as the engine starts stages on cycle
/// boundaries): what no schedule can beat, and what a mapper's analytical model ranks candidate mappings by.
pub fn lower_bound_cycles(p: &Program) -> u128 {
    p.stages
        .iter()
        .map(|st| stage_bound(st).1.div_ceil(TICKS_PER_CYCLE as u128))
        .fold(0, u128::saturating_add)
}

/// Compute the report. Fails if a count does not fit 64 bits, or if the simulation beat its own lower bound (an
/// engine bug).
pub fn build(f: RunFacts) -> Result<RunReport, BuildError> {
    build_checked(&f).map_err(|e| match e {
        BuildError::TooLarge(m) => BuildError::TooLarge(m + &too_large_context(&f.params)),
        other => other,
    })
}

fn build_checked(f: &RunFacts) -> Result<RunReport, BuildError> {
    let p = f.program;
    let total_cycles = cycles(f.sim.ticks, "the latency")?.max(1);
    let total_ticks = total_cycles as f64 * TICKS_PER_CYCLE as f64;
    // Keyed by borrowed names while summing (a report sums every template of a program; owned keys and formatted
    // action names per template were a tenth of a generation run), owned once at the end.
    let mut busy: BTreeMap<&str, (u128, f64)> = BTreeMap::new();
    let mut einsums: Vec<EinsumReport> = Vec::new();
    let mut read_b: BTreeMap<&str, u128> = BTreeMap::new();
    let mut write_b: BTreeMap<&str, u128> = BTreeMap::new();
    let mut by_component: BTreeMap<&str, f64> = BTreeMap::new();
    let mut by_action: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut by_einsum: BTreeMap<&str, f64> = BTreeMap::new();
    let mut stages = Vec::new();
    let mut bound_ticks: u128 = 0;
    let mut limiter = (0u128, String::new());
    for (si, st) in p.stages.iter().enumerate() {
        for t in &st.templates {
            let n = t.instances_wide(&st.loops);
            let server = &p.servers[t.server];
            let work = n.saturating_mul(t.work as u128);
            let b = busy.entry(&server.name).or_default();
            add(&mut b.0, work);
            // Utilization, points and traffic count real points; a padded tile's time stays whole.
            let real = t.real.as_f64();
            b.1 += (n * t.useful as u128) as f64 * t.pe_fraction * real;
            for (write, bytes, total) in [
                (false, &t.reads, &mut read_b),
                (true, &t.writes, &mut write_b),
            ] {
                for (lvl, b) in bytes {
                    let padding: u128 = t
                        .padded
                        .iter()
                        .filter(|p| p.write == write && &p.level == lvl)
                        .map(|p| {
                            let whole = n.saturating_mul(p.bytes as u128);
                            whole.saturating_sub(p.real.of(whole))
                        })
                        .sum();
                    let whole = n.saturating_mul(*b as u128);
                    add(
                        total.entry(lvl.as_str()).or_default(),
                        whole.saturating_sub(padding),
                    );
                }
            }
            let mut e_total = 0.0;
            for ((component, action), count) in &t.actions {
                let pj = f.arch.energy.actions.get(action).map_or(0.0, |a| a.pj) * count * n as f64;
                *by_component.entry(component).or_default() += pj;
                *by_action.entry((component, action)).or_default() += pj;
                e_total += pj;
            }
            *by_einsum.entry(&t.name).or_default() += e_total;
            if let TemplateKind::Compute(_) = t.kind {
                let too_large = |what: &str| format!("Einsum `{}`'s {what}", t.name);
                einsums.push(EinsumReport {
                    name: t.name.clone(),
                    unit: server.name.clone(),
                    cycles: cycles_of(work, || too_large("busy time"))?,
                    utilization: (n * t.useful as u128) as f64 * t.pe_fraction * real / total_ticks,
                    pe_fraction: t.pe_fraction,
                    tasks: fits_of(n, || too_large("task count"), "tasks")?,
                    points: n as f64 * t.elements as f64 * real,
                });
            }
        }
        let (srv, ticks) = stage_bound(st);
        let name = p.servers.get(srv).map_or(String::new(), |s| s.name.clone());
        if ticks > limiter.0 {
            limiter = (ticks, name.clone());
        }
        // Stages start on cycle boundaries (the engine rounds each stage up), so their bounds round the same way
        // and add up.
        let bound = cycles(ticks, &format!("stage `{}`'s bound", st.name))?;
        add(&mut bound_ticks, bound as u128 * TICKS_PER_CYCLE as u128);
        let st_time = &f.sim.stages[si];
        stages.push(StageReport {
            name: st.name.clone(),
            cycles: cycles(st_time.ticks, &format!("stage `{}`'s latency", st.name))?,
            bound_cycles: bound,
            limiter: name,
            steps: st_time.steps,
            simulated_steps: st_time.simulated_steps,
            estimate: st_time
                .estimate
                .map(|e| -> Result<_, BuildError> {
                    Ok(Interval {
                        low_cycles: cycles(e.low, "the estimate's low end")?,
                        high_cycles: cycles(e.high, "the estimate's high end")?,
                        prefix_steps: e.prefix_steps,
                    })
                })
                .transpose()?,
            spill: st.spill.clone(),
        });
    }
    let bound_total = cycles(bound_ticks, "the bound")?;
    if total_cycles < bound_total {
        return Err(BuildError::BelowBound(format!(
            "simulated {total_cycles} cycles is below the analytical bound {bound_total} ({})",
            limiter.1
        )));
    }
    let busy: BTreeMap<&str, (u64, f64)> = busy
        .into_iter()
        .map(|(k, (t, w))| Ok((k, (cycles(t, &format!("`{k}`'s busy time"))?, w))))
        .collect::<Result<_, BuildError>>()?;
    let units: Vec<UnitReport> = p
        .servers
        .iter()
        .map(|s| {
            let (b, w) = busy.get(s.name.as_str()).copied().unwrap_or((0, 0.0));
            let pes = f
                .arch
                .units
                .iter()
                .find(|u| u.name == s.name)
                .map_or(1, |u| u.pes());
            UnitReport {
                name: s.name.clone(),
                pes,
                busy_cycles: b,
                utilization: w / total_ticks,
            }
        })
        .collect();
    let levels: Vec<&str> = read_b
        .keys()
        .chain(write_b.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let traffic: Vec<TrafficReport> = levels
        .iter()
        .map(|l| TrafficReport {
            level: l.to_string(),
            read_bytes: read_b.get(l).copied().unwrap_or(0),
            write_bytes: write_b.get(l).copied().unwrap_or(0),
        })
        .collect();
    let area_mm2 = f.arch.area_mm2();
    let seconds = total_cycles as f64 / f.arch.clock_hz;
    let watts = |pj: f64| {
        if seconds > 0.0 {
            pj * 1e-12 / seconds
        } else {
            0.0
        }
    };
    let mut power_w = PowerReport {
        total: watts(by_component.values().sum()),
        by_component: BTreeMap::new(),
        by_group: BTreeMap::new(),
    };
    for (c, pj) in &by_component {
        let group = match f.arch.storage.iter().find(|s| s.name == *c).map(|s| s.kind) {
            None => "logic",
            Some(StorageKind::RegisterFile) => "register_file",
            Some(StorageKind::Sram) | Some(StorageKind::TensorMemory) => "sram",
            Some(StorageKind::Dram) => "dram",
        };
        power_w.by_component.insert(c.to_string(), watts(*pj));
        *power_w.by_group.entry(group.to_string()).or_default() += watts(*pj);
    }
    Ok(RunReport {
        arch: f.arch.name.clone(),
        workload: f.workload.to_string(),
        cascade: f.cascade.to_string(),
        binding: f.binding.to_string(),
        params: f.params.clone(),
        mapping: p.chosen.clone(),
        padding: p.padding.clone(),
        cycles: total_cycles,
        seconds: total_cycles as f64 / f.arch.clock_hz,
        clock_hz: f.arch.clock_hz,
        utilization: units
            .iter()
            .filter(|u| !p.servers.iter().any(|s| s.name == u.name && s.is_memory))
            .map(|u| (u.name.clone(), u.utilization))
            .collect(),
        units,
        einsums,
        traffic_bytes: traffic
            .iter()
            .map(|t| (t.level.clone(), t.read_bytes.saturating_add(t.write_bytes)))
            .collect(),
        traffic,
        energy_pj: EnergyReport {
            total: by_component.values().sum(),
            by_component: by_component
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            by_action: by_action
                .into_iter()
                .map(|((c, a), v)| (format!("{c}:{a}"), v))
                .collect(),
            by_einsum: by_einsum
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        passes: f.passes.passes.clone(),
        bound: Bound {
            cycles: bound_total,
            limiter: limiter.1,
            ratio: total_cycles as f64 / bound_total.max(1) as f64,
        },
        stages,
        area_mm2,
        power_w,
    })
}
