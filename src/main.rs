//! The `einsim` command line: a thin layer that reads files, calls the library and prints.

use clap::{Parser, Subcommand, ValueEnum};
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::reproduce::targets::tally;
use einsim::run::{self, RunError};
use einsim::sim::SimOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod generate_cli;
mod sweep_cli;

/// Print to stdout; a closed pipe (`einsim run | head`) ends the program quietly instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if write!(std::io::stdout().lock(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

const EXAMPLES: &str = "\
Examples:
  einsim                                   FuseMax on BERT-Base, 1K tokens, batch 64 (the default run)
  einsim run --arch fusemax --workload xlm --set seq=64K
  einsim run --arch arch/fusemax.ron --set depth=1 --format json
  einsim run --cascade attention-2pass     the 2-pass cascade on the same hardware
  einsim run --cascade my.ron --workload none
                                           a cascade file at its own defaults, on the bindings of its name
  einsim passes attention-3pass            how many passes each rank needs, and why
  einsim check workloads/cascades/*.ron    validate files (exit 1 on errors)
  einsim list                              shipped archs, cascades and models";

/// `--workload none`: no model; the cascade's parameter defaults apply.
const NO_MODEL: &str = "none";

/// Exit codes: 0 success, 1 invalid input, 2 usage error, 3 internal failure.
pub(crate) const INVALID: u8 = 1;
pub(crate) const USAGE: u8 = 2;
pub(crate) const INTERNAL: u8 = 3;

#[derive(Parser)]
#[command(name = "einsim", version, about = "Cycle-approximate simulator for attention accelerators", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum Format {
    Text,
    Json,
    Md,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a cascade bound to an arch and report cycles, utilization, traffic and energy.
    #[command(
        after_help = "Example:\n  einsim run --arch fusemax --workload bert-base --set seq=4096 --format md"
    )]
    Run {
        /// Arch name (see `einsim list`) or path to an arch file.
        #[arg(long, default_value = "fusemax")]
        arch: String,
        /// Model shape name or path (sets the cascade's parameters), or `none` for the cascade's defaults
        /// [default: bert-base]. Not for GPUs, whose workload is `--set` seq, tokens, hidden, d, causal.
        #[arg(long)]
        workload: Option<String>,
        /// Override a workload or arch parameter, e.g. seq=4096, seq=1M, rows=128.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Simulate every tile instead of extrapolating the periodic steady state (slow; same result).
        #[arg(long)]
        no_extrapolate: bool,
        /// Run another cascade the arch binds (e.g. `gemm`, `attention-2pass`), or a cascade file (a value ending
        /// in .ron or containing /, relative to the arch file's directory, else the working directory) that runs
        /// on the bindings of the name it declares; default: the arch's first binding (attention).
        #[arg(long)]
        cascade: Option<String>,
        /// A GPU's kernel (`--arch b200 --binding fa4`; default: the GPU's first), or the named binding an arch
        /// must use for the cascade (`--arch flat-cloud --binding spilled`; default: the first whose working set
        /// fits). GPU runs take `--set` seq, tokens (batch = tokens / seq), hidden (heads = hidden / d), d, causal,
        /// the kernel's parameters and the GPU's unit figures (`mufu.rate`, `tc.flops.bf16`).
        #[arg(long)]
        binding: Option<String>,
    },
    /// A whole decoder model generating tokens one at a time (SpAtten): every step and layer against a KV cache
    /// that grows by one token per step, pruning from schedules or from a trace file (see the README's
    /// "Generation and traces").
    #[command(
        after_help = "Examples:\n  einsim generate --arch spatten --workload gpt2-medium-gen --trace workloads/traces/gpt2-medium-synthetic.csv\n  einsim generate --workload gpt2-small-gen --steps 8 --tokens 15,30,62 --heads 30,0,37 --set v_keep=30"
    )]
    Generate(generate_cli::Args),
    /// Pass analysis of a cascade: passes per rank, their causes and the minimum live footprint.
    #[command(
        after_help = "Example:\n  einsim passes attention-2pass --set seq=4096 --format json"
    )]
    Passes {
        /// Cascade name or path.
        #[arg(default_value = "attention-1pass")]
        cascade: String,
        /// Model shape name or path supplying parameter values, or `none` for the cascade's defaults.
        #[arg(long, default_value = "bert-base")]
        workload: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Check workload, model and arch files (an arch's bindings against the cascades they name); print every
    /// error found.
    #[command(after_help = "Example:\n  einsim check workloads/cascades/*.ron arch/fusemax.ron")]
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// List shipped archs, cascades, models and energy tables.
    List,
    /// Reproduce a paper's evaluation: run every design x model x length, compare with the published numbers
    /// and write report.md, runs.csv and plots (PNG and SVG).
    #[command(
        after_help = "Examples:\n  einsim reproduce fusemax --out reports/fusemax\n  einsim reproduce fa4 --binding fa3     only FA3's runs, ablations and targets, to reports/fa4-fa3"
    )]
    Reproduce {
        /// Which evaluation: fusemax, spatten or fa4.
        name: String,
        /// Output directory [default: reports/<name>, or reports/fa4-<binding> with --binding].
        #[arg(long)]
        out: Option<String>,
        /// fa4 only: restrict to one GPU kernel's runs (fa4, fa3 or fa2): its grid, tile rows, ablations and
        /// targets.
        #[arg(long)]
        binding: Option<String>,
        /// No progress bar (there is none anyway unless stdout and stderr are terminals).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a sweep file (designs x axes; every output of every point to sweep.csv and sweep.jsonl, plus its
    /// plots), resumably and optionally one shard of it; or, with --vary, the product of parameter values for
    /// one metric.
    #[command(
        after_help = "Examples:\n  einsim sweep reports/design-space/sweep.ron\n  einsim sweep big.ron --out runs/ --shard 3/100 --jobs 2\n  einsim sweep --arch fusemax --workload xlm --vary seq=1K,4K,16K --vary depth=1,4,16 --metric utilization.pe2d --out sweep/\n  einsim sweep --arch b200 --binding fa4 --vary seq=1K,4K,16K --vary d=64,128 --metric tflops"
    )]
    Sweep {
        /// A sweep file (RON); its outputs go beside it unless --out says otherwise.
        #[arg(conflicts_with_all = ["vary", "metric"])]
        file: Option<String>,
        /// Threads to run points on [default: one per core].
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard i of n (points whose index is i mod n), writing shard-i-of-n.jsonl; see `einsim merge`.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Arch name or path.
        #[arg(long, default_value = "fusemax")]
        arch: String,
        /// Model shape name or path, or `none` for the cascade's defaults [default: bert-base]. Not for GPUs.
        #[arg(long)]
        workload: Option<String>,
        /// A GPU's kernel (`--arch b200 --binding fa4`; default: the GPU's first), or one of an arch's named
        /// bindings forced at every point as `einsim run --binding` forces it (`--arch flat-cloud --binding
        /// spilled`). GPU points take the keys of `einsim run --arch GPU --set` (seq, tokens, hidden, batch, heads,
        /// d, causal, the kernel's parameters).
        #[arg(long, conflicts_with = "file")]
        binding: Option<String>,
        /// A parameter and its values, e.g. seq=1K,4K,16K; repeat to vary several (first = x axis).
        #[arg(
            long = "vary",
            value_name = "KEY=V1,V2,...",
            required_unless_present = "file"
        )]
        vary: Vec<einsim::sweep::Vary>,
        /// Fixed override applied to every point, e.g. batch=1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// cycles, seconds, energy, dram, utilization.<unit>, traffic.<level>, energy.<component>, or tflops (GPUs).
        #[arg(long)]
        metric: Option<einsim::sweep::Metric>,
        /// Write sweep.csv and sweep.png/.svg here.
        #[arg(long)]
        out: Option<String>,
        /// No progress bar (there is none anyway unless stdout and stderr are terminals).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Join the shard files (shard-I-of-N.jsonl) of a sweep file into exactly what one whole run writes.
    #[command(after_help = "Example:\n  einsim merge big.ron --out runs/")]
    Merge {
        /// The sweep file the shards ran.
        file: String,
        /// The directory holding the shards, and where the outputs go [default: the sweep file's].
        #[arg(long)]
        out: Option<String>,
    },
    /// Plot a sweep's CSV: a column against another, one series per group (PNG and SVG).
    #[command(
        after_help = "Examples:\n  einsim plot sweep.csv --x seq --y seconds --group design --group buffer_bytes\n  einsim plot sweep.csv --kind pareto --group design\n  einsim plot sweep.csv --kind energy --x seq --group design --where buffer_bytes=16M"
    )]
    Plot {
        csv: String,
        /// The x column [default: design; area_mm2 for pareto].
        #[arg(long)]
        x: Option<String>,
        /// The y column [default: seconds; energy_pj for energy].
        #[arg(long)]
        y: Option<String>,
        /// Columns whose values name a series (energy: a panel); repeat for several.
        #[arg(long)]
        group: Vec<String>,
        #[arg(long, value_enum, default_value = "line")]
        kind: PlotKindArg,
        /// Only rows with column=value; repeat for several.
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        filter: Vec<String>,
        /// Output path without extension [default: beside the CSV, named after the columns].
        #[arg(long)]
        out: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PlotKindArg {
    Line,
    Energy,
    Pareto,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    let command = cli.command.unwrap_or(Command::Run {
        arch: "fusemax".into(),
        workload: None,
        set: vec![],
        format: Format::Text,
        no_extrapolate: false,
        cascade: None,
        binding: None,
    });
    match command {
        Command::Run {
            arch,
            workload,
            set,
            format,
            no_extrapolate,
            cascade,
            binding,
        } => {
            let opts = SimOptions {
                extrapolate: !no_extrapolate,
                ..SimOptions::default()
            };
            if let Some(g) = gpu_file(&arch) {
                if let Some(e) = not_for_gpus(&[
                    ("--workload", workload.is_some()),
                    ("--cascade", cascade.is_some()),
                ]) {
                    return e;
                }
                return gpu_run(&g, binding.as_deref(), &set, format, opts);
            }
            let workload = workload.unwrap_or_else(|| DEFAULT_WORKLOAD.into());
            let (a, w) = match arch_and_model(&arch, &workload) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let lookup = files_near(arch_dir(&arch));
            if let Some(c) = cascade.as_deref() {
                if library::is_path(c) && lookup(Kind::Cascade, c).is_none() {
                    return usage(vec![format!(
                        "cannot read cascade file `{c}` (looked in the arch file's directory and the working directory)"
                    )]);
                }
            }
            let result =
                run::setup(&a, w.as_ref(), cascade.as_deref(), &set, &lookup).and_then(|mut s| {
                    if let Some(name) = &binding {
                        s.force_binding(name)?;
                    }
                    run::simulate(&s, opts)
                });
            match result {
                Ok(r) => {
                    match format {
                        Format::Text => out!("{}", einsim::report::text::render(&r)),
                        Format::Md => out!("{}", einsim::report::markdown::render(&r)),
                        Format::Json => {
                            outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Passes {
            cascade,
            workload,
            set,
            format,
        } => {
            let files = (resolve(Kind::Cascade, &cascade), resolve_model(&workload));
            let (Ok(c), Ok(w)) = files else {
                return usage(
                    [files.0.err(), files.1.err()]
                        .into_iter()
                        .flatten()
                        .collect(),
                );
            };
            match passes(&c, w.as_ref(), &set) {
                Ok(r) => {
                    match format {
                        Format::Json => {
                            outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
                        }
                        _ => out!("{}", einsim::report::passes::render(&r)),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Check { files } => check(&files),
        Command::Generate(args) => generate_cli::generate(args),
        Command::Reproduce {
            name,
            out,
            binding,
            quiet,
        } => reproduce_cmd(&name, out, binding.as_deref(), quiet),
        Command::Sweep {
            file: Some(file),
            jobs,
            shard,
            out,
            quiet,
            ..
        } => sweep_cli::sweep(&file, out, jobs, shard, quiet),
        Command::Sweep {
            file: None,
            shard: Some(_),
            ..
        } => usage(vec![
            "--shard splits a sweep file: einsim sweep FILE --shard I/N".into(),
        ]),
        Command::Sweep {
            file: None,
            jobs,
            arch,
            workload,
            binding,
            vary,
            set,
            metric,
            out,
            quiet,
            ..
        } => {
            let metric = metric.unwrap_or(einsim::sweep::Metric::Cycles);
            let go = || {
                sweep_cmd(
                    &arch,
                    workload.as_deref(),
                    binding.as_deref(),
                    &vary,
                    &set,
                    metric,
                    out,
                    quiet,
                )
            };
            match jobs.map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build()) {
                Some(Ok(pool)) => pool.install(go),
                Some(Err(e)) => usage(vec![format!("--jobs: {e}")]),
                None => go(),
            }
        }
        Command::Merge { file, out } => sweep_cli::merge(&file, out),
        Command::Plot {
            csv,
            x,
            y,
            group,
            kind,
            filter,
            out,
        } => {
            use einsim::sweep::plan::PlotKind;
            let kind = match kind {
                PlotKindArg::Line => PlotKind::Line,
                PlotKindArg::Energy => PlotKind::Energy,
                PlotKindArg::Pareto => PlotKind::Pareto,
            };
            sweep_cli::plot(&csv, x, y, group, kind, filter, out)
        }
        Command::List => {
            for (kind, title) in [
                (Kind::Arch, "archs"),
                (Kind::Gpu, "gpus"),
                (Kind::Cascade, "cascades"),
                (Kind::Model, "models"),
                (Kind::Energy, "energy tables"),
                (Kind::Layer, "layers"),
            ] {
                outln!("{title}: {}", library::names(kind).join(", "));
            }
            ExitCode::SUCCESS
        }
    }
}

fn passes(
    c: &SourceFile,
    w: Option<&SourceFile>,
    set: &[String],
) -> Result<einsim::passes::PassReport, RunError> {
    let cascade = einsim::cascade::load(c).map_err(RunError::Invalid)?;
    let sets = run::Sets::parse(set).map_err(RunError::Invalid)?;
    let mut ov = match w {
        Some(w) => einsim::cascade::load_model(w)
            .map_err(RunError::Invalid)?
            .overrides_for(&cascade),
        None => vec![],
    };
    ov.extend(sets.pairs);
    let env = cascade
        .with_params(&ov)
        .map_err(|e| RunError::Mapping(e.to_string()))?;
    Ok(einsim::passes::analyse(
        &cascade,
        &env.sizes,
        env.reported_params(),
    ))
}

/// `--arch` and `--workload` resolved, or the usage error naming every one that is not (exit 2).
fn arch_and_model(
    arch: &str,
    workload: &str,
) -> Result<(SourceFile, Option<SourceFile>), ExitCode> {
    match (resolve(Kind::Arch, arch), resolve_model(workload)) {
        (Ok(a), Ok(w)) => Ok((a, w)),
        (a, w) => Err(usage([a.err(), w.err()].into_iter().flatten().collect())),
    }
}

/// `--workload`: a model (a shipped name or a path), or `none` for the cascade's own defaults.
fn resolve_model(arg: &str) -> Result<Option<SourceFile>, String> {
    if arg == NO_MODEL && library::get(Kind::Model, arg).is_none() {
        return Ok(None);
    }
    resolve(Kind::Model, arg).map(Some)
}

/// The directory a file argument's relative paths start from: the file's own, unless it names a shipped file
/// (whose embedded copy has no directory on this machine).
pub(crate) fn arch_dir(arg: &str) -> Option<PathBuf> {
    if library::get(Kind::Arch, arg).is_some() {
        return None;
    }
    Path::new(arg).parent().map(Path::to_path_buf)
}

/// The lookup the library gets: shipped files by name, and a cascade given as a path (a binding's `cascade`,
/// `--cascade`; see [`library::is_path`]) read from `dir` (the arch file's directory) first, then the working
/// directory, so an arch file and the cascade files it names can be moved together.
pub(crate) fn files_near(dir: Option<PathBuf>) -> impl Fn(Kind, &str) -> Option<SourceFile> + Sync {
    move |kind, name| {
        if kind != Kind::Cascade || !library::is_path(name) {
            return library::get(kind, name);
        }
        dir.iter()
            .map(|d| d.join(name))
            .chain([PathBuf::from(name)])
            .find_map(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                Some(SourceFile::new(p.display().to_string(), text))
            })
    }
}

/// A shipped name, or a path to a file.
pub(crate) fn resolve(kind: Kind, arg: &str) -> Result<SourceFile, String> {
    if let Some(f) = library::get(kind, arg) {
        return Ok(f);
    }
    match std::fs::read_to_string(arg) {
        Ok(text) => Ok(SourceFile::new(arg, text)),
        Err(e) if arg.ends_with(".ron") || arg.contains('/') => {
            Err(format!("cannot read `{arg}`: {e}"))
        }
        Err(_) => Err(format!(
            "`{arg}` is neither a shipped {} nor a file; shipped: {}",
            match kind {
                Kind::Arch => "arch",
                Kind::Gpu => "gpu",
                Kind::Cascade => "cascade",
                Kind::Model => "model",
                Kind::Energy => "energy table",
                Kind::Layer => "layer",
            },
            library::names(kind).join(", ")
        )),
    }
}

fn check(files: &[String]) -> ExitCode {
    // Every file is checked: one that cannot be read is reported and the rest still are. A path that is not a
    // readable file is a usage error (exit 2); a file that is not UTF-8 is invalid input, like any bad content.
    let mut bad = false;
    let mut unreadable = false;
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                match e.kind() {
                    std::io::ErrorKind::InvalidData => bad = true,
                    _ => unreadable = true,
                }
                continue;
            }
        };
        let file = SourceFile::new(path.as_str(), text);
        // The file's top-level RON struct name says what it is.
        let head = file
            .text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("//"))
            .unwrap_or("");
        let result = if head.starts_with("Gpu") {
            einsim::gpu::load(&file, &Default::default()).map(|_| ())
        } else if head.starts_with("Arch") {
            // The hardware, and every binding against the cascade it names: shipped, or a file that a path in
            // the binding finds next to this arch file (or in the working directory), as `run` finds it.
            let lookup = files_near(Path::new(path).parent().map(Path::to_path_buf));
            einsim::binding::load_arch(
                &file,
                &|n| lookup(Kind::Energy, n),
                &|n| lookup(Kind::Cascade, n),
                &Default::default(),
            )
            .map(|_| ())
        } else if head.starts_with("Model") {
            einsim::cascade::load_model(&file).map(|_| ())
        } else if head.starts_with("EnergyTable") {
            einsim::arch::load_energy_resolved(&file, &|n| library::get(Kind::Energy, n))
                .map(|_| ())
        } else if head.starts_with("Layer") {
            // Names resolve as a run resolves them: cascades shipped or next to this file; expressions over the
            // layer's vars and the parameters of the shipped models and of every model file in this `check`.
            let lookup = files_near(Path::new(path).parent().map(Path::to_path_buf));
            let mut params = einsim::layer::shipped_model_params(&lookup);
            params.extend(given_model_params(files));
            einsim::layer::load_layer(&file)
                .and_then(|l| einsim::layer::check_layer(&file, &l, &params, &lookup))
        } else if head.starts_with("Sweep") {
            // Every design, workload, axis parameter and plot column, resolved as `einsim sweep` resolves them.
            let lookup = sweep_cli::lookup_near(sweep_cli::dir_of(path));
            einsim::sweep::file::load(&file, &lookup).map(|_| ())
        } else {
            einsim::cascade::load(&file).map(|_| ())
        };
        match result {
            Ok(()) => outln!("{path}: ok"),
            Err(d) => {
                bad = true;
                eprint!("{d}");
            }
        }
    }
    if unreadable {
        ExitCode::from(USAGE)
    } else if bad {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

/// The parameter names of the model files among `paths` (those that read and parse; the others are reported as
/// themselves).
fn given_model_params(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| {
            Some(SourceFile::new(
                p.as_str(),
                std::fs::read_to_string(p).ok()?,
            ))
        })
        .filter_map(|f| einsim::cascade::load_model(&f).ok())
        .flat_map(|m| m.params.into_iter().map(|p| p.name))
        .collect()
}

pub(crate) fn usage(msgs: Vec<String>) -> ExitCode {
    for m in msgs {
        eprintln!("error: {m}");
    }
    ExitCode::from(USAGE)
}

pub(crate) fn fail(e: RunError) -> ExitCode {
    eprint!("{e}");
    if !matches!(e, RunError::Invalid(_)) {
        eprintln!();
    }
    ExitCode::from(match e {
        RunError::Internal(_) => INTERNAL,
        _ => INVALID,
    })
}

/// `einsim reproduce NAME`: compute, write the artifacts, print the validation summary. Exit 3 if any run hit an
/// engine bug (after writing, so the report shows which).
fn reproduce_cmd(name: &str, out: Option<String>, binding: Option<&str>, quiet: bool) -> ExitCode {
    if name == einsim::gpu::reproduce::NAME {
        return gpu_reproduce(out, binding);
    }
    if binding.is_some() {
        return usage(vec![format!(
            "--binding selects a GPU kernel of `reproduce {}`; `{name}` runs its designs' own bindings",
            einsim::gpu::reproduce::NAME
        )]);
    }
    use einsim::reproduce;
    if name == "spatten" {
        return reproduce_spatten(out);
    }
    let start = std::time::Instant::now();
    let bar = Bar::new(&format!("reproduce {name}"), quiet);
    let computed = reproduce::by_name(name, &library::get, SimOptions::default(), &bar);
    bar.clear();
    let Some((rep, results)) = computed else {
        return usage(vec![format!(
            "unknown reproduction `{name}`; known: {}, {}",
            reproduce::NAMES.join(", "),
            einsim::gpu::reproduce::NAME
        )]);
    };
    let elapsed = start.elapsed();
    let dir = std::path::PathBuf::from(out.unwrap_or_else(|| format!("reports/{name}")));
    let written = match reproduce::write::write(&dir, &rep, &results) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    for (_, why) in &rep.missing {
        outln!("{why}");
    }
    let (pass, fail, not) = tally(&results);
    outln!(
        "{} runs and {} layer runs (and again for each of {} what-if variants) in {:.2} s ({} failed); targets: {pass} pass, {fail} FAIL, {not} not evaluated",
        rep.runs.len(),
        rep.layers.len(),
        rep.variants.len(),
        elapsed.as_secs_f64(),
        rep.failures().len(),
    );
    outln!("wrote {} files to {}", written.len(), dir.display());
    if rep.has_internal_error() {
        eprintln!("error: some runs hit an internal error; see the failed runs in report.md");
        return ExitCode::from(INTERNAL);
    }
    ExitCode::SUCCESS
}

/// `einsim sweep`: print the table; with `--out`, write the CSV and plot. Exit 1/3 if any point failed.
#[allow(clippy::too_many_arguments)]
fn sweep_cmd(
    arch: &str,
    workload: Option<&str>,
    binding: Option<&str>,
    vary: &[einsim::sweep::Vary],
    set: &[String],
    metric: einsim::sweep::Metric,
    out: Option<String>,
    quiet: bool,
) -> ExitCode {
    if let Some(v) = vary
        .iter()
        .enumerate()
        .find(|(i, v)| vary[..*i].iter().any(|u| u.key == v.key))
    {
        return usage(vec![format!(
            "--vary {}: the key is varied twice; give its values once",
            v.1.key
        )]);
    }
    let bar = Bar::new("sweep", quiet);
    let sweep = if let Some(g) = gpu_file(arch) {
        if let Some(e) = not_for_gpus(&[("--workload", workload.is_some())]) {
            return e;
        }
        einsim::sweep::run_gpu(&g, binding, set, vary, metric, SimOptions::default(), &bar)
    } else {
        let (a, w) = match arch_and_model(arch, workload.unwrap_or(DEFAULT_WORKLOAD)) {
            Ok(f) => f,
            Err(code) => return code,
        };
        einsim::sweep::run(
            &a,
            w.as_ref(),
            binding,
            set,
            vary,
            metric,
            &files_near(arch_dir(arch)),
            SimOptions::default(),
            &bar,
        )
    };
    bar.clear();
    out!("{}", sweep.table());
    if let Some(dir) = out {
        let texts = [("sweep.csv".to_string(), sweep.csv())];
        let figs = [("sweep", sweep.figure())];
        let dir = std::path::Path::new(&dir);
        match einsim::reproduce::write::write_files(dir, &texts, &figs, true) {
            Ok(w) => eprintln!("wrote {} files to {}", w.len(), dir.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(INVALID);
            }
        }
    }
    match sweep.worst_error() {
        Some(e) => {
            let internal = matches!(e, RunError::Internal(_));
            eprint!("{e}");
            eprintln!();
            ExitCode::from(if internal { INTERNAL } else { INVALID })
        }
        None => match sweep.metric_error() {
            Some(e) => {
                eprintln!("error: {e}");
                ExitCode::from(INVALID)
            }
            None => ExitCode::SUCCESS,
        },
    }
}

/// `einsim reproduce spatten`: its own targets and runs (`src/reproduce/spatten.rs`), written like FuseMax's.
fn reproduce_spatten(out: Option<String>) -> ExitCode {
    let start = std::time::Instant::now();
    let rep = match einsim::reproduce::spatten::reproduce(&library::get) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let dir = std::path::PathBuf::from(out.unwrap_or_else(|| "reports/spatten".to_string()));
    let texts = [
        ("report.md".to_string(), rep.markdown()),
        ("runs.csv".to_string(), rep.runs_csv()),
        ("topk.csv".to_string(), rep.topk_csv()),
    ];
    let figs = [
        ("topk", rep.topk_figure()),
        ("generation", rep.generation_figure()),
    ];
    let written = match einsim::reproduce::write::write_files(&dir, &texts, &figs, true) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let (pass, fail, not) = rep.counts();
    outln!(
        "{} runs, {} top-k points and {} generations in {:.2} s; targets: {pass} pass, {fail} FAIL, {not} not evaluated",
        rep.runs.len(),
        rep.topk.len(),
        rep.generations.len(),
        start.elapsed().as_secs_f64()
    );
    outln!("wrote {} files to {}", written.len(), dir.display());
    ExitCode::SUCCESS
}

/// The progress bar of `sweep` and `reproduce`, with an ETA, on stderr. It is drawn only when stdout and stderr
/// are both terminals and `--quiet` is not given, so redirected or piped output never contains it, and it is
/// cleared before anything is printed: what the commands print and write is the same with or without it.
pub(crate) struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub(crate) fn new(what: &str, quiet: bool) -> Bar {
        use std::io::IsTerminal;
        let show = !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Bar(show.then(|| {
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {pos}/{len} runs, {elapsed} elapsed, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            )
            .with_style(style)
            .with_prefix(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        }))
    }

    /// Take the bar off the terminal.
    pub(crate) fn clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.clear();
    }
}

impl einsim::progress::Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
            b.reset_eta();
        }
    }

    fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
}

/// The model `--workload` names when none is given (accelerator runs only).
const DEFAULT_WORKLOAD: &str = "bert-base";

/// A usage error (exit 2) naming the given options a GPU run would otherwise ignore.
fn not_for_gpus(given: &[(&str, bool)]) -> Option<ExitCode> {
    let named: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
    (!named.is_empty()).then(|| {
        usage(vec![format!(
            "{} does not apply to a GPU: its workload is `--set` seq, tokens, hidden, d and causal, and its kernel \
             `--binding`",
            named.join(" and ")
        )])
    })
}

/// A GPU named by `--arch`: a shipped GPU file, or a file whose top-level struct is `Gpu(...)`.
fn gpu_file(arg: &str) -> Option<SourceFile> {
    if library::get(Kind::Arch, arg).is_some() {
        return None;
    }
    library::get(Kind::Gpu, arg).or_else(|| {
        let text = std::fs::read_to_string(arg).ok()?;
        einsim::gpu::is_gpu_file(&text).then(|| SourceFile::new(arg, text))
    })
}

fn gpu_run(
    file: &SourceFile,
    binding: Option<&str>,
    set: &[String],
    format: Format,
    opts: SimOptions,
) -> ExitCode {
    let r = einsim::gpu::sets(set).and_then(|(w, sets)| {
        let gpu = einsim::gpu::load(file, &sets).map_err(RunError::Invalid)?;
        einsim::gpu::report::run(&gpu, binding, &w, &sets, opts)
    });
    match r {
        Ok(r) => {
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
                // The GPU report has one human layout; markdown carries it as a preformatted block.
                Format::Md => out!("```text\n{}```\n", einsim::gpu::report::text(&r)),
                Format::Text => out!("{}", einsim::gpu::report::text(&r)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `einsim reproduce fa4`: compute, write `reports/fa4/`, print the summary.
fn gpu_reproduce(out: Option<String>, binding: Option<&str>) -> ExitCode {
    use einsim::gpu::reproduce;
    if let Some(b) = binding {
        let plan = match reproduce::plan() {
            Ok(p) => p,
            Err(e) => return fail(RunError::Internal(e)),
        };
        if !plan.grid.iter().any(|(_, k)| k == b) {
            let mut kernels: Vec<&str> = plan.grid.iter().map(|(_, k)| k.as_str()).collect();
            kernels.dedup();
            return usage(vec![format!(
                "`reproduce {}` runs no binding `{b}`; its bindings: {}",
                reproduce::NAME,
                kernels.join(", ")
            )]);
        }
    }
    let start = std::time::Instant::now();
    let rep = match reproduce::compute_for(&library::get, SimOptions::default(), binding) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let elapsed = start.elapsed();
    let dir = PathBuf::from(out.unwrap_or_else(|| match binding {
        Some(b) => format!("reports/{}-{b}", reproduce::NAME),
        None => format!("reports/{}", reproduce::NAME),
    }));
    match reproduce::write(&dir, &rep) {
        Ok(n) => {
            let (pass, fail, not) = tally(&rep.checks);
            outln!(
                "{} runs in {:.2} s; targets: {pass} pass, {fail} FAIL, {not} not evaluated",
                rep.runs.len(),
                elapsed.as_secs_f64(),
            );
            outln!("wrote {n} files to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        }
    }
}
