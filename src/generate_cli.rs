//! `einsim generate`: a whole decoder model generating tokens one at a time (src/generation.rs), its pruning
//! from schedules or from a trace file (src/trace.rs). Reads the files, calls the library, prints.

use crate::{fail, outln, resolve, usage, Format};
use einsim::diag::SourceFile;
use einsim::generation::{run_generation, Generation, GenerationReport, Schedule};
use einsim::library::Kind;
use einsim::run::RunError;
use einsim::sim::SimOptions;
use einsim::trace::Trace;
use std::process::ExitCode;

/// What `einsim generate` was asked for.
#[derive(clap::Args)]
pub struct Args {
    /// Arch name or path.
    #[arg(long, default_value = "spatten")]
    pub arch: String,
    /// A generation model (`layers`, `heads`, `kv_len`, kept percentages, widths).
    #[arg(long, default_value = "gpt2-medium-gen")]
    pub workload: String,
    /// The layer file each step runs per layer.
    #[arg(long, default_value = "spatten-decode")]
    pub layer: String,
    /// Tokens to generate [default: the trace's steps, else 32].
    #[arg(long)]
    pub steps: Option<i64>,
    /// Tokens cached before the first step [default: the model's kv_len].
    #[arg(long)]
    pub context: Option<i64>,
    /// A generation trace (CSV): what each head fetched at each step and layer.
    #[arg(long)]
    pub trace: Option<String>,
    /// Cascade token pruning FRONT,START,END: percent of layers unpruned, then the ratio (percent) at the first
    /// and the last pruned layer.
    #[arg(long, value_name = "FRONT,START,END")]
    pub tokens: Option<String>,
    /// Cascade head pruning FRONT,START,END, as --tokens.
    #[arg(long, value_name = "FRONT,START,END")]
    pub heads: Option<String>,
    /// Override a model or arch parameter, or a layer var (e.g. lsb_pct=6).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn generate(a: Args) -> ExitCode {
    let files = (
        resolve(Kind::Arch, &a.arch),
        resolve(Kind::Model, &a.workload),
        resolve(Kind::Layer, &a.layer),
    );
    let (Ok(arch), Ok(model), Ok(layer)) = files else {
        return usage(
            [files.0.err(), files.1.err(), files.2.err()]
                .into_iter()
                .flatten()
                .collect(),
        );
    };
    let (tokens, heads) = match (
        schedule("--tokens", &a.tokens),
        schedule("--heads", &a.heads),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        (t, h) => return usage([t.err(), h.err()].into_iter().flatten().collect()),
    };
    let trace = match &a.trace {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => return usage(vec![format!("cannot read trace `{path}`: {e}")]),
            Ok(text) => match Trace::parse(&SourceFile::new(path.as_str(), text)) {
                Ok(t) => Some(t),
                Err(d) => return fail(RunError::Invalid(d)),
            },
        },
    };
    let m = match einsim::cascade::load_model(&model) {
        Ok(m) => m,
        Err(d) => return fail(RunError::Invalid(d)),
    };
    // `--set layers=6` or `kv_len=2048` shapes the run as it would any op; the last value wins, as for `--set`.
    let sets = match einsim::run::Sets::parse(&a.set) {
        Ok(s) => s.pairs,
        Err(d) => return fail(RunError::Invalid(d)),
    };
    let param = |n: &str| {
        sets.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
            .or_else(|| m.param(n))
    };
    let (Some(layers), Some(kv_len)) = (param("layers"), param("kv_len")) else {
        return usage(vec![format!(
            "model `{}` has no `layers` or no `kv_len`: `einsim generate` takes a generation model (see `einsim list`)",
            m.name
        )]);
    };
    let steps = a.steps.or(trace.as_ref().map(Trace::steps)).unwrap_or(32);
    if steps < 1 {
        return usage(vec![format!("--steps {steps}: expected at least one step")]);
    }
    let context = a.context.unwrap_or(kv_len);
    let gen = Generation {
        layers,
        steps,
        context,
        tokens,
        heads,
        trace,
    };
    let t = std::time::Instant::now();
    let lookup = crate::files_near(crate::arch_dir(&a.arch));
    match run_generation(
        &layer,
        &arch,
        &model,
        &a.set,
        &gen,
        &lookup,
        SimOptions::default(),
    ) {
        Ok(r) => {
            print(&a, &gen, &r, &arch.name, t.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `--tokens FRONT,START,END`: percent of the layers unpruned, then the ratio at the first and last pruned
/// layer. A malformed one is a usage error; the ranges are checked with the run (exit 1, as for a file).
fn schedule(flag: &str, arg: &Option<String>) -> Result<Option<Schedule>, String> {
    let Some(arg) = arg else { return Ok(None) };
    let v: Vec<i64> = arg
        .split(',')
        .map(|x| x.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!("{flag} `{arg}`: expected FRONT,START,END in whole percent, e.g. 15,30,62")
        })?;
    match v[..] {
        [front_pct, start, end] => Ok(Some(Schedule {
            front_pct,
            start,
            end,
        })),
        _ => Err(format!(
            "{flag} `{arg}`: expected three numbers FRONT,START,END, e.g. 15,30,62"
        )),
    }
}

fn print(a: &Args, gen: &Generation, r: &GenerationReport, arch: &str, wall: f64) {
    let gops = r.ops / r.seconds.max(f64::MIN_POSITIVE) / 1e9;
    let watts = r.energy_pj * 1e-12 / r.seconds.max(f64::MIN_POSITIVE);
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "arch": arch, "workload": a.workload, "layer": a.layer, "layers": gen.layers, "steps": gen.steps,
                "context": gen.context, "trace": a.trace, "report": r, "gop_s": gops, "power_w": watts,
                "gop_j": r.ops / (r.energy_pj * 1e-12).max(f64::MIN_POSITIVE) / 1e9,
            });
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text | Format::Md => {
            let source = match &a.trace {
                Some(t) => format!("trace {t}"),
                None => "schedules and the model's kept percentages".into(),
            };
            // One step over the whole sentence is a summarization (layer file `spatten-encode`).
            let steps = match gen.steps {
                1 => format!("1 step, {} tokens", gen.context),
                n => format!("{n} tokens after {} cached", gen.context),
            };
            outln!(
                "einsim generate: {arch}, {} ({} layers), {steps}; pruning from {source}",
                a.workload,
                gen.layers
            );
            outln!(
                "latency     {} cycles  {:.4} ms  ({:.4} ms per token)",
                r.cycles,
                r.seconds * 1e3,
                r.seconds * 1e3 / gen.steps as f64
            );
            outln!("throughput  {gops:.1} GOP/s   {:.3e} ops", r.ops);
            outln!(
                "energy      {:.4} mJ   average power {watts:.3} W",
                r.energy_pj * 1e-9
            );
            for (level, b) in &r.traffic_bytes {
                outln!("traffic     {level:<10} {b} B (read + written)");
            }
            outln!(
                "simulated   {} distinct op runs in {:.2} s",
                r.simulated,
                wall
            );
        }
    }
}
