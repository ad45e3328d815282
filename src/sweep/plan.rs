//! A checked sweep file ([`Plan`]): its points (the design and the axes, combined as a product; zipped axes move
//! together), evaluated one at a time into JSON lines; shards, journals (the finished points of an interrupted
//! run), merging and the final CSV and JSON lines. Everything here works on strings and typed values; the CLI
//! reads and writes the files.

use super::row::{self, Cell};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::expr::SizeExpr;
use crate::reproduce::SyncLookup;
use crate::run::{self, RunError, Setup};
use crate::sim::SimOptions;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// One design of a sweep: the arch as the sweep file names it, and the parameters that arch declares (varying
/// one of those needs the arch resolved again; varying any other only re-evaluates the cascade).
#[derive(Clone, Debug)]
pub struct Design {
    pub label: String,
    pub arch: SourceFile,
    pub arch_params: BTreeSet<String>,
    /// A GPU file (`arch/gpu`): its points run the sweep's `binding` (or its first kernel) on the workload keys.
    pub gpu: bool,
}

/// A rule that skips points. Each is decided before the point is simulated: area depends on the arch alone, and
/// a bound on parameters on the point's values alone.
#[derive(Clone, Debug)]
pub enum Constraint {
    /// Skip points whose chip area exceeds this many mm².
    AreaAtMost(f64),
    /// Skip points where `expr` (over the axes and fixed overrides) is above (`AtMost`) or below (`AtLeast`)
    /// `limit`.
    Bound {
        text: String,
        expr: SizeExpr,
        at_most: bool,
        limit: i64,
    },
}

impl Constraint {
    /// Why point `values` is skipped (with its area, for an area rule), or `None` when it passes. `area` is
    /// asked for only by an area rule. An expression that cannot be evaluated (overflow, inexact division)
    /// skips the point with that reason.
    fn skips(
        &self,
        values: &[(String, i64)],
        area: &mut dyn FnMut() -> Option<f64>,
    ) -> Option<(String, Option<f64>)> {
        let sig = crate::reproduce::render::sig;
        match self {
            Constraint::AreaAtMost(max) => {
                let a = area()?;
                (a > *max).then(|| {
                    (
                        format!("area {} mm² is over the constraint's {max} mm²", sig(a)),
                        Some(a),
                    )
                })
            }
            Constraint::Bound {
                text,
                expr,
                at_most,
                limit,
            } => {
                // Later values override earlier ones, as for `--set`.
                let lookup = |n: &str| values.iter().rev().find(|(k, _)| k == n).map(|(_, v)| *v);
                let v = match expr.eval(&lookup) {
                    Ok(v) => v,
                    Err(e) => return Some((format!("constraint `{text}`: {}", e.message), None)),
                };
                let (fails, word) = if *at_most {
                    (v > *limit, "over")
                } else {
                    (v < *limit, "under")
                };
                fails.then(|| {
                    (
                        format!("`{text}` = {v} is {word} the constraint's {limit}"),
                        None,
                    )
                })
            }
        }
    }
}

/// What became of one point: a run (an arch's or a GPU's), or a skip with its reason (and the area, for an area
/// rule).
enum Outcome {
    Arch(Box<crate::report::RunReport>),
    Gpu(Box<crate::gpu::report::GpuReport>),
    Skipped(String, Option<f64>),
}

/// What a plot draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum PlotKind {
    /// `y` against `x`, one line per value of the `group` columns.
    #[default]
    Line,
    /// Energy stacked by component (`energy_pj.*`) at each `x`, one panel per group.
    Energy,
    /// `y` against `x` (area and latency by default) with the Pareto front (both minimised) drawn and the
    /// dominated points greyed.
    Pareto,
}

/// One plot of a sweep file's `plots` section, or of `einsim plot`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotSpec {
    pub name: String,
    pub kind: PlotKind,
    pub x: String,
    pub y: String,
    pub group: Vec<String>,
    /// Only rows whose column has this value (compared as integers when both read as one, e.g. `16M`).
    pub filter: Vec<(String, String)>,
}

/// A checked sweep file.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// FNV-1a of the sweep file's text: journals and shards carry it, so a resume or merge with a different file
    /// is refused.
    pub hash: u64,
    pub designs: Vec<Design>,
    pub model: Option<SourceFile>,
    pub cascade: Option<String>,
    /// The kernel GPU designs run (`binding:`); none: each GPU's first.
    pub binding: Option<String>,
    /// Fixed `key=value` overrides applied to every point before its axis values.
    pub sets: Vec<(String, i64)>,
    /// Axis groups, outermost first: a group of one is a plain axis; a group of several is zipped (equal
    /// lengths, checked).
    pub axes: Vec<Vec<(String, Vec<i64>)>>,
    /// Rules that skip points (rows with status `skipped`), each tested before the point is simulated.
    pub constraints: Vec<Constraint>,
    pub plots: Vec<PlotSpec>,
}

/// FNV-1a, 64 bits: stable across platforms and releases (unlike `std`'s hasher).
pub fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `--shard i/n`: this run does the points whose index is `i` modulo `n` (interleaved, so that expensive corners
/// of the grid spread over all shards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parse `i/n` (0 ≤ i < n); a bad one is a located error on the command line.
    pub fn parse(arg: &str) -> Result<Shard, Diagnostics> {
        let prefix = "--shard ";
        let file = SourceFile::new("<command line>", format!("{prefix}{arg}"));
        let at = |s: usize, e: usize| Span::new(prefix.len() + s, prefix.len() + e);
        let fail = |span: Span, msg: String, label: &str| {
            Err(Diagnostics::one(
                &file,
                Diagnostic::new(span, msg, label)
                    .with_note("shards are numbered from 0: `--shard 0/100` … `--shard 99/100`"),
            ))
        };
        let Some((i, n)) = arg.split_once('/') else {
            return fail(
                at(0, arg.len()),
                format!("`{arg}` is not a shard i/n"),
                "expected i/n, e.g. 3/100",
            );
        };
        let (Ok(index), Ok(count)) = (i.trim().parse::<u64>(), n.trim().parse::<u64>()) else {
            return fail(
                at(0, arg.len()),
                format!("`{arg}` is not a shard i/n"),
                "expected two whole numbers i/n, e.g. 3/100",
            );
        };
        if count == 0 {
            return fail(
                at(i.len() + 1, arg.len()),
                "a sweep cannot be split into 0 shards".into(),
                "expected at least 1",
            );
        }
        if index >= count {
            return fail(
                at(0, i.len()),
                format!("shard {index} does not exist in {count} shards"),
                &format!("expected 0 to {}", count - 1),
            );
        }
        Ok(Shard { index, count })
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// The file stem of this shard's journal and output: `sweep` for a whole run, `shard-3-of-100` for one shard.
    pub fn stem(&self) -> String {
        if *self == Shard::ALL {
            "sweep".into()
        } else {
            format!("shard-{}-of-{}", self.index, self.count)
        }
    }
}

/// Setups already loaded, by design and the values of its arch parameters: loading an arch (parse, resolve,
/// check every binding) costs more than many simulations, and most points share one.
#[derive(Default)]
pub struct SetupCache(Mutex<HashMap<SetupKey, Arc<Result<Setup, String>>>>);

/// A design (by index) and the values of its arch parameters.
type SetupKey = (usize, Vec<(String, i64)>);

impl Plan {
    /// The number of points: designs × each axis group's length.
    pub fn len(&self) -> u64 {
        self.radices().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn radices(&self) -> Vec<u64> {
        std::iter::once(self.designs.len() as u64)
            .chain(self.axes.iter().map(|g| g[0].1.len() as u64))
            .collect()
    }

    /// The axis names in column order (`design` first).
    pub fn axis_names(&self) -> Vec<String> {
        std::iter::once("design".to_string())
            .chain(self.axes.iter().flatten().map(|(k, _)| k.clone()))
            .collect()
    }

    /// Point `i`: its design and its axis values, in column order. The design is outermost, then the axes in
    /// file order; the last axis varies fastest.
    pub fn point(&self, i: u64) -> (usize, Vec<(String, i64)>) {
        let radices = self.radices();
        let mut digits = vec![0u64; radices.len()];
        let mut rest = i;
        for (d, r) in digits.iter_mut().zip(&radices).rev() {
            *d = rest % r;
            rest /= r;
        }
        let mut values = Vec::new();
        for (g, &d) in self.axes.iter().zip(&digits[1..]) {
            for (k, vs) in g {
                values.push((k.clone(), vs[d as usize]));
            }
        }
        (digits[0] as usize, values)
    }

    /// The points of one shard.
    pub fn indices(&self, shard: Shard) -> impl Iterator<Item = u64> {
        (shard.index..self.len()).step_by(shard.count as usize)
    }

    /// Run point `i` and render it as one JSON line (no newline): its index, design and axis values, then its
    /// status and every headline output, or its error. Never fails: a point that fails is a row saying why.
    pub fn eval(&self, i: u64, lookup: SyncLookup, cache: &SetupCache) -> String {
        let (d, values) = self.point(i);
        let design = &self.designs[d];
        let mut fields: Vec<(String, Cell)> = vec![
            ("point".into(), Cell::Int(i as i128)),
            ("design".into(), Cell::Text(design.label.clone())),
        ];
        fields.extend(
            values
                .iter()
                .map(|(k, v)| (k.clone(), Cell::Int(*v as i128))),
        );
        let all: Vec<(String, i64)> = self.sets.iter().cloned().chain(values).collect();
        // Bounds on parameters first (no setup needed), then area (the arch resolved), then the simulation.
        let skip = |area: &mut dyn FnMut() -> Option<f64>| {
            self.constraints.iter().find_map(|c| c.skips(&all, area))
        };
        let outcome = match skip(&mut || None) {
            Some((why, area)) => Ok(Outcome::Skipped(why, area)),
            None if design.gpu => self
                .simulate_gpu(d, &all)
                .map(|r| Outcome::Gpu(Box::new(r))),
            None => self.setup(d, &all, lookup, cache).and_then(|setup| {
                match skip(&mut || Some(setup.arch.area_mm2().values().sum::<f64>())) {
                    Some((why, area)) => Ok(Outcome::Skipped(why, area)),
                    None => run::simulate(&setup, SimOptions::default())
                        .map(|r| Outcome::Arch(Box::new(r))),
                }
            }),
        };
        let status = match &outcome {
            Ok(Outcome::Skipped(..)) => "skipped",
            Ok(_) => "ok",
            Err(RunError::Internal(_)) => "internal",
            Err(_) => "error",
        };
        fields.push(("status".into(), Cell::Text(status.into())));
        match outcome {
            Ok(Outcome::Arch(r)) => {
                fields.push(("error".into(), Cell::Text(String::new())));
                row::outputs(&r, &mut fields);
            }
            Ok(Outcome::Gpu(r)) => {
                fields.push(("error".into(), Cell::Text(String::new())));
                row::gpu_outputs(&r, &mut fields);
            }
            Ok(Outcome::Skipped(why, area)) => {
                fields.push(("error".into(), Cell::Text(why)));
                if let Some(a) = area {
                    fields.push(("area_mm2".into(), Cell::Float(a)));
                }
            }
            Err(e) => fields.push(("error".into(), Cell::Text(error_text(&e)))),
        }
        row::json_line(&fields)
    }

    /// A GPU point: the workload keys, the GPU's and kernel's parameters and its unit figures (`mufu.rate`), as
    /// `einsim run --arch GPU --set` takes them (later values of a key override earlier ones).
    fn simulate_gpu(
        &self,
        d: usize,
        sets: &[(String, i64)],
    ) -> Result<crate::gpu::report::GpuReport, RunError> {
        let args: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (w, params) = crate::gpu::sets(&args)?;
        let g = crate::gpu::load(&self.designs[d].arch, &params).map_err(RunError::Invalid)?;
        crate::gpu::report::run(
            &g,
            self.binding.as_deref(),
            &w,
            &params,
            SimOptions::default(),
        )
    }

    /// The run setup of point `sets` on design `d`: the arch resolved with its parameters among `sets` (cached
    /// by those), the cascade evaluated with the rest.
    fn setup(
        &self,
        d: usize,
        sets: &[(String, i64)],
        lookup: SyncLookup,
        cache: &SetupCache,
    ) -> Result<Setup, RunError> {
        let design = &self.designs[d];
        // Later values of a key override earlier ones, as `--set` does.
        let mut arch_sets: Vec<(String, i64)> = Vec::new();
        for (k, v) in sets.iter().filter(|(k, _)| design.arch_params.contains(k)) {
            arch_sets.retain(|(k2, _)| k2 != k);
            arch_sets.push((k.clone(), *v));
        }
        arch_sets.sort();
        let key = (d, arch_sets);
        let cached = cache.0.lock().ok().and_then(|c| c.get(&key).cloned());
        let base = match cached {
            Some(b) => b,
            None => {
                let args: Vec<String> = key.1.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let b = Arc::new(
                    run::setup(
                        &design.arch,
                        self.model.as_ref(),
                        self.cascade.as_deref(),
                        &args,
                        lookup,
                    )
                    .and_then(|mut s| {
                        if let Some(name) = &self.binding {
                            s.force_binding(name)?;
                        }
                        Ok(s)
                    })
                    .map_err(|e| error_text(&e)),
                );
                if let Ok(mut c) = cache.0.lock() {
                    c.insert(key, b.clone());
                }
                b
            }
        };
        let base = match base.as_ref() {
            Ok(b) => b,
            Err(e) => return Err(RunError::Mapping(e.clone())),
        };
        base.with_sets(sets)
    }

    /// The first line of a journal or shard file: which sweep (by its text's hash) and which shard it holds.
    pub fn header(&self, shard: Shard) -> String {
        row::json_line(&[
            ("sweep".into(), Cell::Text(self.name.clone())),
            ("hash".into(), Cell::Text(format!("{:016x}", self.hash))),
            ("points".into(), Cell::Int(self.len() as i128)),
            ("shard".into(), Cell::Text(shard.label())),
        ])
    }

    /// The finished points of a journal (or shard file) written for this plan and shard: (index, line). A last
    /// line cut short by an interrupted run is dropped (that point runs again). A journal of another sweep file,
    /// or another shard, is a located error.
    pub fn read_journal(
        &self,
        journal: &SourceFile,
        shard: Shard,
    ) -> Result<Vec<(u64, String)>, Diagnostics> {
        let mut lines = journal.text.split_inclusive('\n');
        let first = lines.next().unwrap_or("");
        let expected = self.header(shard);
        if first.trim_end() != expected {
            let got = row::parse_line(first.trim_end());
            let field = |k: &str| {
                got.as_ref()
                    .and_then(|f| f.iter().find(|(n, _)| n == k).map(|(_, c)| c.text()))
            };
            let why = match (field("hash"), field("shard")) {
                (Some(h), _) if h != format!("{:016x}", self.hash) => format!(
                    "`{}` was written by a different sweep file (or another version of this one)",
                    journal.name
                ),
                (_, Some(s)) if s != shard.label() => {
                    format!("`{}` holds shard {s}, not {}", journal.name, shard.label())
                }
                _ => format!("`{}` is not a journal of this sweep", journal.name),
            };
            return Err(Diagnostics::one(
                journal,
                Diagnostic::new(
                    Span::new(0, first.trim_end().len()),
                    why,
                    format!("expected {expected}"),
                )
                .with_note(
                    "delete the directory's journal (or use another --out) to start this sweep afresh",
                ),
            ));
        }
        let mut done = Vec::new();
        let mut seen = BTreeSet::new();
        let len = self.len();
        for l in lines {
            if !l.ends_with('\n') {
                break; // cut short by an interruption
            }
            let l = l.trim_end();
            let Some(fields) = row::parse_line(l) else {
                continue;
            };
            let point = fields
                .iter()
                .find(|(k, _)| k == "point")
                .and_then(|(_, c)| match c {
                    Cell::Int(i) => u64::try_from(*i).ok(),
                    _ => None,
                });
            if let Some(p) = point.filter(|&p| p < len && p % shard.count == shard.index) {
                if seen.insert(p) {
                    done.push((p, l.to_string()));
                }
            }
        }
        Ok(done)
    }

    /// Join the shard files of a sweep split `n` ways into the lines one whole run has, in point order. Every
    /// shard must be there, complete, and of this sweep file.
    pub fn merge(&self, shards: &[SourceFile]) -> Result<Vec<(u64, String)>, MergeError> {
        let Some(n) = shards.iter().find_map(|s| {
            let first = s.text.lines().next()?;
            let f = row::parse_line(first)?;
            let sh = f.iter().find(|(k, _)| k == "shard")?.1.text();
            Some(Shard::parse(&sh).ok()?.count)
        }) else {
            return Err(MergeError::Usage(
                "no shard files (shard-I-of-N.jsonl) to merge".into(),
            ));
        };
        let mut all: Vec<(u64, String)> = Vec::new();
        let mut have = BTreeSet::new();
        for s in shards {
            let index = (0..n).find(|i| {
                s.text.lines().next().map(str::trim_end)
                    == Some(
                        self.header(Shard {
                            index: *i,
                            count: n,
                        })
                        .as_str(),
                    )
            });
            let Some(index) = index else {
                // Explain with the header check against the shard its name claims (or the first).
                let claimed = shard_of_name(&s.name).unwrap_or(Shard { index: 0, count: n });
                return Err(MergeError::Invalid(
                    self.read_journal(s, claimed)
                        .err()
                        .unwrap_or_else(|| mixed_split(s, n)),
                ));
            };
            let shard = Shard { index, count: n };
            let lines = self.read_journal(s, shard).map_err(MergeError::Invalid)?;
            let expected = self.indices(shard).count();
            if lines.len() != expected {
                return Err(MergeError::Usage(format!(
                    "`{}` has {} of shard {}'s {expected} points; run `einsim sweep --shard {}` again to finish it",
                    s.name,
                    lines.len(),
                    shard.label(),
                    shard.label()
                )));
            }
            have.insert(index);
            all.extend(lines);
        }
        let missing: Vec<String> = (0..n)
            .filter(|i| !have.contains(i))
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::Usage(format!(
                "missing shard{} {} of {n}",
                if missing.len() > 1 { "s" } else { "" },
                abbreviate(&missing)
            )));
        }
        all.sort_by_key(|(p, _)| *p);
        all.dedup_by_key(|(p, _)| *p);
        Ok(all)
    }

    /// What a finished sweep writes: `sweep.jsonl` (every point, in order) and `sweep.csv` (the same rows, one
    /// column per axis and output). `lines` are the points' JSON lines in point order.
    pub fn outputs(&self, lines: &[(u64, String)]) -> (String, String) {
        let mut jsonl = String::new();
        for (_, l) in lines {
            let _ = writeln!(jsonl, "{l}");
        }
        let csv = row::csv(&self.axis_names(), lines.iter().map(|(_, l)| l.as_str()));
        (jsonl, csv)
    }
}

/// Why shards could not be merged: a located problem in a shard file (exit 1), or a missing or unfinished
/// shard (exit 1, unlocated).
#[derive(Debug)]
pub enum MergeError {
    Invalid(Diagnostics),
    Usage(String),
}

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MergeError::Invalid(d) => write!(f, "{d}"),
            MergeError::Usage(m) => writeln!(f, "error: {m}"),
        }
    }
}

fn mixed_split(s: &SourceFile, n: u64) -> Diagnostics {
    let first = s.text.lines().next().unwrap_or("");
    Diagnostics::one(
        s,
        Diagnostic::new(
            Span::new(0, first.len()),
            format!(
                "`{}` is not one of the {n} shards of this sweep (the shards were split different ways)",
                s.name
            ),
            "this header",
        ),
    )
}

/// `shard-3-of-100.jsonl` → shard 3/100.
pub fn shard_of_name(name: &str) -> Option<Shard> {
    let stem = std::path::Path::new(name).file_stem()?.to_str()?;
    let rest = stem.strip_prefix("shard-")?;
    let (i, n) = rest.split_once("-of-")?;
    Shard::parse(&format!("{i}/{n}")).ok()
}

fn abbreviate(items: &[String]) -> String {
    if items.len() <= 10 {
        items.join(", ")
    } else {
        format!("{}, … ({} in all)", items[..10].join(", "), items.len())
    }
}

/// An error as one line for a row (the first line of its rendering, without `error: `), with the location of a
/// located one.
fn error_text(e: &RunError) -> String {
    match e {
        RunError::Invalid(d) => {
            let first = d.items.first();
            let msg = first.map_or_else(|| "invalid input".to_string(), |i| i.message.clone());
            match first {
                Some(i) => {
                    let (l, c) = d.file.line_col(i.span.start as usize);
                    format!("{}:{l}:{c}: {msg}", d.file.name)
                }
                None => msg,
            }
        }
        RunError::Mapping(m) => m
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        RunError::Internal(m) => format!("internal error: {}", m.lines().next().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse() {
        assert_eq!(
            Shard::parse("3/100").unwrap(),
            Shard {
                index: 3,
                count: 100
            }
        );
        for bad in ["3/2", "0/0", "1", "a/b", "-1/3", "2/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            shard_of_name("out/shard-3-of-100.jsonl"),
            Some(Shard {
                index: 3,
                count: 100
            })
        );
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
