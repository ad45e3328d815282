//! Mechanisms behind the FuseMax fidelity fixes (issue 10), each pinned by a fixture whose cycles are counted by
//! hand, or by a property of the shipped arch files that the mechanism implies.

#[path = "fixtures/common.rs"]
mod common;

use common::*;

fn edit_pipeline(pipeline: &str) -> String {
    let text = fixture("arch/inorder.ron").text;
    let old = "InOrder(Fig(\"depth\", \"tile\", \"test fixture\"))";
    assert!(text.contains(old));
    text.replace(old, pipeline)
}

fn run_inorder(text: String, sets: &[&str], opts: einsim::sim::SimOptions) -> u64 {
    let file = einsim::diag::SourceFile::new("tests/fixtures/arch/inorder.ron", text);
    run_text(&file, None, None, sets, &fixture_lookup, opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .cycles
}

// ---- InOrder: no interleaving of tiles on a unit, units overlapping (tests/fixtures/arch/inorder.ron) ----
//
// Per tile: Z on the array (16 cycles), the array's 40-cycle drain, S on the vector unit (4), its 1-cycle latency,
// T back on the array (1). 8 tiles (nsize 32, N0 = 4).

#[test]
fn sequential_round_trip() {
    // Window 1: each tile also waits for T's own drain before the next Z: 16 + 40 + 4 + 1 + 1 + 40 = 102 per tile,
    // 8 x 102 = 816.
    let text = edit_pipeline("Sequential");
    assert_eq!(run_inorder(text.clone(), &[], FULL), 816);
    assert_eq!(run_inorder(text, &[], EXTRAPOLATE), 816);
    // InOrder with one tile in flight is the same thing.
    let one = edit_pipeline("InOrder(Fig(\"1\", \"tile\", \"test\"))");
    assert_eq!(run_inorder(one, &[], FULL), 816);
}

#[test]
fn in_order_exposes_the_round_trip_once_per_tile() {
    // The array runs tile n's Z at 62n .. 62n+16; S at 62n+56 .. 62n+60; T at 62n+61 .. 62n+62. Tile n+1's Z is
    // admitted (depth 4) but waits for T: the array starts no task of a later tile while one of an earlier tile on
    // it has not started. T's drain overlaps the next tile's Z, so the period is 62, not 102. The last tile's T ends
    // at 7 x 62 + 62 = 496 and drains at 536.
    let text = fixture("arch/inorder.ron").text;
    assert_eq!(run_inorder(text.clone(), &[], FULL), 536);
    assert_eq!(run_inorder(text.clone(), &[], EXTRAPOLATE), 536);
    // 64 tiles: 63 x 62 + 62 + 40 = 4008, the same with extrapolation (a period of one tile).
    assert_eq!(run_inorder(text.clone(), &["nsize=256"], FULL), 4008);
    assert_eq!(run_inorder(text, &["nsize=256"], EXTRAPOLATE), 4008);
}

#[test]
fn interleaving_fills_the_round_trip_with_other_tiles() {
    // The same depth interleaved: the array runs later tiles' Z while tile n waits on the vector unit, so it is
    // strictly faster than in order, and never below the array's busy time plus the last drain (8 x 17 + 40).
    let text = edit_pipeline("Interleave(Fig(\"depth\", \"tile\", \"test\"))");
    let interleaved = run_inorder(text.clone(), &[], FULL);
    assert_eq!(interleaved, run_inorder(text, &[], EXTRAPOLATE));
    assert!(interleaved < 536, "{interleaved}");
    assert!(interleaved >= 8 * 17 + 40, "{interleaved}");
}
