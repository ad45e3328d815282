//! The reproduction's plots as [`Figure`] descriptions (rendered by [`crate::plot`]). Ratios are relative to the
//! first design of the plan's `plot_against` that ran (FuseMax: unfused, as in the paper's figures, else FLAT);
//! the title names it, and with none a panel explains what is missing.

use super::{Reproduction, Scope};
use crate::plot::{BarChart, Corner, Figure, LineChart, Panel, Series, XAxis};
use std::collections::BTreeSet;

/// Every figure, with its file stem.
pub fn all(rep: &Reproduction) -> Vec<(&'static str, Figure)> {
    let mut out = vec![
        ("utilization", utilization(rep)),
        ("attention_speedup", speedup(rep, Scope::Attention)),
        ("energy_breakdown", energy(rep)),
    ];
    if rep.plan.layer {
        out.push(("layer_speedup", speedup(rep, Scope::Layer)));
    }
    if rep.plan.array_study.is_some() {
        out.push(("area_latency", area_latency(rep)));
    }
    out
}

/// The array study: latency (log10 s) against chip area (log2 axis), one panel per model, every array and the
/// Pareto front.
pub fn area_latency(rep: &Reproduction) -> Figure {
    let Some(a) = &rep.plan.array_study else {
        return message(
            "Area-latency study".into(),
            "no array study in the plan".into(),
        );
    };
    let panels = a
        .models
        .iter()
        .map(|m| {
            let pts = |front: bool| -> Vec<(f64, f64)> {
                rep.study
                    .iter()
                    .filter(|p| &p.model == m && (!front || p.pareto(&rep.study)))
                    .filter_map(|p| p.result.as_ref().ok())
                    .map(|r| (r.area_mm2, r.seconds.log10()))
                    .collect()
            };
            Panel::Line(LineChart {
                title: format!("{m}, {} tokens", super::render::len(a.seq)),
                x_label: "chip area (mm2)".into(),
                y_label: "latency (log10 s)".into(),
                x_axis: XAxis::Log2,
                series: vec![
                    Series {
                        name: "every array".into(),
                        points: pts(false),
                    },
                    Series {
                        name: "Pareto front".into(),
                        points: pts(true),
                    },
                ],
                reference: None,
                legend: Corner::UpperRight,
                headroom: 1.15,
            })
        })
        .collect();
    Figure {
        title: format!("Area vs attention latency ({}, array sizes)", a.design),
        panels,
        cols: a.models.len().max(1),
        panel_size: (460, 320),
        shared_legend: true,
    }
}

fn no_baseline(rep: &Reproduction) -> String {
    format!(
        "none of the baselines ({}) is available",
        rep.plan.plot_against.join(", ")
    )
}

/// The baseline ratios are taken against: the first of the plan's `plot_against` that ran.
fn baseline(rep: &Reproduction) -> Option<(&str, &str)> {
    rep.plan
        .plot_against
        .iter()
        .find(|b| rep.available(b))
        .map(|b| (b.as_str(), rep.plan.label(b)))
}

fn available(rep: &Reproduction) -> Vec<&super::Design> {
    rep.plan
        .designs
        .iter()
        .filter(|d| rep.available(&d.arch))
        .collect()
}

/// One panel per (design, array), a row per design; a line per model.
pub fn utilization(rep: &Reproduction) -> Figure {
    let designs = available(rep);
    let units: Vec<String> = rep
        .runs
        .iter()
        .filter_map(|p| p.result.as_ref().ok())
        .flat_map(|r| r.utilization.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut panels = Vec::new();
    for d in &designs {
        for u in &units {
            let series: Vec<Series> = rep
                .plan
                .models
                .iter()
                .map(|m| Series {
                    name: m.clone(),
                    points: rep
                        .plan
                        .lengths
                        .iter()
                        .filter_map(|&s| {
                            let r = rep.run(&d.arch, m, s)?.result.as_ref().ok()?;
                            Some((s as f64, *r.utilization.get(u)?))
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            panels.push(if series.is_empty() {
                Panel::Message {
                    title: format!("{} {u}", d.label),
                    text: format!("no `{u}` results for {}", d.arch),
                }
            } else {
                Panel::Line(LineChart {
                    title: format!("{}: {u} utilization", d.label),
                    x_label: "sequence length".into(),
                    y_label: "utilization".into(),
                    x_axis: XAxis::Log2,
                    series,
                    reference: Some(1.0),
                    legend: Corner::UpperRight,
                    headroom: 1.12,
                })
            });
        }
    }
    if panels.is_empty() {
        panels.push(Panel::Message {
            title: "utilization".into(),
            text: "no design ran".into(),
        });
    }
    Figure {
        title: "Array utilization vs sequence length (attention, batch 64)".into(),
        panels,
        cols: units.len().max(1),
        panel_size: (460, 300),
        shared_legend: true,
    }
}

/// One panel per model; a line per design (the baseline itself omitted).
pub fn speedup(rep: &Reproduction, scope: Scope) -> Figure {
    let what = match scope {
        Scope::Attention => "Attention",
        Scope::Layer => "End-to-end layer",
    };
    let Some((base, base_label)) = baseline(rep) else {
        return message(format!("{what} speedup"), no_baseline(rep));
    };
    let panels = rep
        .plan
        .models
        .iter()
        .map(|m| {
            let series = available(rep)
                .into_iter()
                .filter(|d| d.arch != base)
                .map(|d| Series {
                    name: d.label.clone(),
                    points: rep
                        .plan
                        .lengths
                        .iter()
                        .filter_map(|&s| {
                            rep.relative(scope, &d.arch, base, m, s)
                                .map(|r| (s as f64, r.0))
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            Panel::Line(LineChart {
                title: m.clone(),
                x_label: "sequence length".into(),
                y_label: format!("speedup over {base_label}"),
                x_axis: XAxis::Log2,
                series,
                reference: Some(1.0),
                legend: Corner::UpperLeft,
                headroom: 1.12,
            })
        })
        .collect();
    Figure {
        title: format!("{what}: speedup over {base_label} vs sequence length (batch 64)"),
        panels,
        cols: 2,
        panel_size: (520, 360),
        shared_legend: true,
    }
}

/// Stacked bars per design: mean over all points of each component's energy divided by the baseline's total
/// energy at that point (so the baseline's bar sums to 1).
pub fn energy(rep: &Reproduction) -> Figure {
    let Some((base, base_label)) = baseline(rep) else {
        return message("Energy breakdown".into(), no_baseline(rep));
    };
    let mut bars = Vec::new();
    for d in available(rep) {
        let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
        let mut n = 0usize;
        for (m, s) in rep.points() {
            let (Some(Ok(r)), Some((_, base_e))) = (
                rep.run(&d.arch, m, s).map(|p| p.result.as_ref()),
                rep.cost(Scope::Attention, base, m, s),
            ) else {
                continue;
            };
            n += 1;
            for (c, pj) in &r.energy_by_component {
                *sums.entry(c.clone()).or_default() += pj / base_e;
            }
        }
        if n > 0 {
            bars.push((
                d.label.clone(),
                sums.into_iter().map(|(c, v)| (c, v / n as f64)).collect(),
            ));
        }
    }
    Figure {
        title: format!(
            "Attention energy relative to {base_label} by component (mean over models x lengths)"
        ),
        panels: vec![Panel::Bars(BarChart {
            title: format!("energy / {base_label} energy"),
            y_label: format!("energy relative to {base_label}"),
            bars,
            reference: Some(1.0),
            headroom: 1.12,
        })],
        cols: 1,
        panel_size: (900, 480),
        shared_legend: true,
    }
}

fn message(title: String, text: String) -> Figure {
    Figure {
        title: title.clone(),
        panels: vec![Panel::Message { title, text }],
        cols: 1,
        panel_size: (640, 200),
        shared_legend: false,
    }
}
