//! The cost model of a top-k engine unit (SpAtten §III-D): quick-select with a random pivot over a `P`-wide
//! comparator array, then one filtering pass.
//!
//! A selection of `k` out of `n` candidates runs quick-select rounds. Round `r` streams the `n_r` surviving
//! candidates through the comparators (less-than and greater-than the pivot, zero eliminators back into a FIFO) in
//! `⌈n_r / P⌉ + overhead` cycles (`sim/TopKLatencyModel.scala` of the SpAtten code: overhead 3). The loop ends when
//! the pivot is the k-th largest value. A final pass then streams all `n` inputs through the comparators against
//! that threshold, at `P` per cycle, and emits the survivors in input order.
//!
//! The survivor counts `n_r` depend on the data. They come from a seeded run of quick-select on **continuous
//! i.i.d. scores** (no ties): with distinct values, quick-select's counts depend only on the ranks of the
//! candidates, and for i.i.d. scores every arrival order is equally likely and the random pivot is a uniformly
//! random candidate. So the run needs no score array: the candidates are always a contiguous range of ranks, and a
//! round draws the pivot's rank uniformly in it (splitmix64, so the result is the same on every platform). The
//! count of rounds and cycles is deterministic for a seed.
//!
//! This module knows no cascade and no design: mapping calls [`tile_cost`] for an Einsum with a `topk` reduction
//! placed on a unit of kind `TopkEngine`.

/// splitmix64 (Steele, Lea, Flood 2014): a tiny, platform-independent generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`), by the multiply-high method (bias below 2^-32 for any `n < 2^32`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The hardware side of a selection: comparator lanes `P` and the fixed cycles each quick-select round adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Engine {
    pub lanes: u64,
    pub round_overhead: u64,
}

/// What one selection (or a tile of them) costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectionCost {
    /// Quick-select rounds.
    pub rounds: u64,
    /// Candidates streamed through the comparator arrays, over all rounds and the filter pass: the count that the
    /// energy per streamed element multiplies.
    pub streamed: u64,
    /// Cycles: Σ over rounds (⌈n_r / P⌉ + overhead), plus ⌈n / P⌉ for the filter pass.
    pub cycles: u64,
}

impl SelectionCost {
    fn add(&mut self, o: SelectionCost) {
        self.rounds = self.rounds.saturating_add(o.rounds);
        self.streamed = self.streamed.saturating_add(o.streamed);
        self.cycles = self.cycles.saturating_add(o.cycles);
    }
}

/// Why a selection is not one: `k` must be in `1..=n`, and the engine must have a lane.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopkError {
    #[error("top-k keeps k = {k} of n = {n}; expected 1 ≤ k ≤ n")]
    BadK { n: u64, k: u64 },
    #[error("a top-k engine with {0} comparator lanes; expected at least 1")]
    NoLanes(u64),
}

/// One quick-select of the `k` largest of `n` continuous i.i.d. scores, with pivots drawn from `rng`, and the
/// filter pass.
pub fn select(
    engine: Engine,
    n: u64,
    k: u64,
    rng: &mut SplitMix64,
) -> Result<SelectionCost, TopkError> {
    if k == 0 || k > n {
        return Err(TopkError::BadK { n, k });
    }
    if engine.lanes == 0 {
        return Err(TopkError::NoLanes(engine.lanes));
    }
    // k = n keeps every candidate: there is nothing to select (a pruning ratio of 0, [P] §III: the engine selects
    // the tokens, heads or V rows to prune), so no round and no filter pass run; the candidates pass through.
    if k == n {
        return Ok(SelectionCost::default());
    }
    let p = engine.lanes;
    // Candidates are the ranks lo..hi (0 = largest); we want the one of rank k - 1.
    let (mut lo, mut hi) = (0u64, n);
    let target = k - 1;
    let mut cost = SelectionCost::default();
    loop {
        let n_r = hi - lo;
        cost.rounds += 1;
        cost.streamed += n_r;
        cost.cycles += n_r.div_ceil(p) + engine.round_overhead;
        let pivot = lo + rng.below(n_r);
        match pivot.cmp(&target) {
            // The pivot is the k-th largest: the FIFO of larger values holds k - 1, the pivot is the threshold.
            std::cmp::Ordering::Equal => break,
            // Too few larger than the pivot: the k-th largest is among the smaller ones.
            std::cmp::Ordering::Less => lo = pivot + 1,
            // Too many: it is among the larger ones.
            std::cmp::Ordering::Greater => hi = pivot,
        }
    }
    cost.streamed += n;
    cost.cycles += n.div_ceil(p);
    Ok(cost)
}

/// Selections simulated one by one per tile; a tile with more fibers charges the mean of these, scaled.
pub const SAMPLED_FIBERS: u64 = 4096;

/// A tile of `fibers` independent selections of `k` out of `n`, each on fresh scores, with pivots from one
/// generator seeded with `seed`. Up to [`SAMPLED_FIBERS`] are simulated; more are charged that sample's total
/// scaled by `fibers / SAMPLED_FIBERS`, rounded up, so the cost stays deterministic and cheap.
pub fn tile_cost(
    engine: Engine,
    n: u64,
    k: u64,
    fibers: u64,
    seed: u64,
) -> Result<SelectionCost, TopkError> {
    let mut rng = SplitMix64::new(seed);
    let sampled = fibers.clamp(1, SAMPLED_FIBERS);
    let mut total = SelectionCost::default();
    for _ in 0..sampled {
        total.add(select(engine, n, k, &mut rng)?);
    }
    if fibers > sampled {
        let scale = |v: u64| -> u64 {
            let s = (v as u128 * fibers as u128).div_ceil(sampled as u128);
            u64::try_from(s).unwrap_or(u64::MAX)
        };
        total = SelectionCost {
            rounds: scale(total.rounds),
            streamed: scale(total.streamed),
            cycles: scale(total.cycles),
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P16: Engine = Engine {
        lanes: 16,
        round_overhead: 3,
    };

    #[test]
    fn splitmix_is_the_published_sequence() {
        // First outputs of splitmix64 seeded with 0 (the reference C implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn keeping_every_candidate_costs_nothing() {
        // k = n: nothing is pruned, so nothing is selected.
        for n in [1, 2, 1024] {
            let c = select(P16, n, n, &mut SplitMix64::new(7)).unwrap();
            assert_eq!(c, SelectionCost::default());
        }
    }

    #[test]
    fn two_candidates_keep_one() {
        // n = 2, k = 1: rounds of ⌈n_r/16⌉ + 3 = 4 cycles until the pivot is the larger value, then a filter pass
        // of 1 cycle.
        let c = select(P16, 2, 1, &mut SplitMix64::new(7)).unwrap();
        assert_eq!(c.cycles, 4 * c.rounds + 1);
        assert_eq!(c.streamed, 2 * c.rounds - (c.rounds - 1) + 2);
    }

    #[test]
    fn cycles_follow_the_rounds_by_hand() {
        // Replay the pivots the generator draws and recompute the cycles by the formula.
        let (n, k, seed) = (1024u64, 512u64, 42u64);
        let mut rng = SplitMix64::new(seed);
        let (mut lo, mut hi, mut cycles, mut rounds) = (0u64, n, 0u64, 0u64);
        loop {
            let nr = hi - lo;
            rounds += 1;
            cycles += nr.div_ceil(16) + 3;
            let pv = lo + rng.below(nr);
            if pv == k - 1 {
                break;
            } else if pv < k - 1 {
                lo = pv + 1;
            } else {
                hi = pv;
            }
        }
        cycles += n / 16;
        let c = select(P16, n, k, &mut SplitMix64::new(seed)).unwrap();
        assert_eq!((c.rounds, c.cycles), (rounds, cycles));
        // The first round alone streams all n candidates: 64 + 3 cycles, and the filter 64.
        assert!(c.cycles >= 64 + 3 + 64);
    }

    #[test]
    fn deterministic_for_a_seed_and_varies_with_it() {
        let a = tile_cost(P16, 1024, 256, 100, 1).unwrap();
        assert_eq!(a, tile_cost(P16, 1024, 256, 100, 1).unwrap());
        assert_ne!(a, tile_cost(P16, 1024, 256, 100, 2).unwrap());
    }

    #[test]
    fn average_is_linear_in_n() {
        // Quick-select streams about 2n-3.4n candidates on average (k from the ends to the median); with the
        // filter pass the mean over many seeds lies between 3n/P and 4.5n/P plus the round overheads.
        let c = tile_cost(P16, 4096, 2048, 4096, 9).unwrap();
        let per = c.streamed as f64 / 4096.0 / 4096.0;
        assert!((3.0..4.5).contains(&per), "streamed {per} n per selection");
    }

    #[test]
    fn more_lanes_fewer_cycles_until_the_overhead_dominates() {
        let at = |p| {
            tile_cost(
                Engine {
                    lanes: p,
                    round_overhead: 3,
                },
                1024,
                512,
                256,
                3,
            )
            .unwrap()
            .cycles
        };
        let (c1, c16, c32) = (at(1), at(16), at(32));
        assert!(c1 > 10 * c16, "P=1 {c1} vs P=16 {c16}");
        assert!(c32 < c16 && c16 - c32 < c16 / 2, "P=16 {c16} vs P=32 {c32}");
    }

    #[test]
    fn large_tiles_scale_a_sample() {
        let small = tile_cost(P16, 64, 8, SAMPLED_FIBERS, 5).unwrap();
        let big = tile_cost(P16, 64, 8, 4 * SAMPLED_FIBERS, 5).unwrap();
        assert_eq!(big.cycles, 4 * small.cycles);
    }

    #[test]
    fn bad_k_and_lanes_are_errors() {
        let mut r = SplitMix64::new(0);
        assert_eq!(
            select(P16, 8, 0, &mut r),
            Err(TopkError::BadK { n: 8, k: 0 })
        );
        assert_eq!(
            select(P16, 8, 9, &mut r),
            Err(TopkError::BadK { n: 8, k: 9 })
        );
        let none = Engine {
            lanes: 0,
            round_overhead: 3,
        };
        assert_eq!(select(none, 8, 1, &mut r), Err(TopkError::NoLanes(0)));
    }
}
