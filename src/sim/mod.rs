//! The cycle-approximate engine: tile tasks on servers, event by event, with periodic steady-state extrapolation.
//!
//! A stage's tile loops are walked in order; each step (one innermost iteration) admits the instances of every
//! template issued there, each after the templates it depends on in the same iteration (loads first where the
//! dependencies allow). A unit (or memory channel) runs one task at a time and always starts the oldest ready
//! one (program order): that is list scheduling, and with several tiles in flight it is the fine-grained
//! interleaving of FuseMax's binding. A task's result reaches a task on another server after the producer's
//! fill/drain latency. Loads allocate their tile in the buffer and wait when it is full; the allocation is freed
//! when the tile's last consumer finishes; a load that allocates nothing (a tile streamed past the buffer) waits
//! for no consumer. Stages run one after another.
//!
//! **Extrapolation.** At the start of an iteration of a loop, the engine may take a snapshot of everything that can
//! influence the future, expressed relative to the current time and step: live tasks, server availability, buffer
//! occupancy, tiles in flight. Snapshots of the current execution of each loop are kept by key, so when the one at
//! iteration `i` equals the one at iteration `i - k`, the loop is periodic with period `k` for any `k`, and the
//! engine skips whole periods, shifting time by the measured period and the step counter by the steps in it. All
//! times are integer ticks, so extrapolated and fully simulated runs give identical results (tested). Snapshots
//! are taken at power-of-two strides that keep their cost a fraction of the simulation's.
//!
//! **Budget.** A run simulates at most [`SimOptions::budget`] instances event by event; a stage that has found no
//! period by then is bracketed ([`Estimate`]) instead of simulated to the end. Time is 128-bit ([`Tick`]) and trip
//! products are checked, so no count wraps.

mod engine;
pub mod memo;

pub use engine::{
    simulate, simulate_tracked, BufferUse, Estimate, SimError, SimOptions, SimResult, StageTime,
    Tick, DEFAULT_BUDGET,
};
