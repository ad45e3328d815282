//! Binding a kernel to a workload, and the engine program of one work item.
//!
//! A work item is what one CTA (or CTA pair) does: `Q` tiles of `M` query rows of one (batch, head), each against
//! the K/V blocks it attends to, `N` rows per step. Its program has two loops, `kv` (steps) outside `q` (its Q
//! tiles), and one template per unit a task uses: an MMA is a tensor-core template plus one template per storage
//! its operands stream from, which run side by side; its consumers wait for all of them. A pipe task (MUFU, FMA,
//! ALU) and its issue slots are each [`PIPE_CHUNKS`] chained templates, pieces served in turn. The kernel's `window`
//! is the number of tile steps in flight, which is how two Q tiles ping-pong (FA4, FA3's two consumer
//! warpgroups), how resident CTAs overlap (FA2), and how a warpgroup pipelines its own steps (FA3).

use super::file::{KernelFile, Work};
use super::units::{Kind, MmaShape};
use super::{expr, Gpu};
use crate::arch::TICKS_PER_CYCLE;
use crate::diag::{locate, Diagnostic, Diagnostics, Span};
use crate::mapping::{Dep, Loop, Program, Server, StageProgram, Template, TemplateKind};
use crate::run::RunError;
use std::collections::BTreeMap;

/// The attention problem: batch × heads of seq × seq scores at head dim d.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Workload {
    pub seq: u64,
    pub batch: u64,
    pub heads: u64,
    pub d: u64,
    pub causal: bool,
}

/// One unit's share of a task.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Part {
    pub unit: usize,
    /// Cycles at the unit's peak rate.
    pub ideal: f64,
    /// Cycles the unit is busy (the tensor core at its sustained rate; others as ideal).
    pub cycles: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Task {
    pub name: String,
    pub when: String,
    pub parts: Vec<Part>,
    /// (task index, previous step of the same Q tile)
    pub after: Vec<(usize, bool)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Fit {
    pub unit: String,
    pub what: String,
    pub bytes: f64,
    pub capacity: f64,
}

/// A kernel bound to a workload: everything the engine and the grid need.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub kernel: String,
    pub source: String,
    pub dtype: String,
    /// Rows per Q tile, K/V rows per step, Q tiles per CTA, SMs per work item, steps in flight.
    pub m: u64,
    pub n: u64,
    pub q: u64,
    pub ctas: u64,
    pub window: u32,
    /// FLOPs credited per forward attention FLOP (2.5 for a backward pass).
    pub flop_factor: f64,
    pub params: BTreeMap<String, f64>,
    pub tasks: Vec<Task>,
    pub fits: Vec<Fit>,
}

fn invalid(gpu: &Gpu, span: Span, message: String, label: &str) -> RunError {
    RunError::Invalid(Diagnostics::one(
        &gpu.file,
        Diagnostic::new(span, message, label),
    ))
}

/// The kernel named `name` (the GPU's first if none), bound to `w` with `sets` overriding its parameters.
pub fn plan(
    gpu: &Gpu,
    name: Option<&str>,
    w: &Workload,
    sets: &BTreeMap<String, f64>,
) -> Result<Plan, RunError> {
    let k: &KernelFile = match name {
        None => gpu.kernels.first(),
        Some(n) => gpu.kernels.iter().find(|k| k.name == n),
    }
    .ok_or_else(|| {
        let known: Vec<&str> = gpu.kernels.iter().map(|k| k.name.as_str()).collect();
        RunError::Mapping(format!(
            "{} has no binding `{}`; its bindings: {}",
            gpu.name,
            name.unwrap_or(""),
            known.join(", ")
        ))
    })?;
    let known = gpu.settable(Some(k));
    for key in sets.keys() {
        if !known.contains(&key.as_str()) {
            let params: Vec<&str> = known
                .iter()
                .copied()
                .filter(|n| !gpu.figures.iter().any(|f| f == n))
                .collect();
            let units: Vec<&str> = gpu.units.iter().map(|u| u.name.as_str()).collect();
            return Err(RunError::Mapping(format!(
                "--set {key}: not a workload key ({}), a parameter of {} or its binding `{}` ({}), nor a unit \
                 figure UNIT.FIGURE (units {}; e.g. `{}`){}",
                super::WORKLOAD_KEYS.join(", "),
                gpu.name,
                k.name,
                params.join(", "),
                units.join(", "),
                gpu.figures.first().map_or("", String::as_str),
                crate::binding::did_you_mean(key, &known)
            )));
        }
    }
    let text = &gpu.file.text;
    let from = locate(text, &k.name, 0).start as usize;
    let at = |needle: &str| locate(text, needle, from);
    let ev = |what: &str, e: &str, vars: &BTreeMap<String, f64>| {
        expr::eval(e, vars).map_err(|x| {
            invalid(
                gpu,
                at(e),
                format!("kernel `{}`, {what}: {}", k.name, x.message),
                "in this expression",
            )
        })
    };
    // GPU params and unit figures are applied when the GPU is loaded: a `--set` of one that the loaded GPU does not
    // carry would be silently ignored.
    for (key, v) in sets {
        let figure = gpu.figures.contains(key)
            && !gpu
                .overrides
                .iter()
                .any(|(k, _, used)| k == key && used == v);
        let param = !k.params.contains_key(key) && gpu.vars.get(key).is_some_and(|x| x != v);
        if figure || param {
            return Err(RunError::Internal(format!(
                "--set {key}={v} reached the run but not the loading of {} (`gpu::load` takes the same sets)",
                gpu.name
            )));
        }
    }
    let mut vars = gpu.vars.clone();
    vars.insert("d".into(), w.d as f64);
    vars.insert("causal".into(), if w.causal { 1.0 } else { 0.0 });
    vars.insert("elem".into(), ev("elem", &k.elem.0, &vars)?);
    let mut params = BTreeMap::new();
    for (p, f) in &k.params {
        let v = match sets.get(p) {
            Some(v) => *v,
            None => ev(p, &f.0, &vars)?,
        };
        vars.insert(p.clone(), v);
        params.insert(p.clone(), v);
    }
    // In name order, the order params are evaluated in: a param out of range is reported before the ones derived
    // from it (`cta_group=0` before `kv_stages = 3·cta_group`).
    let mut ranges: Vec<_> = k.ranges.iter().collect();
    ranges.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, lo, hi, why) in ranges {
        let v = vars.get(p).copied().unwrap_or(f64::NAN);
        if !(v >= *lo && v <= *hi) {
            return Err(invalid(
                gpu,
                at(p),
                format!("kernel `{}`: `{p}` = {v} is outside [{lo}, {hi}]", k.name),
                why,
            ));
        }
    }
    for p in &k.whole {
        let v = vars.get(p).copied().unwrap_or(f64::NAN);
        if v.fract() != 0.0 {
            return Err(invalid(
                gpu,
                at(p),
                format!("kernel `{}`: `{p}` = {v} must be a whole number", k.name),
                "a count or a switch",
            ));
        }
    }
    let tile = k.tiles.iter().find(|t| t.d == w.d).ok_or_else(|| {
        let ds: Vec<String> = k.tiles.iter().map(|t| t.d.to_string()).collect();
        let tiles = text[from..]
            .find("tiles:")
            .map_or(Span::new(from, from), |i| Span::new(from + i, from + i + 5));
        invalid(
            gpu,
            tiles,
            format!(
                "kernel `{}` does not support head dim {} (it supports {})",
                k.name,
                w.d,
                ds.join(", ")
            ),
            "the head dims this kernel has tiles for",
        )
    })?;
    let (m, n, q) = match (&tile.causal, w.causal) {
        (Some((m, n, q)), true) => (m, n, q),
        _ => (&tile.m, &tile.n, &tile.q),
    };
    let whole = |what: &str, e: &str, vars: &BTreeMap<String, f64>| -> Result<u64, RunError> {
        let v = ev(what, e, vars)?;
        if v < 1.0 || v.fract() != 0.0 || v > 1e12 {
            return Err(invalid(
                gpu,
                at(e),
                format!(
                    "kernel `{}`: {what} must be a whole number ≥ 1, got {v}",
                    k.name
                ),
                "here",
            ));
        }
        Ok(v as u64)
    };
    let (mv, nv, qv) = (
        whole("M", m, &vars)?,
        whole("N", n, &vars)?,
        whole("Q", q, &vars)?,
    );
    vars.insert("M".into(), mv as f64);
    vars.insert("N".into(), nv as f64);
    vars.insert("Q".into(), qv as f64);
    let ctas = whole("ctas", &k.ctas.0, &vars)?;
    let window = whole("window", &k.window.0, &vars)?.min(u32::MAX as u64) as u32;
    if ctas > gpu.sms {
        return Err(invalid(
            gpu,
            at(&k.ctas.0),
            format!(
                "kernel `{}`: {ctas} SMs per work item, but {} has {}",
                k.name, gpu.name, gpu.sms
            ),
            "here",
        ));
    }
    let mut fits = vec![];
    for f in &k.fits {
        let bytes = ev(&format!("fit `{}`", f.what), &f.bytes, &vars)?;
        let Some(Kind::Memory(mem)) = gpu.unit(&f.unit).map(|u| &u.kind) else {
            continue; // checked at load
        };
        if let Err(e) = mem.fits(bytes) {
            return Err(RunError::Invalid(Diagnostics::one(
                &gpu.file,
                Diagnostic::new(
                    at(&f.bytes),
                    format!(
                        "kernel `{}` at head dim {} ({}×{} tiles): {} does not fit `{}`: {e}",
                        k.name, w.d, mv, nv, f.what, f.unit
                    ),
                    "the footprint",
                )
                .with_note(format!(
                    "the tile for d = {} comes from: {}",
                    w.d, tile.source
                )),
            )));
        }
        fits.push(Fit {
            unit: f.unit.clone(),
            what: f.what.clone(),
            bytes,
            capacity: mem.capacity,
        });
    }
    let names: Vec<&str> = k.tasks.iter().map(|t| t.name.as_str()).collect();
    let unit_ix = |n: &str| {
        gpu.units
            .iter()
            .position(|u| u.name == n)
            .expect("checked at load")
    };
    // The SM's warp schedulers (one Issue unit, checked at load whenever there are pipes).
    let issuer = gpu
        .units
        .iter()
        .enumerate()
        .find_map(|(i, u)| match &u.kind {
            Kind::Issue(x) => Some((i, x)),
            _ => None,
        });
    let mut tasks = vec![];
    for t in &k.tasks {
        let what = format!("task `{}`", t.name);
        if let Some(on) = &t.on {
            let v = ev(&what, on, &vars)?;
            // A task is there or not: a fraction (`--set ws=0.5`) would run both of two alternatives.
            if v != 0.0 && v != 1.0 {
                let task_at = locate(text, &t.name, from).start as usize;
                return Err(invalid(
                    gpu,
                    locate(text, on, task_at),
                    format!(
                        "kernel `{}`, {what}: `on` is {v}; it must be 0 (the task is not there) or 1 (it is)",
                        k.name
                    ),
                    "in this expression",
                ));
            }
            if v == 0.0 {
                // Not there: no parts, so no templates, and deps on it come to nothing (see `program`).
                tasks.push(Task {
                    name: t.name.clone(),
                    when: format!("{:?}", t.when),
                    parts: vec![],
                    after: vec![],
                });
                continue;
            }
        }
        let ui = unit_ix(&t.unit);
        let mut parts = vec![];
        match (&t.work, &gpu.units[ui].kind) {
            (
                Work::Mma {
                    m,
                    n,
                    k: kk,
                    a,
                    b,
                    b_share,
                },
                Kind::TensorCore(tc),
            ) => {
                let shape = MmaShape {
                    m: ev(&what, m, &vars)?,
                    n: ev(&what, n, &vars)?,
                    k: ev(&what, kk, &vars)?,
                    a,
                    b,
                    b_share: ev(&what, b_share, &vars)?,
                    elem: vars["elem"],
                };
                let c = tc.mma(&k.dtype, &shape).map_err(|e| {
                    invalid(
                        gpu,
                        at(&t.name),
                        format!("kernel `{}`, {what}: {e}", k.name),
                        "this MMA",
                    )
                })?;
                parts.push(Part {
                    unit: ui,
                    ideal: c.ideal,
                    cycles: c.busy,
                });
                for (src, bytes) in c.reads {
                    let si = unit_ix(&src);
                    if let Kind::Memory(mem) = &gpu.units[si].kind {
                        let cy = mem.cycles(bytes);
                        if cy > 0.0 {
                            parts.push(Part {
                                unit: si,
                                ideal: cy,
                                cycles: cy,
                            });
                        }
                    }
                }
            }
            (Work::Ops(e), Kind::Pipe(p)) => {
                let ops = ev(&what, e, &vars)?;
                let cy = p.cycles(ops);
                parts.push(Part {
                    unit: ui,
                    ideal: cy,
                    cycles: cy,
                });
                // The warp instructions feeding the pipe take the SM's issue slots alongside (`units::Issue`).
                if let Some((ii, issue)) = issuer {
                    let cy = issue.cycles(ops, p.per_instr);
                    if cy > 0.0 {
                        parts.push(Part {
                            unit: ii,
                            ideal: cy,
                            cycles: cy,
                        });
                    }
                }
            }
            (Work::Bytes(e), Kind::Memory(mem)) => {
                let cy = mem.cycles(ev(&what, e, &vars)?);
                parts.push(Part {
                    unit: ui,
                    ideal: cy,
                    cycles: cy,
                });
            }
            _ => {
                return Err(RunError::Internal(format!(
                    "{what}: unit kind mismatch after the load check"
                )))
            }
        }
        if let Some(p) = parts
            .iter()
            .find(|p| p.cycles.is_nan() || p.cycles < 0.0 || p.cycles > 1e15)
        {
            return Err(invalid(
                gpu,
                at(&t.name),
                format!(
                    "kernel `{}`, {what}: {} cycles on `{}` is not a valid amount of work",
                    k.name, p.cycles, gpu.units[p.unit].name
                ),
                "this task",
            ));
        }
        let after = t
            .after
            .iter()
            .map(|a| {
                let (base, prev) = match a.strip_suffix("@prev") {
                    Some(b) => (b, true),
                    None => (a.as_str(), false),
                };
                (
                    names
                        .iter()
                        .position(|n| *n == base)
                        .expect("checked at load"),
                    prev,
                )
            })
            .collect();
        tasks.push(Task {
            name: t.name.clone(),
            when: format!("{:?}", t.when),
            parts,
            after,
        });
    }
    unread_override(gpu, k, &tasks)?;
    let flop_factor = match &k.flops {
        Some(f) => ev("flops", &f.0, &vars)?,
        None => 1.0,
    };
    Ok(Plan {
        kernel: k.name.clone(),
        source: k.source.clone(),
        dtype: k.dtype.clone(),
        m: mv,
        n: nv,
        q: qv,
        ctas,
        window,
        flop_factor,
        params,
        tasks,
        fits,
    })
}

/// Ticks a part occupies its unit (whole ticks, rounded up, so the bound and the engine count the same work).
pub fn ticks(cycles: f64) -> u64 {
    (cycles * TICKS_PER_CYCLE as f64).ceil() as u64
}

/// Pieces a pipe task (MUFU, FMA, ALU, and its issue slots) is served in, one after another. Two warpgroups sharing
/// a pipe interleave their instructions cycle by cycle, while an engine server runs each task whole, first come
/// first served; cut into pieces, two softmaxes on one pipe take turns instead of one waiting for the other's whole
/// task. Chosen by convergence on FA4 (B200, hd128, 8K): whole tasks (1) let the ping-pong fall into lockstep and
/// stay there (1587 TF/s at `--set emu=0.35`, 1178 at 0.36; `--set l2.bandwidth=128` 1263); 4 pieces remove that
/// cliff (1584 at 0.36, 1594 at l2.bandwidth=128) and leave the shipped TFLOP/s grid byte-identical. At `emu=1`
/// the result is 1295 TF/s at 4 pieces, 1361 at 8, 1397 at 16 and 1399 at 32; 4 keeps `einsim reproduce fa4` at
/// 0.64 s on 2 cores (8 pieces: 1.25 s, 16: 4.2 s) against its 2 s budget on one.
const PIPE_CHUNKS: u64 = 4;

/// An override the kernel never reads would change nothing and say nothing: refuse it. What reads a figure: a fit
/// naming the unit reads its `capacity`; an MMA part on a tensor core reads its `flops` for the kernel's data type,
/// its `instr_m` and `sustained`; any part on a unit (after `on` switches, so only tasks that are there) reads its
/// rate, bandwidth and latency.
fn unread_override(gpu: &Gpu, k: &KernelFile, tasks: &[Task]) -> Result<(), RunError> {
    for (key, _, _) in &gpu.overrides {
        let (unit, figure) = key.split_once('.').unwrap_or((key, ""));
        let on_unit = tasks
            .iter()
            .flat_map(|t| &t.parts)
            .any(|p| gpu.units[p.unit].name == unit);
        let unread = if figure == "capacity" {
            (!k.fits.iter().any(|f| f.unit == unit))
                .then(|| format!("kernel `{}` has no fit in `{unit}`", k.name))
        } else if let Some(dtype) = figure.strip_prefix("flops.") {
            if !on_unit {
                Some(format!("kernel `{}` runs no MMA on `{unit}`", k.name))
            } else if dtype != k.dtype {
                Some(format!(
                    "kernel `{}` runs {} MMAs (set `{unit}.flops.{}`)",
                    k.name, k.dtype, k.dtype
                ))
            } else {
                None
            }
        } else {
            (!on_unit).then(|| {
                format!(
                    "kernel `{}` has no work on `{unit}` here (with these parameters)",
                    k.name
                )
            })
        };
        if let Some(why) = unread {
            return Err(RunError::Mapping(format!(
                "--set {key}: {why}, so the override would change nothing"
            )));
        }
    }
    Ok(())
}

/// The engine program of one work item of `steps` K/V steps.
pub fn program(gpu: &Gpu, plan: &Plan, steps: u64) -> Program {
    let servers = gpu
        .units
        .iter()
        .map(|u| Server {
            name: u.name.clone(),
            latency: ticks(u.latency),
            is_memory: false,
        })
        .collect();
    let loops = vec![
        Loop {
            index: "kv".into(),
            trip: steps.max(1),
        },
        Loop {
            index: "q".into(),
            trip: plan.q,
        },
    ];
    // Per task, per part: (its first template, its chunks). A pipe part is served in [`PIPE_CHUNKS`] pieces in turn,
    // so two warpgroups sharing a pipe interleave instead of one waiting for the other's whole task.
    let chunks_of = |unit: usize| match gpu.units[unit].kind {
        Kind::Pipe(_) | Kind::Issue(_) => PIPE_CHUNKS,
        _ => 1,
    };
    let mut layout: Vec<Vec<(usize, u64)>> = vec![];
    let mut n = 0;
    for t in &plan.tasks {
        let mut parts = vec![];
        for p in &t.parts {
            let k = chunks_of(p.unit);
            parts.push((n, k));
            n += k as usize;
        }
        layout.push(parts);
    }
    let mut templates = vec![];
    for (ti, t) in plan.tasks.iter().enumerate() {
        let (iter_kv, last) = match t.when.as_str() {
            "First" => (false, false),
            "Last" => (false, true),
            _ => (true, false),
        };
        // A consumer waits for the last chunk of each part of what it waits for.
        let deps: Vec<Dep> = t
            .after
            .iter()
            .flat_map(|&(a, prev)| {
                layout[a].iter().map(move |&(first, k)| Dep {
                    template: first + k as usize - 1,
                    carried: prev.then_some(0),
                })
            })
            .collect();
        for (p, &(first, k)) in t.parts.iter().zip(&layout[ti]) {
            let work = ticks(p.cycles);
            for c in 0..k {
                let share = work / k + u64::from(c < work % k);
                templates.push(Template {
                    at_last: vec![last, false],
                    deps: if c == 0 {
                        deps.clone()
                    } else {
                        vec![Dep {
                            template: first + c as usize - 1,
                            carried: None,
                        }]
                    },
                    ..Template::new(
                        format!("{}.{}", t.name, gpu.units[p.unit].name),
                        TemplateKind::Compute(ti),
                        p.unit,
                        vec![iter_kv, true],
                        share,
                    )
                });
            }
        }
    }
    Program {
        servers,
        stages: vec![StageProgram {
            name: "item".into(),
            loops,
            templates,
            window: plan.window,
            // Warps issue out of order across the tile steps in flight (list scheduling), as the window says.
            in_order: false,
            buffer_free: u64::MAX / 4,
            resident: 0,
            buffer: String::new(),
            spill: None,
        }],
        sizes: BTreeMap::new(),
        chosen: BTreeMap::new(),
        padding: vec![],
    }
}
