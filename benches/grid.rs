//! The engine's cost on a fixed grid: every shipped arch × depth {1, 2, 3, 4, 5, 8, 16, 32} × seq {1K, 64K, 1M}
//! × buffer {256 KiB, 4 MiB, 64 MiB} on BERT-Base. Each point is timed (best of three, one thread) from a prepared
//! setup through mapping, simulation and report. The target is every point under 50 ms on one core; the
//! benchmark prints the slowest points and exits non-zero if one misses it.
//!
//! `cargo bench --bench grid` (a point that is invalid input, e.g. a buffer too small for the design, is listed
//! and skipped).

use einsim::library::{self, Kind};
use einsim::run;
use einsim::sim::SimOptions;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(50);

fn main() {
    let model = library::get(Kind::Model, "bert-base").expect("bert-base is shipped");
    let mut times: Vec<(Duration, String, String)> = Vec::new();
    let mut invalid = 0;
    for arch_name in library::names(Kind::Arch) {
        let arch = library::get(Kind::Arch, arch_name).expect("listed");
        for depth in [1, 2, 3, 4, 5, 8, 16, 32] {
            for seq in ["1K", "64K", "1M"] {
                for buffer in ["256K", "4M", "64M"] {
                    let label = format!("{arch_name} depth={depth} seq={seq} buffer={buffer}");
                    let sets = [
                        format!("depth={depth}"),
                        format!("seq={seq}"),
                        format!("buffer_bytes={buffer}"),
                    ];
                    let Ok(setup) = run::setup(&arch, Some(&model), None, &sets, &library::get)
                    else {
                        invalid += 1;
                        continue;
                    };
                    let mut best = Duration::MAX;
                    let mut outcome = String::new();
                    for _ in 0..3 {
                        let t0 = Instant::now();
                        let r = run::simulate(&setup, SimOptions::default());
                        best = best.min(t0.elapsed());
                        outcome = match r {
                            Ok(r) => {
                                let est = r.stages.iter().any(|s| s.estimate.is_some());
                                format!(
                                    "{} cycles{}",
                                    r.cycles,
                                    if est { " (estimated)" } else { "" }
                                )
                            }
                            Err(e) => {
                                format!("error: {}", e.to_string().lines().next().unwrap_or(""))
                            }
                        };
                    }
                    times.push((best, label, outcome));
                }
            }
        }
    }
    times.sort_by_key(|t| std::cmp::Reverse(t.0));
    let total: Duration = times.iter().map(|t| t.0).sum();
    println!(
        "{} points timed ({invalid} invalid setups skipped), {:.2} s in all; slowest:",
        times.len(),
        total.as_secs_f64()
    );
    for (t, label, outcome) in times.iter().take(12) {
        println!("  {:>8.2} ms  {label}: {outcome}", t.as_secs_f64() * 1e3);
    }
    let over = times.iter().filter(|t| t.0 > TARGET).count();
    if over > 0 {
        println!("{over} points over the {} ms target", TARGET.as_millis());
        std::process::exit(1);
    }
    println!("every point under {} ms", TARGET.as_millis());
}
