//! Runs that differ only in what they count (an energy table swapped for a what-if, a price changed) have the same
//! schedule: the engine reads a program's servers, loops, windows, buffer and templates' timing fields, never its
//! energy actions or traffic. [`simulate`] keys a bounded, process-wide memo by exactly those fields (and the
//! options), so such runs simulate once. The key is the full text of those fields, not a hash, so two programs
//! share a result only when the engine could not tell them apart.

use super::{SimError, SimOptions, SimResult};
use crate::mapping::Program;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Entries kept before the memo is cleared (a sweep's points rarely repeat a schedule; a reproduction's what-if
/// variants do, a few hundred of them).
const CAPACITY: usize = 4096;

fn memo() -> &'static Mutex<HashMap<String, SimResult>> {
    static MEMO: OnceLock<Mutex<HashMap<String, SimResult>>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Everything [`super::simulate`] reads of `p` under `opts`, as text.
fn timing_key(p: &Program, opts: SimOptions) -> String {
    let mut k = String::new();
    let _ = write!(k, "{} {};", opts.extrapolate, opts.budget);
    for s in &p.servers {
        let _ = write!(k, "S{} {} {};", s.name, s.latency, s.is_memory);
    }
    for st in &p.stages {
        let _ = write!(
            k,
            "T{} {:?} {} {} {} {} {};",
            st.name, st.loops, st.window, st.in_order, st.buffer_free, st.resident, st.buffer
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

/// [`super::simulate`], remembered by timing. Errors are not remembered (they are cheap and rare).
pub fn simulate(p: &Program, opts: SimOptions) -> Result<SimResult, SimError> {
    let key = timing_key(p, opts);
    if let Some(r) = memo().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(r);
    }
    let r = super::simulate(p, opts)?;
    if let Ok(mut m) = memo().lock() {
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(key, r.clone());
    }
    Ok(r)
}
