//! Whole-model generation (src/generation.rs) on SpAtten: GPT-2 medium, 24 layers, 32 tokens over a 1K context.

#[path = "fixtures/common.rs"]
mod common;

use einsim::diag::SourceFile;
use einsim::generation::{run_generation, Generation, Schedule};
use einsim::library::{self, Kind};
use einsim::sim::SimOptions;
use einsim::trace::Trace;

/// `model` (`layers` of `layer`) on SpAtten: `steps` steps after `context` tokens, pruned by `trace` or the
/// token schedule.
fn run_model(
    (model, layer, layers): (&str, &str, i64),
    steps: i64,
    context: i64,
    sets: &[&str],
    trace: Option<Trace>,
    tokens: Option<Schedule>,
) -> einsim::generation::GenerationReport {
    let arch = library::get(Kind::Arch, "spatten").expect("spatten is shipped");
    let model = library::get(Kind::Model, model).expect("the model is shipped");
    let layer = library::get(Kind::Layer, layer).expect("the layer is shipped");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let gen = Generation {
        layers,
        steps,
        context,
        tokens,
        heads: None,
        trace,
    };
    run_generation(
        &layer,
        &arch,
        &model,
        &sets,
        &gen,
        &library::get,
        SimOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// GPT-2 medium generating `steps` tokens after 1024 on SpAtten, pruned by `trace` or the schedules.
fn generation(
    steps: i64,
    sets: &[&str],
    trace: Option<Trace>,
    tokens: Option<Schedule>,
) -> einsim::generation::GenerationReport {
    let gpt2 = ("gpt2-medium-gen", "spatten-decode", 24);
    run_model(gpt2, steps, 1024, sets, trace, tokens)
}

fn gpt2_medium(
    steps: i64,
    sets: &[&str],
    tokens: Option<Schedule>,
) -> einsim::generation::GenerationReport {
    generation(steps, sets, None, tokens)
}

#[test]
fn generation_is_memory_bound_and_grows_with_the_cache() {
    let one = gpt2_medium(1, &[], None);
    let two = gpt2_medium(2, &[], None);
    // Every step fetches every weight and the whole KV cache again: the second step costs at least the first.
    assert!(two.cycles >= 2 * one.cycles);
    assert!(two.traffic_bytes["hbm"] > 2 * one.traffic_bytes["hbm"]);
    // Memory-bound: a step cannot beat the 512 B/cycle HBM roof, and spends most of its time on DRAM.
    let per_cycle = one.traffic_bytes["hbm"] as f64 / one.cycles as f64;
    assert!(per_cycle <= 512.0, "{per_cycle} B/cycle");
    assert!(per_cycle >= 0.5 * 512.0, "{per_cycle} B/cycle");
}

#[test]
fn token_pruning_schedule_lowers_traffic() {
    let dense = gpt2_medium(2, &[], None);
    let s = Schedule {
        front_pct: 15,
        start: 20,
        end: 80,
    };
    let pruned = gpt2_medium(2, &["v_keep=30"], Some(s));
    assert!(pruned.traffic_bytes["hbm"] < dense.traffic_bytes["hbm"]);
    assert!(pruned.cycles < dense.cycles);
}

#[test]
fn an_unpruning_schedule_is_an_error() {
    let arch = library::get(Kind::Arch, "spatten").unwrap();
    let model = library::get(Kind::Model, "gpt2-medium-gen").unwrap();
    let layer = library::get(Kind::Layer, "spatten-decode").unwrap();
    let gen = Generation {
        layers: 24,
        steps: 1,
        context: 1024,
        tokens: Some(Schedule {
            front_pct: 15,
            start: 60,
            end: 20,
        }),
        heads: None,
        trace: None,
    };
    let e = run_generation(
        &layer,
        &arch,
        &model,
        &[],
        &gen,
        &library::get,
        SimOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("un-prunes"), "{e}");
}

#[test]
fn gpt2_medium_32_tokens_over_1k_runs_with_schedules() {
    // The benchmark's workload (benches/spatten_generation.rs); its speed is measured there, not here.
    let t = std::time::Instant::now();
    let r = gpt2_medium(
        32,
        &["v_keep=30", "k_bits=12", "v_bits=8"],
        Some(Schedule {
            front_pct: 15,
            start: 30,
            end: 62,
        }),
    );
    let wall = t.elapsed().as_secs_f64() * 1e3;
    let dense = gpt2_medium(32, &[], None);
    eprintln!(
        "gpt2-medium 32 tokens: {} cycles, {:.3} ms simulated, {} B HBM, {} op runs, {:.0} ms wall; dense {} cycles, {} B",
        r.cycles,
        r.seconds * 1e3,
        r.traffic_bytes["hbm"],
        r.simulated,
        wall,
        dense.cycles,
        dense.traffic_bytes["hbm"]
    );
    assert!(r.cycles < dense.cycles);
}

/// The files of a corpus directory, in name order; at least `min` of them (a corpus that lost its files fails).
fn corpus(dir: &str, min: usize) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(common::root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= min, "{dir}: {} files", paths.len());
    paths
}

/// The bad-trace corpus (`tests/bad_trace/`, one snapshot each): every file fails to parse or fails its check
/// against 2 layers of 2 heads after 16 cached tokens, with each problem located.
#[test]
fn bad_traces_are_reported() {
    for p in corpus("tests/bad_trace", 7) {
        let name = format!("bad_trace/{}", p.file_name().unwrap().to_string_lossy());
        let file = SourceFile::new(name.clone(), std::fs::read_to_string(&p).unwrap());
        let d = match Trace::parse(&file) {
            Err(d) => d,
            Ok(t) => t.check(2, 2, 16).expect_err(&name),
        };
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("bad_trace_{stem}"), d.render());
    }
}

/// A trace in which every head fetched what the model's kept percentages give is the same run as the
/// percentages: the trace path changes where the numbers come from, not what they cost.
#[test]
fn a_trace_of_the_percentages_equals_the_percentages() {
    let (layers, heads, steps, context) = (24, 16, 3, 1024);
    let mut csv = String::from("step,layer,head,keys,values,k_bits,v_bits,lsb_refetch\n");
    for step in 0..steps {
        let keys = (context + step) * 60 / 100;
        let values = (keys * 30 / 100).max(1);
        for layer in 0..layers {
            for head in 0..heads {
                csv += &format!("{step},{layer},{head},{keys},{values},12,8,0\n");
            }
        }
    }
    let trace = Trace::parse(&SourceFile::new("uniform.csv", csv)).unwrap();
    let with = generation(steps, &[], Some(trace), None);
    let without = generation(
        steps,
        &["token_keep=60", "v_keep=30", "k_bits=12", "v_bits=8"],
        None,
        None,
    );
    assert_eq!(with.cycles, without.cycles);
    assert_eq!(with.traffic_bytes, without.traffic_bytes);
    assert_eq!(with.energy_pj, without.energy_pj);
}

/// An LSB refetch fetches the refetching heads' 4-bit Q and K LSBs from their own DRAM region and recomputes:
/// it adds exactly keys x head_dim x 4 bits (plus the query's head_dim x 4 bits) per refetching head to the DRAM
/// reads, and adds time.
#[test]
fn an_lsb_refetch_costs_its_bits_and_time() {
    let row = |lsb: u8| {
        let mut csv = String::from("step,layer,head,keys,values,k_bits,v_bits,lsb_refetch\n");
        for layer in 0..24 {
            for head in 0..16 {
                let r = if layer == 5 && head < 3 { lsb } else { 0 };
                csv += &format!("0,{layer},{head},800,240,8,8,{r}\n");
            }
        }
        Trace::parse(&SourceFile::new("t.csv", csv)).unwrap()
    };
    let plain = generation(1, &[], Some(row(0)), None);
    let refetch = generation(1, &[], Some(row(1)), None);
    let extra = refetch.traffic_bytes["hbm"] - plain.traffic_bytes["hbm"];
    assert_eq!(extra, 3 * (800 * 64 + 64) * 4 / 8);
    assert!(refetch.cycles > plain.cycles);
}

/// `einsim generate` runs the shipped synthetic trace, and a trace that breaks the model exits 1 with the row
/// located.
#[test]
fn generate_runs_a_trace_and_locates_a_bad_one() {
    let ok = common::einsim(&[
        "generate",
        "--workload",
        "gpt2-medium-gen",
        "--trace",
        "workloads/traces/gpt2-medium-synthetic.csv",
        "--format",
        "json",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["steps"], 32);
    let bad = common::einsim(&[
        "generate",
        "--workload",
        "gpt2-small-gen",
        "--trace",
        "workloads/traces/gpt2-medium-synthetic.csv",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("but the model has 12 layers"), "{err}");
}

/// A BERT summarization stack (layer `spatten-encode`, one step over the sentence): cascade token pruning shrinks
/// every later layer's work, FFN included, so a pruning schedule cuts both time and DRAM traffic, and a layer
/// keeping fewer tokens costs less than one keeping all.
#[test]
fn bert_summarization_shrinks_with_token_pruning() {
    let bert = ("bert-base-sum", "spatten-encode", 12);
    let run = |tokens: Option<Schedule>| run_model(bert, 1, 384, &[], None, tokens);
    let dense = run(None);
    let pruned = run(Some(Schedule {
        front_pct: 15,
        start: 20,
        end: 40,
    }));
    assert!(pruned.cycles < dense.cycles);
    assert!(pruned.ops < dense.ops);
    assert!(pruned.traffic_bytes["hbm"] < dense.traffic_bytes["hbm"]);
}

/// The bad-layer corpus (`tests/bad_layer/`, one snapshot each): every name a layer uses is resolved before it
/// runs (cascades, their parameters, names in expressions against the model's parameters and the layer's vars),
/// every problem located, all of them reported at once. Checked against GPT-2 medium's parameters, as a generation
/// run on that model checks them; the same errors come from `einsim check` and from a run.
#[test]
fn bad_layers_are_reported() {
    let model = library::get(Kind::Model, "gpt2-medium-gen").unwrap();
    let params = einsim::cascade::load_model(&model)
        .unwrap()
        .params
        .into_iter()
        .map(|p| p.name)
        .collect();
    for p in corpus("tests/bad_layer", 2) {
        let name = format!("bad_layer/{}", p.file_name().unwrap().to_string_lossy());
        let file = SourceFile::new(name.clone(), std::fs::read_to_string(&p).unwrap());
        let layer = einsim::layer::load_layer(&file).expect(&name);
        let d = einsim::layer::check_layer(&file, &layer, &params, &library::get).expect_err(&name);
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("bad_layer_{stem}"), d.render());
    }
}

/// SpAtten's importance scores run across heads ([P] §III-A, §III-B): the token importance TS sums over heads and
/// queries, so the token top-k TK runs once per batch item (a layer), not once per head, on the scores carried from
/// earlier layers plus this one's (CT); each head's importance HS sums the magnitudes of its outputs, one point per
/// output element.
#[test]
fn spatten_importance_sums_across_heads() {
    let arch = common::shipped(Kind::Arch, "spatten");
    let sets = ["batch=2", "heads=12", "head_dim=64", "seq=256"];
    let r = common::run_text(
        &arch,
        None,
        Some("spatten-attention"),
        &sets,
        &library::get,
        common::EXTRAPOLATE,
    )
    .unwrap();
    let e = |n: &str| r.einsums.iter().find(|e| e.name == n).unwrap();
    assert_eq!(e("TK").tasks, 2);
    assert_eq!(e("TS").points, (2 * 12 * 256 * 256) as f64);
    assert_eq!(e("HS").points, (2 * 12 * 64 * 256) as f64);
    // The importance carried from earlier layers is added once per token a layer, before the selection.
    assert_eq!(e("CT").points, (2 * 256) as f64);
    assert!(r.energy_pj.by_component["hscore"] > 0.0);
}
