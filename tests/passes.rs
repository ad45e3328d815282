//! Pass analysis of the six FuseMax cascades with BERT-Base parameters: golden text and JSON reports, and the pass
//! counts the paper states (FuseMax §III-IV).

#[path = "fixtures/common.rs"]
mod common;

use common::shipped;
use einsim::cascade;
use einsim::library::Kind;
use einsim::passes::{analyse, PassReport};

const CASCADES: [&str; 6] = [
    "cascade1",
    "cascade2",
    "cascade3",
    "attention-3pass",
    "attention-2pass",
    "attention-1pass",
];

/// What `einsim passes NAME` computes: the cascade with the model's parameters.
fn report(name: &str) -> PassReport {
    let c = cascade::load(&shipped(Kind::Cascade, name))
        .unwrap_or_else(|d| panic!("{name}:\n{}", d.render()));
    let m = cascade::load_model(&shipped(Kind::Model, "bert-base"))
        .unwrap_or_else(|d| panic!("bert-base:\n{}", d.render()));
    let env = c
        .with_params(&m.overrides_for(&c))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    analyse(&c, &env.sizes, env.reported_params())
}

fn passes(r: &PassReport, rank: &str) -> u32 {
    *r.passes
        .get(rank)
        .unwrap_or_else(|| panic!("{}: no rank `{rank}` in {:?}", r.cascade, r.passes))
}

#[test]
fn pass_report_snapshots() {
    for name in CASCADES {
        let r = report(name);
        assert_eq!(r.cascade, name);
        insta::assert_snapshot!(format!("{name}_text"), einsim::report::passes::render(&r));
        insta::assert_snapshot!(
            format!("{name}_json"),
            serde_json::to_string_pretty(&r).expect("serialises")
        );
    }
}

#[test]
fn pedagogical_cascades() {
    // Cascade 1 re-reads A after the full reduction Y: two passes over K; cascades 2 and 3 fix that.
    let c1 = report("cascade1");
    assert_eq!(passes(&c1, "K"), 2);
    let cause = &c1.ranks.iter().find(|r| r.rank == "K").unwrap().causes;
    assert_eq!(cause.len(), 1, "{cause:?}");
    assert_eq!(cause[0].pass, 2);
    assert_eq!(cause[0].reduction, "Y");
    assert_eq!(cause[0].consumer, "Z");
    assert_eq!(cause[0].reread, vec!["A".to_string()]);
    assert_eq!(passes(&report("cascade2"), "K"), 1);
    assert_eq!(passes(&report("cascade3"), "K"), 1);
}

#[test]
fn attention_cascades() {
    let three = report("attention-3pass");
    assert_eq!(passes(&three, "M"), 3);
    let two = report("attention-2pass");
    assert_eq!(passes(&two, "M"), 2);
    let one = report("attention-1pass");
    assert_eq!(passes(&one, "M"), 1);
    assert_eq!(passes(&one, "M1"), 1);
    // Within a tile the local max is a reduction over M0 that SLN re-reads: two passes over M0, reported
    // separately and marked as part of M.
    assert_eq!(passes(&one, "M0"), 2);
    let m0 = one.ranks.iter().find(|r| r.rank == "M0").unwrap();
    assert_eq!(m0.part_of.as_deref(), Some("M"));
    // Sizes come from BERT-Base's seq = 1024.
    for r in [&three, &two, &one] {
        let m = r.ranks.iter().find(|x| x.rank == "M").unwrap();
        assert_eq!(m.size, 1024, "{}", r.cascade);
        assert_eq!(r.params.get("seq"), Some(&1024), "{}", r.cascade);
    }
    // Every pass beyond the first has at least one cause, and no cause names a pass that does not exist.
    for r in [&three, &two, &one] {
        for rp in &r.ranks {
            let mut started: Vec<u32> = rp.causes.iter().map(|c| c.pass).collect();
            started.dedup();
            let expected: Vec<u32> = (2..=rp.passes).collect();
            assert_eq!(
                started, expected,
                "{} {}: {:?}",
                r.cascade, rp.rank, rp.causes
            );
        }
    }
}
