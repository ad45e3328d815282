//! Speed targets live here, not in tests: FuseMax on BERT-Base attention at 1M tokens must simulate (map,
//! simulate with steady-state extrapolation, report) in under 50 ms on one core.

use criterion::{criterion_group, criterion_main, Criterion};
use einsim::library::{self, Kind};
use einsim::run;
use einsim::sim::SimOptions;
use std::hint::black_box;

fn fusemax(c: &mut Criterion) {
    let arch = library::get(Kind::Arch, "fusemax").expect("fusemax is shipped");
    let model = library::get(Kind::Model, "bert-base").expect("bert-base is shipped");
    let mut group = c.benchmark_group("fusemax-bert-base");
    group.sample_size(20);
    for seq in ["1K", "64K", "1M"] {
        let setup = run::setup(
            &arch,
            Some(&model),
            None,
            &[format!("seq={seq}")],
            &library::get,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(format!("attention-{seq}"), |b| {
            b.iter(|| run::simulate(black_box(&setup), SimOptions::default()).expect("runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, fusemax);
criterion_main!(benches);
