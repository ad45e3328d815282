//! Golden renderings of run reports (text, pretty JSON, Markdown) and the documented JSON shape.

#[path = "fixtures/common.rs"]
mod common;

use common::*;
use einsim::report::{markdown, text, RunReport};
use serde_json::Value;

fn default_run() -> RunReport {
    run_shipped("fusemax", "bert-base", &[], EXTRAPOLATE)
}

fn xlm_4k() -> RunReport {
    run_shipped("fusemax", "xlm", &["seq=4096"], EXTRAPOLATE)
}

#[test]
fn default_run_renderings() {
    let r = default_run();
    assert_eq!(
        (r.arch.as_str(), r.workload.as_str()),
        ("fusemax", "bert-base")
    );
    assert_eq!(r.params["seq"], 1024);
    insta::assert_snapshot!("default_text", text::render(&r));
    insta::assert_snapshot!("default_json", json(&r));
    insta::assert_snapshot!("default_md", markdown::render(&r));
}

#[test]
fn xlm_4k_renderings() {
    let r = xlm_4k();
    assert_eq!((r.workload.as_str(), r.params["seq"]), ("xlm", 4096));
    insta::assert_snapshot!("xlm_4k_text", text::render(&r));
    insta::assert_snapshot!("xlm_4k_json", json(&r));
    insta::assert_snapshot!("xlm_4k_md", markdown::render(&r));
}

/// A fixture run: small enough that every number in the snapshot can be checked against tests/engine.rs.
#[test]
fn fixture_run_renderings() {
    let r = run_fixture("stream", &["msize=32"], FULL);
    insta::assert_snapshot!("stream_text", text::render(&r));
    insta::assert_snapshot!("stream_md", markdown::render(&r));
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur
            .get(key)
            .unwrap_or_else(|| panic!("JSON report lacks `{path}` (at `{key}`)"));
    }
    cur
}

fn number(v: &Value, path: &str) -> f64 {
    at(v, path)
        .as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number: {}", at(v, path)))
}

#[test]
fn json_has_the_documented_keys() {
    for r in [default_run(), xlm_4k()] {
        let v: Value = serde_json::from_str(&json(&r)).expect("valid JSON");
        let cycles = at(&v, "cycles").as_u64().expect("cycles is an integer");
        assert!(cycles > 0);
        assert!(number(&v, "seconds") > 0.0);
        for u in ["utilization.pe2d", "utilization.pe1d"] {
            let x = number(&v, u);
            assert!((0.0..=1.0).contains(&x), "{u} = {x}");
        }
        let einsums = at(&v, "einsums").as_array().expect("einsums is a list");
        assert!(!einsums.is_empty());
        for e in einsums {
            assert!(e["name"].is_string(), "{e}");
            assert!(e["unit"].is_string(), "{e}");
            assert!(e["cycles"].is_u64(), "{e}");
            assert!(e["utilization"].is_f64(), "{e}");
        }
        assert!(
            at(&v, "traffic_bytes.dram")
                .as_u64()
                .expect("integer bytes")
                > 0
        );
        let total = number(&v, "energy_pj.total");
        let parts: f64 = at(&v, "energy_pj.by_component")
            .as_object()
            .expect("by_component is a map")
            .values()
            .map(|x| x.as_f64().expect("pJ"))
            .sum();
        assert!((total - parts).abs() <= 1e-9 * total, "{total} vs {parts}");
        let passes = at(&v, "passes").as_object().expect("passes is a map");
        assert_eq!(
            passes.get("M").and_then(Value::as_u64),
            Some(1),
            "{passes:?}"
        );
        let bound = at(&v, "bound.cycles").as_u64().expect("integer");
        assert!(bound <= cycles);
        assert!(at(&v, "bound.limiter").is_string());
        // The unit utilizations are the sums of their Einsums' shares.
        for unit in ["pe2d", "pe1d"] {
            let sum: f64 = einsums
                .iter()
                .filter(|e| e["unit"] == unit)
                .map(|e| e["utilization"].as_f64().unwrap())
                .sum();
            let u = number(&v, &format!("utilization.{unit}"));
            assert!((sum - u).abs() < 1e-9, "{unit}: {sum} vs {u}");
        }
    }
}

#[test]
fn no_negative_zero_in_reports() {
    // stream.ron's unit lists no `pe_area`, so its area is an empty sum.
    let r = run_fixture("stream", &["msize=32"], FULL);
    for (k, v) in &r.area_mm2 {
        assert!(!(*v == 0.0 && v.is_sign_negative()), "area_mm2.{k} = -0.0");
    }
    let t = text::render(&r);
    assert!(!t.contains("-0.0"), "{t}");
}
