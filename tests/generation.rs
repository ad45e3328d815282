//! Whole-model generation (src/generation.rs) on SpAtten: GPT-2 medium, 24 layers, 32 tokens over a 1K context.

use einsim::generation::{run_generation, Generation, Schedule};
use einsim::library::{self, Kind};
use einsim::sim::SimOptions;

fn gpt2_medium(
    steps: i64,
    sets: &[&str],
    tokens: Option<Schedule>,
) -> einsim::generation::GenerationReport {
    let arch = library::get(Kind::Arch, "spatten").expect("spatten is shipped");
    let model = library::get(Kind::Model, "gpt2-medium-gen").expect("gpt2-medium-gen is shipped");
    let layer = library::get(Kind::Layer, "spatten-decode").expect("spatten-decode is shipped");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let gen = Generation {
        layers: 24,
        steps,
        context: 1024,
        tokens,
        heads: None,
    };
    run_generation(
        &layer,
        &arch,
        &model,
        &sets,
        &gen,
        &library::get,
        SimOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn generation_is_memory_bound_and_grows_with_the_cache() {
    let one = gpt2_medium(1, &[], None);
    let two = gpt2_medium(2, &[], None);
    // Every step fetches every weight and the whole KV cache again: the second step costs at least the first.
    assert!(two.cycles >= 2 * one.cycles);
    assert!(two.traffic_bytes["hbm"] > 2 * one.traffic_bytes["hbm"]);
    // Memory-bound: a step cannot beat the 512 B/cycle HBM roof, and spends most of its time on DRAM.
    let per_cycle = one.traffic_bytes["hbm"] as f64 / one.cycles as f64;
    assert!(per_cycle <= 512.0, "{per_cycle} B/cycle");
    assert!(per_cycle >= 0.5 * 512.0, "{per_cycle} B/cycle");
}

#[test]
fn token_pruning_schedule_lowers_traffic() {
    let dense = gpt2_medium(2, &[], None);
    let s = Schedule {
        front_pct: 15,
        start: 20,
        end: 80,
    };
    let pruned = gpt2_medium(2, &["v_keep=30"], Some(s));
    assert!(pruned.traffic_bytes["hbm"] < dense.traffic_bytes["hbm"]);
    assert!(pruned.cycles < dense.cycles);
}

#[test]
fn an_unpruning_schedule_is_an_error() {
    let arch = library::get(Kind::Arch, "spatten").unwrap();
    let model = library::get(Kind::Model, "gpt2-medium-gen").unwrap();
    let layer = library::get(Kind::Layer, "spatten-decode").unwrap();
    let gen = Generation {
        layers: 24,
        steps: 1,
        context: 1024,
        tokens: Some(Schedule {
            front_pct: 15,
            start: 60,
            end: 20,
        }),
        heads: None,
    };
    let e = run_generation(
        &layer,
        &arch,
        &model,
        &[],
        &gen,
        &library::get,
        SimOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("un-prunes"), "{e}");
}

#[test]
fn gpt2_medium_32_tokens_over_1k_runs_with_schedules() {
    // The benchmark's workload (benches/spatten_generation.rs); its speed is measured there, not here.
    let t = std::time::Instant::now();
    let r = gpt2_medium(
        32,
        &["v_keep=30", "k_bits=12", "v_bits=8"],
        Some(Schedule {
            front_pct: 15,
            start: 30,
            end: 62,
        }),
    );
    let wall = t.elapsed().as_secs_f64() * 1e3;
    let dense = gpt2_medium(32, &[], None);
    eprintln!(
        "gpt2-medium 32 tokens: {} cycles, {:.3} ms simulated, {} B HBM, {} op runs, {:.0} ms wall; dense {} cycles, {} B",
        r.cycles,
        r.seconds * 1e3,
        r.traffic_bytes["hbm"],
        r.simulated,
        wall,
        dense.cycles,
        dense.traffic_bytes["hbm"]
    );
    assert!(r.cycles < dense.cycles);
}
