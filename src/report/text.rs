//! Plain-text rendering of a [`RunReport`] for the terminal.

use super::RunReport;
use std::fmt::Write;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary-prefixed unit.
pub fn bytes(b: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[i])
    }
}

/// Picojoules with an SI prefix.
pub fn energy(pj: f64) -> String {
    let (v, u) = if pj >= 1e12 {
        (pj / 1e12, "J")
    } else if pj >= 1e9 {
        (pj / 1e9, "mJ")
    } else if pj >= 1e6 {
        (pj / 1e6, "uJ")
    } else if pj >= 1e3 {
        (pj / 1e3, "nJ")
    } else {
        (pj, "pJ")
    };
    format!("{v:.4} {u}")
}

pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.4} s")
    } else if s >= 1e-3 {
        format!("{:.4} ms", s * 1e3)
    } else {
        format!("{:.4} us", s * 1e6)
    }
}

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "einsim run: {} on {} (cascade {})",
        r.arch, r.workload, r.cascade
    );
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(o, "  parameters: {}", params.join(" "));
    if !r.mapping.is_empty() || !r.binding.is_empty() {
        let m: Vec<String> = r.mapping.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let b = if r.binding.is_empty() {
            String::new()
        } else {
            format!("binding `{}`  ", r.binding)
        };
        let _ = writeln!(o, "  mapping:    {b}{}", m.join(" "));
    }
    if !r.padding.is_empty() {
        let _ = writeln!(o, "  padding:    {}", super::padding(&r.padding));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "latency     {:>16} cycles  {}  at {:.0} MHz",
        thousands(r.cycles),
        seconds(r.seconds),
        r.clock_hz / 1e6
    );
    let _ = writeln!(
        o,
        "bound       {:>16} cycles  limited by {}; simulated/bound = {:.4}",
        thousands(r.bound.cycles),
        r.bound.limiter,
        r.bound.ratio
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<12} {:>8} {:>18} {:>12}",
        "unit", "PEs", "busy cycles", "utilization"
    );
    for u in &r.units {
        let _ = writeln!(
            o,
            "{:<12} {:>8} {:>18} {:>12.4}",
            u.name,
            u.pes,
            thousands(u.busy_cycles),
            u.utilization
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<12} {:<8} {:>18} {:>12} {:>10} {:>14}",
        "einsum", "unit", "cycles", "utilization", "PE frac", "energy"
    );
    for e in &r.einsums {
        let pj = r.energy_pj.by_einsum.get(&e.name).copied().unwrap_or(0.0);
        let _ = writeln!(
            o,
            "{:<12} {:<8} {:>18} {:>12.4} {:>10.4} {:>14}",
            e.name,
            e.unit,
            thousands(e.cycles),
            e.utilization,
            e.pe_fraction,
            energy(pj)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<12} {:>16} {:>16}", "traffic", "read", "written");
    for t in &r.traffic {
        let _ = writeln!(
            o,
            "{:<12} {:>16} {:>16}",
            t.level,
            bytes(t.read_bytes),
            bytes(t.write_bytes)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "energy      {}", energy(r.energy_pj.total));
    let total = r.energy_pj.total.max(f64::MIN_POSITIVE);
    for (c, pj) in &r.energy_pj.by_component {
        let _ = writeln!(
            o,
            "  {:<10} {:>14} {:>7.2}%",
            c,
            energy(*pj),
            100.0 * pj / total
        );
    }
    let mut actions: Vec<_> = r.energy_pj.by_action.iter().collect();
    actions.sort_by(|a, b| b.1.total_cmp(a.1));
    let _ = writeln!(o, "  top actions:");
    for (a, pj) in actions.iter().take(6) {
        let _ = writeln!(
            o,
            "    {:<28} {:>14} {:>7.2}%",
            a,
            energy(**pj),
            100.0 * **pj / total
        );
    }
    let _ = writeln!(o);
    let passes: Vec<String> = r.passes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(o, "passes      {}", passes.join(", "));
    if !r.area_mm2.is_empty() {
        let a: f64 = r.area_mm2.values().sum();
        let parts: Vec<String> = r
            .area_mm2
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        let _ = writeln!(o, "area        {a:.1} mm2 ({})", parts.join(", "));
    }
    for s in &r.stages {
        let _ = writeln!(
            o,
            "stage       {}: {} cycles (bound {} by {}), {} of {} tiles simulated event by event",
            s.name,
            thousands(s.cycles),
            thousands(s.bound_cycles),
            s.limiter,
            thousands(s.simulated_steps),
            thousands(s.steps)
        );
        if let Some(sp) = &s.spill {
            let _ = writeln!(
                o,
                "            spills {} B of its {} B of `{}` ({:.2}%) to memory: each access to that part is a \
                 transfer",
                thousands(sp.bytes),
                thousands(sp.of),
                sp.tensor,
                100.0 * sp.bytes as f64 / sp.of.max(1) as f64
            );
        }
        if let Some(e) = &s.estimate {
            let _ = writeln!(
                o,
                "            no steady state within the engine's budget: cycles estimated from the first {} tiles' \
                 rate; the true value lies in [{}, {}]",
                thousands(e.prefix_steps),
                thousands(e.low_cycles),
                thousands(e.high_cycles)
            );
        }
    }
    o
}
