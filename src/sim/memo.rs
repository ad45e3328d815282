//! Runs that differ only in what they count (an energy table swapped for a what-if, a price changed) have the same
//! schedule: the engine reads a program's servers, loops, windows, buffer and templates' timing fields, never its
//! energy actions or traffic. [`simulate`] keys a bounded, process-wide memo by exactly those fields (and the
//! options), so such runs simulate once. The key is the full text of those fields, not a hash, so two programs
//! share a result only when the engine could not tell them apart.
//!
//! One field is left out of the key: each stage's free buffer space. A sweep over buffer sizes maps to the same
//! tiles once the largest tile fits, and a run in which no load waited for room runs the same with any free space
//! that leaves every grant and every space-consuming skip as it was. The engine says how little space that is
//! ([`super::BufferUse`]), and a remembered result is reused only for free space in that range (or equal to its
//! own, when the space decided something).

use super::{BufferUse, SimError, SimOptions, SimResult};
use crate::mapping::Program;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Entries kept before the memo is cleared: a reproduction's what-if variants repeat a few hundred schedules,
/// a sweep's buffer sizes repeat theirs up to a few thousand points apart (`benches/sweep-10k.ron` simulates
/// about 4,900 schedules; at 4,096 it cleared the memo once and simulated a tenth more). An entry is a few KiB of
/// key text, so this is some tens of MiB at most.
const CAPACITY: usize = 8192;

/// Results by timing key, each with the free space of every stage it holds for.
#[derive(Default)]
struct Memo {
    by_key: HashMap<String, Vec<(Vec<BufferUse>, SimResult)>>,
    entries: usize,
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(Memo::default()))
}

/// Everything [`super::simulate`] reads of `p` under `opts`, as text, except each stage's free buffer space.
fn timing_key(p: &Program, opts: SimOptions) -> String {
    let mut k = String::new();
    let _ = write!(k, "{} {};", opts.extrapolate, opts.budget);
    for s in &p.servers {
        let _ = write!(k, "S{} {} {};", s.name, s.latency, s.is_memory);
    }
    for st in &p.stages {
        let _ = write!(
            k,
            "T{} {:?} {} {} {} {};",
            st.name, st.loops, st.window, st.in_order, st.resident, st.buffer
        );
        for t in &st.templates {
            let _ = write!(
                k,
                "{:?} {} {:?} {:?} {} {:?} {} {:?} {};",
                t.kind, t.server, t.loops, t.at_last, t.work, t.deps, t.alloc, t.keep, t.consumers
            );
        }
    }
    k
}

/// Whether a result remembered with `uses` holds for `p`'s free space, stage by stage.
fn holds(uses: &[BufferUse], p: &Program) -> bool {
    uses.len() == p.stages.len()
        && uses.iter().zip(&p.stages).all(|(u, st)| match u.least {
            Some(least) => st.buffer_free >= least,
            None => st.buffer_free == u.free,
        })
}

/// [`super::simulate`], remembered by timing. Errors are not remembered (they are cheap and rare).
pub fn simulate(p: &Program, opts: SimOptions) -> Result<SimResult, SimError> {
    let key = timing_key(p, opts);
    let found = memo().lock().ok().and_then(|m| {
        m.by_key
            .get(&key)?
            .iter()
            .find(|(uses, _)| holds(uses, p))
            .map(|(_, r)| r.clone())
    });
    if let Some(r) = found {
        return Ok(r);
    }
    let (r, uses) = super::simulate_tracked(p, opts)?;
    if let Ok(mut m) = memo().lock() {
        if m.entries >= CAPACITY {
            m.by_key.clear();
            m.entries = 0;
        }
        m.entries += 1;
        m.by_key.entry(key).or_default().push((uses, r.clone()));
    }
    Ok(r)
}
