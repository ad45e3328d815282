//! Buffer mechanisms a binding can ask for, counted by hand on `tests/fixtures/arch/spill.ron`: a tensor that
//! bypasses the buffer (`bypass`), the part of an on-chip tensor that overflows it (`spill`), and an arch that
//! picks the fastest of its bindings (`select: Fastest`).

#[path = "fixtures/common.rs"]
mod common;

use common::*;
use einsim::report::RunReport;

const OPTS: einsim::sim::SimOptions = EXTRAPOLATE;

fn traffic(r: &RunReport, level: &str) -> (u128, u128) {
    let t = r.traffic.iter().find(|t| t.level == level).unwrap();
    (t.read_bytes, t.write_bytes)
}

/// 16 m1 tiles: A's 128 B tile through the buffer, B's 2048 B whole from DRAM each time, never in the buffer.
const A_BYTES: u128 = 16 * 128;
const B_BYTES: u128 = 16 * 2048;

#[test]
fn a_bypassed_operand_streams_from_dram_every_tile_and_takes_no_buffer() {
    // 640 B holds A's tile and Z's: nothing spills.
    let r = run_fixture("spill", &["buffer_bytes=640"], OPTS);
    assert!(r.stages[0].spill.is_none());
    assert_eq!(traffic(&r, "dram"), (A_BYTES + B_BYTES, 0));
    // The buffer sees A's tiles written and read, Z written by the array and read by the row sums; never B.
    let z = 16 * 512;
    assert_eq!(traffic(&r, "buffer"), (A_BYTES + z, A_BYTES + z));
}

#[test]
fn the_excess_of_a_spilled_tensor_goes_through_dram_at_every_access() {
    // 512 B leave 128 B of Z's 512 B tile without room: a quarter of each Z tile is stored after the array
    // writes it and loaded before the row sums read it, staged through the buffer both ways.
    let r = run_fixture("spill", &["buffer_bytes=512"], OPTS);
    let sp = r.stages[0].spill.as_ref().expect("Z spills");
    assert_eq!((sp.tensor.as_str(), sp.bytes, sp.of), ("Z", 128, 512));
    let part = 16 * 128;
    assert_eq!(traffic(&r, "dram"), (A_BYTES + B_BYTES + part, part));
    let z = 16 * 512;
    assert_eq!(
        traffic(&r, "buffer"),
        (A_BYTES + z + part, A_BYTES + z + part)
    );
    // Spilling costs time only through DRAM: with DRAM slow enough to bind, the bound grows by the spilled bytes.
    let slow = |b: &str| run_fixture("spill", &[b, "dram_bw=1"], OPTS).bound.cycles;
    assert_eq!(
        slow("buffer_bytes=512") - slow("buffer_bytes=640"),
        2 * part as u64
    );
}

#[test]
fn more_excess_than_the_spilled_tensor_holds_does_not_map() {
    // 128 B leave A's tile and none of Z: all of Z spills.
    let r = run_fixture("spill", &["buffer_bytes=128"], OPTS);
    assert_eq!(r.stages[0].spill.as_ref().map(|s| s.bytes), Some(512));
    // Keeping S's 8 B row sums on chip as well leaves 520 B over, more than Z holds.
    let text = std::fs::read_to_string(root().join("tests/fixtures/arch/spill.ron")).unwrap();
    let text = text.replacen("\"Z\": \"m1\" }", "\"Z\": \"m1\", \"S\": \"m1\" }", 1);
    let file = einsim::diag::SourceFile::new("spill-s.ron", text);
    let e = run_text(
        &file,
        None,
        None,
        &["buffer_bytes=128"],
        &fixture_lookup,
        OPTS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spilling all of `Z` (512 B) would leave 8 B over"),
        "{e}"
    );
}

/// `tiled.ron` with a second binding listed first, `slow`: `edit` applied to a copy of its binding, `fast`.
fn two_bindings(select: &str, edit: (&str, &str)) -> einsim::diag::SourceFile {
    let text = std::fs::read_to_string(root().join("tests/fixtures/arch/tiled.ron")).unwrap();
    let start = text.find("Binding(").unwrap();
    let end = text.rfind(")],").unwrap() + 1;
    let fast = text[start..end].replacen("source: \"test\"", "name: \"fast\", source: \"test\"", 1);
    let slow = fast.replacen("name: \"fast\"", "name: \"slow\"", 1);
    assert!(slow.contains(edit.0));
    let slow = slow.replacen(edit.0, edit.1, 1);
    let text = format!("{}{slow}, {fast}{}", &text[..start], &text[end..]).replacen(
        "bindings: [",
        &format!("{select}bindings: ["),
        1,
    );
    einsim::diag::SourceFile::new("tiled-two.ron", text)
}

#[test]
fn select_fastest_ranks_bindings_by_their_bound() {
    let run = |file: einsim::diag::SourceFile| {
        run_text(&file, None, None, &["dram_bw=1"], &fixture_lookup, OPTS).unwrap()
    };
    let fastest = "select: Fastest(\"test: a search\"), ";
    // `slow` reloads A for every n1 tile instead of once per m1: more DRAM traffic, a higher DRAM bound.
    let reload = ("\"A\": \"m1\"", "\"A\": \"n1\"");
    let first = run(two_bindings("", reload));
    let best = run(two_bindings(fastest, reload));
    assert_eq!(
        (first.binding.as_str(), best.binding.as_str()),
        ("slow", "fast")
    );
    assert!(best.bound.cycles < first.bound.cycles);
    assert!(
        best.cycles < first.cycles,
        "{} vs {}",
        best.cycles,
        first.cycles
    );
    // A sequential pipeline has the same bound: a tie, which goes to the binding listed first.
    let seq = (
        "Interleave(Fig(\"depth\", \"tile\", \"test fixture\"))",
        "Sequential",
    );
    assert_eq!(run(two_bindings(fastest, seq)).binding, "slow");
}

#[test]
fn a_bypassed_tensor_must_be_fetched_for_every_tile_that_uses_it() {
    // tiled.ron keeps A per m1; bypassed there, the array would need it again for every n1 tile inside.
    let text = std::fs::read_to_string(root().join("tests/fixtures/arch/tiled.ron")).unwrap();
    let text = text.replacen(
        "buffer: \"buffer\",\n            memory",
        "bypass: [\"A\"],\n            buffer: \"buffer\",\n            memory",
        1,
    );
    let run = |t: &str| {
        run_text(
            &einsim::diag::SourceFile::new("tiled-bypass.ron", t.to_string()),
            None,
            None,
            &[],
            &fixture_lookup,
            OPTS,
        )
    };
    let e = run(&text).unwrap_err().to_string();
    assert!(
        e.contains("bypassed `A` is fetched once per `m1` iteration and held nowhere, but `Z` iterates `n1`"),
        "{e}"
    );
    // Fetched per n1 tile instead, it maps: A's DRAM reads grow by the N1 = 16 re-fetches.
    let per_tile = text.replacen("\"A\": \"m1\"", "\"A\": \"n1\"", 1);
    let r = run(&per_tile).unwrap();
    let kept = run_fixture("tiled", &[], OPTS);
    let dram = |r: &RunReport| traffic(r, "dram").0;
    // A: 16 x 64 x 2 B = 2 KiB in all, loaded once per m1 tile when kept, once per (m1, n1) tile when bypassed.
    assert_eq!(dram(&r) - dram(&kept), 15 * 2048);
}

/// Skipping the steady state changes nothing with bypassed loads and spill transfers in the program, and the
/// steady state is found (a bypassed load holds nothing and waits on no consumer, so it leaves the live set).
#[test]
fn bypass_and_spill_extrapolate_exactly() {
    for sets in [
        &["buffer_bytes=512", "msize=4096"][..],
        &["buffer_bytes=640", "msize=4096", "dram_bw=1"],
    ] {
        let fast = run_fixture("spill", sets, EXTRAPOLATE);
        let full = run_fixture("spill", sets, FULL);
        assert_eq!(fast.cycles, full.cycles, "{sets:?}");
        let st = &fast.stages[0];
        assert!(
            st.estimate.is_none() && st.simulated_steps < st.steps / 4,
            "{sets:?}: {st:?}"
        );
    }
    // FLAT at 64K streams K and V past the buffer and spills part of its logit tile: a handful of tiles suffice.
    let r = run_shipped("flat-cloud", "bert-base", &["seq=65536"], EXTRAPOLATE);
    assert!(r.stages[0].estimate.is_none() && r.stages[0].simulated_steps < 100);
}
