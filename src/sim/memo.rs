//! Runs that differ only in what they count (an energy table swapped for a what-if, a price changed) have the same
//! schedule: the engine reads a program's servers, loops, windows, buffer and templates' timing fields, never its
//! energy actions or traffic. [`simulate`] keys a bounded, process-wide memo by exactly those fields (and the
//! options), so such runs simulate once. The key is every one of those fields, encoded without loss (not a
//! hash), so two programs share a result only when the engine could not tell them apart.
//!
//! One field is left out of the key: each stage's free buffer space. A sweep over buffer sizes maps to the same
//! tiles once the largest tile fits, and a run in which no load waited for room runs the same with any free space
//! that leaves every grant and every space-consuming skip as it was. The engine says how little space that is
//! ([`super::BufferUse`]), and a remembered result is reused only for free space in that range (or equal to its
//! own, when the space decided something).

use super::{BufferUse, SimError, SimOptions, SimResult};
use crate::mapping::{Program, TemplateKind};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Entries kept before the memo is cleared: a reproduction's what-if variants repeat a few hundred schedules,
/// a sweep's buffer sizes repeat theirs up to a few thousand points apart (`benches/sweep-10k.ron` simulates
/// about 4,900 schedules; at 4,096 it cleared the memo once and simulated a tenth more). An entry is a few KiB of
/// key bytes, so this is some tens of MiB at most.
const CAPACITY: usize = 8192;

/// Results by timing key, each with the free space of every stage it holds for.
#[derive(Default)]
struct Memo {
    by_key: HashMap<Vec<u8>, Vec<(Vec<BufferUse>, SimResult)>>,
    entries: usize,
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(Memo::default()))
}

/// Everything [`super::simulate`] reads of `p` under `opts`, except each stage's free buffer space, encoded
/// without loss: every field in a fixed order, numbers as 8 bytes, strings and lists after their length, so two
/// programs have equal keys only when every field is equal. (Bytes rather than formatted text: a generation
/// simulates about a thousand small programs, and formatting their keys was a twentieth of its time.)
fn timing_key(p: &Program, opts: SimOptions) -> Vec<u8> {
    let mut k = Key(Vec::with_capacity(1024));
    k.num(opts.extrapolate as u64);
    k.num(opts.budget);
    k.num(p.servers.len() as u64);
    for s in &p.servers {
        k.text(&s.name);
        k.num(s.latency);
        k.num(s.is_memory as u64);
    }
    k.num(p.stages.len() as u64);
    for st in &p.stages {
        k.text(&st.name);
        k.num(st.loops.len() as u64);
        for l in &st.loops {
            k.text(&l.index);
            k.num(l.trip);
        }
        k.num(st.window as u64);
        k.num(st.in_order as u64);
        k.num(st.resident);
        k.text(&st.buffer);
        k.num(st.templates.len() as u64);
        for t in &st.templates {
            let (tag, id) = match t.kind {
                TemplateKind::Compute(e) => (0, e),
                TemplateKind::Load(x) => (1, x),
                TemplateKind::Store(x) => (2, x),
            };
            k.num(tag);
            k.num(id as u64);
            k.num(t.server as u64);
            k.flags(&t.loops);
            k.flags(&t.at_last);
            k.num(t.work);
            k.num(t.deps.len() as u64);
            for d in &t.deps {
                k.num(d.template as u64);
                k.opt(d.carried);
            }
            k.num(t.alloc);
            k.opt(t.keep);
            k.num(t.consumers);
        }
    }
    k.0
}

/// A timing key under construction (see [`timing_key`]).
struct Key(Vec<u8>);

impl Key {
    fn num(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn text(&mut self, s: &str) {
        self.num(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn flags(&mut self, v: &[bool]) {
        self.num(v.len() as u64);
        self.0.extend(v.iter().map(|&b| b as u8));
    }
    fn opt(&mut self, v: Option<usize>) {
        self.num(v.map_or(0, |x| x as u64 + 1));
    }
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
