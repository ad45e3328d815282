//! The unit kinds of an SM, each in its own module with its cost model. A GPU file instantiates them by name;
//! each instance is one server of the engine, which never sees the kind.

pub mod issue;
pub mod memory;
pub mod pipe;
pub mod tensor_core;

pub use issue::Issue;
pub use memory::Memory;
pub use pipe::Pipe;
pub use tensor_core::{MmaCost, MmaShape, TensorCore};

#[derive(Clone, Debug, serde::Serialize)]
pub enum Kind {
    TensorCore(TensorCore),
    Pipe(Pipe),
    Issue(Issue),
    Memory(Memory),
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Unit {
    pub name: String,
    pub kind: Kind,
    /// Cycles from a task's last issue to its result reaching another unit.
    pub latency: f64,
}
