//! Query and key lengths apart (`q_len`, `kv_len`) and ragged lengths (not a multiple of the tile): decode and
//! prefill with a KV cache run on the shipped designs, a partial last tile takes a whole tile's time while its
//! counts are of its real points (padding), and setting both lengths to `seq` reproduces `seq` exactly.

#[path = "fixtures/common.rs"]
mod common;

use common::*;
use einsim::report::{text, RunReport};
use serde_json::Value;

/// The attention designs of the reproduction plus FLAT's edge variant: every shipped arch whose first binding is
/// an attention cascade.
const DESIGNS: [&str; 6] = [
    "fusemax",
    "flat-cloud",
    "unfused",
    "fusemax-cascade",
    "fusemax-arch",
    "flat-edge",
];
const DECODE: [&str; 2] = ["q_len=1", "kv_len=32768"];
const PREFILL: [&str; 2] = ["q_len=4096", "kv_len=32768"];

fn run(arch: &str, sets: &[&str]) -> RunReport {
    run_shipped(arch, "bert-base", sets, EXTRAPOLATE)
}

/// Everything a report says about cost, leaving out what names the configuration (`params`) and how its tiles
/// are padded, so two spellings of one configuration, or a ragged length and its padded one, can be compared.
fn costs(r: &RunReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("params");
    o.remove("padding");
    v
}

#[test]
fn decode_and_prefill_with_a_cache_run_on_every_design() {
    for arch in DESIGNS {
        for sets in [&DECODE, &PREFILL] {
            let r = run(arch, sets);
            assert!(
                r.cycles >= r.bound.cycles,
                "{arch} {sets:?}: {} cycles beat the bound {}",
                r.cycles,
                r.bound.cycles
            );
            assert_eq!(r.params["q_len"], sets[0][6..].parse::<i64>().unwrap());
            assert_eq!(r.params["kv_len"], 32768);
        }
    }
}

fn dram(r: &RunReport) -> (u128, u128) {
    let t = r.traffic.iter().find(|t| t.level == "dram").unwrap();
    (t.read_bytes, t.write_bytes)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
}

/// FuseMax's query tile is one array edge (P0 = 256 columns): one decode query is a 256-query tile with 255 of
/// padding. The tile takes its whole time, so the step takes as long as 256 queries would; its counts are of the
/// one real query: every Einsum spans P, so each computes 1/256 of the points and uses 1/256 of the array, and
/// DRAM moves one query and its output where 256 would move 256 (K and V, read whole either way, are the same).
#[test]
fn decode_on_fusemax_takes_a_whole_query_tile_and_counts_one_query() {
    let one = run("fusemax", &DECODE);
    let full = run("fusemax", &["q_len=256", "kv_len=32768"]);
    assert_eq!(one.cycles, full.cycles);
    for (a, b) in one.einsums.iter().zip(&full.einsums) {
        assert!(close(a.points * 256.0, b.points), "{}", a.name);
        assert!(close(a.utilization * 256.0, b.utilization), "{}", a.name);
    }
    // Q (read) and the output (written), per query: batch 64 x 12 heads x 64 x 2 B.
    let per_query: u128 = 64 * 12 * 64 * 2;
    let ((r1, w1), (r256, w256)) = (dram(&one), dram(&full));
    assert_eq!((r256 - r1, w256 - w1), (255 * per_query, 255 * per_query));
    assert!(one.energy_pj.total < full.energy_pj.total);
    assert_eq!(one.padding.len(), 1);
    let p = &one.padding[0];
    assert_eq!((p.rank.as_str(), p.size), ("P", 1));
    assert_eq!(p.parts.iter().map(|(_, v)| v).product::<u64>(), 256);
    assert!(full.padding.is_empty(), "256 queries fill the tile");
    // FLAT's fused row tile is a divisor of P, so its one-query tile is not padded (it runs on one column).
    assert!(run("flat-cloud", &DECODE).padding.is_empty());
}

/// Under the padding rule a ragged length takes exactly its padded length's time where every partition is padded
/// to the same tiles (FuseMax, unfused and the ablations at 1000 → 1024), and counts less: FuseMax's DRAM traffic
/// (Q, K, V and the output, each linear in the length) is exactly 1000/1024 of the padded run's, and its QK
/// Einsum, spanning both lengths, does (1000/1024)² of the work. FLAT's fused binding tiles rows by a divisor of
/// P and folds M onto the array, so it pads nothing and costs no more than 1024.
#[test]
fn a_ragged_length_takes_its_padded_tiles_time_and_counts_its_real_points() {
    for arch in ["fusemax", "unfused", "fusemax-cascade", "fusemax-arch"] {
        let ragged = run(arch, &["seq=1000"]);
        let padded = run(arch, &["seq=1024"]);
        assert_eq!(ragged.cycles, padded.cycles, "{arch}");
        assert!(ragged.energy_pj.total < padded.energy_pj.total, "{arch}");
        let ((rr, rw), (pr, pw)) = (dram(&ragged), dram(&padded));
        assert!(rr < pr && rw < pw, "{arch}");
        let ranks: Vec<(&str, u64)> = ragged
            .padding
            .iter()
            .map(|p| (p.rank.as_str(), p.size))
            .collect();
        assert!(
            ranks.contains(&("M", 1000)) && ranks.contains(&("P", 1000)),
            "{arch}: {ranks:?}"
        );
        assert!(ragged.cycles >= ragged.bound.cycles);
    }
    let ragged = run("fusemax", &["seq=1000"]);
    let padded = run("fusemax", &["seq=1024"]);
    let ((rr, rw), (pr, pw)) = (dram(&ragged), dram(&padded));
    assert_eq!((rr * 1024, rw * 1024), (pr * 1000, pw * 1000));
    let qk = |r: &RunReport| r.einsums.iter().find(|e| e.name == "BQK").unwrap().points;
    assert_eq!(qk(&ragged), 64.0 * 12.0 * 64.0 * 1000.0 * 1000.0);
    assert!(close(
        qk(&ragged) * 1024.0 * 1024.0,
        qk(&padded) * 1000.0 * 1000.0
    ));
    let ragged = run("flat-cloud", &["seq=1000"]);
    let padded = run("flat-cloud", &["seq=1024"]);
    assert!(ragged.padding.is_empty());
    assert!(ragged.cycles <= padded.cycles && ragged.energy_pj.total < padded.energy_pj.total);
    assert!(ragged.cycles >= ragged.bound.cycles);
}

/// `q_len = kv_len = seq` is `seq`: the same report in every field but the parameters it lists.
#[test]
fn both_lengths_set_to_seq_reproduce_seq() {
    for arch in ["fusemax", "flat-cloud", "unfused"] {
        for n in ["1024", "4096", "1000"] {
            let seq = run(arch, &[&format!("seq={n}")]);
            let both = run(arch, &[&format!("q_len={n}"), &format!("kv_len={n}")]);
            assert_eq!(costs(&seq), costs(&both), "{arch} at {n}");
            assert_eq!(seq.padding, both.padding, "{arch} at {n}");
            // Only what was set is listed: `seq` alone, or the two lengths (beside the model's `seq`).
            assert!(!seq.params.contains_key("q_len") && !seq.params.contains_key("kv_len"));
            assert_eq!(both.params["q_len"], n.parse::<i64>().unwrap());
        }
    }
}

/// A binding whose partition leaves a whole tile of padding is refused before anything runs: every tile must hold
/// at least one point, so the padding rule never charges an empty tile.
#[test]
fn a_binding_with_an_empty_tile_is_refused() {
    let text = shipped(einsim::library::Kind::Arch, "fusemax").text;
    let text = edit_after(
        &text,
        "cascade: \"attention-1pass\"",
        "Fixed(\"ceil(P, P1 * P0)\")",
        "Fixed(\"ceil(P, P1 * P0) + 1\")",
    );
    let err = run_fusemax_edited(text, "bert-base", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the parts of `P` do not cover it with less than one tile of padding")
            && err.contains("P2 × P1 × P0 = 2 × 4 × 256 = 2048, 1024 more than P = 1024"),
        "{err}"
    );
}

#[test]
fn decode_report_snapshot() {
    let r = run("fusemax", &DECODE);
    insta::assert_snapshot!("decode_text", text::render(&r));
}

/// FLAT's spilled binding bounds its row block (`P1`, at most 4 array edges) by a divisor of the query tiles, so a
/// ragged long length pads only its last tile and still maps: 262,400 tokens are 1025 tiles of 256 (5² x 41), so
/// the block is one tile; 8,224 on the edge is 257 tiles of 32 (a prime).
#[test]
fn flat_maps_ragged_long_lengths_with_its_spilled_binding() {
    let r = run("flat-cloud", &["seq=262400"]);
    assert_eq!(r.binding, "spilled");
    assert_eq!(r.mapping["P1"], 1);
    assert!(r.cycles >= r.bound.cycles);
    let r = run("flat-edge", &["seq=8224"]);
    assert_eq!(r.binding, "spilled");
    assert_eq!(r.mapping["P1"], 1);
    let r = run("flat-cloud", &["seq=262144"]);
    assert_eq!(r.mapping["P1"] * r.mapping["P0"], 1024);
}
