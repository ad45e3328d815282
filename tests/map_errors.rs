//! Bindings whose every name is valid but whose mapping is not physical: mapping rejects them, and its messages
//! say why. `tests/bad_map/*.ron` are copies of FuseMax's hardware with one such mistake each; they load (the
//! binding check passes) and used to run with wrong results. The fit and size errors of shipped archs pushed past
//! their limits are snapshotted too, so each message shows what it is made of.

#[path = "fixtures/common.rs"]
mod common;

use common::{edit_after, ron_files, run_text, shipped, EXTRAPOLATE};
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};
use einsim::run::RunError;
use std::path::Path;

/// A `tests/bad_map` file, named by its repository path as the CLI would name it.
fn bad_map(stem: &str) -> SourceFile {
    let rel = format!("tests/bad_map/{stem}.ron");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    SourceFile::new(rel, text)
}

/// Map every binding of `arch` for its default cascade (or `cascade`) on BERT-Base with `sets`: each
/// binding's name and its mapping error, or `None` where it maps.
fn map_each(
    arch: &SourceFile,
    cascade: Option<&str>,
    sets: &[&str],
) -> Vec<(String, Option<String>)> {
    let model = shipped(Kind::Model, "bert-base");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let s = einsim::run::setup(arch, Some(&model), cascade, &sets, &library::get)
        .unwrap_or_else(|e| panic!("{}: {e}", arch.name));
    s.arch
        .bindings
        .iter()
        .filter(|b| b.cascade == s.cascade.name)
        .map(|b| {
            let r = einsim::mapping::map(&s.cascade, &s.sizes, &s.params, &s.arch, b);
            (b.name.clone(), r.err().map(|e| e.0))
        })
        .collect()
}

/// The mapping error of the binding named `binding` (`""` for an unnamed one).
fn map_error(arch: &SourceFile, cascade: Option<&str>, sets: &[&str], binding: &str) -> String {
    map_each(arch, cascade, sets)
        .into_iter()
        .find(|(n, _)| n == binding)
        .unwrap_or_else(|| panic!("{}: no binding `{binding}`", arch.name))
        .1
        .unwrap_or_else(|| panic!("{} `{binding}` {sets:?} maps", arch.name))
}

/// Every bad mapping is a mapping error (invalid input, exit 1) for `einsim run`, never a result.
#[test]
fn bad_maps_are_rejected() {
    let files = ron_files("tests/bad_map");
    assert!(!files.is_empty(), "{files:?}");
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let file = bad_map(&stem);
        let message = map_error(&file, None, &[], "");
        match run_text(
            &file,
            Some("bert-base"),
            None,
            &[],
            &library::get,
            EXTRAPOLATE,
        ) {
            Err(RunError::Mapping(m)) => assert_eq!(m, message),
            Err(e) => panic!("{stem}: expected a mapping error, got {e}"),
            Ok(r) => panic!("{stem} ran: {} cycles", r.cycles),
        }
        insta::assert_snapshot!(stem, message);
    }
}

/// The user's first silent mistake: the logits QK, made whole by stage `qk` and read by stage `softmax`, in
/// neither stage's `dram`. Nothing held them: at 1K the run took 36.2M cycles, its `qk` stage 787K instead of
/// 3.97M through DRAM. The whole tensor must now fit beside each stage's working set, and 1.5 GiB does not fit
/// 16 MB; through DRAM (a store in `qk`, a load in `softmax`) the binding maps.
#[test]
fn a_tensor_passed_between_stages_is_in_dram_or_counted_whole() {
    let file = bad_map("passed-on-chip");
    let m = map_error(&file, None, &[], "");
    assert!(m.contains("`QK`") && m.contains("1610612736 B"), "{m}");
    assert!(m.contains("`qk`") && m.contains("`softmax`"), "{m}");
    let through_dram = edit_after(&file.text, "name: \"qk\"", "\"K\"]", "\"K\", \"QK\"]");
    let through_dram = edit_after(
        &through_dram,
        "name: \"qk\"",
        "\"K\": \"m1\"",
        "\"K\": \"m1\", \"QK\": \"p1\"",
    );
    let through_dram = edit_after(
        &through_dram,
        "name: \"softmax\"",
        "[\"A\"]",
        "[\"QK\", \"A\"]",
    );
    let fixed = SourceFile::new(file.name.as_str(), through_dram);
    assert_eq!(map_each(&fixed, None, &[]), vec![(String::new(), None)]);
    // Where it fits, it may stay on chip: at 256 tokens QK is 64 x 12 x 256 x 256 x 2 B = 96 MiB, which a
    // 128 MiB buffer holds beside each stage's tiles.
    let big = map_each(&file, None, &["seq=256", "buffer_bytes=2^27"]);
    assert_eq!(big, vec![(String::new(), None)], "{big:?}");
}

/// A binding that passes a tensor on chip does not apply when it does not fit, and `einsim run` falls back to
/// the arch's next binding, as it does for a working set that does not fit: unfused's `rows` binding with the
/// logits left out of `dram` gives way to `row-at-a-time`.
#[test]
fn a_binding_passing_too_much_on_chip_falls_back_to_the_next() {
    let unfused = shipped(Kind::Arch, "unfused");
    let text = edit_after(
        &unfused.text,
        "name: \"rows\"",
        "[\"Q\", \"K\", \"QK\"]",
        "[\"Q\", \"K\"]",
    );
    let text = edit_after(&text, "name: \"rows\"", "[\"QK\", \"A\"]", "[\"A\"]");
    // QK no longer goes to DRAM from the QK stage, so it no longer bypasses the buffer there either.
    let text = edit_after(&text, "name: \"rows\"", "bypass: [\"QK\"],", "");
    let file = SourceFile::new("arch/unfused.ron", text);
    let rows = map_error(&file, None, &[], "rows");
    assert!(rows.contains("`QK`"), "{rows}");
    let r = run_text(
        &file,
        Some("bert-base"),
        None,
        &[],
        &library::get,
        EXTRAPOLATE,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.binding, "row-at-a-time");
}

/// The user's second silent mistake: AV = A[m,p] * V[f,m] sums over `m1`, a loop of stage `av`, but was kept
/// at `p1`, inside it. Each `m1` iteration stored its partial sums (M1 = 4 times AV's 96 MiB at 1K: 288 MiB of
/// extra DRAM writes, 1.5 TiB at 64K) and none was read back. Kept at `p2`, outside `m1`, it maps and AV is
/// written once.
#[test]
fn a_partial_sum_kept_inside_its_reduction_loop_is_rejected() {
    let file = bad_map("partial-sum-keep");
    let m = map_error(&file, None, &[], "");
    assert!(
        m.contains("`AV`") && m.contains("`m1`") && m.contains("b, h, p2"),
        "{m}"
    );
    let text = edit_after(
        &file.text,
        "name: \"av\"",
        "\"AV\": \"p1\"",
        "\"AV\": \"p2\"",
    );
    let fixed = SourceFile::new(file.name.as_str(), text);
    let r = run_text(
        &fixed,
        Some("bert-base"),
        None,
        &[],
        &library::get,
        EXTRAPOLATE,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let written = |name: &str| {
        r.traffic
            .iter()
            .find(|t| t.level == name)
            .map(|t| t.write_bytes)
            .unwrap()
    };
    // Q, K and V are only read; the logits QK and the attention matrix A are written once each (1.5 GiB), AV
    // once (96 MiB).
    assert_eq!(written("dram"), 2 * 1_610_612_736 + 100_663_296);
}

// ---- fit and size errors explain themselves ----

/// unfused's `rows` binding at 64K: the softmax stage's double-buffered block of 256 whole rows is 64 MiB.
#[test]
fn working_set_error_lists_each_kept_tensor() {
    let m = map_error(&shipped(Kind::Arch, "unfused"), None, &["seq=64K"], "rows");
    assert!(m.contains("which holds"), "{m}");
    insta::assert_snapshot!("working-set", m);
}

/// FuseMax on a 128 KiB buffer: not even one query tile per block fits (it needs 161 KiB).
#[test]
fn no_divisor_error_shows_the_smallest_working_set() {
    let m = map_error(
        &shipped(Kind::Arch, "fusemax"),
        None,
        &["buffer_bytes=128K"],
        "",
    );
    insta::assert_snapshot!("no-divisor", m);
}

/// FuseMax's GEMM binding at 1000 tokens: T / T0 does not divide, in T1's `Largest` rule.
#[test]
fn inexact_size_names_file_rule_and_a_value_that_works() {
    // The shipped rules round up (ragged lengths pad); a rule written with exact division must say where it fails.
    let fusemax = shipped(Kind::Arch, "fusemax");
    let exact = edit_after(
        &fusemax.text,
        "cascade: \"gemm\"",
        "divisor_of: \"ceil(T, T0)\"",
        "divisor_of: \"T / T0\"",
    );
    let m = map_error(
        &SourceFile::new(fusemax.name.as_str(), exact),
        Some("gemm"),
        &["tokens=1000"],
        "",
    );
    assert!(m.contains("arch/fusemax.ron"), "{m}");
    assert!(m.contains("Largest(divisor_of: \"T / T0\""), "{m}");
    assert!(m.contains("1024"), "a multiple of 256 near 1000: {m}");
    insta::assert_snapshot!("inexact-size", m);
}

// ---- the other cases of the two rules ----

/// Reading a tensor before the stage that makes it, loading one that was never stored, and reading one from
/// another buffer than the one it was made in are each a mapping error that says so.
#[test]
fn passages_must_follow_the_stages() {
    let file = bad_map("passed-on-chip");
    let edited = |text: String| SourceFile::new(file.name.as_str(), text);
    // softmax loads QK, but qk never stores it
    let load = edit_after(
        &file.text,
        "name: \"softmax\"",
        "[\"A\"]",
        "[\"QK\", \"A\"]",
    );
    let m = map_error(&edited(load), None, &[], "");
    assert!(
        m.contains("loads `QK` from DRAM") && m.contains("never stores"),
        "{m}"
    );
    // softmax reads QK from a register file, not from the buffer qk made it in
    let other = edit_after(
        &file.text,
        "name: \"softmax\"",
        "buffer: \"buffer\"",
        "buffer: \"rf1d\"",
    );
    let m = map_error(&edited(other), None, &[], "");
    assert!(
        m.contains("on chip from `rf1d`") && m.contains("made it in `buffer`"),
        "{m}"
    );
    // av first: it reads A before softmax makes it
    let (a, b) = (
        file.text
            .find("            Stage(\n                name: \"av\"")
            .unwrap(),
        file.text.rfind("        ],").unwrap(),
    );
    let first = file
        .text
        .find("            Stage(\n                name: \"qk\"")
        .unwrap();
    let text = format!(
        "{}{}{}{}",
        &file.text[..first],
        &file.text[a..b],
        &file.text[first..a],
        &file.text[b..]
    );
    let m = map_error(&edited(text), None, &[], "");
    assert!(
        m.contains("stage `av` reads `A`, which stage `softmax` makes later"),
        "{m}"
    );
}

/// FuseMax with its final division in a stage of its own: AV reads only the final running numerator and
/// denominator (`RNV[f,M1,p]`, `RD[M1,p]`), so what passes on chip is one value per query, not one per `m1`
/// iteration: RNV is B·H·F·P = 96 MiB, which 16 MB cannot hold; with 128 MiB of buffer the binding maps, and its
/// DRAM traffic is FuseMax's (Q, K and V read once, AV written once).
#[test]
fn a_final_value_passes_whole_once() {
    let fm = shipped(Kind::Arch, "fusemax");
    let text = edit_after(&fm.text, "name: \"attention\"", ", \"AV\"]", "]");
    let text = edit_after(&text, "name: \"attention\"", "\"AV\": \"pe1d\",", "");
    let text = edit_after(&text, "name: \"attention\"", ", \"AV\"]", "]");
    let text = edit_after(&text, "name: \"attention\"", "\"AV\": \"p1\", ", "");
    let stage = r#"
            Stage(
                name: "divide",
                einsums: ["AV"],
                loops: ["b", "h", "p2", "p1"],
                place: { "AV": "pe1d" },
                spatial: { "pe1d": [["p0"]] },
                dram: ["AV"],
                keep: { "AV": "p1" },
                buffer: "buffer",
                memory: "dram",
                pipeline: Sequential,
            ),"#;
    let at = text.find("        ],\n    ), Binding(").unwrap();
    let text = format!("{}{stage}\n{}", &text[..at], &text[at..]);
    let file = SourceFile::new("arch/fusemax.ron", text);
    let m = map_error(&file, None, &[], "");
    assert!(
        m.contains("`RNV`: 100663296 B = B 64 x H 12 x F 64 x P 1024 x 2 B, the whole tensor"),
        "{m}"
    );
    let r = run_text(
        &file,
        Some("bert-base"),
        None,
        &["buffer_bytes=2^27"],
        &library::get,
        EXTRAPOLATE,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let base = common::run_shipped("fusemax", "bert-base", &[], EXTRAPOLATE);
    assert_eq!(r.traffic_bytes["dram"], base.traffic_bytes["dram"]);
}

/// A running value kept inside the loop it runs across: FuseMax's running numerator RNV kept at `p1` instead of
/// `p2` held one query tile's state while the `P1` tiles of a block each needed theirs across `m1` (the working
/// set undercounted it P1 times).
#[test]
fn a_running_value_kept_inside_its_loop_is_rejected() {
    let fm = shipped(Kind::Arch, "fusemax");
    let text = edit_after(
        &fm.text,
        "name: \"attention\"",
        "\"RNV\": \"p2\"",
        "\"RNV\": \"p1\"",
    );
    let m = map_error(&SourceFile::new("arch/fusemax.ron", text), None, &[], "");
    assert!(
        m.contains("`RNV` is a running value carried across `m1`")
            && m.contains("while loop `p1`, inside `m1`")
            && m.contains("keep `RNV` at a loop outside `p1`: one of b, h, p2, m1"),
        "{m}"
    );
}
