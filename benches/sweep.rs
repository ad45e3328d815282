//! Sweep throughput on 2 threads (the "2 cores"): the 10,000-point FuseMax sweep of
//! `benches/sweep-10k.ron`, and one shard (1/100) of the 1,000,000-point `benches/sweep-1m.ron`, each through the
//! same library calls as `einsim sweep` (setup cache, one JSON line per point, CSV). The target is 10 s each; the
//! benchmark prints the times, the points per second and the cost per point, and exits non-zero on a miss. It also
//! times expanding all 1,000,000 points and merging 100 shards of 1,000,000 synthetic lines into the CSV, the
//! part of a cluster run that is not simulation.
//!
//! `cargo bench --bench sweep` (`-- --quick`: the first 1,000 points of each, for a smoke test).

use einsim::diag::SourceFile;
use einsim::library;
use einsim::sweep::plan::{Plan, SetupCache, Shard};
use rayon::prelude::*;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_secs(10);
const THREADS: usize = 2;

fn plan(name: &str) -> Plan {
    let path = format!("{}/benches/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the bench sweep file is readable");
    einsim::sweep::file::load(&SourceFile::new(path, text), &library::get)
        .unwrap_or_else(|d| panic!("{d}"))
}

/// CPU seconds this process has used (user + system), from /proc (Linux); 0 elsewhere. On a shared machine the
/// wall time overstates the cost, so the report gives both.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name (in parentheses); utime and stime are the 12th and 13th of them.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// Run the points on `THREADS` threads; (wall time, CPU seconds, lines).
fn run(plan: &Plan, points: &[u64]) -> (Duration, f64, Vec<(u64, String)>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("a thread pool");
    let cache = SetupCache::default();
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut lines: Vec<(u64, String)> = pool.install(|| {
        points
            .par_iter()
            .map(|&i| (i, plan.eval(i, &library::get, &cache)))
            .collect()
    });
    lines.sort_by_key(|(i, _)| *i);
    let _ = plan.outputs(&lines);
    (t0.elapsed(), cpu_seconds() - c0, lines)
}

fn report(what: &str, n: usize, (t, cpu, lines): &(Duration, f64, Vec<(u64, String)>)) -> bool {
    let ok = lines
        .iter()
        .filter(|(_, l)| l.contains("\"status\":\"ok\""))
        .count();
    let pass = *t <= TARGET;
    println!(
        "{what}: {n} points in {:.2} s on {THREADS} threads ({:.0} points/s; {cpu:.1} s CPU, {:.2} ms per point, \
         so {:.1} s on {THREADS} idle cores; {ok} ok) {}",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64(),
        cpu * 1e3 / n as f64,
        cpu / THREADS as f64,
        if pass { "ok" } else { "MISSES the 10 s target" }
    );
    pass
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let take = |v: Vec<u64>| {
        if quick {
            v.into_iter().take(1000).collect()
        } else {
            v
        }
    };
    let mut pass = true;

    let p10k = plan("sweep-10k.ron");
    assert_eq!(p10k.len(), 10_000);
    let pts = take(p10k.indices(Shard::ALL).collect());
    pass &= report("10,000-point FuseMax sweep", pts.len(), &run(&p10k, &pts));

    let p1m = plan("sweep-1m.ron");
    assert_eq!(p1m.len(), 1_000_000);
    let t0 = Instant::now();
    let n: usize = p1m
        .indices(Shard::ALL)
        .map(|i| p1m.point(i).1.len().min(1))
        .sum();
    println!(
        "expanding all {n} points of the 1,000,000-point sweep: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let shard = Shard {
        index: 1,
        count: 100,
    };
    let pts = take(p1m.indices(shard).collect());
    pass &= report(
        "one shard (1/100) of the 1,000,000-point sweep",
        pts.len(),
        &run(&p1m, &pts),
    );

    // Merging: 100 shard files of synthetic rows (the merge does not look past `point`), then the CSV.
    let shards: Vec<SourceFile> = (0..100)
        .map(|k| {
            let sh = Shard {
                index: k,
                count: 100,
            };
            let mut text = p1m.header(sh);
            text.push('\n');
            for i in p1m.indices(sh) {
                text.push_str(&format!(
                    "{{\"point\":{i},\"design\":\"fusemax\",\"status\":\"ok\",\"error\":\"\",\"cycles\":{i}}}\n"
                ));
            }
            SourceFile::new(format!("shard-{k}-of-100.jsonl"), text)
        })
        .collect();
    let t0 = Instant::now();
    let merged = p1m.merge(&shards).expect("the synthetic shards merge");
    let (jsonl, csv) = p1m.outputs(&merged);
    println!(
        "merging 100 shards of 1,000,000 rows into sweep.jsonl ({} MB) and sweep.csv ({} MB): {:.2} s",
        jsonl.len() >> 20,
        csv.len() >> 20,
        t0.elapsed().as_secs_f64()
    );
    if !pass {
        std::process::exit(1);
    }
}
