//! Pipe: a pipelined lane array that retires `rate` operations per cycle (MUFU/SFU exp2, the FP32 FMA pipe, the
//! integer/compare ALU). Its cost model is `ops / rate` cycles; the warp instructions that feed it, `ops /
//! per_instr`, are issued by the SM's schedulers ([`super::Issue`]).

#[derive(Clone, Debug, serde::Serialize)]
pub struct Pipe {
    pub rate: f64,
    /// Lane-operations one warp instruction retires (32; 64 for a paired FFMA2).
    pub per_instr: f64,
}

impl Pipe {
    pub fn cycles(&self, ops: f64) -> f64 {
        ops / self.rate
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mufu_exp_of_a_tile() {
        // 128×128 exponentials at 16 per cycle: FA4's 1024 exp cycles.
        assert_eq!(
            super::Pipe {
                rate: 16.0,
                per_instr: 32.0
            }
            .cycles(128.0 * 128.0),
            1024.0
        );
    }
}
