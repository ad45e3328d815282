//! A persistent tile scheduler over identical slots (SMs, or SM pairs for 2-CTA kernels): work items are taken
//! longest first and each goes to the slot that frees first (LPT list scheduling). Nothing here knows what an
//! item is; wave quantization (items not a multiple of slots) and causal imbalance (items of different lengths)
//! show in the makespan.

use crate::sim::Tick;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Makespan of `groups` (duration, count) on `slots` slots, longest first.
pub fn lpt(groups: &[(Tick, u64)], slots: u64) -> Tick {
    let mut g: Vec<(Tick, u64)> = groups.iter().copied().filter(|g| g.1 > 0).collect();
    g.sort_by_key(|b| Reverse(b.0));
    // Slots beyond the items stay idle: the makespan is the same with one slot per item, and the heap stays the
    // size of the work, not of the chip (a file may declare any number of SMs).
    let items = g.iter().fold(0u64, |n, x| n.saturating_add(x.1));
    let slots = slots.min(items).max(1);
    let mut free: BinaryHeap<Reverse<Tick>> = (0..slots).map(|_| Reverse(0)).collect();
    for (dur, count) in g {
        let mut left = count;
        // When the slots' free times lie within one item of each other, each round of `slots` equal items puts
        // one on every slot: add whole rounds at once.
        let lo = free.peek().map_or(0, |r| r.0);
        let hi = free.iter().map(|r| r.0).max().unwrap_or(0);
        if left >= slots && hi - lo <= dur {
            let rounds = left / slots;
            let shifted: BinaryHeap<Reverse<Tick>> = free
                .drain()
                .map(|Reverse(t)| Reverse(t + dur * rounds as Tick))
                .collect();
            free = shifted;
            left -= rounds * slots;
        }
        for _ in 0..left {
            let Reverse(t) = free.pop().expect("slots ≥ 1");
            free.push(Reverse(t + dur));
        }
    }
    free.into_iter().map(|Reverse(t)| t).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::lpt;

    #[test]
    fn more_slots_than_items() {
        // Three items on a billion slots: one wave, as on three slots, without a billion-entry heap.
        assert_eq!(lpt(&[(7, 2), (5, 1)], 1_000_000_000), 7);
        assert_eq!(lpt(&[(7, 2), (5, 1)], 3), 7);
    }

    #[test]
    fn wave_quantization() {
        // 5 equal items on 4 slots take two waves.
        assert_eq!(lpt(&[(10, 5)], 4), 20);
        assert_eq!(lpt(&[(10, 8)], 4), 20);
        assert_eq!(lpt(&[(10, 9)], 4), 30);
    }

    #[test]
    fn longest_first_balances_causal_rows() {
        // Causal rows of length 1..=4 on 2 slots: LPT pairs 4+1 and 3+2.
        let g: Vec<_> = (1..=4).map(|l| (l as u128, 1)).collect();
        assert_eq!(lpt(&g, 2), 5);
        assert_eq!(lpt(&[], 3), 0);
    }

    #[test]
    fn rounds_shortcut_matches_one_by_one() {
        let g = [(7, 1000), (5, 3), (3, 77)];
        let mut one = vec![];
        for (d, c) in g {
            one.extend(std::iter::repeat_n((d, 1u64), c as usize));
        }
        assert_eq!(lpt(&g, 13), lpt(&one, 13));
    }
}
