//! GPU runs against the issue-13 targets: a forward FA4 run at 32K tokens under 50 ms and a full
//! `einsim reproduce fa4` (without writing files) under 2 s, on one core. Prints best-of-three times and exits
//! non-zero on a miss. `cargo bench --bench gpu`.

use einsim::gpu::{self, report, reproduce};
use einsim::library::{self, Kind};
use einsim::sim::SimOptions;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn best<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .expect("three runs")
}

fn main() {
    let mut ok = true;
    let file = library::get(Kind::Gpu, "b200").expect("b200 is shipped");
    for causal in [false, true] {
        let t = best(|| {
            let g = gpu::load(&file, &BTreeMap::new()).expect("b200 loads");
            let w = gpu::kernel::Workload {
                seq: 32768,
                batch: 1,
                heads: 16,
                d: 128,
                causal,
            };
            report::run(&g, Some("fa4"), &w, &BTreeMap::new(), SimOptions::default()).expect("runs")
        });
        let miss = t > Duration::from_millis(50);
        ok &= !miss;
        println!(
            "fa4 b200 seq 32K causal={causal}: {:.2} ms (target 50 ms){}",
            t.as_secs_f64() * 1e3,
            if miss { " MISS" } else { "" }
        );
    }
    let t = best(|| reproduce::compute(&library::get, SimOptions::default()).expect("reproduces"));
    let miss = t > Duration::from_secs(2);
    ok &= !miss;
    println!(
        "reproduce fa4 (computation): {:.0} ms (target 2 s){}",
        t.as_secs_f64() * 1e3,
        if miss { " MISS" } else { "" }
    );
    if !ok {
        std::process::exit(1);
    }
}
