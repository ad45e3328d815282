//! Shipped arch and workload files, embedded in the binary (see `build.rs`) so that `cargo run` works from any
//! directory. Lookups return [`SourceFile`]s named by their repository path, so diagnostics point at real files.

use crate::diag::SourceFile;

include!(concat!(env!("OUT_DIR"), "/library.rs"));

/// What a shipped file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Arch,
    /// A GPU file (`arch/gpu/*.ron`): an SM's units, the chip, and kernels as bindings.
    Gpu,
    Energy,
    Cascade,
    Model,
    Layer,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Arch => "arch",
            Kind::Gpu => "gpu",
            Kind::Energy => "energy",
            Kind::Cascade => "cascade",
            Kind::Model => "model",
            Kind::Layer => "layer",
        }
    }
}

/// A shipped file by kind and name.
pub fn get(kind: Kind, name: &str) -> Option<SourceFile> {
    FILES
        .iter()
        .find(|f| f.0 == kind.tag() && f.1 == name)
        .map(|f| SourceFile::new(f.2, f.3))
}

/// Names of the shipped files of a kind, sorted.
pub fn names(kind: Kind) -> Vec<&'static str> {
    FILES
        .iter()
        .filter(|f| f.0 == kind.tag())
        .map(|f| f.1)
        .collect()
}

/// Whether a name given for a file (a binding's `cascade`, `--cascade`) is a path rather than a shipped name:
/// it ends in `.ron` or contains `/`. Shipped names are file stems, so they never look like paths, and a path
/// is never mistaken for a shipped file. The caller that reads files decides what a path is relative to.
pub fn is_path(name: &str) -> bool {
    name.ends_with(".ron") || name.contains('/')
}
