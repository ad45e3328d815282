use crate::mapping::{Program, StageProgram, Template, TemplateKind};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hash for the small integer keys of the live-instance table (SipHash's DoS resistance buys
/// nothing here and costs a third of the run time).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // A product's low bits depend only on the factors' low bits, and keys are multiples of large strides:
        // fold the well-mixed high bits down, since the table indexes buckets by the low bits.
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Word by word: snapshot keys are long slices of integers, hashed as their bytes.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
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

/// Time in ticks (`arch::TICKS_PER_CYCLE` per cycle). 128 bits: a million-token context on a large array runs for
/// more than 2^64 ticks, and a count that wraps would be a silent wrong answer.
pub type Tick = u128;

/// Instances simulated event by event per run before the engine stops looking for a steady state.
///
/// Chosen so that no run takes more than about a second on one core: an instance costs about 0.4 µs with a few
/// tiles in flight and up to 1.3 µs with thousands (the live set then misses the caches), measured on the 2-core
/// CI machine with `einsim run --no-extrapolate`. Shipped designs at their shipped depths find their period within a few
/// thousand tiles.
pub const DEFAULT_BUDGET: u64 = 1 << 19;

/// Snapshot words kept for period detection per stage (8 B each: 64 MiB).
const HISTORY_WORDS: usize = 1 << 23;

#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Skip periodic steady states (exact); off = simulate every tile.
    pub extrapolate: bool,
    /// Instances simulated event by event per stage; past it, a stage without a period is estimated (see
    /// [`Estimate`]). Only applies when extrapolating: `--no-extrapolate` always simulates everything.
    pub budget: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            extrapolate: true,
            budget: DEFAULT_BUDGET,
        }
    }
}

/// A stage that found no period within the budget: its time is not simulated to the end but bracketed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// No schedule can finish sooner: each server's remaining work after what it has already committed.
    pub low: Tick,
    /// No list schedule that never idles past a result's latency can finish later: all remaining work run back to
    /// back with the longest latency between every two tasks.
    pub high: Tick,
    /// Steps simulated before the estimate.
    pub prefix_steps: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageTime {
    pub name: String,
    /// Stage time, rounded up to a whole cycle (the next stage starts on a cycle boundary), so stage times add up
    /// to the run's time exactly.
    pub ticks: Tick,
    /// Steps (innermost tile iterations) in the stage, and how many were simulated event by event.
    pub steps: u64,
    pub simulated_steps: u64,
    /// Set when the stage was not simulated to the end: `ticks` is then the steady rate of the simulated prefix
    /// extrapolated over the rest, clamped into `[low, high]`.
    pub estimate: Option<Estimate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimResult {
    pub ticks: Tick,
    pub stages: Vec<StageTime>,
}

/// Why a simulation could not produce a time.
#[derive(Clone, Debug, PartialEq)]
pub enum SimError {
    /// The configuration is too large to represent (a count past 128 bits): invalid input.
    TooLarge(String),
    /// The engine got stuck: a bug (the mapping guarantees every tile can get room).
    Internal(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::TooLarge(m) | SimError::Internal(m) => f.write_str(m),
        }
    }
}
impl std::error::Error for SimError {}

/// How a stage's result depended on its free buffer space, for [`super::memo`]: the same program with another
/// `buffer_free` gives the same result, event for event, if it is `free` or, where `least` is known, at least
/// `least`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferUse {
    pub free: u64,
    pub least: Option<u64>,
}

/// Run every stage back to back.
pub fn simulate(p: &Program, opts: SimOptions) -> Result<SimResult, SimError> {
    simulate_tracked(p, opts).map(|(r, _)| r)
}

/// [`simulate`], also saying per stage how far its result depended on the free buffer space.
pub fn simulate_tracked(
    p: &Program,
    opts: SimOptions,
) -> Result<(SimResult, Vec<BufferUse>), SimError> {
    let mut stages = Vec::new();
    let mut uses = Vec::new();
    let mut total: Tick = 0;
    // The budget is the run's: each stage gets its share, so a run of several stages costs no more than one.
    let opts = SimOptions {
        budget: opts.budget / p.stages.len().max(1) as u64,
        ..opts
    };
    for st in &p.stages {
        let (t, u) = Stage::new(p, st, opts)?.run()?;
        uses.push(u);
        total = total
            .checked_add(t.ticks)
            .ok_or_else(|| SimError::TooLarge("the run's time exceeds 2^128 ticks".into()))?;
        stages.push(t);
    }
    Ok((
        SimResult {
            ticks: total,
            stages,
        },
        uses,
    ))
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
    /// For a load: last readers still to finish before its tile is released.
    consumers_left: u64,
    /// For a load: the step of its last reader (it holds the buffer until then).
    free_step: u64,
    alloc: u64,
    /// In `parked` rather than `order` (see there).
    parked: bool,
}

/// The instance in a slot's wiring, kept apart from `Inst` (by slot id, in `Stage::links`): snapshots read every
/// live instance in random slot order and never these, so a smaller `Inst` is fewer cache lines missed. Both
/// lists are empty once the instance has finished, and stay with the slot for its next instance (allocating two
/// small vectors per instance was a tenth of the run time).
#[derive(Default)]
struct Links {
    /// Instances waiting for this one's result.
    dependents: Vec<usize>,
    /// Load instances this task reads, and whether it is their last reader (which releases the tile).
    loads: Vec<(usize, bool)>,
}

/// Events at one tick are handled in this order: all `Ready`s (oldest instance first, so loads claim buffer space
/// in program order whatever slot ids the instances have), then `Done`s, then `StepDone`s. The order among `Done`s
/// does not matter: a release only grows the free space, and waiting loads are granted in sequence order. A
/// server frees when its task's `Done` fires, which also wakes the loop to dispatch the next task.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    Ready { seq: u64, id: usize },
    Done(usize),
    StepDone(u64),
}

/// An event in the queue, packed to 32 bytes (a `(Tick, Ev)` takes 48, and the heap's sifting moves entries):
/// ordered by time, then as `Ev` orders (variant, then its fields).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Event {
    at: Tick,
    /// `Ev`'s variant: 0 `Ready`, 1 `Done`, 2 `StepDone`.
    kind: u8,
    /// `Ready`'s sequence number, `Done`'s id, `StepDone`'s step.
    value: u64,
    /// `Ready`'s id (which orders `Ready`s of equal sequence number, as in `Ev`); 0 otherwise.
    id: u32,
}

impl Event {
    fn new(at: Tick, ev: Ev) -> Self {
        let id32 = |id: usize| u32::try_from(id).expect("fewer than 2^32 live instances");
        let (kind, value, id) = match ev {
            Ev::Ready { seq, id } => (0, seq, id32(id)),
            Ev::Done(id) => (1, id as u64, 0),
            Ev::StepDone(step) => (2, step, 0),
        };
        Event {
            at,
            kind,
            value,
            id,
        }
    }

    fn ev(&self) -> Ev {
        match self.kind {
            0 => Ev::Ready {
                seq: self.value,
                id: self.id as usize,
            },
            1 => Ev::Done(self.value as usize),
            _ => Ev::StepDone(self.value),
        }
    }
}

/// A step (tile) in flight: how many of its compute tasks are left and when its last result has drained.
struct StepRec {
    left: u32,
    complete_at: Tick,
}

/// Where the engine stood at the start of an iteration of a loop, for period detection.
struct Snap {
    iter: u64,
    now: Tick,
    step: u64,
    seq: u64,
    admitted: Vec<u64>,
    /// Free buffer bytes and loads that had waited for room so far: a period may consume buffer space at a
    /// steady rate (tiles kept past the loop accumulate) as long as no load waits.
    buffer_free: u64,
    waits: u64,
    /// The newest parked tile then (by sequence number): tiles parked since are what the period added.
    parked_seq: u64,
}

/// A parked tile of the sampled period, to be repeated once per skipped period.
struct Repeat {
    tmpl: usize,
    key: u64,
    step: u64,
    seq: u64,
    free_step: u64,
    end: Tick,
    consumers_left: u64,
    alloc: u64,
}

/// How to skip: periods, the parked tiles that stay where they are, the tiles to repeat (a period that consumes
/// buffer space) and the tiles whose readers all fall in the skipped periods (a period that releases it).
struct Plan {
    n: u64,
    stay: BTreeSet<usize>,
    repeats: Vec<Repeat>,
    releases: Vec<usize>,
}

/// The live, unparked instances in sequence order (program order), for canonical snapshots. Instances are
/// admitted in sequence order, so a vector sorted by sequence number takes them at its end; a removed one leaves
/// a hole (found by binary search) until holes outnumber the rest. A `BTreeMap` here cost a node allocation every
/// few instances and pointer-chasing in every snapshot.
#[derive(Default)]
struct Order {
    /// (sequence number, instance id), sorted by sequence number; `HOLE` for an id removed.
    slots: Vec<(u64, usize)>,
    len: usize,
}

const HOLE: usize = usize::MAX;

impl Order {
    /// Add the newest instance: its sequence number exceeds every other.
    fn push(&mut self, seq: u64, id: usize) {
        debug_assert!(self.slots.last().is_none_or(|&(s, _)| s < seq));
        self.slots.push((seq, id));
        self.len += 1;
    }

    fn remove(&mut self, seq: u64) {
        let at = self
            .slots
            .binary_search_by_key(&seq, |&(s, _)| s)
            .expect("an ordered instance");
        debug_assert_ne!(self.slots[at].1, HOLE);
        self.slots[at].1 = HOLE;
        self.len -= 1;
        if self.slots.len() > 64 && self.len < self.slots.len() / 2 {
            self.slots.retain(|&(_, id)| id != HOLE);
        }
    }

    fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .map(|&(_, id)| id)
            .filter(|&id| id != HOLE)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Re-read every instance's sequence number (a skip shifted some) and sort again.
    fn resequence(&mut self, seq_of: impl Fn(usize) -> u64) {
        self.slots.retain(|&(_, id)| id != HOLE);
        for slot in &mut self.slots {
            slot.0 = seq_of(slot.1);
        }
        self.slots.sort_unstable();
    }
}

/// The snapshots of one execution of a loop, by key. Keys are long (about ten words per live instance), so each is
/// hashed once: the map is from the key's hash to the newest snapshot with that hash, which links to the older
/// ones (keys compared in full). The snapshots live in one vector, as nearly every step adds one and a small
/// vector per hash was an allocation each.
#[derive(Default)]
struct History {
    by_hash: HashMap<u64, usize, FastHash>,
    /// (key, snapshot, the previous entry with the same hash or `NO_ENTRY`).
    entries: Vec<(Vec<i64>, Snap, usize)>,
    /// Words held by the keys.
    words: usize,
}

impl History {
    /// Eight independent lanes: one chained multiply per word was a tenth of the run time, bound by the
    /// multiply's latency, not its throughput (four lanes still were). Equal keys still hash equally (and are
    /// compared in full).
    fn hash(key: &[i64]) -> u64 {
        let mut lanes: [KeyHasher; 8] = std::array::from_fn(|i| KeyHasher(i as u64));
        let mut words = key.chunks_exact(8);
        for c in &mut words {
            for (h, &w) in lanes.iter_mut().zip(c) {
                h.write_u64(w as u64);
            }
        }
        for &w in words.remainder() {
            lanes[0].write_u64(w as u64);
        }
        let mut h = KeyHasher(key.len() as u64);
        for l in &lanes {
            h.write_u64(l.0);
        }
        h.finish()
    }

    /// The key's hash (for [`History::insert`]) and the snapshot with an equal key, if any.
    fn get(&self, key: &[i64]) -> (u64, Option<&Snap>) {
        let h = Self::hash(key);
        let mut at = self.by_hash.get(&h).copied().unwrap_or(NO_ENTRY);
        // Keys are unique (only a key not found is inserted), so the order of the search does not matter.
        while at != NO_ENTRY {
            let (k, snap, older) = &self.entries[at];
            if k.as_slice() == key {
                return (h, Some(snap));
            }
            at = *older;
        }
        (h, None)
    }

    /// Add a snapshot whose key (of hash `h`) is not there yet.
    fn insert(&mut self, h: u64, key: Vec<i64>, snap: Snap) {
        self.words += key.len();
        let older = self
            .by_hash
            .insert(h, self.entries.len())
            .unwrap_or(NO_ENTRY);
        self.entries.push((key, snap, older));
    }

    /// Forget every snapshot, keeping the key buffers in `spare` for the next snapshots.
    fn clear(&mut self, spare: &mut KeyPool) {
        self.by_hash.clear();
        for (key, _, _) in self.entries.drain(..) {
            spare.put(key);
        }
        self.words = 0;
    }
}

/// The end of a chain of `History::entries`.
const NO_ENTRY: usize = usize::MAX;

/// Emptied snapshot key buffers for the next snapshots: nearly every step takes a snapshot of some
/// thousand words, and allocating and freeing them was a tenth of the run time.
#[derive(Default)]
struct KeyPool {
    keys: Vec<Vec<i64>>,
    /// Words of capacity held, kept under `KEY_POOL_WORDS`.
    words: usize,
}

const KEY_POOL_WORDS: usize = 1 << 20;

impl KeyPool {
    /// An empty buffer, with room for at least `words` words.
    fn take(&mut self, words: usize) -> Vec<i64> {
        let mut key = self.keys.pop().unwrap_or_default();
        self.words -= key.capacity();
        key.clear();
        key.reserve(words);
        key
    }

    fn put(&mut self, key: Vec<i64>) {
        if self.words + key.capacity() <= KEY_POOL_WORDS {
            self.words += key.capacity();
            self.keys.push(key);
        }
    }
}

/// Snapshots of a loop's execution that may match nothing before its stride doubles (see `Stage::misses`).
const MISSES_PER_DOUBLING: u32 = 64;

struct Stage<'a> {
    p: &'a Program,
    st: &'a StageProgram,
    opts: SimOptions,
    n: usize,
    trips: Vec<u64>,
    /// Steps per iteration of each loop (mixed-radix weights of the odometer).
    weights: Vec<u64>,
    strides: Vec<Vec<u64>>,
    /// Templates in admission order within a step (after their same-iteration producers, loads first where
    /// possible, so consumers find them): `admission_order`.
    admit_order: Vec<usize>,
    /// Whether a template's instances hold their tile in the window: compute does; transfers do not (a store
    /// drains behind the tile, a load is gated by its consumers and the buffer).
    counts: Vec<bool>,
    /// The longest server latency: after it, a finished task's result has reached every consumer.
    max_latency: Tick,
    window: u64,
    insts: Vec<Option<Inst>>,
    free_ids: Vec<usize>,
    /// Per slot of `insts`, its instance's wiring.
    links: Vec<Links>,
    live: HashMap<(usize, u64), usize, FastHash>,
    /// Live instances by sequence number (program order), for canonical snapshots, except the parked ones.
    order: Order,
    /// Finished loads still holding their tile past every result's latency, by (release step, sequence number).
    /// A snapshot at a loop level needs only those released before the loop's last iteration (the others count
    /// through the free bytes), so a block of tiles kept for later readers costs a snapshot nothing. Whether an
    /// instance is parked is a function of the state when snapshots are taken (prune runs first), so keys stay
    /// canonical.
    parked: BTreeMap<(u64, u64), usize>,
    /// Loads that finished holding their tile, to be parked once their latency has passed.
    to_park: Vec<usize>,
    /// Live instances after the last prune: the next prune comes when the table has doubled.
    pruned_at: usize,
    /// Instances that finished with nothing left to release (or whose tile was just released): the only
    /// candidates for pruning, so a prune costs what finished since the last one, not the live set.
    finished: Vec<usize>,
    events: BinaryHeap<Reverse<Event>>,
    server_free: Vec<Tick>,
    /// Per server, the ready tasks by (sequence number, id): the oldest starts first.
    ready: Vec<BinaryHeap<Reverse<(u64, usize)>>>,
    /// `Pipeline::InOrder` only: per server, the compute instances admitted but not started, by step. A server
    /// starts a task only from the oldest of these steps. A function of the live instances, so snapshots cover it.
    pending: Vec<BTreeMap<u64, u32>>,
    alloc_wait: BTreeSet<(u64, usize)>,
    buffer_free: u64,
    inflight: BTreeMap<u64, StepRec>,
    now: Tick,
    seq: u64,
    coords: Vec<u64>,
    step: u64,
    total_steps: u64,
    simulated: u64,
    /// Instances admitted, per template (so the work still to come is known when the budget runs out).
    admitted: Vec<u64>,
    /// Instances admitted event by event (what the budget counts).
    work_done: u64,
    last_time: Tick,
    /// Per loop level, the snapshots of the current execution of that loop, by key.
    history: Vec<History>,
    spare_keys: KeyPool,
    /// Words held by `history`, and how many times every snapshot stride has been doubled to keep it bounded.
    history_words: usize,
    stride_shift: u32,
    /// Step at which the current execution of each loop began.
    loop_start: Vec<u64>,
    /// Loads that have had to wait for buffer room, and per loop level the least free space since its current
    /// execution began: together they bound how much room a skip that consumes buffer space may take.
    waits: u64,
    low_water: Vec<u64>,
    /// How much less initial free space would have left every decision unchanged: grants all succeed (the least
    /// free space after any grant) and every space-consuming skip takes as many periods (the room left beyond
    /// them). `buffer_exact` is set when a decision did depend on the amount of space: a load waited, or a skip
    /// was cut short by the room left. Cells, as the skip planners read the state through `&self`.
    buffer_slack: Cell<u64>,
    buffer_exact: Cell<bool>,
    /// The largest sequence number ever parked (tiles park in completion order, mostly program order), and per
    /// loop level whether a space-consuming skip already failed in its current execution (it is not retried: each
    /// try reads every parked tile).
    parked_seq: u64,
    affine_failed: Vec<bool>,
    /// Per loop level, snapshots taken in its current execution that matched nothing: every `MISSES_PER_DOUBLING`
    /// of them double the level's snapshot stride, so a loop that never turns periodic costs a logarithmic number
    /// of snapshots, not one an iteration.
    misses: Vec<u32>,
    /// Per load template: every reader's last read of a tile falls at the tile's `free_step`, so a repeated tile
    /// is released exactly as the one it repeats.
    simple_release: Vec<bool>,
    /// (step, now) at the middle of the prefix, for the steady rate if the budget runs out.
    midpoint: Option<(u64, Tick)>,
}

fn too_large(what: &str) -> SimError {
    SimError::TooLarge(format!("{what} exceeds 2^64"))
}

impl<'a> Stage<'a> {
    fn new(p: &'a Program, st: &'a StageProgram, opts: SimOptions) -> Result<Self, SimError> {
        let n = st.loops.len();
        let trips: Vec<u64> = st.loops.iter().map(|l| l.trip.max(1)).collect();
        let total_steps = trips
            .iter()
            .try_fold(1u64, |a, &t| a.checked_mul(t))
            .ok_or_else(|| {
                let loops: Vec<String> = st
                    .loops
                    .iter()
                    .map(|l| format!("{}={}", l.index, l.trip))
                    .collect();
                too_large(&format!(
                    "stage `{}`: the number of tile steps ({})",
                    st.name,
                    loops.join(" x ")
                ))
            })?;
        let weights = (0..n).map(|j| trips[j + 1..].iter().product()).collect();
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
        let admit_order = admission_order(&st.templates);
        let counts = st
            .templates
            .iter()
            .map(|t| !p.servers[t.server].is_memory)
            .collect();
        Ok(Stage {
            p,
            st,
            counts,
            max_latency: p.servers.iter().map(|s| s.latency).max().unwrap_or(0) as Tick,
            // More tiles in flight than the stage has is the same schedule as all of them.
            window: (st.window as u64).clamp(1, total_steps.max(1)),
            opts,
            n,
            total_steps,
            trips,
            weights,
            strides,
            admit_order,
            insts: Vec::new(),
            free_ids: Vec::new(),
            links: Vec::new(),
            live: HashMap::default(),
            order: Order::default(),
            parked: BTreeMap::new(),
            to_park: Vec::new(),
            pruned_at: 0,
            finished: Vec::new(),
            events: BinaryHeap::new(),
            server_free: vec![0; p.servers.len()],
            ready: vec![BinaryHeap::new(); p.servers.len()],
            pending: vec![BTreeMap::new(); p.servers.len()],
            alloc_wait: BTreeSet::new(),
            buffer_free: st.buffer_free,
            inflight: BTreeMap::new(),
            now: 0,
            seq: 0,
            coords: vec![0; n],
            step: 0,
            simulated: 0,
            admitted: vec![0; st.templates.len()],
            work_done: 0,
            last_time: 0,
            history: (0..n).map(|_| History::default()).collect(),
            spare_keys: KeyPool::default(),
            loop_start: vec![0; n],
            waits: 0,
            parked_seq: 0,
            affine_failed: vec![false; n],
            misses: vec![0; n],
            low_water: vec![st.buffer_free; n],
            buffer_slack: Cell::new(st.buffer_free),
            buffer_exact: Cell::new(false),
            simple_release: simple_release(st, n),
            history_words: 0,
            stride_shift: 0,
            midpoint: None,
        })
    }

    fn run(mut self) -> Result<(StageTime, BufferUse), SimError> {
        let mut estimate = None;
        loop {
            while self.step < self.total_steps && (self.inflight.len() as u64) < self.window {
                if self.opts.extrapolate {
                    if self.work_done >= self.opts.budget {
                        break;
                    }
                    if self.midpoint.is_none() && self.work_done >= self.opts.budget / 2 {
                        self.midpoint = Some((self.step, self.now));
                    }
                    self.try_extrapolate();
                }
                if self.live.len() >= 2 * self.pruned_at + 1024 {
                    // Between snapshots (or without them) nothing else prunes; finished instances would pile up.
                    self.prune();
                }
                self.admit_step();
            }
            if self.opts.extrapolate
                && self.work_done >= self.opts.budget
                && self.step < self.total_steps
            {
                estimate = Some(self.estimate());
                break;
            }
            self.dispatch();
            let Some(&Reverse(Event { at: t, .. })) = self.events.peek() else {
                if self.step >= self.total_steps && self.inflight.is_empty() {
                    break;
                }
                return Err(SimError::Internal(format!(
                    "stage `{}` deadlocked at step {} of {}: a tile cannot get room in `{}` ({} B free)",
                    self.st.name, self.step, self.total_steps, self.st.buffer, self.buffer_free
                )));
            };
            self.now = t;
            while let Some(&Reverse(e)) = self.events.peek() {
                if e.at != self.now {
                    break;
                }
                self.events.pop();
                self.handle(e.ev());
            }
        }
        let ticks = match &estimate {
            Some(e) => self.rate_estimate(e),
            None => self.last_time,
        };
        let cycle = crate::arch::TICKS_PER_CYCLE as Tick;
        let time = StageTime {
            name: self.st.name.clone(),
            ticks: ticks.div_ceil(cycle) * cycle,
            steps: self.total_steps,
            simulated_steps: self.simulated,
            estimate,
        };
        Ok((time, self.buffer_use()))
    }

    /// The initial free space with which this stage would have run exactly as it did. With `d` bytes less (or
    /// more: `d` < 0) from the start, and every decision the same, the free space is `d` less at every moment: a
    /// skip compares free space only between two snapshots, so it finds the same periods; a grant succeeds while
    /// `d` is at most the free space left after it; a space-consuming skip (`Stage::repeats`) takes the same
    /// periods while the room it leaves covers `d`, or for any `d` when its count was not cut by the room. A
    /// waiting load is the one decision more room can change, so after one only this amount is known to give
    /// this result.
    fn buffer_use(&self) -> BufferUse {
        let free = self.st.buffer_free;
        let exact = self.waits > 0 || self.buffer_exact.get();
        BufferUse {
            free,
            least: (!exact).then(|| free - self.buffer_slack.get().min(free)),
        }
    }

    fn latency(&self, producer: usize, consumer: usize) -> Tick {
        let ps = self.st.templates[producer].server;
        if ps == self.st.templates[consumer].server {
            0
        } else {
            self.p.servers[ps].latency as Tick
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

    /// Admit the current step: one instance of every template issued at these coordinates, wired to the live
    /// instances it depends on.
    fn admit_step(&mut self) {
        self.simulated += 1;
        let mut rec = StepRec {
            left: 0,
            complete_at: self.now,
        };
        for oi in 0..self.admit_order.len() {
            let ti = self.admit_order[oi];
            if !self.attaches(ti) {
                continue;
            }
            self.admitted[ti] += 1;
            self.work_done += 1;
            self.admit(ti);
            if self.counts[ti] {
                rec.left += 1;
            }
        }
        if rec.left == 0 {
            self.schedule(self.now, Ev::StepDone(self.step));
        }
        self.inflight.insert(self.step, rec);
        self.advance();
    }

    /// One instance of template `ti` at the current coordinates.
    fn admit(&mut self, ti: usize) {
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
            consumers_left: t.consumers,
            free_step: self.last_use_step(ti),
            alloc: t.alloc,
            parked: false,
        };
        self.seq += 1;
        if self.st.in_order && self.counts[ti] {
            *self.pending[t.server].entry(self.step).or_insert(0) += 1;
        }
        for d in &t.deps {
            let mut pkey = self.key(d.template, &self.coords);
            if let Some(j) = d.carried {
                if self.coords[j] == 0 {
                    continue; // first iteration reads the initial value
                }
                pkey -= self.strides[d.template][j]; // the previous iteration of loop j
            }
            // Nothing live: the producer finished long enough ago that its result is everywhere (pruned).
            let Some(&pid) = self.live.get(&(d.template, pkey)) else {
                continue;
            };
            let lat = self.latency(d.template, ti);
            let producer = self.insts[pid].as_mut().expect("live instance");
            if self.st.templates[d.template].alloc > 0 {
                let lt = &self.st.templates[d.template];
                let last = (0..self.n)
                    .all(|j| !t.loops[j] || lt.loops[j] || self.coords[j] == self.trips[j] - 1);
                self.links[id].loads.push((pid, last));
            }
            if producer.state == State::Done {
                inst.ready_at = inst.ready_at.max(producer.end + lat);
            } else {
                self.links[pid].dependents.push(id);
                inst.deps_left += 1;
            }
        }
        let (seq, ready_now, ready_at) = (inst.seq, inst.deps_left == 0, inst.ready_at);
        self.insts[id] = Some(inst);
        self.live.insert((ti, key), id);
        self.order.push(seq, id);
        if ready_now {
            self.schedule(ready_at, Ev::Ready { seq, id });
        }
    }

    fn schedule(&mut self, at: Tick, ev: Ev) {
        self.events.push(Reverse(Event::new(at, ev)));
    }

    fn alloc_id(&mut self) -> usize {
        if let Some(i) = self.free_ids.pop() {
            // Freed slots held finished instances, whose lists `finish` emptied.
            debug_assert!(self.links[i].dependents.is_empty() && self.links[i].loads.is_empty());
            i
        } else {
            self.insts.push(None);
            self.links.push(Links::default());
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
            Ev::Ready { id, .. } => {
                let (alloc, seq) = {
                    let i = self.insts[id].as_ref().expect("live");
                    (i.alloc, i.seq)
                };
                if alloc > 0 {
                    if self.alloc_wait.is_empty() && self.buffer_free >= alloc {
                        self.take(alloc);
                    } else {
                        self.waits += 1;
                        self.insts[id].as_mut().expect("live").state = State::AllocWait;
                        self.alloc_wait.insert((seq, id));
                        return;
                    }
                }
                self.enqueue(id);
            }
            Ev::Done(id) => self.finish(id),
            Ev::StepDone(step) => {
                self.inflight.remove(&step);
            }
        }
    }

    /// A task ends: wake its dependents, release the tiles it was the last reader of, account its step.
    fn finish(&mut self, id: usize) {
        let (tmpl, end, step) = {
            let i = self.insts[id].as_mut().expect("live");
            i.state = State::Done;
            (i.tmpl, i.end, i.step)
        };
        let Links {
            mut dependents,
            mut loads,
        } = std::mem::take(&mut self.links[id]);
        for d in dependents.drain(..) {
            let lat = self.latency(tmpl, self.insts[d].as_ref().expect("live").tmpl);
            let di = self.insts[d].as_mut().expect("live");
            di.ready_at = di.ready_at.max(end + lat);
            di.deps_left -= 1;
            if di.deps_left == 0 {
                let (at, seq) = (di.ready_at, di.seq);
                self.schedule(at, Ev::Ready { seq, id: d });
            }
        }
        for (l, last) in loads.drain(..) {
            if !last {
                continue;
            }
            let li = self.insts[l].as_mut().expect("live load");
            li.consumers_left = li.consumers_left.saturating_sub(1);
            if li.consumers_left == 0 {
                self.buffer_free += li.alloc;
                li.alloc = 0;
                self.finished.push(l);
            }
        }
        // Emptied, back to the slot for its next instance.
        self.links[id] = Links { dependents, loads };
        let i = self.insts[id].as_ref().expect("live");
        if i.consumers_left == 0 {
            self.finished.push(id);
        } else if i.alloc > 0 {
            self.to_park.push(id);
        }
        self.retry_allocs();
        let complete = end + self.p.servers[self.st.templates[tmpl].server].latency as Tick;
        self.last_time = self.last_time.max(complete);
        if self.counts[tmpl] {
            if let Some(rec) = self.inflight.get_mut(&step) {
                rec.complete_at = rec.complete_at.max(complete);
                rec.left -= 1;
                if rec.left == 0 {
                    let at = rec.complete_at;
                    self.schedule(at, Ev::StepDone(step));
                }
            }
        }
    }

    /// Grant `alloc` bytes of the buffer.
    fn take(&mut self, alloc: u64) {
        self.buffer_free -= alloc;
        for l in &mut self.low_water {
            *l = (*l).min(self.buffer_free);
        }
        self.buffer_slack
            .set(self.buffer_slack.get().min(self.buffer_free));
    }

    fn retry_allocs(&mut self) {
        while let Some(&(seq, id)) = self.alloc_wait.first() {
            let alloc = self.insts[id].as_ref().expect("live").alloc;
            if alloc > self.buffer_free {
                break;
            }
            self.take(alloc);
            self.alloc_wait.remove(&(seq, id));
            self.enqueue(id);
        }
    }

    fn enqueue(&mut self, id: usize) {
        let i = self.insts[id].as_mut().expect("live");
        i.state = State::Ready;
        let server = self.st.templates[i.tmpl].server;
        self.ready[server].push(Reverse((i.seq, id)));
    }

    fn dispatch(&mut self) {
        for s in 0..self.ready.len() {
            if self.server_free[s] > self.now {
                continue;
            }
            let Some(&Reverse((_, id))) = self.ready[s].peek() else {
                continue;
            };
            if self.st.in_order && self.counts[self.insts[id].as_ref().expect("live").tmpl] {
                // Tile by tile: nothing of a later tile while a task of an earlier one has not started.
                let step = self.insts[id].as_ref().expect("live").step;
                let mut oldest = self.pending[s]
                    .first_entry()
                    .expect("a ready task is pending");
                if *oldest.key() < step {
                    continue;
                }
                *oldest.get_mut() -= 1;
                if *oldest.get() == 0 {
                    oldest.remove();
                }
            }
            self.ready[s].pop();
            let work = {
                let i = self.insts[id].as_ref().expect("live");
                self.st.templates[i.tmpl].work as Tick
            };
            let end = self.now + work;
            let i = self.insts[id].as_mut().expect("live");
            i.state = State::Running;
            i.end = end;
            self.server_free[s] = end;
            self.schedule(end, Ev::Done(id));
        }
    }

    /// Drop finished instances whose results every consumer has received and whose buffer tile is released:
    /// a later lookup that finds nothing treats the dependency as satisfied, which is what it would have found.
    /// So pruning never changes a result, only memory and the size of snapshots.
    ///
    /// Only `finished` is scanned. An id there may since have been pruned (and perhaps reused): whatever occupies
    /// the slot is judged by the same condition, so a stale entry is harmless.
    ///
    /// Both lists are filtered in place (what stays moves to the front): this runs at nearly every step, and two
    /// fresh vectors a call showed in the profile.
    fn prune(&mut self) {
        let now = self.now;
        let mut waiting = std::mem::take(&mut self.finished);
        let mut kept = 0;
        for at in 0..waiting.len() {
            let id = waiting[at];
            let Some(i) = &self.insts[id] else {
                continue;
            };
            let lat = self.p.servers[self.st.templates[i.tmpl].server].latency as Tick;
            if i.state != State::Done || i.consumers_left > 0 {
                continue; // a reused slot: it is listed again when it finishes
            }
            if i.end + lat > now {
                waiting[kept] = id;
                kept += 1;
                continue;
            }
            self.live.remove(&(i.tmpl, i.key));
            if i.parked {
                self.parked.remove(&(i.free_step, i.seq));
            } else {
                self.order.remove(i.seq);
            }
            self.insts[id] = None;
            self.free_ids.push(id);
        }
        waiting.truncate(kept);
        waiting.sort_unstable();
        waiting.dedup();
        self.finished = waiting;
        let mut later = std::mem::take(&mut self.to_park);
        let mut kept = 0;
        for at in 0..later.len() {
            let id = later[at];
            let Some(i) = self.insts[id].as_mut() else {
                continue;
            };
            if i.parked || i.state != State::Done || i.consumers_left == 0 || i.alloc == 0 {
                continue; // released since (or a reused slot, listed again when it finishes)
            }
            if i.end + self.max_latency > now {
                later[kept] = id;
                kept += 1;
                continue;
            }
            i.parked = true;
            self.parked_seq = self.parked_seq.max(i.seq);
            self.order.remove(i.seq);
            self.parked.insert((i.free_step, i.seq), id);
        }
        later.truncate(kept);
        later.sort_unstable();
        later.dedup();
        self.to_park = later;
        self.pruned_at = self.live.len();
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
                c * self.weights[j]
            })
            .sum()
    }

    /// First step of the last iteration of the current execution of loop `level`: extrapolation never skips it.
    fn last_iteration_start(&self, level: usize) -> u64 {
        (0..level)
            .map(|j| self.coords[j] * self.weights[j])
            .sum::<u64>()
            + (self.trips[level] - 1) * self.weights[level]
    }

    /// A finished load whose tile stays in the buffer past any step extrapolation could skip at `level`: only the
    /// space it holds matters (counted in `buffer_free`), not which instance it is.
    fn is_background(&self, i: &Inst, last_start: u64) -> bool {
        i.state == State::Done
            && self.st.templates[i.tmpl].alloc > 0
            && i.end + self.max_latency <= self.now
            && i.free_step >= last_start
    }

    /// Everything that can influence the future, relative to now and the current step; `None` when a relative
    /// value does not fit 64 bits (no period is looked for then: skipping needs exact keys). Written into `key`,
    /// which is empty.
    fn snapshot(&self, level: usize, key: &mut Vec<i64>) -> Option<()> {
        let now = self.now;
        let rel = |t: Tick| i64::try_from(t.saturating_sub(now)).ok();
        let rs = |s: u64| i64::try_from(s as i128 - self.step as i128).ok();
        let word = |v: u64| i64::try_from(v).ok();
        let last_start = self.last_iteration_start(level);
        let record = |key: &mut Vec<i64>, i: &Inst| -> Option<()> {
            key.extend_from_slice(&[
                rs(i.step)?,
                i.tmpl as i64,
                i.seq as i64 - self.seq as i64,
                i.state as i64,
                i.deps_left as i64,
                rel(i.ready_at)?,
                if matches!(i.state, State::Running | State::Done) {
                    rel(i.end)?
                } else {
                    -1
                },
                word(i.consumers_left)?,
                word(i.alloc)?,
                rs(i.free_step)?,
            ]);
            Some(())
        };
        // In sequence order, which is canonical: no sort needed.
        for id in self.order.ids() {
            let i = self.insts[id].as_ref().expect("live");
            if !self.is_background(i, last_start) {
                record(key, i)?;
            }
        }
        // Parked tiles released before the last iteration could be skipped over: they are part of the state,
        // except the *stationary* ones (loaded before this execution of the loop began) whose readers are all
        // still to come. Those only wait to be released, one period's worth a period (FLAT's Q tiles, kept across
        // the key loop, freed one per query tile in its last iteration): a skip checks and releases them
        // (`Stage::releasing`), and leaving them out lets the keys of such a period match.
        key.push(-2);
        let start = self.loop_start[level];
        for &id in self.parked.range(..(last_start, 0)).map(|(_, id)| id) {
            let i = self.insts[id].as_ref().expect("live");
            if i.step < start && i.free_step >= self.step {
                continue;
            }
            record(key, i)?;
        }
        for &t in &self.server_free {
            key.push(rel(t)?);
        }
        for (&s, r) in &self.inflight {
            key.extend([rs(s)?, r.left as i64, rel(r.complete_at)?]);
        }
        Some(())
    }

    /// Iterations of loop `level` between two snapshots: a power of two chosen so that taking snapshots (each
    /// reads the whole live set, about ten words an instance) costs a fraction of simulating the steps between
    /// them, and so that the stored snapshots stay within [`HISTORY_WORDS`]. Snapshots at iterations i and i + p
    /// match for any period p once every snapshot stride divides the later ones, which powers of two do.
    fn snapshot_stride(&self, level: usize) -> u64 {
        let per_iteration =
            self.weights[level].max(1) as u128 * self.st.templates.len().max(1) as u128;
        // A few hundred live instances are cheap to snapshot at every iteration (and small loops need it to find
        // their period before they end); past that, the stride grows with the live set.
        let active = self.live.len().saturating_sub(self.parked.len()) as u128;
        let cost = (4 * active).saturating_sub(1024);
        let backoff = self.stride_shift + self.misses[level] / MISSES_PER_DOUBLING;
        let want = cost.div_ceil(per_iteration).max(1) << backoff.min(62);
        want.next_power_of_two().min(1 << 62) as u64
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
        let mut pruned = false;
        for level in first..self.n {
            let iter = self.coords[level];
            if iter == 0 {
                self.history_words -= self.history[level].words;
                self.history[level].clear(&mut self.spare_keys);
                self.low_water[level] = self.buffer_free;
                self.affine_failed[level] = false;
                self.misses[level] = 0;
            }
            // A skip needs two matching iterations ≥ 1 and at least one whole period left before the last
            // iteration, which is never skipped: 1 + 2k ≤ trips - 1.
            if self.trips[level] < 4 || iter == 0 || iter % self.snapshot_stride(level) != 0 {
                continue;
            }
            if !pruned {
                self.prune();
                pruned = true;
            }
            let mut key = self.spare_keys.take(self.order.len() * 10 + 64);
            if self.snapshot(level, &mut key).is_none() {
                self.spare_keys.put(key);
                continue;
            }
            let (hash, found) = self.history[level].get(&key);
            if let Some(h) = found {
                let k = iter - h.iter;
                let (dt, ds, dseq) = (self.now - h.now, self.step - h.step, self.seq - h.seq);
                let n = (self.trips[level] - 1 - iter) / k;
                let plan = if h.buffer_free == self.buffer_free {
                    Some(self.plain_skip(level, n, ds))
                } else if self.affine_failed[level] {
                    None
                } else {
                    let plan = if h.buffer_free < self.buffer_free {
                        self.releasing(level, h, n, ds)
                    } else {
                        self.repeats(level, h, n, k)
                            .map(|p| self.before_releases(level, p, ds))
                    }
                    .filter(|p| p.n >= 1);
                    self.affine_failed[level] = plan.is_none();
                    plan
                };
                if let Some(plan) = plan.filter(|p| p.n >= 1) {
                    let n = plan.n;
                    let dadm: Vec<u64> = self
                        .admitted
                        .iter()
                        .zip(&h.admitted)
                        .map(|(a, b)| a - b)
                        .collect();
                    self.jump(level, n, k, dt, ds, dseq, &plan.stay);
                    self.materialise(level, n, k, (dt, ds, dseq), &plan.repeats);
                    self.release(&plan.releases);
                    for (a, d) in self.admitted.iter_mut().zip(dadm) {
                        *a += n * d;
                    }
                    for l in level..self.n {
                        self.history_words -= self.history[l].words;
                        self.history[l].clear(&mut self.spare_keys);
                        self.low_water[l] = self.buffer_free;
                    }
                    self.spare_keys.put(key);
                    return;
                }
                self.spare_keys.put(key);
                continue;
            }
            self.misses[level] += 1;
            let snap = Snap {
                iter,
                now: self.now,
                step: self.step,
                seq: self.seq,
                admitted: self.admitted.clone(),
                buffer_free: self.buffer_free,
                waits: self.waits,
                parked_seq: self.parked_seq,
            };
            self.history_words += key.len();
            self.history[level].insert(hash, key, snap);
            if self.history_words > HISTORY_WORDS {
                // Too many snapshots kept: start again with every stride doubled (periods stay detectable, at
                // twice the delay).
                for h in &mut self.history {
                    h.clear(&mut self.spare_keys);
                }
                self.history_words = 0;
                self.stride_shift += 1;
            }
        }
    }

    /// A period that consumes buffer space: tiles kept past the loop (parked, released after its last iteration)
    /// accumulate, `h.buffer_free - buffer_free` bytes a period, while everything else repeats (the snapshot keys
    /// match). Skipping is exact when no load has waited for room (every grant succeeded, and does again while the
    /// low-water mark allows) and the tiles parked in the sampled period can be repeated once per skipped period:
    /// each is released at its `free_step`, after the loop, and no reader has released any yet. Parked tiles stay
    /// where they are (a skip shifts what repeats, and kept tiles accumulate instead). `None` when not exact.
    fn repeats(&self, level: usize, h: &Snap, n: u64, k: u64) -> Option<Plan> {
        if self.waits != h.waits || !self.alloc_wait.is_empty() || h.buffer_free < self.buffer_free
        {
            return None;
        }
        let delta = h.buffer_free - self.buffer_free;
        let start = self.loop_start[level];
        let stay = self.background(level);
        let mut repeats = Vec::new();
        let mut made = 0u64;
        for &id in &stay {
            let i = self.insts[id].as_ref().expect("live");
            if i.seq <= h.parked_seq {
                continue;
            }
            let t = &self.st.templates[i.tmpl];
            if !self.simple_release[i.tmpl] || i.consumers_left != t.consumers {
                return None;
            }
            made += i.alloc;
            repeats.push(Repeat {
                tmpl: i.tmpl,
                key: i.key,
                step: i.step,
                seq: i.seq,
                free_step: i.free_step,
                end: i.end,
                consumers_left: i.consumers_left,
                alloc: i.alloc,
            });
        }
        if made != delta || repeats.is_empty() {
            return None;
        }
        // Room for every repeated tile, and a bounded number of them (they are real instances).
        let n = n.min((1 << 16) / repeats.len() as u64);
        let room = self.low_water[level];
        let n = match n.checked_mul(delta).and_then(|need| room.checked_sub(need)) {
            // Enough room: any initial space that leaves it gives the same count (`buffer_use`).
            Some(left) => {
                self.buffer_slack.set(self.buffer_slack.get().min(left));
                n
            }
            // The room decided the count: only the same initial space is known to give it.
            None => {
                self.buffer_exact.set(true);
                room / delta
            }
        };
        // A repeated tile must not land on a key or a sequence number another instance has after the skip (the
        // indexes are keyed by both).
        let moved =
            |id: usize| !stay.contains(&id) && self.insts[id].as_ref().expect("live").step >= start;
        let dseq = self.seq - h.seq;
        let mut seqs: std::collections::HashSet<u64> = self
            .live
            .values()
            .map(|&id| {
                self.insts[id].as_ref().expect("live").seq + if moved(id) { n * dseq } else { 0 }
            })
            .collect();
        for r in &repeats {
            let stride = k * self.strides[r.tmpl][level];
            for j in 1..=n {
                if !seqs.insert(r.seq + j * dseq) {
                    return None;
                }
                let key = r.key + j * stride;
                if self.live.get(&(r.tmpl, key)).is_some_and(|&id| !moved(id)) {
                    return None;
                }
                if let Some(from) = key.checked_sub(n * stride) {
                    if self.live.get(&(r.tmpl, from)).is_some_and(|&id| moved(id)) {
                        return None;
                    }
                }
            }
        }
        Some(Plan {
            n,
            stay,
            repeats,
            releases: Vec::new(),
        })
    }

    /// Parked tiles loaded in this execution of loop `level` and released after its last iteration: a skip leaves
    /// them where they are (they are not part of what repeats, and their keys do not depend on the loop).
    fn background(&self, level: usize) -> BTreeSet<usize> {
        let start = self.loop_start[level];
        self.parked
            .range((self.last_iteration_start(level), 0)..)
            .map(|(_, &id)| id)
            .filter(|&id| self.insts[id].as_ref().expect("live").step >= start)
            .collect()
    }

    /// Stationary parked tiles (loaded before this execution of loop `level`) whose last readers fall in steps
    /// `[from, to)`, in release order.
    fn stationary_releases(
        &self,
        level: usize,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = usize> + '_ {
        let start = self.loop_start[level];
        self.parked
            .range((from, 0)..(to, 0))
            .map(|(_, &id)| id)
            .filter(move |&id| self.insts[id].as_ref().expect("live").step < start)
    }

    /// Whole periods of `ds` steps from here before the first stationary tile is released: a skip that releases
    /// nothing must stop there, as the snapshot keys leave those tiles out.
    fn periods_before_release(&self, level: usize, n: u64, ds: u64) -> u64 {
        let end = self.step.saturating_add(n.saturating_mul(ds));
        match self.stationary_releases(level, self.step, end).next() {
            Some(id) => (self.insts[id].as_ref().expect("live").free_step - self.step) / ds,
            None => n,
        }
    }

    /// The ordinary skip: the period neither consumes nor releases buffer space.
    fn plain_skip(&self, level: usize, n: u64, ds: u64) -> Plan {
        Plan {
            n: self.periods_before_release(level, n, ds),
            stay: self.background(level),
            repeats: Vec::new(),
            releases: Vec::new(),
        }
    }

    fn before_releases(&self, level: usize, mut p: Plan, ds: u64) -> Plan {
        p.n = self.periods_before_release(level, p.n, ds);
        p.repeats.retain(|_| p.n >= 1);
        p
    }

    /// A period that releases buffer space: stationary tiles (kept from before this execution of the loop, left
    /// out of the snapshot keys) are freed by their last readers, `buffer_free - h.buffer_free` bytes a period,
    /// while everything else repeats. Skipping is exact when no load has waited for room (so none does with more
    /// room: space only affects grants, and every grant in the sampled period succeeded with less), the sampled
    /// period made no tile that outlives the loop (all the space it gained came from releases), and each skipped
    /// period releases the same number of bytes, from tiles no reader has touched, each freed at its `free_step`
    /// (`simple_release`). The skip then drops those tiles. The tiles that readers in flight at the landing read
    /// are, after the skip, the ones read at the sampled point: the same templates, so the same bytes and
    /// readers; no later reader looks either up, as each was last read before the landing.
    fn releasing(&self, level: usize, h: &Snap, n: u64, ds: u64) -> Option<Plan> {
        if self.waits != h.waits || !self.alloc_wait.is_empty() {
            return None;
        }
        let gained = self.buffer_free - h.buffer_free;
        let stay = self.background(level);
        if stay
            .iter()
            .any(|&id| self.insts[id].as_ref().expect("live").seq >= h.seq)
        {
            return None;
        }
        let end = self.step.saturating_add(n.saturating_mul(ds));
        let mut tiles = self.stationary_releases(level, self.step, end).peekable();
        let mut releases = Vec::new();
        let mut periods = 0u64;
        'periods: while periods < n {
            let period_end = self.step + (periods + 1) * ds;
            let (mut bytes, mut these) = (0u64, Vec::new());
            while let Some(&id) = tiles.peek() {
                let i = self.insts[id].as_ref().expect("live");
                if i.free_step >= period_end {
                    break;
                }
                if !self.simple_release[i.tmpl]
                    || i.consumers_left != self.st.templates[i.tmpl].consumers
                {
                    break 'periods;
                }
                bytes += i.alloc;
                these.push(id);
                tiles.next();
            }
            if bytes != gained {
                break;
            }
            releases.extend(these);
            periods += 1;
        }
        Some(Plan {
            n: periods,
            stay,
            repeats: Vec::new(),
            releases,
        })
    }

    /// Drop tiles whose readers were all skipped over, giving back their room.
    fn release(&mut self, ids: &[usize]) {
        for &id in ids {
            let i = self.insts[id].take().expect("live");
            self.live.remove(&(i.tmpl, i.key));
            self.parked.remove(&(i.free_step, i.seq));
            self.buffer_free += i.alloc;
            self.free_ids.push(id);
        }
    }

    /// Add the tiles the skipped periods parked: each sampled tile again, one period later each time.
    fn materialise(
        &mut self,
        level: usize,
        n: u64,
        k: u64,
        period: (Tick, u64, u64),
        repeats: &[Repeat],
    ) {
        let (dt, ds, dseq) = period;
        for r in repeats {
            for j in 1..=n {
                let id = self.alloc_id();
                let key = r.key + j * k * self.strides[r.tmpl][level];
                let end = r.end + j as Tick * dt;
                let (seq, free_step) = (r.seq + j * dseq, r.free_step + j * ds);
                self.insts[id] = Some(Inst {
                    tmpl: r.tmpl,
                    key,
                    step: r.step + j * ds,
                    seq,
                    state: State::Done,
                    deps_left: 0,
                    ready_at: end,
                    end,
                    consumers_left: r.consumers_left,
                    free_step,
                    alloc: r.alloc,
                    parked: true,
                });
                self.live.insert((r.tmpl, key), id);
                self.parked_seq = self.parked_seq.max(seq);
                let clash = self.parked.insert((free_step, seq), id);
                debug_assert!(
                    clash.is_none(),
                    "a repeated tile's sequence number is taken"
                );
                self.take(r.alloc);
            }
        }
    }

    /// Skip `n` periods of `k` iterations of loop `level`, each lasting `dt` ticks, `ds` steps and `dseq`
    /// instances: shift every time, step, sequence number and coordinate of what started in this execution.
    #[allow(clippy::too_many_arguments)] // the period's three measures, kept apart for clarity
    fn jump(
        &mut self,
        level: usize,
        n: u64,
        k: u64,
        dt: Tick,
        ds: u64,
        dseq: u64,
        stay: &BTreeSet<usize>,
    ) {
        let shift_t = n as Tick * dt;
        let start = self.loop_start[level];
        self.now += shift_t;
        self.last_time = self.last_time.max(self.now);
        // Only what started in this execution moves (and not the kept tiles in `stay`): take those out of the
        // indexes, shift them, and put them back; everything else keeps its place (a block of kept tiles is not
        // rebuilt at every skip).
        let mut movers = Vec::new();
        for (&(tmpl, key), &id) in &self.live {
            if stay.contains(&id) {
                continue;
            }
            let i = self.insts[id].as_mut().expect("live");
            i.ready_at += shift_t;
            i.end += shift_t;
            if i.step >= start {
                movers.push((tmpl, key, id));
            }
        }
        for &(tmpl, key, id) in &movers {
            self.live.remove(&(tmpl, key));
            let i = self.insts[id].as_ref().expect("live");
            if i.parked {
                self.parked.remove(&(i.free_step, i.seq));
            }
        }
        for &(tmpl, key, id) in &movers {
            let i = self.insts[id].as_mut().expect("live");
            i.step += n * ds;
            i.seq += n * dseq;
            i.free_step += n * ds;
            i.key = key + n * k * self.strides[tmpl][level];
            self.live.insert((tmpl, i.key), id);
            if i.parked {
                self.parked.insert((i.free_step, i.seq), id);
                self.parked_seq = self.parked_seq.max(i.seq);
            }
        }
        let insts = &self.insts;
        self.order
            .resequence(|id| insts[id].as_ref().expect("live").seq);
        for t in &mut self.server_free {
            *t += shift_t;
        }
        let insts = &self.insts;
        self.events = self
            .events
            .drain()
            .map(|Reverse(e)| {
                let ev = match e.ev() {
                    Ev::StepDone(s) if s >= start => Ev::StepDone(s + n * ds),
                    Ev::Ready { id, .. } => Ev::Ready {
                        seq: insts[id].as_ref().expect("live").seq,
                        id,
                    },
                    other => other,
                };
                Reverse(Event::new(e.at + shift_t, ev))
            })
            .collect();
        self.inflight = std::mem::take(&mut self.inflight)
            .into_iter()
            .map(|(s, mut r)| {
                r.complete_at += shift_t;
                (if s >= start { s + n * ds } else { s }, r)
            })
            .collect();
        self.alloc_wait = self
            .alloc_wait
            .iter()
            .map(|&(s, id)| (s + n * dseq, id))
            .collect();
        for q in &mut self.ready {
            *q = std::mem::take(q)
                .into_iter()
                .map(|Reverse((s, id))| Reverse((s + n * dseq, id)))
                .collect();
        }
        for q in &mut self.pending {
            *q = std::mem::take(q)
                .into_iter()
                .map(|(s, c)| (if s >= start { s + n * ds } else { s }, c))
                .collect();
        }
        self.step += n * ds;
        self.seq += n * dseq;
        self.coords[level] += n * k;
        // The loops inside `level` start a new execution here: a later skip on them shifts only what comes after.
        for l in level + 1..self.n {
            self.loop_start[l] = self.step;
        }
    }

    /// Work (ticks, instances) on each server not yet started: what is admitted but not running, and every
    /// instance still to be admitted.
    fn remaining_work(&self) -> (Vec<Tick>, u128) {
        let mut work = vec![0 as Tick; self.p.servers.len()];
        let mut tasks: u128 = 0;
        for i in self.insts.iter().flatten() {
            if matches!(i.state, State::Waiting | State::AllocWait | State::Ready) {
                let t = &self.st.templates[i.tmpl];
                work[t.server] += t.work as Tick;
                tasks += 1;
            }
        }
        for (ti, t) in self.st.templates.iter().enumerate() {
            let total: u128 = (0..self.n)
                .filter(|&j| t.loops[j])
                .map(|j| self.trips[j] as u128)
                .product();
            let left = total.saturating_sub(self.admitted[ti] as u128);
            work[t.server] += left * t.work as Tick;
            tasks += left;
        }
        (work, tasks)
    }

    /// Bracket the stage's time from where the budget ran out (see [`Estimate`]).
    fn estimate(&self) -> Estimate {
        let (work, tasks) = self.remaining_work();
        let busy_until = |s: usize| self.server_free[s].max(self.now);
        let low = (0..work.len())
            .map(|s| busy_until(s) + work[s])
            .max()
            .unwrap_or(self.now)
            .max(self.last_time);
        let start = (0..work.len())
            .map(busy_until)
            .max()
            .unwrap_or(self.now)
            .max(self.last_time);
        let high = start + work.iter().sum::<Tick>() + (tasks + 1) * self.max_latency;
        Estimate {
            low,
            high: high.max(low),
            prefix_steps: self.step,
        }
    }

    /// The steady rate of the second half of the simulated prefix, carried over the steps left, within the
    /// bracket.
    fn rate_estimate(&self, e: &Estimate) -> Tick {
        let (s0, t0) = self.midpoint.unwrap_or((0, 0));
        let steps = (self.step - s0).max(1) as Tick;
        let left = (self.total_steps - self.step) as Tick;
        let guess = self.now + (self.now - t0) * left / steps;
        guess.clamp(e.low, e.high)
    }
}

/// Per template: a load whose every reader iterates each loop inside the load's `keep` that the load itself does
/// not, so every reader's last read of a tile is at the tile's `free_step` (see `Stage::repeats`).
fn simple_release(st: &StageProgram, n: usize) -> Vec<bool> {
    st.templates
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let keep = l.keep.unwrap_or(n);
            st.templates
                .iter()
                .filter(|u| u.deps.iter().any(|d| d.template == li))
                .all(|u| (keep + 1..n).all(|j| l.loops[j] || u.loops[j]))
        })
        .collect()
}

/// The order a step's instances are admitted in: a template after every template it depends on in the same
/// iteration (its producers' instances must exist to be waited for), loads first where the dependencies allow
/// (their buffer space is claimed before the tasks that read them), then template order. Mapping emits computes
/// in dataflow order and their transfers after them, so for programs whose loads depend on nothing this is loads
/// first, then template order; a spilled tile's load waits for the store of the same iteration and its reader for
/// the load, which template order alone does not give.
fn admission_order(templates: &[Template]) -> Vec<usize> {
    let n = templates.len();
    let mut waiting: Vec<usize> = templates
        .iter()
        .map(|t| t.deps.iter().filter(|d| d.carried.is_none()).count())
        .collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in templates.iter().enumerate() {
        for d in t.deps.iter().filter(|d| d.carried.is_none()) {
            users[d.template].push(i);
        }
    }
    let key = |i: usize| (!matches!(templates[i].kind, TemplateKind::Load(_)), i);
    let mut ready: BTreeSet<(bool, usize)> = (0..n).filter(|&i| waiting[i] == 0).map(key).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(k) = ready.pop_first() {
        order.push(k.1);
        for &u in &users[k.1] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.insert(key(u));
            }
        }
    }
    // A same-iteration dependency cycle is a mapping bug; admit the rest in template order rather than lose them.
    let placed: BTreeSet<usize> = order.iter().copied().collect();
    order.extend((0..n).filter(|i| !placed.contains(i)));
    order
}
