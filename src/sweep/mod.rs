//! Parameter sweeps, in two forms.
//!
//! - **Sweep files** ([`file`] → [`plan::Plan`]): several designs, axes over any parameter (lists, ranges,
//!   geometric ranges; product or zipped), constraints and plots. Each point becomes one JSON line with every
//!   headline output ([`row`]); points can be sharded, resumed from a journal and merged ([`plan`]); the CSV is
//!   rendered from the lines and plots ([`chart`]) from the CSV, so every path writes the same bytes.
//! - **The flag form** (`--vary key=v1,v2,...`, below): one arch and workload (or one GPU and kernel, [`run_gpu`])
//!   over the cartesian product (in parallel), one metric from each report, rendered as a table, a CSV and a line plot of the metric against
//!   the first varied parameter (one line per combination of the others). Files are written by
//!   [`crate::reproduce::write::write_files`].

pub mod chart;
pub mod file;
pub mod plan;
pub mod row;

/// What a finished sweep writes, as text: `sweep.jsonl`, `sweep.csv` and each plot's SVG, and the charts (for
/// PNGs); plus a message for each plot that could not be drawn (a column the data lacks). `lines` are every
/// point's JSON line in point order (a whole run's, or merged shards').
#[allow(clippy::type_complexity)]
pub fn artifacts(
    plan: &plan::Plan,
    lines: &[(u64, String)],
) -> (
    Vec<(String, String)>,
    Vec<(String, chart::Chart)>,
    Vec<String>,
) {
    let (jsonl, csv) = plan.outputs(lines);
    let table = row::Table::parse(&csv);
    let mut texts = vec![
        ("sweep.jsonl".to_string(), jsonl),
        ("sweep.csv".to_string(), csv),
    ];
    let mut charts = Vec::new();
    let mut errors = Vec::new();
    for spec in &plan.plots {
        let title = format!("{}: {}", plan.name, spec.name);
        match chart::chart(&table, spec, &title)
            .and_then(|c| chart::svg(&c).map(|s| (c, s)).map_err(|e| e.to_string()))
        {
            Ok((c, s)) => {
                texts.push((format!("{}.svg", spec.name), s));
                charts.push((spec.name.clone(), c));
            }
            Err(e) => errors.push(e),
        }
    }
    (texts, charts, errors)
}

use crate::diag::SourceFile;
use crate::gpu::report::GpuReport;
use crate::plot::{Corner, Figure, LineChart, Panel, Series, XAxis};
use crate::progress::Progress;
use crate::report::RunReport;
use crate::reproduce::render::sig;
use crate::reproduce::SyncLookup;
use crate::run::{self, RunError};
use crate::sim::SimOptions;
use rayon::prelude::*;
use std::fmt::Write;

/// One `--vary key=v1,v2,...`: the values as given (so `--set` parsing reports them) and as integers.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    pub key: String,
    pub values: Vec<(String, i64)>,
}

impl std::str::FromStr for Vary {
    type Err = String;

    fn from_str(arg: &str) -> Result<Vary, String> {
        let (k, vs) = arg
            .split_once('=')
            .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| format!("`{arg}` is not key=v1,v2,... (e.g. seq=1K,4K,16K)"))?;
        let values = vs
            .split(',')
            .map(|v| {
                let v = v.trim();
                run::parse_int(v)
                    .map(|n| (v.to_string(), n))
                    .ok_or_else(|| {
                        format!("`{v}` in `{arg}` is not an integer such as 4096, 64K, 1M or 2^20")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Vary {
            key: k.trim().to_string(),
            values,
        })
    }
}

/// The number a sweep reports from each run.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    Cycles,
    Seconds,
    /// TFLOP/s (GPU runs).
    Tflops,
    /// Total energy, pJ.
    Energy,
    /// DRAM bytes read plus written.
    Dram,
    Utilization(String),
    /// Bytes read plus written at a storage level.
    Traffic(String),
    /// Energy of one component, pJ.
    EnergyOf(String),
}

/// The accepted spellings, for help text and errors.
pub const METRICS: &str =
    "cycles, seconds, energy, dram, utilization.<unit>, traffic.<level>, energy.<component>, tflops (GPUs)";

impl std::str::FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Metric, String> {
        let sub = |p: &str| {
            s.strip_prefix(p)
                .filter(|r| !r.is_empty())
                .map(String::from)
        };
        Ok(match s {
            "cycles" => Metric::Cycles,
            "seconds" => Metric::Seconds,
            "tflops" => Metric::Tflops,
            "energy" => Metric::Energy,
            "dram" => Metric::Dram,
            _ => {
                if let Some(u) = sub("utilization.") {
                    Metric::Utilization(u)
                } else if let Some(l) = sub("traffic.") {
                    Metric::Traffic(l)
                } else if let Some(c) = sub("energy.") {
                    Metric::EnergyOf(c)
                } else {
                    return Err(format!("unknown metric `{s}`; expected one of {METRICS}"));
                }
            }
        })
    }
}

impl Metric {
    /// The metric's name and unit, as a column header and axis label.
    pub fn label(&self) -> String {
        match self {
            Metric::Cycles => "cycles".into(),
            Metric::Seconds => "seconds".into(),
            Metric::Tflops => "TFLOP/s".into(),
            Metric::Energy => "energy (pJ)".into(),
            Metric::Dram => "DRAM traffic (B)".into(),
            Metric::Utilization(u) => format!("utilization.{u}"),
            Metric::Traffic(l) => format!("traffic.{l} (B)"),
            Metric::EnergyOf(c) => format!("energy.{c} (pJ)"),
        }
    }

    /// The value in a report, or why it has none (naming the keys it does have).
    pub fn of(&self, r: &RunReport) -> Result<f64, String> {
        fn get<T: Copy + Into<f64>>(
            map: &std::collections::BTreeMap<String, T>,
            k: &str,
            what: &str,
        ) -> Result<f64, String> {
            map.get(k).map(|&v| v.into()).ok_or_else(|| {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                format!("no {what} `{k}`; have {}", keys.join(", "))
            })
        }
        match self {
            Metric::Cycles => Ok(r.cycles as f64),
            Metric::Seconds => Ok(r.seconds),
            Metric::Tflops => Err("tflops is reported for GPU runs (--arch b200 ...)".into()),
            Metric::Energy => Ok(r.energy_pj.total),
            Metric::Dram => Ok(r.traffic_bytes.get("dram").copied().unwrap_or(0) as f64),
            Metric::Utilization(u) => get(&r.utilization, u, "unit"),
            Metric::Traffic(l) => r
                .traffic_bytes
                .get(l)
                .map(|&b| b as f64)
                .ok_or_else(|| format!("no traffic at `{l}`")),
            Metric::EnergyOf(c) => get(&r.energy_pj.by_component, c, "energy component"),
        }
    }
}

impl Metric {
    /// The value in a GPU report, or why it has none.
    pub fn of_gpu(&self, r: &GpuReport) -> Result<f64, String> {
        match self {
            Metric::Cycles => Ok(r.cycles as f64),
            Metric::Seconds => Ok(r.seconds),
            Metric::Tflops => Ok(r.tflops),
            // The board at its TDP for the run time: a calibration, not a model of the units (gpus.md §5.4).
            Metric::Energy => Ok(r.energy_j * 1e12),
            Metric::Utilization(u) => r
                .units
                .iter()
                .find(|x| &x.unit == u)
                .map(|x| x.utilization)
                .ok_or_else(|| {
                    let keys: Vec<&str> = r.units.iter().map(|x| x.unit.as_str()).collect();
                    format!("no unit `{u}`; have {}", keys.join(", "))
                }),
            Metric::Dram | Metric::Traffic(_) | Metric::EnergyOf(_) => Err(format!(
                "{} is not reported for GPU runs; they report cycles, seconds, energy, tflops and utilization.<unit>",
                self.label()
            )),
        }
    }
}

/// A point's report: an accelerator run or a GPU run.
#[derive(Debug)]
pub enum Report {
    Arch(Box<RunReport>),
    Gpu(Box<GpuReport>),
}

/// One point of the product.
#[derive(Debug)]
pub struct SweepPoint {
    /// The varied parameters' values, in `--vary` order.
    pub values: Vec<i64>,
    pub report: Result<Report, RunError>,
}

impl SweepPoint {
    pub fn value(&self, m: &Metric) -> Result<f64, String> {
        match &self.report {
            Ok(Report::Arch(r)) => m.of(r),
            Ok(Report::Gpu(r)) => m.of_gpu(r),
            Err(e) => Err(first_line(&e.to_string())),
        }
    }
}

/// The headline of a rendered error, without its `error: ` prefix (tables add their own).
fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("error");
    l.strip_prefix("error: ").unwrap_or(l).to_string()
}

#[derive(Debug)]
pub struct Sweep {
    pub arch: String,
    pub workload: String,
    pub keys: Vec<String>,
    pub metric: Metric,
    pub points: Vec<SweepPoint>,
}

/// Run every combination (the first `--vary` outermost) in parallel. `sets` are fixed `key=value` overrides
/// applied to every point before the varied ones. Without a model, each point starts from the cascade's
/// defaults. `progress` counts the points as they finish.
#[allow(clippy::too_many_arguments)]
pub fn run(
    arch: &SourceFile,
    model: Option<&SourceFile>,
    binding: Option<&str>,
    sets: &[String],
    vary: &[Vary],
    metric: Metric,
    lookup: SyncLookup,
    opts: SimOptions,
    progress: &dyn Progress,
) -> Sweep {
    let points = points(sets, vary, progress, |args| {
        let mut setup = run::setup(arch, model, None, args, lookup)?;
        // `binding` forces one of the arch's named bindings at every point, as `einsim run --binding` does.
        if let Some(name) = binding {
            setup.force_binding(name)?;
        }
        run::simulate(&setup, opts).map(|r| Report::Arch(Box::new(r)))
    });
    // Name the sweep as the reports do (file names are paths).
    let name = |f: fn(&RunReport) -> &String, default: &String| {
        points
            .iter()
            .find_map(|p: &SweepPoint| match &p.report {
                Ok(Report::Arch(r)) => Some(f(r).clone()),
                _ => None,
            })
            .unwrap_or_else(|| default.clone())
    };
    Sweep {
        arch: name(|r| &r.arch, &arch.name),
        workload: name(
            |r| &r.workload,
            &model.map_or_else(String::new, |m| m.name.clone()),
        ),
        keys: vary.iter().map(|v| v.key.clone()).collect(),
        metric,
        points,
    }
}

/// The flag form on a GPU file: `binding` (a kernel; none: the GPU's first) over the product of `vary`, each point
/// taking `sets` then its values as `einsim run --arch GPU --set` does (workload keys seq, tokens, hidden, batch,
/// heads, d, causal; every other key a GPU or kernel parameter, or a unit figure `UNIT.FIGURE` such as `mufu.rate`).
pub fn run_gpu(
    gpu_file: &SourceFile,
    binding: Option<&str>,
    sets: &[String],
    vary: &[Vary],
    metric: Metric,
    opts: SimOptions,
    progress: &dyn Progress,
) -> Sweep {
    let points = points(sets, vary, progress, |args| {
        let (w, params) = crate::gpu::sets(args)?;
        let g = crate::gpu::load(gpu_file, &params).map_err(RunError::Invalid)?;
        crate::gpu::report::run(&g, binding, &w, &params, opts).map(|r| Report::Gpu(Box::new(r)))
    });
    let first = points.iter().find_map(|p| match &p.report {
        Ok(Report::Gpu(r)) => Some((r.gpu.clone(), r.kernel.clone())),
        _ => None,
    });
    let (arch, kernel) = first.unwrap_or_else(|| {
        (
            gpu_file.name.clone(),
            binding.unwrap_or_default().to_string(),
        )
    });
    Sweep {
        arch,
        workload: kernel,
        keys: vary.iter().map(|v| v.key.clone()).collect(),
        metric,
        points,
    }
}

/// Every combination of `vary` (the first outermost), run in parallel by `one` on `sets` then the combination's
/// `key=value`s; `progress` counts the points as they finish.
fn points(
    sets: &[String],
    vary: &[Vary],
    progress: &dyn Progress,
    one: impl Fn(&[String]) -> Result<Report, RunError> + Sync,
) -> Vec<SweepPoint> {
    let mut combos: Vec<Vec<(String, i64)>> = vec![Vec::new()];
    for v in vary {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                v.values.iter().map(move |val| {
                    let mut c = c.clone();
                    c.push(val.clone());
                    c
                })
            })
            .collect();
    }
    progress.start(combos.len() as u64);
    combos
        .par_iter()
        .map(|c| {
            let mut args = sets.to_vec();
            args.extend(
                vary.iter()
                    .zip(c)
                    .map(|(v, (text, _))| format!("{}={text}", v.key)),
            );
            let report = one(&args);
            progress.inc();
            SweepPoint {
                values: c.iter().map(|(_, n)| *n).collect(),
                report,
            }
        })
        .collect()
}

impl Sweep {
    /// An aligned text table: one column per varied key, then the metric (or the error).
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = vec![self
            .keys
            .iter()
            .cloned()
            .chain([self.metric.label()])
            .collect()];
        for p in &self.points {
            let mut r: Vec<String> = p
                .values
                .iter()
                .map(|v| crate::plot::format_len(*v as f64))
                .collect();
            r.push(match p.value(&self.metric) {
                Ok(v) => sig(v),
                Err(e) => format!("error: {e}"),
            });
            rows.push(r);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i + 1 == r.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", line.join("  "));
        }
        out
    }

    /// CSV: varied keys, the metric (full precision), and the error message if the point failed.
    pub fn csv(&self) -> String {
        let mut out = self.keys.join(",");
        let _ = writeln!(out, ",{},error", metric_column(&self.metric));
        for p in &self.points {
            let vals: Vec<String> = p.values.iter().map(i64::to_string).collect();
            let (v, e) = match p.value(&self.metric) {
                Ok(v) => (format!("{v:.6e}"), String::new()),
                Err(e) => (String::new(), format!("\"{}\"", e.replace('"', "\"\""))),
            };
            let _ = writeln!(out, "{},{v},{e}", vals.join(","));
        }
        out
    }

    /// The metric against the first varied key; one line per combination of the others.
    pub fn figure(&self) -> Figure {
        let mut series: Vec<Series> = Vec::new();
        for p in &self.points {
            let Ok(v) = p.value(&self.metric) else {
                continue;
            };
            let name = if self.keys.len() > 1 {
                self.keys[1..]
                    .iter()
                    .zip(&p.values[1..])
                    .map(|(k, v)| format!("{k}={}", crate::plot::format_len(*v as f64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                self.metric.label()
            };
            let x = p.values.first().copied().unwrap_or(0) as f64;
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((x, v)),
                None => series.push(Series {
                    name,
                    points: vec![(x, v)],
                }),
            }
        }
        let series_count = series.len();
        let xs: Vec<i64> = self
            .points
            .iter()
            .filter_map(|p| p.values.first().copied())
            .collect();
        let log2 = xs.iter().all(|&x| x > 0 && (x as u64).is_power_of_two())
            && xs.iter().collect::<std::collections::BTreeSet<_>>().len() > 1;
        let x_key = self.keys.first().cloned().unwrap_or_default();
        let title = format!(
            "{} on {}: {} vs {x_key}",
            self.arch,
            self.workload,
            self.metric.label()
        );
        Figure {
            title: title.clone(),
            panels: vec![Panel::Line(LineChart {
                title: String::new(),
                x_label: x_key,
                y_label: self.metric.label(),
                x_axis: if log2 { XAxis::Log2 } else { XAxis::Linear },
                series,
                reference: None,
                legend: Corner::UpperLeft,
                headroom: 1.1 + 0.06 * series_count as f64,
            })],
            cols: 1,
            panel_size: (800, 500),
            shared_legend: false,
        }
    }

    /// The first failure, worst first (an engine bug before an input error).
    pub fn worst_error(&self) -> Option<&RunError> {
        let errs = || self.points.iter().filter_map(|p| p.report.as_ref().err());
        errs()
            .find(|e| matches!(e, RunError::Internal(_)))
            .or_else(|| errs().next())
    }

    /// The first point whose run succeeded but lacks the metric (e.g. an unknown unit), with why.
    pub fn metric_error(&self) -> Option<String> {
        self.points
            .iter()
            .filter(|p| p.report.is_ok())
            .find_map(|p| p.value(&self.metric).err())
    }
}

fn metric_column(m: &Metric) -> String {
    match m {
        Metric::Cycles => "cycles".into(),
        Metric::Seconds => "seconds".into(),
        Metric::Tflops => "tflops".into(),
        Metric::Energy => "energy_pj".into(),
        Metric::Dram => "dram_bytes".into(),
        Metric::Utilization(u) => format!("utilization_{u}"),
        Metric::Traffic(l) => format!("traffic_bytes_{l}"),
        Metric::EnergyOf(c) => format!("energy_pj_{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parses_suffixes() {
        let v: Vary = "seq=1K,4K,2^14".parse().unwrap();
        assert_eq!(v.key, "seq");
        assert_eq!(
            v.values.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![1024, 4096, 16384]
        );
        assert!("seq".parse::<Vary>().is_err());
        assert!("seq=1K,x".parse::<Vary>().is_err());
        assert!("=1".parse::<Vary>().is_err());
    }

    #[test]
    fn metrics_parse() {
        assert_eq!("cycles".parse::<Metric>(), Ok(Metric::Cycles));
        assert_eq!(
            "utilization.pe2d".parse::<Metric>(),
            Ok(Metric::Utilization("pe2d".into()))
        );
        assert_eq!(
            "energy.dram".parse::<Metric>(),
            Ok(Metric::EnergyOf("dram".into()))
        );
        assert!("utilization.".parse::<Metric>().is_err());
        assert!("latency".parse::<Metric>().is_err());
    }
}
