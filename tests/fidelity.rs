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

// ---- +Architecture on the shipped file: one exposed LM drain per BQK tile ----

#[test]
fn plus_architecture_pays_one_drain_per_tile() {
    // BERT-Base at 64K: 64 x 12 x 256 x 256 tiles of 256x256. Per tile the 2D array runs BQK (64 cycles) and LM (1),
    // waits for LM's 256-cycle drain, RM on the 1D array (1) and its 1-cycle latency, then SLN (7 = add + 6-MAC
    // exp), SLD (1) and SLNV (64): 64 + 1 + 256 + 1 + 1 + 7 + 1 + 64 = 395 cycles, while the 1D array finishes the
    // tile (RD, RNV, AV behind the drains of SLD and SLNV) under the next tile's BQK. AV once per query tile adds
    // about 1 cycle a tile.
    let r = run_shipped("fusemax-arch", "bert-base", &["seq=65536"], EXTRAPOLATE);
    let tiles = 64u64 * 12 * 256 * 256;
    let per_tile = r.cycles as f64 / tiles as f64;
    assert!(
        (395.0..397.0).contains(&per_tile),
        "{per_tile} cycles per tile"
    );
}

// ---- +Cascade: exp of a difference is exp + add on FLAT's 1D array; FLAT's own softmax fuses it ----

#[test]
fn plus_cascade_charges_exp_and_add() {
    let one = |arch: &str, einsum: &str| {
        let r = run_shipped(arch, "bert-base", &["seq=4096"], EXTRAPOLATE);
        let e = r
            .einsums
            .iter()
            .find(|e| e.name == einsum)
            .unwrap_or_else(|| panic!("no {einsum} in {arch}"));
        // Cycles per point per lane of the 256-lane 1D array.
        e.cycles as f64 * 256.0 / e.points
    };
    // +Cascade's SLN = exp(BQK - RM): one add, then one exp on the exp unit, 2 cycles ([R] fusemax.md §2.2).
    assert_eq!(one("fusemax-cascade", "SLN"), 2.0);
    // FLAT's SN = exp(QK - GM): one pipelined sub-exp op, 1 cycle ([R] §6.2: 4 ops per element).
    assert_eq!(one("flat-cloud", "SN"), 1.0);
}

// ---- The tile belongs to the binding: FuseMax's M0 follows its array (`set: { "kv_tile": "rows" }`) ----

#[test]
fn fusemax_tile_follows_the_array() {
    let at = |n: u64| {
        let sets = [
            "seq=262144".to_string(),
            format!("rows={n}"),
            format!("cols={n}"),
            format!("lanes={n}"),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        run_shipped("fusemax", "bert-base", &sets, EXTRAPOLATE)
    };
    let (a, b) = (at(256), at(512));
    assert_eq!(a.params.get("kv_tile"), Some(&256));
    assert_eq!(b.params.get("kv_tile"), Some(&512));
    // Four times the PEs, each tile four times the work at the same cycles per tile: 4x faster, within 1%, and the
    // 2D array as busy. With the cascade's fixed 256-key tile, half of a 512-row array idled (2x slow).
    let speedup = a.cycles as f64 / b.cycles as f64;
    assert!((speedup - 4.0).abs() < 0.04, "speedup {speedup}");
    let util = |r: &einsim::report::RunReport| {
        r.units
            .iter()
            .find(|u| u.name == "pe2d")
            .unwrap()
            .utilization
    };
    assert!((util(&a) - util(&b)).abs() < 0.01);
    // A user's `--set kv_tile` cannot move a binding that fixes it: it is refused, never silently ignored.
    let c = try_shipped(
        "fusemax",
        "bert-base",
        &["seq=262144", "kv_tile=128"],
        EXTRAPOLATE,
    );
    let Err(e) = c else {
        panic!("a fixed parameter set by the user is an error")
    };
    let e = e.to_string();
    assert!(e.contains("`kv_tile` is fixed by the binding"), "{e}");
}

// ---- (e) FLAT from 64K: one logit tile, K and V streamed past the buffer, the excess spilled ----

#[test]
fn flat_keeps_its_logit_tile_on_chip_at_64k_and_spills_from_256k() {
    let flat = |seq: &str| run_shipped("flat-cloud", "bert-base", &[seq], EXTRAPOLATE);
    // At 64K no double-buffered tile of 256 rows fits (2 x 32 MiB), but one does, nearly: the Q and output tiles
    // and the per-row softmax state push 66,560 B of it (0.2%) to DRAM, and the fastest dataflow is bound by the
    // 1D array's softmax, as the artifact's FLAT is ([F] latency = max(memory, 2D, 1D)). Spilling the whole
    // logit tensor made it DRAM-bound, 17% slower (12% before its row tile was bounded to 1024 rows).
    let r = flat("seq=65536");
    assert_eq!(r.binding, "streamed");
    assert_eq!(r.bound.limiter, "pe1d");
    let sp = r.stages[0]
        .spill
        .as_ref()
        .expect("the logit tile overflows");
    assert_eq!(
        (sp.tensor.as_str(), sp.bytes, sp.of),
        ("QK", 66_560, 32 << 20)
    );
    let o = einsim(&[
        "run",
        "--arch",
        "flat-cloud",
        "--set",
        "seq=65536",
        "--binding",
        "spilled",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let slower = v["cycles"].as_u64().unwrap() as f64 / r.cycles as f64;
    assert!((slower - 1.170).abs() < 0.001, "{slower}");
    // From 256K three quarters of a 256-row tile would spill at every access; the three passes over the
    // spilled tensor move less.
    let r = flat("seq=262144");
    assert_eq!(r.binding, "spilled");
    // Row-granular with the logits off-chip: each block of R = 4 array edges = 1024 query rows streams all of K
    // (pass 1) and V (pass 3) again. DRAM reads: the logits twice (QK in pass 2, SN in pass 3), K and V N / R
    // times each, Q once, and the per-row max and sum (a 32nd of a K-sized tensor: N x 2 B against N x E x 2 B).
    let (b, h, n, e) = (64u128, 12u128, 262_144u128, 64u128);
    let logits = b * h * n * n * 2;
    let kv = b * h * n * e * 2;
    let dram = r.traffic.iter().find(|t| t.level == "dram").unwrap();
    assert_eq!(
        dram.read_bytes,
        2 * logits + (2 * (n / 1024) + 1) * kv + kv / 32
    );
}

// ---- (d) Unfused's logits bypass the buffer in its QK and AV phases ----

#[test]
fn unfused_logits_bypass_the_buffer_in_the_matmul_phases() {
    let traffic = |file: &einsim::diag::SourceFile| {
        let r = run_text(
            file,
            Some("bert-base"),
            None,
            &[],
            &einsim::library::get,
            EXTRAPOLATE,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = r.traffic.iter().find(|t| t.level == "buffer").unwrap();
        (t.read_bytes, t.write_bytes, r.cycles)
    };
    let shipped_arch = shipped(einsim::library::Kind::Arch, "unfused");
    let staged = shipped_arch
        .text
        .replace("bypass: [\"QK\"],", "")
        .replace("bypass: [\"A\"],", "");
    let (r0, w0, c0) = traffic(&einsim::diag::SourceFile::new("arch/unfused.ron", staged));
    let (r1, w1, c1) = traffic(&shipped_arch);
    // Staged, each logit was written to the buffer by the 2D array and read by the store (QK phase), and written
    // by the load and read by AV (AV phase): B·H·M·P = 64·12·1024·1024 values of 2 B, twice each way.
    let logits: u128 = 64 * 12 * 1024 * 1024 * 2;
    assert_eq!((r0 - r1, w0 - w1), (2 * logits, 2 * logits));
    // The phases stay bound by DRAM and the 1D array: the bypass saves energy, not time.
    assert!((c0 as f64 / c1 as f64 - 1.0).abs() < 0.002, "{c0} vs {c1}");
}
