//! Reports: typed results of a run, computed from the program and the simulated time, and rendered by printers
//! ([`text`], [`markdown`]; JSON is the serde form). Nothing here simulates or does I/O.

pub mod markdown;
pub mod passes;
pub mod text;

use crate::arch::{Arch, TICKS_PER_CYCLE};
use crate::mapping::{Program, TemplateKind};
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
    pub cycles: u64,
    pub seconds: f64,
    pub clock_hz: f64,
    /// Unit → share of its PE-cycles doing useful compute: compute ticks (not waits on buffer bandwidth) × the
    /// fraction of its PEs in use, over the run.
    pub utilization: BTreeMap<String, f64>,
    pub units: Vec<UnitReport>,
    pub einsums: Vec<EinsumReport>,
    /// Storage level → bytes read plus written.
    pub traffic_bytes: BTreeMap<String, u64>,
    pub traffic: Vec<TrafficReport>,
    pub energy_pj: EnergyReport,
    pub passes: BTreeMap<String, u32>,
    pub bound: Bound,
    pub stages: Vec<StageReport>,
    /// Chip area by component, mm² (compute units' PEs and storage levels with an area entry).
    pub area_mm2: BTreeMap<String, f64>,
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
    pub read_bytes: u64,
    pub write_bytes: u64,
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

fn cycles(ticks: u64) -> u64 {
    ticks.div_ceil(TICKS_PER_CYCLE)
}

/// Compute the report. Returns `Err` if the simulation beat its own lower bound (an engine bug).
pub fn build(f: RunFacts) -> Result<RunReport, String> {
    let p = f.program;
    let total_cycles = cycles(f.sim.ticks).max(1);
    let mut busy: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut einsums: Vec<EinsumReport> = Vec::new();
    let mut read_b: BTreeMap<String, u64> = BTreeMap::new();
    let mut write_b: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_component: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_action: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_einsum: BTreeMap<String, f64> = BTreeMap::new();
    let mut stages = Vec::new();
    let mut bound_total = 0;
    let mut limiter = (0u64, String::new());
    for (si, st) in p.stages.iter().enumerate() {
        let mut per_server: BTreeMap<usize, u64> = BTreeMap::new();
        for t in &st.templates {
            let n = t.instances(&st.loops);
            let server = &p.servers[t.server];
            let work = n * t.work;
            *per_server.entry(t.server).or_default() += work;
            let b = busy.entry(server.name.clone()).or_default();
            b.0 += work;
            b.1 += (n * t.useful) as f64 * t.pe_fraction;
            for (lvl, bytes) in &t.reads {
                *read_b.entry(lvl.clone()).or_default() += n * bytes;
            }
            for (lvl, bytes) in &t.writes {
                *write_b.entry(lvl.clone()).or_default() += n * bytes;
            }
            let mut e_total = 0.0;
            for ((component, action), count) in &t.actions {
                let pj = f.arch.energy.actions.get(action).map_or(0.0, |a| a.pj) * count * n as f64;
                *by_component.entry(component.clone()).or_default() += pj;
                *by_action
                    .entry(format!("{component}:{action}"))
                    .or_default() += pj;
                e_total += pj;
            }
            *by_einsum.entry(t.name.clone()).or_default() += e_total;
            if let TemplateKind::Compute(_) = t.kind {
                einsums.push(EinsumReport {
                    name: t.name.clone(),
                    unit: server.name.clone(),
                    cycles: cycles(work),
                    utilization: (n * t.useful) as f64 * t.pe_fraction
                        / (total_cycles * TICKS_PER_CYCLE) as f64,
                    pe_fraction: t.pe_fraction,
                    tasks: n,
                    points: n as f64 * t.elements as f64,
                });
            }
        }
        let (&srv, &ticks) = per_server
            .iter()
            .max_by_key(|(_, w)| **w)
            .unwrap_or((&0, &0));
        let bound = cycles(ticks);
        let name = p.servers.get(srv).map_or(String::new(), |s| s.name.clone());
        if bound > limiter.0 {
            limiter = (bound, name.clone());
        }
        bound_total += bound;
        let st_time = &f.sim.stages[si];
        stages.push(StageReport {
            name: st.name.clone(),
            cycles: cycles(st_time.ticks),
            bound_cycles: bound,
            limiter: name,
            steps: st_time.steps,
            simulated_steps: st_time.simulated_steps,
        });
    }
    if total_cycles < bound_total {
        return Err(format!(
            "internal error: simulated {total_cycles} cycles is below the analytical bound {bound_total} ({})",
            limiter.1
        ));
    }
    let units: Vec<UnitReport> = p
        .servers
        .iter()
        .map(|s| {
            let (b, w) = busy.get(&s.name).copied().unwrap_or((0, 0.0));
            let pes = f
                .arch
                .units
                .iter()
                .find(|u| u.name == s.name)
                .map_or(1, |u| u.pes());
            UnitReport {
                name: s.name.clone(),
                pes,
                busy_cycles: cycles(b),
                utilization: w / (total_cycles * TICKS_PER_CYCLE) as f64,
            }
        })
        .collect();
    let levels: Vec<String> = read_b
        .keys()
        .chain(write_b.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let traffic: Vec<TrafficReport> = levels
        .iter()
        .map(|l| TrafficReport {
            level: l.clone(),
            read_bytes: read_b.get(l).copied().unwrap_or(0),
            write_bytes: write_b.get(l).copied().unwrap_or(0),
        })
        .collect();
    let mut area_mm2 = BTreeMap::new();
    for u in &f.arch.units {
        let per_pe: f64 = u
            .pe_area
            .iter()
            .filter_map(|a| f.arch.energy.area.get(a))
            .map(|a| a.um2)
            .sum();
        // `+ 0.0` turns the empty sum (-0.0) into 0.
        area_mm2.insert(u.name.clone(), per_pe * u.pes() as f64 / 1e6 + 0.0);
    }
    for s in &f.arch.storage {
        if let Some(a) = s.area.as_ref().and_then(|a| f.arch.energy.area.get(a)) {
            area_mm2.insert(s.name.clone(), a.um2 / 1e6);
        }
    }
    Ok(RunReport {
        arch: f.arch.name.clone(),
        workload: f.workload.to_string(),
        cascade: f.cascade.to_string(),
        binding: f.binding.to_string(),
        params: f.params,
        mapping: p.chosen.clone(),
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
            .map(|t| (t.level.clone(), t.read_bytes + t.write_bytes))
            .collect(),
        traffic,
        energy_pj: EnergyReport {
            total: by_component.values().sum(),
            by_component,
            by_action,
            by_einsum,
        },
        passes: f.passes.passes.clone(),
        bound: Bound {
            cycles: bound_total,
            limiter: limiter.1,
            ratio: total_cycles as f64 / bound_total.max(1) as f64,
        },
        stages,
        area_mm2,
    })
}
