//! Progress of long computations (sweeps, reproductions), reported to an observer the caller supplies. The
//! library only counts; drawing (the CLI's progress bar) is the caller's business, so the core does no I/O.

/// Observes a computation made of independent units of work (runs). Points run in parallel on rayon's threads,
/// so an observer must be `Sync`, and `inc` may be called from several threads at once, in any order.
pub trait Progress: Sync {
    /// The computation has `total` units of work in all. Called once, before any `inc`.
    fn start(&self, total: u64) {
        let _ = total;
    }

    /// One more unit of work is finished.
    fn inc(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
