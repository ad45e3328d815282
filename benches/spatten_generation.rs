//! Speed target of issue 8: a 24-layer GPT-2-medium generation of 32 tokens over a 1K context must simulate in
//! under 100 ms on one core. The workload is SpAtten's (`arch/spatten.ron`, layer `spatten-decode`, model
//! `gpt2-medium-gen`) with pruning shaped like the [C] gpt2-medium trace (reference flat_spatten.md §2.5: K/L about
//! 0.54, V/K 0.30, heads 16 -> 10 in the last layers, 12-bit K and 8-bit V) as schedules: tokens unpruned in the
//! front 15 % of the layers, then 30 % rising to 62 % pruned; heads unpruned in the front 30 %, then 0 % rising to
//! 37 %; and, as the issue asks, the same generation driven by the shipped synthetic trace
//! (`workloads/traces/gpt2-medium-synthetic.csv`).
//!
//! Status: met on 2026-12-03 (the last measurement), 69 ms for the schedules and 82 ms for the trace on the 2-core
//! development machine; earlier that day, on a machine running the same instructions at about half the rate, the
//! trace read 117 ms (0.875 G instructions), so a slow day can still come near the target. Criterion once read
//! 72 ms for the schedules (707 distinct op simulations) and 86 ms for the trace (999), about 0.09 ms an op, mostly
//! mapping, engine and report building; the GEMMs are cached. Earlier: 161 ms and about 210 ms, until the op cache
//! shared its reports instead of cloning them, the layer's expressions were parsed once, the memo's key became
//! bytes instead of formatted text, and mimalloc replaced glibc's allocator (a third of the instructions were
//! malloc and free; callgrind, 1.60 G -> 0.94 G instructions for the trace's run). Timings on this shared machine
//! vary by up to 2x from day to day, so instruction counts are the comparison: the trace's run (`einsim generate
//! --trace workloads/traces/gpt2-medium-synthetic.csv --context 1024`) took 1.03 G at the start of 2026-12-02;
//! 0.875 G after mapping cached each stage's tensor and Einsum parts, bit widths and distinct references, pass
//! analysis its Einsums' ranks, and the report summed by borrowed names; 0.742 G after the pass analysis was made
//! once per cascade (`passes::Structure`), ops got their arguments as values instead of text to parse, and the
//! layer stopped copying its environment per op; 0.716 G once expression spans were found only for errors, the
//! cascade's dataflow was built once per setup and a layer's expressions were kept per op (readings that night
//! ranged from 82 to 94 ms for the trace). What remains per op is mapping (0.22 M
//! instructions), the engine (0.21 M) and the report (0.1 M).

use criterion::{criterion_group, criterion_main, Criterion};
use einsim::diag::SourceFile;
use einsim::generation::{run_generation, Generation, Schedule};
use einsim::library::{self, Kind};
use einsim::sim::SimOptions;
use einsim::trace::Trace;
use std::hint::black_box;

fn gpt2_medium_generation(c: &mut Criterion) {
    let arch = library::get(Kind::Arch, "spatten").expect("spatten is shipped");
    let model = library::get(Kind::Model, "gpt2-medium-gen").expect("gpt2-medium-gen is shipped");
    let layer = library::get(Kind::Layer, "spatten-decode").expect("spatten-decode is shipped");
    let sets: Vec<String> = ["v_keep=30", "k_bits=12", "v_bits=8"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let gen = Generation {
        layers: 24,
        steps: 32,
        context: 1024,
        tokens: Some(Schedule {
            front_pct: 15,
            start: 30,
            end: 62,
        }),
        heads: Some(Schedule {
            front_pct: 30,
            start: 0,
            end: 37,
        }),
        trace: None,
    };
    let mut group = c.benchmark_group("spatten-gpt2-medium");
    group.sample_size(10);
    group.bench_function("generate-32-over-1K", |b| {
        b.iter(|| {
            run_generation(
                &layer,
                &arch,
                &model,
                black_box(&sets),
                &gen,
                &library::get,
                SimOptions::default(),
            )
            .expect("runs")
        })
    });
    // The workload: the same generation driven by the shipped synthetic trace.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/traces/gpt2-medium-synthetic.csv"
    );
    let text = std::fs::read_to_string(path).expect("the synthetic trace is shipped");
    let trace =
        Trace::parse(&SourceFile::new("gpt2-medium-synthetic.csv", text)).expect("it parses");
    let traced = Generation {
        tokens: None,
        heads: None,
        trace: Some(trace),
        ..gen
    };
    group.bench_function("generate-32-over-1K-trace", |b| {
        b.iter(|| {
            run_generation(
                &layer,
                &arch,
                &model,
                &[],
                black_box(&traced),
                &library::get,
                SimOptions::default(),
            )
            .expect("runs")
        })
    });
    group.finish();
}

criterion_group!(benches, gpt2_medium_generation);
criterion_main!(benches);
