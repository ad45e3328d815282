//! The simulation core against hand-computed cycle counts (tiny fixture archs in tests/fixtures), the direction of
//! change when FuseMax's arch file is edited, extrapolated vs fully simulated runs, and the analytical bound.
//!
//! Timing rules the hand computations use (src/sim/engine.rs, src/mapping.rs):
//! - a unit runs one task at a time, oldest ready first; a task's work is its temporal iterations × op cycles
//!   (at least the cycles its buffer operands take to stream through the buffer's ports);
//! - a result reaches a task on another server after the producer's latency (fill/drain for a unit, access
//!   latency for DRAM), and a stage ends when its last task's result has drained (end + latency);
//! - a load takes bytes / bandwidth (in 1/1024-cycle ticks, exact), allocates its tile in the buffer when it is
//!   ready and waits while the buffer is full; the tile is freed when its last consumer finishes;
//! - `Interleave(d)` keeps up to d tiles (innermost-loop steps) in flight, a step leaving the window when its
//!   compute has drained; `Sequential` is a window of 1;
//! - reported cycles = ceil(ticks / 1024).

#[path = "fixtures/common.rs"]
mod common;

use common::*;
use einsim::arch::TICKS_PER_CYCLE;
use einsim::library::{self, Kind};
use einsim::report::RunReport;
use einsim::run::RunError;

fn einsum<'a>(r: &'a RunReport, name: &str) -> &'a einsim::report::EinsumReport {
    r.einsums
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no Einsum `{name}` in the report"))
}

fn busy(r: &RunReport, unit: &str) -> u64 {
    r.units
        .iter()
        .find(|u| u.name == unit)
        .unwrap_or_else(|| panic!("no unit `{unit}` in the report"))
        .busy_cycles
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Both engines (extrapolated and event-by-event) must give exactly these cycles.
fn cycles_both(arch: &str, sets: &[&str]) -> u64 {
    let full = run_fixture(arch, sets, FULL);
    let fast = run_fixture(arch, sets, EXTRAPOLATE);
    assert_eq!(
        full.cycles, fast.cycles,
        "{arch} {sets:?}: extrapolation changed the result"
    );
    full.cycles
}

// ---- (a) one GEMM on a 4x4 array (tests/fixtures/arch/grid4.ron, cascade tests/fixtures/cascades/mm.ron) ----

#[test]
fn gemm_single_tile() {
    // M = 4 → M1 = 1 tile. m0 (4) on the rows, n (4) on the columns, k (16) in time: 16 cycles of MACs, then
    // the 3-cycle drain: 16 + 3 = 19.
    let r = run_fixture("grid4", &["msize=4"], FULL);
    assert_eq!(r.cycles, 19);
    assert_eq!(r.bound.cycles, 16);
    assert_eq!(r.bound.limiter, "pe");
    assert!(close(r.bound.ratio, 19.0 / 16.0));
    let z = einsum(&r, "Z");
    assert_eq!((z.unit.as_str(), z.cycles, z.tasks), ("pe", 16, 1));
    assert_eq!(z.points, 256.0); // 4 x 4 x 16 MACs
    assert!(close(z.pe_fraction, 1.0));
    assert!(close(r.utilization["pe"], 16.0 / 19.0));
    // 256 MACs at 1 pJ; A and B live in the PEs, so no buffer or DRAM traffic.
    assert!(close(r.energy_pj.total, 256.0), "{}", r.energy_pj.total);
    assert!(
        r.traffic_bytes.values().all(|&b| b == 0),
        "{:?}",
        r.traffic_bytes
    );
    assert!(close(r.seconds, 19e-9));
}

#[test]
fn gemm_short_latency() {
    // A 1-cycle drain: 1 tile = 16 + 1; 4 interleaved tiles = 4 x 16 + 1; one at a time = 4 x (16 + 1).
    assert_eq!(cycles_both("grid4", &["msize=4", "lat=1"]), 17);
    assert_eq!(cycles_both("grid4", &["msize=16", "lat=1"]), 65);
    assert_eq!(cycles_both("grid4", &["msize=16", "lat=1", "depth=1"]), 68);
}

#[test]
fn zero_latency_is_rejected() {
    // Every figure must be positive, latencies included (a zero-latency unit needs `1`).
    match try_fixture("grid4", &["lat=0"], FULL) {
        Err(RunError::Invalid(d)) => {
            assert!(
                d.render().contains("`lat` evaluates to 0"),
                "{}",
                d.render()
            )
        }
        Err(e) => panic!("expected an arch diagnostic, got {e}"),
        Ok(r) => panic!("ran with lat=0: {} cycles", r.cycles),
    }
}

#[test]
fn gemm_several_tiles() {
    // M = 16 → 4 independent tiles of 16 cycles. With 4 in flight the array runs them back to back and only the
    // last drain shows: 4 x 16 + 3 = 67.
    let r = run_fixture("grid4", &["msize=16"], FULL);
    assert_eq!(r.cycles, 67);
    assert_eq!(r.bound.cycles, 64);
    assert_eq!(einsum(&r, "Z").tasks, 4);
    assert!(close(r.utilization["pe"], 64.0 / 67.0));
    assert!(close(r.energy_pj.total, 4.0 * 256.0));
    // One tile at a time: each waits for the previous one's drain, 4 x (16 + 3) = 76.
    assert_eq!(cycles_both("grid4", &["msize=16", "depth=1"]), 76);
    // Twice the columns of N fold onto the 4 array columns: 2 x 16 = 32 cycles a tile, 4 x 32 + 3 = 131.
    assert_eq!(cycles_both("grid4", &["msize=16", "nsize=8"]), 131);
}

#[test]
fn gemm_underfilled_array() {
    // N = 2 fills half the array's columns: the same 16 cycles, at PE fraction 1/2.
    let r = run_fixture("grid4", &["msize=4", "nsize=2"], FULL);
    assert_eq!(r.cycles, 19);
    let z = einsum(&r, "Z");
    assert!(close(z.pe_fraction, 0.5));
    assert!(close(z.utilization, 0.5 * 16.0 / 19.0));
    assert!(close(r.utilization["pe"], 0.5 * 16.0 / 19.0));
}

#[test]
fn folded_tile_counts_only_occupied_pes() {
    // N = 6 on the 4 array columns folds into ceil(6/4) = 2 column steps, 4 + 2: k (16) × 2 folds = 32 cycles,
    // then the 3-cycle drain, 35. Over the 2 folds 6 of 2 × 4 columns are busy: PE fraction 6/8 = 0.75, so the
    // array does 0.75 × 16 PEs × 32 cycles = 384 = 4 × 6 × 16 useful MACs.
    let r = run_fixture("grid4", &["msize=4", "nsize=6"], FULL);
    assert_eq!(r.cycles, 35);
    let z = einsum(&r, "Z");
    assert_eq!((z.cycles, z.points), (32, 384.0));
    assert!(close(z.pe_fraction, 0.75), "{}", z.pe_fraction);
    assert!(close(r.utilization["pe"], 0.75 * 32.0 / 35.0));
}

// ---- (b) a load/compute pair limited by DRAM bandwidth (tests/fixtures/arch/stream.ron) ----

#[test]
fn dram_bound_stream() {
    // M = 32 → 8 tiles. Each loads a 16 x 4 A tile (128 B) at 2 B/cycle: 64 cycles, back to back on the DRAM
    // channel. Tile i's load ends at 64(i+1); its GEMM starts 10 cycles (DRAM latency) later, takes 16 and
    // drains in 3. Four tiles in flight never throttle the loads (a tile leaves the window 29 cycles after
    // its load, long before 3 more loads are done). Total = 8 x 64 + 10 + 16 + 3 = 541.
    let r = run_fixture("stream", &["msize=32"], FULL);
    assert_eq!(r.cycles, 541);
    assert_eq!(r.bound.cycles, 512);
    assert_eq!(r.bound.limiter, "dram");
    assert_eq!(busy(&r, "dram"), 512);
    assert_eq!(busy(&r, "pe"), 128);
    // Traffic: 8 x 128 B read from DRAM and written into the buffer; the GEMMs read them back from the buffer.
    assert_eq!(r.traffic_bytes["dram"], 1024);
    assert_eq!(r.traffic_bytes["buffer"], 2048);
    // Energy: 2048 MACs x 1 pJ + 512 DRAM accesses x 10 pJ + 512 buffer writes x 2 pJ + 512 buffer reads x 2 pJ.
    assert!(close(r.energy_pj.total, 9216.0), "{}", r.energy_pj.total);
    assert!(close(r.energy_pj.by_component["dram"], 5120.0));
    assert!(close(r.energy_pj.by_component["buffer"], 2048.0));
    assert!(close(r.energy_pj.by_component["pe"], 2048.0));
    assert_eq!(cycles_both("stream", &["msize=32"]), 541);
}

#[test]
fn dram_bound_stream_fractional_cycles() {
    // At 3 B/cycle a 128 B load takes 42.67 cycles = ceil(128 x 1024 / 3) = 43691 ticks; time is kept in ticks
    // and rounded up once at the end: (8 x 43691 + (10 + 16 + 3) x 1024) / 1024 = 370.34 → 371.
    let r = run_fixture("stream", &["msize=32", "dram_bw=3"], FULL);
    assert_eq!(43691 * 8 + 29 * TICKS_PER_CYCLE, 379224);
    assert_eq!(r.cycles, 371);
    assert_eq!(r.bound.cycles, 342); // ceil(8 x 43691 / 1024)
    assert_eq!(cycles_both("stream", &["msize=32", "dram_bw=3"]), 371);
}

// ---- (c) a buffer with room for exactly one input tile ----

#[test]
fn single_buffered_tile_waits_for_its_consumer() {
    // 128 B of buffer holds one A tile. Tile i+1's load cannot allocate until tile i's GEMM finishes, so
    // nothing overlaps: load 64 + DRAM latency 10 + GEMM 16 = 90 per tile, then the last drain:
    // 8 x 90 + 3 = 723 (vs 541 with room to spare).
    let small = run_fixture("stream", &["msize=32", "buffer_bytes=128"], FULL);
    let big = run_fixture("stream", &["msize=32"], FULL);
    assert_eq!(small.cycles, 723);
    assert_eq!(big.cycles, 541);
    // Same work and traffic, only the schedule differs.
    assert_eq!(small.bound.cycles, big.bound.cycles);
    assert_eq!(small.traffic_bytes, big.traffic_bytes);
    // Room for two tiles is enough: a load waits for a free slot, but the DRAM is the bottleneck anyway
    // (a slot frees 90 cycles after its load started, before the channel finishes the next load at 128).
    assert_eq!(
        cycles_both("stream", &["msize=32", "buffer_bytes=256"]),
        541
    );
    assert_eq!(
        cycles_both("stream", &["msize=32", "buffer_bytes=128"]),
        723
    );
}

#[test]
fn tile_larger_than_buffer_is_rejected() {
    match try_fixture("stream", &["msize=32", "buffer_bytes=64"], FULL) {
        Err(RunError::Mapping(m)) => assert!(m.contains("exceeds"), "{m}"),
        Err(e) => panic!("expected a mapping error, got {e}"),
        Ok(r) => panic!("a 128 B tile ran in a 64 B buffer: {} cycles", r.cycles),
    }
}

// ---- (d) long fill latency: Sequential vs Interleave(4) (tests/fixtures/arch/fill.ron) ----

fn fill_interleaved() -> String {
    let text = fixture("arch/fill.ron").text;
    edit_after(
        &text,
        "Stage(",
        "Sequential",
        "Interleave(Fig(\"4\", \"tile\", \"test: four tiles in flight\"))",
    )
}

fn run_fill(text: String, sets: &[&str], opts: einsim::sim::SimOptions) -> RunReport {
    let file = einsim::diag::SourceFile::new("tests/fixtures/arch/fill.ron", text);
    run_text(&file, None, None, sets, &fixture_lookup, opts).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sequential_pays_the_latency_every_tile() {
    // 8 tiles of 16 cycles with a 40-cycle drain each: 8 x (16 + 40) = 448.
    let text = fixture("arch/fill.ron").text;
    assert_eq!(run_fill(text.clone(), &["msize=32"], FULL).cycles, 448);
    assert_eq!(
        run_fill(text.clone(), &["msize=32"], EXTRAPOLATE).cycles,
        448
    );
    // 100-cycle drain: 8 x 116 = 928.
    assert_eq!(run_fill(text, &["msize=32", "lat=100"], FULL).cycles, 928);
}

#[test]
fn interleaving_hides_the_latency() {
    // Four tiles in flight cover 4 x 16 = 64 cycles of work, more than one tile's 16 + 40: the array never idles
    // and only the last drain shows: 8 x 16 + 40 = 168.
    let r = run_fill(fill_interleaved(), &["msize=32"], FULL);
    assert_eq!(r.cycles, 168);
    assert_eq!(r.bound.cycles, 128);
    assert_eq!(
        run_fill(fill_interleaved(), &["msize=32"], EXTRAPOLATE).cycles,
        168
    );
    // A 100-cycle drain is longer than the window covers: tiles 0-3 run at 0..64, tile i+4 enters when tile i has
    // drained (16(i+1) + 100) and runs at once; the last, tile 7, runs 164..180 and drains at 280.
    assert_eq!(
        run_fill(fill_interleaved(), &["msize=32", "lat=100"], FULL).cycles,
        280
    );
}

// ---- two loops, two units, a long-lived tile and a store (tests/fixtures/arch/tiled.ron) ----

#[test]
fn two_loop_pipeline() {
    // M1 = N1 = 16. Per m1: load A (128 B at 8 B/cycle = 16), 16 B loads (16 each), one S store (8 B = 1 cycle):
    // 273 DRAM cycles, x 16 = 4368 = the bound. Per (m1, n1): Z 16 cycles on the array (K in time), S 4 on the
    // vector unit (N0 in time). The channel never idles, so the last B load ends at 4368 - 1 (only the last
    // store is left); then DRAM latency 20 + Z 16 + array drain 4 + S 4 + vector drain 1 + store 1 + DRAM
    // latency 20: 4367 + 66 = 4433.
    let r = run_fixture("tiled", &[], FULL);
    assert_eq!(r.bound.cycles, 4368);
    assert_eq!(r.bound.limiter, "dram");
    assert_eq!(busy(&r, "dram"), 4368);
    assert_eq!(busy(&r, "pe"), 256 * 16);
    assert_eq!(busy(&r, "vec"), 256 * 4);
    assert_eq!(r.cycles, 4433);
    // A once per m1 (16 x 128 B), B per tile (256 x 128 B), S once per m1 (16 x 8 B).
    assert_eq!(r.traffic_bytes["dram"], 16 * 128 + 256 * 128 + 16 * 8);
    assert_eq!(cycles_both("tiled", &[]), 4433);
}

// ---- (e) editing FuseMax's arch file changes results in the expected direction ----

fn fusemax_text() -> String {
    shipped(Kind::Arch, "fusemax").text
}

fn fusemax(sets: &[&str]) -> RunReport {
    run_fusemax_edited(fusemax_text(), "bert-base", sets)
        .unwrap_or_else(|e| panic!("{sets:?}: {e}"))
}

/// FuseMax with the cascade's default 256-key tile instead of the binding's `kv_tile = rows`, so fewer rows fold
/// the tile rather than shrink it.
fn fusemax_fixed_tile(sets: &[&str]) -> RunReport {
    let text = fusemax_text().replacen("set: { \"kv_tile\": \"rows\" },", "", 1);
    run_fusemax_edited(text, "bert-base", sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"))
}

/// Move Einsum `e` of the attention stage from pe1d to pe2d.
fn moved(e: &str) -> String {
    edit_after(
        &fusemax_text(),
        "name: \"attention\"",
        &format!("\"{e}\": \"pe1d\""),
        &format!("\"{e}\": \"pe2d\""),
    )
}

#[test]
fn fusemax_smaller_array_is_slower() {
    let base = fusemax(&[]);
    let cols = fusemax(&["cols=128"]);
    let rows = fusemax_fixed_tile(&["rows=128"]);
    assert!(
        cols.cycles > base.cycles,
        "{} vs {}",
        cols.cycles,
        base.cycles
    );
    assert!(
        rows.cycles > base.cycles,
        "{} vs {}",
        rows.cycles,
        base.cycles
    );
    // Half the columns halves the P0 tile: twice the tiles, each as long → ~2x the work on both arrays.
    assert!(cols.bound.cycles > base.bound.cycles * 19 / 10);
    // Half the rows folds M0 = 256 onto 128 rows: pe2d does twice the work and becomes the limiter.
    assert_eq!(busy(&rows, "pe2d"), 2 * busy(&base, "pe2d"));
    assert_eq!(rows.bound.limiter, "pe2d");
    // Neither changes what is computed.
    assert_eq!(cols.traffic_bytes["dram"], base.traffic_bytes["dram"]);
    let macs = |r: &RunReport| einsum(r, "BQK").points;
    assert_eq!(macs(&cols), macs(&base));
    assert_eq!(macs(&rows), macs(&base));
}

#[test]
fn fusemax_rows_not_dividing_the_tile_lower_utilization() {
    // 200 rows hold M0 = 256 as 200 + 56: 2 row folds, of which 256 / (2 × 200) = 0.64 of the PE-steps are
    // useful; P0 = 256 fills the 256 columns (1.0). So every pe2d Einsum has PE fraction 0.64 × 1.0 = 0.64, and
    // BQK's utilization is its compute cycles × 0.64 / latency (counting the idle PEs of the partial fold as busy
    // would give 1.0).
    let r = fusemax_fixed_tile(&["rows=200", "batch=1"]);
    let bqk = einsum(&r, "BQK");
    assert!(close(bqk.pe_fraction, 0.64), "{}", bqk.pe_fraction);
    // BQK per task: E = 64 MACs in time × 2 row folds = 128 cycles, over 12 heads × 4 M1 × 4 P1 = 192 tasks.
    assert_eq!((bqk.tasks, bqk.cycles), (192, 192 * 128));
    assert!(close(
        bqk.utilization,
        (192 * 128) as f64 * 0.64 / r.cycles as f64
    ));
    for e in r.einsums.iter().filter(|e| e.unit == "pe2d") {
        assert!(close(e.pe_fraction, 0.64), "{}: {}", e.name, e.pe_fraction);
    }
    // The units' column is the sum of their Einsums'.
    let pe2d: f64 = r
        .einsums
        .iter()
        .filter(|e| e.unit == "pe2d")
        .map(|e| e.utilization)
        .sum();
    assert!(close(r.utilization["pe2d"], pe2d));
    assert!(r.utilization["pe2d"] < 0.65, "{}", r.utilization["pe2d"]);
}

#[test]
fn fusemax_sequential_binding_is_slower() {
    let base = fusemax(&[]);
    let fm = fusemax_text();
    let at = fm.find("name: \"attention\"").expect("the attention stage");
    let start = at
        + fm[at..]
            .find("pipeline: Interleave(")
            .expect("its pipeline");
    let end = start + fm[start..].find('\n').expect("one line");
    let text = format!("{}pipeline: Sequential,{}", &fm[..start], &fm[end..]);
    let seq = run_fusemax_edited(text, "bert-base", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        seq.cycles > 2 * base.cycles,
        "{} vs {}",
        seq.cycles,
        base.cycles
    );
    assert_eq!(seq.bound.cycles, base.bound.cycles);
    // Sequential is a window of one tile, exactly like Interleave(1).
    let depth1 = fusemax(&["depth=1"]);
    assert_eq!(seq.cycles, depth1.cycles);
}

#[test]
fn fusemax_depth_orders_latency() {
    let c: Vec<u64> = ["depth=1", "depth=2", "depth=4", "depth=16"]
        .iter()
        .map(|d| fusemax(&[d]).cycles)
        .collect();
    assert!(
        c.windows(2).all(|w| w[0] > w[1]),
        "deeper interleaving should be faster: {c:?}"
    );
    assert_eq!(c[3], fusemax(&[]).cycles, "FuseMax's default depth is 16");
}

#[test]
fn fusemax_moving_einsums_between_arrays() {
    let base = fusemax(&[]);
    // RD (a 1D sum) moved to the 2D array: pe1d, the limiter, sheds its work → faster.
    let rd = run_fusemax_edited(moved("RD"), "bert-base", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(einsum(&rd, "RD").unit, "pe2d");
    let rd_cycles = einsum(&base, "RD").cycles;
    assert_eq!(busy(&rd, "pe1d"), busy(&base, "pe1d") - rd_cycles);
    assert_eq!(busy(&rd, "pe2d"), busy(&base, "pe2d") + rd_cycles);
    assert!(rd.cycles < base.cycles, "{} vs {}", rd.cycles, base.cycles);
    // RNV (786K cycles of adds) moved to the 2D array makes pe2d the bottleneck → slower.
    let rnv = run_fusemax_edited(moved("RNV"), "bert-base", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rnv.bound.limiter, "pe2d");
    assert!(rnv.cycles > base.cycles);
    // Same traffic either way: placement does not change what moves to and from DRAM.
    assert_eq!(rd.traffic_bytes["dram"], base.traffic_bytes["dram"]);
    assert_eq!(rnv.traffic_bytes["dram"], base.traffic_bytes["dram"]);
    // The 2D PEs have no divider (AV): rejected as bad input, not a panic. (They multiply on their MAC unit,
    // which the 2-pass cascade's SNV needs, so SPNV would run there.)
    for (e, op) in [("AV", "div")] {
        match run_fusemax_edited(moved(e), "bert-base", &[]) {
            Err(RunError::Mapping(m)) => {
                assert!(m.contains(&format!("`{op}`")) && m.contains(e), "{m}")
            }
            Err(other) => panic!("{e}: expected a mapping error, got {other}"),
            Ok(r) => panic!("{e} ran on pe2d without `{op}`: {} cycles", r.cycles),
        }
    }
}

#[test]
fn fusemax_smaller_buffer_moves_more_data() {
    let base = fusemax(&[]);
    // 256 KB no longer holds 4 P0 tiles of Q and the running state: P1 shrinks, K and V are re-read per p2.
    let small = fusemax(&["buffer_bytes=262144"]);
    assert!(
        small.mapping["P1"] < base.mapping["P1"],
        "{:?}",
        small.mapping
    );
    assert!(small.traffic_bytes["dram"] > base.traffic_bytes["dram"]);
    assert!(small.cycles >= base.cycles);
    // Slower DRAM: same traffic, more time; at 1/8 the bandwidth DRAM limits the run.
    let slow = |bw: &str| {
        let t = edit_after(&fusemax_text(), "\"dram\": Storage", "400 * 2^30", bw);
        run_fusemax_edited(t, "bert-base", &[]).unwrap_or_else(|e| panic!("{e}"))
    };
    let half = slow("200 * 2^30");
    let eighth = slow("50 * 2^30");
    assert_eq!(half.traffic_bytes, base.traffic_bytes);
    assert!(half.cycles >= base.cycles);
    assert!(eighth.cycles > half.cycles);
    assert_eq!(eighth.bound.limiter, "dram");
}

// ---- extrapolation is exact ----

/// The report as JSON with the only field allowed to differ (how many steps were simulated) removed.
fn comparable(r: &RunReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("serialises");
    for st in v["stages"].as_array_mut().expect("stages") {
        st.as_object_mut().expect("stage").remove("simulated_steps");
    }
    v
}

fn assert_extrapolation_exact(label: &str, full: &RunReport, fast: &RunReport, must_skip: bool) {
    assert_eq!(
        serde_json::to_string_pretty(&comparable(full)).unwrap(),
        serde_json::to_string_pretty(&comparable(fast)).unwrap(),
        "{label}: extrapolated report differs from the full simulation"
    );
    for (f, x) in full.stages.iter().zip(&fast.stages) {
        assert_eq!(
            f.simulated_steps, f.steps,
            "{label}: full run skipped steps"
        );
        if must_skip {
            assert!(
                x.simulated_steps < x.steps,
                "{label}: stage {} simulated all {} steps",
                x.name,
                x.steps
            );
        }
    }
}

#[test]
fn extrapolation_exact_on_fixtures() {
    for (arch, sets) in [
        ("grid4", &["msize=256"][..]),
        ("grid4", &["msize=256", "depth=1"]),
        ("stream", &["msize=512"]),
        ("stream", &["msize=512", "buffer_bytes=128"]),
        ("stream", &["msize=512", "dram_bw=3"]),
        ("fill", &["msize=256"]),
        ("tiled", &[]),
        ("tiled", &["depth=2", "dram_bw=3"]),
        // A + two B tiles: loads wait for room while A is held across all n1 tiles.
        ("tiled", &["buffer_bytes=384", "msize=128", "nsize=32"]),
    ] {
        let label = format!("{arch} {sets:?}");
        let full = run_fixture(arch, sets, FULL);
        let fast = run_fixture(arch, sets, EXTRAPOLATE);
        assert_extrapolation_exact(&label, &full, &fast, true);
    }
}

/// FuseMax on BERT-Base at batch 4 (full simulation of batch 64 takes ~15 s at seq 4K in a debug build; see
/// `extrapolation_exact_on_fusemax_full_batch`). Batch 4 still has ≥ 4 iterations of every loop but p2/p1.
#[test]
fn extrapolation_exact_on_fusemax() {
    for seq in ["seq=2048", "seq=4096"] {
        for depth in ["depth=4", "depth=16"] {
            let sets = [seq, depth, "batch=4"];
            let full = run_shipped("fusemax", "bert-base", &sets, FULL);
            let fast = run_shipped("fusemax", "bert-base", &sets, EXTRAPOLATE);
            assert_extrapolation_exact(&format!("fusemax {sets:?}"), &full, &fast, true);
        }
    }
}

/// The other shipped models, each with an uneven depth, a smaller buffer or a narrower array.
#[test]
fn extrapolation_exact_on_other_models() {
    for (model, sets) in [
        ("xlm", &["batch=4", "seq=2048", "depth=3"][..]),
        ("t5-small", &["batch=4", "seq=1024", "buffer_bytes=524288"]),
        ("trxl-wt103", &["batch=4", "seq=2048", "cols=128"]),
    ] {
        let full = run_shipped("fusemax", model, sets, FULL);
        let fast = run_shipped("fusemax", model, sets, EXTRAPOLATE);
        assert_extrapolation_exact(&format!("fusemax {model} {sets:?}"), &full, &fast, true);
    }
}

/// Padded tiles (a ragged length, one decode query in a 256-query tile) and query and key lengths apart make
/// ordinary programs: skipping their steady state changes nothing. Batch 4 keeps the full runs quick.
#[test]
fn extrapolation_exact_on_padded_and_decode_runs() {
    for (arch, sets) in [
        ("fusemax", &["batch=4", "q_len=1", "kv_len=4096"][..]),
        ("fusemax", &["batch=4", "seq=1000"]),
        ("unfused", &["batch=4", "q_len=300", "kv_len=1000"]),
    ] {
        let full = run_shipped(arch, "bert-base", sets, FULL);
        let fast = run_shipped(arch, "bert-base", sets, EXTRAPOLATE);
        assert!(!fast.padding.is_empty(), "{arch} {sets:?} pads");
        assert_extrapolation_exact(&format!("{arch} {sets:?}"), &full, &fast, false);
    }
}

#[test]
#[ignore = "slow in debug builds (~40 s; ~10 s in release); run with `cargo test --release --test engine -- --ignored`"]
fn extrapolation_exact_on_fusemax_full_batch() {
    for seq in ["seq=2048", "seq=4096"] {
        for depth in ["depth=4", "depth=16"] {
            let sets = [seq, depth];
            let full = run_shipped("fusemax", "bert-base", &sets, FULL);
            let fast = run_shipped("fusemax", "bert-base", &sets, EXTRAPOLATE);
            assert_extrapolation_exact(&format!("fusemax {sets:?}"), &full, &fast, true);
        }
    }
}

// ---- the analytical bound never exceeds the simulated time ----

#[test]
fn bound_holds_for_every_shipped_arch_and_model() {
    let mut ran = 0;
    for arch in library::names(Kind::Arch) {
        let file = shipped(Kind::Arch, arch);
        let loaded = einsim::arch::load(
            &file,
            &|n| library::get(Kind::Energy, n),
            &Default::default(),
        )
        .unwrap_or_else(|d| panic!("shipped arch {arch} does not load:\n{}", d.render()));
        for binding in &loaded.bindings {
            for model in library::names(Kind::Model) {
                for seq in ["seq=1024", "seq=4096"] {
                    let label = format!("{arch} / {} / {model} / {seq}", binding.cascade);
                    let r = run_text(
                        &file,
                        Some(model),
                        Some(&binding.cascade),
                        &[seq],
                        &library::get,
                        EXTRAPOLATE,
                    );
                    let r = match r {
                        Ok(r) => r,
                        Err(RunError::Invalid(d)) => {
                            println!("note: skipping {label}: invalid input\n{}", d.render());
                            continue;
                        }
                        Err(RunError::Mapping(m)) => {
                            println!("note: skipping {label}: mapping rejected: {m}");
                            continue;
                        }
                        Err(e @ RunError::Internal(_)) => panic!("{label}: {e}"),
                    };
                    ran += 1;
                    assert!(
                        r.cycles >= r.bound.cycles,
                        "{label}: {} cycles < bound {}",
                        r.cycles,
                        r.bound.cycles
                    );
                    assert!(r.bound.ratio >= 1.0, "{label}: ratio {}", r.bound.ratio);
                    assert!(!r.bound.limiter.is_empty(), "{label}: no limiter");
                    for st in &r.stages {
                        assert!(st.cycles >= st.bound_cycles, "{label}: stage {}", st.name);
                    }
                }
            }
        }
    }
    assert!(ran >= 8, "only {ran} shipped configurations ran");
}

#[test]
fn fixture_sweep_invariants() {
    // A grid of fixture configurations: every run is at least its bound, and extrapolation is exact.
    let mut n = 0;
    for m in ["msize=16", "msize=64"] {
        for nn in ["nsize=16", "nsize=64"] {
            for depth in ["depth=1", "depth=2", "depth=3", "depth=4", "depth=7"] {
                for bw in ["dram_bw=1", "dram_bw=3", "dram_bw=8", "dram_bw=64"] {
                    for buf in ["buffer_bytes=256", "buffer_bytes=384", "buffer_bytes=4096"] {
                        let sets = [m, nn, depth, bw, buf];
                        let label = format!("tiled {sets:?}");
                        // A working set larger than the buffer is rejected up front (invalid input).
                        let full = match try_fixture("tiled", &sets, FULL) {
                            Err(RunError::Mapping(e)) if e.contains("which holds") => {
                                n += 1;
                                continue;
                            }
                            other => other.unwrap_or_else(|e| panic!("{label}: {e}")),
                        };
                        let fast = run_fixture("tiled", &sets, EXTRAPOLATE);
                        assert!(full.cycles >= full.bound.cycles, "{label}");
                        assert_extrapolation_exact(&label, &full, &fast, false);
                        n += 1;
                    }
                }
            }
        }
    }
    assert_eq!(n, 240);
}

#[test]
fn buffer_too_small_for_one_tasks_operands_is_invalid_input() {
    // tiled.ron's Z reads an A tile (128 B, held across all n1 tiles) and a B tile (128 B) at once. A 255 B
    // buffer fits either but not both: the B load waits forever for room. That is bad input (like a single
    // tile larger than the buffer, `tile_larger_than_buffer_is_rejected`), not an engine failure.
    match try_fixture("tiled", &["buffer_bytes=255"], FULL) {
        Err(RunError::Mapping(m)) => assert!(m.contains("buffer"), "{m}"),
        Err(e) => panic!("expected a mapping error, got {e:?}"),
        Ok(r) => panic!("ran in {} cycles", r.cycles),
    }
}

fn buffer_reads(r: &RunReport) -> u128 {
    r.traffic
        .iter()
        .find(|t| t.level == "buffer")
        .expect("a buffer level")
        .read_bytes
}

/// FLAT's fused pass 2 makes SN and sums it into SD on the same 1D PEs, so SD takes each SN as it is made; the
/// divide needs the whole sum first and re-reads SN (pass 3), but takes SD from the PE that summed it. Placing SD
/// on the other array breaks both forwardings and costs exactly one buffer read of SN, B·H·M·P values, and one of
/// SD, B·H·P values, of 2 bytes each (BERT-Base 1K: B = 64, H = 12, M = P = 1024).
#[test]
fn values_used_as_they_are_made_skip_the_buffer() {
    let run = |file: &einsim::diag::SourceFile| {
        run_text(
            file,
            Some("bert-base"),
            None,
            &[],
            &library::get,
            EXTRAPOLATE,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let flat = shipped(Kind::Arch, "flat-cloud");
    let base = run(&flat);
    let text = edit_after(
        &flat.text,
        "name: \"fused\"",
        "\"SD\": \"pe1d\"",
        "\"SD\": \"pe2d\"",
    );
    let split = run(&einsim::diag::SourceFile::new("arch/flat-cloud.ron", text));
    assert_eq!(
        buffer_reads(&split) - buffer_reads(&base),
        64 * 12 * 1024 * 1024 * 2 + 64 * 12 * 1024 * 2
    );
}

/// The first binding of an arch mapped on a model (no simulation): per-template counts, for traffic tests.
fn program(
    arch: &einsim::diag::SourceFile,
    model: Option<&str>,
    sets: &[&str],
    lookup: einsim::run::Lookup,
) -> einsim::mapping::Program {
    let model = model.map(|m| shipped(Kind::Model, m));
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let s = einsim::run::setup(arch, model.as_ref(), None, &sets, lookup)
        .unwrap_or_else(|e| panic!("{e}"));
    let b = &s.arch.bindings[0];
    einsim::mapping::map(&s.cascade, &s.sizes, &s.params, &s.arch, b)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Buffer bytes one instance of template `name` reads.
fn template_buffer_reads(p: &einsim::mapping::Program, name: &str) -> u64 {
    let t = p
        .stages
        .iter()
        .flat_map(|s| &s.templates)
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no template `{name}`"));
    t.reads.get("buffer").copied().unwrap_or(0)
}

/// PRM = exp(RM[m1,p] - RM[m1+1,p]) reads two tiles of RM, each P0 = 256 values of 2 bytes. RM[m1,p] is the
/// previous iteration's value, stored by an earlier task: it is read back from the buffer (512 B). RM[m1+1,p] is
/// made in the same tile by RM on the same 1D array and used as it is made, so it is forwarded (0 B). Moved to
/// the 2D array, PRM no longer shares RM's unit and reads both tiles: 1,024 B (a per-tensor count gave 512).
#[test]
fn each_distinct_reference_reads_its_own_tile() {
    let fm = shipped(Kind::Arch, "fusemax");
    let base = program(&fm, Some("bert-base"), &[], &library::get);
    assert_eq!(template_buffer_reads(&base, "PRM"), 512);
    let moved = einsim::diag::SourceFile::new("arch/fusemax.ron", moved("PRM"));
    let moved = program(&moved, Some("bert-base"), &[], &library::get);
    assert_eq!(template_buffer_reads(&moved, "PRM"), 1024);
}

/// In the tiled fixture S[m] = Z[m,n] sums over n, and n1 is a tile loop: S's tile (M0 = 4 values, 8 B) stays
/// in the buffer for the whole m1 iteration, and each of the N1 = 16 tasks of an m1 iteration adds its part to
/// it. Each task writes the tile, so each must read it back first: 8 B per task (Z lives in the array, so S reads
/// nothing else from the buffer). Over the run, buffer reads are Z's A and B tiles (256 tasks × 2 × 128 B), S's
/// read-backs (256 × 8 B) and the S stores (16 × 8 B); without the read-back they were 2,048 B fewer. The time is
/// unchanged: S moves 16 B per task at 64 B/cycle, well within its 4 compute cycles.
#[test]
fn a_sum_carried_across_tile_loops_is_read_back() {
    let p = program(&fixture("arch/tiled.ron"), None, &[], &fixture_lookup);
    assert_eq!(template_buffer_reads(&p, "S"), 8);
    assert_eq!(template_buffer_reads(&p, "Z"), 2 * 128);
    let r = run_fixture("tiled", &[], FULL);
    assert_eq!(buffer_reads(&r), 256 * 2 * 128 + 256 * 8 + 16 * 8);
    assert_eq!(r.cycles, 4433);
}

// ---- (f) a top-k engine alone (tests/fixtures/arch/topk.ron, cascade tests/fixtures/cascades/select.ron) ----

#[test]
fn topk_engine_one_candidate() {
    // n = k = 1 keeps every candidate: no quick-select round and no filter pass (src/topk.rs), so the stage's
    // one-cycle minimum plus the 2-cycle latency, 3 cycles, and no comparator energy.
    let r = run_fixture("topk", &["n=1", "k=1"], FULL);
    assert_eq!(r.cycles, 3);
    assert!(close(r.energy_pj.total, 0.0), "{}", r.energy_pj.total);
    // n = 2, k = 1: quick-select rounds of ⌈n_r/4⌉ + 3 = 4 cycles and a filter pass of 1, plus the latency.
    let r = run_fixture("topk", &["n=2", "k=1"], FULL);
    assert!(
        r.cycles == 4 + 1 + 2 || r.cycles == 8 + 1 + 2,
        "{}",
        r.cycles
    );
}

#[test]
fn topk_engine_cycles_are_the_seeded_rounds() {
    // The engine charges src/topk.rs's rounds for the arch's seed; the stage adds the 2-cycle latency. Sixteen
    // fibers in one task are sixteen selections from one pivot stream.
    use einsim::topk::{tile_cost, Engine};
    for (n, k, fibers, lanes, seed) in
        [(64, 8, 1, 4, 1), (1024, 512, 16, 16, 7), (1000, 1, 3, 1, 0)]
    {
        let sets = [
            format!("n={n}"),
            format!("k={k}"),
            format!("fibers={fibers}"),
            format!("lanes={lanes}"),
            format!("seed={seed}"),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let cost = tile_cost(
            Engine {
                lanes,
                round_overhead: 3,
            },
            n,
            k,
            fibers,
            seed,
        )
        .unwrap();
        assert_eq!(cycles_both("topk", &sets), cost.cycles + 2, "{sets:?}");
        let r = run_fixture("topk", &sets, FULL);
        assert!(close(r.energy_pj.total, cost.streamed as f64 * 0.5));
    }
    // A different seed draws different pivots.
    assert_ne!(
        cycles_both("topk", &["n=1024", "k=512", "seed=1"]),
        cycles_both("topk", &["n=1024", "k=512", "seed=2"])
    );
}

#[test]
fn topk_engine_refuses_other_einsums() {
    // An Einsum that is not one selection cannot run on a top-k engine.
    let mm = library::get(Kind::Arch, "fusemax").unwrap();
    let text = mm.text.replace(
        "kind: LinearArray",
        "kind: TopkEngine, selection: Some(Selection(round_overhead: Fig(\"3\", \"cycle\", \"t\"), seed: \"1\", scores: Continuous, source: \"t\"))",
    );
    let file = einsim::diag::SourceFile::new("arch/fusemax-topk.ron", text);
    let err = run_text(&file, Some("bert-base"), None, &[], &library::get, FULL).unwrap_err();
    assert!(
        matches!(&err, RunError::Mapping(m) if m.contains("is not one `topk` selection")),
        "{err}"
    );
}

// ---- (g) the memo's reuse across buffer sizes (src/sim/memo.rs) ----

/// A result the engine says holds for any free space of at least `least` (`BufferUse`) is what a simulation
/// with that least space, or with more, gives: every field, as the memo hands it out for those programs. Shipped
/// archs with tiles kept past loops (FLAT's Q, FuseMax's BK/BV), buffers from tight to roomy, and a case where a
/// load waits (then only the same space is claimed).
#[test]
fn a_result_holds_over_the_free_space_the_engine_claims() {
    use einsim::sim::{simulate, simulate_tracked, SimOptions};
    let cases: [(&str, &[&str]); 6] = [
        ("fusemax", &["seq=4K", "depth=4"]),
        ("fusemax", &["seq=16K", "buffer_bytes=1M"]),
        ("fusemax", &["seq=1K", "depth=16", "buffer_bytes=256M"]),
        ("flat-cloud", &["seq=4K"]),
        ("flat-edge", &["seq=512"]),
        ("unfused", &["seq=2K"]),
    ];
    let opts = SimOptions::default();
    let mut claimed = 0;
    for (arch, sets) in cases {
        let p = program(
            &shipped(Kind::Arch, arch),
            Some("bert-base"),
            sets,
            &library::get,
        );
        let (r, uses) = simulate_tracked(&p, opts).expect("simulates");
        assert_eq!(uses.len(), p.stages.len());
        for (s, u) in uses.iter().enumerate() {
            assert_eq!(u.free, p.stages[s].buffer_free);
            let Some(least) = u.least else { continue };
            claimed += 1;
            assert!(least <= u.free, "{arch} {sets:?}");
            for free in [
                least,
                least + (u.free - least) / 2,
                u.free.saturating_mul(3),
            ] {
                let mut q = p.clone();
                q.stages[s].buffer_free = free;
                let again = simulate(&q, opts).expect("simulates");
                assert_eq!(again, r, "{arch} {sets:?}: stage {s} with {free} B free");
            }
        }
    }
    assert!(claimed > 0, "no case claimed a range");
}
