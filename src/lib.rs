//! einsim: a cycle-approximate simulator for attention accelerators.
//!
//! Phases, each a module with a typed boundary (see ARCHITECTURE.md):
//! parse ([`cascade`], [`arch`]) → analysis ([`passes`]) → binding check and mapping ([`binding`], [`mapping`]) →
//! simulation ([`sim`]) → report ([`report`]) and plots ([`plot`]). The library reads only embedded text
//! ([`library`]); the only writers are `reproduce::write` and `plot::png`, which the CLI calls.

/// mimalloc instead of the system allocator, for every binary linking einsim (the CLI, tests and benchmarks alike,
/// so benchmarks time what users run). A run maps, simulates and reports through many small allocations (names,
/// tile templates, snapshot keys, report maps); under glibc's allocator a third of a SpAtten generation's
/// instructions were malloc and free (callgrind, `einsim generate --trace workloads/traces/gpt2-medium-synthetic.csv`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod arch;
pub mod binding;
pub mod cascade;
pub mod dataflow;
pub mod diag;
pub mod divisors;
pub mod expr;
pub mod generation;
pub mod gpu;
pub mod layer;
pub mod library;
pub mod mapping;
pub mod ops;
pub mod passes;
pub mod plot;
pub mod progress;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod sim;
pub mod sweep;
pub mod topk;
pub mod trace;
