//! Markdown rendering of a [`RunReport`] (for reports committed under `reports/`).

use super::text::{bytes, energy, seconds, thousands};
use super::RunReport;
use std::fmt::Write;

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {} on {} ({})\n", r.arch, r.workload, r.cascade);
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
    let _ = writeln!(o, "Parameters: {}", params.join(", "));
    if !r.mapping.is_empty() {
        let m: Vec<String> = r
            .mapping
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect();
        let _ = writeln!(o, "\nMapping: {}", m.join(", "));
    }
    if !r.padding.is_empty() {
        let _ = writeln!(o, "\nPadding: {}", super::padding(&r.padding));
    }
    let _ = writeln!(o, "\n| metric | value |\n|---|---|");
    let _ = writeln!(
        o,
        "| latency | {} cycles ({}) |",
        thousands(r.cycles),
        seconds(r.seconds)
    );
    let _ = writeln!(
        o,
        "| lower bound | {} cycles ({}) |",
        thousands(r.bound.cycles),
        r.bound.limiter
    );
    let _ = writeln!(o, "| simulated / bound | {:.4} |", r.bound.ratio);
    for s in &r.stages {
        if let Some(e) = &s.estimate {
            let _ = writeln!(
                o,
                "| stage `{}` estimated (no steady state within the budget) | {} to {} cycles |",
                s.name, e.low_cycles, e.high_cycles
            );
        }
    }
    let _ = writeln!(o, "| energy | {} |", energy(r.energy_pj.total));
    let passes: Vec<String> = r.passes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(o, "| passes | {} |", passes.join(", "));
    let _ = writeln!(
        o,
        "\n## Units\n\n| unit | PEs | busy cycles | utilization |\n|---|---:|---:|---:|"
    );
    for u in &r.units {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.4} |",
            u.name,
            u.pes,
            thousands(u.busy_cycles),
            u.utilization
        );
    }
    let _ = writeln!(o, "\n## Einsums\n\n| einsum | unit | cycles | utilization | PE fraction | energy |\n|---|---|---:|---:|---:|---:|");
    for e in &r.einsums {
        let pj = r.energy_pj.by_einsum.get(&e.name).copied().unwrap_or(0.0);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.4} | {:.4} | {} |",
            e.name,
            e.unit,
            thousands(e.cycles),
            e.utilization,
            e.pe_fraction,
            energy(pj)
        );
    }
    let _ = writeln!(
        o,
        "\n## Traffic\n\n| level | read | written |\n|---|---:|---:|"
    );
    for t in &r.traffic {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            t.level,
            bytes(t.read_bytes),
            bytes(t.write_bytes)
        );
    }
    let total = r.energy_pj.total.max(f64::MIN_POSITIVE);
    let _ = writeln!(
        o,
        "\n## Energy by component\n\n| component | energy | share |\n|---|---:|---:|"
    );
    for (c, pj) in &r.energy_pj.by_component {
        let _ = writeln!(
            o,
            "| {} | {} | {:.2}% |",
            c,
            energy(*pj),
            100.0 * pj / total
        );
    }
    o
}
