//! Plots of a sweep's rows (a [`Table`], parsed from its CSV, so `einsim plot` and a sweep file's `plots` draw
//! the same thing): a column against another, one series per group, with log axes when the values span
//! decades, the legend in its own column beside the data, and a colour *and* a marker per series so that more
//! than ten stay apart; energy stacked by component in small multiples; the Pareto front of two minimised
//! columns with the dominated points greyed. Units on every axis. Rendering uses the bundled font of
//! [`crate::plot`].

use super::plan::{PlotKind, PlotSpec};
use super::row::Table;
use crate::plot::{err, format_len, format_y, register_font, PlotError, COLORS, FAMILY};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// A chart ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub kind: PlotKind,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    /// Line and Pareto charts: named series of (x, y). Energy: one series per bar segment is not used.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Pareto charts: the non-dominated points, in x order.
    pub front: Vec<(f64, f64)>,
    /// Energy charts: panels (group name, bars (label, segments (component, pJ))).
    pub panels: Vec<(String, Vec<Bar>)>,
    /// Energy charts: the components, in stacking order.
    pub components: Vec<String>,
}

/// One stacked bar: its label and its segments (component, pJ), bottom to top.
pub type Bar = (String, Vec<(String, f64)>);

/// How an axis maps its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Ticks at exactly these values (powers of two read as `1K`, `64K`), else chosen.
    pub keys: Option<Vec<f64>>,
}

impl Scale {
    /// Log when every value is positive and they span two decades or more; ticks at the values themselves
    /// when they are a few powers of two.
    fn of(values: &[f64], zero_based: bool) -> Scale {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if finite.is_empty() {
            return Scale {
                lo: 0.0,
                hi: 1.0,
                log: false,
                keys: None,
            };
        }
        let mut distinct: Vec<f64> = finite.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let pow2 = distinct.len() > 2
            && distinct.len() <= 12
            && distinct
                .iter()
                .all(|&v| v >= 1.0 && v.fract() == 0.0 && (v as u64).is_power_of_two());
        // A geometric series of values (powers of two, `Geometric` axes): ticks at the values themselves.
        let ratios: Vec<f64> = distinct.windows(2).map(|w| w[1] / w[0]).collect();
        let geometric = distinct.len() > 2
            && distinct.len() <= 12
            && lo > 0.0
            && ratios.iter().all(|r| (r / ratios[0] - 1.0).abs() < 0.01);
        let pow2 = pow2 || geometric;
        // Two decades, or a geometric series over a factor of 8.
        let log = lo > 0.0 && (hi / lo >= 100.0 || (pow2 && hi / lo >= 8.0));
        if log {
            let (l, h) = (lo.log10(), hi.log10());
            let pad = (h - l) * 0.04;
            Scale {
                lo: l - pad,
                hi: h + pad,
                log: true,
                keys: pow2.then(|| distinct.iter().map(|v| v.log10()).collect()),
            }
        } else {
            let (l, h) = if zero_based && lo >= 0.0 {
                (0.0, hi)
            } else {
                (lo, hi)
            };
            let span = if h > l { h - l } else { h.abs().max(1.0) };
            Scale {
                lo: l - if zero_based && l == 0.0 {
                    0.0
                } else {
                    span * 0.05
                },
                hi: h + span * 0.05,
                log: false,
                keys: pow2.then_some(distinct),
            }
        }
    }

    fn to(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }
}

/// A column's name with its unit, as an axis label.
pub fn label(col: &str) -> String {
    let unit = if col == "seconds" {
        "s"
    } else if col.ends_with("cycles") {
        "cycles"
    } else if col.starts_with("area_mm2") {
        "mm²"
    } else if col.starts_with("energy_pj") {
        "pJ"
    } else if col.starts_with("traffic_bytes") || col.ends_with("_bytes") {
        "B"
    } else if col.starts_with("utilization") {
        "fraction of the unit's capacity used"
    } else if col.ends_with("gib_s") {
        "GiB/s"
    } else if col.contains(".flops.") {
        // A GPU unit figure (`--set tc.flops.bf16`), named UNIT.FIGURE as in arch/gpu files.
        "FLOP/cycle"
    } else if col.ends_with(".rate") {
        "op/cycle"
    } else if col.ends_with(".bandwidth") {
        "B/cycle"
    } else if col.ends_with(".capacity") {
        "B"
    } else if col.ends_with(".latency") {
        "cycles"
    } else {
        match col {
            "seq" | "q_len" | "kv_len" => "tokens",
            "rows" | "cols" | "lanes" => "PEs",
            "depth" | "tile_depth" => "tiles in flight",
            "batch" => "sequences",
            "heads" => "heads",
            "head_dim" | "d" => "elements",
            "tflops" => "TFLOP/s",
            "percent_of_peak" => "% of peak",
            "point" => "index",
            _ => "count",
        }
    };
    format!("{col} ({unit})")
}

fn matches(cell: &str, want: &str) -> bool {
    cell == want
        || matches!(
            (crate::run::parse_int(cell), crate::run::parse_int(want)),
            (Some(a), Some(b)) if a == b
        )
}

/// Build the chart a spec asks for from a table, or say why it cannot (a column the table lacks).
pub fn chart(table: &Table, spec: &PlotSpec, title: &str) -> Result<Chart, String> {
    let col = |name: &str| {
        table.column(name).ok_or_else(|| {
            format!(
                "plot `{}`: no column `{name}`; the columns are: {}",
                spec.name,
                table.columns.join(", ")
            )
        })
    };
    let filters: Vec<(usize, &str)> = spec
        .filter
        .iter()
        .map(|(k, v)| Ok((col(k)?, v.as_str())))
        .collect::<Result<_, String>>()?;
    let groups: Vec<usize> = spec
        .group
        .iter()
        .map(|g| col(g))
        .collect::<Result<_, _>>()?;
    let status = table.column("status");
    let rows: Vec<&Vec<String>> = table
        .rows
        .iter()
        .filter(|r| filters.iter().all(|(i, v)| matches(&r[*i], v)))
        .filter(|r| status.is_none_or(|s| r[s] == "ok"))
        .collect();
    let group_name = |r: &Vec<String>| {
        if groups.is_empty() {
            return spec.y.clone();
        }
        groups
            .iter()
            .zip(&spec.group)
            .map(|(&i, g)| {
                let v = &r[i];
                let shown = v.parse::<f64>().map_or_else(|_| v.clone(), format_len);
                if g == "design" {
                    shown
                } else {
                    format!("{g}={shown}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let x = col(&spec.x)?;
    let mut out = Chart {
        title: title.to_string(),
        kind: spec.kind,
        x_label: label(&spec.x),
        y_label: label(&spec.y),
        x_scale: Scale::of(&[], false),
        y_scale: Scale::of(&[], false),
        series: Vec::new(),
        front: Vec::new(),
        panels: Vec::new(),
        components: Vec::new(),
    };
    if spec.kind == PlotKind::Energy {
        let comps: Vec<(usize, String)> = table
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.strip_prefix("energy_pj.").map(|n| (i, n.to_string())))
            .collect();
        if comps.is_empty() {
            return Err(format!(
                "plot `{}`: no energy_pj.* columns to stack",
                spec.name
            ));
        }
        out.components = comps.iter().map(|(_, n)| n.clone()).collect();
        out.y_label = label("energy_pj");
        for r in &rows {
            let g = group_name(r);
            let xv = &r[x];
            let bar_label = xv.parse::<f64>().map_or_else(|_| xv.clone(), format_len);
            let segs: Vec<(String, f64)> = comps
                .iter()
                .map(|(i, n)| (n.clone(), r[*i].parse::<f64>().unwrap_or(0.0)))
                .collect();
            match out.panels.iter_mut().find(|p| p.0 == g) {
                Some(p) => p.1.push((bar_label, segs)),
                None => out.panels.push((g, vec![(bar_label, segs)])),
            }
        }
        return Ok(out);
    }
    let y = col(&spec.y)?;
    for r in &rows {
        let (Ok(xv), Ok(yv)) = (r[x].parse::<f64>(), r[y].parse::<f64>()) else {
            continue;
        };
        let g = group_name(r);
        match out.series.iter_mut().find(|s| s.0 == g) {
            Some(s) => s.1.push((xv, yv)),
            None => out.series.push((g, vec![(xv, yv)])),
        }
    }
    for s in &mut out.series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    }
    let xs: Vec<f64> = out
        .series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = out
        .series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .collect();
    out.x_scale = Scale::of(&xs, false);
    out.y_scale = Scale::of(&ys, true);
    if spec.kind == PlotKind::Pareto {
        let mut pts: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut best = f64::INFINITY;
        for p in pts {
            if p.1 < best {
                best = p.1;
                out.front.push(p);
            }
        }
    }
    Ok(out)
}

/// Render as SVG text.
pub fn svg(c: &Chart) -> Result<String, PlotError> {
    register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size(c)).into_drawing_area();
        draw(&root, c)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Render as PNG into `path`.
pub fn png(c: &Chart, path: &Path) -> Result<(), PlotError> {
    register_font()?;
    let root = BitMapBackend::new(path, size(c)).into_drawing_area();
    draw(&root, c)?;
    root.present().map_err(err)
}

const LEGEND_W: u32 = 250;
const ROW_H: u32 = 17;

fn size(c: &Chart) -> (u32, u32) {
    let entries = if c.kind == PlotKind::Energy {
        c.components.len()
    } else {
        c.series.len() + usize::from(c.kind == PlotKind::Pareto) * 2
    } as u32;
    let legend_h = 70 + entries * ROW_H;
    if c.kind == PlotKind::Energy {
        let n = c.panels.len().max(1) as u32;
        let cols = n.min(3);
        let rows = n.div_ceil(cols);
        (cols * 380 + LEGEND_W, (50 + rows * 320).max(legend_h))
    } else {
        (680 + LEGEND_W, 520u32.max(legend_h))
    }
}

/// Series `i`'s colour and marker: the colour cycles every 10, the marker every 5 and shifts by one each time the
/// colours wrap, so the first 50 series are 50 different pairs.
fn style(i: usize) -> (RGBColor, usize) {
    (COLORS[i % COLORS.len()], (i + i / COLORS.len()) % 5)
}

const GREY: RGBColor = RGBColor(190, 190, 190);

/// Draw marker `kind` at `p` (in chart coordinates).
fn marker<DB: DrawingBackend, CT: plotters::coord::CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<DB, CT>,
    pts: &[(f64, f64)],
    kind: usize,
    col: RGBColor,
) -> Result<(), PlotError> {
    let st = col.filled();
    let it = pts.iter().copied();
    match kind {
        0 => chart
            .draw_series(it.map(|p| Circle::new(p, 4, st)))
            .map(|_| ()),
        1 => chart
            .draw_series(it.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], st)))
            .map(|_| ()),
        2 => chart
            .draw_series(it.map(|p| TriangleMarker::new(p, 5, st)))
            .map(|_| ()),
        3 => chart
            .draw_series(it.map(|p| Cross::new(p, 4, col.stroke_width(2))))
            .map(|_| ()),
        _ => chart
            .draw_series(it.map(|p| {
                EmptyElement::at(p) + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], st)
            }))
            .map(|_| ()),
    }
    .map_err(err)
}

/// The same marker in pixel coordinates, for the legend.
fn legend_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    kind: usize,
    col: RGBColor,
) -> Result<(), PlotError> {
    let st = col.filled();
    match kind {
        0 => area.draw(&Circle::new((x, y), 4, st)),
        1 => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], st)),
        2 => area.draw(&TriangleMarker::new((x, y), 5, st)),
        3 => area.draw(&Cross::new((x, y), 4, col.stroke_width(2))),
        _ => area.draw(&Polygon::new(
            vec![(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)],
            st,
        )),
    }
    .map_err(err)
}

/// An f64 axis that maps linearly (values already transformed for log) with chosen ticks.
struct Axis {
    scale: Scale,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.scale.lo) / (self.scale.hi - self.scale.lo);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.scale.lo, self.scale.hi);
        if let Some(k) = &self.scale.keys {
            return k.clone();
        }
        if self.scale.log {
            let (a, b) = (lo.ceil() as i32, hi.floor() as i32);
            let decades: Vec<f64> = (a..=b).map(f64::from).collect();
            if decades.len() >= 3 {
                let step = decades.len().div_ceil(max.clamp(1, 12));
                return decades.into_iter().step_by(step.max(1)).collect();
            }
            // Few decades: 1, 2, 5 in each.
            let mut out = Vec::new();
            for d in (lo.floor() as i32)..=(hi.ceil() as i32) {
                for m in [1.0f64, 2.0, 5.0] {
                    let v = (m * 10f64.powi(d)).log10();
                    if v >= lo && v <= hi {
                        out.push(v);
                    }
                }
            }
            return out;
        }
        let span = hi - lo;
        if span <= 0.0 || !span.is_finite() {
            return vec![lo];
        }
        let rough = span / max.clamp(2, 10) as f64;
        let mag = 10f64.powf(rough.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= rough)
            .unwrap_or(10.0 * mag);
        let mut v = (lo / step).ceil() * step;
        let mut out = Vec::new();
        while v <= hi + step * 1e-9 {
            out.push(v);
            v += step;
        }
        out
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.scale.lo..self.scale.hi
    }
}

fn tick(scale: &Scale) -> impl Fn(&f64) -> String + '_ {
    move |v: &f64| {
        let x = if scale.log { 10f64.powf(*v) } else { *v };
        if scale.keys.is_some() {
            format_len(x)
        } else {
            format_y(&x)
        }
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Chart) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let (main, legend) = root.split_horizontally(w - LEGEND_W);
    main.draw(&Text::new(
        c.title.clone(),
        (12, 10),
        (FAMILY, 18).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    let (_, body) = main.split_vertically(40);
    let mut entries: Vec<(String, RGBColor, Option<usize>, bool)> = Vec::new();
    match c.kind {
        PlotKind::Energy => {
            energy(&body, c)?;
            for (i, n) in c.components.iter().enumerate() {
                entries.push((n.clone(), COLORS[i % COLORS.len()], None, true));
            }
        }
        _ => {
            let mut chart = ChartBuilder::on(&body)
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    Axis {
                        scale: c.x_scale.clone(),
                    },
                    Axis {
                        scale: c.y_scale.clone(),
                    },
                )
                .map_err(err)?;
            let xf = tick(&c.x_scale);
            let yf = tick(&c.y_scale);
            let xl = format!(
                "{}{}",
                c.x_label,
                if c.x_scale.log { ", log scale" } else { "" }
            );
            let yl = format!(
                "{}{}",
                c.y_label,
                if c.y_scale.log { ", log scale" } else { "" }
            );
            chart
                .configure_mesh()
                .x_desc(xl)
                .y_desc(yl)
                .x_label_formatter(&xf)
                .y_label_formatter(&yf)
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 13))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()
                .map_err(err)?;
            let t = |p: &(f64, f64)| (c.x_scale.to(p.0), c.y_scale.to(p.1));
            let pareto = c.kind == PlotKind::Pareto;
            if pareto {
                let all: Vec<(f64, f64)> =
                    c.series.iter().flat_map(|s| s.1.iter().map(t)).collect();
                let front: Vec<(f64, f64)> = c.front.iter().map(t).collect();
                let dominated: Vec<(f64, f64)> =
                    all.into_iter().filter(|p| !front.contains(p)).collect();
                chart
                    .draw_series(dominated.iter().map(|&p| Circle::new(p, 3, GREY.filled())))
                    .map_err(err)?;
                // The front as a staircase: nothing below or left of it is achievable.
                let mut steps = Vec::new();
                for (i, p) in front.iter().enumerate() {
                    if i > 0 {
                        steps.push((p.0, front[i - 1].1));
                    }
                    steps.push(*p);
                }
                chart
                    .draw_series(LineSeries::new(steps, BLACK.stroke_width(1)))
                    .map_err(err)?;
                entries.push(("dominated".into(), GREY, Some(0), false));
                entries.push(("Pareto front".into(), BLACK, None, false));
            }
            for (i, (name, pts)) in c.series.iter().enumerate() {
                let (col, mk) = style(i);
                let p: Vec<(f64, f64)> = pts
                    .iter()
                    .filter(|p| !pareto || c.front.contains(p))
                    .map(t)
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                if !pareto {
                    chart
                        .draw_series(LineSeries::new(p.clone(), col.stroke_width(2)))
                        .map_err(err)?;
                }
                marker(&mut chart, &p, mk, col)?;
                entries.push((name.clone(), col, Some(mk), false));
            }
        }
    }
    draw_legend(&legend, &entries, c.kind == PlotKind::Line)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor, Option<usize>, bool)],
    lines: bool,
) -> Result<(), PlotError> {
    let style = (FAMILY, 12).into_font().color(&BLACK);
    let mut y = 56;
    for (name, col, mk, swatch) in entries {
        if *swatch {
            area.draw(&Rectangle::new([(8, y - 5), (26, y + 5)], col.filled()))
                .map_err(err)?;
        } else {
            if lines || mk.is_none() {
                area.draw(&PathElement::new(
                    vec![(6, y), (28, y)],
                    col.stroke_width(if mk.is_none() { 1 } else { 2 }),
                ))
                .map_err(err)?;
            }
            if let Some(k) = mk {
                legend_marker(area, (17, y), *k, *col)?;
            }
        }
        let shown: String = if name.chars().count() > 34 {
            name.chars().take(33).chain(['…']).collect()
        } else {
            name.clone()
        };
        area.draw(&Text::new(shown, (34, y - 7), style.clone()))
            .map_err(err)?;
        y += ROW_H as i32;
    }
    Ok(())
}

/// Small multiples: one panel per group, each a stack of energy components per bar.
fn energy<DB: DrawingBackend>(body: &DrawingArea<DB, Shift>, c: &Chart) -> Result<(), PlotError> {
    let n = c.panels.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let ymax = c
        .panels
        .iter()
        .flat_map(|p| p.1.iter())
        .map(|(_, segs)| segs.iter().map(|s| s.1.max(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    let yscale = Scale::of(&[0.0, ymax.max(f64::MIN_POSITIVE)], true);
    for ((title, bars), area) in c.panels.iter().zip(body.split_evenly((rows, cols))) {
        let nb = bars.len().max(1);
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FAMILY, 14))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(
                Axis {
                    scale: Scale {
                        lo: 0.0,
                        hi: nb as f64,
                        log: false,
                        keys: Some((0..nb).map(|i| i as f64 + 0.5).collect()),
                    },
                },
                Axis {
                    scale: yscale.clone(),
                },
            )
            .map_err(err)?;
        let xf = move |x: &f64| labels.get(x.floor() as usize).cloned().unwrap_or_default();
        let yf = tick(&yscale);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(c.x_label.as_str())
            .y_desc(c.y_label.as_str())
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .label_style((FAMILY, 11))
            .axis_desc_style((FAMILY, 12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        for (i, (_, segs)) in bars.iter().enumerate() {
            let mut base = 0.0;
            for (name, v) in segs {
                let v = v.max(0.0);
                let k = c.components.iter().position(|n| n == name).unwrap_or(0);
                let col = COLORS[k % COLORS.len()];
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(i as f64 + 0.15, base), (i as f64 + 0.85, base + v)],
                        col.filled(),
                    )))
                    .map_err(err)?;
                base += v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_stay_distinct_past_ten_series() {
        let pairs: Vec<(RGBColor, usize)> = (0..50).map(style).collect();
        for i in 0..50 {
            for j in 0..i {
                assert_ne!(pairs[i], pairs[j], "series {i} and {j}");
            }
        }
    }

    #[test]
    fn scales_go_log_over_decades() {
        assert!(Scale::of(&[1024.0, 1048576.0], false).log);
        assert!(!Scale::of(&[1.0, 50.0], false).log);
        assert!(!Scale::of(&[0.0, 1e6], false).log);
    }
}
