use crate::mapping::{Program, StageProgram};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hash for the small integer keys of the live-instance table (SipHash's DoS resistance buys
/// nothing here and costs a third of the run time).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type FastHash = BuildHasherDefault<KeyHasher>;

type Tick = u64;

#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Skip periodic steady states (exact); off = simulate every tile.
    pub extrapolate: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { extrapolate: true }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageTime {
    pub name: String,
    pub ticks: Tick,
    /// Steps (innermost tile iterations) in the stage, and how many were simulated event by event.
    pub steps: u64,
    pub simulated_steps: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimResult {
    pub ticks: Tick,
    pub stages: Vec<StageTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimError(pub String);

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SimError {}

/// Run every stage back to back.
pub fn simulate(p: &Program, opts: SimOptions) -> Result<SimResult, SimError> {
    let mut stages = Vec::new();
    let mut total = 0;
    for st in &p.stages {
        let t = Stage::new(p, st, opts).run()?;
        total += t.ticks;
        stages.push(t);
    }
    Ok(SimResult {
        ticks: total,
        stages,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Waiting,
    AllocWait,
    Ready,
    Running,
    Done,
}

#[derive(Clone, Debug)]
struct Inst {
    tmpl: usize,
    key: u64,
    step: u64,
    seq: u64,
    state: State,
    deps_left: u32,
    ready_at: Tick,
    end: Tick,
    dependents: Vec<usize>,
    /// Load instances this task reads, and whether it is their last reader (which releases the tile).
    loads: Vec<(usize, bool)>,
    /// For a load: last readers still to finish before its tile is released.
    consumers_left: u64,
    /// For a load: the step of its last reader (it holds the buffer until then).
    free_step: u64,
    alloc: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    // Order within one tick does not matter (a batch is processed before any dispatch); kept total for determinism.
    Ready(usize),
    Done(usize),
    StepDone(u64),
    /// A server's occupancy ends: no state changes, but the loop wakes at this time so the server dispatches.
    Free(usize),
}

struct StepRec {
    step: u64,
    left: u32,
    complete_at: Tick,
}

struct Snap {
    iter: u64,
    key: Vec<i64>,
    now: Tick,
    step: u64,
    seq: u64,
}

struct Stage<'a> {
    p: &'a Program,
    st: &'a StageProgram,
    opts: SimOptions,
    n: usize,
    trips: Vec<u64>,
    strides: Vec<Vec<u64>>,
    /// Templates in admission order within a step (loads first, so consumers find them).
    admit_order: Vec<usize>,
    /// Whether a template's instances hold their tile in the window: compute does; transfers do not (a store
    /// drains behind the tile, a load is gated by its consumers and the buffer).
    counts: Vec<bool>,
    /// The longest server latency: after it, a finished task's result has reached every consumer.
    max_latency: Tick,
    insts: Vec<Option<Inst>>,
    free_ids: Vec<usize>,
    live: HashMap<(usize, u64), usize, FastHash>,
    /// Live instances by sequence number (program order), for canonical snapshots.
    order: BTreeMap<u64, usize>,
    events: BinaryHeap<Reverse<(Tick, Ev)>>,
    server_free: Vec<Tick>,
    ready: Vec<BTreeSet<(u64, usize)>>,
    alloc_wait: BTreeSet<(u64, usize)>,
    buffer_free: u64,
    inflight: VecDeque<StepRec>,
    now: Tick,
    seq: u64,
    coords: Vec<u64>,
    step: u64,
    total_steps: u64,
    simulated: u64,
    last_time: Tick,
    history: Vec<Vec<Snap>>,
    /// Step at which the current execution of each loop began.
    loop_start: Vec<u64>,
}

impl<'a> Stage<'a> {
    fn new(p: &'a Program, st: &'a StageProgram, opts: SimOptions) -> Self {
        let n = st.loops.len();
        let trips: Vec<u64> = st.loops.iter().map(|l| l.trip).collect();
        let strides = st
            .templates
            .iter()
            .map(|t| {
                let mut s = vec![0; n];
                let mut acc = 1u64;
                for j in (0..n).rev() {
                    if t.loops[j] {
                        s[j] = acc;
                        acc = acc.saturating_mul(trips[j]);
                    }
                }
                s
            })
            .collect();
        let mut admit_order: Vec<usize> = (0..st.templates.len()).collect();
        admit_order.sort_by_key(|&i| {
            (
                !matches!(st.templates[i].kind, crate::mapping::TemplateKind::Load(_)),
                i,
            )
        });
        let counts = st
            .templates
            .iter()
            .map(|t| !p.servers[t.server].is_memory)
            .collect();
        Stage {
            p,
            st,
            counts,
            max_latency: p.servers.iter().map(|s| s.latency).max().unwrap_or(0),
            opts,
            n,
            total_steps: trips.iter().product(),
            trips,
            strides,
            admit_order,
            insts: Vec::new(),
            free_ids: Vec::new(),
            live: HashMap::default(),
            order: BTreeMap::new(),
            events: BinaryHeap::new(),
            server_free: vec![0; p.servers.len()],
            ready: vec![BTreeSet::new(); p.servers.len()],
            alloc_wait: BTreeSet::new(),
            buffer_free: st.buffer_free,
            inflight: VecDeque::new(),
            now: 0,
            seq: 0,
            coords: vec![0; n],
            step: 0,
            simulated: 0,
            last_time: 0,
            history: (0..n).map(|_| Vec::new()).collect(),
            loop_start: vec![0; n],
        }
    }

    fn run(mut self) -> Result<StageTime, SimError> {
        loop {
            while self.step < self.total_steps && (self.inflight.len() as u32) < self.st.window {
                if self.opts.extrapolate {
                    self.try_extrapolate();
                }
                self.admit_step();
            }
            self.dispatch();
            let Some(&Reverse((t, _))) = self.events.peek() else {
                if self.step >= self.total_steps && self.inflight.is_empty() {
                    break;
                }
                return Err(SimError(format!(
                    "stage `{}` deadlocked at step {} of {}: a tile cannot get room in `{}` ({} B free)",
                    self.st.name, self.step, self.total_steps, self.st.buffer, self.buffer_free
                )));
            };
            self.now = t;
            while let Some(&Reverse((t2, ev))) = self.events.peek() {
                if t2 != self.now {
                    break;
                }
                self.events.pop();
                self.handle(ev);
            }
        }
        Ok(StageTime {
            name: self.st.name.clone(),
            ticks: self.last_time,
            steps: self.total_steps,
            simulated_steps: self.simulated,
        })
    }

    fn latency(&self, producer: usize, consumer: usize) -> Tick {
        let ps = self.st.templates[producer].server;
        if ps == self.st.templates[consumer].server {
            0
        } else {
            self.p.servers[ps].latency
        }
    }

    fn key(&self, tmpl: usize, coords: &[u64]) -> u64 {
        (0..self.n).map(|j| coords[j] * self.strides[tmpl][j]).sum()
    }

    fn attaches(&self, tmpl: usize) -> bool {
        let t = &self.st.templates[tmpl];
        (0..self.n).all(|j| {
            t.loops[j] || self.coords[j] == if t.at_last[j] { self.trips[j] - 1 } else { 0 }
        })
    }

    fn admit_step(&mut self) {
        self.simulated += 1;
        let mut rec = StepRec {
            step: self.step,
            left: 0,
            complete_at: self.now,
        };
        for oi in 0..self.admit_order.len() {
            let ti = self.admit_order[oi];
            if !self.attaches(ti) {
                continue;
            }
            let t = &self.st.templates[ti];
            let key = self.key(ti, &self.coords);
            let inst_seq = self.seq;
            let id = self.alloc_id();
            let mut inst = Inst {
                tmpl: ti,
                key,
                step: self.step,
                seq: self.seq,
                state: State::Waiting,
                deps_left: 0,
                ready_at: self.now,
                end: 0,
                dependents: vec![],
                loads: vec![],
                consumers_left: t.consumers,
                free_step: self.last_use_step(ti),
                alloc: t.alloc,
            };
            self.seq += 1;
            for d in &t.deps {
                let mut pc = self.coords.clone();
                if let Some(j) = d.carried {
                    if pc[j] == 0 {
                        continue; // first iteration reads the initial value
                    }
                    pc[j] -= 1;
                }
                let pkey = self.key(d.template, &pc);
                let Some(&pid) = self.live.get(&(d.template, pkey)) else {
                    continue;
                };
                let lat = self.latency(d.template, ti);
                let producer = self.insts[pid].as_mut().expect("live instance");
                if self.st.templates[d.template].alloc > 0 {
                    let lt = &self.st.templates[d.template];
                    let last = (0..self.n)
                        .all(|j| !t.loops[j] || lt.loops[j] || self.coords[j] == self.trips[j] - 1);
                    inst.loads.push((pid, last));
                }
                if producer.state == State::Done {
                    inst.ready_at = inst.ready_at.max(producer.end + lat);
                } else {
                    producer.dependents.push(id);
                    inst.deps_left += 1;
                }
            }
            if self.counts[ti] {
                rec.left += 1;
            }
            let ready_now = inst.deps_left == 0;
            let ready_at = inst.ready_at;
            self.insts[id] = Some(inst);
            self.live.insert((ti, key), id);
            self.order.insert(inst_seq, id);
            if ready_now {
                self.events.push(Reverse((ready_at, Ev::Ready(id))));
            }
        }
        if rec.left == 0 {
            self.events
                .push(Reverse((self.now, Ev::StepDone(self.step))));
        }
        self.inflight.push_back(rec);
        self.advance();
    }

    fn alloc_id(&mut self) -> usize {
        if let Some(i) = self.free_ids.pop() {
            i
        } else {
            self.insts.push(None);
            self.insts.len() - 1
        }
    }

    /// Odometer: next step's coordinates.
    fn advance(&mut self) {
        self.step += 1;
        for j in (0..self.n).rev() {
            self.coords[j] += 1;
            if self.coords[j] < self.trips[j] {
                for k in j + 1..self.n {
                    self.loop_start[k] = self.step;
                }
                return;
            }
            self.coords[j] = 0;
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Ready(id) => {
                let (alloc, seq) = {
                    let i = self.insts[id].as_ref().expect("live");
                    (i.alloc, i.seq)
                };
                if alloc > 0 {
                    if self.alloc_wait.is_empty() && self.buffer_free >= alloc {
                        self.buffer_free -= alloc;
                    } else {
                        self.insts[id].as_mut().expect("live").state = State::AllocWait;
                        self.alloc_wait.insert((seq, id));
                        return;
                    }
                }
                self.enqueue(id);
            }
            Ev::Free(server) => {
                let _ = server;
            }
            Ev::Done(id) => {
                let (tmpl, end, dependents, loads, step) = {
                    let i = self.insts[id].as_mut().expect("live");
                    i.state = State::Done;
                    (
                        i.tmpl,
                        i.end,
                        std::mem::take(&mut i.dependents),
                        std::mem::take(&mut i.loads),
                        i.step,
                    )
                };
                for d in dependents {
                    let lat = self.latency(tmpl, self.insts[d].as_ref().expect("live").tmpl);
                    let di = self.insts[d].as_mut().expect("live");
                    di.ready_at = di.ready_at.max(end + lat);
                    di.deps_left -= 1;
                    if di.deps_left == 0 {
                        let at = di.ready_at;
                        self.events.push(Reverse((at, Ev::Ready(d))));
                    }
                }
                for (l, last) in loads {
                    if !last {
                        continue;
                    }
                    let li = self.insts[l].as_mut().expect("live load");
                    li.consumers_left = li.consumers_left.saturating_sub(1);
                    if li.consumers_left == 0 {
                        self.buffer_free += li.alloc;
                        li.alloc = 0;
                    }
                }
                self.retry_allocs();
                let server_lat = self.p.servers[self.st.templates[tmpl].server].latency;
                let complete = end + server_lat;
                self.last_time = self.last_time.max(complete);
                let counted = self.counts[tmpl];
                if let Some(rec) = self.inflight.iter_mut().find(|r| counted && r.step == step) {
                    rec.complete_at = rec.complete_at.max(complete);
                    rec.left -= 1;
                    if rec.left == 0 {
                        let at = rec.complete_at;
                        self.events.push(Reverse((at, Ev::StepDone(step))));
                    }
                }
            }
            Ev::StepDone(step) => {
                self.inflight.retain(|r| r.step != step);
            }
        }
    }

    fn retry_allocs(&mut self) {
        while let Some(&(seq, id)) = self.alloc_wait.first() {
            let alloc = self.insts[id].as_ref().expect("live").alloc;
            if alloc > self.buffer_free {
                break;
            }
            self.buffer_free -= alloc;
            self.alloc_wait.remove(&(seq, id));
            self.enqueue(id);
        }
    }

    fn enqueue(&mut self, id: usize) {
        let i = self.insts[id].as_mut().expect("live");
        i.state = State::Ready;
        let server = self.st.templates[i.tmpl].server;
        self.ready[server].insert((i.seq, id));
    }

    fn dispatch(&mut self) {
        for s in 0..self.ready.len() {
            if self.server_free[s] > self.now {
                continue;
            }
            let Some((_, id)) = self.ready[s].pop_first() else {
                continue;
            };
            let work = {
                let i = self.insts[id].as_ref().expect("live");
                self.st.templates[i.tmpl].work
            };
            let end = self.now + work;
            let i = self.insts[id].as_mut().expect("live");
            i.state = State::Running;
            i.end = end;
            self.server_free[s] = end;
            self.events.push(Reverse((end, Ev::Done(id))));
            self.events.push(Reverse((end, Ev::Free(s))));
        }
    }

    /// Drop finished instances whose results every consumer has received and whose buffer tile is released:
    /// a later lookup that finds nothing treats the dependency as satisfied.
    fn prune(&mut self) {
        let now = self.now;
        let mut gone = Vec::new();
        for (&k, &id) in &self.live {
            let i = self.insts[id].as_ref().expect("live");
            let lat = self.p.servers[self.st.templates[i.tmpl].server].latency;
            if i.state == State::Done && i.end + lat <= now && i.consumers_left == 0 {
                gone.push((k, id));
            }
        }
        for (k, id) in gone {
            self.live.remove(&k);
            if let Some(i) = &self.insts[id] {
                self.order.remove(&i.seq);
            }
            self.insts[id] = None;
            self.free_ids.push(id);
        }
    }

    /// Steps per iteration of each loop (mixed-radix weights of the odometer).
    fn step_weight(&self, level: usize) -> u64 {
        self.trips[level + 1..].iter().product()
    }

    /// The step of a load's last reader: its own coordinates on the loops it is instantiated for, the last
    /// iteration of the loops inside its `keep` loop that it is not.
    fn last_use_step(&self, tmpl: usize) -> u64 {
        let t = &self.st.templates[tmpl];
        let keep = t.keep.unwrap_or(self.n);
        (0..self.n)
            .map(|j| {
                let c = if t.loops[j] || j <= keep {
                    self.coords[j]
                } else {
                    self.trips[j] - 1
                };
                c * self.step_weight(j)
            })
            .sum()
    }

    /// First step of the last iteration of the current execution of loop `level`: extrapolation never skips it.
    fn last_iteration_start(&self, level: usize) -> u64 {
        (0..level)
            .map(|j| self.coords[j] * self.step_weight(j))
            .sum::<u64>()
            + (self.trips[level] - 1) * self.step_weight(level)
    }

    /// A finished load whose tile stays in the buffer past any step extrapolation could skip at `level`: only the
    /// space it holds matters (counted in `buffer_free`), not which instance it is.
    fn is_background(&self, i: &Inst, last_start: u64) -> bool {
        i.state == State::Done
            && self.st.templates[i.tmpl].alloc > 0
            && i.end + self.max_latency <= self.now
            && i.free_step >= last_start
    }

    /// Everything that can influence the future, relative to now and the current step.
    fn snapshot(&self, level: usize) -> Vec<i64> {
        let now = self.now as i64;
        let rel = |t: Tick| (t as i64 - now).max(0);
        let mut key: Vec<i64> = Vec::with_capacity(self.live.len() * 10 + 64);
        let last_start = self.last_iteration_start(level);
        // In sequence order, which is canonical: no sort needed.
        for &id in self.order.values() {
            let i = self.insts[id].as_ref().expect("live");
            if self.is_background(i, last_start) {
                continue;
            }
            key.extend_from_slice(&[
                i.step as i64 - self.step as i64,
                i.tmpl as i64,
                i.seq as i64 - self.seq as i64,
                i.state as i64,
                i.deps_left as i64,
                rel(i.ready_at),
                if matches!(i.state, State::Running | State::Done) {
                    rel(i.end)
                } else {
                    -1
                },
                i.consumers_left as i64,
                i.alloc as i64,
                i.free_step as i64 - self.step as i64,
            ]);
        }
        key.push(self.buffer_free as i64);
        key.extend(self.server_free.iter().map(|&t| rel(t)));
        for r in &self.inflight {
            key.extend([
                r.step as i64 - self.step as i64,
                r.left as i64,
                rel(r.complete_at),
            ]);
        }
        key
    }

    /// At the start of an iteration of some loops, look for a period and skip whole periods of the outermost
    /// loop that has one.
    fn try_extrapolate(&mut self) {
        if self.n == 0 {
            return;
        }
        // Levels whose iteration starts at this step: every level inside which all coordinates are 0.
        let mut first = self.n - 1;
        while first > 0 && self.coords[first..].iter().all(|&c| c == 0) {
            first -= 1;
        }
        if !self.coords[first + 1..].iter().all(|&c| c == 0) {
            first += 1;
        }
        self.prune();
        for level in first..self.n {
            let iter = self.coords[level];
            if iter == 0 {
                self.history[level].clear();
            }
            if self.trips[level] < 4 {
                continue;
            }
            let key = self.snapshot(level);
            let found = self.history[level]
                .iter()
                .rev()
                .take(8)
                .position(|s| s.key == key && s.iter >= 1);
            if let Some(back) = found {
                let h = &self.history[level][self.history[level].len() - 1 - back];
                let k = iter - h.iter;
                let n = (self.trips[level] - 1 - iter) / k;
                if n >= 1 {
                    let (dt, ds, dseq) = (self.now - h.now, self.step - h.step, self.seq - h.seq);
                    self.jump(level, n, k, dt, ds, dseq);
                    for l in level..self.n {
                        self.history[l].clear();
                    }
                    return;
                }
            }
            let snap = Snap {
                iter,
                key,
                now: self.now,
                step: self.step,
                seq: self.seq,
            };
            let hist = &mut self.history[level];
            hist.push(snap);
            if hist.len() > 9 {
                hist.remove(0);
            }
        }
    }

    /// Skip `n` periods of `k` iterations of loop `level`, each lasting `dt` ticks, `ds` steps and `dseq`
    /// instances: shift every time, step, sequence number and coordinate of what started in this execution.
    fn jump(&mut self, level: usize, n: u64, k: u64, dt: Tick, ds: u64, dseq: u64) {
        let shift_t = n * dt;
        let start = self.loop_start[level];
        self.now += shift_t;
        self.last_time = self.last_time.max(self.now);
        let mut new_live = HashMap::with_capacity_and_hasher(self.live.len(), FastHash::default());
        for (&(tmpl, key), &id) in &self.live {
            let i = self.insts[id].as_mut().expect("live");
            let mut key = key;
            if i.step >= start {
                i.step += n * ds;
                i.seq += n * dseq;
                i.free_step += n * ds;
                key += n * k * self.strides[tmpl][level];
                i.key = key;
            }
            i.ready_at += shift_t;
            i.end += shift_t;
            new_live.insert((tmpl, key), id);
        }
        self.live = new_live;
        self.order = self
            .live
            .values()
            .map(|&id| (self.insts[id].as_ref().expect("live").seq, id))
            .collect();
        for t in &mut self.server_free {
            *t += shift_t;
        }
        self.events = self
            .events
            .drain()
            .map(|Reverse((t, ev))| {
                let ev = match ev {
                    Ev::StepDone(s) if s >= start => Ev::StepDone(s + n * ds),
                    other => other,
                };
                Reverse((t + shift_t, ev))
            })
            .collect();
        for r in &mut self.inflight {
            if r.step >= start {
                r.step += n * ds;
            }
            r.complete_at += shift_t;
        }
        self.alloc_wait = self
            .alloc_wait
            .iter()
            .map(|&(s, id)| (s + n * dseq, id))
            .collect();
        for q in &mut self.ready {
            *q = q.iter().map(|&(s, id)| (s + n * dseq, id)).collect();
        }
        self.step += n * ds;
        self.seq += n * dseq;
        self.coords[level] += n * k;
    }
}
