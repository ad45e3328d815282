//! Every malformed workload in `tests/bad/` is rejected with readable diagnostics (snapshotted), and every shipped
//! workload loads cleanly.

#[path = "fixtures/common.rs"]
mod common;

use einsim::cascade::{load, load_model, print};

use common::{ron_files as files, source_named as source};

#[test]
fn bad_workloads_are_reported() {
    let bad = files("tests/bad");
    assert!(
        bad.len() >= 22,
        "expected at least 22 bad workloads, found {}",
        bad.len()
    );
    for path in bad {
        let file = source(&path);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rendered = match load(&file) {
            Ok(c) => panic!("{} loaded but should fail:\n{}", file.name, print(&c)),
            Err(d) => {
                assert!(
                    !d.items.is_empty(),
                    "{}: an error without diagnostics",
                    file.name
                );
                d.render()
            }
        };
        insta::assert_snapshot!(stem, rendered);
    }
}

#[test]
fn shipped_cascades_load() {
    let shipped = files("workloads/cascades");
    assert!(shipped.len() >= 6, "the six FuseMax cascades at least");
    for path in shipped {
        let file = source(&path);
        if let Err(d) = load(&file) {
            panic!("{} failed to load:\n{}", file.name, d.render());
        }
    }
}

#[test]
fn shipped_models_load() {
    let shipped = files("workloads/models");
    assert!(shipped.len() >= 4, "the four FuseMax models at least");
    for path in shipped {
        let file = source(&path);
        let m = load_model(&file)
            .unwrap_or_else(|d| panic!("{} failed to load:\n{}", file.name, d.render()));
        for p in ["batch", "heads", "head_dim", "d_model", "ffn", "seq"] {
            assert!(m.param(p).is_some(), "{}: missing `{p}`", file.name);
        }
        assert!(!m.source.is_empty());
    }
}
