//! The engine at its limits: steady states found where the old fixed look-back lost them, results that do not
//! depend on extrapolation, counts too large for a report rejected as invalid input, and a budget past which a
//! stage without a period is bracketed instead of simulated tile by tile.
//!
//! The expected cycle counts below come from `einsim run --no-extrapolate` (the full, event-by-event
//! simulation) on the same configuration; the `#[ignore]`d tests recompute them (release builds run them in CI).

#[path = "fixtures/common.rs"]
mod common;

use common::*;
use einsim::run::RunError;
use einsim::sim::SimOptions;

fn cycles(arch: &str, model: &str, sets: &[&str], opts: SimOptions) -> u64 {
    run_shipped(arch, model, sets, opts).cycles
}

/// Extrapolation used to leak buffer space here (an inner loop's start was not reset after a skip on an outer
/// loop) and deadlocked at step 73,744; the full simulation gives 21,623,434 cycles.
#[test]
fn depth_3_at_4k_finds_its_period_without_leaking() {
    let sets = ["seq=4096", "depth=3", "batch=25"];
    let r = run_shipped("fusemax", "bert-base", &sets, EXTRAPOLATE);
    assert_eq!(r.cycles, 21_623_434);
    let st = &r.stages[0];
    assert!(
        st.simulated_steps * 20 < st.steps,
        "{} of {} steps simulated: no steady state found",
        st.simulated_steps,
        st.steps
    );
}

#[test]
#[ignore = "full simulation of 76,800 tiles; run by CI in release"]
fn depth_3_at_4k_full_simulation() {
    let sets = ["seq=4096", "depth=3", "batch=25"];
    assert_eq!(cycles("fusemax", "bert-base", &sets, FULL), 21_623_434);
}

/// Loads ready in the same tick used to claim buffer space in slot-id order, and pruning (only when
/// extrapolating) recycles slot ids: the extrapolated run gave 8,547,837 cycles, 1.7% more than the full one.
#[test]
fn same_tick_loads_claim_the_buffer_oldest_first() {
    let sets = ["seq=1024", "batch=2", "buffer_bytes=1048576"];
    assert_eq!(cycles("flat-edge", "xlm", &sets, EXTRAPOLATE), 8_402_452);
    assert_eq!(cycles("flat-edge", "xlm", &sets, FULL), 8_402_452);
}

/// FLAT's spilled binding keeps each Q tile across the key loop and frees one per query tile in that loop's last
/// iteration: a period that *releases* buffer space. Its snapshot keys used to grow by one tile a step and never
/// matched, so every last key iteration was simulated tile by tile (FLAT at 1M tokens with 64 MiB took 0.28 s).
/// The skip now drops the tiles whose readers it skips; the result equals the full simulation.
#[test]
fn periods_that_release_buffer_space_are_skipped_exactly() {
    let sets = ["seq=16384", "buffer_bytes=2097152", "batch=1", "heads=2"];
    let r = run_shipped("flat-edge", "bert-base", &sets, EXTRAPOLATE);
    assert_eq!(r.cycles, 104_712_498);
    for st in &r.stages {
        assert!(
            st.simulated_steps * 1000 < st.steps,
            "{} of {} steps simulated: the releasing period was not skipped",
            st.simulated_steps,
            st.steps
        );
    }
}

#[test]
#[ignore = "full simulation of 1.5M tiles; run by CI in release"]
fn periods_that_release_buffer_space_full_simulation() {
    let sets = ["seq=16384", "buffer_bytes=2097152", "batch=1", "heads=2"];
    assert_eq!(cycles("flat-edge", "bert-base", &sets, FULL), 104_712_498);
}

/// The other failures the audit listed: each extrapolated equals its full simulation.
#[test]
fn audited_cases_extrapolate_exactly() {
    for (arch, model, sets) in [
        ("fusemax", "xlm", &["seq=6144", "depth=5", "batch=8"][..]),
        ("fusemax", "bert-base", &["seq=2048", "depth=4", "batch=6"]),
        (
            "flat-edge",
            "bert-base",
            &["seq=1024", "depth=2", "batch=2"],
        ),
    ] {
        let fast = run_shipped(arch, model, sets, EXTRAPOLATE);
        let full = run_shipped(arch, model, sets, FULL);
        assert_eq!(fast.cycles, full.cycles, "{arch} {model} {sets:?}");
        assert_eq!(json_without_steps(&fast), json_without_steps(&full));
    }
}

fn json_without_steps(r: &einsim::report::RunReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("serialises");
    for st in v["stages"].as_array_mut().expect("stages") {
        st.as_object_mut().expect("stage").remove("simulated_steps");
    }
    v
}

/// Stage times are whole cycles and add up to the run's; the bound rounds the same way, so two identical
/// DRAM-bound stages whose times are fractional cycles no longer report a time below the bound.
#[test]
fn stage_times_add_up_and_stay_above_the_bound() {
    for (arch, model, sets) in [
        ("flat-edge", "bert-base", &["seq=2048"][..]),
        ("flat-cloud", "xlm", &["seq=1024", "batch=3"]),
    ] {
        let r = run_shipped(arch, model, sets, EXTRAPOLATE);
        let sum: u64 = r.stages.iter().map(|s| s.cycles).sum();
        assert_eq!(sum, r.cycles, "{arch} {sets:?}");
        let bound: u64 = r.stages.iter().map(|s| s.bound_cycles).sum();
        assert_eq!(bound, r.bound.cycles, "{arch} {sets:?}");
        for s in &r.stages {
            assert!(
                s.cycles >= s.bound_cycles,
                "{arch} {sets:?} stage {}",
                s.name
            );
        }
    }
}

/// FuseMax is bound by its 1D array from 64K tokens up, so its latency grows as seq² (the tile steps) plus the
/// per-query work (linear in seq) and a constant fill and drain: it quadruples per doubling, to within 0.2%, up
/// to 2^30 tokens, and stays within a few thousand cycles of its bound, with no count wrapping on the way.
#[test]
fn fusemax_latency_scales_as_seq_squared_up_to_2_pow_30() {
    let mut prev: Option<u64> = None;
    for e in 16..=30 {
        let r = run_shipped(
            "fusemax",
            "bert-base",
            &[&format!("seq=2^{e}")],
            EXTRAPOLATE,
        );
        let slack = r.cycles - r.bound.cycles;
        assert!(slack < 10_000, "2^{e}: {slack} cycles over the bound");
        if let Some(pc) = prev {
            let ratio = r.cycles as f64 / pc as f64;
            assert!((3.99..=4.0).contains(&ratio), "2^{e}: ratio {ratio}");
        }
        prev = Some(r.cycles);
    }
}

/// A result too large for the report's 64-bit counts is invalid input naming what overflowed, never a wrapped
/// number (exit 0) or an internal error (exit 3).
#[test]
fn results_too_large_are_invalid_input() {
    for sets in [&["seq=2^32"][..], &["seq=2^40"], &["seq=2^62"]] {
        match try_shipped("fusemax", "bert-base", sets, EXTRAPOLATE) {
            Err(RunError::Mapping(m)) => {
                assert!(m.contains("2^64") && m.contains("seq"), "{sets:?}: {m}")
            }
            Err(RunError::Invalid(_)) => {}
            other => panic!("{sets:?}: expected invalid input, got {other:?}"),
        }
    }
    // FLAT used to exit 3 at 64M tokens (its bound summed rounded stages).
    let r = try_shipped("flat-cloud", "bert-base", &["seq=2^26"], EXTRAPOLATE);
    assert!(
        !matches!(r, Err(RunError::Internal(_))),
        "flat-cloud at 64M: {r:?}"
    );
}

/// 256M tokens runs (the tick counter used to wrap, giving less than 16x the 64M latency).
#[test]
fn no_wrap_at_256m_tokens() {
    let a = cycles("fusemax", "bert-base", &["seq=2^26"], EXTRAPOLATE);
    let b = cycles("fusemax", "bert-base", &["seq=2^28"], EXTRAPOLATE);
    let ratio = b as f64 / a as f64;
    assert!((15.9..=16.0).contains(&ratio), "{b} / {a} = {ratio}");
}

/// Past its budget, a stage that has found no period is bracketed: the estimate lies in an interval that holds
/// the fully simulated value, and the report says so.
#[test]
fn budget_brackets_the_true_value() {
    let sets = ["seq=2048", "depth=64", "batch=2"];
    let full = run_shipped("fusemax", "bert-base", &sets, FULL);
    let tight = SimOptions {
        extrapolate: true,
        budget: 2_000,
    };
    let est = run_shipped("fusemax", "bert-base", &sets, tight);
    let st = &est.stages[0];
    let e = st.estimate.expect("the budget ran out: an estimate");
    assert!(
        e.low_cycles <= full.cycles && full.cycles <= e.high_cycles,
        "{} not in [{}, {}]",
        full.cycles,
        e.low_cycles,
        e.high_cycles
    );
    assert!(e.low_cycles <= est.cycles && est.cycles <= e.high_cycles);
    assert!(est.cycles >= est.bound.cycles);
    let text = einsim::report::text::render(&est);
    assert!(
        text.contains("no steady state within the engine's budget"),
        "{text}"
    );
    // The full run never estimates.
    assert!(full.stages.iter().all(|s| s.estimate.is_none()));
}

/// Huge windows are the same schedule as all tiles in flight and run within the budget.
#[test]
fn huge_depth_is_bounded() {
    let r = run_shipped("fusemax", "bert-base", &["depth=100000"], EXTRAPOLATE);
    assert!(r.cycles >= r.bound.cycles);
    let same = run_shipped("fusemax", "bert-base", &["depth=2^40"], EXTRAPOLATE);
    assert_eq!(r.cycles, same.cycles);
}
