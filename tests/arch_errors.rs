//! Every malformed arch file in `tests/bad_arch/` is rejected with a located, readable diagnostic (snapshotted);
//! every shipped and fixture arch loads cleanly. Arch files are loaded as the CLI loads them: the hardware is
//! resolved and every binding is checked against the cascade it names (`binding::load_arch`).

#[path = "fixtures/common.rs"]
mod common;

use common::fixture_lookup;
use einsim::arch::load;
use einsim::diag::{Diagnostics, SourceFile};
use einsim::library::{self, Kind};
use std::collections::BTreeMap;

use common::{ron_files as files, source_named as source};
use std::path::Path;

/// Fixture files first, then shipped ones: the small bad archs use the fixture table and cascades, the copies
/// of `arch/fusemax.ron` the shipped ones.
fn energy(name: &str) -> Option<SourceFile> {
    fixture_lookup(Kind::Energy, name).or_else(|| library::get(Kind::Energy, name))
}

fn cascades(name: &str) -> Option<SourceFile> {
    fixture_lookup(Kind::Cascade, name).or_else(|| library::get(Kind::Cascade, name))
}

/// Load an arch file as `einsim check` does: hardware and bindings.
fn load_checked(file: &SourceFile) -> Result<einsim::arch::Arch, Diagnostics> {
    einsim::binding::load_arch(file, &energy, &cascades, &BTreeMap::new())
}

#[test]
fn bad_archs_are_reported() {
    let bad = files("tests/bad_arch");
    assert!(
        bad.len() >= 10,
        "expected at least 10 bad archs, found {}",
        bad.len()
    );
    for path in bad {
        let file = source(&path);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rendered = match load_checked(&file) {
            Ok(a) => panic!("{} loaded but should fail: {}", file.name, a.name),
            Err(d) => {
                assert!(
                    !d.items.is_empty(),
                    "{}: an error without diagnostics",
                    file.name
                );
                for item in &d.items {
                    assert!(
                        item.span.end > item.span.start,
                        "{}: `{}` has no span",
                        file.name,
                        item.message
                    );
                }
                d.render()
            }
        };
        insta::assert_snapshot!(stem, rendered);
    }
}

#[test]
fn many_errors_are_all_reported() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_arch/many-errors.ron");
    let d = load_checked(&source(&path)).expect_err("four mistakes");
    assert_eq!(d.items.len(), 4, "{}", d.render());
}

#[test]
fn many_binding_errors_are_all_reported() {
    // Six mistakes; the misspelled `place` key is two problems (an unknown Einsum, and `AV` left unplaced).
    let file = bad_arch("binding-many-errors");
    let d = load_checked(&file).expect_err("six mistakes");
    assert_eq!(
        lines(&file, &d),
        vec![
            line_of(&file, "fits: \"bufer\""),
            line_of(&file, "fits: \"bufer\""),
            line_of(&file, "einsums: [\"BQK\""),
            line_of(&file, "\"AVV\": \"pe1d\""),
            line_of(&file, "[[\"mo\"]"),
            line_of(&file, "\"BKV\""),
            line_of(&file, "\"AV\": \"p3\""),
        ],
        "{}",
        d.render()
    );
}

/// Each of the binding mistakes is underlined exactly where it is, on the right line and columns.
#[test]
fn binding_errors_underline_the_name() {
    for (stem, needle, what) in [
        ("binding-spatial-rank", "[[\"mo\"]", "mo"),
        ("binding-spatial-unit", "\"pe2x\"", "pe2x"),
        ("binding-spatial-loop", "[\"p1\"]]", "p1"),
        ("binding-keep-scope", "\"AV\": \"p3\"", "p3"),
        ("binding-size-stage", "\"atention\"", "atention"),
        ("binding-size-fits", "\"bufer\"", "bufer"),
        (
            "binding-unknown-cascade",
            "\"attention-1pas\"",
            "attention-1pas",
        ),
    ] {
        let file = bad_arch(stem);
        let d = load_checked(&file).expect_err(stem);
        assert_eq!(d.items.len(), 1, "{stem}: {}", d.render());
        let at = file.text.find(needle).unwrap() + needle.find(what).unwrap();
        assert_eq!(
            d.items[0].span.range(),
            at..at + what.len(),
            "{stem}: {}",
            d.render()
        );
    }
}

/// The user's two silent mistakes (a misspelled rank or unit in `spatial`) used to run with wrong results; now
/// `einsim run` rejects them as invalid input, with the location, before mapping.
#[test]
fn silent_spatial_mistakes_are_run_errors() {
    for stem in [
        "binding-spatial-rank",
        "binding-spatial-unit",
        "binding-spatial-loop",
    ] {
        let file = bad_arch(stem);
        let model = library::get(Kind::Model, "bert-base").unwrap();
        let opts = einsim::sim::SimOptions::default();
        match einsim::run::run(&file, Some(&model), None, &[], &library::get, opts) {
            Err(einsim::run::RunError::Invalid(d)) => {
                assert!(
                    d.render().contains(&format!("{stem}.ron:")),
                    "{}",
                    d.render()
                )
            }
            Err(e) => panic!("{stem}: expected located diagnostics, got {e}"),
            Ok(r) => panic!("{stem} ran: {} cycles", r.cycles),
        }
    }
}

/// A `--set` override that makes a figure non-positive is reported against the figure's parameter.
#[test]
fn override_makes_figure_nonpositive() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/arch/grid4.ron");
    let file = SourceFile::new("grid4.ron", std::fs::read_to_string(path).unwrap());
    let overrides = BTreeMap::from([("lat".to_string(), 0)]);
    let d = load(&file, &energy, &overrides).expect_err("lat=0");
    insta::assert_snapshot!("override-nonpositive", d.render());
}

#[test]
fn shipped_and_fixture_archs_load() {
    for name in library::names(Kind::Arch) {
        let f = library::get(Kind::Arch, name).unwrap();
        let a = einsim::binding::load_arch(
            &f,
            &|n| library::get(Kind::Energy, n),
            &|n| library::get(Kind::Cascade, n),
            &BTreeMap::new(),
        )
        .unwrap_or_else(|d| panic!("{name}:\n{}", d.render()));
        assert!(!a.bindings.is_empty(), "{name} binds nothing");
    }
    for path in files("tests/fixtures/arch") {
        let file = source(&path);
        let f = |k: Kind, n: &str| fixture_lookup(k, n);
        einsim::binding::load_arch(
            &file,
            &|n| f(Kind::Energy, n),
            &|n| f(Kind::Cascade, n),
            &BTreeMap::new(),
        )
        .unwrap_or_else(|d| panic!("{}:\n{}", file.name, d.render()));
    }
}

/// 1-based line of each diagnostic's primary span.
fn lines(file: &SourceFile, d: &einsim::diag::Diagnostics) -> Vec<usize> {
    d.items
        .iter()
        .map(|i| file.line_col(i.span.start as usize).0)
        .collect()
}

fn bad_arch(name: &str) -> SourceFile {
    source(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bad_arch/{name}.ron")))
}

fn line_of(file: &SourceFile, needle: &str) -> usize {
    let at = file
        .text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in {}", file.name));
    file.line_col(at).0
}

#[test]
fn repeated_figure_is_located_at_its_own_line() {
    // Two `Fig("2", "B", ...)`: the buffer's (line 26, fine) and the DRAM's (line 28, no source). The error is
    // underlined on line 26.
    let file = bad_arch("figure-without-source-repeated");
    let d = load(&file, &energy, &BTreeMap::new()).expect_err("no source");
    assert_eq!(lines(&file, &d), vec![line_of(&file, "\"dram\": Storage")]);
}

#[test]
fn no_bindings_is_located_at_bindings() {
    let file = bad_arch("no-bindings");
    let d = load(&file, &energy, &BTreeMap::new()).expect_err("no bindings");
    assert_eq!(lines(&file, &d), vec![line_of(&file, "bindings: []")]);
}

#[test]
fn override_error_names_the_override() {
    // grid4.ron declares `"lat": 3`; `--set lat=0` makes the latency figure 0. The diagnostic says "`lat`
    // evaluates to 0" under `"lat": 3` in `params`, which reads as if the file were wrong; it should point at
    // the figure that uses it (`latency: Fig("lat", ...)`) or say the value came from the command line.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/arch/grid4.ron");
    let file = SourceFile::new("grid4.ron", std::fs::read_to_string(path).unwrap());
    let overrides = BTreeMap::from([("lat".to_string(), 0)]);
    let d = load(&file, &energy, &overrides).expect_err("lat=0");
    let rendered = d.render();
    assert!(
        lines(&file, &d) == vec![line_of(&file, "latency: Fig(\"lat\"")]
            || rendered.contains("--set")
            || rendered.contains("override"),
        "{rendered}"
    );
}

#[test]
fn missing_comma_is_located_after_the_previous_value() {
    // Cascade files get `syntax error: expected `,`` right after the value that lacks it (tests/bad/
    // ron-missing-comma.ron); arch files get `invalid RON: Expected comma` at the start of the next line.
    let file = bad_arch("ron-syntax");
    let d = load(&file, &energy, &BTreeMap::new()).expect_err("syntax");
    assert_eq!(
        lines(&file, &d),
        vec![line_of(&file, "kind: SpatialArray\n")]
    );
}

// ---- energy tables that amend another (`base`) ----

fn table(name: &str, base: Option<&str>, mac_pj: f64) -> SourceFile {
    let base = base.map_or("None".to_string(), |b| format!("Some(\"{b}\")"));
    SourceFile::new(
        format!("arch/energy/{name}.ron").as_str(),
        format!(
            "EnergyTable(name: \"{name}\", node: \"45nm\", source: \"test\", base: {base},\n    \
             actions: {{ \"mac\": (pj: {mac_pj}, per: \"MAC\", source: \"test\") }})"
        ),
    )
}

#[test]
fn a_table_amends_its_base() {
    let shipped = |n: &str| library::get(Kind::Energy, n);
    let stale = shipped("fusemax-45nm-stale-buffer").expect("shipped what-if table");
    let t = einsim::arch::load_energy_resolved(&stale, &shipped)
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(t.name, "fusemax-45nm-stale-buffer");
    assert_eq!(t.actions["glb16mb_read"].pj, 484.97, "its own entry wins");
    assert_eq!(t.actions["mac"].pj, 17.1645, "the rest comes from the base");
    assert_eq!(t.area["glb_16mb"].um2, 141_957_000.0);
}

#[test]
fn a_cyclic_or_unknown_base_is_an_error() {
    let lookup = |n: &str| match n {
        "a" => Some(table("a", Some("b"), 1.0)),
        "b" => Some(table("b", Some("a"), 2.0)),
        "c" => Some(table("c", Some("nowhere"), 3.0)),
        _ => None,
    };
    let cyclic = einsim::arch::load_energy_resolved(&table("a", Some("b"), 1.0), &lookup)
        .expect_err("a cycle of bases");
    assert!(
        cyclic.render().contains("is based on itself"),
        "{}",
        cyclic.render()
    );
    let unknown = einsim::arch::load_energy_resolved(&table("c", Some("nowhere"), 3.0), &lookup)
        .expect_err("an unknown base");
    let text = unknown.render();
    assert!(
        text.contains("unknown base energy table `nowhere`"),
        "{text}"
    );
    assert!(
        text.contains("arch/energy/c.ron:1:"),
        "located in the file that names it: {text}"
    );
}
