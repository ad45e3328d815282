//! GPUs: an SM's units as engine servers, kernels (FA2, FA3, FA4) as data, a chip of N SMs under a persistent
//! longest-processing-time-first tile scheduler.
//!
//! Phases, as for the accelerators: [`load`] parses and checks a GPU file (`arch/gpu/*.ron`) into a [`Gpu`];
//! [`kernel::plan`] binds a kernel to a workload (tile per head dim, parameters, fits) and builds, for a work item
//! of a given number of K/V steps, an engine [`crate::mapping::Program`]; [`crate::sim::simulate`] times it;
//! [`grid`] places the work items on the SMs; [`report`] builds the [`report::GpuReport`]. No kernel or GPU
//! is named in Rust: only unit kinds ([`units`]).

pub mod expr;
pub mod file;
pub mod grid;
pub mod kernel;
pub mod report;
pub mod reproduce;
pub mod units;

use crate::diag::{locate, Diagnostic, Diagnostics, SourceFile, Span};
use file::{Fig, GpuFile, KernelFile, UnitFile, Work};
use std::collections::BTreeMap;
use units::{Issue, Kind, Memory, Pipe, TensorCore, Unit};

/// A resolved GPU: numbers, not expressions; its kernels still as written (they are resolved per workload).
#[derive(Clone, Debug)]
pub struct Gpu {
    pub name: String,
    pub path: String,
    pub description: String,
    pub generation: String,
    pub features: Vec<String>,
    pub clock_hz: f64,
    pub sms: u64,
    pub peak_flops: f64,
    pub hbm: f64,
    pub l2: f64,
    pub tdp: f64,
    /// Resolved `params`, `clock` and `sms`: names kernels may use.
    pub vars: BTreeMap<String, f64>,
    pub units: Vec<Unit>,
    /// Every unit figure by its `--set` name (`mufu.rate`, `tc.flops.bf16`, `smem.bandwidth`): what a design-space
    /// sweep varies to ask "what if this unit were faster".
    pub figures: Vec<String>,
    /// The unit figures `--set` replaced: (name, the file's value, the value used). Reports list them.
    pub overrides: Vec<(String, f64, f64)>,
    pub kernels: Vec<KernelFile>,
    /// The file, for kernel errors found at run time.
    pub file: SourceFile,
}

impl Gpu {
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }

    /// The names `--set` may override on this GPU running `kernel` (besides the workload keys): the kernel's
    /// parameters, the GPU's `params` and its unit figures. `clock` and `sms` are derived before any kernel runs,
    /// so they are not among them.
    pub fn settable<'a>(&'a self, kernel: Option<&'a KernelFile>) -> Vec<&'a str> {
        let mut keys: Vec<&str> = kernel
            .into_iter()
            .flat_map(|k| k.params.keys().map(String::as_str))
            .collect();
        keys.extend(
            self.vars
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "clock" && *k != "sms"),
        );
        keys.extend(self.figures.iter().map(String::as_str));
        keys
    }
}

/// Whether a file is a GPU file (`Gpu(...)`) rather than an accelerator `Arch(...)`.
pub fn is_gpu_file(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .is_some_and(|l| l.starts_with("Gpu("))
}

struct Ctx<'a> {
    file: &'a SourceFile,
    errors: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&self, needle: &str) -> Span {
        locate(&self.file.text, needle, 0)
    }
    fn error(&mut self, needle: &str, message: String, label: &str) {
        let span = self.at(needle);
        self.errors.push(Diagnostic::new(span, message, label));
    }
    /// Where `"key": ` (a unit or parameter entry) or `name: "key"` (a kernel) starts, for locating what follows it.
    fn entry(&self, key: &str) -> usize {
        let text = &self.file.text;
        text.find(&format!("\"{key}\": "))
            .or_else(|| text.find(&format!("name: \"{key}\"")))
            .unwrap_or(0)
    }
    /// An error at the first `needle` after the entry `scope` (a parameter, or a kernel's list).
    fn error_after(&mut self, scope: &str, needle: &str, message: String, label: &str) {
        let span = locate(&self.file.text, needle, self.entry(scope));
        self.errors.push(Diagnostic::new(span, message, label));
    }
    /// An error at figure `what` (`rate`, `flops.bf16`) of unit `unit`, whose expression is `needle`: located by
    /// the field's name within the unit, since two figures of one unit may read the same (`"16"`).
    fn error_at_figure(
        &mut self,
        unit: &str,
        what: &str,
        needle: &str,
        message: String,
        label: &str,
    ) {
        let field = match what.strip_prefix("flops.") {
            Some(dtype) => format!("\"{dtype}\": Fig("),
            None => format!("{what}: Fig("),
        };
        self.error_in_field(unit, &field, needle, message, label);
    }
    /// An error at `needle` inside the field that starts with `field` (`rate: Fig(`, `"warps": `) after the entry
    /// `scope`: two fields of one entry may read the same, so the field is found first.
    fn error_in_field(
        &mut self,
        scope: &str,
        field: &str,
        needle: &str,
        message: String,
        label: &str,
    ) {
        let text = &self.file.text;
        let from = self.entry(scope);
        let at = text
            .get(from..)
            .and_then(|t| t.find(field))
            .map_or(from, |i| from + i + field.len());
        let span = locate(text, needle, at);
        self.errors.push(Diagnostic::new(span, message, label));
    }
    /// An error at `needle` inside task `task` of kernel `kernel` (a unit or task name also appears elsewhere).
    fn error_in_task(
        &mut self,
        kernel: &str,
        task: &str,
        needle: &str,
        message: String,
        label: &str,
    ) {
        let text = &self.file.text;
        let after = |from: usize, key: &str| {
            text.get(from..)
                .and_then(|t| t.find(&format!("name: \"{key}\"")))
                .map_or(from, |i| from + i)
        };
        let from = after(after(0, kernel), task);
        let span = locate(text, needle, from);
        self.errors.push(Diagnostic::new(span, message, label));
    }
    /// Evaluate a figure; a bad expression or an empty source is an error located at the expression.
    fn fig(&mut self, what: &str, f: &Fig, vars: &BTreeMap<String, f64>) -> f64 {
        if f.2.trim().is_empty() {
            self.error(
                &f.0,
                format!("figure `{what}` has no source"),
                "every figure says where it comes from (or \"assumed\" and why)",
            );
        }
        match expr::eval(&f.0, vars) {
            Ok(v) => v,
            Err(e) => {
                let s = self.at(&f.0);
                let at = (s.start as usize + e.at).min(s.end as usize);
                self.errors.push(Diagnostic::new(
                    Span::new(at, at.max(s.end as usize)),
                    format!("figure `{what}`: {}", e.message),
                    "in this expression",
                ));
                f64::NAN
            }
        }
    }
}

/// A figure `pos` has checked is not negative; one that divides must not be 0 either (located at its unit).
fn nonzero(cx: &mut Ctx, unit: &str, what: &str, v: f64, why: &str) {
    if v == 0.0 {
        cx.error(
            unit,
            format!("`{unit}.{what}` must be positive: {why}"),
            "this unit",
        );
    }
}

/// " (set by --set)" where `key`'s value came from the command line, for messages about it.
fn by_set(sets: &BTreeMap<String, f64>, key: &str) -> &'static str {
    if sets.contains_key(key) {
        " (set by --set)"
    } else {
        ""
    }
}

/// Parse and check a GPU file, with `--set` overrides of its `params` and of its unit figures (`mufu.rate`). Every
/// problem found is reported.
pub fn load(file: &SourceFile, sets: &BTreeMap<String, f64>) -> Result<Gpu, Diagnostics> {
    let g: GpuFile =
        crate::cascade::parse_ron_as(file, "`Gpu(...)`").map_err(|d| Diagnostics::one(file, d))?;
    let mut cx = Ctx {
        file,
        errors: vec![],
    };
    let mut vars = BTreeMap::new();
    for (k, f) in &g.params {
        let v = match sets.get(k) {
            Some(v) => *v,
            None => cx.fig(k, f, &vars),
        };
        vars.insert(k.clone(), v);
    }
    for (p, lo, hi, why) in &g.ranges {
        match vars.get(p) {
            None => cx.error(
                p,
                format!("ranges: `{p}` is not one of the GPU's params"),
                "expected a name from `params`",
            ),
            Some(v) if !(*v >= *lo && *v <= *hi) => cx.error_after(
                p,
                &g.params[p].0,
                format!("`{p}` = {v}{} is outside [{lo}, {hi}]", by_set(sets, p)),
                why,
            ),
            Some(_) => {}
        }
    }
    let clock = cx.fig("clock", &g.clock, &vars);
    if clock.is_finite() && clock <= 0.0 {
        cx.error(
            &g.clock.0,
            format!("the clock must be positive, got {clock} Hz"),
            "every per-cycle figure is counted in it",
        );
    }
    let sms = cx.fig("sms", &g.sms, &vars);
    vars.insert("clock".into(), clock);
    vars.insert("sms".into(), sms);
    let peak = cx.fig("peak", &g.peak, &vars);
    let hbm = cx.fig("hbm", &g.hbm, &vars);
    let l2 = cx.fig("l2", &g.l2, &vars);
    let tdp = cx.fig("tdp", &g.tdp, &vars);
    // Each divides something in a report (percent of peak, seconds of HBM traffic, energy per run): 0 or less is
    // a typo, not a design.
    for (what, v, f) in [
        ("peak", peak, &g.peak),
        ("hbm", hbm, &g.hbm),
        ("l2", l2, &g.l2),
        ("tdp", tdp, &g.tdp),
    ] {
        if v.is_finite() && v <= 0.0 {
            cx.error(&f.0, format!("`{what}` must be positive, got {v}"), "here");
        }
    }
    if sms.is_finite() && (sms < 1.0 || sms.fract() != 0.0 || sms > u32::MAX as f64) {
        cx.error(
            &g.sms.0,
            format!("`sms` must be a whole number from 1 to 2^32 - 1, got {sms}"),
            "here",
        );
    }
    let mut units = vec![];
    let mut figures = vec![];
    let mut overrides = vec![];
    for (name, u) in &g.units {
        // A figure of this unit, or its `--set` replacement. An override must be positive (a latency may be 0):
        // the files' 0 bandwidth means "not modelled", which a sweep axis must not slip into.
        let mut pos = |cx: &mut Ctx, what: &str, f: &Fig, v: &BTreeMap<String, f64>| {
            let key = format!("{name}.{what}");
            // The file's figure is still evaluated, so its own errors are reported whatever overrides it.
            let own = cx.fig(&key, f, v);
            let set = sets.get(&key).copied();
            let x = set.unwrap_or(own);
            let floor_ok = if what == "latency" { x >= 0.0 } else { x > 0.0 };
            let rejected = set.is_some() && !(x.is_finite() && floor_ok);
            if rejected {
                cx.error_at_figure(
                    name,
                    what,
                    &f.0,
                    format!(
                        "--set {key}={x}: must be a finite number{} (it replaces the file's {own})",
                        if what == "latency" { " ≥ 0" } else { " > 0" }
                    ),
                    "the figure it replaces",
                );
            } else if x.is_finite() && x < 0.0 {
                cx.error_at_figure(
                    name,
                    what,
                    &f.0,
                    format!("`{key}` must not be negative, got {x}"),
                    "here",
                );
            }
            if set.is_some() {
                overrides.push((key.clone(), own, x));
            }
            figures.push(key);
            // A rejected override is reported once: NaN passes every later check of this figure silently.
            if rejected {
                f64::NAN
            } else {
                x
            }
        };
        let (kind, latency) = match u {
            UnitFile::TensorCore {
                flops,
                a_from,
                b_from,
                instr_m,
                sustained,
                latency,
            } => {
                let flops: BTreeMap<String, f64> = flops
                    .iter()
                    .map(|(k, f)| (k.clone(), pos(&mut cx, &format!("flops.{k}"), f, &vars)))
                    .collect();
                let s = pos(&mut cx, "sustained", sustained, &vars);
                if s.is_finite() && !(s > 0.0 && s <= 1.0) {
                    let key = format!("{name}.sustained");
                    let by = by_set(sets, &key);
                    cx.error_at_figure(
                        name,
                        "sustained",
                        &sustained.0,
                        format!("`{key}` must lie in (0, 1], got {s}{by}"),
                        "a fraction of peak",
                    );
                }
                let tc = TensorCore {
                    flops,
                    a_from: a_from.clone(),
                    b_from: b_from.clone(),
                    instr_m: pos(&mut cx, "instr_m", instr_m, &vars),
                    sustained: s,
                };
                nonzero(
                    &mut cx,
                    name,
                    "instr_m",
                    tc.instr_m,
                    "B is re-read per that many rows",
                );
                for (k, v) in &tc.flops {
                    nonzero(
                        &mut cx,
                        name,
                        &format!("flops.{k}"),
                        *v,
                        "an MMA must finish",
                    );
                }
                (Kind::TensorCore(tc), Some(latency))
            }
            UnitFile::Pipe {
                rate,
                per_instr,
                latency,
            } => {
                let rate = pos(&mut cx, "rate", rate, &vars);
                nonzero(&mut cx, name, "rate", rate, "a pipe retires operations");
                let per_instr = pos(&mut cx, "per_instr", per_instr, &vars);
                nonzero(
                    &mut cx,
                    name,
                    "per_instr",
                    per_instr,
                    "a warp instruction does some work",
                );
                (Kind::Pipe(Pipe { rate, per_instr }), Some(latency))
            }
            UnitFile::Issue { rate } => {
                let rate = pos(&mut cx, "rate", rate, &vars);
                nonzero(&mut cx, name, "rate", rate, "an SM issues instructions");
                // Issue takes no time of its own between units: a pipe's latency already counts from issue.
                (Kind::Issue(Issue { rate }), None)
            }
            UnitFile::Memory {
                capacity,
                bandwidth,
                latency,
            } => {
                let m = Memory {
                    capacity: pos(&mut cx, "capacity", capacity, &vars),
                    bandwidth: pos(&mut cx, "bandwidth", bandwidth, &vars),
                };
                (Kind::Memory(m), Some(latency))
            }
        };
        let latency = latency.map_or(0.0, |l| pos(&mut cx, "latency", l, &vars));
        units.push(Unit {
            name: name.clone(),
            kind,
            latency,
        });
    }
    let issuers: Vec<&str> = units
        .iter()
        .filter(|u| matches!(u.kind, Kind::Issue(_)))
        .map(|u| u.name.as_str())
        .collect();
    let has_pipe = units.iter().any(|u| matches!(u.kind, Kind::Pipe(_)));
    if has_pipe && issuers.len() != 1 {
        match issuers.len() {
            0 => cx.error(
                "units:",
                "the SM has Pipe units but no `Issue` unit: its warp schedulers issue every pipe instruction"
                    .to_string(),
                "declare one Issue unit among these",
            ),
            n => cx.error(
                issuers[1],
                format!(
                    "the SM has {n} `Issue` units ({}): one set of warp schedulers feeds its pipes",
                    issuers.join(", ")
                ),
                "a second Issue unit",
            ),
        }
    }
    let gpu = Gpu {
        name: g.name.clone(),
        path: file.name.clone(),
        description: g.description.clone(),
        generation: g.generation.clone(),
        features: g.features.clone(),
        clock_hz: clock,
        sms: sms as u64,
        peak_flops: peak,
        hbm,
        l2,
        tdp,
        vars,
        units,
        figures,
        overrides,
        kernels: g.kernels.clone(),
        file: file.clone(),
    };
    if g.kernels.is_empty() {
        cx.error(
            "kernels",
            format!("{} lists no kernels", gpu.name),
            "expected at least one Kernel(...)",
        );
    }
    for (i, k) in g.kernels.iter().enumerate() {
        if g.kernels[..i].iter().any(|o| o.name == k.name) {
            // Located at the second `name: "..."`: a binding by this name would only ever reach the first.
            let first = cx.entry(&k.name) + format!("name: \"{}\"", k.name).len();
            let span = locate(&file.text, &k.name, first);
            cx.errors.push(Diagnostic::new(
                span,
                format!("kernel `{}` is defined twice", k.name),
                "a second time",
            ));
        }
        check_kernel(&mut cx, &gpu, k);
    }
    if cx.errors.is_empty() {
        Ok(gpu)
    } else {
        Err(Diagnostics {
            file: file.clone(),
            items: cx.errors,
        })
    }
}

/// Every name in the kernel's expressions is one a run defines: the GPU's params, `clock`, `sms`, the workload's `d`
/// and `causal`, `elem`, the kernel's params and the tile's `M`, `N`, `Q`. Each expression is evaluated with all of
/// them set to 1, and everything but a failure of these values (a division by 0) is reported: an unknown name or
/// function, a syntax error. Without this, a mistake in a task that is off at the shipped settings, or in a tile
/// `einsim check` never plans, would wait for the run that reaches it.
///
/// Names are visible where a run evaluates the expression (`kernel::plan`): `elem` sees the GPU's params, `d` and
/// `causal`; each param also `elem` and the params named before it; the tile's sizes all params; only the rest
/// (window, fits, tasks) the tile's `M`, `N` and `Q`.
fn check_kernel_names(cx: &mut Ctx, gpu: &Gpu, k: &KernelFile) {
    let mut probe: BTreeMap<String, f64> = gpu.vars.keys().map(|n| (n.clone(), 1.0)).collect();
    for n in ["d", "causal"] {
        probe.insert(n.into(), 1.0);
    }
    let report = |cx: &mut Ctx, task: Option<&str>, e: &str, message: String| {
        let message = format!("kernel `{}`: {message}", k.name);
        match task {
            Some(t) => cx.error_in_task(&k.name, t, e, message, "in this expression"),
            None => cx.error_after(&k.name, e, message, "in this expression"),
        }
    };
    // `elem` and a param may read the same (`ctas_per_sm`), so these are located at their field.
    let report_field = |cx: &mut Ctx, field: &str, e: &str, message: String| {
        let message = format!("kernel `{}`: {message}", k.name);
        cx.error_in_field(&k.name, field, e, message, "in this expression");
    };
    // What the probe values themselves cause (a division by 0 at 1s) belongs to a run; anything else is the text's.
    let broken = |e: &str, probe: &BTreeMap<String, f64>| {
        expr::eval(e, probe)
            .err()
            .filter(|x| x.cause != expr::Cause::Value)
    };
    let uses = |x: &expr::ExprError, p: &str| matches!(&x.cause, expr::Cause::Unknown(n) if n == p);
    if let Some(x) = broken(&k.elem.0, &probe) {
        let message = match k.params.keys().find(|p| uses(&x, p)) {
            Some(p) => format!(
                "`elem` uses the param `{p}`: `elem` is evaluated before the params, seeing only the GPU's params, \
                 `d` and `causal`"
            ),
            None => x.message,
        };
        report_field(cx, "elem: ", &k.elem.0, message);
    }
    probe.insert("elem".into(), 1.0);
    for (name, f) in &k.params {
        if let Some(x) = broken(&f.0, &probe) {
            let message = match k.params.keys().find(|p| *p >= name && uses(&x, p)) {
                None if ["M", "N", "Q"].iter().any(|t| uses(&x, t)) => format!(
                    "param `{name}` uses the tile's size: the tile (M, N, Q) is chosen after the params"
                ),
                Some(p) if p == name => format!("param `{name}` uses itself"),
                Some(p) => format!(
                    "param `{name}` uses `{p}`, which comes after it: params are evaluated in name order, each seeing \
                     only those before it (and the GPU's params, `d`, `causal` and `elem`)"
                ),
                None => x.message,
            };
            report_field(cx, &format!("\"{name}\": "), &f.0, message);
        }
        probe.insert(name.clone(), 1.0);
    }
    // The tile's sizes are evaluated with the params, before M, N and Q exist.
    let mut tile_exprs: Vec<&str> = vec![];
    for t in &k.tiles {
        tile_exprs.extend([&t.m, &t.n, &t.q].map(String::as_str));
        if let Some((m, n, q)) = &t.causal {
            tile_exprs.extend([m, n, q].map(String::as_str));
        }
    }
    for e in tile_exprs {
        if let Some(x) = broken(e, &probe) {
            let message = match ["M", "N", "Q"].into_iter().find(|p| uses(&x, p)) {
                Some(p) => format!("a tile size uses `{p}`, which the tile's sizes define"),
                None => x.message,
            };
            report(cx, None, e, message);
        }
    }
    for n in ["M", "N", "Q"] {
        probe.insert(n.into(), 1.0);
    }
    let mut exprs: Vec<(Option<&str>, &str)> = vec![(None, &k.window.0), (None, &k.ctas.0)];
    exprs.extend(k.flops.iter().map(|f| (None, f.0.as_str())));
    exprs.extend(k.fits.iter().map(|f| (None, f.bytes.as_str())));
    for t in &k.tasks {
        let task = Some(t.name.as_str());
        match &t.work {
            Work::Mma {
                m,
                n,
                k: kk,
                b_share,
                ..
            } => exprs.extend([m, n, kk, b_share].map(|e| (task, e.as_str()))),
            Work::Ops(e) | Work::Bytes(e) => exprs.push((task, e)),
        }
        exprs.extend(t.on.iter().map(|e| (task, e.as_str())));
    }
    for (task, e) in exprs {
        if let Some(x) = broken(e, &probe) {
            report(cx, task, e, x.message);
        }
    }
}

/// Names a kernel uses: features of this generation, units of the right kind, tasks it waits for.
fn check_kernel(cx: &mut Ctx, gpu: &Gpu, k: &KernelFile) {
    check_kernel_names(cx, gpu, k);
    for r in &k.requires {
        if !gpu.features.contains(r) {
            cx.error(
                r,
                format!(
                    "kernel `{}` needs `{r}`, which {} ({}) does not have",
                    k.name, gpu.name, gpu.generation
                ),
                "a feature of another GPU generation",
            );
            cx.errors
                .last_mut()
                .expect("just pushed")
                .notes
                .push(format!("{} has: {}", gpu.name, gpu.features.join(", ")));
        }
    }
    if k.tiles.is_empty() {
        cx.error(
            &k.name,
            format!("kernel `{}` lists no tiles", k.name),
            "expected a Tile per head dim",
        );
    }
    let names: Vec<&str> = k.tasks.iter().map(|t| t.name.as_str()).collect();
    for (i, t) in k.tasks.iter().enumerate() {
        if names[..i].contains(&t.name.as_str()) {
            cx.error(
                &t.name,
                format!("task `{}` is defined twice", t.name),
                "a second time",
            );
        }
        let want = match &t.work {
            Work::Mma { a, b, .. } => {
                for o in [a, b] {
                    if !matches!(gpu.unit(o).map(|u| &u.kind), Some(Kind::Memory(_))) {
                        cx.error_in_task(
                            &k.name,
                            &t.name,
                            o,
                            format!(
                                "task `{}`: operand source `{o}` is not a Memory unit of {}",
                                t.name, gpu.name
                            ),
                            "expected a Memory unit",
                        );
                    }
                }
                "TensorCore"
            }
            Work::Ops(_) => "Pipe",
            Work::Bytes(_) => "Memory",
        };
        let got = gpu.unit(&t.unit).map(|u| match u.kind {
            Kind::TensorCore(_) => "TensorCore",
            Kind::Pipe(_) => "Pipe",
            Kind::Issue(_) => "Issue",
            Kind::Memory(_) => "Memory",
        });
        if got != Some(want) {
            let units: Vec<&str> = gpu.units.iter().map(|u| u.name.as_str()).collect();
            let article = |kind: &str| match kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
                true => "an",
                false => "a",
            };
            cx.error_in_task(
                &k.name,
                &t.name,
                &t.unit,
                format!(
                    "task `{}`: `{}` is {} but its work needs {} {want} unit",
                    t.name,
                    t.unit,
                    got.map_or("not a unit of this GPU".to_string(), |g| format!(
                        "{} {g}",
                        article(g)
                    )),
                    article(want)
                ),
                "here",
            );
            cx.errors
                .last_mut()
                .expect("just pushed")
                .notes
                .push(format!("units: {}", units.join(", ")));
        }
        for a in &t.after {
            let base = a.strip_suffix("@prev").unwrap_or(a);
            if !names.contains(&base) || (base == t.name && !a.ends_with("@prev")) {
                cx.error_in_task(
                    &k.name,
                    &t.name,
                    a,
                    format!(
                        "task `{}` waits for `{a}`, which is not another task of kernel `{}`",
                        t.name, k.name
                    ),
                    "expected a task name (or NAME@prev)",
                );
            } else if !a.ends_with("@prev") && !names[..i].contains(&base) {
                // The engine builds a step's tasks in list order and a wait within the step on one not yet built
                // would be dropped; listing order also rules out a cycle of waits.
                cx.error_in_task(
                    &k.name,
                    &t.name,
                    a,
                    format!(
                        "task `{}` waits for `{a}`, which is listed after it: within a step a task may wait only \
                         for tasks listed before it (or for NAME@prev, the previous step's)",
                        t.name
                    ),
                    "listed later",
                );
            }
        }
    }
    for (p, lo, hi, _) in &k.ranges {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            cx.error_after(
                &k.name,
                p,
                format!(
                    "kernel `{}`, ranges: `{p}` has [{lo}, {hi}], which holds no value",
                    k.name
                ),
                "expected low ≤ high",
            );
        }
    }
    let ranged = k.ranges.iter().map(|r| (&r.0, "ranges"));
    for (p, list) in ranged.chain(k.whole.iter().map(|p| (p, "whole"))) {
        if !k.params.contains_key(p) {
            let known: Vec<&str> = k.params.keys().map(String::as_str).collect();
            cx.error_after(
                &k.name,
                p,
                format!(
                    "kernel `{}`, {list}: `{p}` is not one of its parameters ({})",
                    k.name,
                    known.join(", ")
                ),
                "expected a parameter of this kernel",
            );
        }
    }
    for f in &k.fits {
        if !matches!(gpu.unit(&f.unit).map(|u| &u.kind), Some(Kind::Memory(_))) {
            cx.error(
                &f.unit,
                format!("fit `{}`: `{}` is not a Memory unit", f.what, f.unit),
                "expected a Memory unit",
            );
        }
    }
}

/// Workload keys of `--set` for GPU runs; every other key overrides a GPU or kernel parameter.
pub const WORKLOAD_KEYS: [&str; 7] = ["seq", "tokens", "hidden", "batch", "heads", "d", "causal"];

/// Split `--set KEY=VALUE` arguments into the workload and parameter overrides. Defaults follow FA4's benchmark
/// (gpus.md §3.1): 32K tokens in total, hidden 2048, head dim 128, seq 32K, non-causal.
pub fn sets(
    args: &[String],
) -> Result<(kernel::Workload, BTreeMap<String, f64>), crate::run::RunError> {
    use crate::run::RunError;
    let mut vals: BTreeMap<String, f64> = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| RunError::Mapping(format!("--set `{a}`: expected KEY=VALUE")))?;
        // Whole numbers as everywhere else (4096, 64K, 1M, 1G, 2^20); then decimals, which kernel params take.
        if let Some(n) = crate::run::parse_int(v.trim()) {
            vals.insert(k.trim().to_string(), n as f64);
            continue;
        }
        let (num, mul) = match v.trim().strip_suffix(['K', 'k']) {
            Some(n) => (n, 1024.0),
            None => match v.trim().strip_suffix('M') {
                Some(n) => (n, 1048576.0),
                None => (v.trim(), 1.0),
            },
        };
        let x: f64 = num
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| RunError::Mapping(format!("--set `{a}`: `{v}` is not a number")))?;
        vals.insert(k.trim().to_string(), x * mul);
    }
    let whole = |k: &str, default: f64| -> Result<u64, RunError> {
        let v = vals.get(k).copied().unwrap_or(default);
        if v < 1.0 || v.fract() != 0.0 || v > 2f64.powi(40) {
            return Err(RunError::Mapping(format!(
                "--set {k}: expected a whole number from 1 to 2^40, got {v}"
            )));
        }
        Ok(v as u64)
    };
    let seq = whole("seq", 32768.0)?;
    let d = whole("d", 128.0)?;
    let tokens = whole("tokens", 32768.0)?;
    let hidden = whole("hidden", 2048.0)?;
    // batch and heads may be given directly or derived (batch = tokens / seq, heads = hidden / d), not both.
    for (direct, derived) in [("batch", "tokens"), ("heads", "hidden")] {
        if vals.contains_key(direct) && vals.contains_key(derived) {
            return Err(RunError::Mapping(format!(
                "--set {direct} and --set {derived} both fix {direct}: give one"
            )));
        }
    }
    let batch = match vals.get("batch") {
        Some(_) => whole("batch", 1.0)?,
        // Explicit tokens must be whole sequences; the default 32K gives at least one sequence of any length.
        None if vals.contains_key("tokens") && tokens % seq != 0 => {
            return Err(RunError::Mapping(format!(
                "tokens {tokens} is not a multiple of seq {seq} (batch = tokens / seq); set batch instead"
            )))
        }
        None => (tokens / seq).max(1),
    };
    let heads = match vals.get("heads") {
        Some(_) => whole("heads", 1.0)?,
        None if hidden % d == 0 => hidden / d,
        None => {
            return Err(RunError::Mapping(format!(
                "hidden {hidden} is not a multiple of head dim {d}; set heads"
            )))
        }
    };
    let causal = match vals.get("causal").copied() {
        None | Some(0.0) => false,
        Some(1.0) => true,
        Some(v) => {
            return Err(RunError::Mapping(format!(
                "--set causal: expected 0 or 1, got {v}"
            )))
        }
    };
    vals.retain(|k, _| !WORKLOAD_KEYS.contains(&k.as_str()));
    Ok((
        kernel::Workload {
            seq,
            batch,
            heads,
            d,
            causal,
        },
        vals,
    ))
}
