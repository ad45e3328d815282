//! Properties of the cascade front end: `load` never panics, and printing is a faithful, idempotent round trip.

use einsim::cascade::{load, print, Cascade, Expr, Index, ReduceOp, TensorRef};
use einsim::diag::{SourceFile, Span};
use einsim::expr::SizeExpr;
use proptest::prelude::*;
use std::path::Path;

fn shipped() -> Vec<SourceFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/cascades");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.iter()
        .map(|p| {
            SourceFile::new(
                p.file_name().unwrap().to_string_lossy(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect()
}

fn load_ok(f: &SourceFile) -> Cascade {
    load(f).unwrap_or_else(|d| panic!("{} failed to load:\n{}", f.name, d.render()))
}

/// Reset every span so that cascades loaded from different texts compare equal when they mean the same thing.
fn strip(mut c: Cascade) -> Cascade {
    fn size(e: &mut SizeExpr) {
        match e {
            SizeExpr::Num(_) => {}
            SizeExpr::Name(_, s) => *s = Span::default(),
            SizeExpr::Bin(a, _, b) => {
                size(a);
                size(b)
            }
            SizeExpr::Call(_, args) => args.iter_mut().for_each(size),
        }
    }
    fn tref(r: &mut TensorRef) {
        r.span = Span::default();
        for i in &mut r.indices {
            match i {
                Index::Var { span, .. }
                | Index::Shift { span, .. }
                | Index::Flatten { span, .. }
                | Index::Filter { span, .. } => *span = Span::default(),
                Index::Fixed { at, span, .. } => {
                    *span = Span::default();
                    size(at)
                }
            }
        }
    }
    fn expr(e: &mut Expr) {
        match e {
            Expr::Ref(r) => tref(r),
            Expr::Const(_) => {}
            Expr::Unary { arg, span, .. } => {
                *span = Span::default();
                expr(arg)
            }
            Expr::Binary { lhs, rhs, span, .. } => {
                *span = Span::default();
                expr(lhs);
                expr(rhs)
            }
        }
    }
    for p in &mut c.params {
        p.span = Span::default();
        if let Some(e) = &mut p.follows {
            size(e);
        }
    }
    for r in &mut c.ranks {
        r.span = Span::default();
        size(&mut r.size);
    }
    for e in &mut c.einsums {
        e.span = Span::default();
        tref(&mut e.output);
        expr(&mut e.expr);
        for r in &mut e.reductions {
            r.span = Span::default();
            if let ReduceOp::TopK(k) = &mut r.op {
                size(k);
            }
        }
    }
    for s in &mut c.stops {
        s.span = Span::default();
        size(&mut s.bound);
    }
    c
}

#[test]
fn print_round_trips_shipped_cascades() {
    for f in shipped() {
        let c = load_ok(&f);
        let p1 = print(&c);
        let c2 = load_ok(&SourceFile::new(format!("printed {}", f.name), p1.clone()));
        let p2 = print(&c2);
        assert_eq!(p1, p2, "{}: printing is not idempotent", f.name);
        assert_eq!(
            strip(c),
            strip(c2),
            "{}: the printed form loads to a different cascade",
            f.name
        );
    }
}

/// A valid file whose einsums block is replaced by `block`.
fn with_block(block: &str) -> String {
    format!(
        "Cascade(name: \"x\", params: {{ \"seq\": 64 }}, ranks: {{ \"M\": \"seq\", \"P\": \"seq\", \"M1\": \"M / M0\", \
         \"M0\": \"16\", \"E\": \"8\" }}, partitions: {{ \"M\": [\"M1\", \"M0\"] }}, einsums: r#\"{block}\"#)"
    )
}

/// Fragments of the notation, so that random blocks are often nearly valid and reach the checker.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("input Q[e,p], K[e,m]\n".to_string()),
        Just("init:\n".to_string()),
        Just("main:\n".to_string()),
        Just("RM[m1=0,p] = -inf\n".to_string()),
        Just("RM[m1+1,p] = max(RM[m1,p], LM[m1,p])\n".to_string()),
        Just("LM[m1,p] = max(m0) BK[e,m1,m0]\n".to_string()),
        Just("BK[e,m1,m0] = K[e, m1*M0+m0]\n".to_string()),
        Just("X[m,p] = exp(Q[e,p] * K[e,m] - -1.5) / (sqrt(Y[p]))\n".to_string()),
        Just("Y[p] = topk(m, M / 2) X[m,p]\n".to_string()),
        Just("S[m1+1] = X[k:k<=m1, p]\n".to_string()),
        Just("until m1 >= M1\n".to_string()),
        "[A-Za-z0-9_\\[\\](),=+*/:<>. -]{0,12}",
        "\\PC{0,6}",
        Just("\n".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn load_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = load(&SourceFile::new("fuzz.ron", text));
    }

    #[test]
    fn load_never_panics_on_arbitrary_einsums(block in "\\PC{0,200}") {
        let _ = load(&SourceFile::new("fuzz.ron", with_block(&block)));
    }

    #[test]
    fn load_never_panics_on_spliced_einsums(parts in proptest::collection::vec(fragment(), 0..12)) {
        let text = with_block(&parts.concat());
        if let Ok(c) = load(&SourceFile::new("fuzz.ron", text)) {
            // Whatever loads must also print and load back to the same thing.
            let p = print(&c);
            let c2 = load(&SourceFile::new("printed.ron", p.clone())).map_err(|d| d.render());
            prop_assert!(c2.is_ok(), "printed form fails to load:\n{}\n{:?}", p, c2.err());
            prop_assert_eq!(print(&c2.unwrap()), p);
        }
    }

    #[test]
    fn load_never_panics_on_mutated_shipped_files(idx in 0usize..6, at in 0usize..4000, junk in "\\PC{0,8}") {
        let files = shipped();
        let f = &files[idx % files.len()];
        let mut text = f.text.clone();
        let mut cut = at.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.insert_str(cut, &junk);
        let _ = load(&SourceFile::new(f.name.clone(), text));
    }
}
