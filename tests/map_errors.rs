//! Mapping errors say why: the fit and size errors of shipped archs pushed past their limits are snapshotted, so
//! each message shows what it is made of.

#[path = "fixtures/common.rs"]
mod common;

use common::shipped;
use einsim::diag::SourceFile;
use einsim::library::{self, Kind};

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
    let m = map_error(
        &shipped(Kind::Arch, "fusemax"),
        Some("gemm"),
        &["tokens=1000"],
        "",
    );
    assert!(m.contains("arch/fusemax.ron"), "{m}");
    assert!(m.contains("Largest(divisor_of: \"T / T0\""), "{m}");
    assert!(m.contains("1024"), "a multiple of 256 near 1000: {m}");
    insta::assert_snapshot!("inexact-size", m);
}
