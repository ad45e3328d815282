//! Issue: an SM's warp schedulers, which issue `rate` warp instructions per cycle (4 schedulers × 1 on every
//! generation einsim models, gpus.md §5.1). Every instruction a pipe retires was issued here first, so the pipes
//! of an SM share it: a task of `ops` lane-operations on a pipe that retires `per_instr` of them per warp
//! instruction (32 lanes; 64 for Blackwell's paired FFMA2) also occupies the schedulers for
//! `ops / per_instr / rate` cycles, side by side with the pipe. This is where emulated exp2, FMA work and MUFU
//! compete even though each has its own pipe (gpus.md §5.1: "issue can bind when FFMA, MUFU and TMEM ld/st all
//! compete"). Only pipe instructions are counted: MMA, TMA, ldmatrix and tcgen05.ld/st instructions each move a
//! whole tile fragment and gpus.md gives no per-instruction sizes (the GPU files' `issue` source says what that
//! leaves out).

#[derive(Clone, Debug, serde::Serialize)]
pub struct Issue {
    /// Warp instructions per cycle per SM.
    pub rate: f64,
}

impl Issue {
    /// Cycles of issue for `ops` lane-operations of a pipe retiring `per_instr` per warp instruction.
    pub fn cycles(&self, ops: f64, per_instr: f64) -> f64 {
        ops / per_instr / self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::Issue;

    #[test]
    fn paired_instructions_halve_issue() {
        let schedulers = Issue { rate: 4.0 };
        // FA4's 128×128 tile at 2.5 FMA lane-ops per element: 40960 ops in 320 cycles of issue as single FFMAs,
        // 160 as FFMA2 (gpus.md §1.2: FFMA2 halves issue, not the lane rate).
        assert_eq!(schedulers.cycles(40960.0, 32.0), 320.0);
        assert_eq!(schedulers.cycles(40960.0, 64.0), 160.0);
    }
}
