//! Plots as data: a [`Figure`] is a grid of panels (line charts over a linear or log₂ axis, stacked bars, or a
//! message), described without reference to any backend so that library code can build it and tests can inspect
//! it. [`svg`] renders to a string; [`png`] renders to a file (the only I/O here, because plotters' PNG encoder
//! writes files). Text is drawn with a bundled DejaVu Sans, registered with plotters on first use, so rendering
//! needs no system fonts and is the same on every machine.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// DejaVu Sans (Bitstream Vera license; see `src/plot/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("plot/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Why a figure could not be drawn.
#[derive(Debug)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plot: {}", self.0)
    }
}

impl std::error::Error for PlotError {}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// One named line; points with a non-finite y are skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How the x axis maps values. `Log2` suits sequence lengths (1K…1M); labels read `1K`, `64K`, `1M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Linear,
    Log2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: XAxis,
    pub series: Vec<Series>,
    /// Draw a horizontal reference line here (e.g. 1.0 for ratios).
    pub reference: Option<f64>,
    /// Where the legend goes: a corner the lines are unlikely to cross.
    pub legend: Corner,
    /// Top of the y axis as a multiple of the largest value: room above the data for the legend.
    pub headroom: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corner {
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

/// Stacked bars: each bar is a label and its segments, bottom to top.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub bars: Vec<(String, Vec<(String, f64)>)>,
    pub reference: Option<f64>,
    /// As in [`LineChart::headroom`]; the legend is drawn upper right.
    pub headroom: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Panel {
    Line(LineChart),
    Bars(BarChart),
    /// A panel that only says why there is nothing to draw.
    Message {
        title: String,
        text: String,
    },
}

/// Panels laid out row by row in `cols` columns, each `panel_size` pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    pub panels: Vec<Panel>,
    pub cols: usize,
    pub panel_size: (u32, u32),
    /// One legend for all panels, under the title, instead of one per panel. Names have one color across the
    /// figure, so a shared legend is exact, and it never covers data.
    pub shared_legend: bool,
}

impl Figure {
    pub fn size(&self) -> (u32, u32) {
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        (
            (self.panel_size.0 * cols as u32).max(MIN_WIDTH),
            self.panel_size.1 * rows as u32 + self.header_height(),
        )
    }

    fn header_height(&self) -> u32 {
        if self.shared_legend {
            TITLE_H + LEGEND_H
        } else {
            TITLE_H
        }
    }

    /// Every series or segment name, in first-appearance order: colors are assigned by this index so that one
    /// name has one color across all panels.
    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |n: &String| {
            if !out.contains(n) {
                out.push(n.clone());
            }
        };
        for p in &self.panels {
            match p {
                Panel::Line(c) => c.series.iter().for_each(|s| add(&s.name)),
                Panel::Bars(b) => b.bars.iter().flat_map(|b| &b.1).for_each(|s| add(&s.0)),
                Panel::Message { .. } => {}
            }
        }
        out
    }
}

const TITLE_H: u32 = 40;
const LEGEND_H: u32 = 24;
/// Wide enough for a figure title at 20 px.
const MIN_WIDTH: u32 = 760;

/// Colorblind-friendly qualitative palette (Okabe–Ito, then Tableau extras).
pub(crate) const COLORS: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn color(names: &[String], name: &str) -> RGBColor {
    let i = names.iter().position(|n| n == name).unwrap_or(0);
    COLORS[i % COLORS.len()]
}

pub(crate) fn register_font() -> Result<(), PlotError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| PlotError("bundled font is not a valid TTF".into()));
    });
    result
}

/// Render as SVG text.
pub fn svg(fig: &Figure) -> Result<String, PlotError> {
    register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, fig.size()).into_drawing_area();
        draw(&root, fig)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Render as PNG into `path`.
pub fn png(fig: &Figure, path: &Path) -> Result<(), PlotError> {
    register_font()?;
    let root = BitMapBackend::new(path, fig.size()).into_drawing_area();
    draw(&root, fig)?;
    root.present().map_err(err)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(fig.header_height());
    top.draw(&Text::new(
        fig.title.clone(),
        (10, 10),
        (FAMILY, 20).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    let names = fig.names();
    if fig.shared_legend {
        shared_legend(&top, &names)?;
    }
    let cols = fig.cols.clamp(1, fig.panels.len().max(1));
    let rows = fig.panels.len().div_ceil(cols).max(1);
    for (panel, area) in fig.panels.iter().zip(body.split_evenly((rows, cols))) {
        match panel {
            Panel::Line(c) => line_chart(&area, c, &names, !fig.shared_legend)?,
            Panel::Bars(b) => bar_chart(&area, b, &names, !fig.shared_legend)?,
            Panel::Message { title, text } => {
                area.draw(&Text::new(
                    title.clone(),
                    (20, 10),
                    (FAMILY, 16).into_font().color(&BLACK),
                ))
                .map_err(err)?;
                area.draw(&Text::new(
                    text.clone(),
                    (20, 40),
                    (FAMILY, 14).into_font().color(&RGBColor(120, 120, 120)),
                ))
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The color key in one row under the title: a swatch and the name for each series or segment.
fn shared_legend<DB: DrawingBackend>(
    top: &DrawingArea<DB, Shift>,
    names: &[String],
) -> Result<(), PlotError> {
    let style = (FAMILY, 13).into_font().color(&BLACK);
    let y = TITLE_H as i32 + LEGEND_H as i32 / 2 - 2;
    let mut x = 16;
    for n in names {
        let col = color(names, n);
        top.draw(&Rectangle::new([(x, y - 5), (x + 18, y + 5)], col.filled()))
            .map_err(err)?;
        top.draw(&Text::new(n.clone(), (x + 24, y - 7), style.clone()))
            .map_err(err)?;
        let (w, _) = top.estimate_text_size(n, &style).map_err(err)?;
        x += 24 + w as i32 + 22;
    }
    Ok(())
}

/// `1K`, `64K`, `1M` for powers of two (and plain numbers otherwise).
pub fn format_len(v: f64) -> String {
    let n = v.round() as i64;
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{}K", n >> 10)
    } else {
        format!("{n}")
    }
}

/// Short y-axis labels: 3 significant digits without trailing zeros.
pub(crate) fn format_y(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A linear f64 axis whose ticks are exactly the given values (plotters' own `with_key_points` wrapper loses the
/// f64 label formatter). Used for log₂ lengths (ticks at the data's lengths) and bar centers.
struct KeyAxis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Ranged for KeyAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            // Light mesh lines: none between the ticks.
            return Vec::new();
        }
        self.keys.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn y_range(max: f64, reference: Option<f64>, headroom: f64) -> std::ops::Range<f64> {
    let top = max.max(reference.unwrap_or(0.0));
    let top = if top.is_finite() && top > 0.0 {
        top * headroom.max(1.0)
    } else {
        1.0
    };
    0.0..top
}

fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &LineChart,
    names: &[String],
    legend: bool,
) -> Result<(), PlotError> {
    let tx = |x: f64| match c.x_axis {
        XAxis::Log2 => x.log2(),
        XAxis::Linear => x,
    };
    let pts: Vec<(f64, f64)> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.1.is_finite() && p.0.is_finite() && (c.x_axis == XAxis::Linear || p.0 > 0.0))
        .collect();
    let mut keys: Vec<f64> = pts.iter().map(|p| tx(p.0)).collect();
    keys.sort_by(f64::total_cmp);
    keys.dedup();
    let (lo, hi) = match (keys.first(), keys.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        (Some(&a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    let pad = (hi - lo) * 0.05;
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let x_axis = c.x_axis;
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, (FAMILY, 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            KeyAxis {
                lo: lo - pad,
                hi: hi + pad,
                keys: keys.clone(),
            },
            y_range(ymax, c.reference, c.headroom),
        )
        .map_err(err)?;
    let xfmt = move |x: &f64| match x_axis {
        XAxis::Log2 => format_len(x.exp2()),
        XAxis::Linear => format_y(x),
    };
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_label_formatter(&xfmt)
        .y_label_formatter(&format_y)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(240, 240, 240))
        .y_max_light_lines(1)
        .draw()
        .map_err(err)?;
    if let Some(r) = c.reference {
        chart
            .draw_series(LineSeries::new(
                [(lo - pad, r), (hi + pad, r)],
                RGBColor(150, 150, 150).stroke_width(1),
            ))
            .map_err(err)?;
    }
    for s in &c.series {
        let col = color(names, &s.name);
        let p: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite() && (x_axis == XAxis::Linear || p.0 > 0.0))
            .map(|p| (tx(p.0), p.1))
            .collect();
        chart
            .draw_series(LineSeries::new(p.clone(), col.stroke_width(2)))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        chart
            .draw_series(p.into_iter().map(|q| Circle::new(q, 3, col.filled())))
            .map_err(err)?;
    }
    if legend && !c.series.is_empty() {
        chart
            .configure_series_labels()
            .position(c.legend.position())
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn bar_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    b: &BarChart,
    names: &[String],
    legend: bool,
) -> Result<(), PlotError> {
    let n = b.bars.len().max(1);
    let ymax = b
        .bars
        .iter()
        .map(|(_, segs)| segs.iter().map(|s| s.1.max(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    let labels: Vec<String> = b.bars.iter().map(|b| b.0.clone()).collect();
    let centers: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&b.title, (FAMILY, 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            KeyAxis {
                lo: 0.0,
                hi: n as f64,
                keys: centers,
            },
            y_range(ymax, b.reference, b.headroom),
        )
        .map_err(err)?;
    let xfmt = move |x: &f64| labels.get(x.floor() as usize).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(b.y_label.as_str())
        .x_label_formatter(&xfmt)
        .y_label_formatter(&format_y)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(240, 240, 240))
        .y_max_light_lines(1)
        .draw()
        .map_err(err)?;
    // One legend entry per segment name, in first-appearance order.
    let mut seen: Vec<&str> = Vec::new();
    for (i, (_, segs)) in b.bars.iter().enumerate() {
        let mut base = 0.0;
        for (name, v) in segs {
            let v = v.max(0.0);
            let col = color(names, name);
            let rect = Rectangle::new(
                [(i as f64 + 0.2, base), (i as f64 + 0.8, base + v)],
                col.filled(),
            );
            let drawn = chart.draw_series(std::iter::once(rect)).map_err(err)?;
            if !seen.contains(&name.as_str()) {
                seen.push(name);
                drawn.label(name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled())
                });
            }
            base += v;
        }
    }
    if let Some(r) = b.reference {
        chart
            .draw_series(LineSeries::new(
                [(0.0, r), (n as f64, r)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
    }
    if legend && !seen.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_k_and_m() {
        assert_eq!(format_len(1024.0), "1K");
        assert_eq!(format_len(65536.0), "64K");
        assert_eq!(format_len(1048576.0), "1M");
        assert_eq!(format_len(100.0), "100");
    }

    #[test]
    fn svg_renders_text() {
        let fig = Figure {
            title: "t".into(),
            panels: vec![Panel::Line(LineChart {
                title: "panel".into(),
                x_label: "seq".into(),
                y_label: "y".into(),
                x_axis: XAxis::Log2,
                series: vec![Series {
                    name: "a".into(),
                    points: vec![(1024.0, 1.0), (4096.0, 2.0)],
                }],
                reference: Some(1.0),
                legend: Corner::UpperLeft,
                headroom: 1.1,
            })],
            cols: 1,
            panel_size: (400, 300),
            shared_legend: false,
        };
        let s = svg(&fig).unwrap();
        assert!(s.contains("panel") && s.contains("4K"));
    }
}
