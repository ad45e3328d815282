//! The extended-Einsum cascade language: file format, parser, checker and printer.
//!
//! `load` turns a workload file's text into a checked [`Cascade`] or *all* the [`Diagnostics`] found in it.
//! Pipeline: [`file`] (RON → raw fields, plus value spans) → [`syntax`] (einsums block → AST) → [`check`]
//! (AST → IR, semantic checks) ; [`print`] goes back to text, [`env`] evaluates sizes for a parameter choice.

mod check;
pub mod env;
mod file;
pub mod ir;
pub mod model;
mod print;
mod syntax;

pub use env::{rank_sizes, Env, EnvError};
pub use file::parse_ron_as;
/// The value locator, for other RON files whose semantic checks need spans (arch bindings).
pub(crate) use file::{locate, Loc, TextLoc};
pub use ir::*;
pub use model::{load_model, Model};
pub use print::{print, print_ref};

use crate::diag::{Diagnostics, SourceFile};

/// Parse and check a workload file. On failure, every problem found is reported, each with its span.
pub fn load(file: &SourceFile) -> Result<Cascade, Diagnostics> {
    let fail = |items| Diagnostics {
        file: file.clone(),
        items,
    };
    let raw: file::RawCascade = file::parse_ron(file).map_err(|d| fail(vec![d]))?;
    check::check(file, raw).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_pass() -> Cascade {
        let text = include_str!("../../workloads/cascades/attention-1pass.ron");
        load(&SourceFile::new("attention-1pass.ron", text)).unwrap()
    }

    #[test]
    fn loads_the_one_pass_cascade() {
        let c = one_pass();
        assert_eq!(c.einsums.len(), 17);
        let rm = c.tensor_id("RM").unwrap();
        assert_eq!(c.tensors[rm].iterative_rank, c.rank_id("M1"));
        assert_eq!(c.writers(rm).count(), 2);
        assert_eq!(c.tensors[c.tensor_id("Q").unwrap()].kind, TensorKind::Input);
        assert_eq!(
            c.tensors[c.tensor_id("AV").unwrap()].kind,
            TensorKind::Output
        );
        assert_eq!(
            c.tensors[c.tensor_id("SLN").unwrap()].kind,
            TensorKind::Intermediate
        );
        let m = c.rank_id("M").unwrap();
        assert_eq!(
            c.ranks[m].parts,
            vec![c.rank_id("M1").unwrap(), c.rank_id("M0").unwrap()]
        );
        assert_eq!(c.stops.len(), 1);
        assert_eq!(c.broadcast.len(), 2);
    }

    #[test]
    fn evaluates_sizes_with_overrides() {
        let c = one_pass();
        let env = c.with_params(&[("seq".into(), 4096)]).unwrap();
        assert_eq!(env.size(c.rank_id("M1").unwrap()), 16);
        assert_eq!(env.size(c.rank_id("P").unwrap()), 4096);
        let err = c.with_params(&[("sequence".into(), 4096)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown parameter `sequence`; the parameters are: seq, q_len, kv_len, batch, heads, head_dim, kv_tile"
        );
        // A ragged length: four M0 tiles, the last holding 232 keys and 24 of padding.
        let ragged = rank_sizes(&c, &[("seq".into(), 1000)]).unwrap();
        assert_eq!(ragged[c.rank_id("M1").unwrap()], 4);
        assert_eq!(partition_cover(1000, &[4, 256]), Ok(24));
        // The partition invariant: no tile without a point of the rank, and no point without a tile.
        assert_eq!(
            partition_cover(1000, &[5, 256]),
            Err(CoverError::WholeTile {
                product: 1280,
                tile: 256
            })
        );
        assert_eq!(
            partition_cover(1000, &[3, 256]),
            Err(CoverError::Short { product: 768 })
        );
        assert_eq!(partition_cover(1024, &[4, 256]), Ok(0));
        assert!(rank_sizes(&c, &[("heads".into(), 0)]).is_err());
    }

    #[test]
    fn query_and_key_lengths_follow_seq_unless_set() {
        let c = one_pass();
        let (p, m) = (c.rank_id("P").unwrap(), c.rank_id("M").unwrap());
        // Only `seq`: both lengths follow it, and reports leave them out.
        let env = c.with_params(&[("seq".into(), 4096)]).unwrap();
        assert_eq!((env.size(p), env.size(m)), (4096, 4096));
        assert_eq!(env.followed, vec!["q_len", "kv_len"]);
        assert!(!env.reported_params().contains_key("q_len"));
        // Set apart, in either order relative to `seq`: the set value wins, the other still follows `seq`.
        let env = c
            .with_params(&[("q_len".into(), 1), ("seq".into(), 2048)])
            .unwrap();
        assert_eq!((env.size(p), env.size(m)), (1, 2048));
        assert_eq!(env.followed, vec!["kv_len"]);
        assert_eq!(env.reported_params().get("q_len"), Some(&1));
        // Both set equal to `seq` give the sizes `seq` alone gives.
        let both = c
            .with_params(&[("q_len".into(), 4096), ("kv_len".into(), 4096)])
            .unwrap();
        assert_eq!(both.sizes, rank_sizes(&c, &[("seq".into(), 4096)]).unwrap());
    }

    #[test]
    fn models_supply_cascade_params() {
        let text = include_str!("../../workloads/models/xlm.ron");
        let m = load_model(&SourceFile::new("xlm.ron", text)).unwrap();
        let c = one_pass();
        let o = m.overrides_for(&c);
        assert!(o.iter().any(|(n, v)| n == "head_dim" && *v == 128));
        assert!(o.iter().all(|(n, _)| n != "ffn"));
        assert_eq!(
            c.with_params(&o).unwrap().size(c.rank_id("E").unwrap()),
            128
        );
    }

    #[test]
    fn never_panics_on_hostile_sizes() {
        let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        let text = format!(
            "Cascade(name: \"x\", ranks: {{ \"M\": \"{deep}\" }}, einsums: r#\"X[m] = {}1\"#)",
            "- ".repeat(5000)
        );
        assert!(load(&SourceFile::new("x.ron", text)).is_err());
        let chain = vec!["A[m]"; 5000].join(" + ");
        let text = format!("Cascade(name: \"x\", ranks: {{ \"M\": \"4\" }}, einsums: r#\"input A[m]\nX[m] = {chain}\"#)");
        assert!(load(&SourceFile::new("x.ron", text)).is_err());
    }
}
