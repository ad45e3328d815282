use crate::mapping::{Program, StageProgram};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

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
    /// Load instances this task consumes (released when it finishes).
    loads: Vec<usize>,
    consumers_left: u64,
    alloc: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    // Order within one tick does not matter (a batch is processed before any dispatch); kept total for determinism.
    Ready(usize),
    Done(usize),
    StepDone(u64),
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
    /// consumers_left of long-lived loads (kept across this loop), by instance id.
    anon: Vec<(usize, u64)>,
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
    keep_level: Vec<Option<usize>>,
    insts: Vec<Option<Inst>>,
    free_ids: Vec<usize>,
    live: HashMap<(usize, u64), usize>,
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
        // The keep level of a load = its innermost iterated loop (it is instantiated per iteration of loops up to
        // its keep level).
        let keep_level = st
            .templates
            .iter()
            .map(|t| (0..n).rev().find(|&j| t.loops[j]))
            .collect();
        Stage {
            p,
            st,
            opts,
            n,
            total_steps: trips.iter().product(),
            trips,
            strides,
            admit_order,
            keep_level,
            insts: Vec::new(),
            free_ids: Vec::new(),
            live: HashMap::new(),
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
                if matches!(
                    self.st.templates[d.template].kind,
                    crate::mapping::TemplateKind::Load(_)
                ) {
                    inst.loads.push(pid);
                }
                if producer.state == State::Done {
                    inst.ready_at = inst.ready_at.max(producer.end + lat);
                } else {
                    producer.dependents.push(id);
                    inst.deps_left += 1;
                }
            }
            rec.left += 1;
            let ready_now = inst.deps_left == 0;
            let ready_at = inst.ready_at;
            self.insts[id] = Some(inst);
            self.live.insert((ti, key), id);
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
                for l in loads {
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
                if let Some(rec) = self.inflight.iter_mut().find(|r| r.step == step) {
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
            self.insts[id] = None;
            self.free_ids.push(id);
        }
    }

    /// Loads kept across loop `level` (their tile outlives it): they are represented in a snapshot only by the
    /// buffer space they hold.
    fn is_anonymous(&self, i: &Inst, level: usize) -> bool {
        i.state == State::Done
            && self.keep_level[i.tmpl].is_none_or(|k| k < level)
            && i.end + self.max_latency() <= self.now
            && self.st.templates[i.tmpl].alloc > 0
    }

    fn max_latency(&self) -> Tick {
        self.p.servers.iter().map(|s| s.latency).max().unwrap_or(0)
    }

    fn snapshot(&self, level: usize) -> (Vec<i64>, Vec<(usize, u64)>) {
        let now = self.now as i64;
        let rel = |t: Tick| (t as i64 - now).max(0);
        let mut rows: Vec<[i64; 9]> = Vec::new();
        let mut anon = Vec::new();
        for &id in self.live.values() {
            let i = self.insts[id].as_ref().expect("live");
            if self.is_anonymous(i, level) {
                anon.push((id, i.consumers_left));
                continue;
            }
            rows.push([
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
            ]);
        }
        rows.sort_unstable();
        let mut key: Vec<i64> = rows.into_iter().flatten().collect();
        key.push(self.buffer_free as i64);
        key.extend(self.server_free.iter().map(|&t| rel(t)));
        for r in &self.inflight {
            key.extend([
                r.step as i64 - self.step as i64,
                r.left as i64,
                rel(r.complete_at),
            ]);
        }
        anon.sort_unstable();
        (key, anon)
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
            let (key, anon) = self.snapshot(level);
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
                    let dt = self.now - h.now;
                    let ds = self.step - h.step;
                    let dseq = self.seq - h.seq;
                    let used: Vec<(usize, u64)> = anon
                        .iter()
                        .map(|&(id, left)| {
                            let before = h.anon.iter().find(|a| a.0 == id).map_or(left, |a| a.1);
                            (id, before - left)
                        })
                        .collect();
                    if std::env::var("EINSIM_DEBUG").is_ok() {
                        eprintln!(
                            "jump L{level} c{:?} k {k} n {n} step {}",
                            self.coords, self.step
                        );
                    }
                    self.jump(level, n, k, dt, ds, dseq, &used);
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
                anon,
            };
            let hist = &mut self.history[level];
            hist.push(snap);
            if hist.len() > 9 {
                hist.remove(0);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn jump(
        &mut self,
        level: usize,
        n: u64,
        k: u64,
        dt: Tick,
        ds: u64,
        dseq: u64,
        used: &[(usize, u64)],
    ) {
        let shift_t = n * dt;
        let start = self.loop_start[level];
        self.now += shift_t;
        self.last_time = self.last_time.max(self.now);
        let mut new_live = HashMap::with_capacity(self.live.len());
        for (&(tmpl, key), &id) in &self.live {
            let i = self.insts[id].as_mut().expect("live");
            let mut key = key;
            if i.step >= start {
                i.step += n * ds;
                i.seq += n * dseq;
                key += n * k * self.strides[tmpl][level];
                i.key = key;
            }
            i.ready_at += shift_t;
            i.end += shift_t;
            new_live.insert((tmpl, key), id);
        }
        self.live = new_live;
        for &(id, per) in used {
            if let Some(i) = self.insts[id].as_mut() {
                i.consumers_left -= n * per;
            }
        }
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
