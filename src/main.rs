//! The `einsim` command line: a thin layer that reads files, calls the library and prints.

use clap::{Parser, Subcommand, ValueEnum};
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::run::{self, RunError};
use einsim::sim::SimOptions;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  einsim                                   FuseMax on BERT-Base, 1K tokens, batch 64 (the default run)
  einsim run --arch fusemax --workload xlm --set seq=64K
  einsim run --arch arch/fusemax.ron --set depth=1 --format json
  einsim passes attention-3pass            how many passes each rank needs, and why
  einsim check workloads/cascades/*.ron    validate files (exit 1 on errors)
  einsim list                              shipped archs, cascades and models";

/// Exit codes: 0 success, 1 invalid input, 2 usage error, 3 internal failure.
const INVALID: u8 = 1;
const USAGE: u8 = 2;
const INTERNAL: u8 = 3;

#[derive(Parser)]
#[command(name = "einsim", version, about = "Cycle-approximate simulator for attention accelerators", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
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
        /// Model shape name or path (sets the cascade's parameters).
        #[arg(long, default_value = "bert-base")]
        workload: String,
        /// Override a workload or arch parameter, e.g. seq=4096, seq=1M, rows=128.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Simulate every tile instead of extrapolating the periodic steady state (slow; same result).
        #[arg(long)]
        no_extrapolate: bool,
    },
    /// Pass analysis of a cascade: passes per rank, their causes and the minimum live footprint.
    #[command(
        after_help = "Example:\n  einsim passes attention-2pass --set seq=4096 --format json"
    )]
    Passes {
        /// Cascade name or path.
        #[arg(default_value = "attention-1pass")]
        cascade: String,
        /// Model shape name or path supplying parameter values.
        #[arg(long, default_value = "bert-base")]
        workload: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Check workload, model and arch files; print every error found.
    #[command(after_help = "Example:\n  einsim check workloads/cascades/*.ron arch/fusemax.ron")]
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// List shipped archs, cascades, models and energy tables.
    List,
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
        workload: "bert-base".into(),
        set: vec![],
        format: Format::Text,
        no_extrapolate: false,
    });
    match command {
        Command::Run {
            arch,
            workload,
            set,
            format,
            no_extrapolate,
        } => {
            let files = (resolve(Kind::Arch, &arch), resolve(Kind::Model, &workload));
            let (Ok(a), Ok(w)) = files else {
                return usage(
                    [files.0.err(), files.1.err()]
                        .into_iter()
                        .flatten()
                        .collect(),
                );
            };
            let opts = SimOptions {
                extrapolate: !no_extrapolate,
            };
            match run::run(&a, Some(&w), None, &set, &library::get, opts) {
                Ok(r) => {
                    match format {
                        Format::Text => print!("{}", einsim::report::text::render(&r)),
                        Format::Md => print!("{}", einsim::report::markdown::render(&r)),
                        Format::Json => {
                            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
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
            let files = (
                resolve(Kind::Cascade, &cascade),
                resolve(Kind::Model, &workload),
            );
            let (Ok(c), Ok(w)) = files else {
                return usage(
                    [files.0.err(), files.1.err()]
                        .into_iter()
                        .flatten()
                        .collect(),
                );
            };
            match passes(&c, &w, &set) {
                Ok(r) => {
                    match format {
                        Format::Json => {
                            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
                        }
                        _ => print!("{}", einsim::report::passes::render(&r)),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Check { files } => check(&files),
        Command::List => {
            for (kind, title) in [
                (Kind::Arch, "archs"),
                (Kind::Cascade, "cascades"),
                (Kind::Model, "models"),
                (Kind::Energy, "energy tables"),
            ] {
                println!("{title}: {}", library::names(kind).join(", "));
            }
            ExitCode::SUCCESS
        }
    }
}

fn passes(
    c: &SourceFile,
    w: &SourceFile,
    set: &[String],
) -> Result<einsim::passes::PassReport, RunError> {
    let cascade = einsim::cascade::load(c).map_err(RunError::Invalid)?;
    let model = einsim::cascade::load_model(w).map_err(RunError::Invalid)?;
    let sets = run::Sets::parse(set).map_err(RunError::Invalid)?;
    let mut ov = model.overrides_for(&cascade);
    ov.extend(sets.pairs);
    let env = cascade
        .with_params(&ov)
        .map_err(|e| RunError::Mapping(e.to_string()))?;
    Ok(einsim::passes::analyse(
        &cascade,
        &env.sizes,
        env.params.iter().cloned().collect(),
    ))
}

/// A shipped name, or a path to a file.
fn resolve(kind: Kind, arg: &str) -> Result<SourceFile, String> {
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
                Kind::Cascade => "cascade",
                Kind::Model => "model",
                Kind::Energy => "energy table",
            },
            library::names(kind).join(", ")
        )),
    }
}

fn check(files: &[String]) -> ExitCode {
    let mut bad = false;
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                return ExitCode::from(USAGE);
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
        let result = if head.starts_with("Arch") {
            einsim::arch::load(
                &file,
                &|n| library::get(Kind::Energy, n),
                &Default::default(),
            )
            .map(|_| ())
        } else if head.starts_with("Model") {
            einsim::cascade::load_model(&file).map(|_| ())
        } else if head.starts_with("EnergyTable") {
            einsim::arch::load_energy(&file).map(|_| ())
        } else {
            einsim::cascade::load(&file).map(|_| ())
        };
        match result {
            Ok(()) => println!("{path}: ok"),
            Err(d) => {
                bad = true;
                eprint!("{d}");
            }
        }
    }
    if bad {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(msgs: Vec<String>) -> ExitCode {
    for m in msgs {
        eprintln!("error: {m}");
    }
    ExitCode::from(USAGE)
}

fn fail(e: RunError) -> ExitCode {
    eprint!("{e}");
    if !matches!(e, RunError::Invalid(_)) {
        eprintln!();
    }
    ExitCode::from(match e {
        RunError::Internal(_) => INTERNAL,
        _ => INVALID,
    })
}
