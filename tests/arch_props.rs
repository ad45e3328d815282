//! No arch text and no `--set` combination makes einsim panic: mutated shipped arch files are rejected with
//! diagnostics, and odd hardware sizes either simulate (never below their bound) or are reported as invalid.

use einsim::library::{self, Kind};
use einsim::run;
use einsim::sim::SimOptions;
use proptest::prelude::*;

fn energy(name: &str) -> Option<einsim::diag::SourceFile> {
    library::get(Kind::Energy, name)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Delete a slice of a shipped arch file and insert arbitrary text there: loading never panics, nor does
    /// checking its bindings against the cascades they name.
    #[test]
    fn mutated_arch_files_do_not_panic(
        arch in prop::sample::select(library::names(Kind::Arch)),
        at in 0.0f64..1.0,
        cut in 0usize..40,
        insert in "[ -~]{0,12}",
    ) {
        let file = library::get(Kind::Arch, arch).unwrap();
        let mut text = file.text.clone();
        let mut i = ((text.len() as f64) * at) as usize;
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        let mut j = (i + cut).min(text.len());
        while !text.is_char_boundary(j) {
            j += 1;
        }
        text.replace_range(i..j, &insert);
        let mutated = einsim::diag::SourceFile::new(file.name.clone(), text);
        let cascades = |n: &str| library::get(Kind::Cascade, n);
        if let Err(d) = einsim::binding::load_arch(&mutated, &energy, &cascades, &Default::default()) {
            prop_assert!(!d.items.is_empty());
            let _ = d.render();
        }
    }

    /// Arbitrary hardware sizes on FuseMax and FLAT at a small workload: a report that respects its bound, or an
    /// error; never a panic.
    #[test]
    fn odd_hardware_sizes_do_not_panic(
        arch in prop::sample::select(vec!["fusemax", "flat-cloud", "unfused"]),
        // Mostly powers of two so that partitions divide and the simulation runs; the rest exercise errors.
        rows in prop_oneof![4 => prop::sample::select(vec![1i64, 2, 4, 16, 64, 256]), 1 => 1i64..300],
        cols in prop_oneof![4 => prop::sample::select(vec![1i64, 2, 4, 16, 64, 256]), 1 => 1i64..300],
        lanes in prop_oneof![4 => prop::sample::select(vec![1i64, 2, 4, 16, 64, 256]), 1 => 1i64..300],
        buffer in 1i64..(1 << 22),
        depth in 0i64..20,
        seq in prop::sample::select(vec![256i64, 512, 1024]),
    ) {
        let a = library::get(Kind::Arch, arch).unwrap();
        let m = library::get(Kind::Model, "bert-base").unwrap();
        let sets: Vec<String> = [
            format!("rows={rows}"), format!("cols={cols}"), format!("lanes={lanes}"),
            format!("buffer_bytes={buffer}"), format!("depth={depth}"), format!("seq={seq}"),
            "batch=1".into(), "heads=2".into(),
        ]
        .into();
        match run::run(&a, Some(&m), None, &sets, &library::get, SimOptions::default()) {
            Ok(r) => prop_assert!(r.cycles >= r.bound.cycles),
            Err(run::RunError::Internal(e)) => prop_assert!(false, "internal error: {e}"),
            Err(_) => {}
        }
    }
}
