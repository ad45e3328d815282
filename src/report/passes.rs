//! Text rendering of a [`PassReport`].

use crate::passes::PassReport;
use std::fmt::Write;

pub fn render(r: &PassReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "passes of {} ({})", r.cascade, r.source);
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !params.is_empty() {
        let _ = writeln!(o, "  with {}", params.join(" "));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<6} {:>10} {:>7}  minimum live footprint",
        "rank", "size", "passes"
    );
    for rp in &r.ranks {
        let per = if rp.footprint.per.is_empty() {
            String::new()
        } else {
            format!(" per ({})", rp.footprint.per.join(", "))
        };
        let within = rp
            .part_of
            .as_ref()
            .map(|p| format!("  [part of {p}]"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{:<6} {:>10} {:>7}  O({}) = {} values{}{}",
            rp.rank, rp.size, rp.passes, rp.footprint.expr, rp.footprint.elements, per, within
        );
    }
    let causes: Vec<_> = r.ranks.iter().filter(|rp| !rp.causes.is_empty()).collect();
    if !causes.is_empty() {
        let _ = writeln!(o, "\nwhy:");
        for rp in causes {
            for c in &rp.causes {
                let _ = writeln!(
                    o,
                    "  {}: pass {} starts because {} reduces whole {} fibers before {} re-reads {}",
                    rp.rank,
                    c.pass,
                    c.reduction,
                    rp.rank,
                    c.consumer,
                    c.reread.join(", ")
                );
            }
        }
    }
    o
}
