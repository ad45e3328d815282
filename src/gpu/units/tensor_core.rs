//! Tensor core: a matrix unit that multiplies m×k by k×n at a fixed FLOP rate per data type, reading its operands
//! from named storage. Its cost model:
//!
//! - compute: `2·m·n·k / flops[dtype]` cycles at peak, divided by `sustained` for the time the unit is busy (a
//!   tensor-core-only derate; the shipped GPUs set it to 1 and derate the SM clock by the measured GEMM fraction);
//! - operand traffic: A (`m·k` elements) is read once from where it lives; B (`k·n` elements) is read once per
//!   `instr_m` rows of A (each MMA instruction, or each warpgroup's, re-reads it), split among `b_share` SMs when
//!   a CTA pair shares it. Register operands move no storage bytes here.
//!
//! The operand reads run beside the MMA on the storage's own port, so the step is bound by whichever is slower,
//! and other tasks contend for that port.

use std::collections::BTreeMap;

#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorCore {
    /// FLOPs per cycle per data type.
    pub flops: BTreeMap<String, f64>,
    pub a_from: Vec<String>,
    pub b_from: Vec<String>,
    pub instr_m: f64,
    pub sustained: f64,
}

/// One MMA's demands.
#[derive(Clone, Debug, PartialEq)]
pub struct MmaCost {
    pub flops: f64,
    /// Cycles at peak (what FA4's per-tile table counts).
    pub ideal: f64,
    /// Cycles the unit is busy at the sustained rate.
    pub busy: f64,
    /// Bytes read from each storage the operands come from.
    pub reads: Vec<(String, f64)>,
}

pub struct MmaShape<'a> {
    pub m: f64,
    pub n: f64,
    pub k: f64,
    pub a: &'a str,
    pub b: &'a str,
    pub b_share: f64,
    pub elem: f64,
}

impl TensorCore {
    pub fn mma(&self, dtype: &str, s: &MmaShape) -> Result<MmaCost, String> {
        let rate = *self.flops.get(dtype).ok_or_else(|| {
            let known: Vec<&str> = self.flops.keys().map(String::as_str).collect();
            format!(
                "this tensor core has no `{dtype}` MMA (it has {})",
                known.join(", ")
            )
        })?;
        for (which, from, allowed) in [("A", s.a, &self.a_from), ("B", s.b, &self.b_from)] {
            if !allowed.iter().any(|a| a == from) {
                return Err(format!(
                    "operand {which} cannot come from `{from}` on this tensor core (it reads {which} from {})",
                    allowed.join(", ")
                ));
            }
        }
        if s.b_share < 1.0 {
            return Err(format!("b_share must be at least 1, got {}", s.b_share));
        }
        let flops = 2.0 * s.m * s.n * s.k;
        let ideal = flops / rate;
        let mut reads = vec![(s.a.to_string(), s.m * s.k * s.elem)];
        let b_bytes = s.k * s.n * s.elem * (s.m / self.instr_m).ceil() / s.b_share;
        match reads.iter_mut().find(|r| r.0 == s.b) {
            Some(r) => r.1 += b_bytes,
            None => reads.push((s.b.to_string(), b_bytes)),
        }
        Ok(MmaCost {
            flops,
            ideal,
            busy: ideal / self.sustained,
            reads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blackwell() -> TensorCore {
        TensorCore {
            flops: [("bf16".to_string(), 8192.0)].into(),
            a_from: vec!["smem".into(), "tmem".into()],
            b_from: vec!["smem".into()],
            instr_m: 128.0,
            sustained: 0.5,
        }
    }

    fn shape<'a>(a: &'a str, b_share: f64) -> MmaShape<'a> {
        MmaShape {
            m: 128.0,
            n: 128.0,
            k: 128.0,
            a,
            b: "smem",
            b_share,
            elem: 2.0,
        }
    }

    #[test]
    fn ss_mma_reads_both_operands_and_costs_flops_over_rate() {
        let c = blackwell().mma("bf16", &shape("smem", 1.0)).unwrap();
        // 2·128³ / 8192 = 512 cycles at peak; twice that at half the sustained rate.
        assert_eq!((c.ideal, c.busy), (512.0, 1024.0));
        // Q (32 KiB) and K (32 KiB) from shared memory.
        assert_eq!(c.reads, vec![("smem".to_string(), 65536.0)]);
    }

    #[test]
    fn a_from_tmem_and_a_shared_b() {
        let c = blackwell().mma("bf16", &shape("tmem", 2.0)).unwrap();
        assert_eq!(
            c.reads,
            vec![("tmem".to_string(), 32768.0), ("smem".to_string(), 16384.0)]
        );
    }

    #[test]
    fn b_is_reread_per_instruction_rows() {
        let mut tc = blackwell();
        tc.instr_m = 64.0; // Hopper: one WGMMA per 64 rows
        let c = tc.mma("bf16", &shape("smem", 1.0)).unwrap();
        assert_eq!(c.reads, vec![("smem".to_string(), 32768.0 + 2.0 * 32768.0)]);
    }

    #[test]
    fn refuses_what_the_hardware_cannot_do() {
        assert!(blackwell()
            .mma("fp4", &shape("smem", 1.0))
            .unwrap_err()
            .contains("no `fp4`"));
        assert!(blackwell()
            .mma("bf16", &shape("rf", 1.0))
            .unwrap_err()
            .contains("operand A"));
    }
}
