//! The file side of `einsim sweep FILE`, `einsim merge` and `einsim plot`: read the sweep file and journals, append
//! each finished point to the journal as it comes, write the outputs. Everything else is library code
//! (`einsim::sweep`).

use crate::{Bar, INTERNAL, INVALID, USAGE};
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::sweep::plan::{Plan, PlotKind, SetupCache, Shard};
use einsim::sweep::{artifacts, chart, file, row};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

/// The lookup of a sweep file: shipped names, else paths relative to the sweep file's directory, then the
/// working directory (archs, models and the cascades a binding names).
pub(crate) fn lookup_near(dir: PathBuf) -> impl Fn(Kind, &str) -> Option<SourceFile> + Sync {
    move |kind, name| {
        if let Some(f) = library::get(kind, name) {
            return Some(f);
        }
        if !library::is_path(name) {
            return None;
        }
        [dir.join(name), PathBuf::from(name)]
            .into_iter()
            .find_map(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                Some(SourceFile::new(p.display().to_string(), text))
            })
    }
}

/// The directory of a file argument (`.` for a bare file name).
pub(crate) fn dir_of(path: &str) -> PathBuf {
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Read and check a sweep file: exit 2 if unreadable, 1 if invalid.
fn load(path: &str) -> Result<(Plan, PathBuf), ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{path}`: {e}");
        ExitCode::from(USAGE)
    })?;
    let file = SourceFile::new(path, text);
    let dir = dir_of(path);
    let lookup = lookup_near(dir.clone());
    file::load(&file, &lookup).map(|p| (p, dir)).map_err(|d| {
        eprint!("{d}");
        ExitCode::from(INVALID)
    })
}

/// `einsim sweep FILE`: run the points of the shard not already in the journal, appending each as it finishes;
/// then write the outputs (a whole run) or the shard file.
pub fn sweep(
    path: &str,
    out: Option<String>,
    jobs: Option<usize>,
    shard: Option<String>,
    quiet: bool,
) -> ExitCode {
    let shard = match shard.as_deref().map(Shard::parse).transpose() {
        Ok(s) => s.unwrap_or(Shard::ALL),
        Err(d) => {
            eprint!("{d}");
            return ExitCode::from(USAGE);
        }
    };
    if jobs == Some(0) {
        eprintln!("error: --jobs 0 runs nothing; expected 1 or more");
        return ExitCode::from(USAGE);
    }
    let (plan, dir) = match load(path) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let out = out.map_or(dir.clone(), PathBuf::from);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("error: cannot create `{}`: {e}", out.display());
        return ExitCode::from(INVALID);
    }
    let start = std::time::Instant::now();
    let journal = out.join(format!("{}.journal", shard.stem()));
    // Points already finished by an interrupted run of this sweep and shard.
    let mut done: Vec<(u64, String)> = match std::fs::read_to_string(&journal) {
        Ok(text) => {
            let f = SourceFile::new(journal.display().to_string(), text);
            match plan.read_journal(&f, shard) {
                Ok(d) => d,
                Err(d) => {
                    eprint!("{d}");
                    return ExitCode::from(INVALID);
                }
            }
        }
        Err(_) => Vec::new(),
    };
    // Rewrite the journal clean (a line cut short by the interruption goes), then append.
    let mut clean = plan.header(shard);
    clean.push('\n');
    for (_, l) in &done {
        clean.push_str(l);
        clean.push('\n');
    }
    let file = match std::fs::write(&journal, &clean)
        .and_then(|_| std::fs::OpenOptions::new().append(true).open(&journal))
    {
        Ok(f) => Mutex::new(f),
        Err(e) => {
            eprintln!("error: cannot write `{}`: {e}", journal.display());
            return ExitCode::from(INVALID);
        }
    };
    let have: std::collections::HashSet<u64> = done.iter().map(|(p, _)| *p).collect();
    let todo: Vec<u64> = plan.indices(shard).filter(|i| !have.contains(i)).collect();
    let resumed = done.len();
    let bar = Bar::new("sweep", quiet);
    let lookup = lookup_near(dir);
    let cache = SetupCache::default();
    let failed_write = Mutex::new(None::<String>);
    let work = || {
        use einsim::progress::Progress;
        use rayon::prelude::*;
        bar.start(todo.len() as u64);
        todo.par_iter()
            .map(|&i| {
                let line = plan.eval(i, &lookup, &cache);
                if let Ok(mut f) = file.lock() {
                    // One write per line, so a kill leaves at most the last line cut short.
                    if let Err(e) = f.write_all(format!("{line}\n").as_bytes()) {
                        if let Ok(mut w) = failed_write.lock() {
                            w.get_or_insert(e.to_string());
                        }
                    }
                }
                bar.inc();
                (i, line)
            })
            .collect::<Vec<_>>()
    };
    let new = match jobs {
        Some(n) => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            Ok(pool) => pool.install(work),
            Err(e) => {
                eprintln!("error: cannot start {n} threads: {e}");
                return ExitCode::from(INTERNAL);
            }
        },
        None => work(),
    };
    bar.clear();
    if let Some(e) = failed_write.into_inner().ok().flatten() {
        eprintln!("error: cannot append to `{}`: {e}", journal.display());
        return ExitCode::from(INVALID);
    }
    let ran = new.len();
    done.extend(new);
    done.sort_by_key(|(p, _)| *p);
    let secs = start.elapsed().as_secs_f64();
    let (counts, internal) = status_counts(&done);
    eprintln!(
        "{} {} points ({} run now, {} from the journal) in {secs:.2} s: {counts}",
        if shard == Shard::ALL {
            "sweep:".to_string()
        } else {
            format!("shard {}:", shard.label())
        },
        done.len(),
        ran,
        resumed,
    );
    let code = if internal > 0 { INTERNAL } else { 0 };
    if shard != Shard::ALL {
        // The shard file is the journal, complete and in point order.
        let target = out.join(format!("{}.jsonl", shard.stem()));
        let mut text = plan.header(shard);
        text.push('\n');
        for (_, l) in &done {
            text.push_str(l);
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&target, text) {
            eprintln!("error: cannot write `{}`: {e}", target.display());
            return ExitCode::from(INVALID);
        }
        let _ = std::fs::remove_file(&journal);
        eprintln!("wrote {}", target.display());
        return ExitCode::from(code);
    }
    let written = write_outputs(&plan, &done, &out);
    let _ = std::fs::remove_file(&journal);
    match written {
        Ok(()) => ExitCode::from(code),
        Err(c) => c,
    }
}

/// The points by status, in words, and how many hit an internal error.
fn status_counts(lines: &[(u64, String)]) -> (String, usize) {
    let mut n = std::collections::BTreeMap::<String, usize>::new();
    for (_, l) in lines {
        let s = row::parse_line(l)
            .and_then(|f| {
                f.into_iter()
                    .find(|(k, _)| k == "status")
                    .map(|(_, c)| c.text())
            })
            .unwrap_or_default();
        *n.entry(s).or_default() += 1;
    }
    let get = |k: &str| n.get(k).copied().unwrap_or(0);
    let words = format!(
        "{} ok, {} failed, {} skipped, {} internal",
        get("ok"),
        get("error"),
        get("skipped"),
        get("internal")
    );
    (words, get("internal"))
}

/// Write `sweep.jsonl`, `sweep.csv` and the plots (SVG and PNG) into `out`.
fn write_outputs(plan: &Plan, lines: &[(u64, String)], out: &Path) -> Result<(), ExitCode> {
    let (texts, charts, errors) = artifacts(plan, lines);
    let mut n = 0;
    for (name, text) in &texts {
        let p = out.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("error: cannot write `{}`: {e}", p.display());
            return Err(ExitCode::from(INVALID));
        }
        n += 1;
    }
    for (name, c) in &charts {
        let p = out.join(format!("{name}.png"));
        if let Err(e) = chart::png(c, &p) {
            eprintln!("error: cannot write `{}`: {e}", p.display());
            return Err(ExitCode::from(INVALID));
        }
        n += 1;
    }
    eprintln!("wrote {n} files to {}", out.display());
    if !errors.is_empty() {
        for e in errors {
            eprintln!("error: {e}");
        }
        return Err(ExitCode::from(INVALID));
    }
    Ok(())
}

/// `einsim merge FILE`: join `shard-I-of-N.jsonl` from the directory into what one run writes.
pub fn merge(path: &str, out: Option<String>) -> ExitCode {
    let (plan, dir) = match load(path) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let out = out.map_or(dir, PathBuf::from);
    let mut shards: Vec<SourceFile> = Vec::new();
    let entries = match std::fs::read_dir(&out) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", out.display());
            return ExitCode::from(USAGE);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && einsim::sweep::plan::shard_of_name(&p.display().to_string()).is_some()
        })
        .collect();
    paths.sort();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(t) => shards.push(SourceFile::new(p.display().to_string(), t)),
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", p.display());
                return ExitCode::from(INVALID);
            }
        }
    }
    match plan.merge(&shards) {
        Ok(lines) => {
            let (counts, internal) = status_counts(&lines);
            eprintln!(
                "merged {} shards: {} points: {counts}",
                shards.len(),
                lines.len(),
            );
            match write_outputs(&plan, &lines, &out) {
                Ok(()) if internal > 0 => ExitCode::from(INTERNAL),
                Ok(()) => ExitCode::SUCCESS,
                Err(c) => c,
            }
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(INVALID)
        }
    }
}

/// `einsim plot CSV --x … --y … --group …`: one chart from a sweep's CSV, as PNG and SVG.
#[allow(clippy::too_many_arguments)]
pub fn plot(
    csv: &str,
    x: Option<String>,
    y: Option<String>,
    group: Vec<String>,
    kind: PlotKind,
    filter: Vec<String>,
    out: Option<String>,
) -> ExitCode {
    let text = match std::fs::read_to_string(csv) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{csv}`: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let mut pairs = Vec::new();
    for f in &filter {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                pairs.push((k.to_string(), v.to_string()))
            }
            _ => {
                eprintln!("error: `--where {f}` is not column=value");
                return ExitCode::from(USAGE);
            }
        }
    }
    let table = row::Table::parse(&text);
    let stem_default = {
        let p = Path::new(csv);
        let base = p.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
        let kind = match kind {
            PlotKind::Line => "",
            PlotKind::Energy => "energy-",
            PlotKind::Pareto => "pareto-",
        };
        let name = format!(
            "{base}-{kind}{}-vs-{}",
            y.as_deref().unwrap_or("y"),
            x.as_deref().unwrap_or("x")
        )
        .replace(['/', ' ', '.'], "_");
        p.with_file_name(name).display().to_string()
    };
    let stem = out.unwrap_or(stem_default);
    let name = Path::new(&stem)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("plot")
        .to_string();
    let spec = file::spec_of(&name, kind, x, y, group, pairs);
    let c = match chart::chart(&table, &spec, &format!("{csv}: {name}")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let svg_path = format!("{stem}.svg");
    let png_path = format!("{stem}.png");
    let svg = match chart::svg(&c) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INTERNAL);
        }
    };
    if let Err(e) = std::fs::write(&svg_path, svg) {
        eprintln!("error: cannot write `{svg_path}`: {e}");
        return ExitCode::from(INVALID);
    }
    if let Err(e) = chart::png(&c, Path::new(&png_path)) {
        eprintln!("error: cannot write `{png_path}`: {e}");
        return ExitCode::from(INVALID);
    }
    eprintln!("wrote {png_path} and {svg_path}");
    ExitCode::SUCCESS
}
